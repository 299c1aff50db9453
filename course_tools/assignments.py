"""Reading assignments: where the source notebooks are, and what they grade.

An assignment is a folder ``notebooks/<name>/`` holding ``<name>.ipynb``, the
one source an instructor edits (solutions, hidden tests and mark schemes
inside, nbgrader metadata on the cells).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbgrader import utils

from course_tools import markers
from course_tools.layout import Course

GRADE_ID = re.compile(r"^[a-zA-Z0-9_-]+$")
AUTO_ID = re.compile(r"^cell-[0-9a-f]{8,}$")  # nbgrader's default ids say nothing
MARKERS = {kind: markers.MARKERS[kind] for kind in markers.NBGRADER_KINDS}  # what a release must not hold


@dataclass
class GradedCell:
    grade_id: str
    kind: str  # "autograded answer", "tests", "manual", "task", "read-only"
    points: float
    source: str


@dataclass
class Assignment:
    name: str
    path: Path
    cells: list[GradedCell] = field(default_factory=list)

    @property
    def tests(self) -> list[GradedCell]:
        return [c for c in self.cells if c.kind == "tests"]

    @property
    def manual(self) -> list[GradedCell]:
        return [c for c in self.cells if c.kind in ("manual", "task")]

    @property
    def auto_points(self) -> float:
        return sum(c.points for c in self.tests)

    @property
    def manual_points(self) -> float:
        return sum(c.points for c in self.manual)


class UnknownAssignment(LookupError):
    """No source notebook of that name; the message lists the assignments there are."""


def cell_kind(cell: nbformat.NotebookNode) -> str | None:
    """nbgrader's cell types, from nbgrader's own predicates on the cell's metadata."""
    if not cell.get("metadata", {}).get("nbgrader"):
        return None
    if utils.is_task(cell):
        return "task"
    if utils.is_grade(cell):
        return "manual" if utils.is_solution(cell) else "tests"
    if utils.is_solution(cell):
        return "autograded answer"
    if utils.is_locked(cell):
        return "read-only"
    return None


def is_test_cell(cell: nbformat.NotebookNode) -> bool:
    """An autograded test cell: code, graded, and not an answer (the one definition the kit uses)."""
    return cell.get("cell_type") == "code" and cell_kind(cell) == "tests"


def grade_id(cell: nbformat.NotebookNode, index: int) -> str:
    """The cell's grade id, or its position for a cell without one (for messages)."""
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") or f"cell {index + 1}"


def load(name: str, course: Course | None = None) -> Assignment:
    """Read ``notebooks/<name>/<name>.ipynb`` and list its nbgrader cells."""
    course = course or Course.current()
    path = course.source_notebook(name)
    if not path.is_file():
        known = ", ".join(available(course)) or "none"
        raise UnknownAssignment(f"No assignment {name!r}: {path} does not exist. Assignments: {known}.")
    nb = nbformat.read(path, as_version=4)
    assignment = Assignment(name, path)
    for cell in nb.cells:
        kind = cell_kind(cell)
        if kind:
            meta = cell.metadata.nbgrader
            assignment.cells.append(
                GradedCell(meta.get("grade_id", ""), kind, float(meta.get("points", 0) or 0), cell.source)
            )
    return assignment


def tested_answers(source: nbformat.NotebookNode) -> dict[str, set[str]]:
    """For each test cell, the answer cells it grades: those since the test cell before it
    (how a notebook lays a task out: its answer cells, then the test cell that checks them)."""
    tested: dict[str, set[str]] = {}
    since: set[str] = set()
    for index, cell in enumerate(source.cells):
        kind = cell_kind(cell)
        if kind == "autograded answer":
            since.add(grade_id(cell, index))
        elif is_test_cell(cell):
            tested[grade_id(cell, index)] = since
            since = set()
    return tested


def available(course: Course | None = None) -> list[str]:
    """Every assignment folder that holds its notebook, in name order."""
    root = (course or Course.current()).sources_root()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / f"{p.name}.ipynb").is_file())


def marked_regions(source: str, kind: str) -> list[str]:
    """The lines between every pair of nbgrader markers of ``kind`` (solutions, hidden tests, mark schemes)."""
    return [line for block in markers.blocks(source, kind) for line in block]


def metadata_problems(assignment: Assignment) -> list[str]:
    """Grade ids that are missing, malformed, meaningless or used twice, and
    anything nbgrader's own validator rejects."""
    from nbgrader.nbgraderformat import MetadataValidator, ValidationError

    problems: list[str] = []
    seen: set[str] = set()
    for cell in assignment.cells:
        gid = cell.grade_id
        if not gid or not GRADE_ID.match(gid):
            problems.append(f"grade_id {gid!r} must match {GRADE_ID.pattern}")
        elif AUTO_ID.match(gid):
            problems.append(f"grade_id {gid!r} is nbgrader's generated default: name what the cell grades")
        if gid in seen:
            problems.append(f"grade_id {gid!r} is used by more than one cell")
        seen.add(gid)
        if cell.kind in ("tests", "manual", "task") and cell.points <= 0:
            problems.append(f"{gid}: a graded cell needs points > 0")
    nb = nbformat.read(assignment.path, as_version=4)
    try:
        MetadataValidator().validate_nb(nb)
    except ValidationError as exc:
        problems.append(f"nbgrader metadata: {exc}")
    for cell in nb.cells:
        if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count")):
            problems.append("the source notebook is committed with outputs: clear them (course strip)")
            break
    return problems


def strip_outputs(paths: list[Path]) -> list[Path]:
    """Clear outputs and execution counts of these notebooks (sources are committed without them);
    the paths that changed."""
    changed = []
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        dirty = [c for c in nb.cells if c.cell_type == "code" and (c.outputs or c.execution_count)]
        for cell in dirty:
            cell.outputs, cell.execution_count = [], None
        if dirty:
            nbformat.write(nb, path)
            changed.append(path)
    return changed
