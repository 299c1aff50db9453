"""A throw-away nbgrader course: one assignment released into a temporary folder.

``course selfcheck`` grades the solution, the blank release and every mutant
in one, and ``course autograde`` makes each assignment's gradebook entry in
one, so nothing touches the real course's gradebook, release or submissions.
Benchmarks and tests fill one with copies of a solution to grade. It uses the
course's own ``nbgrader_config.py``, with only the folders moved.
"""

from __future__ import annotations

import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import nbformat

from course_tools.config import scratch_config
from course_tools.layout import Course

_IGNORE = shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__", "*.results.json")


@dataclass
class CellScore:
    score: float
    max_score: float


class GradingFailed(RuntimeError):
    """nbgrader could not grade a notebook at all (not the same as a zero)."""


@dataclass
class Graded:
    """What :meth:`ScratchCourse.grade` found: the solution's reference run and each variant's outcome."""

    solution_run: Any = None  # the reference run's Outcome (its autograded notebook shows any crash)
    outcomes: dict[str, Any] = field(default_factory=dict)  # student -> Outcome
    setup_error: str = ""

    def scores(self, student: str) -> dict[str, CellScore]:
        """Each graded cell's score of one variant (raises GradingFailed if it could not be graded)."""
        outcome = self.outcomes[student]
        if not outcome.scores:
            raise GradingFailed(f"{student} could not be graded: {outcome.reason}")
        return {gid: CellScore(score, top) for gid, (score, top) in outcome.scores.items()}


class ScratchCourse:
    """One assignment copied from a course into a temporary course folder of its own."""

    def __init__(self, assignment: str, root: Path, source: Course | None = None) -> None:
        source = source or Course.current()
        self.assignment = assignment
        self.root = root
        self.course = Course(root, scratch_config(root, source.root))
        shutil.copytree(source.source(assignment), self.course.source(assignment), ignore=_IGNORE)
        shutil.copy(source.root / "nbgrader_config.py", root / "nbgrader_config.py")
        from nbgrader.apps import NbGraderAPI
        from nbgrader.coursedir import CourseDirectory

        self.config = self.course.nbgrader_config
        self.api = NbGraderAPI(CourseDirectory(config=self.config), config=self.config)

    def release(self) -> Path:
        """Generate the student version; returns the released notebook's path."""
        result = self.api.generate_assignment(self.assignment, force=True, create=True)
        if not result["success"]:
            raise GradingFailed(f"generate_assignment failed:\n{result.get('log')}\n{result.get('error')}")
        return self.course.release(self.assignment) / f"{self.assignment}.ipynb"

    def submit(self, student: str, notebook: nbformat.NotebookNode, timestamp: datetime | None = None) -> Path:
        """Place ``notebook`` as ``student``'s submission, as ``nbgrader collect`` would."""
        folder = self.course.submitted(student, self.assignment)
        folder.mkdir(parents=True, exist_ok=True)
        nbformat.write(notebook, folder / f"{self.assignment}.ipynb")
        stamp = timestamp or datetime.now(timezone.utc)
        (folder / "timestamp.txt").write_text(stamp.strftime("%Y-%m-%d %H:%M:%S.%f UTC"))
        return folder

    def grade(self, variants: dict[str, nbformat.NotebookNode], fast: bool = True,
              workers: int | None = None, judge_only: dict[str, tuple[str, ...]] | None = None) -> Graded:
        """Grade notebooks as the real grader does (sandbox, judge, reference), the variants in parallel.

        The source notebook runs first, in a clean kernel, to make the reference values
        (a solution that fails its own hidden tests is reported in ``Graded.setup_error``);
        then every variant, ``{student: notebook}``, is judged against them on one pool of
        local workers. ``judge_only`` names, for some variants, the only test cells that matter:
        those variants stop after the last of them. Nothing is written to a gradebook.
        """
        import os

        from course_tools.grading import reference
        from course_tools.grading.coordinator import make_kit, run_pool
        from course_tools.grading.job import Settings, Submission

        settings = Settings(fast=fast)
        kit = make_kit(self.course, self.assignment)
        solution_run = reference.run_solution(self.course, kit, settings)
        graded = Graded(solution_run=solution_run)
        try:
            kit.reference = reference.check_solution_run(kit, solution_run)
        except reference.GradingSetupError as exc:
            graded.setup_error = str(exc)
            return graded
        subs = [Submission(student, {f"{self.assignment}.ipynb": nbformat.writes(nb).encode()},
                           judge_only=tuple((judge_only or {}).get(student, ())))
                for student, nb in variants.items()]
        for outcome in run_pool(kit, subs, settings, workers or os.cpu_count() or 1, None, progress=False):
            graded.outcomes[outcome.student] = outcome
        return graded

    def autograded_notebook(self, student: str) -> Path:
        return self.course.autograded(student, self.assignment) / f"{self.assignment}.ipynb"


@contextmanager
def scratch_course(assignment: str, keep: bool = False, source: Course | None = None) -> Iterator[ScratchCourse]:
    """A :class:`ScratchCourse` in a temporary folder, removed afterwards unless ``keep``."""
    root = Path(tempfile.mkdtemp(prefix=f"course-{assignment}-"))
    try:
        yield ScratchCourse(assignment, root, source)
    finally:
        if keep:
            print(f"scratch course kept at {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


def solution_course(assignment: str, students: int, source: Course | None = None) -> Path:
    """A throw-away course folder holding ``assignment``, released, with ``students`` copies of
    its solution submitted, ready for autograding. Point the ``course`` command at it with
    ``$COURSE_ROOT``; the caller removes the folder."""
    root = Path(tempfile.mkdtemp(prefix=f"course-{assignment}-"))
    scratch = ScratchCourse(assignment, root, source)
    scratch.release()
    solution = nbformat.read(scratch.course.source_notebook(assignment), as_version=4)
    for i in range(students):
        scratch.submit(f"student{i:03d}", solution, datetime(2026, 11, 20, 12, tzinfo=timezone.utc))
    return root
