"""Files through an LMS: `course collect-zip` on archives named as Canvas and Moodle name them, and
`course export --format canvas|moodle` grade files that leave unfinished grades empty, never 0.

The archives are built here the way each LMS builds its "download all submissions" zip:
Canvas: `<sortablename>[_LATE]_<user id>_<submission id>_<file>` (a resubmitted file gets `-1`);
Moodle: `<Full Name>_<participant id>_assignsubmission_file_<file>`, or that prefix as a folder.
"""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

import nbformat
import pytest

from course_tools import cli

WHEN = (2026, 11, 20, 14, 30, 0)  # an LMS stamps each file with its upload time


def _notebook(root: Path, solved: bool, written: str = "") -> str:
    """The toy assignment as a student hands it in: the solution, or the blank release with
    (if ``written``) an answer to the written question, which a person must then grade."""
    nb = nbformat.read(root / "notebooks" / "toy" / "toy.ipynb", as_version=4)
    if not solved:
        for cell in nb.cells:
            if cell.metadata.get("nbgrader", {}).get("solution"):
                cell.source = "# YOUR CODE HERE\nraise NotImplementedError()" if cell.cell_type == "code" \
                    else written or "YOUR ANSWER HERE"
    return nbformat.writes(nb)


def _zip(path: Path, entries: dict[str, str], when: tuple = WHEN) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in entries.items():
            archive.writestr(zipfile.ZipInfo(name, date_time=when), text)
    return path


def _canvas_zip(root: Path, path: Path, when: tuple = WHEN) -> Path:
    return _zip(path, {
        "doejane_12345_678901_toy.ipynb": _notebook(root, solved=True),
        "doejane_12345_678901_helper.py": "HELP = 1\n",
        "smithbob_LATE_23456_678902_toy-1.ipynb": _notebook(root, solved=False),
        "leeann_34567_678903_notes.txt": "I could not finish\n",
        "__MACOSX/._doejane_12345_678901_toy.ipynb": "",
        "readme.txt": "not a submission\n",
    }, when)


def test_canvas_archive_lands_in_submitted(toy_course: Path, capsys: pytest.CaptureFixture) -> None:
    archive = _canvas_zip(toy_course, toy_course.parent / "submissions.zip")
    assert cli.main(["collect-zip", "toy", str(archive)]) == 1  # some files matched no student
    out = capsys.readouterr().out
    jane = toy_course / "submitted" / "doejane" / "toy"
    assert nbformat.reads((jane / "toy.ipynb").read_text(), as_version=4).cells
    assert (jane / "helper.py").read_text() == "HELP = 1\n"
    assert (jane / "timestamp.txt").read_text() == "2026-11-20 14:30:00.000000 UTC"
    assert (toy_course / "submitted" / "smithbob" / "toy" / "toy.ipynb").is_file()  # toy-1.ipynb, renamed
    assert "toy-1.ipynb taken as toy.ipynb" in out and "(late)" in out
    assert "UNMATCHED leeann_34567_678903_notes.txt: leeann (canvas 34567): no notebook named toy.ipynb" in out
    assert "UNMATCHED readme.txt: not named the way Canvas or Moodle names submissions" in out
    assert not (toy_course / "submitted" / "leeann").exists()
    assert "__MACOSX" not in out
    assert "2 submissions placed, 0 kept as they were, 2 files not matched to a student" in out
    with open(toy_course / "lms" / "toy.csv", newline="") as f:
        rows = {r["student"]: r for r in csv.DictReader(f)}
    assert rows["doejane"]["lms_id"] == "12345" and rows["smithbob"]["late"] == "yes"


def test_collect_zip_never_overwrites_and_updates_only_with_newer(toy_course: Path,
                                                                   capsys: pytest.CaptureFixture) -> None:
    first = _canvas_zip(toy_course, toy_course.parent / "first.zip")
    cli.main(["collect-zip", "toy", str(first)])
    mine = toy_course / "submitted" / "doejane" / "toy" / "toy.ipynb"
    mine.write_text(mine.read_text().replace("x * x", "x * x  # marked by hand"))
    cli.main(["collect-zip", "toy", str(first)])  # the same archive again: nothing replaced
    assert "marked by hand" in mine.read_text()
    assert "kept      submitted/doejane/toy (pass --update" in capsys.readouterr().out
    cli.main(["collect-zip", "toy", str(first), "--update"])  # not newer: still kept
    assert "marked by hand" in mine.read_text()
    newer = _canvas_zip(toy_course, toy_course.parent / "newer.zip", when=(2026, 11, 21, 9, 0, 0))
    cli.main(["collect-zip", "toy", str(newer), "--update"])
    assert "marked by hand" not in mine.read_text()
    aside = list((toy_course / "lms" / "replaced" / "doejane").glob("toy-*/toy.ipynb"))
    assert len(aside) == 1 and "marked by hand" in aside[0].read_text()  # the replaced one is kept


