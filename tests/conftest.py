"""Shared fixtures: a throw-away course folder holding the toy assignment."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def toy_course(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of tests/fixtures/toy with the course's real nbgrader_config.py,
    made the current course through $COURSE_ROOT."""
    root = tmp_path / "course"
    shutil.copytree(REPO / "tests" / "fixtures" / "toy", root)
    shutil.copy(REPO / "nbgrader_config.py", root / "nbgrader_config.py")
    monkeypatch.setenv("COURSE_ROOT", str(root))
    monkeypatch.setenv("COURSE_DATA", str(REPO / "data"))
    return root
