"""A class on the shared server, in a browser: JupyterHub with its proxy, two students and an instructor.

`deploy/hub.py` (the README's commands) brings up JupyterHub and configurable-http-proxy for a
throw-away course holding the toy assignment (and a formula), with Unix accounts made for this
test and deleted after it. Headless Chromium (Playwright, Debian's `chromium`) then plays the class:

1. the instructor releases the assignment (`course release`, `nbgrader release_assignment`);
2. each student logs in, fetches it from the Assignments tab, opens the notebook from the Lab's
   file browser, fills it in (one right, one with a wrong `square`), validates (the wrong one is
   told what fails) and submits;
3. the instructor collects, runs `course autograde`, grades one written answer in the
   Formgrader, makes feedback (`course feedback` refuses the ungraded one, `--provisional` marks
   it), and releases it;
4. each student fetches and opens their own feedback: scores, a banner only on the provisional
   page, formulas drawn as MathML; students cannot read the course folder or each other's files.

No page may ask anything of the internet. Screenshots of every step go to $CLASS_SHOTS (default
/tmp/class-server-shots). The course environment is built once at $COURSE_HUB_ENV (default
/opt/course-hub-test/env: minutes the first time) and updated from this checkout at each run.
Skips, saying why, where accounts cannot be made (not root, no useradd) or the proxy cannot run.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
SHOTS = Path(os.environ.get("CLASS_SHOTS") or Path(tempfile.gettempdir()) / "class-server-shots")
HUB_ENV = Path(os.environ.get("COURSE_HUB_ENV") or "/opt/course-hub-test/env")
COURSE_ID = "dl-course"  # as the course's nbgrader_config.py names it
SPAWN_TIMEOUT = 360_000  # ms for a user's JupyterLab to start on a busy two-core machine
STEP_TIMEOUT = 180_000  # ms for one exchange step (fetch, submit, validate) to show its result
FORMULA = r"The mean square is $\frac{1}{n}\sum_{i=1}^{n} x_i^2$."

ANSWERS = {  # what each student types into the answer cells
    "right": {"square": "def square(x):\n    return x * x",
              "mean_square": "def mean_square(xs):\n    return float(np.mean(np.asarray(xs, dtype=float) ** 2))",
              "why_negative": "A product of two numbers of the same sign is positive."},
    "wrong": {"square": "def square(x):\n    return x + x",
              "mean_square": "def mean_square(xs):\n    return float(np.mean(np.asarray(xs, dtype=float) ** 2))",
              "why_negative": "Because squares are always big."},
}


def _chromium() -> str | None:
    for name in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and (found := shutil.which(name)):
            return found
    return None


def _cannot_run() -> str | None:
    """Why this machine cannot host the class server, or None."""
    if os.geteuid() != 0:
        return "making Unix accounts and starting servers as them needs root (CI runs as root)"
    if not shutil.which("useradd") or not shutil.which("runuser"):
        return "useradd/runuser are missing: this machine cannot make local accounts"
    if not (shutil.which("configurable-http-proxy") or shutil.which("npm")):
        return "configurable-http-proxy is not installed and npm is missing (.ci/run: npm install -g configurable-http-proxy)"
    if not shutil.which("node") and not shutil.which("nodejs"):
        return "node is missing: configurable-http-proxy cannot run"
    if not Path("/usr/bin/python3").is_file():
        return "no system Python (/usr/bin/python3) to build the environment every account can run"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Hub:
    url: str
    base: Path
    prefix: Path
    course: Path
    exchange: Path
    students: dict[str, str]  # name -> password
    instructor: tuple[str, str]
    staff_config: Path
    external_requests: list[str] = field(default_factory=list)

    def deploy(self, *args: str, stdin: str = "") -> str:
        """Run deploy/hub.py as the README does; fail with its output if it fails."""
        result = subprocess.run([sys.executable, str(REPO / "deploy" / "hub.py"), "--prefix", str(self.prefix), *args],
                                input=stdin, capture_output=True, text=True)
        assert result.returncode == 0, f"deploy/hub.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
        return result.stdout

    def as_user(self, user: str, command: str, staff: bool = False, check: bool = True) -> subprocess.CompletedProcess:
        """``command`` in a shell as ``user``, with the environment that user's JupyterLab terminals have
        (staff: in the course folder)."""
        env = {"HOME": f"/home/{user}", "USER": user, "PATH": f"{HUB_ENV / 'bin'}:/usr/bin:/bin", "LANG": "C.UTF-8",
               "COURSE_EXCHANGE": str(self.exchange)}
        if staff:
            env.update(COURSE_ROOT=str(self.course), JUPYTER_CONFIG_PATH=str(self.staff_config),
                       JUPYTER_PATH=str(self.prefix / "staff-data"))
        cwd = self.course if staff else Path(f"/home/{user}")
        result = subprocess.run(["runuser", "-u", user, "--", "env", "-i", *(f"{k}={v}" for k, v in env.items()),
                                 "bash", "-c", f"cd {cwd} && {command}"], capture_output=True, text=True)
        if check:
            assert result.returncode == 0, f"{user}$ {command} failed ({result.returncode}):\n" \
                                           f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        return result


def _course_folder(course: Path) -> None:
    """A course folder like the instructor's checkout: the course's nbgrader_config.py and one
    assignment, the toy one, with a formula for the feedback page to draw."""
    (course / "notebooks").mkdir(parents=True)
    shutil.copy(REPO / "nbgrader_config.py", course / "nbgrader_config.py")
    nb = nbformat.read(REPO / "tests" / "fixtures" / "toy" / "notebooks" / "toy" / "toy.ipynb", as_version=4)
    nb.cells.insert(1, nbformat.v4.new_markdown_cell(FORMULA))
    (course / "notebooks" / "toy").mkdir()
    nbformat.write(nb, course / "notebooks" / "toy" / "toy.ipynb")


@pytest.fixture(scope="module")
def browser():
    if reason := _cannot_run():
        pytest.skip(reason)
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed "
                                   "(pip install -e '.[dev]')")
    executable = _chromium()
    if executable is None:
        pytest.skip("Chromium is not installed (Debian: apt install chromium; .ci/run installs it)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--disable-dev-shm-usage"])
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def hub(browser) -> Hub:
    """The class server, installed and started with deploy/hub.py; everything it made removed after."""
    base = Path(tempfile.mkdtemp(prefix="class-server-"))
    base.chmod(0o755)  # staff must reach the course folder inside
    tag = secrets.token_hex(3)
    found = Hub(url="", base=base, prefix=base / "hub", course=base / "course", exchange=base / "exchange",
                students={f"cs{tag}a": secrets.token_urlsafe(12), f"cs{tag}b": secrets.token_urlsafe(12)},
                instructor=(f"cs{tag}p", secrets.token_urlsafe(12)), staff_config=base / "hub" / "staff-config")
    _course_folder(found.course)
    port = _free_port()
    try:
        found.deploy("install", "--course-dir", str(found.course), "--env", str(HUB_ENV), "--no-data",
                     "--exchange", str(found.exchange), "--group-prefix", f"cs{tag}", "--ip", "127.0.0.1",
                     "--port", str(port), "--hub-port", str(_free_port()), "--proxy-api-port", str(_free_port()))
        for name, password in found.students.items():
            found.deploy("add-user", name, "--role", "student", stdin=password + "\n")
        found.deploy("add-user", found.instructor[0], "--role", "staff", stdin=found.instructor[1] + "\n")
        found.deploy("start", "--timeout", "300")
        found.url = f"http://127.0.0.1:{port}"
        yield found
    finally:
        if found.prefix.exists():
            subprocess.run([sys.executable, str(REPO / "deploy" / "hub.py"), "--prefix", str(found.prefix), "uninstall"],
                           capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


# ------------------------------------------------------------------------------- in the browser


def _shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SHOTS / f"{name}.png")


def login(browser, hub: Hub, user: str, password: str):
    """A fresh browser for ``user``, logged in, on their JupyterLab; every request off this machine recorded."""
    context = browser.new_context(viewport={"width": 1400, "height": 950})
    page = context.new_page()
    page.set_default_timeout(STEP_TIMEOUT)
    page.on("request", lambda r: None if r.url.startswith(("http://127.0.0.1", "data:", "blob:", "about:"))
            else hub.external_requests.append(r.url))
    page.goto(f"{hub.url}/hub/login")
    page.fill("input#username_input", user)
    page.fill("input#password_input", password)
    _shot(page, f"{user}-01-login")
    page.click("#login_submit")
    page.wait_for_selector(".jp-LabShell", timeout=SPAWN_TIMEOUT)
    page.locator(".jp-DirListing-content").wait_for()
    _shot(page, f"{user}-02-lab")
    return page


def open_assignments(page) -> None:
    page.get_by_role("menuitem", name="Nbgrader", exact=True).click()
    page.get_by_role("menuitem", name="Assignment List").click()
    page.locator("#assignments").wait_for()


def _row(page, list_id: str, assignment: str = "toy"):
    return page.locator(f"#{list_id} .list_item", has=page.locator(".item_name", has_text=assignment)).first


def fetch_assignment(page, user: str) -> None:
    open_assignments(page)
    row = _row(page, "released_assignments_list")
    row.get_by_role("button", name="Fetch").click()
    _row(page, "fetched_assignments_list").wait_for()
    _shot(page, f"{user}-03-fetched")


def open_from_file_browser(page, *path: str) -> None:
    """Double-click each folder, then the file, in the Lab's file browser (left sidebar)."""
    listing = page.locator(".jp-FileBrowser .jp-DirListing-content")
    if not listing.is_visible():  # the sidebar tab toggles: click it only to open the file browser
        page.locator(".jp-SideBar [data-id='filebrowser']").click()
    page.locator(".jp-FileBrowser .jp-BreadCrumbs-home").click()  # the home folder, listed afresh
    for name in path:
        item = page.locator(".jp-DirListing-item", has=page.locator(".jp-DirListing-itemText", has_text=re.compile(
            f"^{re.escape(name)}$"))).first
        item.wait_for()
        item.dblclick()


