"""Shortcut mutants (calling given code instead of answering): registered as such, reported on a line
of their own by `course selfcheck`, and every one must be rejected."""

from __future__ import annotations

from pathlib import Path

from course_tools.authoring import mutants
from course_tools.authoring.selfcheck import Report, _report_shortcuts


def test_a_mutant_marked_shortcut_is_read_as_one(toy_course: Path) -> None:
    with open(toy_course / "tests" / "mutants" / "toy.toml", "a") as f:
        f.write('\n[[mutant]]\nname = "via_given"\nshortcut = true\ncell = "square"\ntargets = ["test_square"]\n'
                'edits = [["return x * x", "from course_utils.given import toy\\n    return toy.square(x)"]]\n')
    found = {m.name: m.shortcut for m in mutants.load_mutants("toy")}
    assert found["via_given"] is True and found["doubles"] is False


def _report(lines: list[str], problems: list[str]) -> Report:
    report = Report("toy")
    report.lines, report.problems = list(lines), list(problems)
    return report


def test_selfcheck_reports_shortcuts_on_their_own_line_and_requires_every_one_rejected() -> None:
    registered = [mutants.Mutant("plain", "f", ("test_f",), ""),
                  mutants.Mutant("short_a", "f", ("test_f",), "", shortcut=True),
                  mutants.Mutant("short_b", "g", ("test_g",), "", shortcut=True)]
    report = _report(["mutant plain: rejected (test_f 0/1)", "mutant short_a: rejected (test_f 0/1)",
                      "mutant short_b: rejected (test_g 0/2)"], [])
    _report_shortcuts(report, registered)
    assert report.lines[-1] == "shortcuts through given code: 2/2 rejected" and report.ok

    survived = _report(["mutant short_a: rejected (test_f 0/1)", "mutant short_b: SURVIVED (test_g 2/2)"],
                       ["mutant short_b (uses given code) survives test_g"])
    _report_shortcuts(survived, registered)
    assert survived.lines[-1] == "shortcuts through given code: 1/2 rejected (NOT rejected: short_b)"
    assert len(survived.problems) == 1  # the survivor is already a problem; not counted twice

    ungraded = _report(["mutant short_a: rejected (test_f 0/1)"], [])  # short_b never graded
    _report_shortcuts(ungraded, registered)
    assert not ungraded.ok and "short_b" in ungraded.problems[-1]

    none = _report(["mutant plain: rejected (test_f 0/1)"], [])
    _report_shortcuts(none, registered[:1])
    assert none.lines == ["mutant plain: rejected (test_f 0/1)"]
