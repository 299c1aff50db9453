"""A term, not a batch: three assignments with due dates and weights (course.toml), extensions
(extensions.csv), hand-ins through nbgrader's exchange, files and the LMSes' zips, grace days that
run out, a hidden test fixed mid-term and judged again without a kernel, and the term's grade
file in plain CSV and as Canvas's and Moodle's imports.

The three assignments are the toy (tests/fixtures/toy) and two copies of it under other names
(toy2, toy3): real notebooks would cost CI minutes for nothing the term adds. Most students hand
in only the toy.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import zipfile
from datetime import timedelta
from pathlib import Path

import nbformat
import pytest

from course_tools import cli
from course_tools.grading import rejudge as rejudge_module
from course_tools.grading.late import Late, compute, policy
from course_tools.grading.deadlines import Term, load, parse_time
from course_tools.layout import Course

STUDENTS = [f"stud{i:02d}" for i in range(40)]
ON_TIME = "2026-10-01 10:00:00.000000 UTC"  # toy is due 2026-10-01 23:59 UTC
WRONG_SQUARE = ("return x * x", "return x + x")
NEAR_SQUARE = ("return x * x", "return x * x * (1 + 1e-9)")  # right to 1e-9: what the fixed test accepts
TIGHT = ('checks.expect(square(-2), 4, "square of a negative number should be positive")',
         'checks.expect(square(-2), 4, "square of a negative number should be positive", rtol=1e-12, atol=0)')
COURSE_TOML = """\
[course]
timezone = "UTC"

[assignments.toy]
due = "2026-10-01 23:59"
weight = 1

[assignments.toy2]
due = "2026-10-08 23:59"
weight = 2

[assignments.toy3]
due = "2026-10-15 23:59"
weight = 1
"""


def _copy_assignment(root: Path, name: str, edit: tuple[str, str] | None = None) -> None:
    nb = nbformat.read(root / "notebooks" / "toy" / "toy.ipynb", as_version=4)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "test_square":
            cell.source = cell.source.replace("assert square(3) == 9", "assert abs(square(3) - 9) < 1e-6")
            if edit:
                cell.source = cell.source.replace(*edit)
    (root / "notebooks" / name).mkdir(exist_ok=True)
    nbformat.write(nb, root / "notebooks" / name / f"{name}.ipynb")


def _notebook(root: Path, name: str, replace: tuple[str, str] | None = None) -> str:
    nb = nbformat.read(root / "notebooks" / name / f"{name}.ipynb", as_version=4)
    for cell in nb.cells:
        if replace and replace[0] in cell.source and cell.metadata.get("nbgrader", {}).get("solution"):
            cell.source = cell.source.replace(*replace)
    return nbformat.writes(nb)


def _place(root: Path, student: str, name: str, text: str, stamp: str) -> None:
    """A submission as `nbgrader collect` leaves it."""
    folder = root / "submitted" / student / name
    folder.mkdir(parents=True)
    (folder / f"{name}.ipynb").write_text(text)
    (folder / "timestamp.txt").write_text(stamp)


def _submit_through_exchange(root: Path, text: str, stamp: str) -> str:
    """`nbgrader submit` as this machine's user (nbgrader names the student after it), and the time it
    came in, in the exchange's timestamp.txt, set to ``stamp``; returns the student's id."""
    home = root.parent / "home"
    (home / "dl-course" / "toy").mkdir(parents=True)
    (home / "dl-course" / "toy" / "toy.ipynb").write_text(text)
    exchange = [f"--Exchange.root={root / 'exchange'}", "--Exchange.path_includes_course=True",
                "--CourseDirectory.course_id=dl-course"]
    done = subprocess.run([sys.executable, "-m", "nbgrader", "submit", "toy", *exchange], cwd=home,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    (entry,) = (root / "exchange" / "dl-course" / "inbound").iterdir()
    (entry / "timestamp.txt").write_text(stamp)
    return entry.name.split("+")[0]


def _zip(path: Path, entries: dict[str, str], when: tuple) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in entries.items():
            archive.writestr(zipfile.ZipInfo(name, date_time=when), text)
    return path


def _grade_written(root: Path, assignment: str, students: list[str]) -> None:
    """What a TA does in the Formgrader for each written answer."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        for student in students:
            grade = gb.find_grade("why_negative", assignment, assignment, student)
            grade.manual_score, grade.needs_manual_grade = 1, False
        gb.db.commit()


