"""The student kit anywhere: its set-up in Python on every OS, its notebooks alone on a service.

- Set-up: `kit.py` holds nothing only a Unix shell runs (checked on its source); every name in a
  published kit is one Windows accepts; its documented commands run with no `make` and no `sh`,
  only the Python executable on PATH, as on Windows (slow: the kit's Python 3.11 venv of kit_envs).
- A notebook alone: `course publish --url` gives every released notebook in the kit a set-up cell
  that nbgrader's validate and the course's grader leave as they were; in a fresh Python 3.11 with
  another PyTorch (2.13.0 CPU, from this machine's disk), no course files and the kit's wheel on a
  local HTTP server, the released notebook installs the kit in its first cell without touching
  torch, runs to its first stub, and with the solution pasted in passes every visible check (slow).

What this machine cannot try: Windows itself, Colab and Kaggle (no network but the package
registries), a GPU. The kit's README says so.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Iterator

import nbformat
import pytest

from course_tools import assignments, cli
from course_tools.authoring import kit_envs, publish
from course_tools.layout import Course

KIT_SCRIPT = Path(publish.__file__).with_name("kit") / "kit.py"
WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}
WINDOWS_FORBIDDEN = set('<>:"|?*\\') | {chr(c) for c in range(32)}
MAX_NAME, MAX_PATH = 255, 259  # a file name; a path from the kit's root (MAX_PATH counts its NUL: 260)


# ------------------------------------------------------------------------------ Windows, statically


def windows_name_problems(names: list[str]) -> list[str]:
    """Every kit-relative path (``/``-separated) among ``names`` that Windows would refuse or
    confuse: reserved device names (``nul.txt`` too), forbidden characters, a trailing dot or space,
    a name over 255 characters, a path of 260 or more, two paths differing only by case."""
    problems = []
    seen: dict[str, str] = {}
    for name in names:
        path = PurePosixPath(name)
        for part in path.parts:
            if part.split(".")[0].upper().rstrip(" ") in WINDOWS_RESERVED:
                problems.append(f"{name}: {part!r} is a reserved device name on Windows")
            if set(part) & WINDOWS_FORBIDDEN:
                problems.append(f"{name}: {part!r} has a character Windows forbids")
            if part.endswith((".", " ")):
                problems.append(f"{name}: {part!r} ends with a dot or a space")
            if len(part) > MAX_NAME:
                problems.append(f"{name}: {part[:40]!r}... is longer than {MAX_NAME} characters")
        if len(name) > MAX_PATH:
            problems.append(f"{name}: the path is {len(name)} characters (Windows: under 260)")
        for prefix in [PurePosixPath(*path.parts[:i]).as_posix() for i in range(1, len(path.parts) + 1)]:
            other = seen.setdefault(prefix.lower(), prefix)
            if other != prefix:
                problems.append(f"{prefix} and {other} differ only by case")
    return sorted(set(problems))


def kit_names(root: Path) -> list[str]:
    """Every file and folder of a kit, relative to its root (not its .git)."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if ".git" not in p.relative_to(root).parts)


def test_the_name_rules_catch_what_windows_refuses() -> None:
    bad = ["released/aux/a.ipynb", "data/nul.txt", "a:b.py", "notes/what?.md", "trailing./x", "space /x",
           "x" * 256, "d/" + "y" * 250 + "/" + "z" * 20, "Data/A.json", "data/a.json", "tab\there"]
    found = windows_name_problems(bad)
    for name in bad:
        assert any(p.startswith(name.split("/")[0]) or name in p for p in found), (name, found)
    assert not windows_name_problems(["released/vae/vae.ipynb", "course_utils/given/__init__.py", ".gitignore",
                                      "jupyter-config/labconfig/page_config.json", "auxiliary.py", "console.txt"])


UNIX_ONLY_CALLS = {"symlink", "symlink_to", "chmod", "system", "popen", "fork", "execv", "execvp", "getuid", "geteuid"}


