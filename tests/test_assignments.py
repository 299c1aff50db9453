"""Every assignment proves itself sound: `course selfcheck --fast` on each one.

This grades each notebook several times exactly as `course autograde` does
(real nbgrader, the sandbox, judging outside the kernel), in FAST mode: the
solution once to make the reference values and once judged against them,
the blank release, and mutants, in parallel.

The mutants are a sample, to keep `make test` within its time: every shortcut
through given code and, for each test cell, the first mutant registered for it
(so every hidden test must still reject a wrong answer). `make selfcheck`
grades every registered mutant; so does this test with
``COURSE_SELFCHECK_SAMPLE=all`` (or a number K: the first K per test cell).
"""

from __future__ import annotations

import os

import pytest

from course_tools import assignments
from course_tools.authoring.selfcheck import selfcheck


def _sample() -> int | None:
    value = os.environ.get("COURSE_SELFCHECK_SAMPLE", "1").strip().lower()
    return None if value in {"all", "0", ""} else int(value)


@pytest.mark.slow
@pytest.mark.parametrize("name", assignments.available())
def test_selfcheck(name: str) -> None:
    report = selfcheck(name, fast=True, sample=_sample())
    print("\n".join(report.lines + [report.summary]))
    assert report.ok, "\n".join(report.problems)
