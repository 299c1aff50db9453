"""Grades out of the course, with an honest status on every row.

nbgrader's own export writes 0.0 for a submission it failed to grade, the
same as a real zero. Here each (student, assignment) row carries a status:

- ``graded``: the score is final, or final but for written answers still to
  mark (``needs manual grading``);
- ``flagged``: graded, but the submission replaced what the tests check;
  a person decides (the cells are marked for review in formgrader);
- ``not graded``: it could not be graded (the reason says why); no score,
  never a zero;
- ``no submission``: nothing was collected; a real zero.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import TextIO

from course_utils.autograde import db_url, read_status
from course_utils.gradejob import FLAGGED, GRADED, NOT_GRADED
from course_utils.paths import repo_root

COLUMNS = ["student", "assignment", "status", "score", "max_score", "reason"]


def rows(config, assignments: list[str] | None = None) -> list[dict]:  # noqa: ANN001 (a traitlets Config)
    """One row per student and assignment in the gradebook."""
    from nbgrader.api import Gradebook, MissingEntry

    out = []
    with Gradebook(db_url(config)) as gb:
        names = assignments or [a.name for a in gb.assignments]
        for assignment in names:
            max_score = gb.find_assignment(assignment).max_score
            students = {s.id for s in gb.students} | _status_students(assignment) | _submitted(assignment)
            for student in sorted(students):
                try:
                    sub = gb.find_submission(assignment, student)
                except MissingEntry:
                    sub = None
                out.append(_row(assignment, student, sub, max_score))
    return out


def _row(assignment: str, student: str, sub, max_score: float) -> dict:  # noqa: ANN001
    status = read_status(assignment, student)
    row = {"student": student, "assignment": assignment, "max_score": max_score, "score": "", "reason": ""}
    if status and status["status"] == NOT_GRADED:
        return {**row, "status": NOT_GRADED, "reason": status["reason"]}
    if sub is None:
        if student in _submitted(assignment):
            return {**row, "status": NOT_GRADED, "reason": f"collected but not autograded yet: "
                                                             f"run `course autograde {assignment}`"}
        return {**row, "status": "no submission", "score": 0.0}
    row["score"] = sub.score
    if status and status["status"] == FLAGGED:
        return {**row, "status": FLAGGED, "reason": status["reason"]}
    if sub.needs_manual_grade:
        return {**row, "status": "needs manual grading", "reason": (status or {}).get("reason", "")}
    return {**row, "status": GRADED, "reason": (status or {}).get("reason", "")}


def _status_students(assignment: str) -> set[str]:
    folder = repo_root() / "grading" / assignment
    return {p.stem for p in folder.glob("*.json")} if folder.is_dir() else set()


def _submitted(assignment: str) -> set[str]:
    root = repo_root() / "submitted"
    return {p.parent.name for p in root.glob(f"*/{assignment}")} if root.is_dir() else set()


def write_csv(table: list[dict], out: TextIO = sys.stdout) -> None:
    writer = csv.DictWriter(out, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(table)


def feedback(assignment: str, config) -> tuple[int, int]:  # noqa: ANN001
    """nbgrader's feedback for every graded submission; the not-graded ones keep their note.

    Returns (feedback files made, not-graded notes in place).
    """
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    api = NbGraderAPI(CourseDirectory(config=config), config=config)
    made = notes = 0
    for row in rows(config, [assignment]):
        student = row["student"]
        if row["status"] == NOT_GRADED:
            notes += (repo_root() / "feedback" / student / assignment / "NOT-GRADED.txt").is_file()
            continue
        if row["status"] == "no submission":
            continue
        result = api.generate_feedback(assignment, student, force=True)
        if not result["success"]:
            raise RuntimeError(f"feedback for {student} failed: {result.get('error') or result.get('log')}")
        made += 1
    return made, notes


def feedback_path(student: str, assignment: str) -> Path:
    return repo_root() / "feedback" / student / assignment
