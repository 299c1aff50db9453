"""The status of a graded submission, defined once, and the status records that keep it.

Every (student, assignment) ends in one of these:

- ``graded``: the score is final;
- ``needs manual grading``: graded, but written answers are still to mark;
- ``flagged``: graded, but something needs a person's look before release
  (the reason says what); its cells are marked for review in formgrader;
- ``not graded``: it could not be graded (the reason says why); no score,
  never a zero;
- ``missing``: nothing was collected; no score in any export (an LMS keeps what it has), and
  the term's weighted total counts it as 0 and names it (``course term``).

``course autograde`` writes one record per submission,
``grading/<assignment>/<student>.json``, atomically; export and feedback read it.
A reason is at most :data:`MAX_REASON` characters: whatever a submission
names in it (a message it published, a file name) is quoted cut short and
escaped, so no record, export row or note grows with what a submission sends.
"""

from __future__ import annotations

import json

from course_tools.layout import Course

MAX_REASON = 500  # characters of a reason: what a TA reads in one line of an export
MAX_QUOTE = 60  # characters of a submission's own text quoted in a reason

GRADED = "graded"
NEEDS_MANUAL = "needs manual grading"
FLAGGED = "flagged"
NOT_GRADED = "not graded"
MISSING = "missing"
NO_SUBMISSION = MISSING  # the name the grading modules use for it
STATUSES = (GRADED, NEEDS_MANUAL, FLAGGED, NOT_GRADED, MISSING)


def quote(text: str, limit: int = MAX_QUOTE) -> str:
    """A submission's own text (a label it published) for a reason: cut to ``limit`` characters and
    escaped (no line breaks, control characters or markup survive), in quotes."""
    cut = text[:limit]
    shown = cut.encode("unicode_escape").decode("ascii").replace('"', '\\"').replace("<", "\\x3c")
    return f'"{shown[:2 * limit]}' + ('..."' if len(text) > limit or len(shown) > 2 * limit else '"')


def clip(reason: str) -> str:
    """A reason cut to :data:`MAX_REASON` characters, saying so when it was cut."""
    reason = str(reason)
    return reason if len(reason) <= MAX_REASON else reason[: MAX_REASON - 14] + " ... (cut)"


def read(course: Course, assignment: str, student: str) -> dict | None:
    """The status record of one submission, or None if it was never autograded."""
    path = course.status_file(assignment, student)
    return json.loads(path.read_text()) if path.is_file() else None


def write(course: Course, assignment: str, student: str, record: dict) -> None:
    """Write a status record whole (an interrupted run never leaves half of one)."""
    record = {**record, "reason": clip(record.get("reason", ""))}
    folder = course.status_dir(assignment)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{student}.json.tmp"
    tmp.write_text(json.dumps(record, indent=1))
    tmp.replace(course.status_file(assignment, student))


def students_with_records(course: Course, assignment: str) -> set[str]:
    folder = course.status_dir(assignment)
    return {p.stem for p in folder.glob("*.json")} if folder.is_dir() else set()