def _penalties(root: Path) -> dict[str, float]:
    """nbgrader's own late penalty of every submission in the gradebook (what the Formgrader and
    `nbgrader export` show), by "student/assignment"."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        return {f"{sub.student_id}/{a.name}": sum(nb.late_submission_penalty or 0.0 for nb in sub.notebooks)
                for a in gb.assignments for sub in a.submissions}


def _extensions(root: Path) -> dict[str, object]:
    """Each submission's extension in the gradebook, where one is set."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        return {f"{sub.student_id}/{a.name}": sub.extension for a in gb.assignments for sub in a.submissions
                if sub.extension is not None}


def _export(root: Path, tmp: Path, *args: str) -> list[list[str]]:
    out = tmp / "out.csv"
    assert cli.main([*args, "-o", str(out)]) == 0
    return list(csv.reader(io.StringIO(out.read_text())))


def _table(rows: list[list[str]]) -> dict[str, dict[str, str]]:
    return {r[0]: dict(zip(rows[0], r)) for r in rows[1:]}


def _forbid_kernels(monkeypatch: pytest.MonkeyPatch) -> None:
    """No kernel, no process of any kind can start."""
    import multiprocessing.context

    import jupyter_client.manager

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a process was started during rejudge")

    monkeypatch.setattr(jupyter_client.manager.KernelManager, "start_kernel", refuse)
    monkeypatch.setattr(jupyter_client.manager.AsyncKernelManager, "start_kernel", refuse)
    monkeypatch.setattr(subprocess.Popen, "__init__", refuse)
    monkeypatch.setattr(multiprocessing.context.Process, "start", refuse)
    for name in ("fork", "forkpty", "posix_spawn", "posix_spawnp", "system"):
        monkeypatch.setattr(os, name, refuse)


