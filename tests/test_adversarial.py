"""A class of students trying to game the grader: every attack earns nothing it did not
deserve, or ends flagged or not graded with a reason a TA can act on; nothing stops the batch.

Each attack sits in one submission of the toy assignment (tests/fixtures/toy): `square`
and `mean_square`, two test cells of 2 points whose hidden tests the grader judges outside
the kernel. Wrong answers come with the attack, so any point they earn is unearned.
"""

from __future__ import annotations

import csv
import json
import io
import os
from pathlib import Path

import nbformat
import pytest
from toy_submissions import (FULL, WRONG_SQUARE, all_outputs, autograded_text, edited,
                             hidden_lines, points, record, solution, submit)

from course_tools import cli
from course_tools.grading.coordinator import autograde
from course_tools.grading.job import Settings

# ---------------------------------------------------------------- 1. points that were not earned

WRONG = {"replace": WRONG_SQUARE}
UNEARNED = {
    # an IPython hook that swaps a checking function before every cell but the probe's
    "hook_swaps_isclose": dict(prefix="import numpy as _n\nget_ipython().events.register('pre_run_cell', "
                                      "lambda *a: setattr(_n, 'isclose', lambda *a, **k: True))\n", **WRONG),
    # the usual alias rebound to something that is not numpy
    "np_rebound": dict(prefix="class _Fake:\n    def __getattr__(self, name):\n        return lambda *a, **k: True\n"
                              "np = _Fake()\n", replace=("return x * x", "return 0")),
    # a replacement that reports the original function's name, module and code
    "disguised_replacement": dict(prefix="import functools\n_orig = np.isclose\n"
                                         "@functools.wraps(_orig)\ndef _always(*a, **k):\n    return True\n"
                                         "_always.__code__ = _always.__code__.replace(co_name='isclose')\n"
                                         "np.isclose = _always\n", **WRONG),
    # a wrong answer whose test cell shows a result nbgrader would read as partial credit
    "display_result": dict(suffix="\n_k = get_ipython().kernel\n_real_square = square\n"
                                  "def square(x):\n    _k.session.send(_k.iopub_socket, 'execute_result', "
                                  "{'execution_count': 1, 'data': {'text/plain': '2'}, 'metadata': {}}, "
                                  "parent=_k.get_parent())\n    return _real_square(x) + 1\n"),
    # an input transformer that rewrites every assert and expectation away
    "rewrites_asserts": dict(prefix="def _no_tests(lines):\n    return [l.replace('assert ', 'pass  # ') "
                                    ".replace('checks.expect(', 'print(') for l in lines]\n"
                                    "get_ipython().input_transformers_post.append(_no_tests)\n", **WRONG),
    # objects that say yes to any comparison, and a str subclass as one
    "always_equal": dict(replace=("return x * x", "class _Yes(float):\n        def __eq__(self, other):\n"
                                  "            return True\n        __hash__ = float.__hash__\n    return _Yes(0)")),
    "numpy_subclass": dict(replace=("return x * x", "class _Arr(np.ndarray):\n        def __eq__(self, o):\n"
                                    "            return np.ones(1, bool)\n    return np.zeros(()).view(_Arr)")),
    # publishing values for the test's messages itself, before and during the tests
    "publishes_values": dict(prefix="from course_utils import checks as _c\nfrom IPython.display import display as _d\n"
                                    "for _label, _v in [('square of a negative number should be positive', 4), "
                                    "('square of a negative fraction should be positive', 2.25)]:\n"
                                    "    _d({_c.EXPECT_MIME: __import__('json').dumps({'label': _label, "
                                    "'value': _c.encode(_v), 'rtol': 1, 'atol': 1})}, raw=True)\n", **WRONG),
    # replacing the expectation itself with one that reports a guessed value
    "replaces_expect": dict(prefix="from course_utils import checks as _c\n_pub = _c._publish\n"
                                   "_c._publish = lambda message, value, rtol, atol: _pub(message, 4, 1e9, 1e9)\n",
                            **WRONG),
}

# ---------------------------------------------------------------- 2. hidden tests out of reach

LEAKS = {
    # looks for notebooks in its working folder and prints them
    "reads_notebook": dict(prefix="import glob\nfor _p in glob.glob('**/*.ipynb', recursive=True) + "
                                  "glob.glob('../**/*.ipynb', recursive=True):\n    print(open(_p).read())\n"),
    # prints the input history and the caller's code whenever its function is called
    "prints_history": dict(replace=("return x * x", "import inspect\n    print(In, _ih)\n"
                                    "    for f in inspect.stack():\n        print(f.code_context)\n"
                                    "    return x * x")),
    # raises with the calling code in the message, and keeps it for a later cell to print
    "raises_with_caller": dict(replace=("return x * x", "import inspect, builtins\n"
                                        "    src = ''.join(f.code_context[0] for f in inspect.stack() if f.code_context)\n"
                                        "    builtins._seen = getattr(builtins, '_seen', '') + src\n"
                                        "    if x < 0:\n        raise ValueError(src)\n    return x * x")),
}
LATER_PRINT = "import builtins\nprint(getattr(builtins, '_seen', 'nothing seen'))\n"