def test_moodle_archive_flat_and_in_folders(toy_course: Path, capsys: pytest.CaptureFixture) -> None:
    archive = _zip(toy_course.parent / "moodle.zip", {
        "Jane Doe_4242_assignsubmission_file_toy.ipynb": _notebook(toy_course, solved=True),
        "Jane Doe_4545_assignsubmission_file_/toy.ipynb": _notebook(toy_course, solved=False),
        "Zoë Müller_4343_assignsubmission_file_/toy (1).ipynb": _notebook(toy_course, solved=True),
        "Ann Lee_4444_assignsubmission_onlinetext_onlinetext.html": "<p>see attached</p>",
    })
    assert cli.main(["collect-zip", "toy", str(archive)]) == 1
    out = capsys.readouterr().out
    submitted = toy_course / "submitted"
    assert sorted(p.name for p in submitted.iterdir()) == ["jane-doe-4242", "jane-doe-4545", "zoe-muller"]
    assert (submitted / "zoe-muller" / "toy" / "toy.ipynb").is_file()
    assert "Ann Lee_4444_assignsubmission_onlinetext_onlinetext.html: Ann Lee (moodle 4444)" in out


def test_archive_entries_cannot_escape_and_bad_archives_are_refused(toy_course: Path, tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture) -> None:
    archive = _zip(tmp_path / "evil.zip", {"../../doejane_1_2_toy.ipynb": "{}", "/etc/doejane_1_2_toy.ipynb": "{}"})
    assert cli.main(["collect-zip", "toy", str(archive)]) == 1
    assert not (toy_course / "submitted").exists() and not (tmp_path.parent / "doejane_1_2_toy.ipynb").exists()
    not_zip = tmp_path / "download.zip"
    not_zip.write_text("<html>session expired</html>")
    assert cli.main(["collect-zip", "toy", str(not_zip)]) == 2
    assert "is not a readable zip archive" in capsys.readouterr().err


def _grade_written_answer(root: Path, student: str, points: float) -> None:
    """What a TA does in the Formgrader: give the written answer its points (its grade API also
    marks the answer as graded)."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        grade = gb.find_grade("why_negative", "toy", "toy", student)
        grade.manual_score, grade.needs_manual_grade = points, False
        gb.db.commit()


@pytest.mark.slow
@pytest.mark.parametrize("lms", ["canvas", "moodle"])
def test_lms_grade_file_leaves_unfinished_grades_empty(lms: str, toy_course: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture) -> None:
    names = {"canvas": ("doejane_12345_678901_toy.ipynb", "smithbob_23456_678902_toy.ipynb",
                        "leeann_34567_678903_toy.ipynb"),
             "moodle": ("Jane Doe_12345_assignsubmission_file_toy.ipynb",
                        "Bob Smith_23456_assignsubmission_file_toy.ipynb",
                        "Ann Lee_34567_assignsubmission_file_toy.ipynb")}[lms]
    archive = _zip(tmp_path / "all.zip", {names[0]: _notebook(toy_course, solved=True),
                                          names[1]: _notebook(toy_course, solved=False, written="Squares grow."),
                                          names[2]: '{"cells": [ not json'})
    assert cli.main(["collect-zip", "toy", str(archive)]) == 0
    jane, bob, ann = ("doejane", "smithbob", "leeann") if lms == "canvas" else ("jane-doe", "bob-smith", "ann-lee")
    assert cli.main(["release", "toy"]) == 0
    assert cli.main(["autograde", "toy", "--workers", "1"]) == 0
    _grade_written_answer(toy_course, jane, 1)  # jane: finished; bob: his written answer still waits
    capsys.readouterr()
    out_file = tmp_path / f"{lms}.csv"
    assert cli.main(["export", "toy", "--format", lms, "-o", str(out_file)]) == 0
    err = capsys.readouterr().err
    table = list(csv.reader(io.StringIO(out_file.read_text())))
    if lms == "canvas":
        assert table[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "toy"]
        assert table[1][0].strip() == "Points Possible" and table[1][5] == "5"
        grades = {row[1]: row[5] for row in table[2:]}
    else:
        assert table[0] == ["Identifier", "Full name", "Email address", "Grade", "Maximum Grade", "Feedback comments"]
        grades = {row[0].removeprefix("Participant "): row[3] for row in table[1:]}
        assert {row[4] for row in table[1:]} == {"5"}
    assert grades == {"12345": "5", "23456": "", "34567": ""}  # never a 0 for what is not final
    assert f"{bob}: needs manual grading" in err and f"{ann}: not graded" in err
    assert "1 grades for" in err and "2 left empty" in err
    assert jane not in err.split("left empty")[1]
