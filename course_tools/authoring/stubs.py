"""What a student finds in place of a solution: a stub that says what to write.

nbgrader's ``ClearSolutions`` replaces every solution region with one fixed
stub, ``raise NotImplementedError()``, so a student who runs the blank
notebook meets an error that says nothing. :class:`NamedStubs` (configured in
``nbgrader_config.py`` for ``course release``, ``nbgrader generate_assignment``
and every scratch course) names what belongs there instead::

    raise NotImplementedError('write sample_gaussian: Sample z ~ N(m, v) with the reparameterization trick.')
    raise NotImplementedError('write answer_best_beta: Set answer_best_beta to one letter: "a", "b", "c".')

The message is built only from text outside the solution region (the
enclosing function's name and the first paragraph of its docstring; for a
top-level answer, the names it assigns and the comment just above it), so it
never carries a line of the solution. No source notebook needs editing.
"""

from __future__ import annotations

import ast
import re
import textwrap

from nbformat import NotebookNode
from nbgrader.preprocessors import ClearSolutions

_INDENT = re.compile(r"\s*")
_PLACEHOLDER = "pass  # solution region"
_STUB_CALL = "NotImplementedError()"


class NamedStubs(ClearSolutions):
    """``ClearSolutions`` whose code stubs raise ``NotImplementedError`` with a message naming
    what to write. The stub itself is still ``ClearSolutions.code_stub`` from the configuration;
    its ``NotImplementedError()`` gains the message."""

    def _replace_solution_region(self, cell: NotebookNode, language: str) -> bool:
        if cell.cell_type != "code" or _STUB_CALL not in self.code_stub.get(language, ""):
            return super()._replace_solution_region(cell, language)
        begin, end = self.begin_solution_delimeter, self.end_solution_delimeter
        regions = solution_regions(cell.source, begin, end)
        if not regions:
            return False
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id", "")
        lines = cell.source.split("\n")
        out: list[str] = []
        position = 0
        for first, last in regions:
            out += lines[position:first]
            message = stub_message(cell.source, (first, last), begin, end, grade_id)
            stub = self.code_stub[language].replace(_STUB_CALL, f"NotImplementedError({message!r})")
            indent = _INDENT.match(lines[first]).group(0)
            out += [indent + line for line in stub.split("\n")]
            position = last + 1
        cell.source = "\n".join(out + lines[position:])
        return True


def solution_regions(source: str, begin: str, end: str) -> list[tuple[int, int]]:
    """``(begin line, end line)`` of every solution region, 0-based; nbgrader's errors for
    nested or unclosed regions."""
    regions, start = [], None
    for number, line in enumerate(source.split("\n")):
        if begin in line:
            if start is not None:
                raise RuntimeError("encountered nested begin solution statements")
            start = number
        elif end in line and start is not None:
            regions.append((start, number))
            start = None
    if start is not None:
        raise RuntimeError("no end solution statement found")
    return regions


def stub_message(source: str, region: tuple[int, int], begin: str, end: str, grade_id: str = "") -> str:
    """What the stub of ``region`` tells the student to write (see the module docstring)."""
    lines = source.split("\n")
    first, last = region
    visible = _visible_tree(lines, region, begin, end)
    if visible is not None:
        found = _enclosing_function(visible, first + 1)
        if found is not None:
            name, function, owner = found
            summary = _summary(ast.get_docstring(function)) or _summary(owner and ast.get_docstring(owner))
            return f"write {name}" + (f": {summary}" if summary else "")
    names = _defined_names("\n".join(lines[first + 1:last]))
    what = ", ".join(names) if names else (f"your answer ({grade_id})" if grade_id else "your answer")
    comment = _comment_above(lines, first)
    return f"write {what}" + (f": {comment}" if comment else "")


def _visible_tree(lines: list[str], region: tuple[int, int], begin: str, end: str) -> ast.Module | None:
    """The cell parsed with this region as one placeholder statement on its first line and every
    other region emptied the same way; None when the cell is not plain Python (magics)."""
    kept = []
    inside = False
    for number, line in enumerate(lines):
        if begin in line:
            inside = True
            kept.append(_INDENT.match(line).group(0) + _PLACEHOLDER)
        elif end in line and inside:
            inside = False
            kept.append("")
        elif inside or line.lstrip().startswith(("%", "!")):
            kept.append("")
        else:
            kept.append(line)
    try:
        return ast.parse("\n".join(kept))
    except SyntaxError:
        return None


Function = ast.FunctionDef | ast.AsyncFunctionDef


def _enclosing_function(tree: ast.Module, line: int) -> tuple[str, Function, ast.ClassDef | None] | None:
    """The innermost function whose body holds ``line`` (1-based): its dotted name
    (``ScaledDotAttention.forward``), its node and the class it is a method of (a method
    without a docstring, such as ``__init__``, is described by its class)."""
    best: tuple[str, Function, ast.ClassDef | None] | None = None

    def visit(node: ast.AST, prefix: str, owner: ast.ClassDef | None) -> None:
        nonlocal best
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                if not child.lineno <= line <= (child.end_lineno or child.lineno):
                    continue
                name = f"{prefix}{child.name}"
                if isinstance(child, ast.ClassDef):
                    visit(child, name + ".", child)
                else:
                    best = (name, child, owner)
                    visit(child, name + ".", None)

    visit(tree, "", None)
    return best


def _summary(docstring: str | None) -> str:
    """The first paragraph of a docstring, on one line."""
    if not docstring:
        return ""
    return " ".join(docstring.strip().split("\n\n")[0].split())


def _defined_names(region: str) -> list[str]:
    """The names a top-level solution region assigns or defines, in order."""
    try:
        tree = ast.parse(textwrap.dedent(region))
    except SyntaxError:
        return []
    names: list[str] = []
    for node in tree.body:
        targets: list[ast.AST] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
            targets = [node.target]
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.append(node.name)
        for target in targets:
            names += [n.id for n in ast.walk(target) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)]
    return list(dict.fromkeys(names))


def _comment_above(lines: list[str], first: int) -> str:
    """The comment lines right above a region (at its indentation), on one line."""
    indent = _INDENT.match(lines[first]).group(0)
    found: list[str] = []
    for line in reversed(lines[:first]):
        if not line.startswith(indent + "#"):
            break
        found.insert(0, line.strip().lstrip("#").strip())
    return " ".join(found)