def _cell(page, grade_id: str, nb: nbformat.NotebookNode):
    index = next(i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)
    return page.locator(".jp-Notebook .jp-Cell").nth(index)


def fill_notebook(page, user: str, answers: dict[str, str], nb: nbformat.NotebookNode) -> None:
    """Replace each answer cell's stub by the student's text, as typed, and save."""
    page.locator(".jp-Notebook .jp-Cell").nth(len(nb.cells) - 1).wait_for()
    for grade_id, text in answers.items():
        cell = _cell(page, grade_id, nb)
        cell.scroll_into_view_if_needed()
        if "jp-MarkdownCell" in (cell.get_attribute("class") or ""):
            cell.dblclick()  # a rendered markdown cell opens its editor on double-click
        editor = cell.locator(".cm-content")
        editor.click()
        page.keyboard.press("Control+A")
        page.keyboard.insert_text(text)
        page.keyboard.press("Escape")
        assert text.splitlines()[0] in cell.locator(".cm-content").inner_text()
    page.keyboard.press("Control+S")
    page.locator(".jp-Notebook-ExecutionIndicator, .jp-NotebookPanel").first.wait_for()
    page.wait_for_function("() => !document.querySelector('.jp-NotebookPanel .jp-mod-dirty')"
                           " && !document.title.startsWith('*')", timeout=STEP_TIMEOUT)
    _shot(page, f"{user}-05-filled")


