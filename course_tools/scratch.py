"""A throw-away nbgrader course: one assignment released into a temporary folder.

``course selfcheck`` grades the solution, the blank release and every mutant
in one (through :mod:`course_tools.grading.variants`), and ``course autograde``
makes each assignment's gradebook entry in one, so nothing touches the real
course's gradebook, release or submissions. Benchmarks and tests fill one with
copies of a solution to grade. It uses the course's own ``nbgrader_config.py``,
with only the folders moved. It grades nothing itself: grading depends on it,
never the other way round.
"""

from __future__ import annotations

import shutil
import tempfile
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import nbformat

from course_tools.config import scratch_config
from course_tools.layout import Course

_IGNORE = shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__", "*.results.json")


class GradingFailed(RuntimeError):
    """nbgrader could not release or grade a notebook at all (not the same as a zero)."""


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
