"""The student kit as students use it: installed with its own `make setup` into a fresh venv on
Python 3.11, 3.12 and 3.13, every notebook run there, validated, submitted; and its `make lab` in
headless Chromium: the Assignments tab and the Validate button, no Formgrader, no course management.

The venvs hold the kit's packages, several GB per Python downloaded from PyPI: `.ci/run` builds
them in the background at its start (course_tools/authoring/kit_envs.py), so the download overlaps
the CPU-bound tests. These tests wait for one that is still being built and skip, saying how to
build it, where none was started. A file lock keeps two tests from using one venv at once.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import nbformat
import pytest
from kit_support import kit_assignments

from course_tools.authoring import kit_envs, publish
from course_tools.layout import Course

pytestmark = pytest.mark.slow

WAIT_FOR_ENV = 40 * 60  # seconds: .ci/run's background build of the three venvs
RUN_TIMEOUT = 180  # seconds for one cell in FAST mode on a busy machine
# nbconvert runs with the kit's own kernel client: with the stock one, a cell writing into a widget sometimes
# waited out this whole timeout (course_utils/kernel_client.py)
PROMPT_CLIENT = "--ExecutePreprocessor.kernel_manager_class=course_utils.kernel_client.PromptKernelManager"
SUBMITTED = "vae"  # the assignment validated and submitted on every Python (FAST run: seconds)


def prepared_env(version: str) -> Path:
    """The venv of Python ``version`` with the kit's packages: wait while it is built, skip if none was started."""
    deadline = time.monotonic() + WAIT_FOR_ENV
    while True:
        state = kit_envs.status(version)
        if state == "ready":
            return kit_envs.env_dir(version)
        if not state:
            pytest.skip(f"no venv with the kit's packages for Python {version} in {kit_envs.env_root()}: .ci/run "
                        f"builds them in the background (python -m course_tools.authoring.kit_envs {version}; "
                        "several GB from PyPI)")
        if state.startswith("missing"):
            pytest.skip(f"Python {version}: {state}")
        if state.startswith("failed"):
            log = kit_envs.log_file(version)
            tail = log.read_text(errors="replace")[-3000:] if log.is_file() else ""
            pytest.fail(f"the kit's packages do not install on Python {version}: {state}\n{tail}")
        if time.monotonic() > deadline:
            pytest.fail(f"Python {version}'s venv is still being built after {WAIT_FOR_ENV // 60} minutes")
        time.sleep(10)


@contextmanager
def kit_installed(version: str, kit_source: Path, folder: Path) -> Iterator[tuple[Path, Path]]:
    """A copy of the kit in ``folder``, installed with its own `make setup` into Python ``version``'s venv
    (which then has only the kit and its packages); held under the venv's lock. Yields (kit, venv)."""
    from filelock import FileLock

    env = prepared_env(version)
    kit = folder / "kit"
    shutil.copytree(kit_source, kit)
    with FileLock(str(env) + ".lock"):
        (env / ".installed").unlink(missing_ok=True)
        done = subprocess.run(["make", "-C", str(kit), "setup", f"VENV={env}"], capture_output=True, text=True)
        assert done.returncode == 0, f"make setup failed on Python {version}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        yield kit, env


