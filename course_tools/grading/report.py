"""``course report A`` and ``course report --term``: what students fail, for deciding what to teach again.

With hundreds of submissions a score column says little about *what* went wrong. This report
reads what grading already kept and runs no code:

- the status records (``grading/<A>/<student>.json``): each test cell's score, the grading
  time, and the values each run published for the hidden expectations;
- the reference values (``grading/<A>.reference.json``), against which those values are judged
  again here exactly as grading judged them (:func:`course_tools.grading.judge.judge`), to name
  the expectation each failed test failed first (the reference's label: the message students
  saw) and to find the wrong values students share (:func:`similarity.wrong_values`: identical
  means the same encoded value for the same expectation);
- the gradebook (nbgrader's API): written answers' manual scores, and through
  :func:`course_tools.grading.export.rows` each submission's status, score and lateness, so the
  counts here are those of ``course export``.

Scores are taken before late penalties: the report is about what students understood. Every
value here may come from a submission; :mod:`report_page` escapes and cuts what it shows.
"""

from __future__ import annotations

import csv
import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from course_tools import assignments
from course_tools.grading import similarity, status
from course_tools.grading.judge import judge
from course_tools.grading.status import FLAGGED, GRADED, NEEDS_MANUAL, NOT_GRADED, STATUSES
from course_tools.layout import Course
from course_utils.checks import Published, stored_list

JUDGED = (GRADED, FLAGGED, NEEDS_MANUAL)  # statuses of a record whose test scores stand
BINS = 20  # bars of the score histogram at most
NO_REFERENCE = "(no reference values for this test: run `course release` to make them)"
NO_VALUES = "(no stored values: graded before the records kept them; `course autograde --force` re-runs it)"
STALE = "(passes against the current reference values: run `course rejudge` to update its score)"


@dataclass
class CellRate:
    """How one graded cell fared: a test cell (full marks or none) or a written answer (marked by a person)."""

    grade_id: str
    kind: str  # "test" or "written answer"
    points: float
    passed: int = 0  # full marks
    failed: int = 0  # less than full marks
    waiting: int = 0  # written answers not marked yet
    given: float = 0.0  # points given, over the marked ones

    @property
    def marked(self) -> int:
        return self.passed + self.failed

    @property
    def rate(self) -> float | None:
        """Share of the marked ones with full marks (None when none is marked)."""
        return self.passed / self.marked if self.marked else None


@dataclass
class Failure:
    """The expectation a test failed first, and how many students failed it there."""

    test: str
    label: str
    students: int
    example: str  # one of them (the first by name)


@dataclass
class Cluster:
    """Students who published the same wrong value for the same expectation."""

    test: str
    label: str
    occurrence: int  # which expectation of that label in the test (0: the first)
    value: dict  # as checks.encode made it
    students: int
    judged: int  # students whose runs published a value for this expectation
    example: str  # one of them (the first by name)


@dataclass
class AssignmentReport:
    assignment: str
    max_score: float | None
    scores: list[float] = field(default_factory=list)  # before late penalties, every submission with a score
    cells: list[CellRate] = field(default_factory=list)  # in notebook order
    failures: list[Failure] = field(default_factory=list)  # most students first
    clusters: list[Cluster] = field(default_factory=list)  # largest first, two students or more
    statuses: Counter = field(default_factory=Counter)  # status -> submissions (missing included)
    late: int | None = None  # None: no gradebook to tell
    seconds: list[float] = field(default_factory=list)  # grading time of each graded submission
    notes: list[str] = field(default_factory=list)  # what could not be read or counted

    @property
    def submissions(self) -> int:
        return sum(self.statuses.values())

    def test_failures(self, test: str) -> int:
        return next((c.failed for c in self.cells if c.grade_id == test), 0)


# ---------------------------------------------------------------- reading


