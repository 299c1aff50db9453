"""Every assignment proves itself sound: `course selfcheck --fast` on each one.

This grades each notebook several times exactly as `course autograde` does
(real nbgrader, the sandbox, judging outside the kernel), in FAST mode: the
solution once to make the reference values and once judged against them,
the blank release, and one run per registered mutant, in parallel.
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