# ---------------------------------------------------------------- 4. limits without gaps

LIMITS = {
    # a small display, then one update of 30 MB
    "update_flood": dict(prefix="from IPython.display import display, update_display\n"
                                "display('small', display_id='d')\nupdate_display('x' * 30_000_000, display_id='d')\n"),
    # clearing and printing again and again
    "clear_flood": dict(prefix="from IPython.display import clear_output\nfor _ in range(100):\n"
                               "    clear_output()\n    print('y' * 200_000)\n"),
    # a double-forked daemon that would outlive its cell
    "daemon": dict(prefix="import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
                          "        while True:\n            time.sleep(0.1)\n    os._exit(0)\nos.wait()\n"),
}


def _hidden_marker_comment(course: Path) -> nbformat.NotebookNode:
    return edited(course, "mean_square", prefix="### BEGIN HIDDEN TESTS\n# my notes, never closed\n")


def _metadata_attack(course: Path, how: str) -> nbformat.NotebookNode:
    nb = solution(course)
    test = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "test_square")
    if how == "inflated_points":
        test.metadata.nbgrader.points = 100
        test.metadata.nbgrader.pop("checksum", None)
    elif how == "duplicated_id":
        nb.cells.append(nbformat.v4.new_code_cell(test.source, metadata={"nbgrader": dict(test.metadata.nbgrader)}))
    elif how == "changed_id":
        test.metadata.nbgrader.grade_id = "test_square_mine"
    elif how == "test_made_manual":
        test.metadata.nbgrader.solution = True
    return nb


def _make_batch(course: Path) -> dict[str, str]:
    """Every submission of the batch, by student; returns what each attack is about."""
    about = {"correct": "the solution"}
    submit(course, "correct", solution(course))
    for student, spec in UNEARNED.items():
        submit(course, student, edited(course, "square", **spec))
        about[student] = "unearned points"
    for student, spec in LEAKS.items():
        nb = edited(course, "square", **spec)
        nb.cells.append(nbformat.v4.new_code_cell(LATER_PRINT))
        submit(course, student, nb)
        about[student] = "hidden tests"
    for student, spec in LIMITS.items():
        submit(course, student, edited(course, "square", **spec))
        about[student] = "limits"
    submit(course, "hidden_marker", _hidden_marker_comment(course))
    about["hidden_marker"] = "feedback"
    for how in ("inflated_points", "duplicated_id", "changed_id", "test_made_manual"):
        submit(course, how, _metadata_attack(course, how))
        about[how] = "metadata"
    # 3. submissions that are not plain files
    os.symlink(course / "notebooks" / "toy" / "toy.ipynb", submit(course, "link_to_source", b"x") / "toy.ipynb.tmp")
    os.replace(course / "submitted" / "link_to_source" / "toy" / "toy.ipynb.tmp",
               course / "submitted" / "link_to_source" / "toy" / "toy.ipynb")
    extra = submit(course, "link_to_gradebook", solution(course))
    os.symlink(course / "gradebook.db", extra / "notes.db")
    (course / "submitted" / "link_folder").mkdir()
    os.symlink(course / "notebooks" / "toy", course / "submitted" / "link_folder" / "toy")
    os.mkfifo(submit(course, "fifo", solution(course)) / "pipe")
    # 5. a file name that is not UTF-8
    odd = submit(course, "odd_name", solution(course))
    (odd / os.fsdecode(b"notes-\xff.txt")).write_text("mine")
    about.update({s: "files" for s in ("link_to_source", "link_to_gradebook", "link_folder", "fifo", "odd_name")})
    return about