def _records(course: Course, assignment: str, notes: list[str]) -> dict[str, dict]:
    """Every readable status record of the assignment; the unreadable ones are notes."""
    out = {}
    for student in sorted(status.students_with_records(course, assignment)):
        try:
            record = status.read(course, assignment, student)
        except (ValueError, OSError, RecursionError) as exc:
            notes.append(f"the status record of {student} could not be read ({type(exc).__name__})")
            continue
        if isinstance(record, dict) and record.get("status") in STATUSES:
            out[student] = record
        else:
            notes.append(f"the status record of {student} is not one course autograde writes: skipped")
    return out


def has_gradebook(course: Course) -> bool:
    """Is there a gradebook to read? (Opening a missing SQLite one would create it empty.)"""
    url = course.gradebook_url()
    return not (url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file())


def _gradebook(course: Course, assignment: str, notes: list[str]) -> tuple[list[dict], dict[str, list[tuple]]] | None:
    """``course export``'s rows of the assignment and each cell's grades (student, manual score, auto
    score, needs manual grade), or None when the gradebook does not hold the assignment or its rows
    cannot be made (a status record that is not JSON stops ``course export`` too: a note says so)."""
    if not has_gradebook(course):
        return None
    from nbgrader.api import Assignment, Gradebook, MissingEntry, SubmittedAssignment, SubmittedNotebook
    from nbgrader.api import Grade, GradeCell

    from course_tools.grading import export

    try:
        rows = export.rows(course, [assignment])
    except MissingEntry:
        return None
    except (ValueError, OSError, RecursionError) as exc:
        notes.append(f"course export cannot read this assignment ({type(exc).__name__}: a status record is not "
                     "JSON?), so statuses and scores come from the readable records")
        return None
    grades: dict[str, list[tuple]] = defaultdict(list)
    with Gradebook(course.gradebook_url()) as gb:
        query = (gb.db.query(GradeCell.name, SubmittedAssignment.student_id, Grade.manual_score, Grade.auto_score,
                             Grade.needs_manual_grade)
                 .join(Grade, Grade.cell_id == GradeCell.id)
                 .join(SubmittedNotebook, Grade.notebook_id == SubmittedNotebook.id)
                 .join(SubmittedAssignment, SubmittedNotebook.assignment_id == SubmittedAssignment.id)
                 .join(Assignment, SubmittedAssignment.assignment_id == Assignment.id)
                 .filter(Assignment.name == assignment))
        for name, student, manual, auto, needs in query:
            grades[name].append((student, manual, auto, needs))
    return rows, grades


def _graded_cells(course: Course, assignment: str, reference: dict, notes: list[str]) -> list[tuple[str, str, float]]:
    """(grade id, kind, points) of every test cell and written answer, in notebook order: from the
    source notebook, else (no source here) the tests the reference values name."""
    try:
        cells = assignments.load(assignment, course).cells
    except assignments.UnknownAssignment:
        notes.append(f"no source notebook of {assignment} here: written answers are not listed")
        return [(gid, "test", 0.0) for gid in reference]
    return [(c.grade_id, "test" if c.kind == "tests" else "written answer", c.points) for c in cells
            if c.kind in ("tests", "manual", "task")]


# ---------------------------------------------------------------- counting


def first_failure(reference: dict[str, list[Published]], published: object, test: str) -> str:
    """The label of the expectation a failed test failed first, judged as grading judges it."""
    if test not in reference:
        return NO_REFERENCE
    if not isinstance(published, dict):
        return NO_VALUES
    stored = published.get(test, [])
    verdict = judge(reference[test], stored_list(stored))
    return STALE if verdict.passed else verdict.message