def validate(page, user: str) -> str:
    """Press Validate in the notebook toolbar; the text of nbgrader's result dialog."""
    page.get_by_role("button", name="Validate").click()
    dialog = page.locator(".jp-Dialog")
    dialog.wait_for(timeout=STEP_TIMEOUT)
    page.wait_for_function("() => !/Validating/i.test((document.querySelector('.jp-Dialog') || {}).innerText || '')",
                           timeout=STEP_TIMEOUT)
    text = dialog.inner_text()
    _shot(page, f"{user}-06-validated")
    dialog.get_by_role("button").last.click()
    return text


def submit(page, user: str) -> None:
    open_assignments(page)
    _row(page, "fetched_assignments_list").get_by_role("button", name="Submit").click()
    _row(page, "submitted_assignments_list").wait_for()
    _shot(page, f"{user}-07-submitted")


def grade_written_answer(page, hub: Hub, student: str, points: int) -> None:
    """In the Formgrader's Manual Grading: open ``student``'s submission and give the written answer points."""
    page.goto(f"{hub.url}/user/{hub.instructor[0]}/formgrader/gradebook/toy/toy")
    row = page.locator("tr", has=page.locator("a", has_text=student)).first
    row.locator("a", has_text="Submission").click()
    score = page.locator("input#why_negative")
    score.wait_for()
    score.fill(str(points))
    score.press("Tab")  # the Formgrader saves a score when its box loses focus
    _shot(page, f"{hub.instructor[0]}-01-formgrader-{student}")


