"""A throw-away nbgrader course: release one assignment, grade notebooks in it.

``course selfcheck`` grades the solution, the blank release and every mutant
here, so nothing touches the real course's gradebook, release or submissions.
It uses the course's own ``nbgrader_config.py``, with only the folders moved.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import nbformat

from course_utils.nbgrader_ext import scratch_config
from course_utils.paths import FAST_ENV, repo_root


@dataclass
class CellScore:
    score: float
    max_score: float


class GradingFailed(RuntimeError):
    """nbgrader could not grade a notebook at all (not the same as a zero)."""


class ScratchCourse:
    """One assignment released into a temporary course folder."""

    def __init__(self, assignment: str, root: Path) -> None:
        self.assignment = assignment
        self.root = root
        shutil.copytree(repo_root() / "notebooks" / assignment, root / "notebooks" / assignment,
                        ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
        config = scratch_config(root)
        from nbgrader.apps import NbGraderAPI
        from nbgrader.coursedir import CourseDirectory

        self.config = config
        self.api = NbGraderAPI(CourseDirectory(config=config), config=config)

    def release(self) -> Path:
        """Generate the student version; returns the released notebook's path."""
        result = self.api.generate_assignment(self.assignment, force=True, create=True)
        if not result["success"]:
            raise GradingFailed(f"generate_assignment failed:\n{result.get('log')}\n{result.get('error')}")
        return self.root / "release" / self.assignment / f"{self.assignment}.ipynb"

    def grade(self, student: str, notebook: nbformat.NotebookNode, fast: bool = True) -> dict[str, CellScore]:
        """Submit ``notebook`` as ``student``, autograde it, and return the score of every graded cell."""
        folder = self.root / "submitted" / student / self.assignment
        folder.mkdir(parents=True, exist_ok=True)
        nbformat.write(notebook, folder / f"{self.assignment}.ipynb")
        (folder / "timestamp.txt").write_text(datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f UTC"))
        with _env(FAST_ENV, "1" if fast else "0"):
            result = self.api.autograde(self.assignment, student, force=True, create=True)
        if not result["success"]:
            raise GradingFailed(f"autograde of {student} failed:\n{result.get('error') or result.get('log')}")
        from nbgrader.api import Gradebook

        with Gradebook(self.config.CourseDirectory.db_url) as gb:
            sub = gb.find_submission_notebook(self.assignment, self.assignment, student)
            return {g.name: CellScore(float(g.score or 0), float(g.max_score or 0)) for g in sub.grades}

    def autograded_notebook(self, student: str) -> Path:
        return self.root / "autograded" / student / self.assignment / f"{self.assignment}.ipynb"


@contextmanager
def scratch_course(assignment: str, keep: bool = False) -> Iterator[ScratchCourse]:
    """A :class:`ScratchCourse` in a temporary folder, removed afterwards unless ``keep``."""
    root = Path(tempfile.mkdtemp(prefix=f"course-{assignment}-"))
    try:
        yield ScratchCourse(assignment, root)
    finally:
        if keep:
            print(f"scratch course kept at {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


@contextmanager
def _env(name: str, value: str) -> Iterator[None]:
    """Set one environment variable for the kernels started inside the block."""
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


def solution_course(assignment: str, students: int, source: Path | None = None) -> Path:
    """A throw-away course folder (in a new temporary folder) holding ``assignment``,
    released, with ``students`` copies of its solution submitted, ready for autograding.

    Point the ``course`` command at it with ``$COURSE_ROOT``; the caller removes it.
    """
    source = source or repo_root()
    root = Path(tempfile.mkdtemp(prefix=f"course-{assignment}-"))
    shutil.copytree(source / "notebooks" / assignment, root / "notebooks" / assignment,
                    ignore=shutil.ignore_patterns("*.results.json", ".ipynb_checkpoints", "__pycache__"))
    shutil.copy(repo_root() / "nbgrader_config.py", root / "nbgrader_config.py")
    config = scratch_config(root)
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    result = NbGraderAPI(CourseDirectory(config=config), config=config).generate_assignment(assignment, force=True)
    if not result["success"]:
        raise GradingFailed(f"generate_assignment failed:\n{result.get('log')}\n{result.get('error')}")
    for i in range(students):
        folder = root / "submitted" / f"student{i:03d}" / assignment
        folder.mkdir(parents=True)
        shutil.copy(root / "notebooks" / assignment / f"{assignment}.ipynb", folder)
        (folder / "timestamp.txt").write_text("2026-11-20 12:00:00.000000 UTC")
    return root