def _test_rates(report: AssignmentReport, records: dict[str, dict], reference: dict) -> None:
    """Each test cell's passes and failures from the recorded scores, and the first failing expectation
    of each failure from the stored values."""
    tests = {c.grade_id: c for c in report.cells if c.kind == "test"}
    failures: dict[tuple[str, str], list[str]] = defaultdict(list)
    for student, record in records.items():
        scores = record.get("scores")
        if record["status"] not in JUDGED or not isinstance(scores, dict):
            continue
        for gid, cell in tests.items():
            got = scores.get(gid)
            if not (isinstance(got, list) and len(got) == 2 and all(isinstance(v, (int, float)) for v in got)):
                continue
            if got[1] > 0 and got[0] >= got[1]:
                cell.passed += 1
            else:
                cell.failed += 1
                failures[gid, first_failure(reference, record.get("published"), gid)].append(student)
            cell.given += float(got[0]) if math.isfinite(got[0]) else 0.0
    report.failures = sorted((Failure(test, label, len(who), min(who)) for (test, label), who in failures.items()),
                             key=lambda f: (-f.students, f.test, f.label))


def _written_rates(report: AssignmentReport, grades: dict[str, list[tuple]]) -> None:
    """Written answers from the gradebook: full marks, fewer, or still waiting for a person."""
    for cell in report.cells:
        if cell.kind != "written answer":
            continue
        for _, manual, auto, needs in grades.get(cell.grade_id, []):
            if manual is None and needs:
                cell.waiting += 1
                continue
            score = float(manual if manual is not None else auto or 0.0)
            cell.given += score
            if cell.points > 0 and score >= cell.points:
                cell.passed += 1
            else:
                cell.failed += 1


def clusters(reference: dict[str, list[Published]], records: dict[str, dict]) -> list[Cluster]:
    """Identical wrong values on the same expectation, shared by two students or more, largest first."""
    judged_by: Counter[tuple] = Counter()
    holders: dict[tuple, list[str]] = defaultdict(list)
    values: dict[tuple, dict] = {}
    for student, record in records.items():
        if record["status"] not in JUDGED:
            continue
        judged, wrong = similarity.wrong_values(reference, record.get("published"))
        judged_by.update(judged)
        for name, value in wrong.items():
            holders[name].append(student)
            values.setdefault(name, value.value)
    found = [Cluster(name[0], name[1], name[2], values[name], len(who), judged_by[name[:3]], min(who))
             for name, who in holders.items() if len(who) >= 2]
    return sorted(found, key=lambda c: (-c.students, c.test, c.label, c.occurrence, c.example))


def _from_records(report: AssignmentReport, records: dict[str, dict]) -> None:
    """Statuses and autograded scores when there is no gradebook to ask."""
    report.notes.append("no gradebook entry for this assignment: statuses and scores come from the status records "
                        "(autograded points only; missing and late submissions cannot be counted)")
    for record in records.values():
        report.statuses[record["status"]] += 1
        scores = record.get("scores")
        if record["status"] in JUDGED and isinstance(scores, dict):
            report.scores.append(sum(float(v[0]) for v in scores.values()
                                     if isinstance(v, list) and len(v) == 2 and isinstance(v[0], (int, float))))


def assignment_report(course: Course, assignment: str) -> AssignmentReport:
    """Everything the page and the table show of one assignment."""
    notes: list[str] = []
    reference = similarity.reference_values(course, assignment)
    if not reference:
        notes.append(f"no reference values of {assignment}: failed expectations and wrong values cannot be named")
    records = _records(course, assignment, notes)
    cells = _graded_cells(course, assignment, reference, notes)
    report = AssignmentReport(assignment, sum(points for _, _, points in cells) or None,
                              cells=[CellRate(gid, kind, points) for gid, kind, points in cells], notes=notes)
    book = _gradebook(course, assignment, notes)
    if book is None:
        _from_records(report, records)
    else:
        rows, grades = book
        report.statuses.update(row["status"] for row in rows)
        report.scores = [float(row["score_before_penalty"]) for row in rows if row["score_before_penalty"] != ""]
        report.late = sum(1 for row in rows if isinstance(row["late_days"], int) and row["late_days"] > 0)
        report.max_score = float(rows[0]["max_score"]) if rows else report.max_score
        _written_rates(report, grades)
    _test_rates(report, records, reference)
    report.clusters = clusters(reference, records)
    report.seconds = [float(r["seconds"]) for r in records.values() if r["status"] != NOT_GRADED
                      and isinstance(r.get("seconds"), (int, float)) and 0 < r["seconds"] < math.inf]
    return report


