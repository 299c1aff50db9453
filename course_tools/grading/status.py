"""The status of a graded submission, defined once, and the status records that keep it.

Every (student, assignment) ends in one of these:

- ``graded``: the score is final;
- ``needs manual grading``: graded, but written answers are still to mark;
- ``flagged``: graded, but something needs a person's look before release
  (the reason says what); its cells are marked for review in formgrader;
- ``not graded``: it could not be graded (the reason says why); no score,
  never a zero;
- ``no submission``: nothing was collected; a real zero.

``course autograde`` writes one record per submission,
``grading/<assignment>/<student>.json``, atomically; export and feedback read it.
"""

from __future__ import annotations

import json

from course_tools.layout import Course

GRADED = "graded"
NEEDS_MANUAL = "needs manual grading"
FLAGGED = "flagged"
NOT_GRADED = "not graded"
NO_SUBMISSION = "no submission"
STATUSES = (GRADED, NEEDS_MANUAL, FLAGGED, NOT_GRADED, NO_SUBMISSION)


def read(course: Course, assignment: str, student: str) -> dict | None:
    """The status record of one submission, or None if it was never autograded."""
    path = course.status_file(assignment, student)
    return json.loads(path.read_text()) if path.is_file() else None


def write(course: Course, assignment: str, student: str, record: dict) -> None:
    """Write a status record whole (an interrupted run never leaves half of one)."""
    folder = course.status_dir(assignment)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{student}.json.tmp"
    tmp.write_text(json.dumps(record, indent=1))
    tmp.replace(course.status_file(assignment, student))


def students_with_records(course: Course, assignment: str) -> set[str]:
    folder = course.status_dir(assignment)
    return {p.stem for p in folder.glob("*.json")} if folder.is_dir() else set()
