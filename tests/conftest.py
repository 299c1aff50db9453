"""Shared fixtures: a throw-away course folder holding the toy assignment."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from kit_support import kit_clone  # noqa: F401 (the published student kit, a fixture for its tests)

REPO = Path(__file__).resolve().parent.parent


def fixture_course(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of tests/fixtures/<name> with the course's real nbgrader_config.py,
    made the current course through $COURSE_ROOT."""
    root = tmp_path / "course"
    shutil.copytree(REPO / "tests" / "fixtures" / name, root)
    shutil.copy(REPO / "nbgrader_config.py", root / "nbgrader_config.py")
    monkeypatch.setenv("COURSE_ROOT", str(root))
    monkeypatch.setenv("COURSE_DATA", str(REPO / "data"))
    return root


@pytest.fixture
def toy_course(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The toy assignment (tests/fixtures/toy) as the current course."""
    return fixture_course("toy", tmp_path, monkeypatch)


def _initdb() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1] if found else None


@pytest.fixture
def postgres_url():
    """A throw-away PostgreSQL server on a Unix socket; its SQLAlchemy URL.

    Skipped where PostgreSQL is not installed (`.ci/run` installs it).
    """
    import os
    import subprocess

    initdb = _initdb()
    if initdb is None:
        pytest.skip("PostgreSQL is not installed (apt install postgresql)")
    bindir = initdb.parent
    folder = Path(tempfile.mkdtemp(prefix="course-pg-"))  # pytest's own folders are closed to other users
    as_user: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root
        shutil.chown(folder, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    run = lambda *cmd: subprocess.run([*as_user, *map(str, cmd)], check=True, capture_output=True)  # noqa: E731
    run(initdb, "-D", folder / "data", "-A", "trust", "-U", "course")
    run(bindir / "pg_ctl", "-D", folder / "data", "-l", folder / "log", "-w", "start",
        "-o", f"-k {folder} -c listen_addresses=''")
    try:
        run(bindir / "createdb", "-h", folder, "-U", "course", "gradebook")
        yield f"postgresql+psycopg://course@/gradebook?host={folder}"
    finally:
        run(bindir / "pg_ctl", "-D", folder / "data", "-m", "immediate", "stop")
        shutil.rmtree(folder, ignore_errors=True)
