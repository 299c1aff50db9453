"""``course convert``: a plain nbgrader notebook's ``assert`` test cells rewritten as expectations.

The course's grader judges values, not what a kernel says about itself: a
test cell earns points only through ``checks.expect(value, target, message)``
calls, whose targets are computed between ``### BEGIN REFERENCE`` and
``### END REFERENCE`` (:mod:`course_tools.testcells`). A test cell written
the plain nbgrader way, with ``assert``s, gives the grader nothing to judge.
This module rewrites the common forms, reading the code with :mod:`ast`:

- ``assert a == b`` (exact: ``rtol=0, atol=0``), ``assert a == approx(b)``
  (pytest's tolerances), ``assert abs(a - b) < tol`` (``atol=tol``);
- ``assert np.isclose(a, b, ...)``, ``np.allclose``, ``np.array_equal``
  (also under ``np.all(...)`` or ``.all()``), ``math.isclose``;
- ``np.testing.assert_allclose``, ``assert_array_equal``,
  ``assert_almost_equal``, ``assert_array_almost_equal``, ``assert_equal``
  (with their own default tolerances);
- ``assert isinstance(x, T)`` becomes ``checks.expect_true(isinstance(x, T), ...)``.

Which side is the student's: the side that uses a name the notebook's answer
cells define (their functions, classes and variables, or a variable of the
test cell computed from them); the other side, which uses none of them (a
literal, a formula, a library or given function), is the expected value. When
both sides or neither use the answer, the assert is reported, never guessed.

A hidden assert is replaced where it stands: its expected side (unless a
literal) is assigned to a fresh ``_expected_<n>`` inside a REFERENCE block,
and the student's side is published with ``checks.expect``. A visible assert
stays (students' Validate runs it; its values are visible anyway) and a hidden
copy as an expectation follows it: an expectation in the visible part would
publish during the students' own run, which the grader flags. A variable of a
hidden test used only by expected values is moved into a REFERENCE block too.
Messages are kept if they are plain strings (the judge matches expectations
by message, so one computed in the kernel cannot be used).

What it does not do: any other assert (``!=``, ``<``, ``is``, a bare
condition) leaves its whole cell unchanged and is listed with the cell and
line, so the instructor rewrites that cell by hand; cells that already make
expectations are left as they are. The notebook is written only with
``write=True``, after the original is kept as ``notebooks/<name>.ipynb.orig``
(outside the assignment's folder, whose every file nbgrader releases).
"""

from __future__ import annotations

import ast
import difflib
import shutil
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from course_tools import assignments, markers, testcells

HIDDEN_BEGIN, HIDDEN_END = markers.MARKERS["hidden"]
REFERENCE_BEGIN, REFERENCE_END = markers.MARKERS["reference"]

ASSERTS_WITH_TOLERANCE = {  # numpy.testing function: (default rtol, default atol, positional order after a, b)
    "assert_allclose": ("1e-07", "0", ("rtol", "atol", "equal_nan", "err_msg", "verbose")),
    "assert_array_equal": ("0", "0", ("err_msg", "verbose")),
    "assert_equal": ("0", "0", ("err_msg", "verbose")),
    "assert_almost_equal": (None, None, ("decimal", "err_msg", "verbose")),
    "assert_array_almost_equal": (None, None, ("decimal", "err_msg", "verbose")),
}
ALMOST_EQUAL_DECIMALS = {"assert_almost_equal": 7, "assert_array_almost_equal": 6}
CLOSE = {"isclose": ("rtol", "atol", "equal_nan"), "allclose": ("rtol", "atol", "equal_nan"),
         "array_equal": ("equal_nan",)}
IGNORED_KEYWORDS = {"equal_nan", "verbose", "strict"}
ADVICE = "rewrite the test cell with checks.expect"


