"""``course selfcheck``: prove an assignment is sound before it is released.

The checks, in order (each failure is listed; any failure exits nonzero):

1. the source's nbgrader metadata is valid and every grade id is unique and meaningful;
2. the release holds no solution, hidden-test or mark-scheme text;
3. the solution autogrades to full marks and no cell of it raises;
4. the untouched release autogrades to zero on every autograded cell;
5. every registered mutant loses points on each test cell it targets.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import nbformat

from course_tools import assignments
from course_tools.authoring import mutants
from course_tools.scratch import CellScore, GradingFailed, scratch_course


@dataclass
class Report:
    assignment: str
    problems: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    summary: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems


def _auto_total(scores: dict[str, CellScore], tests: list[str]) -> tuple[float, float]:
    got = sum(scores[t].score for t in tests if t in scores)
    return got, sum(scores[t].max_score for t in tests if t in scores)


def release_leaks(source: nbformat.NotebookNode, release: nbformat.NotebookNode) -> list[str]:
    """Lines of solutions, hidden tests or mark schemes that reach the release.

    A line counts only if it is specific to the hidden part: lines that also
    appear in the visible source (``return z``, blank lines) are not leaks.
    """
    visible, hidden = set(), set()
    for cell in source.cells:
        kinds = [k for k in assignments.MARKERS if assignments.marked_regions(cell.source, k)]
        secret = {line.strip() for k in kinds for line in assignments.marked_regions(cell.source, k)}
        hidden |= secret
        visible |= {line.strip() for line in cell.source.splitlines()} - secret
    hidden = {line for line in hidden - visible if len(line) > 8}
    released = "\n".join(cell.source for cell in release.cells)
    leaks = [f"release contains marker {m!r}" for pair in assignments.MARKERS.values() for m in pair if m in released]
    released_lines = {line.strip() for line in released.splitlines()}
    leaks += [f"release contains hidden line {line!r}" for line in sorted(hidden & released_lines)]
    return leaks


def _errors(executed: nbformat.NotebookNode) -> list[str]:
    """Cells of the executed solution that raised: a crash outside the graded
    cells costs no points in nbgrader, but students would hit it."""
    problems = []
    for index, cell in enumerate(executed.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                where = cell.metadata.get("nbgrader", {}).get("grade_id") or f"cell {index}"
                problems.append(f"solution raises {output.get('ename')}: {output.get('evalue', '')[:200]} in {where}")
    return problems


def _report_shortcuts(report: Report, registered: list[mutants.Mutant]) -> None:
    """The shortcuts through given code on a line of their own; each one not rejected is a problem."""
    rejected = {m.name for m in registered if any(line.startswith(f"mutant {m.name}: rejected") for line in report.lines)}
    line = mutants.shortcut_line(registered, rejected)
    if line is None:
        return
    report.lines.append(line)
    missed = [m.name for m in registered if m.shortcut and m.name not in rejected]
    unexplained = [n for n in missed if not any(f"mutant {n} " in p or f"mutant {n}:" in p for p in report.problems)]
    if unexplained:
        report.problems.append(f"shortcuts through given code not rejected: {', '.join(unexplained)}")


def selfcheck(name: str, fast: bool = True, keep: bool = False, only_mutants: list[str] | None = None) -> Report:
    """Run every check on one assignment; see the module docstring."""
    report = Report(name)
    assignment = assignments.load(name)
    report.problems += assignments.metadata_problems(assignment)
    tests = [c.grade_id for c in assignment.tests]
    if not tests:
        report.problems.append("no autograded test cells")
    registered = mutants.load_mutants(name)
    if only_mutants:
        registered = [m for m in registered if m.name in only_mutants]
    for m in registered:
        for t in m.targets:
            if t not in tests:
                report.problems.append(f"mutant {m.name}: target {t!r} is not a test cell")
    source = nbformat.read(assignment.path, as_version=4)
    start = time.perf_counter()
    with scratch_course(name, keep=keep) as course:
        release = nbformat.read(course.release(), as_version=4)
        report.problems += release_leaks(source, release)

        solution = course.grade("solution", source, fast=fast)
        got, total = _auto_total(solution, tests)
        missed = [t for t in tests if solution[t].score < solution[t].max_score]
        report.lines.append(f"solution: {got:g}/{total:g}" + (f" (lost points on {', '.join(missed)})" if missed else ""))
        if missed:
            report.problems.append(f"solution loses points on {', '.join(missed)}")
        report.problems += _errors(nbformat.read(course.autograded_notebook("solution"), as_version=4))

        blank = course.grade("blank", release)
        got_blank, _ = _auto_total(blank, tests)
        scored = [t for t in tests if blank[t].score > 0]
        report.lines.append(f"blank release: {got_blank:g}/{total:g}")
        if scored:
            report.problems.append(f"the blank release scores on {', '.join(scored)}: those tests pass without an answer")

        rejected = 0
        for m in registered:
            try:
                mutated = mutants.apply(source, m)
                scores = course.grade(f"mutant-{m.name}", mutated)
            except (ValueError, GradingFailed) as exc:
                report.problems.append(str(exc))
                continue
            survived = [t for t in m.targets if scores[t].score >= scores[t].max_score]
            detail = ", ".join(f"{t} {scores[t].score:g}/{scores[t].max_score:g}" for t in m.targets)
            if survived:
                report.problems.append(f"mutant {m.name} ({m.why}) survives {', '.join(survived)}")
                report.lines.append(f"mutant {m.name}: SURVIVED ({detail})")
            else:
                rejected += 1
                report.lines.append(f"mutant {m.name}: rejected ({detail})")
    _report_shortcuts(report, registered)
    seconds = time.perf_counter() - start
    status = "OK" if report.ok else "FAILED"
    report.summary = (f"selfcheck {name}: {status} solution {got:g}/{total:g}, blank {got_blank:g}/{total:g}, "
                      f"mutants {rejected}/{len(registered)} rejected ({seconds:.0f} s)")
    return report
