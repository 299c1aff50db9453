"""``course export``: grades out of the course, with an honest status on every row.

nbgrader's own export writes 0.0 for a submission it failed to grade, the
same as a real zero. Here each (student, assignment) row carries one of the
statuses of :mod:`course_tools.grading.status`, and a submission that was not
graded has no score at all, and a missing one is ``missing``, not 0.

Each row also says when it was handed in against the due date that applies
(:mod:`course_tools.grading.deadlines`: the assignment's, or the student's
extension), how late, the grace days it spent and the penalty of the late
policy (:mod:`course_tools.grading.late`): ``score_before_penalty`` is what
the tests and the TAs gave, ``score`` what counts.
"""

from __future__ import annotations

import csv
import sys
from typing import TextIO

from course_tools.grading import late, status
from course_tools.grading.status import FLAGGED, GRADED, NEEDS_MANUAL, NO_SUBMISSION, NOT_GRADED
from course_tools.layout import Course

COLUMNS = ["student", "assignment", "status", "score", "max_score", "reason", "submitted_at", "due", "late",
           "late_days", "grace_days", "penalty", "score_before_penalty"]


def rows(course: Course, assignments: list[str] | None = None) -> list[dict]:
    """One row per student and assignment in the gradebook."""
    from nbgrader.api import Gradebook, MissingEntry

    out = []
    lateness = late.term_lateness(course)
    with Gradebook(course.gradebook_url()) as gb:
        names = assignments or [a.name for a in gb.assignments]
        for assignment in names:
            max_score = gb.find_assignment(assignment).max_score
            submitted = _submitted(course, assignment)
            students = {s.id for s in gb.students} | status.students_with_records(course, assignment) | submitted
            waiting = _why_not_autograded(course, assignment) if submitted else ""
            for student in sorted(students):
                try:
                    sub = gb.find_submission(assignment, student)
                except MissingEntry:
                    sub = None
                row = _row(course, assignment, student, sub, max_score, waiting if student in submitted else "")
                out.append(_with_lateness(row, lateness.get((student, assignment))))
    return out


def _with_lateness(row: dict, when: late.Late | None) -> dict:
    """The row with its lateness and penalty; ``score`` becomes the score after the penalty."""
    row = {**row, "submitted_at": "", "due": "", "late": "", "late_days": "", "grace_days": "", "penalty": "",
           "score_before_penalty": row["score"]}
    if when is None:
        return row
    row.update(submitted_at=_time(when.submitted_at), due=_time(when.due), late=when.text(), late_days=when.days,
               grace_days=when.grace_used)
    if row["score"] != "":
        penalty = late.penalty_points(when, row["score"])
        row.update(penalty=penalty, score=round(float(row["score"]) - penalty, 6))
    return row


def _time(when: object) -> str:
    return f"{when:%Y-%m-%d %H:%M} UTC" if when is not None else ""


def _why_not_autograded(course: Course, assignment: str) -> str:
    """The reason a collected submission has no grade yet: test cells the grader cannot judge
    (``course autograde`` refuses the assignment until they are converted), or no run yet."""
    from course_tools.grading import reference

    cells = reference.unconverted(course, assignment)
    if cells:
        return "collected but not autograded: " + reference.convert_advice(assignment, cells)
    return f"collected but not autograded yet: run `course autograde {assignment}`"


def _row(course: Course, assignment: str, student: str, sub, max_score: float,  # noqa: ANN001
         waiting: str) -> dict:
    """``waiting``: why a collected submission is not graded yet ("" if it was not collected)."""
    record = status.read(course, assignment, student)
    row = {"student": student, "assignment": assignment, "max_score": max_score, "score": "", "reason": ""}
    if record and record["status"] == NOT_GRADED:
        return {**row, "status": NOT_GRADED, "reason": record["reason"]}
    if sub is None:
        if waiting:
            return {**row, "status": NOT_GRADED, "reason": waiting}
        return {**row, "status": NO_SUBMISSION}  # missing: no score, never a silent 0
    row["score"] = sub.score
    reason = (record or {}).get("reason", "")
    if record and record["status"] == FLAGGED:
        return {**row, "status": FLAGGED, "reason": reason}
    if sub.needs_manual_grade:
        return {**row, "status": NEEDS_MANUAL, "reason": reason}
    return {**row, "status": GRADED, "reason": reason}


def _submitted(course: Course, assignment: str) -> set[str]:
    root = course.submissions_root()
    return {p.name for p in root.iterdir() if course.submitted(p.name, assignment).is_dir()} if root.is_dir() else set()


def write_csv(table: list[dict], out: TextIO | None = None) -> None:
    """The table as CSV on ``out`` (the standard output of the moment when None)."""
    writer = csv.DictWriter(out or sys.stdout, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(table)