class NotConvertible(ValueError):
    """One statement of a test cell that cannot be rewritten; ``line`` is its line in the cell."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(reason)
        self.line, self.reason = line, reason


@dataclass
class Check:
    """What one assert states: ``value`` (the student's side) must match ``target``."""

    value: str
    target: str | None  # None for a yes/no check (expect_true)
    literal: bool = False  # the target is a literal: it can stay inline
    tolerances: str = ""  # ", rtol=..., atol=..." as written into the expectation
    message: ast.expr | None = None


@dataclass
class Skipped:
    grade_id: str
    cell_id: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.grade_id} (cell {self.cell_id}) line {self.line}: {self.reason}"


@dataclass
class Conversion:
    """What converting one notebook changed and what it could not."""

    path: Path
    notebook: nbformat.NotebookNode
    changed: list[tuple[str, str, str]] = field(default_factory=list)  # grade id, before, after
    skipped: list[Skipped] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """A diff of every converted cell, then what was left unchanged and why."""
        out = [f"{self.path}: {len(self.changed)} test cells converted, {len({s.grade_id for s in self.skipped})} "
               "left unchanged"]
        for gid, before, after in self.changed:
            out += [line.rstrip("\n") for line in difflib.unified_diff(
                before.splitlines(), after.splitlines(), f"{gid} (before)", f"{gid} (converted)", lineterm="")]
        out += [f"note: {n}" for n in self.notes]
        if self.skipped:
            out.append(f"not converted (each cell left as it was; {ADVICE}):")
            out += [f"  {s}" for s in self.skipped]
        return "\n".join(out)


# ---------------------------------------------------------------- names


def _module_names(tree: ast.Module) -> set[str]:
    """Names a cell defines at module level: functions, classes and assigned variables (not imports,
    which name libraries, and not names local to a function)."""
    names: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(child.name)
            elif isinstance(child, ast.Name) and isinstance(child.ctx, ast.Store):
                names.add(child.id)
            elif not isinstance(child, ast.Lambda):
                visit(child)

    visit(tree)
    return names


def answer_names(nb: nbformat.NotebookNode) -> set[str]:
    """Every name the notebook's answer cells define: what a student's code provides."""
    names: set[str] = set()
    for cell in nb.cells:
        if cell.cell_type == "code" and assignments.cell_kind(cell) == "autograded answer":
            try:
                names |= _module_names(ast.parse(cell.source))
            except SyntaxError:
                continue
    return names


def _uses(node: ast.AST, names: set[str]) -> bool:
    return any(isinstance(n, ast.Name) and n.id in names for n in ast.walk(node))


def _tainted(tree: ast.Module, student: set[str]) -> set[str]:
    """The student's names plus every variable of the cell computed from them (to a fixed point)."""
    tainted = set(student)
    while True:
        before = len(tainted)
        for node in ast.walk(tree):
            pairs: list[tuple[ast.AST, ast.AST | None]] = []
            if isinstance(node, ast.Assign):
                pairs = [(t, node.value) for t in node.targets]
            elif isinstance(node, (ast.AugAssign, ast.AnnAssign, ast.NamedExpr)):
                pairs = [(node.target, node.value)]
            elif isinstance(node, (ast.For, ast.comprehension)):
                pairs = [(node.target, node.iter)]
            elif isinstance(node, ast.withitem) and node.optional_vars is not None:
                pairs = [(node.optional_vars, node.context_expr)]
            for target, value in pairs:
                if value is not None and _uses(value, tainted):
                    tainted |= {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}
        if len(tainted) == before:
            return tainted


# ---------------------------------------------------------------- one assert


def _name(func: ast.expr) -> str:
    """The last part of a called name: ``np.testing.assert_allclose`` -> ``assert_allclose``."""
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def _root(func: ast.expr) -> str:
    while isinstance(func, ast.Attribute):
        func = func.value
    return func.id if isinstance(func, ast.Name) else ""


def _is_literal(node: ast.expr) -> bool:
    try:
        ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False
    return True


