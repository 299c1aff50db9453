"""Every assignment proves itself sound: `course selfcheck --fast` on each one, and its
solution grades in full under `course autograde` (in the sandbox).

This executes each notebook several times through real nbgrader (solution,
blank release, one run per registered mutant), in FAST mode.
"""

from __future__ import annotations

import pytest

from course_tools import assignments
from course_tools.authoring.selfcheck import selfcheck


@pytest.mark.slow
@pytest.mark.parametrize("name", assignments.available())
def test_selfcheck(name: str) -> None:
    report = selfcheck(name, fast=True)
    print("\n".join(report.lines + [report.summary]))
    assert report.ok, "\n".join(report.problems)


@pytest.mark.slow
@pytest.mark.parametrize("name", assignments.available())
def test_solution_earns_every_autograded_point_in_the_sandbox(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """`course autograde` runs kernels with no network, read-only data and limits: every notebook must still work."""
    import shutil

    from course_tools.grading.coordinator import autograde
    from course_tools.grading.status import read as read_record
    from course_tools.layout import Course
    from course_tools.scratch import solution_course

    from course_utils.paths import data_dir

    monkeypatch.setenv("COURSE_DATA", str(data_dir()))  # the course's data cache, not an empty one
    root = solution_course(name, students=1)
    monkeypatch.setenv("COURSE_ROOT", str(root))
    try:
        summary = autograde(name, workers=1, progress=False)
        status = read_record(Course.current(), name, "student000")
        assert summary.graded == 1, status
        tests = {c.grade_id for c in assignments.load(name).tests}
        lost = {k: v for k, v in status["scores"].items() if k in tests and v[0] != v[1]}
        assert not lost, (lost, status["reason"])
    finally:
        shutil.rmtree(root, ignore_errors=True)