def portability_problems(source: str) -> list[str]:
    """What in Python set-up code runs only on a Unix shell: links, modes, ``shell=True``, a shell
    command given as one string, ``os.system``, a hard-coded ``/bin/`` or ``bin/`` folder."""
    problems = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name in UNIX_ONLY_CALLS:
                problems.append(f"line {node.lineno}: {name}()")
            if any(k.arg == "shell" and not (isinstance(k.value, ast.Constant) and k.value.value is False)
                   for k in node.keywords):
                problems.append(f"line {node.lineno}: shell=")
            if name in {"run", "call", "check_call", "check_output", "Popen"} and node.args \
                    and isinstance(node.args[0], (ast.Constant, ast.JoinedStr, ast.BinOp)):
                problems.append(f"line {node.lineno}: {name}() of a command string (a shell's job)")
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and not isinstance(node, ast.JoinedStr):
            if "/bin/" in node.value or node.value in ("bin", "bin/python", "Scripts") or "bin/python" in node.value:
                problems.append(f"line {node.lineno}: hard-coded {node.value[:40]!r}")
    return problems


def _code_only(source: str) -> str:
    """The source with its docstrings blanked: they may name commands for people to type."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            body[0].value.value = ""
    return ast.unparse(tree)


def test_the_kits_setup_code_runs_without_a_unix_shell() -> None:
    """kit.py: no links, no modes, no shell, no command strings, no `bin/` of its own (the venv's
    folder comes from Python's venv scheme); the check rejects each of those."""
    assert portability_problems(_code_only(KIT_SCRIPT.read_text())) == []
    for bad in ("os.symlink(a, b)", "Path(a).chmod(0o755)", "subprocess.run(cmd, shell=True)",
                "subprocess.run('pip install x')", "os.system('make')", "p = venv / 'bin' / 'python'",
                "x = '/usr/bin/env'"):
        assert portability_problems(bad), bad


# ------------------------------------------------------------------------------ the toy kit with --url


def _publish_toy(dest: Path, url: str | None) -> publish.PublishedKit:
    return publish.publish(dest, ["toy"], url=url)


def test_a_kit_published_with_a_url_sets_its_notebooks_up(toy_course: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture) -> None:
    """`course publish --url` (a GitHub release): the kit's wheel holds the kit's course_utils (its core
    and the published assignments' given code), the torch range and no JupyterLab or nbgrader; every released notebook starts with the set-up
    cell, every other cell unchanged; the README links each notebook to Colab; every name is Windows'."""
    url = "https://github.com/example-org/dl-course-kit/releases/tag/v1"
    assert cli.main(["publish", str(tmp_path / "kit"), "toy", "--url", url, "--zip", str(tmp_path / "kit.zip")]) == 0
    said = capsys.readouterr().out
    kit = tmp_path / "kit"
    wheel = kit / "dist" / publish.wheel_name("dl-course")
    assert f"install {wheel.name} from {url}" in said
    plain = _publish_toy(tmp_path / "plain", None)
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        meta = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    package = {p.relative_to(kit).as_posix() for p in (kit / "course_utils").rglob("*.py")}
    assert {n for n in names if n.startswith("course_utils/")} == package and "course_utils/checks.py" in package
    assert "Requires-Dist: torch>=2.13.0,<=2.14.1" in meta
    assert not [line for line in meta.splitlines() if line.split(":")[0] == "Requires-Dist"
                and line.split()[1].split("=")[0].split("~")[0].split(">")[0] in ("jupyterlab", "nbgrader", "ipykernel")]
    nb = nbformat.read(kit / publish.RELEASED / "toy" / "toy.ipynb", as_version=4)
    first = nb.cells[0]
    assert first.metadata.get("tags") == [publish.SETUP_TAG] and "nbgrader" not in first.metadata
    assert f"https://github.com/example-org/dl-course-kit/releases/download/v1/{wheel.name}" in first.source
    without = nbformat.read(plain.root / publish.RELEASED / "toy" / "toy.ipynb", as_version=4)
    assert [(c.source, c.metadata) for c in nb.cells[1:]] == [(c.source, c.metadata) for c in without.cells]
    assert publish.SETUP_TAG not in (Course.current().source_notebook("toy")).read_text()
    readme = (kit / "README.md").read_text()
    assert "https://colab.research.google.com/github/example-org/dl-course-kit/blob/main/released/toy/toy.ipynb" in readme
    assert "Windows" in readme and "PowerShell" in readme and "Colab" in readme
    assert f"kit/dist/{wheel.name}" in zipfile.ZipFile(tmp_path / "kit.zip").namelist()
    assert windows_name_problems(kit_names(kit)) == []
    assert "colab.research.google.com" not in (plain.root / "README.md").read_text()
    assert publish.SETUP_TAG not in (plain.root / publish.RELEASED / "toy" / "toy.ipynb").read_text()


def _solved(kit_notebook: Path, name: str) -> nbformat.NotebookNode:
    """A kit notebook with every answer cell filled in as the source's solution (a student's finished work)."""
    answers = {c.metadata.nbgrader.grade_id: c.source
               for c in nbformat.read(Course.current().source_notebook(name), as_version=4).cells
               if c.get("metadata", {}).get("nbgrader", {}).get("solution")}
    nb = nbformat.read(kit_notebook, as_version=4)
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("solution"):
            cell.source = answers[meta["grade_id"]]
    return nb


@pytest.mark.slow
def test_a_submission_with_the_setup_cell_validates_and_grades_as_one_without(toy_course: Path,
                                                                              tmp_path: Path) -> None:
    """nbgrader validate passes a finished kit notebook that starts with the set-up cell (its checksums and
    metadata hold); the course's grader gives it the same marks as the same answers without the cell,
    and full marks, and the blank kit notebook still scores zero."""
    from course_tools.grading.variants import grade_variants
    from course_tools.scratch import scratch_course

    kit = _publish_toy(tmp_path / "kit", "http://127.0.0.1:9/").root
    plain = _publish_toy(tmp_path / "plain", None).root
    mine = tmp_path / "work" / "toy.ipynb"
    mine.parent.mkdir()
    nbformat.write(_solved(kit / publish.RELEASED / "toy" / "toy.ipynb", "toy"), mine)
    shutil.copy(kit / "nbgrader_config.py", mine.parent / "nbgrader_config.py")
    done = subprocess.run([str(Path(sys.executable).parent / "nbgrader"), "validate", str(mine)], cwd=mine.parent,
                          capture_output=True, text=True, env={**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "j")})
    assert "Success! Your notebook passes all the tests." in done.stdout, done.stdout[-3000:] + done.stderr[-2000:]
    with scratch_course("toy") as scratch:
        scratch.release()
        graded = grade_variants(scratch, {
            "with-setup": nbformat.read(mine, as_version=4),
            "without": _solved(plain / publish.RELEASED / "toy" / "toy.ipynb", "toy"),
            "blank-with-setup": nbformat.read(kit / publish.RELEASED / "toy" / "toy.ipynb", as_version=4)})
    assert not graded.setup_error, graded.setup_error
    with_cell, without = graded.scores("with-setup"), graded.scores("without")
    autograded = [t.grade_id for t in assignments.load("toy").tests]
    assert with_cell == without and all(with_cell[t].score == with_cell[t].max_score for t in autograded), with_cell
    assert sum(s.score for s in graded.scores("blank-with-setup").values()) == 0


