"""Every assignment proves itself sound: `course selfcheck --fast` on each one.

This executes each notebook several times through real nbgrader (solution,
blank release, one run per registered mutant), in FAST mode.
"""

from __future__ import annotations

import pytest

from course_utils import assignments
from course_utils.selfcheck import selfcheck


@pytest.mark.slow
@pytest.mark.parametrize("name", assignments.available())
def test_selfcheck(name: str) -> None:
    report = selfcheck(name, fast=True)
    print("\n".join(report.lines + [report.summary]))
    assert report.ok, "\n".join(report.problems)