class _Reader:
    """Turns the asserts of one cell into :class:`Check`s, with the cell's text and tainted names."""

    def __init__(self, source: str, tree: ast.Module, student: set[str], numpy: str | None) -> None:
        self.source, self.tainted, self.numpy = source, _tainted(tree, student), numpy

    def text(self, node: ast.expr) -> str:
        segment = ast.get_source_segment(self.source, node) or ast.unparse(node)
        return ast.unparse(node) if "\n" in segment else segment

    def sides(self, a: ast.expr, b: ast.expr, line: int) -> tuple[ast.expr, ast.expr]:
        """(student's side, expected side), by the documented rule; ambiguity is reported."""
        ua, ub = _uses(a, self.tainted), _uses(b, self.tainted)
        if ua and not ub:
            return a, b
        if ub and not ua:
            return b, a
        if ua:
            raise NotConvertible(line, "both sides use the answer cells' names, so neither is the expected value")
        raise NotConvertible(line, "neither side uses a name the answer cells define: nothing of the student's "
                                   "to judge")

    def check(self, value: ast.expr, target: ast.expr, tolerances: str, message: ast.expr | None,
              as_array: bool = False) -> Check:
        value_text, target_text = self.text(value), self.text(target)
        if as_array and self.numpy:  # numpy compares lists and arrays alike; the judge compares types too
            value_text = f"{self.numpy}.asarray({value_text})"
            target_text = f"{self.numpy}.asarray({target_text})"
        return Check(value_text, target_text, _is_literal(target) and not as_array, tolerances, message)

    def from_assert(self, node: ast.Assert) -> Check:
        test, line = node.test, node.lineno
        if isinstance(test, ast.Call) and _name(test.func) in ("all",) and not test.keywords:
            if isinstance(test.func, ast.Attribute) and not test.args:  # (...).all()
                test = test.func.value
            elif len(test.args) == 1 and _root(test.func) == self.numpy:  # np.all(...)
                test = test.args[0]
        if isinstance(test, ast.Compare) and len(test.ops) == 1:
            return self._compare(test, node.msg, line)
        if isinstance(test, ast.Call):
            name = _name(test.func)
            if name == "isinstance" and isinstance(test.func, ast.Name) and len(test.args) == 2:
                if not _uses(test.args[0], self.tainted):
                    raise NotConvertible(line, "isinstance of something that does not use the answer cells' names")
                return Check(self.text(test), None, message=node.msg)
            if name in CLOSE and _root(test.func) in (self.numpy, "numpy") or name == "isclose" \
                    and _root(test.func) == "math":
                return self._close(test, node.msg, line)
        raise NotConvertible(line, f"`{_short(ast.unparse(node))}` has no value to match: only ==, approx, "
                                   "abs(a - b) < tol, isclose/allclose and isinstance asserts convert")

    def _compare(self, test: ast.Compare, msg: ast.expr | None, line: int) -> Check:
        op, left, right = test.ops[0], test.left, test.comparators[0]
        if isinstance(op, ast.Eq):
            for approx, other in ((right, left), (left, right)):
                if isinstance(approx, ast.Call) and _name(approx.func) == "approx" and len(approx.args) == 1:
                    student, expected = self.sides(other, approx.args[0], line)
                    if student is not other:
                        raise NotConvertible(line, "the approx side uses the answer cells' names")
                    return self.check(student, expected, self._approx_tolerances(approx, line), msg)
            student, expected = self.sides(left, right, line)
            return self.check(student, expected, ", rtol=0, atol=0", msg)
        if isinstance(op, (ast.Lt, ast.LtE)):
            difference, tol = left, right
        elif isinstance(op, (ast.Gt, ast.GtE)):
            difference, tol = right, left
        else:
            raise NotConvertible(line, f"`{_short(ast.unparse(test))}` states no value to match ({type(op).__name__} "
                                       "is not an equality)")
        if isinstance(difference, ast.Call) and _name(difference.func) in ("abs", "fabs") \
                and len(difference.args) == 1 and isinstance(difference.args[0], ast.BinOp) \
                and isinstance(difference.args[0].op, ast.Sub) and not _uses(tol, self.tainted):
            student, expected = self.sides(difference.args[0].left, difference.args[0].right, line)
            return self.check(student, expected, f", rtol=0, atol={self.text(tol)}", msg)
        raise NotConvertible(line, f"`{_short(ast.unparse(test))}` is a comparison, not a value to match (only "
                                   "abs(a - b) < tol converts)")

    def _approx_tolerances(self, approx: ast.Call, line: int) -> str:
        """pytest.approx's tolerances: rel 1e-6 and abs 1e-12 by default; abs alone means no rel."""
        given = {k.arg: self.text(k.value) for k in approx.keywords}
        if set(given) - {"rel", "abs"}:
            raise NotConvertible(line, f"approx with {', '.join(sorted(set(given) - {'rel', 'abs'}))}")
        rel = given.get("rel", "0" if "abs" in given else "1e-06")
        return f", rtol={rel}, atol={given.get('abs', '1e-12')}"

    def _close(self, call: ast.Call, msg: ast.expr | None, line: int) -> Check:
        name = _name(call.func)
        if _root(call.func) == "math":
            options = {k: self.text(v) for k, v in self._options(call, ("rel_tol", "abs_tol"), line).items()}
            tolerances = f", rtol={options.get('rel_tol', '1e-09')}, atol={options.get('abs_tol', '0')}"
        elif name == "array_equal":
            self._options(call, CLOSE[name], line)
            tolerances = ", rtol=0, atol=0"
        else:
            options = {k: self.text(v) for k, v in self._options(call, CLOSE[name], line).items()}
            tolerances = "".join(f", {k}={options[k]}" for k in ("rtol", "atol") if k in options)
        student, expected = self.sides(call.args[0], call.args[1], line)
        return self.check(student, expected, tolerances, msg, as_array=name != "isclose")

    def _options(self, call: ast.Call, order: tuple[str, ...], line: int) -> dict[str, ast.expr]:
        """The options of a call after its two compared values, by keyword or position."""
        if len(call.args) < 2 or any(isinstance(a, ast.Starred) for a in call.args) or \
                any(k.arg is None for k in call.keywords):
            raise NotConvertible(line, f"`{_short(ast.unparse(call))}`: expected two values to compare")
        options = dict(zip(order, call.args[2:]))
        options |= {k.arg: k.value for k in call.keywords if k.arg}
        unknown = set(options) - set(order)
        if len(call.args) - 2 > len(order) or unknown:
            raise NotConvertible(line, f"`{_short(ast.unparse(call))}`: unknown options {sorted(unknown)}")
        return options

    def from_testing_call(self, call: ast.Call) -> Check:
        """A ``numpy.testing`` assertion called as a statement."""
        name, line = _name(call.func), call.lineno
        rtol, atol, order = ASSERTS_WITH_TOLERANCE[name]
        options = {k: self.text(v) for k, v in self._options(call, order, line).items()}
        if name in ALMOST_EQUAL_DECIMALS:
            decimal = options.get("decimal", str(ALMOST_EQUAL_DECIMALS[name]))
            atol = repr(1.5 * 10.0 ** -int(decimal)) if decimal.lstrip("-").isdigit() else f"1.5 * 10.0 ** -({decimal})"
            rtol = "0"
        tolerances = f", rtol={options.get('rtol', rtol)}, atol={options.get('atol', atol)}"
        student, expected = self.sides(call.args[0], call.args[1], line)
        return self.check(student, expected, tolerances, self._options(call, order, line).get("err_msg"),
                          as_array=True)


