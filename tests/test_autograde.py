"""Grading at scale: a batch of adversarial submissions of the toy assignment,
graded in parallel in the sandbox; each is graded or flagged with the right
reason, and the others in the batch are unaffected."""

from __future__ import annotations

import csv
import io
import json
import socket
from pathlib import Path

import nbformat
import pytest

from course_tools import cli
from course_tools.grading import sandbox
from course_tools.grading.coordinator import autograde
from course_tools.grading.status import read as read_record
from course_tools.layout import Course
from course_tools.grading.job import Settings

REPO = Path(__file__).resolve().parent.parent


def _solution(course: Path) -> nbformat.NotebookNode:
    return nbformat.read(course / "notebooks" / "toy" / "toy.ipynb", as_version=4)


def _cell(nb: nbformat.NotebookNode, grade_id: str) -> nbformat.NotebookNode:
    return next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def _with(course: Path, grade_id: str, prefix: str = "", replace: tuple[str, str] | None = None):
    nb = _solution(course)
    cell = _cell(nb, grade_id)
    if replace:
        cell.source = cell.source.replace(*replace)
    cell.source = prefix + cell.source
    return nb


def _submit(course: Path, student: str, content, name: str = "toy.ipynb") -> None:
    folder = course / "submitted" / student / "toy"
    folder.mkdir(parents=True)
    path = folder / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        nbformat.write(content, path)
    (folder / "timestamp.txt").write_text("2026-11-20 12:00:00.000000 UTC")


def _outputs(course: Path, student: str, grade_id: str) -> str:
    nb = nbformat.read(course / "autograded" / student / "toy" / "toy.ipynb", as_version=4)
    cell = _cell(nb, grade_id)
    return json.dumps(cell.get("outputs", []))


def _scores(course: Path, student: str) -> dict[str, float]:
    return {k: v[0] for k, v in read_record(Course.current(), "toy", student)["scores"].items()}


