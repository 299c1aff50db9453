"""A test cell's code as the grader splits and rewrites it (shared by authoring and grading).

- :func:`visible_part`: the cell as students see it (nbgrader's hidden regions removed);
- :func:`student_version`: the whole cell as a student's kernel runs it at
  grading: ``### BEGIN REFERENCE`` ... ``### END REFERENCE`` blocks replaced by
  ``pass`` and every ``expect`` target by ``None``, so no expected value is
  ever computed where student code could read it;
- :func:`target_leaks` and :func:`expectation_count`: what ``course selfcheck``
  checks in every test cell before a release.
"""

from __future__ import annotations

import ast
from collections import Counter

from course_tools import markers

REFERENCE_BEGIN, REFERENCE_END = markers.MARKERS["reference"]
EXPECTATIONS = ("expect", "expect_true")


class UnjudgeableCell(ValueError):
    """A test cell the grader cannot turn into its student version (the message says why)."""


def visible_part(source: str) -> str:
    """The test cell as students see it: hidden test regions removed (as nbgrader releases it)."""
    return markers.remove(source, "hidden")


def _without_reference_blocks(source: str) -> str:
    """The source with each REFERENCE block replaced by one ``pass`` at the marker's indentation
    (so a block that was a loop's whole body still leaves valid code)."""
    return markers.remove(source, "reference", lambda begin: begin[: len(begin) - len(begin.lstrip())] + "pass")


def _is_expectation(node: ast.AST) -> bool:
    func = node.func if isinstance(node, ast.Call) else None
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
    return name in EXPECTATIONS


class _DropTargets(ast.NodeTransformer):
    """Every ``expect(value, target, message, ...)`` becomes ``expect(value, None, message, ...)``."""

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        if _is_expectation(node) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "expect":
            if len(node.args) >= 2:
                node.args[1] = ast.Constant(None)
            node.keywords = [ast.keyword("target", ast.Constant(None)) if k.arg == "target" else k
                             for k in node.keywords]
        return node


def _parse(source: str) -> ast.Module:
    try:
        return ast.parse(source)
    except SyntaxError as exc:
        raise UnjudgeableCell(f"its code is not plain Python (line {exc.lineno}: {exc.msg})") from None


def student_version(source: str) -> str:
    """The test cell as the student's kernel runs it at grading: no REFERENCE blocks, no targets."""
    tree = _DropTargets().visit(_parse(_without_reference_blocks(source)))
    return ast.unparse(ast.fix_missing_locations(tree))


def expectation_count(source: str) -> int:
    """How many expectation calls a cell's code makes (at least one, to be judged)."""
    return sum(_is_expectation(n) for n in ast.walk(_parse(source)))


def target_leaks(source: str) -> list[str]:
    """Names whose only use is to compute a target but which are assigned outside REFERENCE blocks.

    Such a name would be computed in the student's kernel, where student code
    could read the expected value; compute it between the REFERENCE markers.
    """
    tree = _parse(_without_reference_blocks(source))
    targets = [n.args[1] if len(n.args) >= 2 else next((k.value for k in n.keywords if k.arg == "target"), None)
               for n in ast.walk(tree) if _is_expectation(n) and getattr(n.func, "attr",
                                                                         getattr(n.func, "id", "")) == "expect"]
    in_targets = {n.id for t in targets if t is not None for n in ast.walk(t) if isinstance(n, ast.Name)}
    student = _DropTargets().visit(_parse(_without_reference_blocks(source)))
    used = Counter(n.id for n in ast.walk(student) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load))
    assigned = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    assigned |= {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    assigned -= {n.id for c in ast.walk(tree) if isinstance(c, ast.comprehension)  # a comprehension's own names
                 for n in ast.walk(c.target) if isinstance(n, ast.Name)}
    return sorted(name for name in in_targets & assigned if used[name] == 0)


