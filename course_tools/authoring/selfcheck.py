"""``course selfcheck``: prove an assignment is sound before it is released.

The checks, in order (each failure is listed; any failure exits nonzero):

1. the source's nbgrader metadata is valid and every grade id is unique and meaningful;
2. the release holds no solution, hidden-test or mark-scheme text;
3. every test cell's hidden tests can be judged outside the kernel: they make
   expectations, and compute targets only in REFERENCE blocks;
4. the solution passes its own hidden tests in a clean kernel (this run makes
   the reference values), no cell of it raises, and judged against those
   values it earns full marks (its tests are deterministic);
5. the untouched release autogrades to zero on every autograded cell;
6. every registered mutant loses points on each test cell it targets;
7. every registered alternative (a right answer written differently, see
   :mod:`course_tools.authoring.mutants`) earns full marks: in variant k, the
   k-th alternative of every cell that has one, on every autograded test cell.

The solution, the blank release, the mutants and the alternative variants are
graded in parallel on the same pool of sandboxed workers as ``course autograde``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import nbformat

from course_tools import assignments, testcells
from course_tools.authoring import mutants
from course_tools.grading.variants import CellScore, Graded, grade_variants
from course_tools.scratch import GradingFailed, scratch_course


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


def test_cell_problems(source: nbformat.NotebookNode) -> list[str]:
    """Test cells the grader could not judge, or whose targets would be computed in a student's kernel."""
    problems = []
    for index, cell in enumerate(source.cells):
        if not assignments.is_test_cell(cell):
            continue
        gid = assignments.grade_id(cell, index)
        try:
            if testcells.expectation_count(cell.source) == 0:
                problems.append(f"{gid}: no checks.expect in its code, so the grader has nothing to judge: run "
                                "`course convert` on the notebook (or rewrite the test cell with checks.expect)")
            for name in testcells.target_leaks(cell.source):
                problems.append(f"{gid}: {name} is computed outside a ### BEGIN REFERENCE / ### END REFERENCE "
                                "block but used only as a target: it would run in the student's kernel, where "
                                "student code could read the expected value; compute it inside such a block")
            testcells.student_version(cell.source)
        except testcells.UnjudgeableCell as exc:
            problems.append(f"{gid}: {exc}")
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


def selfcheck(name: str, fast: bool = True, keep: bool = False, only_mutants: list[str] | None = None,
              sample: int | None = None) -> Report:
    """Run every check on one assignment; see the module docstring. ``sample``: grade only
    :func:`mutants.sample`'s subset of the mutants (``sample`` per test cell, every shortcut)."""
    report = Report(name)
    assignment = assignments.load(name)
    report.problems += assignments.metadata_problems(assignment)
    tests = [c.grade_id for c in assignment.tests]
    if not tests:
        report.problems.append("no autograded test cells")
    registered = mutants.load_mutants(name)
    of = len(registered)
    if only_mutants:
        registered = [m for m in registered if m.name in only_mutants]
    if sample:
        registered = mutants.sample(registered, sample)
    for m in registered:
        for t in m.targets:
            if t not in tests:
                report.problems.append(f"mutant {m.name}: target {t!r} is not a test cell")
    alternatives = mutants.alternative_variants(mutants.load_alternatives(name))
    source = nbformat.read(assignment.path, as_version=4)
    report.problems += test_cell_problems(source)
    start = time.perf_counter()
    got = total = got_blank = 0.0
    rejected = full = 0
    with scratch_course(name, keep=keep) as course:
        release = nbformat.read(course.release(), as_version=4)
        report.problems += release_leaks(source, release)
        variants = {"solution": source, "blank": release}
        for m in registered:
            try:
                variants[f"mutant-{m.name}"] = mutants.apply(source, m)
            except ValueError as exc:
                report.problems.append(str(exc))
        for k, variant in enumerate(alternatives, 1):
            try:
                variants[f"alternatives-{k}"] = mutants.apply_alternatives(source, release, variant)
            except ValueError as exc:
                report.problems.append(str(exc))
        targets = {f"mutant-{m.name}": m.targets for m in registered}
        graded = grade_variants(course, variants, fast=fast, judge_only=targets)
        if graded.setup_error:
            report.problems.append(graded.setup_error)
        else:
            report.problems += _errors(nbformat.reads(next(iter(graded.solution_run.notebooks.values())), as_version=4))
            try:
                got, total, got_blank = _score_solution_and_blank(report, graded, tests)
                rejected = _score_mutants(report, graded, registered)
                full = _score_alternatives(report, graded, alternatives, assignments.tested_answers(source))
            except GradingFailed as exc:
                report.problems.append(str(exc))
    _report_shortcuts(report, registered)
    seconds = time.perf_counter() - start
    status = "OK" if report.ok else "FAILED"
    report.summary = (f"selfcheck {name}: {status} solution {got:g}/{total:g}, blank {got_blank:g}/{total:g}, "
                      f"mutants {rejected}/{len(registered)} rejected"
                      + (f" (a sample of the {of} registered)" if len(registered) < of else "")
                      + (f", alternatives {full}/{len(alternatives)} full marks" if alternatives else "")
                      + f" ({seconds:.0f} s)")
    return report