@pytest.mark.slow
def test_a_class_of_attacks(toy_course: Path, capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["release", "toy"]) == 0
    about = _make_batch(toy_course)
    settings = Settings(cell_timeout=60, run_timeout=300, memory_mib=4096, processes=64)
    summary = autograde("toy", workers=2, settings=settings, progress=False)
    assert summary.graded + summary.flagged + summary.not_graded == len(about), summary  # the batch finished
    status = {s: record(s) for s in about}
    print("\n".join(f"{s}: {r['status']} {r['scores']} {r['reason']}" for s, r in status.items()))

    assert points("correct") == FULL and status["correct"]["status"] == "graded"
    # 1. no attack earns a point for its wrong answer
    for student in UNEARNED:
        assert points(student)["test_square"] == 0.0, (student, status[student])
    assert status["publishes_values"]["status"] == "flagged"
    assert "published grading messages itself" in status["publishes_values"]["reason"]
    # 2. no hidden test line anywhere in what the grader keeps, nor in feedback
    assert cli.main(["feedback", "toy", "--provisional"]) == 0  # the written answer is not graded yet
    secret = hidden_lines(toy_course)
    assert secret
    for student in [*LEAKS, *UNEARNED, "correct"]:
        shown = all_outputs(toy_course, student)  # the notebook's own sources are the TA's; its outputs are not
        html = (toy_course / "feedback" / student / "toy" / "toy.html").read_text()
        for line in secret:
            assert line not in shown and line not in html, (student, line)
    assert points("prints_history") == FULL and points("reads_notebook") == FULL
    # 3. links and special files are refused, with the path and never a word of a file
    for student in ("link_to_source", "link_to_gradebook", "link_folder", "fifo"):
        assert status[student]["status"] == "not graded", student
        assert "link" in status[student]["reason"] or "not a regular file" in status[student]["reason"]
        assert "BEGIN" not in status[student]["reason"] and "SQLite" not in status[student]["reason"]
        note = (toy_course / "feedback" / student / "toy" / "NOT-GRADED.txt").read_text()
        assert "BEGIN" not in note and "SQLite" not in note and "checks.expect" not in note
    # 4. limits cover every kind of output and every process
    for student in ("update_flood", "clear_flood"):
        assert len(autograded_text(toy_course, student)) < 3_000_000, student
        assert points(student) == FULL
    assert "stray processes ended after square" in status["daemon"]["reason"]
    # 5. one submission's oddity is its own status; feedback works for everyone else
    assert status["odd_name"]["status"] == "not graded" and "not UTF-8" in status["odd_name"]["reason"]
    assert points("hidden_marker") == FULL
    assert (toy_course / "feedback" / "hidden_marker" / "toy" / "toy.html").is_file()
    # 6. submissions nbgrader refuses say why, in words; inflated points are restored from the release
    assert points("inflated_points") == FULL and record("inflated_points")["scores"]["test_square"][1] == 2.0
    for how, words in (("duplicated_id", "two cells carry the grade id test_square"),
                       ("changed_id", "test_square_mine is not part of the released assignment"),
                       ("test_made_manual", "test_square was turned into another kind of cell")):
        assert status[how]["status"] == "not graded", how
        assert words in status[how]["reason"] and "freshly fetched copy" in status[how]["reason"], status[how]
        assert "see the" not in status[how]["reason"].lower()
    # the export has a row for each, never a zero for what was not graded
    capsys.readouterr()
    assert cli.main(["export", "toy"]) == 0
    table = {r["student"]: r for r in csv.DictReader(io.StringIO(capsys.readouterr().out))}
    for student, row in table.items():
        if row["status"] == "not graded":
            assert row["score"] == "" and row["reason"], student


# ---------------------------------------------------------------- 7. one worker, one submission after another

PLANT = ("import os, subprocess, time\nopen('/tmp/planted', 'w').write('x')\nopen('planted', 'w').write('x')\n"
         "subprocess.Popen(['sleep', '600'], start_new_session=True)\n"
         "for _ in range(20):\n    if os.fork() == 0:\n        os.execvp('sleep', ['sleep', '600'])\n")
HARVEST = ("import os\n_seen = [p for p in ('/tmp/planted', 'planted') if os.path.exists(p)]\n"
           "_seen += [l for l in os.popen('ps -eo args').read().splitlines() if l.strip() == 'sleep 600']\n"
           "assert not _seen, _seen\n")


@pytest.mark.slow
def test_a_warm_worker_forgets_each_submission(toy_course: Path) -> None:
    """Kernels forked from one warm process per worker: a submission's files in /tmp and its
    working folder, and its processes, are gone before the next one starts."""
    from course_tools.grading import job, reference
    from course_tools.grading.coordinator import make_kit
    from course_tools.layout import Course

    assert cli.main(["release", "toy"]) == 0
    kit = make_kit(Course.current(), "toy")
    settings = Settings(cell_timeout=30, run_timeout=120, memory_mib=4096, processes=64, warm_kernels=True)
    kit.reference = reference.check_solution_run(kit, reference.run_solution(Course.current(), kit, settings))
    submissions = {"planter": edited(toy_course, "square", prefix=PLANT),
                   "harvester": edited(toy_course, "square", prefix=HARVEST)}
    for student, nb in submissions.items():
        outcome = job.grade(kit, job.Submission(student, {"toy.ipynb": nbformat.writes(nb).encode()}), settings)
        outputs = [o.get("text") or o.get("evalue") for c in json.loads(outcome.notebooks["toy"])["cells"] for o in c.get("outputs", [])]
        assert outcome.status == "graded", (student, outcome.reason, outputs)
        assert {k: v[0] for k, v in outcome.scores.items() if k.startswith("test_")} == FULL, (student, outcome.reason, outputs)
        assert outcome.report.get("warm"), outcome.report  # it ran on the warm path