@pytest.mark.slow
def test_a_term(toy_course: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                capsys: pytest.CaptureFixture) -> None:
    root = toy_course
    _copy_assignment(root, "toy2")
    _copy_assignment(root, "toy3", edit=TIGHT)  # toy3's hidden test is too strict: fixed mid-term
    (root / "course.toml").write_text(COURSE_TOML)
    (root / "extensions.csv").write_text("student,assignment,due,days,reason\n"
                                         "stud01,toy,,3,illness\n"
                                         "stud02,toy2,2026-10-12 23:59,,family\n")
    assert cli.main(["release", "toy", "toy2", "toy3"]) == 0
    assert cli.main(["release", "toy2", "--no-reference", "--due", "2026-10-09 23:59"]) == 2  # course.toml wins
    assert "change it there" in capsys.readouterr().err

    # toy: every student; stud00 two days late, stud01 two days late inside a 3-day extension,
    # stud03 and stud04 late through the exchange, three wrong answers
    solved, wrong = _notebook(root, "toy"), _notebook(root, "toy", WRONG_SQUARE)
    (root / "exchange").mkdir(mode=0o1777)
    os.chmod(root / "exchange", 0o1777)  # as nbgrader wants its exchange
    assert subprocess.run([sys.executable, "-m", "nbgrader", "release_assignment", "toy"], cwd=root,
                          capture_output=True).returncode == 0
    through_exchange = _submit_through_exchange(root, solved, "2026-10-02 08:00:00.000000 UTC")  # 1 day late
    assert subprocess.run([sys.executable, "-m", "nbgrader", "collect", "toy"], cwd=root,
                          capture_output=True).returncode == 0
    stamp = root / "submitted" / through_exchange / "toy" / "timestamp.txt"
    assert stamp.read_text().startswith("2026-10-02 08:00")
    late_toy = {"stud00": "2026-10-03 12:00:00.000000 UTC", "stud01": "2026-10-03 12:00:00.000000 UTC",
                "stud04": "2026-10-06 08:00:00.000000 UTC"}  # 5 days late
    for i, student in enumerate(STUDENTS):
        _place(root, student, "toy", wrong if i in (10, 11, 12) else solved, late_toy.get(student, ON_TIME))

    # toy2 through Canvas (late ones marked _LATE), toy3 through Moodle; ten students each
    toy2 = {f"stud{i:02d}_{1000 + i}_{5000 + i}_toy2.ipynb": _notebook(root, "toy2") for i in range(10)}
    _zip(tmp_path / "canvas.zip", {k: v for k, v in toy2.items() if not k.startswith(("stud00", "stud02"))},
         (2026, 10, 8, 20, 0, 0))
    _zip(tmp_path / "canvas-late.zip", {k.replace("_1", "_LATE_1", 1): v for k, v in toy2.items()
                                        if k.startswith(("stud00", "stud02"))}, (2026, 10, 10, 9, 0, 0))
    assert cli.main(["collect-zip", "toy2", str(tmp_path / "canvas.zip")]) == 0
    assert cli.main(["collect-zip", "toy2", str(tmp_path / "canvas-late.zip")]) == 0
    near = _notebook(root, "toy3", NEAR_SQUARE)
    toy3 = {f"Stud{i:02d}_{4200 + i}_assignsubmission_file_toy3.ipynb": near if i in (5, 6, 7) else
            _notebook(root, "toy3") for i in range(10)}
    _zip(tmp_path / "moodle.zip", toy3, (2026, 10, 16, 9, 0, 0))  # everyone a day late for toy3
    assert cli.main(["collect-zip", "toy3", str(tmp_path / "moodle.zip")]) == 0
    assert sorted(p.name for p in (root / "submitted").iterdir()) == sorted([*STUDENTS, through_exchange])

    for name in ("toy", "toy2", "toy3"):
        assert cli.main(["autograde", name, "--workers", "2", "--cell-timeout", "60", "--run-timeout", "300"]) == 0
    graded = {name: sorted(p.parent.parent.name for p in (root / "autograded").glob(f"*/{name}/{name}.ipynb"))
              for name in ("toy", "toy2", "toy3")}
    assert len(graded["toy"]) == 41 and len(graded["toy2"]) == 10 and len(graded["toy3"]) == 10
    # nbgrader's AssignLatePenalties asked the course's policy while grading: a share of the 4 automatic
    # points (the written answer is not marked yet); stud01 is late by the due date, not by its extension
    penalties = _penalties(root)
    assert penalties["stud00/toy2"] == pytest.approx(0.4) and penalties["stud04/toy"] == pytest.approx(0.8)
    assert penalties["stud01/toy"] == 0.0 and penalties["stud00/toy"] == 0.0
    waiting = {("toy", "stud39"), ("toy2", "stud09")}  # their written answers are not marked
    for name, students in graded.items():
        _grade_written(root, name, [s for s in students if (name, s) not in waiting])
    record = json.loads((root / "grading" / "toy3" / "stud05.json").read_text())
    assert [p["label"] for p in record["published"]["test_square"]] == [
        "square of a negative number should be positive", "square of a negative fraction should be positive"]
    capsys.readouterr()

    # per assignment: lateness, grace days, the score before and after
    rows = _table([[r[0] + "/" + r[1], *r[1:]] for r in _export(root, tmp_path, "export", "toy", "toy2", "toy3")])
    before_rejudge = rows
    assert rows["stud00/toy"]["late"] == "late 1 d 12 h 1 min" and rows["stud00/toy"]["grace_days"] == "2"
    assert rows["stud00/toy"]["penalty"] == "0.0" and rows["stud00/toy"]["score"] == "5.0"
    assert rows["stud00/toy2"]["grace_days"] == "1" and rows["stud00/toy2"]["penalty"] == "0.5"  # 2 days: 1 charged
    assert rows["stud00/toy2"]["score_before_penalty"] == "5.0" and rows["stud00/toy2"]["score"] == "4.5"
    assert rows["stud00/toy3"]["grace_days"] == "0" and rows["stud00/toy3"]["penalty"] == "0.5"  # grace ran out
    assert rows["stud01/toy"]["late"] == "on time"  # inside the extension
    assert rows["stud02/toy2"]["late"] == "on time" and rows["stud02/toy2"]["due"] == "2026-10-12 23:59 UTC"
    assert rows[f"{through_exchange}/toy"]["grace_days"] == "1" and rows[f"{through_exchange}/toy"]["score"] == "5.0"
    assert rows["stud04/toy"]["late_days"] == "5" and rows["stud04/toy"]["grace_days"] == "3"
    assert rows["stud04/toy"]["score"] == "4.0"  # 2 charged days: 20% of 5
    assert rows["stud20/toy2"]["status"] == "missing" and rows["stud20/toy2"]["score"] == ""
    assert rows["stud05/toy3"]["score_before_penalty"] == "3.0"  # the too strict test failed it

    # the hidden test is fixed; rejudge starts no kernel and changes exactly the near-square scores
    _copy_assignment(root, "toy3")
    assert cli.main(["release", "toy3"]) == 0
    capsys.readouterr()
    with monkeypatch.context() as m:
        _forbid_kernels(m)
        assert cli.main(["rejudge", "toy3"]) == 0
    out = capsys.readouterr().out
    changed = sorted(line.split(":")[0].strip() for line in out.splitlines() if "->" in line)
    assert changed == ["stud05", "stud06", "stud07"], out
    assert "stud05: 3 -> 5  (test_square)" in out and "need their code run again" not in out
    rows = _table([[r[0] + "/" + r[1], *r[1:]] for r in _export(root, tmp_path, "export", "toy", "toy2", "toy3")])
    assert rows["stud05/toy3"]["score_before_penalty"] == "5.0" and rows["stud05/toy3"]["score"] == "5.0"
    assert rows["stud05/toy3"]["grace_days"] == "1"  # a day late, covered by grace
    # in the gradebook, exactly those three scores changed, and nothing else of any row
    assert rows.keys() == before_rejudge.keys()
    differ = {key: [c for c in row if row[c] != before_rejudge[key][c]] for key, row in rows.items()
              if row != before_rejudge[key]}
    assert differ == {f"{s}/toy3": ["score", "score_before_penalty"] for s in ("stud05", "stud06", "stud07")}
    assert "TestFailed" not in (root / "autograded" / "stud05" / "toy3" / "toy3.ipynb").read_text()

    # the whole term: plain CSV
    term = _table(_export(root, tmp_path, "term"))
    assert term["stud00"]["late_days"] == "5" and term["stud00"]["grace_days_used"] == "3"
    assert term["stud00"]["grace_days_left"] == "0"
    assert term["stud00"]["weighted_percent"] == "92.5"  # (5/5 + 2 * 4.5/5 + 4.5/5) / 4
    assert term["stud20"]["missing"] == "toy2 toy3" and term["stud20"]["weighted_percent"] == "25.0"
    assert term["stud39"]["status"] == "incomplete" and term["stud39"]["weighted_percent"] == ""
    assert "toy: needs manual grading" in term["stud39"]["reason"]
    assert term["stud09"]["status"] == "incomplete" and term["stud09"]["weighted_percent"] == ""
    # course term brought the gradebook up to date: extensions, and nbgrader's penalties now agree with
    # the export's on every graded row (the written answers were marked after autograding)
    assert _extensions(root) == {"stud01/toy": timedelta(days=3), "stud02/toy2": timedelta(days=4)}
    rows, penalties = _table([[r[0] + "/" + r[1], *r[1:]] for r in _export(root, tmp_path, "export")]), _penalties(root)
    assert penalties["stud00/toy2"] == pytest.approx(0.5)
    for key, row in rows.items():
        if row["score"] != "":
            assert penalties[key] == pytest.approx(float(row["penalty"] or 0)), key

    # ... and as the LMSes import it: the columns of tests/test_lms.py, a column per assignment
    canvas = _export(root, tmp_path, "term", "--format", "canvas")
    assert canvas[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "toy", "toy2", "toy3",
                         "Term total (%)"]
    assert canvas[1][0].strip() == "Points Possible" and canvas[1][5:] == ["5", "5", "5", "100"]
    grades = {row[1]: row[5:] for row in canvas[2:]}
    assert grades["1000"] == ["5", "4.5", "4.5", "92.5"] and len(grades) == 10
    assert grades["1009"] == ["5", "", "5", ""]  # not final: left empty, never a number that looks final
    moodle = _export(root, tmp_path, "term", "--format", "moodle")
    assert moodle[0] == ["Identifier", "Full name", "Email address", "toy Grade", "toy Maximum Grade",
                         "toy2 Grade", "toy2 Maximum Grade", "toy3 Grade", "toy3 Maximum Grade",
                         "Term total (%) Grade", "Term total (%) Maximum Grade", "Feedback comments"]
    by_id = {row[0].removeprefix("Participant "): row for row in moodle[1:]}
    assert sorted(by_id) == [str(4200 + i) for i in range(10)]
    assert {tuple(row[4:11:2]) for row in moodle[1:]} == {("5", "5", "5", "100")}  # every maximum, every row
    assert by_id["4205"][3:10:2] == ["5", "5", "5", "100"] and by_id["4205"][1] == "Stud05"
    assert by_id["4200"][3:10:2] == ["5", "4.5", "4.5", "92.5"] and by_id["4209"][3:10:2] == ["5", "", "5", ""]