def _short(text: str) -> str:
    return text if len(text) <= 60 else text[:57] + "..."


def _testing_call(node: ast.stmt) -> ast.Call | None:
    """The ``numpy.testing`` assertion an expression statement calls, if it calls one."""
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
        func = node.value.func
        name = _name(func)
        if name.startswith("assert_") and (isinstance(func, ast.Name) or ".testing." in f".{ast.unparse(func)}"
                                           or _root(func) in ("npt", "testing")):
            return node.value
    return None


# ---------------------------------------------------------------- one cell


def _regions(lines: list[str], begin: str, end: str) -> set[int]:
    """1-based numbers of the lines between a pair of markers (markers excluded)."""
    inside, found = False, set()
    for number, line in enumerate(lines, 1):
        if begin in line:
            inside = True
        elif end in line:
            inside = False
        elif inside:
            found.add(number)
    return found


def _occupies_lines(lines: list[str], node: ast.stmt) -> bool:
    """True if nothing but the statement (and a comment) is on its lines: it can be replaced by lines."""
    before = lines[node.lineno - 1][: node.col_offset]
    after = lines[node.end_lineno - 1][node.end_col_offset:].strip()
    return not before.strip() and (not after or after.startswith("#"))


def _merge_touching(lines: list[str], pair: tuple[str, str]) -> list[str]:
    """Regions of one kind that touch (an END line right before a BEGIN line at the same indentation)
    joined into one."""
    begin, end = pair
    merged: list[str] = []
    for line in lines:
        if merged and line.strip() == begin and merged[-1].strip() == end \
                and line[: len(line) - len(line.lstrip())] == merged[-1][: len(merged[-1]) - len(merged[-1].lstrip())]:
            merged.pop()
        else:
            merged.append(line)
    return merged


