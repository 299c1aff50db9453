"""The reteach report as one self-contained HTML page: plots inline, no script, no link out; and
``course report``, which writes the page with the numbers' table (:mod:`~course_tools.grading.report`).

Everything a submission can influence (student names, published values, even labels and reasons)
is escaped and cut to a few hundred characters, and each list is capped, so the page stays
readable and safe however hostile the class. Plots are drawn with matplotlib's object API (no
pyplot state, no display) as inline SVG.
"""

from __future__ import annotations

import html
import io
import math
import re
import statistics
from typing import Callable

from course_tools.grading import report, status
from course_tools.grading.report import AssignmentReport, score_bins
from course_tools.grading.similarity import shown_value
from course_tools.grading.status import STATUSES
from course_tools.layout import Course

MAX_TEXT = 200  # characters of a label, a name or a note shown
MAX_FAILURES = 40  # failure messages listed per assignment
MAX_CLUSTERS = 30  # shared wrong values listed per assignment
MAX_NOTES = 20

STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222;max-width:1200px}
table{border-collapse:collapse;margin:.5em 0 1.2em}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}.plots{display:flex;flex-wrap:wrap;gap:1em}
figure{margin:0}
.plots svg{max-width:100%;height:auto}code{background:#f6f6f6;word-break:break-all}
section{border-top:2px solid #999;margin-top:1.5em}.note{color:#555}
"""


def _e(text: object, limit: int = MAX_TEXT) -> str:
    """Any text from the data, cut to ``limit`` characters and escaped."""
    text = str(text)
    return html.escape(text if len(text) <= limit else text[:limit] + " ...")


def _pct(part: float, whole: float) -> str:
    return f"{100 * part / whole:.0f}%" if whole else ""


def _svg(fig) -> str:  # noqa: ANN001 (a matplotlib Figure)
    """A figure as an inline <svg> element (its XML prolog dropped)."""
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "course-report"}):
        fig.savefig(buf, format="svg", bbox_inches="tight")
    text = buf.getvalue()
    return text[text.index("<svg"):]


def histogram(report: AssignmentReport) -> str:
    """The score distribution as an inline SVG bar chart."""
    from matplotlib.figure import Figure

    bins = score_bins(report)
    fig = Figure(figsize=(5, 2.8))
    ax = fig.add_subplot()
    width = bins[0][1] - bins[0][0]
    ax.bar([lo + width / 2 for lo, _, _ in bins], [n for _, _, n in bins], width=width, color="#4a78b5",
           edgecolor="white")
    if width == 1.0:  # a bar per point: each labelled with its score
        ax.set_xticks([lo + 0.5 for lo, _, _ in bins], [f"{lo:g}" for lo, _, _ in bins])
    ax.set_xlabel(f"score (of {report.max_score:g})" if report.max_score else "score")
    ax.set_ylabel("submissions")
    ax.set_title(f"Scores before late penalties ({len(report.scores)} submissions)")
    return _svg(fig)


def pass_rates(report: AssignmentReport) -> str:
    """Each graded cell's share of full marks as an inline SVG bar chart (tests blue, written answers orange)."""
    from matplotlib.figure import Figure

    cells = [c for c in report.cells if c.rate is not None][:40]
    fig = Figure(figsize=(5, 0.8 + 0.28 * max(len(cells), 1)))
    ax = fig.add_subplot()
    ax.barh(range(len(cells)), [100 * c.rate for c in cells],
            color=["#4a78b5" if c.kind == "test" else "#e08a2c" for c in cells])
    ax.set_yticks(range(len(cells)), [c.grade_id[:40] for c in cells])
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("full marks (%): tests blue, written answers orange")
    ax.set_title("Pass rate of each graded cell")
    return _svg(fig)


def term_plot(reports: list[AssignmentReport]) -> str:
    """Each assignment's scores as a share of its maximum: one box per assignment."""
    from matplotlib.figure import Figure

    shown = [r for r in reports if r.scores and r.max_score]
    fig = Figure(figsize=(max(4.0, 0.9 * len(shown) + 2), 3))
    ax = fig.add_subplot()
    if shown:
        ax.boxplot([[100 * s / r.max_score for s in r.scores if math.isfinite(s)] for r in shown])
        ax.set_xticks(range(1, len(shown) + 1), [r.assignment[:20] for r in shown], rotation=30, ha="right")
    ax.set_ylim(0, 105)
    ax.set_ylabel("score (% of the maximum)")
    ax.set_title("Scores before late penalties, by assignment")
    return _svg(fig)


def _seconds(report: AssignmentReport) -> str:
    s = report.seconds
    return f"mean {statistics.fmean(s):.1f} s, max {max(s):.1f} s ({len(s)} runs)" if s else "not recorded"


def _counts(report: AssignmentReport) -> str:
    parts = [f"{report.statuses.get(s, 0)} {s}" for s in STATUSES]
    parts.append(f"{report.late} late" if report.late is not None else "late: unknown (no gradebook)")
    return f"{report.submissions} submissions: " + ", ".join(parts) + f". Grading time: {_seconds(report)}."


def _cells_table(report: AssignmentReport) -> str:
    rows = "".join(
        f"<tr><td>{_e(c.grade_id)}</td><td>{c.kind}</td><td class=n>{c.points:g}</td>"
        + (f"<td class=n>{c.passed} of {c.marked}</td><td class=n>{_pct(c.passed, c.marked)}</td>"
           f"<td class=n>{c.given / c.marked:.2f}</td>" if c.marked
           else "<td class=n>none marked</td><td></td><td></td>")
        + f"<td class=n>{c.waiting or ''}</td></tr>" for c in report.cells)
    return ("<table><tr><th>cell</th><th>kind</th><th>points</th><th>full marks</th><th>rate</th>"
            f"<th>mean points</th><th>waiting for a person</th></tr>{rows}</table>")


def _more_in_csv(count: int, shown: int) -> str:
    """A note under a table cut to ``shown`` rows: the rest is in the CSV."""
    return f"<p class=note>{count - shown} more in the CSV.</p>" if count > shown else ""


def _failures_table(report: AssignmentReport) -> str:
    if not report.failures:
        return "<p>No test failed.</p>"
    rows = "".join(
        f"<tr><td>{_e(f.test)}</td><td>{_e(f.label)}</td><td class=n>{f.students}</td>"
        f"<td class=n>{_pct(f.students, report.test_failures(f.test))}</td><td>{_e(f.example)}</td></tr>"
        for f in report.failures[:MAX_FAILURES])
    more = _more_in_csv(len(report.failures), MAX_FAILURES)
    return ("<table><tr><th>test</th><th>first expectation failed (its message)</th><th>students</th>"
            f"<th>of the test's failures</th><th>for example</th></tr>{rows}</table>{more}")


def _clusters_table(report: AssignmentReport) -> str:
    if not report.clusters:
        return "<p>No wrong value is shared by two students.</p>"
    rows = "".join(
        f"<tr><td>{_e(c.test)}</td><td>{_e(c.label)}" + (f" (#{c.occurrence + 1})" if c.occurrence else "")
        + f"</td><td><code>{_e(shown_value(c.value), 300)}</code></td><td class=n>{c.students} of {c.judged}</td>"
        f"<td>{_e(c.example)}</td></tr>" for c in report.clusters[:MAX_CLUSTERS])
    more = _more_in_csv(len(report.clusters), MAX_CLUSTERS)
    return ("<table><tr><th>test</th><th>expectation</th><th>the same wrong value</th><th>students</th>"
            f"<th>for example</th></tr>{rows}</table>{more}")


def _notes(report: AssignmentReport) -> str:
    if not report.notes:
        return ""
    items = "".join(f"<li>{_e(n)}</li>" for n in report.notes[:MAX_NOTES])
    more = f"<li>{len(report.notes) - MAX_NOTES} more</li>" if len(report.notes) > MAX_NOTES else ""
    return f"<h3>Notes</h3><ul class=note>{items}{more}</ul>"


def _tables(report: AssignmentReport, level: int) -> str:
    h = f"h{level}"
    return (f"<{h}>Pass rate of every test and written answer</{h}>{_cells_table(report)}"
            f"<{h}>Most frequent failures</{h}><p class=note>Each failed test counted once, at the first "
            f"expectation it failed; the message is the one students saw.</p>{_failures_table(report)}"
            f"<{h}>Wrong values students share</{h}><p class=note>The same value (as published, exactly) for the "
            f"same expectation: a shared misconception, or one bug many made.</p>{_clusters_table(report)}"
            + _notes(report))


def _assignment_body(report: AssignmentReport) -> str:
    return (f"<h1>What to reteach: {_e(report.assignment)}</h1><p>{_e(_counts(report), 2000)}</p>"
            f'<div class=plots><figure>{histogram(report)}</figure><figure>{pass_rates(report)}</figure></div>'
            + _tables(report, 2))


def _term_body(reports: list[AssignmentReport]) -> str:
    rows = []
    for r in reports:
        scores = [s for s in r.scores if math.isfinite(s)]
        mean = _pct(statistics.fmean(scores), r.max_score or 0) if scores else ""
        median = _pct(statistics.median(scores), r.max_score or 0) if scores else ""
        tests = [c for c in r.cells if c.kind == "test" and c.marked]
        passed = _pct(sum(c.passed for c in tests), sum(c.marked for c in tests))
        rows.append(f'<tr><td><a href="#a-{_anchor(r.assignment)}">{_e(r.assignment)}</a></td>'
                    + "".join(f"<td class=n>{r.statuses.get(s, 0)}</td>" for s in STATUSES)
                    + f"<td class=n>{'' if r.late is None else r.late}</td><td class=n>{mean}</td>"
                    f"<td class=n>{median}</td><td class=n>{passed}</td><td>{_e(_seconds(r))}</td></tr>")
    head = "".join(f"<th>{s}</th>" for s in STATUSES)
    sections = "".join(f'<section id="a-{_anchor(r.assignment)}"><h2>{_e(r.assignment)}</h2><p>{_e(_counts(r), 2000)}'
                       f"</p>{_tables(r, 3)}</section>" for r in reports)
    return (f"<h1>What to reteach: the term</h1><div class=plots><figure>{term_plot(reports)}</figure></div>"
            f"<table><tr><th>assignment</th>{head}<th>late</th><th>mean score</th><th>median score</th>"
            f"<th>tests passed</th><th>grading time</th></tr>{''.join(rows)}</table>{sections}")


def _anchor(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", name)[:80]


def page(reports: list[AssignmentReport], term: bool = False) -> str:
    """The whole page: one assignment's report, or (``term``) a row per assignment and each one's tables."""
    title = "the term" if term else reports[0].assignment
    body = _term_body(reports) if term else _assignment_body(reports[0])
    return ("<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
            "<meta http-equiv=Content-Security-Policy content=\"default-src 'none'; style-src 'unsafe-inline'\">"
            f"<title>What to reteach: {_e(title)}</title><style>{STYLE}</style></head><body>{body}</body></html>")


# ---------------------------------------------------------------- the command


def make(course: Course, assignment: str | None) -> list[AssignmentReport]:
    """Write the page and the table of one assignment (or, with None, of the whole term); the reports."""
    reports = [report.assignment_report(course, a) for a in ([assignment] if assignment else report.term_assignments(course))]
    target = course.report_page(assignment)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(page(reports, term=assignment is None), encoding="utf-8", errors="replace")
    report.write_table(reports, course.report_table(assignment))
    return reports


def main(course: Course, assignment: str | None, term: bool = False,
         then: Callable[[Course, AssignmentReport], None] | None = None) -> int:
    """``course report A`` / ``course report --term``: write the report and say where; 2 when there is nothing.
    ``then`` runs on each assignment's report afterwards (``--mutant-candidates``, from authoring)."""
    if (assignment is None) == (not term):
        print("course report: name one assignment, or --term for all of them")
        return 2
    if assignment and not status.students_with_records(course, assignment) and not report.has_gradebook(course):
        print(f"course report: no status records of {assignment}: run `course autograde {assignment}` first")
        return 2
    reports = make(course, assignment)
    for r in reports:
        counts = ", ".join(f"{r.statuses[s]} {s}" for s in STATUSES if r.statuses.get(s))
        print(f"{r.assignment}: {r.submissions} submissions ({counts or 'none'}); {len(r.failures)} failure messages, "
              f"{len(r.clusters)} shared wrong values")
        for note in r.notes[:5]:
            print(f"  note: {note}")
    print(f"wrote {course.report_page(assignment)} and {course.report_table(assignment)}")
    for r in reports if then else []:
        then(course, r)
    return 0
