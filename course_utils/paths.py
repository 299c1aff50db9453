"""Where the course lives on disk, and the FAST switch every notebook reads.

Notebooks run from many working directories: a student's checkout, nbgrader's
``autograded/<student>/<assignment>/`` folder, a scratch folder of ``course
selfcheck``. So every location here is resolved from this installed package,
never from the working directory.
"""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent

# The environment variables the course reads, named once (the grader sets some in the kernel's
# environment; the sandbox passes these through and drops the rest).
FAST_ENV = "COURSE_FAST"
DATA_ENV = "COURSE_DATA"
RESULTS_ENV = "COURSE_RESULTS"
ROOT_ENV = "COURSE_ROOT"
DEVICE_ENV = "COURSE_DEVICE"  # cpu, cuda or mps: the device notebooks train on (repro.pick_device)
JUDGE_ENV = "COURSE_JUDGE"  # set by the course's grader: expectations publish their values (checks.expect)
EXECUTION_ENV = "NBGRADER_EXECUTION"  # set by nbgrader while it runs a notebook: "autograde" or "validate"


def repo_root() -> Path:
    """The course checkout that holds this package (installed with ``pip install -e .``).

    ``$COURSE_ROOT`` points the ``course`` command at another course folder
    (the package's own tests use it). A non-editable install has no checkout around it; then the user's cache
    folder stands in, so data still has a stable home.
    """
    override = os.environ.get(ROOT_ENV)
    if override:
        return Path(override).expanduser().resolve()
    root = _PACKAGE_DIR.parent
    if (root / "pyproject.toml").is_file():
        return root
    return Path.home() / ".cache" / "course-kit"


def data_dir() -> Path:
    """The data cache: ``$COURSE_DATA`` if set, else ``data/`` in the checkout.

    Created on first use so callers can write into it straight away.
    """
    override = os.environ.get(DATA_ENV)
    path = Path(override).expanduser() if override else repo_root() / "data"
    path.mkdir(parents=True, exist_ok=True)
    return path


def is_fast() -> bool:
    """True when notebooks should shrink their work to seconds.

    ``COURSE_FAST=1`` turns it on and ``COURSE_FAST=0`` off. Unset, it is on
    while nbgrader runs the notebook (``nbgrader autograde`` and the Validate
    button set ``NBGRADER_EXECUTION`` in the kernel's environment), so grading
    one submission takes seconds even when a TA calls plain nbgrader.
    """
    value = os.environ.get(FAST_ENV, "").strip().lower()
    if value:
        return value in {"1", "true", "yes", "on"}
    return os.environ.get(EXECUTION_ENV) in {"autograde", "validate"}
