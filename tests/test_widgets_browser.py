"""The notebooks' ipywidgets work in a real browser, in JupyterLab, the way a student uses them.

For each notebook with a widget: JupyterLab serves a temporary copy of the source
notebook (COURSE_FAST=1 in its kernels), headless Chromium opens it through
Playwright and picks Run > Run All Cells. Every code cell must then have run,
and no cell may show an error. Then each widget is changed as a person would:
type a new text into its box and press Enter, press an arrow key on its
slider, pick another option of its dropdown. What the widget shows must change
(another picture, or the text for the new value) without an error, and the
control must show the new value. A screenshot of each widget after the change
goes to $WIDGET_SHOTS (default: /tmp/widget-shots).

One JupyterLab server and one browser per module (so per pytest-xdist worker);
a fresh browser context per test. Skipped without Chromium (Debian: `apt
install chromium`; `.ci/run` installs it) or without the `playwright` package
(the `dev` extra). The system's Chromium is used: never `playwright install`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import nbformat
import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
SHOTS = Path(os.environ.get("WIDGET_SHOTS") or Path(tempfile.gettempdir()) / "widget-shots")
RUN_ALL_TIMEOUT = 300.0  # seconds for one notebook's Run All (FAST mode: 10-20 s alone on 2 cores)
FIRST_VIEW_TIMEOUT = 15.0  # seconds for a widget's first view to appear once its cell has run
CHANGE_TIMEOUT = 30.0  # seconds for a widget to redraw after a change (well under a second in practice)


def _chromium() -> str | None:
    for name in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and (found := shutil.which(name)):
            return found
    return None


@dataclass(frozen=True)
class Change:
    """One change a person makes to one widget, and what must follow.

    ``cell``: a piece of the source of the one code cell that displays the widget.
    ``action``: "type" (``text`` into the text box, then Enter), "slide" (an arrow
    key on slider ``nth``: right, or left at the right end) or "select" (the next
    option of dropdown ``nth``). ``expect``: from the control's new value (typed
    text, slider readout, option label), a text the widget's output must then show.
    """

    cell: str
    action: str
    nth: int = 0
    text: str = ""
    expect: Callable[[str], str] | None = None


# Every notebook whose widgets we exercise; `test_every_widget_notebook_is_covered` keeps this complete.
CHANGES: dict[str, list[Change]] = {
    "bert_finetuning": [
        Change("given.probability_widget(classify", "type", text="A dull, lifeless and far too long film."),
    ],
    "clip_prompting": [
        Change("given.prompt_widget(retrieval_scores", "type", text="the number three"),
        Change("given.prompt_widget(gallery_scores", "type", text="something round"),
    ],
    "convolutions": [Change("given.maxpool_explorer(", "slide")],
    "diffusion": [Change("forward_explorer = given.process_widget(", "select"),
                  Change("reverse_explorer = given.process_widget(", "slide"),
                  Change("given.image_process_widget(", "slide")],
    "kv_cache": [Change("given.text_explorer(", "slide"), Change("given.memory_explorer(", "select")],
    "lora_peft": [Change("given.scale_explorer(", "slide")],
    "maml": [Change("given.weights_widget(snapshots)", "slide")],
    "moe": [Change("given.routing_explorer(", "select"), Change("given.routing_explorer(", "slide")],
    "nmt": [Change("interact(show_attention", "select")],
    "regularization": [Change("given.decay_explorer(", "slide")],
    "rnn_gradients": [Change("given.jacobian_explorer(", "select"), Change("given.forget_bias_explorer(", "slide")],
    "scaling_laws": [
        Change("widgets.interactive(lambda log10_c", "slide", expect=lambda v: f"C = {10 ** float(v):.2e} FLOPs"),
    ],
    "training_memory": [Change("given.memory_explorer(", "slide"), Change("given.checkpoint_explorer(", "select")],
    "transformer_debugging": [Change("given.depth_explorer(", "slide")],
    "vae": [Change("given.latent_explorer(", "slide"), Change("given.latent_explorer(", "select", nth=0)],
    "vib": [Change("given.latent_explorer(", "slide")],
}

# A traceback, or an exception's one-line summary, in a rendered stderr/error output.
ERROR_RE = re.compile(r"Traceback|^\s*\w*(Error|Exception)\b", re.MULTILINE)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> object:
    with urllib.request.urlopen(url, timeout=5) as reply:  # noqa: S310 (our own server on localhost)
        return json.loads(reply.read() or b"null")


@dataclass
class Lab:
    url: str
    token: str
    root: Path
    log: Path

    def open_url(self, path: str) -> str:
        """Opens ``path`` in a new, empty workspace: no notebook of an earlier test reopens beside it."""
        return f"{self.url}/lab/workspaces/{os.urandom(6).hex()}/tree/{path}?token={self.token}"

    def shutdown_kernels(self) -> None:
        """End every session (and so its kernel): a notebook opened again starts afresh."""
        for kind in ("sessions", "kernels"):
            for item in _get(f"{self.url}/api/{kind}?token={self.token}") or []:
                request = urllib.request.Request(f"{self.url}/api/{kind}/{item['id']}?token={self.token}",
                                                 method="DELETE")
                try:
                    urllib.request.urlopen(request, timeout=30).close()  # noqa: S310
                except OSError:
                    pass

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.is_file() else ""


@pytest.fixture(scope="module")
def browser():
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
def lab(browser, tmp_path_factory: pytest.TempPathFactory):
    """JupyterLab on a temporary copy of the notebooks, kernels in FAST mode; its URL and token.

    Asks for ``browser`` first, so that without a browser the tests skip before a server starts."""
    from course_utils.paths import data_dir

    base = tmp_path_factory.mktemp("jupyterlab")
    root = base / "notebooks"
    for name in CHANGES:
        (root / name).mkdir(parents=True)
        shutil.copy(REPO / "notebooks" / name / f"{name}.ipynb", root / name / f"{name}.ipynb")
    settings = base / "lab-settings"
    # Every cell in the page at once (no virtual scrolling), and no news or update toasts.
    (settings / "@jupyterlab" / "notebook-extension").mkdir(parents=True)
    (settings / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings").write_text(
        json.dumps({"windowingMode": "none"}))
    (settings / "@jupyterlab" / "apputils-extension").mkdir(parents=True)
    (settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    env = {k: v for k, v in os.environ.items()
           if k not in {"COURSE_RESULTS", "COURSE_ROOT", "NBGRADER_EXECUTION", "JUPYTER_TOKEN"}}
    env.update({
        "COURSE_FAST": "1",
        "COURSE_DATA": str(data_dir()),
        "JUPYTER_CONFIG_DIR": str(base / "config"),  # the venv's config (extensions) still applies
        "JUPYTER_RUNTIME_DIR": str(base / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(settings),
        "JUPYTERLAB_WORKSPACES_DIR": str(base / "workspaces"),
        "IPYTHONDIR": str(base / "ipython"),
        "PYTHONUNBUFFERED": "1",
    })
    port, token = _free_port(), os.urandom(16).hex()
    log = base / "jupyterlab.log"
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
               "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}"]
    if os.geteuid() == 0:
        command.append("--allow-root")
    with open(log, "wb") as log_file:
        server = subprocess.Popen(command, cwd=root, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    found = Lab(f"http://127.0.0.1:{port}", token, root, log)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                _get(f"{found.url}/api/status?token={token}")
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not start:\n{found.log_tail()}")
                time.sleep(0.5)
        yield found
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.fixture
def page(browser, lab: Lab):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    yield page
    context.close()
    lab.shutdown_kernels()


# ------------------------------------------------------------------------------- in the page

_NOTEBOOK_STATE = """() => {
  const cells = Array.from(document.querySelectorAll('.jp-Notebook .jp-Cell'));
  return {
    status: (document.querySelector('.jp-Notebook-ExecutionIndicator') || {dataset: {}}).dataset.status || '',
    dialog: (document.querySelector('.jp-Dialog') || {innerText: ''}).innerText,
    cells: cells.map(cell => ({
      code: cell.classList.contains('jp-CodeCell'),
      prompt: (cell.querySelector('.jp-InputPrompt') || {textContent: ''}).textContent.trim(),
      errors: Array.from(cell.querySelectorAll('[data-mime-type="application/vnd.jupyter.stderr"]'))
                   .map(e => e.innerText),
    })),
  };
}"""

_KERNEL_IDLE = """() => Array.from(document.querySelectorAll('#jp-main-statusbar .jp-StatusBar-TextItem'))
  .some(e => /^(?!No Kernel).+ \\| Idle$/.test(e.textContent.trim()))
  && document.querySelector('.jp-Notebook-ExecutionIndicator[data-status="idle"]') !== null"""

_PICTURES_OUTSIDE = """(cell, widget) => Array.from(cell.querySelectorAll('.jp-OutputArea-output img'))
  .filter(img => !widget.contains(img)).length"""

_OUTPUT_STATE = """out => ({
  text: out.innerText,
  images: Array.from(out.querySelectorAll('img')).map(i => i.src),
  errors: Array.from(out.querySelectorAll('[data-mime-type="application/vnd.jupyter.stderr"]')).map(e => e.innerText),
})"""


def _errors(texts: list[str]) -> list[str]:
    return [t for t in texts if ERROR_RE.search(t)]


def _cell_index(nb: nbformat.NotebookNode, line: str) -> int:
    found = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and line in c.source]
    assert len(found) == 1, f"expected one code cell containing {line!r}, found cells {found}"
    return found[0]


def run_all_cells(page, nb: nbformat.NotebookNode) -> None:
    """Run > Run All Cells; wait until no cell is queued or running and the kernel is idle.

    Fails if a cell shows an error or a code cell was left unrun."""
    page.locator(".jp-Notebook .jp-Cell").nth(len(nb.cells) - 1).wait_for(state="attached")
    # The kernel is up: the status bar names it and says Idle ("No Kernel | Initializing" at first, when
    # the toolbar's indicator already says idle; Run All then would only clear the cells).
    page.wait_for_function(_KERNEL_IDLE, timeout=120_000)
    panels = page.locator(".jp-NotebookPanel").count()
    assert panels == 1, f"JupyterLab shows {panels} notebooks, not 1"
    count = page.locator(".jp-Notebook .jp-Cell").count()
    assert count == len(nb.cells), f"JupyterLab shows {count} cells, the notebook has {len(nb.cells)}"
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
    start = time.monotonic()
    source = [c.source for c in nb.cells]
    while not any(c["code"] and c["prompt"] not in ("", "[ ]:") for c in page.evaluate(_NOTEBOOK_STATE)["cells"]):
        assert time.monotonic() - start < 60, "Run > Run All Cells started no cell within 60 s"
        time.sleep(0.2)
    while True:
        state = page.evaluate(_NOTEBOOK_STATE)
        assert not state["dialog"], f"JupyterLab shows a dialog: {state['dialog']}"
        for i, cell in enumerate(state["cells"]):
            bad = _errors(cell["errors"])
            assert not bad, (f"cell {i} ({source[i].strip().splitlines()[0][:70]!r}) shows an error "
                             f"after {time.monotonic() - start:.0f} s:\n{bad[0][-3000:]}")
        busy = [i for i, c in enumerate(state["cells"]) if c["code"] and "*" in c["prompt"]]
        if not busy and state["status"] == "idle":
            break
        assert time.monotonic() - start < RUN_ALL_TIMEOUT, \
            f"Run All Cells did not finish in {RUN_ALL_TIMEOUT:.0f} s; still running: cells {busy}"
        time.sleep(0.5)
    unrun = [i for i, c in enumerate(state["cells"])
             if c["code"] and source[i].strip() and not re.fullmatch(r"\[\d+\]:", c["prompt"])]
    assert not unrun, f"code cells {unrun} did not run (prompts {[state['cells'][i]['prompt'] for i in unrun]})"


def _shown(state: dict) -> bool:
    return bool(state["images"] or state["text"].strip())


def change_widget(page, nb: nbformat.NotebookNode, change: Change, shot: Path) -> None:
    """Make ``change`` to the widget of its cell as a person would; check that the widget shows the change."""
    index = _cell_index(nb, change.cell)
    cell = page.locator(".jp-Notebook .jp-Cell").nth(index)
    widget = cell.locator(".widget-interact")
    if widget.count() == 0:  # controls and an Output composed in a box: the outermost box
        widget = cell.locator(".jp-OutputArea-output .widget-box").first
    assert widget.count() == 1, f"cell {index} ({change.cell!r}) shows {widget.count()} interactive widgets, not 1"
    widget.scroll_into_view_if_needed()
    output = widget.locator(".widget-output").last  # where an interactive widget shows its function's output
    deadline = time.monotonic() + FIRST_VIEW_TIMEOUT  # the first view may still be on its way from the kernel
    while not _shown(before := output.evaluate(_OUTPUT_STATE)) and time.monotonic() < deadline:
        time.sleep(0.25)
    assert not (bad := _errors(before["errors"])), f"the widget of cell {index} shows an error:\n{bad[0][-3000:]}"

    if change.action == "type":
        box = widget.locator(".widget-text input").nth(change.nth)
        box.click()
        box.press("Control+A")
        box.press_sequentially(change.text)
        box.press("Enter")
        value = box.input_value()
        assert value == change.text, f"the text box holds {value!r} after typing {change.text!r}"
    elif change.action == "slide":
        handle = widget.locator(".noUi-handle").nth(change.nth)
        readout = widget.locator(".widget-readout").nth(change.nth)
        old = readout.inner_text()
        at_end = float(handle.get_attribute("aria-valuenow")) >= float(handle.get_attribute("aria-valuemax"))
        handle.press("ArrowLeft" if at_end else "ArrowRight")
        deadline = time.monotonic() + 10
        while (value := readout.inner_text()) == old and time.monotonic() < deadline:
            time.sleep(0.1)
        assert value != old, f"the slider's readout stayed at {old!r} after an arrow key"
    elif change.action == "select":
        select = widget.locator("select").nth(change.nth)
        options = select.locator("option").all_inner_texts()
        picked = (select.evaluate("s => s.selectedIndex") + 1) % len(options)
        select.select_option(index=picked)
        value = options[picked]
    else:
        raise ValueError(change.action)

    what = f"after {change.action} {value!r}, the widget of cell {index} ({change.cell!r})"
    deadline = time.monotonic() + CHANGE_TIMEOUT
    while True:
        after = output.evaluate(_OUTPUT_STATE)
        bad = _errors(after["errors"])
        assert not bad, f"{what} shows an error:\n{bad[0][-3000:]}"
        if _shown(after) and (after["images"], after["text"]) != (before["images"], before["text"]):
            time.sleep(0.5)  # settled: the same once more
            if output.evaluate(_OUTPUT_STATE) == after:
                break
        if time.monotonic() > deadline:
            if _shown(after):
                pytest.fail(f"{what} still shows what it showed before, {CHANGE_TIMEOUT:.0f} s later", pytrace=False)
            outside = cell.evaluate(_PICTURES_OUTSIDE, widget.element_handle())
            pytest.fail(f"{what} shows nothing: its output area is empty, before and {CHANGE_TIMEOUT:.0f} s after "
                        f"the change. The cell shows {outside} picture(s) outside the widget, drawn when the cell "
                        "ran: the function's figure does not reach the widget's output.", pytrace=False)
        time.sleep(0.25)
    if change.expect is not None:
        wanted = change.expect(value)
        assert wanted in after["text"], f"{what}: expected {wanted!r} in {after['text']!r}"
    SHOTS.mkdir(parents=True, exist_ok=True)
    widget.screenshot(path=shot)


def exercise(page, lab: Lab, path: str, changes: list[Change], shot_name: str) -> None:
    """Open ``path`` (under the server's root) in JupyterLab, run it all, make each change."""
    nb = nbformat.read(lab.root / path, as_version=4)
    try:
        page.goto(lab.open_url(path))
        run_all_cells(page, nb)
        for k, change in enumerate(changes):
            suffix = f"-{k + 1}" if len(changes) > 1 else ""
            change_widget(page, nb, change, SHOTS / f"{shot_name}{suffix}.png")
        state = page.evaluate(_NOTEBOOK_STATE)  # nothing else broke meanwhile
        bad = [(i, e) for i, c in enumerate(state["cells"]) for e in _errors(c["errors"])]
        assert not bad, f"after the changes, cell {bad[0][0]} shows an error:\n{bad[0][1][-3000:]}"
    except (Exception, pytest.fail.Exception):
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=SHOTS / f"{shot_name}-at-failure.png", full_page=True)
        raise