def test_grace_days_are_spent_in_term_order_and_penalties_capped() -> None:
    from course_tools.config import load_config

    rules = policy(load_config())  # the course's: 3 grace days, 10% a day, at most 50%
    term = Term({"a": parse_time("2026-10-01 23:59"), "b": parse_time("2026-10-08 23:59"),
                 "c": parse_time("2026-10-15 23:59")}, {}, {("ext", "a"): parse_time("2026-10-05 23:59")})
    times = {("x", "c"): parse_time("2026-10-25 23:59"), ("x", "a"): parse_time("2026-10-03 00:00"),
             ("x", "b"): parse_time("2026-10-09 00:01"), ("ext", "a"): parse_time("2026-10-04 00:00")}
    late = compute(rules, term, times)
    assert (late["x", "a"].days, late["x", "a"].grace_used, late["x", "a"].fraction) == (2, 2, 0.0)
    assert (late["x", "b"].days, late["x", "b"].grace_used, late["x", "b"].fraction) == (1, 1, 0.0)
    assert (late["x", "c"].days, late["x", "c"].grace_used, late["x", "c"].fraction) == (10, 0, 0.5)  # capped
    assert late["ext", "a"] == Late(times["ext", "a"], parse_time("2026-10-05 23:59"))  # on time
    assert late["ext", "a"].text() == "on time" and late["x", "b"].text() == "late 2 min"


