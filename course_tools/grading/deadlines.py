"""The term's calendar: due dates and weights (``course.toml``) and extensions (``extensions.csv``).

``course.toml`` lives at the course root, under version control::

    [course]
    timezone = "Europe/Zurich"        # due dates without an offset are read in it (default UTC)

    [assignments.vae]
    due = "2026-10-09 23:59"
    weight = 2                         # in the term's weighted total (default 1)

``extensions.csv`` is the TA's file, one row per granted extension::

    student,assignment,due,days,reason
    alice,vae,2026-10-12 23:59,,illness
    bob,vae,,2,family

(``due``: a new due date; ``days``: extra days after the assignment's own; never both.)

A due date may also come from ``course release A --due ...``, which writes it into nbgrader's
gradebook (the assignment's ``duedate``); ``course.toml`` wins where it names one, and
:func:`sync_gradebook` writes the file's dates and the extensions into the gradebook (the
assignment's ``duedate``, each submission's ``extension``) so that nbgrader and the Formgrader
see what the term's exports use. Times are naive UTC, as nbgrader keeps them.
"""

from __future__ import annotations

import csv
import tomllib
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from course_tools.layout import Course

EXTENSION_COLUMNS = ["student", "assignment", "due", "days", "reason"]


class CalendarError(ValueError):
    """``course.toml`` or ``extensions.csv`` says something that cannot be used (the message says where)."""


@dataclass(frozen=True)
class Term:
    """Every assignment's due date and weight, and every extension, as the course files say."""

    due: dict[str, datetime | None]  # assignment -> due date (naive UTC), in the order of the term
    weights: dict[str, float]
    extensions: dict[tuple[str, str], datetime] = field(default_factory=dict)  # (student, assignment) -> due
    tz: str = "UTC"

    def order(self) -> list[str]:
        """Assignments in term order: by due date, then name (nbgrader's order); undated ones last."""
        return sorted(self.due, key=lambda a: (self.due[a] is None, self.due[a] or datetime.min, a))

    def due_for(self, student: str, assignment: str) -> datetime | None:
        """The due date that applies to this student: an extension's, else the assignment's."""
        return self.extensions.get((student, assignment), self.due.get(assignment))

    def weight(self, assignment: str) -> float:
        return self.weights.get(assignment, 1.0)


def parse_time(text: str, tz: str = "UTC") -> datetime:
    """A date as people write it (``2026-10-09 23:59``, ``2026-10-09``, ISO 8601 with an offset) as naive
    UTC; without an offset it is read in ``tz``; a date alone means the end of that day."""
    text = str(text).strip()
    try:
        when = datetime.fromisoformat(text.replace(" UTC", "+00:00").replace("Z", "+00:00"))
    except ValueError:
        raise CalendarError(f"{text!r} is not a date (write 2026-10-09 23:59, or ISO 8601 with an offset)") from None
    if len(text) == 10:  # a date alone: due at the end of that day
        when = when.replace(hour=23, minute=59, second=59)
    if when.tzinfo is None:
        try:
            when = when.replace(tzinfo=ZoneInfo(tz))
        except ZoneInfoNotFoundError:
            raise CalendarError(f"unknown time zone {tz!r} in [course] timezone") from None
    return when.astimezone(timezone.utc).replace(tzinfo=None)


def listed_time(value: object, tz: str) -> datetime:
    """A ``due`` of ``course.toml`` as naive UTC: a string, or TOML's own date-time or date, all read
    alike (without an offset, in the course's time zone)."""
    return parse_time(value.isoformat() if isinstance(value, datetime) else str(value), tz)


def read_course_file(course: Course) -> tuple[dict[str, dict], str]:
    """The ``[assignments.*]`` tables of ``course.toml`` and its time zone (no file: none, UTC)."""
    path = course.course_file()
    if not path.is_file():
        return {}, "UTC"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise CalendarError(f"{path.name}: {exc}") from None
    tz = str(data.get("course", {}).get("timezone", "UTC"))
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise CalendarError(f"{path.name}: unknown time zone {tz!r} in [course] timezone") from None
    tables = data.get("assignments", {})
    for name, table in tables.items():
        unknown = set(table) - {"due", "weight"}
        if unknown:
            raise CalendarError(f"{path.name}: [assignments.{name}] has {', '.join(sorted(unknown))} "
                                "(only due and weight are read)")
    return tables, tz