def score_bins(report: AssignmentReport) -> list[tuple[float, float, int]]:
    """The score histogram: (from, to, submissions) for bars of one point (or a twentieth of the maximum
    when that is large or fractional), from 0; the last bar is full marks (and anything above)."""
    top = report.max_score or max((s for s in report.scores if math.isfinite(s)), default=0.0) or 1.0
    width = 1.0 if top <= BINS and float(top).is_integer() else top / BINS
    counts = [0] * (round(top / width) + 1)
    for score in report.scores:
        if math.isfinite(score):
            counts[min(max(int(score // width), 0), len(counts) - 1)] += 1
    return [(i * width, (i + 1) * width, n) for i, n in enumerate(counts)]


def term_assignments(course: Course) -> list[str]:
    """The term's assignments in term order (course.toml and the gradebook), then any other with records."""
    from course_tools.grading import deadlines

    order = deadlines.load(course).order()
    root = course.status_dir("x").parent
    graded = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.is_symlink()) if root.is_dir() else []
    return order + [a for a in graded if a not in order]


# ---------------------------------------------------------------- the table


COLUMNS = ["assignment", "section", "cell", "what", "value", "students", "of", "share", "example_student"]


def table_rows(report: AssignmentReport) -> list[list[object]]:
    """One assignment's numbers as rows of :data:`COLUMNS` (long format: one table for a spreadsheet)."""
    a, n = report.assignment, report.submissions
    counts = {s: report.statuses.get(s, 0) for s in STATUSES}
    rows: list[list[object]] = [[a, "status", "", s, "", k, n, _share(k, n), ""] for s, k in counts.items()]
    if report.late is not None:
        rows.append([a, "status", "", "late", "", report.late, n, _share(report.late, n), ""])
    if report.seconds:
        rows += [[a, "grading time", "", "mean seconds", f"{sum(report.seconds) / len(report.seconds):.2f}",
                  len(report.seconds), "", "", ""],
                 [a, "grading time", "", "max seconds", f"{max(report.seconds):.2f}", len(report.seconds), "", "", ""]]
    rows += [[a, "score", "", f"{lo:g} to {hi:g}", "", count, len(report.scores), _share(count, len(report.scores)), ""]
             for lo, hi, count in score_bins(report)]
    for c in report.cells:
        rows.append([a, "cell", c.grade_id, f"{c.kind}: full marks", f"{c.given / c.marked:.3f}" if c.marked else "",
                     c.passed, c.marked, _share(c.passed, c.marked), ""])
        if c.waiting:
            rows.append([a, "cell", c.grade_id, f"{c.kind}: waiting for a person", "", c.waiting, "", "", ""])
    rows += [[a, "failure", f.test, f.label, "", f.students, report.test_failures(f.test),
              _share(f.students, report.test_failures(f.test)), f.example] for f in report.failures]
    rows += [[a, "wrong value", c.test, f"{c.label} (#{c.occurrence + 1})", similarity.shown_value(c.value),
              c.students, c.judged, _share(c.students, c.judged), c.example] for c in report.clusters]
    return rows


def _share(part: int, whole: int) -> str:
    return f"{part / whole:.3f}" if whole else ""


def write_table(reports: list[AssignmentReport], path: Path) -> None:
    """The CSV: every field a spreadsheet could run as a formula is quoted out."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8", errors="replace") as out:
        writer = csv.writer(out)
        writer.writerow(COLUMNS)
        for report in reports:
            writer.writerows([similarity.csv_text(v) if isinstance(v, str) else v for v in row]
                             for row in table_rows(report))