def test_sandbox_hides_the_course_and_the_network(tmp_path: Path) -> None:
    writable = tmp_path / "work"
    policy = sandbox.Policy(writable=[writable])
    script = ("import os, socket\n"
              f"for p in ['{REPO}/notebooks', '{REPO}/nbgrader_config.py', '{tmp_path}/secret']:\n"
              "    print(p, os.path.exists(p))\n"
              "try:\n    socket.create_connection(('127.0.0.1', 9), timeout=2); print('net open')\n"
              "except OSError as e: print('net blocked')\n"
              f"open('{writable}/ok', 'w').write('ok')\n")
    (tmp_path / "secret").write_text("hidden tests")
    import subprocess
    import sys

    sandbox.prepare_writable([writable], policy.uid)
    done = subprocess.run(sandbox.command([sys.executable, "-c", script], policy, {}, writable),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "True" not in done.stdout and "net blocked" in done.stdout
    assert (writable / "ok").read_text() == "ok"


def test_precheck_names_what_is_wrong() -> None:
    from course_tools.grading.job import Kit, Submission, precheck

    kit = Kit("toy", ["toy"], b"")
    good = nbformat.writes(nbformat.v4.new_notebook()).encode()
    assert precheck(kit, Submission("a", {"toy.ipynb": good})) == ""
    assert "found: toy (1).ipynb" in precheck(kit, Submission("a", {"toy (1).ipynb": good}))
    assert "not valid JSON at line 1, column 2" in precheck(kit, Submission("a", {"toy.ipynb": b"{"}))
    assert "not a text file" in precheck(kit, Submission("a", {"toy.ipynb": b"\xff\xfe"}))
    secret = b'{"cells": "my private notes about the hidden tests'  # never quoted back
    assert "private" not in precheck(kit, Submission("a", {"toy.ipynb": secret}))


def test_validate_exit_codes(toy_course: Path) -> None:
    assert cli.main(["release", "toy"]) == 0
    assert cli.main(["validate", str(toy_course / "notebooks" / "toy" / "toy.ipynb")]) == 0
    assert cli.main(["validate", str(toy_course / "release" / "toy" / "toy.ipynb")]) == 1
    broken = toy_course / "broken.ipynb"
    broken.write_text("{ not json")
    assert cli.main(["validate", str(broken)]) == 2


ADVERSARIES = {
    "correct": lambda c: _solution(c),
    "deleted_tests": lambda c: _without_tests(c),
    "edited_tests": lambda c: _edited_tests(c),
    "infinite_loop": lambda c: _with(c, "mean_square", "while True:\n    pass\n"),
    "import_error": lambda c: _with(c, "mean_square", "import not_a_real_package\n"),
    "output_flood": lambda c: _with(c, "square", "for _ in range(400):\n    print('x' * 100_000)\n"),
    "os_exit": lambda c: _with(c, "mean_square", "import os\nos._exit(1)\n"),
    "fork_bomb": lambda c: _with(c, "mean_square", "import os\nwhile True:\n    os.fork()\n"),
    "memory_hog": lambda c: _with(c, "mean_square", "hog = [bytearray(2**28) for _ in range(64)]\n"),
    "monkeypatch": lambda c: _with(c, "mean_square", "np.isclose = lambda *a, **k: True\n",
                                   ("np.mean(np.asarray(xs, dtype=float) ** 2)", "0.0")),
}


def _without_tests(course: Path) -> nbformat.NotebookNode:
    nb = _solution(course)
    nb.cells = [c for c in nb.cells if not c.metadata.get("nbgrader", {}).get("grade_id", "").startswith("test_")]
    return nb


def _edited_tests(course: Path) -> nbformat.NotebookNode:
    nb = _with(course, "square", replace=("x * x", "x * 2"))
    test = _cell(nb, "test_square")
    test.source, test.metadata.nbgrader.points = "pass", 100
    return nb


def _escape_attempt(course: Path, port: int) -> nbformat.NotebookNode:
    """Reads the gradebook and the sources, writes outside its folder, opens the network; prints what worked."""
    targets = ["../../../gradebook.db", f"{course}/gradebook.db", f"{course}/notebooks/toy/toy.ipynb",
               f"{course}/submitted/correct/toy/toy.ipynb", f"{REPO}/notebooks/vae/vae.ipynb"]
    probe = (f"import os, socket\nfor p in {targets!r}:\n"
             "    try:\n        open(p, 'rb').read(1); print('READ', p)\n"
             "    except OSError:\n        print('BLOCKED', p)\n"
             f"for p in ['{course.parent}/escaped', '{course}/escaped', '{REPO}/escaped']:\n"
             "    try:\n        open(p, 'w').write('x'); print('WROTE', p)\n"
             "    except OSError:\n        print('BLOCKED', p)\n"
             f"try:\n    socket.create_connection(('127.0.0.1', {port}), timeout=3); print('NETWORK OPEN')\n"
             "except OSError:\n    print('NETWORK BLOCKED')\n")
    return _with(course, "mean_square", probe)


@pytest.mark.slow
def test_adversarial_batch(toy_course: Path, capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["release", "toy"]) == 0
    for student, make in ADVERSARIES.items():
        _submit(toy_course, student, make(toy_course))
    _submit(toy_course, "invalid_json", b'{"cells": [ this is not json')
    _submit(toy_course, "renamed", _solution(toy_course), name="my_toy.ipynb")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.setblocking(False)
    _submit(toy_course, "escape", _escape_attempt(toy_course, listener.getsockname()[1]))

    settings = Settings(cell_timeout=15, run_timeout=240, memory_mib=2048, processes=64)
    summary = autograde("toy", workers=2, settings=settings, progress=False)
    assert summary.graded + summary.flagged + summary.not_graded == len(ADVERSARIES) + 3

    status = {s: read_record(Course.current(), "toy", s) for s in [*ADVERSARIES, "invalid_json", "renamed", "escape"]}
    full = {"test_square": 2.0, "test_mean_square": 2.0}
    square_only = {"test_square": 2.0, "test_mean_square": 0.0}

    # the others in the batch are unaffected
    assert {k: v for k, v in _scores(toy_course, "correct").items() if k.startswith("test_")} == full, status
    assert status["correct"]["status"] == "graded"
    # deleted tests come back and are graded; edited tests are restored (the wrong answer scores 0)
    assert _scores(toy_course, "deleted_tests")["test_mean_square"] == 2.0
    assert _scores(toy_course, "edited_tests")["test_square"] == 0.0
    # a broken cell costs its own marks only
    for student in ("infinite_loop", "import_error", "fork_bomb", "memory_hog", "os_exit"):
        got = {k: v for k, v in _scores(toy_course, student).items() if k.startswith("test_")}
        assert got == square_only, (student, status[student])
    assert "CellTimeoutError" in _outputs(toy_course, "infinite_loop", "mean_square")
    assert "MemoryError" in _outputs(toy_course, "memory_hog", "mean_square")
    bomb = _outputs(toy_course, "fork_bomb", "mean_square")  # the process limit, or the cell's time on a busy machine
    assert "Resource temporarily unavailable" in bomb or "CellTimeoutError" in bomb
    assert "stray processes ended after mean_square" in status["fork_bomb"]["reason"]
    # a dead kernel is restarted: marks earned before the crash are kept, the reason is recorded
    assert status["os_exit"]["report"]["kernel_deaths"] == ["mean_square"]
    assert "kernel died in mean_square" in status["os_exit"]["reason"]
    # an output flood is cut, not kept
    assert "output cut in square" in status["output_flood"]["reason"]
    assert len(_outputs(toy_course, "output_flood", "square")) < 3_000_000
    # replacing numpy's checks changes nothing: the hidden tests are judged outside the kernel
    assert _scores(toy_course, "monkeypatch")["test_mean_square"] == 0.0
    # submissions that cannot be graded say why
    assert status["invalid_json"]["status"] == "not graded"
    assert "not valid JSON" in status["invalid_json"]["reason"]
    assert status["renamed"]["status"] == "not graded"
    assert "toy.ipynb is missing" in status["renamed"]["reason"] and "my_toy.ipynb" in status["renamed"]["reason"]
    # the sandbox held
    escape = _outputs(toy_course, "escape", "mean_square")
    assert "READ" not in escape and "WROTE" not in escape and "NETWORK OPEN" not in escape, escape
    assert "NETWORK BLOCKED" in escape
    with pytest.raises(BlockingIOError):
        listener.accept()
    assert not any((where / "escaped").exists() for where in (toy_course.parent, toy_course, REPO))

    # export: a status on every row, no zero for what was not graded
    capsys.readouterr()
    assert cli.main(["export", "toy"]) == 0
    exported = capsys.readouterr().out
    table = {r["student"]: r for r in csv.DictReader(io.StringIO(exported))}
    assert "invalid_json" in table, exported
    assert table["invalid_json"]["status"] == "not graded" and table["invalid_json"]["score"] == ""
    assert table["monkeypatch"]["status"] == "needs manual grading"
    assert table["correct"]["status"] == "needs manual grading" and float(table["correct"]["score"]) == 4.0

    # feedback: nbgrader's for the graded, a note with the reason for the rest; no hidden test code
    assert cli.main(["feedback", "toy", "--provisional"]) == 0
    note = (toy_course / "feedback" / "renamed" / "toy" / "NOT-GRADED.txt").read_text()
    assert "not a zero" in note and "my_toy.ipynb" in note
    html = (toy_course / "feedback" / "import_error" / "toy" / "toy.html").read_text()
    assert "mean_square(_xs)" not in html and "BEGIN HIDDEN" not in html and "BEGIN REFERENCE" not in html

    # an interrupted or repeated run resumes: nothing graded twice
    again = autograde("toy", workers=1, settings=settings, progress=False)
    assert again.skipped == summary.graded + summary.flagged and again.graded == 0


@pytest.mark.slow
def test_whole_run_timeout_is_not_a_zero(toy_course: Path) -> None:
    assert cli.main(["release", "toy"]) == 0
    _submit(toy_course, "slow", _with(toy_course, "square", "import time\ntime.sleep(120)\n"))
    summary = autograde("toy", workers=1, settings=Settings(cell_timeout=200, run_timeout=25), progress=False)
    assert summary.not_graded == 1
    assert "whole-run limit of 25 s" in read_record(Course.current(), "toy", "slow")["reason"]
    assert not (toy_course / "autograded" / "slow").exists()


@pytest.mark.slow
def test_autograde_command_on_a_running_scheduler(toy_course: Path, capsys: pytest.CaptureFixture) -> None:
    """A cluster by its scheduler's address takes the same code path as the local default."""
    import dask
    from distributed import LocalCluster

    assert cli.main(["release", "toy"]) == 0
    _submit(toy_course, "alice", _solution(toy_course))
    with dask.config.set({"distributed.worker.daemon": False}):
        cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None)
    try:
        assert cli.main(["autograde", "toy", "--scheduler", cluster.scheduler_address]) == 0
    finally:
        cluster.close()
    assert "graded 1, flagged for review 0, not graded 0" in capsys.readouterr().out
    assert _scores(toy_course, "alice")["test_mean_square"] == 2.0
    assert cli.main(["autograde", "nonexistent"]) == 2  # a clear error, nothing graded


@pytest.mark.slow
def test_gradebook_in_postgresql(toy_course: Path, postgres_url: str) -> None:
    """Only the coordinator writes the gradebook, so it may be any SQLAlchemy URL."""
    from nbgrader.api import Gradebook

    with open(toy_course / "nbgrader_config.py", "a") as config:
        config.write(f"\nc.CourseDirectory.db_url = {postgres_url!r}\n")
    assert cli.main(["release", "toy"]) == 0
    _submit(toy_course, "alice", _solution(toy_course))
    _submit(toy_course, "bob", b"not a notebook")
    summary = autograde("toy", workers=1, progress=False)
    assert (summary.graded, summary.not_graded) == (1, 1)
    assert not (toy_course / "gradebook.db").exists()
    with Gradebook(postgres_url) as gb:
        assert gb.find_submission("toy", "alice").score == 4.0
        assert [s.student_id for s in gb.assignment_submissions("toy")] == ["alice"]