# ------------------------------------------------------------------------------ the kit with no make, no sh


def real_python(version: str) -> Path | None:
    """The interpreter itself (not a launcher script such as pyenv's shims, which need a shell)."""
    found = kit_envs.find_python(version)
    if found is None:
        return None
    done = subprocess.run([found, "-c", "import sys; print(sys.executable)"], capture_output=True, text=True)
    return Path(done.stdout.strip()) if done.returncode == 0 else None


def python_only_path(folder: Path, version: str = "3.11") -> Path:
    """A folder holding only a Python executable, for PATH: what a Windows user without make or sh has."""
    python = real_python(version)
    if python is None:
        pytest.skip(f"no python{version} here")
    folder.mkdir(parents=True)
    (folder / "python").symlink_to(python)  # the test machine's layout only; the kit makes no link
    assert shutil.which("make", path=str(folder)) is None and shutil.which("sh", path=str(folder)) is None
    return folder


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(url: str, process: subprocess.Popen, log: Path, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            urllib.request.urlopen(url, timeout=5).close()  # noqa: S310 (our own server on 127.0.0.1)
            return
        except OSError:
            assert process.poll() is None and time.monotonic() < deadline, \
                f"{url} never answered:\n{log.read_text(errors='replace')[-3000:]}"
            time.sleep(1)


@contextmanager
def _running(command: list[str], log: Path, **kwargs) -> Iterator[subprocess.Popen]:
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, **kwargs)
    try:
        yield process
    finally:
        os.killpg(process.pid, 15)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait()