def test_course_files_are_checked_with_the_line_named(toy_course: Path) -> None:
    (toy_course / "course.toml").write_text('[assignments.toy]\ndue = "2026-10-01"\nweight = 2\n')
    (toy_course / "extensions.csv").write_text("student,assignment,due,days\nann,toy,,2\nbob,toy,2026-10-09,1\n"
                                               "cy,nope,,1\n")
    with pytest.raises(ValueError) as info:
        load(Course.current())
    assert "line 3: give either a new due date or a number of extra days" in str(info.value)
    assert "line 4: no assignment 'nope'" in str(info.value)
    (toy_course / "extensions.csv").write_text("student,assignment,due,days\nann,toy,,2\n")
    term = load(Course.current())
    assert term.due["toy"] == parse_time("2026-10-01 23:59:59") and term.weight("toy") == 2
    assert term.due_for("ann", "toy") == parse_time("2026-10-03 23:59:59")


def test_stale_tests_need_a_run_only_where_stored_values_cannot_answer() -> None:
    want = {"t1": ["a", "b"], "t2": ["c", "d"]}
    records = {"full": {"published": {"t1": [{"label": "a"}, {"label": "b"}], "t2": [{"label": "c"}]}},
               "stopped": {"published": {"t1": [{"label": "a"}], "t2": [{"label": "c"}]}},
               "changed": {"published": {"t1": [{"label": "a"}, {"label": "x"}], "t2": [{"label": "c"}]}},
               "old": {}}
    # t1: "stopped" stopped early (its code raised), "full" shows the test publishes a, b; t2 grew: no
    # submission ever published "d", so every one needs a run for it
    assert rejudge_module.stale_tests(want, records) == {
        "full": ["t2"], "stopped": ["t2"], "changed": ["t1", "t2"], "old": ["t1", "t2"]}


def test_times_are_read_in_the_course_time_zone_and_extra_days_keep_the_clock(toy_course: Path) -> None:
    # Europe/Zurich is UTC+2 until 2026-10-25, UTC+1 after; the gradebook keeps naive UTC
    assert parse_time("2026-10-09 23:59", "Europe/Zurich") == parse_time("2026-10-09 21:59")
    assert parse_time("2026-11-09", "Europe/Zurich") == parse_time("2026-11-09 22:59:59")
    assert parse_time("2026-10-09T23:59+00:00", "Europe/Zurich") == parse_time("2026-10-09 23:59")
    (toy_course / "course.toml").write_text('[course]\ntimezone = "Europe/Zurich"\n\n'
                                            "[assignments.toy]\ndue = 2026-10-24T23:59:00\n")  # a TOML date-time
    (toy_course / "extensions.csv").write_text("student,assignment,due,days\nann,toy,,2\n")
    term = load(Course.current())
    assert term.due["toy"] == parse_time("2026-10-24 21:59")  # 23:59 in Zurich, not in UTC
    assert term.due_for("ann", "toy") == parse_time("2026-10-26 22:59")  # 23:59 in Zurich two days later