def fetch_feedback(page, user: str):
    """Assignments tab > Fetch Feedback > "view feedback"; open the page it shows; returns the viewer's frame."""
    open_assignments(page)
    row = _row(page, "submitted_assignments_list")
    row.get_by_role("button", name="Fetch Feedback").click()
    link = page.locator("#submitted_assignments_list a", has_text="view feedback").first
    link.wait_for(timeout=STEP_TIMEOUT)
    _shot(page, f"{user}-08-feedback-fetched")
    link.click()
    page.locator(".jp-DirListing-item", has_text="toy.html").first.dblclick()
    frame = page.frame_locator(".jp-HTMLViewer iframe, iframe").last
    frame.locator("body").wait_for()
    return frame


# ------------------------------------------------------------------------------- the class


def test_a_class_on_the_shared_server(browser, hub: Hub) -> None:
    (right, wrong), (prof, prof_password) = list(hub.students), hub.instructor
    nb = nbformat.read(hub.course / "notebooks" / "toy" / "toy.ipynb", as_version=4)

    # The instructor releases.
    hub.as_user(prof, "course release toy && nbgrader release_assignment toy", staff=True)

    # Each student logs in, fetches, opens, fills, validates, submits.
    for student, kind in ((right, "right"), (wrong, "wrong")):
        page = login(browser, hub, student, hub.students[student])
        page.get_by_role("menuitem", name="Nbgrader", exact=True).click()
        menu = page.locator(".lm-Menu").first.inner_text()
        assert "Assignment List" in menu and "Formgrader" not in menu, f"a student's Nbgrader menu: {menu}"
        page.keyboard.press("Escape")
        fetch_assignment(page, student)
        open_from_file_browser(page, COURSE_ID, "toy", "toy.ipynb")
        _shot(page, f"{student}-04-opened")
        fill_notebook(page, student, ANSWERS[kind], nb)
        verdict = validate(page, student)
        if kind == "right":
            assert "Success" in verdict, verdict
        else:
            assert "square(3) should be 9" in verdict, verdict
        submit(page, student)
        page.context.close()

    # Students see neither the course folder nor each other's work.
    for student in hub.students:
        assert hub.as_user(student, f"ls {hub.course}", check=False).returncode != 0
        other = next(s for s in hub.students if s != student)
        assert hub.as_user(student, f"ls /home/{other}/{COURSE_ID}", check=False).returncode != 0
        assert hub.as_user(student, f"ls {hub.exchange}/{COURSE_ID}/inbound", check=False).returncode != 0

    # The instructor collects, autogrades, grades one written answer in the Formgrader.
    hub.as_user(prof, "nbgrader collect toy", staff=True)
    graded = hub.as_user(prof, "course autograde toy --workers 1", staff=True).stdout
    assert "graded 2" in graded, graded
    page = login(browser, hub, prof, prof_password)
    grade_written_answer(page, hub, right, 1)
    deadline = time.monotonic() + STEP_TIMEOUT / 1000
    while _needs_manual(hub, right) and time.monotonic() < deadline:
        time.sleep(1)
    assert not _needs_manual(hub, right), "the Formgrader did not record the written answer's score"
    page.context.close()

    # Feedback: refused while the other written answer waits, then marked provisional; released.
    refused = hub.as_user(prof, "course feedback toy", staff=True, check=False)
    assert refused.returncode == 1 and wrong in refused.stdout, refused.stdout + refused.stderr
    assert not (hub.course / "feedback" / wrong).exists()
    hub.as_user(prof, "course feedback toy --provisional && nbgrader release_feedback toy", staff=True)

    # Each student fetches and opens their own feedback.
    for student, kind in ((right, "right"), (wrong, "wrong")):
        page = login(browser, hub, student, hub.students[student])
        frame = fetch_feedback(page, student)
        text = frame.locator("body").inner_text()
        _shot(page, f"{student}-09-feedback-open")
        assert "Provisional feedback" in text if kind == "wrong" else "Provisional" not in text, text[:500]
        assert ("5.0 / 5.0" if kind == "right" else "/ 5.0") in text, text[:800]
        assert frame.locator("math").count() >= 1 and "\\frac" not in text, "the formula is not drawn"
        assert frame.locator("math").first.bounding_box()["width"] > 20  # drawn, not an empty element
        own = hub.as_user(student, f"ls ~/{COURSE_ID}/toy/feedback/*/", check=False).stdout.split()
        assert own == ["toy.html"], own
        page.context.close()
    assert not hub.external_requests, f"pages asked the internet for: {hub.external_requests[:5]}"


def _needs_manual(hub: Hub, student: str) -> bool:
    """Whether ``student``'s written answer still waits for a grade, read from the gradebook as root."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{hub.course / 'gradebook.db'}") as gb:
        return gb.find_grade("why_negative", "toy", "toy", student).needs_manual_grade
