"""`course convert`: plain nbgrader asserts rewritten as expectations (tests/fixtures/plain).

Each converted form is run as a person would run it (no grader: a failed
expectation raises like the assert did) with a right and a wrong answer, so
the rewrite keeps what the assert meant; the slow test takes the fixture from
"refused, with what to do" to a release whose selfcheck passes.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import numpy as np
import pytest

from conftest import fixture_course

from course_tools import cli, testcells
from course_tools.authoring import convert
from course_tools.grading import reference
from course_tools.grading.job import Kit, Settings
from course_tools.layout import Course

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def plain_course(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The plain nbgrader assignment (tests/fixtures/plain) as the current course."""
    return fixture_course("plain", tmp_path, monkeypatch)


def _notebook(course: Path) -> Path:
    return course / "notebooks" / "plain" / "plain.ipynb"


def _hidden(code: str) -> str:
    return f"{testcells.markers.MARKERS['hidden'][0]}\n{code}\n{testcells.markers.MARKERS['hidden'][1]}"


def _convert(code: str) -> str:
    """One hidden test converted, ``f`` being the student's answer and numpy imported as np."""
    return convert.CellConverter("test_f", {"f"}, "np", import_checks=True).convert(_hidden(code))


def _runs(code: str, f) -> bool:  # noqa: ANN001
    """Run a test cell as a person would (a failed expectation raises); True if it passes."""
    try:
        exec(code, {"np": np, "f": f, "approx": pytest.approx})  # noqa: S102 (the test's own code)
    except AssertionError:
        return False
    return True


FORMS = [  # (assert, a right f, a wrong f, text the expectation must hold)
    ('assert f(2) == 4, "f(2) should be 4"', lambda x: x * x, lambda x: x + x + 1,
     'checks.expect(f(2), 4, "f(2) should be 4", rtol=0, atol=0)'),
    ("assert 4 == f(2)", lambda x: x * x, lambda x: 5, "checks.expect(f(2), 4, 'test_f: hidden check 1 failed'"),
    ("assert np.isclose(f(0.5), np.sqrt(0.25), atol=1e-3)", lambda x: x + 1e-4, lambda x: x + 1e-2,
     "atol=1e-3"),
    ("assert np.allclose(f(np.arange(3.0)), [0.0, 1.0, 4.0])", lambda x: x ** 2, lambda x: 2 * x,
     "np.asarray(f(np.arange(3.0)))"),
    ('np.testing.assert_allclose(f(3.0), 9.0, err_msg="square it")', lambda x: x * x, lambda x: x * x + 1e-5,
     '"square it", rtol=1e-07, atol=0'),
    ("np.testing.assert_array_equal(f(np.arange(3)), np.arange(3) * 2)", lambda x: x * 2, lambda x: x + 2,
     "rtol=0, atol=0"),
    ("np.testing.assert_almost_equal(f(1.0), 2.0, decimal=3)", lambda x: 2.0004, lambda x: 2.01, "atol=0.0015"),
    ('assert isinstance(f(1), float), "return a float"', lambda x: 1.0, lambda x: 1,
     'checks.expect_true(isinstance(f(1), float), "return a float")'),
    ("assert abs(f(2.0) - 4.0) < 0.01", lambda x: 4.001, lambda x: 4.1, "rtol=0, atol=0.01"),
    ("assert f(2.0) == approx(4.0, abs=0.1)", lambda x: 4.05, lambda x: 4.2, "rtol=0, atol=0.1"),
]


@pytest.mark.parametrize("code, right, wrong, expectation", FORMS, ids=[f[0][:40] for f in FORMS])
def test_each_form_keeps_its_meaning(code: str, right, wrong, expectation: str) -> None:  # noqa: ANN001
    assert _runs(_hidden(code), right) and not _runs(_hidden(code), wrong)  # what the assert meant
    converted = _convert(code)
    assert expectation in converted
    assert "assert" not in converted.replace("assert_", "")
    assert _runs(converted, right), converted
    assert not _runs(converted, wrong), converted
    assert testcells.expectation_count(converted) == 1
    assert testcells.target_leaks(converted) == []
    assert "expect_true" in converted or "None" in testcells.student_version(converted)  # no target computed there


@pytest.mark.parametrize("code, why", [
    ("assert f(2) != 3", "no value to match"),
    ("assert f(2) > 3", "not a value to match"),
    ("assert f(2)", "no value to match"),
    ("assert f(2) == f(3)", "both sides"),
    ("assert np.sqrt(4) == 2", "neither side"),
    ("np.testing.assert_array_less(f(1), 3)", "not one of the numpy.testing assertions"),
    ("x = 1; assert f(x) == 1", "shares its line"),
    ("with pytest.raises(ValueError):\n    f(-1)", "raises"),
])
def test_what_it_cannot_convert_is_reported_with_its_line(code: str, why: str) -> None:
    with pytest.raises(convert.NotConvertible) as caught:
        _convert("_y = 0\n" + code)
    assert why in caught.value.reason
    assert caught.value.line == 3  # the hidden marker, _y, then the assert