def _expected_only(source: str) -> set[str]:
    """Names the student's kernel would compute that only expected values use (targets and REFERENCE
    blocks): a student's function called later in the test could read them there."""
    student = ast.parse(testcells.student_version(source))
    loaded = {n.id for n in ast.walk(student) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    stored = {n.id for n in ast.walk(student) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    stored |= {n.name for n in ast.walk(student) if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    expected = set(testcells.target_leaks(source))
    for block in markers.blocks(source, "reference"):
        try:
            tree = ast.parse(textwrap.dedent("\n".join(block)))
        except SyntaxError:
            continue
        expected |= {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    return (stored - loaded) & expected


class CellConverter:
    """Rewrites one test cell; :meth:`convert` returns the new source or raises :class:`NotConvertible`."""

    def __init__(self, grade_id: str, student: set[str], numpy: str | None, import_checks: bool) -> None:
        self.grade_id, self.student, self.numpy, self.import_checks = grade_id, student, numpy, import_checks
        self.notes: list[str] = []

    def convert(self, source: str) -> str:
        try:
            tree = ast.parse(source)
        except SyntaxError as exc:
            raise NotConvertible(exc.lineno or 0, f"not plain Python ({exc.msg})") from None
        lines = source.split("\n")
        hidden = _regions(lines, HIDDEN_BEGIN, HIDDEN_END)
        reference = _regions(lines, REFERENCE_BEGIN, REFERENCE_END)
        reader = _Reader(source, tree, self.student, self.numpy)
        edits: list[tuple[int, int, list[str]]] = []  # first line, last line (1-based), new lines
        used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        count = 0
        for node in ast.walk(tree):  # a check that something raises has no value to publish
            if isinstance(node, ast.withitem) and isinstance(node.context_expr, ast.Call) \
                    and _name(node.context_expr.func) in ("raises", "assertRaises"):
                raise NotConvertible(node.context_expr.lineno, "a check that code raises has no value to match")
        statements = sorted((n for n in ast.walk(tree) if isinstance(n, (ast.Assert, ast.Expr))),
                            key=lambda n: (n.lineno, n.col_offset))
        for node in statements:
            call = _testing_call(node)
            if isinstance(node, ast.Expr) and call is None:
                continue
            if call is not None and _name(call.func) not in ASSERTS_WITH_TOLERANCE:
                raise NotConvertible(node.lineno, f"{_name(call.func)} is not one of the numpy.testing assertions "
                                                  "that compare two values")
            span = set(range(node.lineno, node.end_lineno + 1))
            if span & reference:
                raise NotConvertible(node.lineno, "an assert inside a REFERENCE block")
            if not _occupies_lines(lines, node):
                raise NotConvertible(node.lineno, "shares its line with other code: put it on lines of its own")
            check = reader.from_assert(node) if isinstance(node, ast.Assert) else reader.from_testing_call(call)
            count += 1
            is_hidden = span <= hidden
            indent = lines[node.lineno - 1][: node.col_offset]
            message = self._message(check, reader, count, is_hidden, node.lineno)
            name = self._fresh(used, count)
            new = [indent + line for line in self._expectation(check, message, name)]
            if is_hidden:
                edits.append((node.lineno, node.end_lineno, new))
            elif span & hidden:
                raise NotConvertible(node.lineno, "an assert that starts or ends inside hidden tests")
            else:
                kept = lines[node.lineno - 1: node.end_lineno]
                edits.append((node.lineno, node.end_lineno, kept + [indent + HIDDEN_BEGIN, *new,
                                                                    indent + HIDDEN_END]))
        if not edits:
            raise NotConvertible(1, "no assert to convert and no checks.expect: nothing for the grader to judge")
        for first, last, new in sorted(edits, reverse=True):
            lines[first - 1: last] = new
        if self.import_checks:
            lines.insert(0, "from course_utils import checks")
        source = self._targets_into_reference("\n".join(_merge_touching(lines, markers.MARKERS["hidden"])))
        return "\n".join(_merge_touching(source.split("\n"), markers.MARKERS["reference"]))

    def _message(self, check: Check, reader: _Reader, count: int, hidden: bool, line: int) -> str:
        """The assert's own message if it is a plain string (the judge matches expectations by their
        message); else one that names the test, never a hidden test's code."""
        if isinstance(check.message, ast.Constant) and isinstance(check.message.value, str):
            return reader.text(check.message)
        if check.message is not None:
            self.notes.append(f"{self.grade_id} line {line}: its message is computed, not a plain string; "
                              "a fixed one replaces it (write one that says what is wrong)")
        if hidden:
            return repr(f"{self.grade_id}: hidden check {count} failed")
        return repr(f"{self.grade_id}: {_short(check.value)} is not what was expected")

    @staticmethod
    def _fresh(used: set[str], count: int) -> str:
        name, k = f"_expected_{count}", count
        while name in used:
            k += 100
            name = f"_expected_{k}"
        used.add(name)
        return name

    @staticmethod
    def _expectation(check: Check, message: str, name: str) -> list[str]:
        if check.target is None:
            return [f"checks.expect_true({check.value}, {message})"]
        if check.literal:
            return [f"checks.expect({check.value}, {check.target}, {message}{check.tolerances})"]
        return [REFERENCE_BEGIN, f"{name} = {check.target}", REFERENCE_END,
                f"checks.expect({check.value}, {name}, {message}{check.tolerances})"]

    @staticmethod
    def _targets_into_reference(source: str) -> str:
        """Move hidden statements whose names only expected values use into REFERENCE blocks,
        so they are never computed in a student's kernel; any left over is reported."""
        for _ in range(20):
            leaks = _expected_only(source)
            if not leaks:
                return source
            lines = source.split("\n")
            hidden = _regions(lines, HIDDEN_BEGIN, HIDDEN_END)
            reference = _regions(lines, REFERENCE_BEGIN, REFERENCE_END)
            movable = []
            for node in ast.walk(ast.parse(source)):
                if isinstance(node, (ast.Assign, ast.AnnAssign, ast.FunctionDef, ast.ClassDef)):
                    names = {node.name} if isinstance(node, (ast.FunctionDef, ast.ClassDef)) else \
                        {n.id for t in getattr(node, "targets", [getattr(node, "target", None)]) if t is not None
                         for n in ast.walk(t) if isinstance(n, ast.Name)}
                    first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
                    span = set(range(first, node.end_lineno + 1))
                    if names and names <= leaks and span <= hidden and not span & reference \
                            and _occupies_lines(lines, node):
                        movable.append((first, node.end_lineno, node.col_offset))
            if not movable:
                break
            for first, last, col in sorted(movable, reverse=True):
                indent = lines[first - 1][:col]
                lines[first - 1: last] = [indent + REFERENCE_BEGIN, *lines[first - 1: last],
                                          indent + REFERENCE_END]
            source = "\n".join(lines)
        leaks = sorted(_expected_only(source))
        raise NotConvertible(1, f"{', '.join(leaks)} only feed expected values but are computed where the student's "
                                "kernel would run them: move them into a ### BEGIN REFERENCE block")


# ---------------------------------------------------------------- one notebook


def _numpy_and_checks(nb: nbformat.NotebookNode) -> tuple[str | None, bool]:
    """The name numpy is imported as (if it is), and whether ``checks`` is imported from course_utils."""
    numpy, has_checks = None, False
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                numpy = next((a.asname or a.name for a in node.names if a.name == "numpy"), numpy)
            elif isinstance(node, ast.ImportFrom) and node.module == "course_utils":
                has_checks |= any(a.name == "checks" and a.asname in (None, "checks") for a in node.names)
    return numpy, has_checks


def convert_notebook(path: Path) -> Conversion:
    """Every test cell of the notebook at ``path`` converted where it can be (nothing written)."""
    nb = nbformat.read(path, as_version=4)
    result = Conversion(path, nb)
    student = answer_names(nb)
    numpy, has_checks = _numpy_and_checks(nb)
    if not student:
        result.notes.append("no answer cell defines a name, so no assert can be told to use the student's code")
    for index, cell in enumerate(nb.cells):
        if not assignments.is_test_cell(cell):
            continue
        gid = assignments.grade_id(cell, index)
        try:
            if testcells.expectation_count(cell.source) > 0:
                continue  # already judged by expectations
        except testcells.UnjudgeableCell:
            pass
        converter = CellConverter(gid, student, numpy, import_checks=not has_checks)
        try:
            new = converter.convert(cell.source)
            testcells.student_version(new)  # the grader can split it
            ast.parse(testcells.visible_part(new))  # and the release stays valid Python
        except NotConvertible as exc:
            result.skipped.append(Skipped(gid, cell.get("id", str(index)), exc.line, exc.reason))
            continue
        except (testcells.UnjudgeableCell, SyntaxError) as exc:
            result.skipped.append(Skipped(gid, cell.get("id", str(index)), 1, f"the rewritten cell is not valid: {exc}"))
            continue
        result.changed.append((gid, cell.source, new))
        result.notes += converter.notes
        cell.source = new
        if cell.get("outputs"):
            cell.outputs, cell.execution_count = [], None
    return result


def backup_path(path: Path) -> Path:
    """Where the original notebook is kept: ``<name>.ipynb.orig`` one folder up (``notebooks/``), never
    beside it, where nbgrader would release it with the assignment's files; ``.orig.<k>`` if taken,
    so a backup is never overwritten."""
    folder = path.resolve().parent.parent
    candidate, k = folder / f"{path.name}.orig", 1
    while candidate.exists():
        k += 1
        candidate = folder / f"{path.name}.orig.{k}"
    return candidate


def notebook_path(target: str) -> tuple[Path, str]:
    """The notebook ``course convert`` was given (an assignment's name or a path), and its name."""
    path = Path(target)
    if target.endswith(".ipynb") or path.is_file():
        return path, path.stem
    return assignments.load(target).path, target


def main(target: str, write: bool = False) -> int:
    """``course convert``: print what changes; write it (keeping a backup) only with ``write``.
    Exit 0 when every test cell can now be judged, 1 when some were left unchanged, 2 on no notebook."""
    import sys

    path, name = notebook_path(target)
    if not path.is_file():
        print(f"course convert: {path}: no such notebook", file=sys.stderr)
        return 2
    result = convert_notebook(path)
    print(result.summary())
    if result.changed and write:
        backup = backup_path(path)
        shutil.copy2(path, backup)
        nbformat.write(result.notebook, path)
        print(f"wrote {path} (the original is kept as {backup}); next: `course release {name}`, "
              f"`course selfcheck {name}`, and wrong answers in tests/mutants/{name}.toml")
    elif result.changed:
        print(f"nothing written (a dry run): `course convert {target} --write` rewrites {path} and keeps "
              f"the original as {backup_path(path)}")
    return 1 if result.skipped else 0
