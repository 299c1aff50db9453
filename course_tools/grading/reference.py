"""The reference values: what the solution's hidden tests publish when it runs in a clean kernel.

Submissions are judged against them (:mod:`course_tools.grading.judge`).
They are made by grading the source notebook itself, in the same sandbox
and settings as submissions, where every expectation's target is computed
and checked: a solution that fails its own hidden test stops the run with
that test's name. ``course release`` makes them; ``course autograde`` makes
them again whenever the source notebook, the notebooks' package or the
numerical libraries have changed since (the digest records all three).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import sys
from pathlib import Path

from course_tools.grading.job import Kit, Outcome, Settings, Submission, grade
from course_tools.grading.status import NOT_GRADED
from course_tools.layout import Course

REFERENCE_STUDENT = "reference-solution"


class GradingSetupError(RuntimeError):
    """The run cannot start (missing release, no sandbox, a solution that fails): nothing was graded."""


def digest(course: Course, assignment: str) -> str:
    """What the reference values depend on: the source notebook, ``course_utils`` and the library versions."""
    import course_utils

    h = hashlib.sha256(course.source_notebook(assignment).read_bytes())
    package = Path(course_utils.__file__).parent
    for path in sorted(package.rglob("*.py")):
        h.update(str(path.relative_to(package)).encode() + path.read_bytes())
    for dist in ("torch", "numpy", "transformers"):
        try:
            h.update(f"{dist}=={importlib.metadata.version(dist)}".encode())
        except importlib.metadata.PackageNotFoundError:
            pass
    h.update(sys.version.encode())
    return h.hexdigest()


def load(course: Course, assignment: str) -> dict[str, dict] | None:
    """The stored reference values, if they were made from what is there now."""
    path = course.reference_file(assignment)
    if not path.is_file():
        return None
    stored = json.loads(path.read_text())
    return stored["notebooks"] if stored.get("digest") == digest(course, assignment) else None


def run_solution(course: Course, kit: Kit, settings: Settings) -> Outcome:
    """Grade the source notebook in reference mode: what its expectations publish, targets checked."""
    files = {f"{name}.ipynb": (course.source(kit.assignment) / f"{name}.ipynb").read_bytes()
             for name in kit.notebooks}
    blank = Kit(kit.assignment, kit.notebooks, kit.gradebook, kit.files, reference=None)
    return grade(blank, Submission(REFERENCE_STUDENT, files), settings)


def unconverted(course: Course, assignment: str) -> list[str]:
    """Test cells of the source notebook that make no ``checks.expect`` (plain nbgrader ``assert``s):
    the grader has nothing to judge them by, so no submission of the assignment can be graded."""
    import nbformat

    from course_tools import assignments, testcells

    path = course.source_notebook(assignment)
    if not path.is_file():
        return []
    found = []
    for index, cell in enumerate(nbformat.read(path, as_version=4).cells):
        if assignments.is_test_cell(cell):
            try:
                if testcells.expectation_count(cell.source) == 0:
                    found.append(assignments.grade_id(cell, index))
            except testcells.UnjudgeableCell:
                continue  # not Python at all: the solution's run names it
    return found


def convert_advice(assignment: str, cells: list[str]) -> str:
    """What to do about test cells without expectations (the one wording, for autograde and export)."""
    return (f"the test cells {', '.join(cells)} of {assignment} make no checks.expect (plain nbgrader asserts), "
            f"so the grader has nothing to judge them by: run `course convert {assignment}` "
            "(or rewrite the test cell with checks.expect)")


def check_solution_run(kit: Kit, outcome: Outcome) -> dict[str, dict]:
    """The reference values of a solution run; raise if the solution fails its own hidden tests."""
    problems = [f"{gid}: {error}" for values in outcome.reference.values()
                for gid, error in values.get("errors", {}).items()]
    silent = [gid for values in outcome.reference.values() for gid, published in values["cells"].items()
              if not published]
    if outcome.status == NOT_GRADED or problems or silent or not outcome.reference:
        detail = "; ".join(problems) or (f"its test cells {', '.join(silent)} make no expectation to judge"
                                         if silent else outcome.reason or "it published nothing")
        raise GradingSetupError(
            f"the solution of {kit.assignment} does not pass its own hidden tests, so submissions cannot be "
            f"judged against it: {detail}. Fix notebooks/{kit.assignment} (`course selfcheck "
            f"{kit.assignment}` shows the details).")
    return outcome.reference


def make(course: Course, kit: Kit, settings: Settings) -> dict[str, dict]:
    """Run the solution, check it, and store what its expectations publish; refuse at once an
    assignment whose test cells make no expectation (running it would only find that out)."""
    cells = unconverted(course, kit.assignment)
    if cells:
        raise GradingSetupError(convert_advice(kit.assignment, cells))
    values = check_solution_run(kit, run_solution(course, kit, settings))
    path = course.reference_file(kit.assignment)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"digest": digest(course, kit.assignment), "notebooks": values}))
    tmp.replace(path)
    return values


def ensure(course: Course, kit: Kit, settings: Settings) -> dict[str, dict]:
    """The reference values of ``kit``'s assignment, made now if missing or out of date."""
    return load(course, kit.assignment) or make(course, kit, settings)