def load(course: Course) -> Term:
    """The term as the course file, the gradebook's due dates and the extensions file say."""
    tables, tz = read_course_file(course)
    due: dict[str, datetime | None] = dict(_gradebook_due_dates(course))
    weights: dict[str, float] = {}
    for name, table in tables.items():
        if "due" in table:
            due[name] = listed_time(table["due"], tz)
        else:
            due.setdefault(name, None)
        try:
            weights[name] = float(table.get("weight", 1.0))
        except (TypeError, ValueError):
            raise CalendarError(f"{course.course_file().name}: [assignments.{name}] weight is not a number") from None
    return Term(due, weights, read_extensions(course, due, tz), tz)


def _gradebook_due_dates(course: Course) -> dict[str, datetime | None]:
    from nbgrader.api import Gradebook

    url = course.gradebook_url()
    if url == f"sqlite:///{course.root / 'gradebook.db'}" and not (course.root / "gradebook.db").is_file():
        return {}  # no gradebook yet: do not make an empty one just to read it
    with Gradebook(url) as gb:
        return {a.name: a.duedate for a in gb.assignments}


def read_extensions(course: Course, due: dict[str, datetime | None], tz: str) -> dict[tuple[str, str], datetime]:
    """Each (student, assignment)'s extended due date from ``extensions.csv``; every bad row is named."""
    path = course.extensions_file()
    if not path.is_file():
        return {}
    out: dict[tuple[str, str], datetime] = {}
    problems = []
    with open(path, newline="", encoding="utf-8") as f:
        for line, row in enumerate(csv.DictReader(f), start=2):
            try:
                key, when = _extension(row, due, tz)
            except CalendarError as exc:
                problems.append(f"{path.name} line {line}: {exc}")
                continue
            out[key] = when
    if problems:
        raise CalendarError("; ".join(problems))
    return out


def _extension(row: dict, due: dict[str, datetime | None], tz: str) -> tuple[tuple[str, str], datetime]:
    student, assignment = (row.get("student") or "").strip(), (row.get("assignment") or "").strip()
    new_due, days = (row.get("due") or "").strip(), (row.get("days") or "").strip()
    if not student or not assignment:
        raise CalendarError("a student and an assignment are needed")
    if assignment not in due:
        raise CalendarError(f"no assignment {assignment!r} in course.toml or the gradebook")
    if bool(new_due) == bool(days):
        raise CalendarError("give either a new due date or a number of extra days")
    if new_due:
        return (student, assignment), parse_time(new_due, tz)
    if due[assignment] is None:
        raise CalendarError(f"{assignment} has no due date to add days to")
    try:
        return (student, assignment), _add_local(due[assignment], timedelta(days=float(days)), tz)
    except (ValueError, OverflowError):
        raise CalendarError(f"days {days!r} is not a number of days") from None


def _add_local(when: datetime, extra: timedelta, tz: str) -> datetime:
    """``when`` (naive UTC) plus ``extra`` on the course's clock: two extra days after 23:59 are 23:59
    two days later, even across a change to or from summer time."""
    zone = ZoneInfo(tz)
    local = when.replace(tzinfo=timezone.utc).astimezone(zone).replace(tzinfo=None) + extra
    return local.replace(tzinfo=zone).astimezone(timezone.utc).replace(tzinfo=None)


def set_due(course: Course, assignment: str, text: str) -> datetime:
    """``course release A --due``: the assignment's due date in the gradebook. Refused when
    ``course.toml`` names another one (the file under version control is the one to edit)."""
    from nbgrader.api import Gradebook

    tables, tz = read_course_file(course)
    when = parse_time(text, tz)
    listed = tables.get(assignment, {}).get("due")
    if listed is not None and listed_time(listed, tz) != when:
        raise CalendarError(f"{course.course_file().name} gives {assignment} the due date {listed}: "
                            "change it there (the file wins)")
    with Gradebook(course.gradebook_url()) as gb:
        gb.update_or_create_assignment(assignment, duedate=when)
    return when


def sync_gradebook(course: Course, term: Term) -> None:
    """Write the term's due dates and extensions into the gradebook, where nbgrader reads them
    (``Assignment.duedate``, ``SubmittedAssignment.extension``); an extension no longer in the file
    is removed. Assignments not in the gradebook yet get theirs when released."""
    from nbgrader.api import Gradebook

    with Gradebook(course.gradebook_url()) as gb:
        for assignment in gb.assignments:
            due = term.due.get(assignment.name)
            if due is not None and assignment.duedate != due:
                assignment.duedate = due
            for sub in assignment.submissions:
                extended = term.extensions.get((sub.student_id, assignment.name))
                sub.extension = extended - due if extended is not None and due is not None else None
        gb.db.commit()