# ------------------------------------------------------------------------------- tests


@pytest.mark.parametrize("name", sorted(CHANGES))
def test_widgets_respond_in_jupyterlab(name: str, lab: Lab, page) -> None:
    exercise(page, lab, f"{name}/{name}.ipynb", CHANGES[name], name)


def test_a_broken_widget_fails_the_check(lab: Lab, page) -> None:
    """The check has teeth: in a copy of scaling_laws whose widget callback raises (a last cell
    redefines the function the slider calls), moving the slider is reported as a failure."""
    name = "scaling_laws"
    nb = nbformat.read(REPO / "notebooks" / name / f"{name}.ipynb", as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(
        "def optimal_for(c):\n    raise RuntimeError('widget broken on purpose')"))
    (lab.root / "broken").mkdir(exist_ok=True)
    nbformat.write(nb, lab.root / "broken" / f"{name}.ipynb")
    with pytest.raises(AssertionError, match="widget broken on purpose"):
        exercise(page, lab, f"broken/{name}.ipynb", CHANGES[name], "scaling_laws-broken-callback")


def test_every_widget_notebook_is_covered() -> None:
    """A notebook that gains a widget gets a browser test too."""
    with_widgets = set()
    for path in (REPO / "notebooks").glob("*/*.ipynb"):
        source = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
        if re.search(r"\binteract(ive)?\(|_widget\(|_explorer\(", source):
            with_widgets.add(path.stem)
    assert with_widgets == set(CHANGES)
