"""`course report`: what students fail, checked against a class whose answers are known.

tests/report_class.py writes 30 judged students of the toy assignment (tests/fixtures/toy), one
submission that could not be graded and two missing, with the values their runs published, the
reference values, `course.toml` and a gradebook: no kernel runs. Every number below follows from
the roster there.
"""

from __future__ import annotations

import csv
import shutil
import statistics
import tomllib
from pathlib import Path

import pytest
import report_class
from browser_support import keep_screenshot, opened
from report_class import FRACTION, HOSTILE, MEAN, NEGATIVE, SCRIPT, TOY
from similarity_submissions import write_record

from course_tools.authoring import mutants
from course_tools.authoring import mutant_candidates as report_mutants
from course_tools.grading import report, report_page
from course_tools.grading.similarity import shown_value
from course_tools.layout import Course
from course_utils import checks

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The class, written once (nbgrader's first opening of a gradebook alone takes seconds)."""
    root = tmp_path_factory.mktemp("class") / "course"
    shutil.copytree(REPO / "tests" / "fixtures" / "toy", root)
    shutil.copy(REPO / "nbgrader_config.py", root / "nbgrader_config.py")
    report_class.build(root)
    return root


@pytest.fixture
def klass(toy_course: Path, built: Path) -> Path:
    """A fresh copy of the class as the current course."""
    shutil.rmtree(toy_course)
    shutil.copytree(built, toy_course)
    return toy_course


def test_numbers_of_a_known_class(klass: Path) -> None:
    r = report.assignment_report(Course(klass), TOY)
    assert dict(r.statuses) == {"graded": 26, "needs manual grading": 3, "flagged": 1, "not graded": 1, "missing": 2}
    assert r.late == 3 and r.max_score == 5
    rates = {c.grade_id: (c.kind, c.passed, c.marked, c.waiting) for c in r.cells}
    assert rates == {"test_square": ("test", 16, 30, 0), "test_mean_square": ("test", 23, 30, 0),
                     "why_negative": ("written answer", 17, 27, 3)}
    assert [(f.test, f.label, f.students, f.example) for f in r.failures] == [
        ("test_square", NEGATIVE, 11, "s11"),  # doubles, signed, and the two whose test stopped early
        ("test_mean_square", MEAN, 7, HOSTILE),
        ("test_square", FRACTION, 3, "s20")]  # right on -2, wrong on -1.5
    assert [(c.test, c.label, checks.decode(c.value), c.students, c.judged, c.example) for c in r.clusters] == [
        ("test_square", NEGATIVE, -4, 9, 28, "s11"),
        ("test_square", FRACTION, -3.0, 6, 28, "s11"),
        ("test_mean_square", MEAN, 0.140625, 4, 30, "s25"),
        ("test_square", FRACTION, -2.25, 3, 28, "s17"),
        ("test_square", FRACTION, 1, 3, 28, "s20"),
        ("test_mean_square", MEAN, SCRIPT, 2, 30, HOSTILE)]  # the odd 9.5625 of s17 alone is no cluster
    assert [n for _, _, n in report.score_bins(r)] == [0, 1, 10, 9, 3, 7]  # scores 0..5, before penalties
    times = [report_class.seconds(n) for n in range(30)]
    assert (statistics.fmean(r.seconds), max(r.seconds)) == (statistics.fmean(times), max(times))


def test_page_and_table(klass: Path, capsys: pytest.CaptureFixture) -> None:
    from course_tools.cli import main

    assert main(["report", TOY]) == 0
    out = capsys.readouterr().out
    assert "toy: 33 submissions" in out and "3 failure messages, 6 shared wrong values" in out
    page = Course(klass).report_page(TOY).read_text()
    assert page.count("<svg") == 2 and "<script" not in page and "<b onclick" not in page
    assert html_escaped(SCRIPT) in page and html_escaped(HOSTILE) in page
    assert "16 of 30" in page and "17 of 27" in page and NEGATIVE in page
    with open(Course(klass).report_table(TOY), newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows[0].keys() == set(report.COLUMNS)
    failure = next(r for r in rows if r["section"] == "failure" and r["what"] == NEGATIVE)
    assert (failure["students"], failure["of"], failure["example_student"]) == ("11", "14", "s11")
    wrong = [r for r in rows if r["section"] == "wrong value"]
    assert [r["value"] for r in wrong[:2]] == ["'-4", "'-3.0"]  # quoted out of a spreadsheet's formulas
    assert next(r for r in rows if r["what"] == "late")["students"] == "3"


def html_escaped(text: str) -> str:
    import html

    return html.escape(text)


def test_hostile_records_are_notes(klass: Path) -> None:
    """Records that are not JSON, or hold anything at all where values belong, never stop the report."""
    folder = klass / "grading" / TOY
    (folder / "junk.json").write_text("{not json")
    (folder / "list.json").write_text("[1, 2]")
    write_record(klass, "odd", "published is a string", {"test_square": ["2", None], "x": 5},
                 assignment=TOY, seconds=float("nan"))
    write_record(klass, "forged", {"test_square": [{"label": NEGATIVE, "value": {"t": "array", "dtype":
                              "float64", "shape": [10**12], "v": "AAAA"}}, 7, "x"], "test_mean_square": "no"},
                              {"test_square": [0.0, 2.0], "test_mean_square": [0.0, 2.0]}, assignment=TOY,
                              seconds=1e308)
    r = report.assignment_report(Course(klass), TOY)
    assert any("junk" in n for n in r.notes) and any("list" in n for n in r.notes)
    assert {c.grade_id: c.marked for c in r.cells if c.kind == "test"} == {"test_square": 31,
                                                                           "test_mean_square": 31}
    assert ("test_square", NEGATIVE, 12) in {(f.test, f.label, f.students) for f in r.failures}
    report_page.make(Course(klass), TOY)  # page and table written whatever the records hold


def test_the_term(klass: Path, capsys: pytest.CaptureFixture) -> None:
    """A row per assignment: the toy, and a second one known only by its status records (no gradebook entry)."""
    from course_tools.cli import main

    for n, student in enumerate(report_class.roster()[:4]):
        nb = report_class.notebook(klass, student)
        write_record(klass, student.name, report_class.published(nb), {}, assignment="extra",
                                  seconds=5.0 + n)
    assert main(["report", "--term"]) == 0
    page = Course(klass).report_page().read_text()
    assert page.count("<svg") == 1 and 'id="a-toy"' in page and 'id="a-extra"' in page
    assert "no gradebook entry for this assignment" in page
    with open(Course(klass).report_table(), newline="") as f:
        assert {r["assignment"] for r in csv.DictReader(f)} == {TOY, "extra"}
    assert main(["report"]) == 2


def test_mutant_candidates(klass: Path) -> None:
    """The largest clusters' answer cells, as mutants that reproduce the wrong value they were found by."""
    from course_tools.cli import main

    shutil.rmtree(klass / "submitted" / "s20")  # removed after grading: that cluster is skipped, not an error
    assert main(["report", TOY, "--mutant-candidates"]) == 0
    path = Course(klass).mutant_candidates(TOY)
    entries = tomllib.loads(path.read_text())["mutant"]
    assert [(m["cell"], m["targets"]) for m in entries] == [
        ("square", ["test_square"]), ("mean_square", ["test_mean_square"]), ("square", ["test_square"]),
        ("mean_square", ["test_mean_square"])]
    assert "else x * 2" in entries[0]["source"] and "9 of 28 students" in entries[0]["why"]
    assert SCRIPT in entries[3]["source"]  # a student's code, kept exactly for review (it is never a page)
    registered = Course(klass).mutants_file(TOY)
    shutil.copy(path, registered)
    source = report_class.solution(klass)
    found = mutants.load_mutants(TOY, Course(klass))
    expected = [-4, 0.140625, -4, SCRIPT]
    for mutant, value in zip(found, expected):
        published = report_class.published(mutants.apply(source, mutant))
        assert checks.decode(published[mutant.targets[0]][0]["value"]) == value, mutant.name


def test_toml_strings_survive_any_text() -> None:
    for text in ("plain\ncode\n", "a ''' b", "ends with '", 'quote " and \\ back', "bell \x07 del \x7f cr \r",
                 "surrogate \ud800 here", "emoji \U0001F600"):
        parsed = tomllib.loads(f"x = {report_mutants.toml_string(text)}")["x"]
        assert parsed == text.replace("\ud800", "\ufffd"), text


def test_page_opens_in_chromium_without_errors(klass: Path, tmp_path: Path) -> None:
    """The page as an instructor opens it: no console error, both plots drawn ($REPORT_SHOT gets a copy)."""
    report_page.make(Course(klass), TOY)
    with opened(Course(klass).report_page(TOY)) as (page, errors):
        plots = page.locator("svg")
        assert plots.count() == 2
        for k in range(2):
            box = plots.nth(k).bounding_box()
            assert box and box["width"] > 200 and box["height"] > 100
        keep_screenshot(page, tmp_path, "report", "REPORT_SHOT")
    assert not errors, errors


def test_shown_values_are_cut() -> None:
    assert len(shown_value(checks.encode("x" * 10_000))) < 400