def student_env(env: Path, folder: Path, **extra: str) -> dict[str, str]:
    """A student's environment: the venv first on PATH, FAST mode, and no Jupyter or data of ours."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("COURSE_", "JUPYTER", "NBGRADER", "VIRTUAL_ENV"))}
    return {**clean, "PATH": f"{env / 'bin'}{os.pathsep}{clean.get('PATH', '')}", "COURSE_FAST": "1",
            "COURSE_DATA": str(folder / "data"), "JUPYTER_CONFIG_DIR": str(folder / "jupyter-config"),
            "JUPYTER_DATA_DIR": str(folder / "jupyter-data"), "JUPYTER_RUNTIME_DIR": str(folder / "jupyter-runtime"),
            "IPYTHONDIR": str(folder / "ipython"), "MPLBACKEND": "Agg", **extra}


def completed(kit: Path, name: str) -> nbformat.NotebookNode:
    """The released notebook with every answer cell filled in as the source's solution: a student's finished work."""
    course = Course.current()
    answers = {c.metadata.nbgrader.grade_id: c.source
               for c in nbformat.read(course.source_notebook(name), as_version=4).cells
               if c.get("metadata", {}).get("nbgrader", {}).get("solution")}
    nb = nbformat.read(kit / publish.RELEASED / name / f"{name}.ipynb", as_version=4)
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("solution"):
            cell.source = answers[meta["grade_id"]]
    return nb


def run_notebook(env: Path, path: Path, environ: dict[str, str]) -> None:
    """Execute ``path`` top to bottom with the venv's Jupyter and kernel; fail on the first error."""
    done = subprocess.run([str(env / "bin" / "jupyter"), "nbconvert", "--to", "notebook", "--execute", "--inplace",
                           f"--ExecutePreprocessor.timeout={RUN_TIMEOUT}", PROMPT_CLIENT, str(path)],
                          cwd=path.parent, capture_output=True, text=True, env=environ)
    assert done.returncode == 0, f"{path.name} failed on {env.name}:\n{done.stderr[-4000:]}"
    executed = nbformat.read(path, as_version=4)
    errors = [o for c in executed.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, errors[0]


def released_to_exchange(name: str, exchange: Path, folder: Path) -> None:
    """The instructor's side: ``name`` released into ``exchange`` with the course's nbgrader (`nbgrader release_assignment`)."""
    from course_tools.scratch import scratch_course

    with scratch_course(name) as course:
        course.release()
        done = subprocess.run([str(Path(sys.executable).parent / "nbgrader"), "release_assignment", name,
                               f"--Exchange.root={exchange}"], cwd=course.root, capture_output=True, text=True,
                              env={**os.environ, "JUPYTER_CONFIG_DIR": str(folder / "instructor-jupyter")})
        assert done.returncode == 0, done.stderr


def validate_and_submit(kit: Path, env: Path, name: str, environ: dict[str, str]) -> None:
    """The student's finished notebook in the workspace passes `nbgrader validate` and is handed in by `nbgrader submit`."""
    course_id = Course.current().nbgrader_config.CourseDirectory.course_id
    subprocess.run(["make", "-C", str(kit), "workspace"], check=True, capture_output=True)
    mine = kit / course_id / name / f"{name}.ipynb"
    nbformat.write(completed(kit, name), mine)
    done = subprocess.run([str(env / "bin" / "nbgrader"), "validate", str(mine)], cwd=kit, capture_output=True,
                          text=True, env=environ)
    assert "Success! Your notebook passes all the tests." in done.stdout, done.stdout[-3000:] + done.stderr[-2000:]
    done = subprocess.run([str(env / "bin" / "nbgrader"), "submit", name], cwd=kit, capture_output=True, text=True,
                          env=environ)
    assert done.returncode == 0, done.stderr[-3000:]
    inbound = Path(environ["COURSE_EXCHANGE"]) / course_id / "inbound"
    assert [p for p in inbound.iterdir() if (p / f"{name}.ipynb").is_file()], "the submission is not in the exchange"


@pytest.mark.parametrize("version", kit_envs.PYTHONS)
def test_the_kit_installs_runs_validates_and_submits(version: str, kit_clone: Path, tmp_path: Path) -> None:
    """`make setup` on this Python; a finished notebook runs top to bottom, validates and is submitted.
    On 3.11 every assignment's finished notebook runs; on 3.12 and 3.13 one does."""
    exchange = tmp_path / "exchange"
    released_to_exchange(SUBMITTED, exchange, tmp_path)
    with kit_installed(version, kit_clone, tmp_path) as (kit, env):
        environ = student_env(env, tmp_path, COURSE_EXCHANGE=str(exchange))
        names = kit_assignments(kit_clone) if version == kit_envs.PYTHONS[0] else [SUBMITTED]
        for name in names:
            path = tmp_path / "runs" / name / f"{name}.ipynb"
            path.parent.mkdir(parents=True)
            nbformat.write(completed(kit, name), path)
            run_notebook(env, path, environ)
        validate_and_submit(kit, env, SUBMITTED, environ)


# ------------------------------------------------------------------------------------ make lab in a browser


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def make_lab(kit: Path, env: Path, environ: dict[str, str], folder: Path) -> Iterator[str]:
    """The kit's `make lab` (with the venv given), serving on a free port; yields its base URL with the token."""
    port, token = _free_port(), os.urandom(16).hex()
    settings = folder / "lab-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false", "checkForUpdates": false}')
    args = f"--no-browser --port={port} --ServerApp.port_retries=0 --IdentityProvider.token={token}"
    if os.geteuid() == 0:
        args += " --allow-root"
    log = folder / "lab.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(["make", "-C", str(kit), "lab", f"VENV={env}", f"LAB_ARGS={args}"], stdout=out,
                                  stderr=subprocess.STDOUT, env={**environ, "JUPYTERLAB_SETTINGS_DIR": str(folder / "lab-settings")},
                                  start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=5).close()  # noqa: S310 (localhost)
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, \
                    f"make lab did not start:\n{log.read_text(errors='replace')[-3000:]}"
                time.sleep(1)
        yield f"{url}|{token}"
    finally:
        os.killpg(server.pid, 15)  # make and the JupyterLab it started: their own process group
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, 9)
            server.wait()


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as reply:  # noqa: S310 (our own server on localhost)
            return reply.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_the_students_lab_has_assignments_and_validate_but_no_formgrader(kit_clone: Path, tmp_path: Path) -> None:
    """In headless Chromium, on the kit's `make lab`: the Nbgrader menu offers the Assignment List and
    nothing of the Formgrader or course management; the Assignments tab lists the assignment `make lab`
    copied, and its Submit button hands it in through the exchange; the notebook's Validate button runs
    the checks and shows the first stub's message."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed "
                                   "(pip install -e '.[dev]')")
    chromium = next(filter(None, (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome"))), None)
    if chromium is None:
        pytest.skip("Chromium is not installed (Debian: apt install chromium; .ci/run installs it)")
    course_id = Course.current().nbgrader_config.CourseDirectory.course_id
    exchange = tmp_path / "exchange"
    released_to_exchange(SUBMITTED, exchange, tmp_path)
    with kit_installed(kit_envs.PYTHONS[0], kit_clone, tmp_path) as (kit, env), \
            make_lab(kit, env, student_env(env, tmp_path, COURSE_EXCHANGE=str(exchange)), tmp_path) as address, \
            sync_api.sync_playwright() as playwright:
        url, token = address.split("|")
        assert _status(f"{url}/formgrader?token={token}") == 404, "the Formgrader is served to students"
        assert _status(f"{url}/formgrader/api/assignments?token={token}") == 404
        browser = playwright.chromium.launch(executable_path=chromium, args=["--disable-dev-shm-usage"])
        try:
            page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            page.set_default_timeout(120_000)
            try:
                _check_lab(page, url, token, course_id, exchange)
            except Exception:
                page.screenshot(path=str(tmp_path / "lab-at-failure.png"), full_page=True)
                raise
        finally:
            browser.close()


def _check_lab(page, url: str, token: str, course_id: str, exchange: Path) -> None:
    page.goto(f"{url}/lab/tree/{course_id}?token={token}")
    page.get_by_role("menuitem", name="Nbgrader", exact=True).click()
    menu = page.locator("#jp-mainmenu-nbgrader")
    menu.get_by_text("Assignment List", exact=True).wait_for()
    offered = menu.inner_text()
    for absent in ("Formgrader", "Course List", "Create Assignment"):
        assert absent not in offered, f"the Nbgrader menu offers {absent}: {offered!r}"
    menu.get_by_text("Assignment List", exact=True).click()

    fetched = page.locator("#fetched_assignments_list")
    fetched.get_by_text(SUBMITTED, exact=True).first.wait_for()  # `make lab` copied it: it shows as downloaded
    fetched.get_by_role("button", name="Submit").first.click()
    page.locator("#submitted_assignments_list").get_by_text(SUBMITTED).first.wait_for()
    inbound = exchange / course_id / "inbound"
    assert [p for p in inbound.iterdir() if (p / f"{SUBMITTED}.ipynb").is_file()], "Submit handed nothing in"
    assert page.get_by_text("Create Assignment").count() == 0, "the Create Assignment sidebar is there"

    page.goto(f"{url}/lab/tree/{course_id}/{SUBMITTED}/{SUBMITTED}.ipynb?token={token}")
    page.locator(".validate-button").first.click()
    dialog = page.locator(".jp-Dialog")
    dialog.get_by_text("Validation Results").wait_for(timeout=600_000)
    text = dialog.inner_text()
    assert "NotImplementedError: write " in text, text[:3000]
