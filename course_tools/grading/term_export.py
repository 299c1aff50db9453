"""``course term``: one grade file for the whole term.

One row per student: every assignment's final score (after its late penalty), its status,
late days and grace days used over the term, and the weighted total by the weights of
``course.toml`` (each assignment's share of its points, times its weight, over the sum of the
weights, in percent). A missing assignment counts 0 in the total and is named in ``missing``;
while any assignment of the student is not final (not graded, written answers or a flagged
cell waiting for a person) the total is left empty and the row says which, never a number
that looks final. The same rows go out as the grade files Canvas and Moodle import, one
column per assignment and one for the total.
"""

from __future__ import annotations

import csv
import io
import sys
from dataclasses import dataclass
from pathlib import Path

from course_tools.grading import deadlines, late
from course_tools.grading.export import rows
from course_tools.grading.lms import ArchiveError, canvas_table, identities_for, moodle_table
from course_tools.grading.status import GRADED, MISSING
from course_tools.layout import Course

TOTAL = "weighted_percent"
COMPLETE, INCOMPLETE = "complete", "incomplete"


@dataclass
class TermTable:
    assignments: list[str]  # in term order
    max_scores: dict[str, float]
    rows: list[dict]

    def columns(self) -> list[str]:
        per = [name for a in self.assignments for name in (a, f"{a} status", f"{a} late days")]
        return ["student", *per, "late_days", "grace_days_used", "grace_days_left", "missing", TOTAL, "status",
                "reason"]


def term_table(course: Course) -> TermTable:
    """The whole term, one row per student (see the module)."""
    term = deadlines.load(course)
    rules = late.policy(course.nbgrader_config)
    table = rows(course)
    assignments = [a for a in term.order() if any(r["assignment"] == a for r in table)]
    max_scores = {r["assignment"]: float(r["max_score"]) for r in table}
    by_student: dict[str, dict[str, dict]] = {}
    for r in table:
        by_student.setdefault(r["student"], {})[r["assignment"]] = r
    out = []
    for student, mine in sorted(by_student.items()):
        out.append(_student_row(student, mine, assignments, max_scores, term, rules.grace_days))
    return TermTable(assignments, max_scores, out)


def _student_row(student: str, mine: dict[str, dict], assignments: list[str],  # noqa: PLR0913
                 max_scores: dict[str, float], term: deadlines.Term, budget: int) -> dict:
    row: dict = {"student": student}
    waiting, missing, weighted, weights = [], [], 0.0, 0.0
    late_days = grace = 0
    for a in assignments:
        r = mine.get(a) or {"status": MISSING, "score": "", "late_days": "", "grace_days": ""}
        row[a], row[f"{a} status"], row[f"{a} late days"] = r["score"], r["status"], r["late_days"]
        late_days += int(r["late_days"] or 0)
        grace += int(r["grace_days"] or 0)
        weights += term.weight(a)
        if r["status"] == MISSING:
            missing.append(a)
        elif r["status"] == GRADED and r["score"] != "":
            weighted += term.weight(a) * float(r["score"]) / max_scores[a] if max_scores[a] else 0.0
        else:
            waiting.append(f"{a}: {r['status']}")
    done = not waiting and weights > 0
    row.update(late_days=late_days, grace_days_used=grace, grace_days_left=max(0, budget - grace),
               missing=" ".join(missing), status=COMPLETE if done else INCOMPLETE,
               reason="; ".join(waiting) + ("; " if waiting and missing else "")
               + (f"missing counts 0: {', '.join(missing)}" if missing else ""))
    row[TOTAL] = round(100 * weighted / weights, 2) if done else ""
    return row


def write_csv(table: TermTable) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=table.columns())
    writer.writeheader()
    writer.writerows(table.rows)
    return out.getvalue()


def write_lms(course: Course, table: TermTable, lms: str) -> tuple[str, list[str]]:
    """The term as Canvas's or Moodle's grade import (one column per assignment, then the total);
    returns the text and the students it cannot name (never collected from that LMS)."""
    identities = identities_for(course, table.assignments, lms)
    if not identities:
        raise ArchiveError(f"no {lms} identities in lms/ for any assignment: collect submissions with "
                           "`course collect-zip A FILE.zip` first")
    by_student = {r["student"]: r for r in table.rows}
    unknown = sorted(s for s in by_student if s not in identities)
    lines = []
    for student, who in sorted(identities.items()):
        r = by_student.get(student, {})
        total = r.get(TOTAL, "")
        scores = [_final(r, a) for a in table.assignments] + [f"{total:g}" if total != "" else ""]
        lines.append((who, scores))
    columns = [*table.assignments, "Term total (%)"]
    maxima: list[object] = [table.max_scores[a] for a in table.assignments] + [100]
    text = canvas_table(columns, maxima, lines) if lms == "canvas" else moodle_table(columns, maxima, lines)
    return text, unknown


def _final(row: dict, assignment: str) -> str:
    """A score an LMS may receive: final ones only; anything else empty (the LMS keeps what it has)."""
    if row.get(f"{assignment} status") == GRADED and row.get(assignment, "") != "":
        return f"{float(row[assignment]):g}"
    return ""


def main(course: Course, lms: str = "csv", output: Path | None = None) -> int:
    """``course term``: due dates, extensions and late penalties brought up to date, then the term's
    grade file written (to ``output``, else standard output) and what is unfinished said on stderr."""
    try:
        term = deadlines.load(course)
        deadlines.sync_gradebook(course, term)
        lateness = late.term_lateness(course, term=term)
        for name in term.due:
            late.apply(course, name, lateness)
        table = term_table(course)
        text, unknown = (write_csv(table), []) if lms == "csv" else write_lms(course, table, lms)
    except (deadlines.CalendarError, ArchiveError) as exc:
        print(f"course term: {exc}", file=sys.stderr)
        return 2
    if output:
        output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    incomplete = [r["student"] for r in table.rows if r["status"] != COMPLETE]
    print(f"{len(table.rows)} students, {len(table.assignments)} assignments ({', '.join(table.assignments)}); "
          f"{len(incomplete)} without a final total" + (f": {', '.join(incomplete)}" if incomplete else ""),
          file=sys.stderr)
    if unknown:
        print(f"{len(unknown)} students have no {lms} identity: {', '.join(unknown)}", file=sys.stderr)
    return 0
