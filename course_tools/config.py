"""The course's nbgrader configuration, loaded the way the ``nbgrader`` command loads it,
and the small environment helpers every ``course`` subcommand shares."""

from __future__ import annotations

import os
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader

from course_utils.paths import repo_root


def quiet_library_warnings() -> None:
    """Silence warnings that say nothing to a TA and would bury the real output: the "Object
    of type ... not in session" warning nbgrader's gradebook raises under SQLAlchemy 2 for every
    submission it records, and jupyter_client's notes about how kernels are connected."""
    warnings.filterwarnings("ignore", message="Object of type", module="nbgrader")
    warnings.filterwarnings("ignore", message=".*not in session", category=Warning)
    warnings.filterwarnings("ignore", message="Kernel is running over TCP", category=Warning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)


def load_config(root: Path | None = None) -> Config:
    """The course's ``nbgrader_config.py`` as a traitlets Config.

    ``NbGraderAPI`` does not read the file by itself, so every ``course``
    subcommand goes through here and sees exactly what ``nbgrader`` sees.
    """
    _venv_on_path()
    root = root or repo_root()
    return PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config()


def _venv_on_path() -> None:
    """nbgrader runs helper programs (``alembic``) by name: find them beside this
    Python even when it was started as ``.venv/bin/course`` without activating the venv."""
    bindir = str(Path(sys.executable).parent)
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")


def scratch_config(root: Path, source_root: Path | None = None) -> Config:
    """A course's configuration (this one's, or ``source_root``'s) with every folder and the gradebook
    moved into ``root``."""
    config = load_config(source_root)
    config.CourseDirectory.root = str(root)
    config.CourseDirectory.db_url = f"sqlite:///{root / 'gradebook.db'}"
    config.Exchange.root = str(root / "exchange")
    return config


@contextmanager
def temporary_env(**values: str) -> Iterator[None]:
    """Set environment variables inside the block (kernels started there inherit them), then restore them."""
    old = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in old.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
