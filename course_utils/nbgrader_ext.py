"""Pieces that plug into nbgrader: its configuration, loaded the way the
command line loads it, and a feedback preprocessor that keeps hidden tests
hidden."""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path
from typing import Any

from nbconvert.preprocessors import Preprocessor
from traitlets import Bool
from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader

from course_utils.paths import repo_root


def quiet_gradebook_warnings() -> None:
    """Silence the "Object of type ... not in session" warning nbgrader's gradebook raises under
    SQLAlchemy 2 for every submission it records: harmless, and it would bury the real output."""
    warnings.filterwarnings("ignore", message="Object of type", module="nbgrader")


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


class HideTestTracebacks(Preprocessor):
    """Replace the traceback of a failed grading cell by its error message.

    nbgrader's ``ClearHiddenTests`` removes hidden test lines from a cell's
    source, but the traceback of a failing hidden ``assert`` still prints the
    line. Students see ``AssertionError: <the test's own message>`` instead,
    which is what the message is written for.
    """

    enabled = Bool(True)  # nbconvert runs a registered preprocessor only when enabled

    def preprocess_cell(self, cell: Any, resources: dict, index: int):
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "code" and meta.get("grade") and not meta.get("solution"):
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    message = f"{output.get('ename', 'Error')}: {output.get('evalue', '')}".rstrip(": ")
                    output["traceback"] = [message]
        return cell, resources


def scratch_config(root: Path) -> Config:
    """The course's configuration with every folder and the gradebook moved into ``root``."""
    config = load_config()
    config.CourseDirectory.root = str(root)
    config.CourseDirectory.db_url = f"sqlite:///{root / 'gradebook.db'}"
    config.Exchange.root = str(root / "exchange")
    return config


def grading_config(root: Path, settings: Any, report: Path) -> Config:
    """The course's configuration, pointed at a scratch course in ``root`` and
    executing with :class:`course_utils.grading_execute.GradingExecute`."""
    from nbconvert.preprocessors import ClearMetadataPreprocessor
    from nbgrader.preprocessors import (AssignLatePenalties, CheckCellMetadata, IgnorePattern, LimitOutput,
                                        SaveAutoGrades)

    from course_utils.grading_execute import GradingExecute

    config = scratch_config(root)
    config.Autograde.autograde_preprocessors = [GradingExecute, IgnorePattern, ClearMetadataPreprocessor,
                                                LimitOutput, SaveAutoGrades, AssignLatePenalties, CheckCellMetadata]
    ge = config.GradingExecute
    ge.timeout = settings.cell_timeout
    ge.use_sandbox = settings.sandbox
    ge.run_dir = str(root / ".kernel")
    ge.memory_mib, ge.cpu_seconds, ge.processes = settings.memory_mib, settings.cpu_seconds, settings.processes
    ge.max_restarts = settings.max_restarts
    ge.report_file = str(report)
    return config
