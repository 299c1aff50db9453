"""The student kit the kit's tests share: published once per test run (once across pytest-xdist
workers, under a file lock), committed to a git repository and cloned afresh, as a student gets it."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

GIT_ENV = {"GIT_AUTHOR_NAME": "course", "GIT_AUTHOR_EMAIL": "course@example.org",
           "GIT_COMMITTER_NAME": "course", "GIT_COMMITTER_EMAIL": "course@example.org"}


def git(*args: str, cwd: Path) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, env={**os.environ, **GIT_ENV})
    assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"
    return done.stdout


ASSIGNMENTS_VAR = "COURSE_KIT_ASSIGNMENTS"  # a quicker run: only these assignments (space-separated) in the kit


def publish_and_clone(folder: Path) -> Path:
    """`course publish` of every assignment (or those of $COURSE_KIT_ASSIGNMENTS) into folder/kit,
    committed as a repository; its fresh clone."""
    from course_tools.authoring.publish import publish

    kit = publish(folder / "kit", os.environ.get(ASSIGNMENTS_VAR, "").split() or None).root
    git("init", "-q", "-b", "main", cwd=kit)
    git("add", "-A", cwd=kit)
    git("commit", "-q", "-m", "the student kit", cwd=kit)
    clone = folder / "clone"
    git("clone", "-q", str(kit), str(clone), cwd=folder)
    return clone


@pytest.fixture(scope="session")
def kit_clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh clone of the published kit of every assignment (built once for the whole run)."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return publish_and_clone(tmp_path_factory.mktemp("kit"))
    from filelock import FileLock

    shared = tmp_path_factory.getbasetemp().parent  # one folder for all workers of this run
    record = shared / "kit.json"
    with FileLock(str(shared / "kit.lock")):
        if not record.is_file():
            folder = shared / "kit-build"
            folder.mkdir()
            record.write_text(json.dumps({"clone": str(publish_and_clone(folder))}))
        return Path(json.loads(record.read_text())["clone"])


def kit_assignments(kit: Path) -> list[str]:
    """The assignments a published kit holds (its manifest)."""
    return json.loads((kit / ".course-kit.json").read_text())["assignments"]