def test_a_hidden_value_only_the_expected_side_uses_moves_into_reference() -> None:
    converted = _convert("_xs = [1.0, -2.0]\n_want = sum(x * x for x in _xs) / 2\n"
                         "assert np.isclose(f(_xs), _want), \"average the squares\"")
    student = testcells.student_version(converted)
    assert "_want" not in student and "_xs = [1.0, -2.0]" in student  # _xs feeds the student's call too
    assert _runs(converted, lambda xs: sum(x * x for x in xs) / 2)
    assert not _runs(converted, lambda xs: (sum(xs) / 2) ** 2)


def test_a_visible_assert_stays_and_gets_a_hidden_copy() -> None:
    cell = convert.CellConverter("test_f", {"f"}, "np", import_checks=False).convert('assert f(2) == 4, "four"')
    assert testcells.visible_part(cell) == 'assert f(2) == 4, "four"'  # what students see is unchanged
    assert testcells.expectation_count(cell) == 1


def test_dry_run_writes_nothing_and_write_keeps_the_original(plain_course: Path,
                                                             capsys: pytest.CaptureFixture) -> None:
    path = _notebook(plain_course)
    original = path.read_bytes()
    assert cli.main(["convert", "plain", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "3 test cells converted, 0 left unchanged" in out and "+checks.expect(" in out
    assert path.read_bytes() == original
    assert cli.main(["convert", str(path), "--write"]) == 0
    backup = plain_course / "notebooks" / "plain.ipynb.orig"  # not in the assignment folder: never released
    assert backup.read_bytes() == original
    assert list(path.parent.iterdir()) == [path]
    nb = nbformat.read(path, as_version=4)
    tests = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade", False) and c.cell_type == "code"]
    assert all(testcells.expectation_count(c.source) > 0 and not testcells.target_leaks(c.source) for c in tests)
    assert cli.main(["convert", "plain", "--write"]) == 0  # converted already: nothing changes, no new backup
    assert not (plain_course / "notebooks" / "plain.ipynb.orig.2").exists()


def test_a_partly_converted_assignment_is_refused_with_what_to_do(plain_course: Path,
                                                                   capsys: pytest.CaptureFixture) -> None:
    path = _notebook(plain_course)
    nb = nbformat.read(path, as_version=4)
    extra = nbformat.v4.new_code_cell('assert count_vowels("a") != 0, "a is a vowel"', metadata={"nbgrader": {
        "grade": True, "grade_id": "test_not_zero", "locked": True, "points": 1, "schema_version": 3,
        "solution": False}})
    nb.cells.append(extra)
    nbformat.write(nb, path)
    assert cli.main(["convert", "plain", "--write"]) == 1
    out = capsys.readouterr().out
    assert f"test_not_zero (cell {extra.id}) line 1: " in out
    converted = nbformat.read(path, as_version=4)
    assert converted.cells[-1].source == extra.source  # left exactly as it was
    course = Course.current()
    assert reference.unconverted(course, "plain") == ["test_not_zero"]
    with pytest.raises(reference.GradingSetupError) as refused:  # what `course autograde` and `release` say
        reference.make(course, Kit("plain", ["plain"], b""), Settings())
    assert "test_not_zero" in str(refused.value)
    assert "run `course convert plain` (or rewrite the test cell with checks.expect)" in str(refused.value)
    assert "course autograde" not in str(refused.value)


@pytest.mark.slow
def test_plain_assignment_from_refused_to_selfchecked(plain_course: Path, capsys: pytest.CaptureFixture) -> None:
    from course_tools.authoring.selfcheck import selfcheck
    from course_tools.grading.export import rows

    advice = "run `course convert plain` (or rewrite the test cell with checks.expect)"
    assert cli.main(["release", "plain"]) == 1  # released, but no reference values: nothing to judge
    assert advice in capsys.readouterr().out
    folder = plain_course / "submitted" / "alice" / "plain"
    folder.mkdir(parents=True)
    shutil.copy(_notebook(plain_course), folder / "plain.ipynb")
    assert cli.main(["autograde", "plain", "--no-sandbox", "--workers", "1"]) == 2
    assert advice in capsys.readouterr().err
    (row,) = rows(Course.current(), ["plain"])
    assert row["status"] == "not graded" and advice in row["reason"] and "course autograde" not in row["reason"]

    assert cli.main(["convert", "plain", "--write"]) == 0
    assert cli.main(["release", "plain"]) == 0
    report = selfcheck("plain", fast=True)
    assert report.ok, report.problems
    assert report.summary.startswith("selfcheck plain: OK solution 5/5, blank 0/5, mutants 3/3 rejected"), \
        report.summary