def _score_solution_and_blank(report: Report, graded: Graded, tests: list[str]) -> tuple[float, float, float]:
    solution = graded.scores("solution")
    got, total = _auto_total(solution, tests)
    missed = [t for t in tests if solution[t].score < solution[t].max_score]
    report.lines.append(f"solution: {got:g}/{total:g}" + (f" (lost points on {', '.join(missed)})" if missed else ""))
    if missed:
        report.problems.append(f"solution loses points on {', '.join(missed)} when judged against its own "
                               "reference run: those tests are not deterministic (seed their inputs)")
    blank = graded.scores("blank")
    got_blank, _ = _auto_total(blank, tests)
    scored = [t for t in tests if blank[t].score > 0]
    report.lines.append(f"blank release: {got_blank:g}/{total:g}")
    if scored:
        report.problems.append(f"the blank release scores on {', '.join(scored)}: those tests pass without an answer")
    return got, total, got_blank


def _score_mutants(report: Report, graded: Graded, registered: list[mutants.Mutant]) -> int:
    rejected = 0
    for m in registered:
        if f"mutant-{m.name}" not in graded.outcomes:
            continue
        try:
            scores = graded.scores(f"mutant-{m.name}")
        except GradingFailed as exc:
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
    return rejected


def _test_message(notebook_json: str | None, test: str) -> str:
    """The message a failed test cell shows in the autograded notebook (the grader's verdict,
    written for students in the solution's run)."""
    if not notebook_json:
        return "no autograded notebook"
    for cell in json.loads(notebook_json).get("cells", []):
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == test:
            errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
            if errors:
                return str(errors[-1].get("evalue", ""))[:300]
    return "no message"


def _score_alternatives(report: Report, graded: Graded, variants: list[list[mutants.Alternative]],
                        tested: dict[str, set[str]]) -> int:
    """One line per alternative variant; a test cell that loses points is a problem naming the
    alternatives in the answer cells it grades (all of the variant's when none is there) and its message."""
    full = 0
    for k, variant in enumerate(variants, 1):
        student = f"alternatives-{k}"
        names = ", ".join(a.name for a in variant)
        if student not in graded.outcomes:
            continue
        try:
            scores = graded.scores(student)
        except GradingFailed as exc:
            report.problems.append(str(exc))
            continue
        got, total = _auto_total(scores, list(tested))
        lost = [t for t in tested if t in scores and scores[t].score < scores[t].max_score]
        if not lost:
            full += 1
            report.lines.append(f"alternatives {k} ({names}): full marks {got:g}/{total:g}")
            continue
        report.lines.append(f"alternatives {k} ({names}): LOST POINTS {got:g}/{total:g} "
                            f"({', '.join(f'{t} {scores[t].score:g}/{scores[t].max_score:g}' for t in lost)})")
        notebook = next(iter(graded.outcomes[student].notebooks.values()), None)
        for test in lost:
            blamed = [a for a in variant if a.cell in tested[test]] or variant
            report.problems.append(
                f"alternative {', '.join(f'{a.name} ({a.why})' for a in blamed)} loses points on {test}: "
                f"{_test_message(notebook, test)}")
    return full
