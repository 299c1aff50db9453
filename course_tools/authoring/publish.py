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
    .course-kit.json       what was published, from which commit, and which entries the kit owns

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


# ----------------------------------------------------------------------------- publishing


def publish(dest: Path, names: list[str] | None = None, course: Course | None = None,
            zip_to: Path | None = None) -> PublishedKit:
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
        kit = build(staging, names, course)
        leaks = kit_leaks(staging, course)
        if leaks:
            raise PublishError("the kit would show students what they must not see; nothing was published:\n  "
                               + "\n  ".join(leaks[:20]))
        _replace(dest, staging, previous, kit.entries)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    kit.root = dest
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


def build(root: Path, names: list[str], course: Course) -> PublishedKit:
    """Write every file of the kit into the empty folder ``root``."""
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
    }
    for template in sorted(p for p in TEMPLATES.rglob("*") if p.is_file()):
        target = root / _kit_name(template.relative_to(TEMPLATES))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(_fill(template.read_text(), values) if template.suffix == TEMPLATE_SUFFIX
                          else template.read_text())
    write_requirements(root, course_id, requirements)
    entries = sorted(p.name for p in root.iterdir()) + [MANIFEST]
    kit = PublishedKit(root, course_id, list(names), entries)
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
