"""Late submissions: how late each one is, the grace days it spends, and its penalty.

The policy is set in ``nbgrader_config.py`` and applied through nbgrader's own interface: the
course's :class:`TermLatePolicy` is the ``AssignLatePenalties.plugin_class``, so every autograde
(``course autograde``, ``nbgrader autograde``, the Formgrader) records the penalty in the
gradebook as nbgrader's ``late_submission_penalty``, and ``nbgrader export`` sees it too::

    c.AssignLatePenalties.plugin_class = "course_tools.grading.late.TermLatePolicy"
    c.TermLatePolicy.grace_days = 3          # a term budget of whole days, spent in term order
    c.TermLatePolicy.penalty_per_day = 0.1   # share of the score lost per late day not covered by grace
    c.TermLatePolicy.max_penalty = 0.5       # the cap: a late submission keeps at least half its score

A submission is late by whole days, counted up (one second late is one day), from the due date
that applies to its student (an extension's, else the assignment's; :mod:`deadlines`), to the
time it was handed in (``timestamp.txt``, written by ``nbgrader collect`` from the exchange and
by ``course collect-zip`` from the LMS). Grace days are spent automatically, oldest assignment
first, whether or not that assignment is graded yet, so the result never depends on the order
of grading. nbgrader asks the plugin only when the gradebook says a submission is late by the
assignment's own due date; :func:`apply` sets every penalty again from the term's files (after
an extension, a re-grade or a changed manual score).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from nbgrader.plugins import LateSubmissionPlugin
from traitlets import Float, Integer

from course_tools.grading import deadlines
from course_tools.layout import Course

DAY = 86400.0


class TermLatePolicy(LateSubmissionPlugin):
    """Grace days from a term budget, then a penalty per late day up to a cap (``nbgrader_config.py``)."""

    grace_days = Integer(0, help="late days in the whole term that cost nothing, spent in term order").tag(config=True)
    penalty_per_day = Float(0.1, help="share of the score lost per late day beyond the grace days").tag(config=True)
    max_penalty = Float(0.5, help="the largest share of the score a late submission loses").tag(config=True)

    def late_submission_penalty(self, student_id: str, score: float, total_seconds_late: float) -> float | None:
        """Called by nbgrader's ``AssignLatePenalties`` (the parent, which knows the assignment)."""
        parent = self.parent
        course = Course(Path(self.config.CourseDirectory.get("root") or "."), self.config)
        late = term_lateness(course, self).get((student_id, parent.assignment_id))
        return penalty_points(late, score) if late is not None and late.seconds > 0 else None


@dataclass(frozen=True)
class Late:
    """One submission against its due date."""

    submitted_at: datetime | None
    due: datetime | None
    seconds: float = 0.0  # after the due date that applies (0: on time)
    grace_used: int = 0
    charged_days: int = 0  # late days not covered by grace
    fraction: float = 0.0  # share of the score taken

    @property
    def days(self) -> int:
        return math.ceil(self.seconds / DAY - 1e-9) if self.seconds > 0 else 0

    def text(self) -> str:
        """``on time`` or ``late 1 d 3 h 5 min``: what a TA and a student read."""
        if self.due is None:
            return "no due date"
        if self.seconds <= 0:
            return "on time"
        minutes = math.ceil(self.seconds / 60)
        d, rest = divmod(minutes, 1440)
        h, m = divmod(rest, 60)
        return "late " + " ".join(f"{n} {unit}" for n, unit in ((d, "d"), (h, "h"), (m, "min")) if n) or "late"


def policy(config: object) -> TermLatePolicy:
    """The configured policy (its defaults where ``nbgrader_config.py`` sets nothing)."""
    return TermLatePolicy(config=config)


def penalty_points(late: Late | None, score: float | None) -> float:
    """Points taken from ``score`` (never more than the score, never negative)."""
    if late is None or not score or late.fraction <= 0:
        return 0.0
    return round(min(float(score), float(score) * late.fraction), 6)


def compute(rules: TermLatePolicy, term: deadlines.Term,
            times: dict[tuple[str, str], datetime]) -> dict[tuple[str, str], Late]:
    """Every submission's lateness, grace days spent in term order per student."""
    out = {}
    for student in sorted({s for s, _ in times}):
        left = rules.grace_days
        for assignment in term.order():
            when = times.get((student, assignment))
            if when is None:
                continue
            due = term.due_for(student, assignment)
            seconds = max(0.0, (when - due).total_seconds()) if due is not None else 0.0
            late = Late(when, due, seconds)
            grace = min(late.days, left)
            left -= grace
            charged = late.days - grace
            fraction = min(rules.max_penalty, rules.penalty_per_day * charged) if charged else 0.0
            out[student, assignment] = Late(when, due, seconds, grace, charged, round(max(0.0, fraction), 6))
    return out


def submission_times(course: Course, assignments: list[str]) -> dict[tuple[str, str], datetime]:
    """When each submission was handed in: its ``timestamp.txt`` in ``submitted/``, else the gradebook's."""
    from nbgrader.api import Gradebook
    from nbgrader.utils import parse_utc

    times: dict[tuple[str, str], datetime] = {}
    with Gradebook(course.gradebook_url()) as gb:
        for assignment in gb.assignments:
            if assignment.name in assignments:
                times.update({(s.student_id, assignment.name): s.timestamp for s in assignment.submissions
                              if s.timestamp is not None})
    root = course.submissions_root()
    for student in sorted(p.name for p in root.iterdir()) if root.is_dir() else []:
        for assignment in assignments:
            stamp = course.submitted(student, assignment) / "timestamp.txt"
            if stamp.is_file() and not stamp.is_symlink():
                try:
                    with open(stamp, "rb") as f:  # the submission's file: read no more than a time needs
                        when = parse_utc(f.read(100).decode("utf-8", errors="replace").strip())
                except (OSError, ValueError, OverflowError):
                    continue  # an unreadable stamp: the gradebook's time, if any, stands
                times[student, assignment] = when if when.tzinfo is None else \
                    when.astimezone(timezone.utc).replace(tzinfo=None)
    return times


def term_lateness(course: Course, rules: TermLatePolicy | None = None,
                  term: deadlines.Term | None = None) -> dict[tuple[str, str], Late]:
    """The lateness of every submission of the term, from the course's files and gradebook."""
    term = term or deadlines.load(course)
    rules = rules or policy(course.nbgrader_config)
    return compute(rules, term, submission_times(course, list(term.due)))


def apply(course: Course, assignment: str, lateness: dict[tuple[str, str], Late] | None = None) -> int:
    """Set every submission's penalty of ``assignment`` in the gradebook from the term's files and the
    current scores (what AssignLatePenalties records, kept true after extensions and re-grades);
    returns how many changed."""
    from nbgrader.api import Gradebook, MissingEntry

    lateness = lateness if lateness is not None else term_lateness(course)
    changed = 0
    with Gradebook(course.gradebook_url()) as gb:
        try:
            subs = gb.find_assignment(assignment).submissions
        except MissingEntry:
            return 0
        for sub in subs:
            late = lateness.get((sub.student_id, assignment))
            for nb in sub.notebooks:
                new = penalty_points(late, nb.score) if late is not None and late.seconds > 0 else None
                if nb.late_submission_penalty != new:
                    nb.late_submission_penalty = new
                    changed += 1
        gb.db.commit()
    return changed
