"""`course autograde` grades with the pipeline `nbgrader autograde` reads from nbgrader_config.py,
and every kernel starts with the same arguments: each fact is written once and read from there."""

from __future__ import annotations

from pathlib import Path

from course_tools.config import load_config
from course_tools.grading import execute, job
from course_tools.grading.sanitize import SanitizeNotebook


def test_the_grading_job_runs_nbgraders_own_pipeline(tmp_path: Path) -> None:
    course = load_config()
    graded = job.grading_config(tmp_path, job.Settings())
    steps = graded.Autograde.autograde_preprocessors
    assert steps == course.Autograde.autograde_preprocessors
    assert steps[0] is execute.GradingExecute and steps[-1] is SanitizeNotebook
    assert graded.AssignLatePenalties.plugin_class == course.AssignLatePenalties.plugin_class


def test_kernels_start_with_the_course_arguments() -> None:
    assert tuple(load_config().Execute.extra_arguments) == execute.KERNEL_ARGS
