"""What a submission leaves behind reaches neither the machine nor the next submission.

1. The grader, as root, hands the sandbox's writable folders to the kernel's user before each kernel
   start, also after a kernel died; a submission that planted links there (to a file and a folder
   outside, and hard links) must not get anything outside handed over.
2. A warm worker forks one kernel per submission; whatever one kernel leaves (SysV and POSIX IPC
   objects, /dev/shm and /tmp files, abstract sockets, processes) must be gone for the next one.

Both grade real submissions of the toy assignment (tests/fixtures/toy) through ``job.grade``.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import nbformat
import pytest
from toy_submissions import FULL, edited, hidden_lines, solution

from course_tools import cli
from course_tools.grading.job import Settings

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the grader hands folders to another user only as root")


def _kit(settings: Settings):
    """The released toy assignment, with its reference values, ready for ``job.grade``."""
    from course_tools.grading import reference
    from course_tools.grading.coordinator import make_kit
    from course_tools.layout import Course

    assert cli.main(["release", "toy"]) == 0
    kit = make_kit(Course.current(), "toy")
    kit.reference = reference.check_solution_run(kit, reference.run_solution(Course.current(), kit, settings))
    return kit


def _grade(kit, student: str, nb: nbformat.NotebookNode, settings: Settings):
    from course_tools.grading import job

    outcome = job.grade(kit, job.Submission(student, {"toy.ipynb": nbformat.writes(nb).encode()}), settings)
    outputs = [o.get("text") or o.get("evalue") for c in json.loads(outcome.notebooks.get("toy", '{"cells": []}'))["cells"]
               for o in c.get("outputs", [])]
    return outcome, outputs


# ---------------------------------------------------------------- 1. links planted for root's housekeeping

LINKS = """import os, sys
_run = os.path.dirname(sys.argv[sys.argv.index('-f') + 1])
for _where in ('.', _run):
    for _name, _target in (('to_file', {file!r}), ('to_folder', {folder!r})):
        os.symlink(_target, os.path.join(_where, _name))
    os.makedirs(os.path.join(_where, 'inner'), exist_ok=True)
    os.symlink({folder!r}, os.path.join(_where, 'inner', 'deeper'))
    open(os.path.join(_where, 'mine'), 'w').write('x')
    for _source in ({file!r}, os.path.join(_where, 'mine'), os.path.join(_run, 'kernel.json')):
        try:
            os.link(_source, os.path.join(_where, 'hard-' + os.path.basename(_source)))
        except OSError:
            pass
os._exit(1)
"""


def _outside(tmp_path: Path) -> tuple[Path, Path, dict[Path, tuple]]:
    """A root-owned file and folder outside the course, and how each looks now."""
    outside = tmp_path / "outside"
    folder = outside / "folder"
    folder.mkdir(parents=True)
    (folder / "inside.txt").write_text("root's own, inside")
    secret = outside / "secret.txt"
    secret.write_text("root's own")
    for path, mode in ((outside, 0o700), (folder, 0o750), (folder / "inside.txt", 0o640), (secret, 0o600)):
        os.chown(path, 0, 0)
        path.chmod(mode)
    return secret, folder, _looks(outside)


def _looks(top: Path) -> dict[Path, tuple]:
    """Owner, group, mode and contents of everything under ``top``."""
    seen = {}
    for path in [top, *sorted(top.rglob("*"))]:
        st = path.lstat()
        seen[path] = (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode), path.read_text() if path.is_file() else None)
    return seen


@pytest.mark.slow
@pytest.mark.parametrize("warm", [False, True], ids=["cold", "warm"])
def test_links_a_submission_planted_are_never_followed(toy_course: Path, tmp_path: Path, warm: bool) -> None:
    """A cell plants links to a root-owned file and folder outside, then ends its kernel; the
    grader restarts the kernel (handing the folders over again) and goes on: nothing outside changes."""
    secret, folder, before = _outside(tmp_path)
    settings = Settings(cell_timeout=30, run_timeout=180, memory_mib=4096, processes=64, warm_kernels=warm)
    kit = _kit(settings)
    nb = solution(toy_course)
    nb.cells.insert(1, nbformat.v4.new_code_cell(LINKS.format(file=str(secret), folder=str(folder))))
    outcome, outputs = _grade(kit, "linker", nb, settings)
    assert outcome.report.get("kernel_deaths"), (outcome.reason, outputs)  # the links were planted, then a restart
    assert {k: v[0] for k, v in outcome.scores.items() if k.startswith("test_")} == FULL, (outcome.reason, outputs)
    assert bool(outcome.report.get("warm")) == warm, outcome.report
    assert _looks(secret.parent) == before
