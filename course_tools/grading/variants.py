"""Grading notebooks that are not students' in a scratch course: the solution, the blank release,
mutants and honest alternatives (``course selfcheck``), copies of a solution (benchmarks, tests).

They are graded exactly as submissions are (sandbox, judge, reference values), on one pool of
local workers, and nothing is written to a gradebook.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import nbformat

from course_tools.grading import reference
from course_tools.grading.coordinator import make_kit, run_pool
from course_tools.grading.job import Outcome, Settings, Submission
from course_tools.scratch import GradingFailed, ScratchCourse


@dataclass
class CellScore:
    score: float
    max_score: float


@dataclass
class Graded:
    """What :func:`grade_variants` found: the solution's reference run and each variant's outcome."""

    solution_run: Outcome | None = None  # the reference run (its autograded notebook shows any crash)
    outcomes: dict[str, Outcome] = field(default_factory=dict)  # student -> outcome
    setup_error: str = ""

    def scores(self, student: str) -> dict[str, CellScore]:
        """Each graded cell's score of one variant (raises GradingFailed if it could not be graded)."""
        outcome = self.outcomes[student]
        if not outcome.scores:
            raise GradingFailed(f"{student} could not be graded: {outcome.reason}")
        return {gid: CellScore(score, top) for gid, (score, top) in outcome.scores.items()}


def grade_variants(scratch: ScratchCourse, variants: dict[str, nbformat.NotebookNode], fast: bool = True,
                   workers: int | None = None, judge_only: dict[str, tuple[str, ...]] | None = None) -> Graded:
    """Grade notebooks as the real grader does, the variants in parallel.

    The source notebook runs first, in a clean kernel, to make the reference values
    (a solution that fails its own hidden tests is reported in ``Graded.setup_error``);
    then every variant, ``{student: notebook}``, is judged against them. ``judge_only``
    names, for some variants, the only test cells that matter: those variants stop after
    the last of them.
    """
    settings = Settings(fast=fast)
    kit = make_kit(scratch.course, scratch.assignment)
    solution_run = reference.run_solution(scratch.course, kit, settings)
    graded = Graded(solution_run=solution_run)
    try:
        kit.reference = reference.check_solution_run(kit, solution_run)
    except reference.GradingSetupError as exc:
        graded.setup_error = str(exc)
        return graded
    subs = [Submission(student, {f"{scratch.assignment}.ipynb": nbformat.writes(nb).encode()},
                       judge_only=tuple((judge_only or {}).get(student, ())))
            for student, nb in variants.items()]
    for outcome in run_pool(kit, subs, settings, workers or os.cpu_count() or 1, None, progress=False):
        graded.outcomes[outcome.student] = outcome
    return graded