@pytest.mark.slow
def test_every_name_in_the_published_kit_is_one_windows_accepts(kit_clone: Path) -> None:
    assert windows_name_problems(kit_names(kit_clone)) == []


@pytest.mark.slow
def test_the_kits_commands_run_with_only_python_on_path(kit_clone: Path, tmp_path: Path) -> None:
    """`python kit.py setup`, `workspace`, `nbgrader` and `lab` as the kit's README gives them, run without a
    shell, with PATH holding only the Python executable: no make, no sh (Python 3.11's kit venv)."""
    from filelock import FileLock
    from test_kit import prepared_env, student_env

    env = prepared_env("3.11")
    kit = tmp_path / "kit"
    shutil.copytree(kit_clone, kit, ignore=shutil.ignore_patterns(".git"))
    folder = python_only_path(tmp_path / "python-only")
    environ = {**student_env(env, tmp_path), "PATH": str(folder)}
    environ.pop("VIRTUAL_ENV", None)
    course_id = Course.current().nbgrader_config.CourseDirectory.course_id
    with FileLock(str(env) + ".lock"):
        (env / ".installed").unlink(missing_ok=True)
        kit_py = ["python", "kit.py", "--venv", str(env)]
        done = subprocess.run([*kit_py, "setup"], cwd=kit, capture_output=True, text=True, env=environ)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert (env / ".installed").is_file()
        again = subprocess.run([*kit_py, "setup"], cwd=kit, capture_output=True, text=True, env=environ)
        assert again.returncode == 0 and "+ " not in again.stdout, again.stdout  # set up already: nothing runs
        done = subprocess.run([*kit_py, "workspace"], cwd=kit, capture_output=True, text=True, env=environ)
        assert done.returncode == 0 and f"new  {course_id}/" in done.stdout, done.stdout + done.stderr
        done = subprocess.run([*kit_py, "nbgrader", "--version"], cwd=kit, capture_output=True, text=True, env=environ)
        assert done.returncode == 0 and "0.9" in done.stdout + done.stderr, done.stdout + done.stderr
        port, token = _free_port(), os.urandom(16).hex()
        args = ["--no-browser", f"--port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}"]
        args += ["--allow-root"] if os.geteuid() == 0 else []
        with _running([*kit_py, "lab", *args], tmp_path / "lab.log", cwd=kit, env=environ) as lab:
            _wait_for(f"http://127.0.0.1:{port}/api/status?token={token}", lab, tmp_path / "lab.log")
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/contents/{course_id}?token={token}") as reply:
                listed = {item["name"] for item in json.load(reply)["content"]}  # noqa: S310 (127.0.0.1)
            assert listed == set(json.loads((kit / publish.MANIFEST).read_text())["assignments"])


# ------------------------------------------------------------------------------ a notebook alone, as on Colab


ALONE = "maml"  # a cheap assignment: no dataset to download, seconds in FAST mode
OLD_TORCH = ("2.13.0", "0.28.0")  # the lowest of publish.TORCH_RANGE: torch's CPU wheel on this machine's disk
# What a service has before the notebook runs: its PyTorch, and Jupyter's kernel and runner.
# (torchvision is left out: PyPI's 0.28.0, built against PyPI's torch 2.13.0, does not import beside the CPU
# build on this disk; ALONE needs none.)
SERVICE = [f"torch=={OLD_TORCH[0]}", "ipykernel", "nbclient"]
SETUP_SECONDS = 900
RUNNER = """
import json, sys, time
import nbformat
from nbclient import NotebookClient
nb = nbformat.read(sys.argv[1], as_version=4)
client = NotebookClient(nb, timeout=int(sys.argv[3]), kernel_name="python3", allow_errors=True)
client.execute()
nbformat.write(nb, sys.argv[2])
"""


def service_base() -> Path:
    """A venv of Python 3.11 with only what a service has (:data:`SERVICE`), built once per machine
    (kit_envs' folder, under a lock) and copied for each run, which changes it."""
    from filelock import FileLock

    base = kit_envs.env_root() / f"service-py3.11-torch{OLD_TORCH[0]}"
    base.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(base) + ".lock"):
        if (base / ".ready").is_file():
            return base
        python = real_python("3.11")
        if python is None:
            pytest.skip("no python3.11 here")
        shutil.rmtree(base, ignore_errors=True)
        subprocess.run([str(python), "-m", "venv", str(base)], check=True)
        done = subprocess.run([str(base / "bin" / "python"), "-m", "pip", "install", "--quiet", *SERVICE],
                              capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"torch {OLD_TORCH[0]} (CPU, Python 3.11) cannot be installed here: {done.stderr[-1500:]}")
        (base / ".ready").write_text("ready\n")
        return base


def torch_files(venv: Path) -> dict[str, tuple[int, int]]:
    """Every file of the venv's torch and torchvision, with its size and modification time."""
    site = next((venv / "lib").glob("python3.*/site-packages"))
    return {str(p.relative_to(site)): (p.stat().st_size, p.stat().st_mtime_ns)
            for folder in ("torch", "torchvision") for p in (site / folder).rglob("*") if p.is_file()}


def run_alone(venv: Path, notebook: Path, environ: dict[str, str]) -> nbformat.NotebookNode:
    """The notebook executed by nbclient in the venv's own kernel, from a folder holding nothing else."""
    runner = notebook.parent.parent / "runner.py"
    runner.write_text(RUNNER)
    out = notebook.with_suffix(".out.ipynb")
    done = subprocess.run([str(venv / "bin" / "python"), str(runner), str(notebook), str(out), str(SETUP_SECONDS)],
                          cwd=notebook.parent, capture_output=True, text=True, env=environ)
    assert done.returncode == 0, done.stderr[-4000:]
    return nbformat.read(out, as_version=4)


def downloaded_bytes(pip_output: str) -> float:
    """What pip says it downloaded: ``Downloading name.whl (12.1 MB)`` lines, summed."""
    import re

    units = {"kB": 1e3, "MB": 1e6, "GB": 1e9, "B": 1}
    return sum(float(size) * units[unit] for size, unit in
               re.findall(r"Downloading \S+ \(([\d.]+) (kB|MB|GB|B)\)", pip_output))


def _errors(nb: nbformat.NotebookNode) -> list[tuple[int, dict]]:
    return [(i, o) for i, c in enumerate(nb.cells) for o in c.get("outputs", []) if o.get("output_type") == "error"]


def _seconds(cell: nbformat.NotebookNode) -> float:
    from datetime import datetime

    timing = cell.metadata.get("execution", {})
    start, end = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
    return (datetime.fromisoformat(end.replace("Z", "+00:00")) - datetime.fromisoformat(start.replace("Z", "+00:00"))
            ).total_seconds() if start and end else float("nan")


@pytest.mark.slow
def test_a_released_notebook_alone_installs_the_kit_and_keeps_the_services_torch(tmp_path: Path) -> None:
    """As on Colab: a fresh venv with torch 2.13.0 (CPU) and nothing of the course; the kit's wheel on a
    local HTTP server. The released notebook's set-up cell installs the kit without touching torch;
    the notebook then runs to its first stub (FAST mode); with the solution's cells pasted in, every
    visible check passes. Prints the set-up cell's seconds and what pip downloaded."""
    port = _free_port()
    kit = publish.publish(tmp_path / "kit", [ALONE], url=f"http://127.0.0.1:{port}").root
    venv = tmp_path / "service"
    shutil.copytree(service_base(), venv, symlinks=True)
    before = torch_files(venv)
    (tmp_path / "home").mkdir()
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("COURSE_", "JUPYTER", "NBGRADER", "VIRTUAL_ENV", "PYTHON", "IPYTHON"))}
    environ = {**clean, "PATH": f"{venv / 'bin'}{os.pathsep}{clean.get('PATH', '')}", "HOME": str(tmp_path / "home"),
               "COURSE_FAST": "1", "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1",
               "PIP_NO_CACHE_DIR": "1", "PIP_VERBOSE": "1",  # every file downloaded, and each named with its size
               "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter"), "JUPYTER_DATA_DIR": str(tmp_path / "jupyter-data"),
               "JUPYTER_RUNTIME_DIR": str(tmp_path / "jupyter-runtime")}
    blank = tmp_path / "blank" / f"{ALONE}.ipynb"
    blank.parent.mkdir()
    shutil.copy(kit / publish.RELEASED / ALONE / f"{ALONE}.ipynb", blank)
    with _running([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory",
                   str(kit / "dist")], tmp_path / "http.log") as server:
        _wait_for(f"http://127.0.0.1:{port}/", server, tmp_path / "http.log", 60)
        ran = run_alone(venv, blank, environ)
    setup_out = "".join(o.get("text", "") for o in ran.cells[0].get("outputs", []))
    downloaded = downloaded_bytes(setup_out)
    wheel = kit / "dist" / publish.wheel_name("dl-course")
    print(f"\nthe set-up cell: {_seconds(ran.cells[0]):.0f} s, {downloaded / 1e6:.1f} MB downloaded by pip "
          f"(the kit's wheel: {wheel.stat().st_size / 2**10:.0f} KiB)")
    errors = _errors(ran)
    assert errors and errors[0][0] > 0, f"the set-up cell failed: {setup_out[-3000:]} {errors[:1]}"
    first, error = errors[0]
    assert error["ename"] == "NotImplementedError" and error["evalue"].startswith("write "), (first, error, setup_out)
    assert any(c.metadata.get("nbgrader", {}).get("solution") for c in ran.cells[:first + 1]), \
        "it stopped before the first stub"
    check = subprocess.run([str(venv / "bin" / "python"), "-c", "import torch, course_utils; print(torch.__version__)"],
                           capture_output=True, text=True, env=environ, cwd=tmp_path)
    assert check.stdout.split() == [f"{OLD_TORCH[0]}+cpu"], check.stdout + check.stderr
    assert torch_files(venv) == before, "pip changed torch's or torchvision's files"

    solved = tmp_path / "solved" / f"{ALONE}.ipynb"
    solved.parent.mkdir()
    nbformat.write(_solved(kit / publish.RELEASED / ALONE / f"{ALONE}.ipynb", ALONE), solved)
    ran = run_alone(venv, solved, environ)  # the kit is installed now: its set-up cell does nothing
    assert not _errors(ran), _errors(ran)[:1]
    assert not ran.cells[0].get("outputs"), ran.cells[0].outputs
    assert torch_files(venv) == before


# ------------------------------------------------------------------------------ a GPU when there is one


def test_selfcheck_on_a_gpu_says_there_is_none_and_exits_2(capsys: pytest.CaptureFixture) -> None:
    """`course selfcheck A --device cuda` where torch sees no GPU (this machine, CI): it says so, exit 2."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert cli.main(["selfcheck", "vae", "--device", "cuda"]) == 2
    assert "no CUDA device on this machine" in capsys.readouterr().err
