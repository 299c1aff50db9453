"""Student markup never runs in a reader's browser: the autograded notebook, the Formgrader's view
of it and the feedback page keep the text and the formulas (as MathML) and lose every script,
event handler, ``javascript:`` URL, style sheet and frame a submission put in them.

Every attack below tries to set ``document.title`` (or ``window.pwned``) to a text with "pwned"
in it; the pages are checked as markup and, where Chromium is installed, loaded in it.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest

from toy_submissions import submit

from course_tools.grading.sanitize import clean_html, sanitize_notebook

REPO = Path(__file__).resolve().parent.parent
PNG = base64.b64encode(bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d49444154789c6360000002"
    "000154a24f5d0000000049454e44ae426082")).decode()
FORMULA = r"$\frac{1}{n}\sum_{i=1}^{n} x_i^2$"

# A written answer: raw HTML is allowed in markdown, so every trick of HTML is available to it.
WRITTEN_ANSWER = "\n\n".join([
    f"Because a product of two numbers with the same sign is positive: {FORMULA}.",
    "<script>document.title = 'pwned-script'</script>",
    "<img src=\"nowhere.png\" onerror=\"document.title = 'pwned-img'\">",
    "<iframe src=\"javascript:parent.document.title = 'pwned-iframe'\"></iframe>",
    "[a link](javascript:document.title='pwned-link') <a href=\"JaVaScRiPt:window.pwned=1\">another</a>",
    "<style>body { display: none } /* pwned-style */</style>",
    "<svg onload=\"document.title = 'pwned-svg'\"><script>document.title = 'pwned-svg-script'</script></svg>",
    "<div onmouseover=\"window.pwned = 1\" style=\"position: fixed; inset: 0\">cover</div>",
    r"$\text{<img src=x onerror=window.pwned=1>}$ and $$\href{javascript:window.pwned=1}{x}$$",
    "<math><mi href=\"javascript:window.pwned=1\">y</mi></math>",
    "<form action=\"javascript:window.pwned=1\"><button>go</button></form>",
    "![picture](attachment:trick.png) ![missing](attachment:nothing.png)",
])
ATTACHMENTS = {"trick.png": {"image/png": "\"><img src=x onerror=\"document.title='pwned-attachment'"},
               "ok.png": {"image/png": PNG}}
WIDGET_STATE = {"application/vnd.jupyter.widget-state+json": {
    "state": {}, "version_major": 2, "version_minor": 0,
    "trick": "</script><script>document.title = 'pwned-widget-state'</script>"}}

# What the student's code displays: every rich output type a page could run.
DISPLAYS = f'''
from IPython.display import HTML, SVG, Javascript, Latex, Markdown, display
display(HTML("<b>bold</b><img src=x onerror=\\"document.title='pwned-html'\\"><script>window.pwned=1</script>"))
display(Javascript("document.title = 'pwned-js'"))
display(Markdown("*md* <img src=x onerror=\\"document.title='pwned-markdown'\\">"))
display(SVG('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10" onload="window.pwned=1">'
            '<script>document.title="pwned-svg-output"</script><rect width="10" height="10"/></svg>'))
display(Latex(r"$x^2$ \\text{{<script>window.pwned=1</script>}} <img src=x onerror=window.pwned=1>"))
display({{"image/png": "\\" onerror=\\"document.title='pwned-png'", "text/plain": "png"}}, raw=True)
display({{"image/png": "{PNG}"}}, metadata={{"image/png": {{"width": "1 onerror=window.pwned=1"}}}}, raw=True)
display({{"application/vnd.jupyter.widget-view+json": {{"model_id": "m", "version_major": 2, "version_minor": 0}},
          "text/plain": "a widget"}}, raw=True)
display({{"application/vnd.plotly.v1+json": {{"data": []}}}}, raw=True)
'''


class _Dangers(HTMLParser):
    """What in a page could run a submission's code: script or style elements and event handlers
    holding an attack (every attack says "pwned"), frames, ``javascript:`` URLs."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self.formulas = 0
        self._inside: str | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.formulas += tag == "math"
        if tag in ("iframe", "object", "embed", "frame", "base"):
            self.found.append(f"<{tag}>")
        for name, value in attrs:
            if name.startswith("on") and "pwned" in (value or ""):  # the templates' own handlers run no attack
                self.found.append(f"<{tag} {name}>")
            if value and "javascript:" in value.replace(" ", "").lower():
                self.found.append(f"<{tag} {name}={value[:40]}>")
        self._inside = tag if tag in ("script", "style") else None

    def handle_data(self, data: str) -> None:
        if self._inside and "pwned" in data:
            self.found.append(f"<{self._inside}>{data.strip()[:60]}")

    def handle_endtag(self, tag: str) -> None:
        self._inside = None


def dangers(page: str) -> tuple[list[str], int]:
    """The dangerous things in an HTML page, and how many formulas it draws as MathML."""
    parser = _Dangers()
    parser.feed(page)
    return parser.found, parser.formulas


def test_clean_html_keeps_mathml_and_text_drops_what_runs() -> None:
    from latex2mathml.converter import convert

    math = convert(r"\frac{1}{n}\sum_{i=1}^{n} \sqrt{x_i}^2 \mathbb{E}[x] \hat{y} \begin{pmatrix}a&b\end{pmatrix}",
                   display="block")
    cleaned = clean_html(math)
    for tag in ("math", "mfrac", "munderover", "msqrt", "msup", "mtable", "mtd", "mover", "mi", "mo", "mn"):
        assert f"<{tag}" in cleaned, tag
    assert 'stretchy="false"' in cleaned
    attack = clean_html(WRITTEN_ANSWER.replace("\n\n", "<br>"))
    assert dangers(attack)[0] == [] and "<script" not in attack and "<style" not in attack
    assert "Because a product" in attack and "cover" in attack  # the text stays
    kept = clean_html('<h2 id="Intro">Intro</h2><span class="k btn">x</span><div class="modal">y</div>'
                      '<img src="data:image/png;base64,' + PNG + '"><a href="data:text/html,x">d</a>')
    assert 'id="student-Intro"' in kept and 'class="k"' in kept and "modal" not in kept
    assert "data:image/png" in kept and "data:text/html" not in kept


def _attack_outputs() -> list:
    """The outputs ``DISPLAYS`` makes, as a kernel sends them (for the tests that run no kernel)."""
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(DISPLAYS)])
    NotebookClient(nb, timeout=60, kernel_name="python3").execute()
    return nb.cells[0].outputs


def attack_notebook(outputs: list) -> nbformat.NotebookNode:
    """A notebook as a hostile submission could leave it, its outputs already made."""
    answer = nbformat.v4.new_markdown_cell(WRITTEN_ANSWER, attachments=ATTACHMENTS, metadata={
        "tags": ["x\" onmouseover=\"window.pwned=1"],
        "nbgrader": {"grade": True, "solution": True, "grade_id": "why_negative", "points": 1,
                     "schema_version": 3, "locked": False}})
    code = nbformat.v4.new_code_cell("display_everything()", outputs=outputs)
    raw = nbformat.v4.new_raw_cell("<script>document.title = 'pwned-raw'</script>",
                                   metadata={"raw_mimetype": "text/html"})
    nb = nbformat.v4.new_notebook(cells=[answer, code, raw])
    nb.metadata["widgets"] = WIDGET_STATE
    return nb


@pytest.fixture(scope="module")
def outputs() -> list:
    return _attack_outputs()


def check_notebook(nb: nbformat.NotebookNode) -> None:
    """An autograded notebook: only safe output types, clean HTML, no widget state, formulas kept."""
    assert "widgets" not in nb.metadata
    formulas = 0
    for cell in nb.cells:
        assert all("pwned" not in tag for tag in cell.metadata.get("tags", []))
        for name, bundle in cell.get("attachments", {}).items():
            assert name == "ok.png" and bundle == {"image/png": PNG}
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            assert set(data) <= {"text/plain", "text/html", "image/png", "image/jpeg", "image/gif"}, set(data)
            assert "pwned" not in data.get("image/png", ""), "an image's data is pasted into an attribute"
            sizes = [m.get(k) for m in output.get("metadata", {}).values() for k in ("width", "height") if k in m]
            assert all(isinstance(size, (int, float)) for size in sizes), "sizes are pasted into attributes"
            found, count = dangers(data.get("text/html", ""))
            assert found == [], found
            formulas += count
    assert formulas >= 1  # the text/latex output, drawn as MathML


def formgrader_exporter(course_root: Path):  # noqa: ANN201
    """The exporter the Formgrader renders a submission with: the course's configuration plus what
    nbgrader's Formgrader extension adds to it (its template)."""
    from nbconvert.exporters import HTMLExporter
    from nbgrader.server_extensions.formgrader.formgrader import FormgradeExtension
    from traitlets.config import Config
    from traitlets.config.loader import PyFileConfigLoader

    config = Config()
    loader = PyFileConfigLoader("nbgrader_config.py", path=str(course_root))
    config.merge(loader.load_config())
    config.merge(FormgradeExtension().build_extra_config())
    return HTMLExporter(config=config)


FORMGRADER_RESOURCES = {"assignment_id": "toy", "notebook_id": "toy", "submission_id": "s1", "index": 0,
                        "total": 1, "base_url": "", "student": "alice", "last_name": "A", "first_name": "A",
                        "notebook_path": "toy.ipynb"}


def test_autograded_notebook_and_formgrader_view_are_safe(outputs: list, tmp_path: Path) -> None:
    nb = attack_notebook(outputs)
    formgrader = formgrader_exporter(REPO)
    # The Formgrader's exporter cleans even a notebook written before the grader sanitized it.
    page, _ = formgrader.from_notebook_node(nbformat.from_dict(json.loads(json.dumps(nb))),
                                            resources=dict(FORMGRADER_RESOURCES))
    found, formulas = dangers(page)
    assert found == [], found
    assert formulas >= 2 and "Because a product of two numbers" in page
    clean = sanitize_notebook(nb)
    check_notebook(clean)
    assert clean.cells[0].source == WRITTEN_ANSWER  # the answer's text is kept as written
    (tmp_path / "formgrader.html").write_text(page)
    browser_check(tmp_path / "formgrader.html")


def test_feedback_template_page_is_safe(outputs: list, tmp_path: Path) -> None:
    """The feedback template through the course's exporter configuration (``course feedback``
    adds grades from the gradebook; the slow test below makes the page that way)."""
    from nbconvert.exporters import HTMLExporter
    from traitlets.config import Config
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader("nbgrader_config.py", path=str(REPO)).load_config()
    template_dir = Path(__import__("nbgrader").__file__).parent / "server_extensions" / "formgrader" / "templates"
    extra = Config()
    extra.HTMLExporter.template_name = "feedback"
    extra.HTMLExporter.extra_template_basedirs = [str(template_dir)]  # as nbgrader's GenerateFeedback sets them
    extra.HTMLExporter.extra_template_paths = [str(template_dir.parent / "static" / "node_modules" / "bootstrap"
                                                   / "dist" / "css")]
    config.merge(extra)
    nb = attack_notebook(outputs)
    nb.cells[0].metadata.nbgrader["score"] = 0  # what nbgrader's GetGrades adds from the gradebook
    page, _ = HTMLExporter(config=config).from_notebook_node(nb, resources={"nbgrader": {
        "notebook": "toy", "score": 0, "max_score": 1, "late_penalty": 0}})
    found, formulas = dangers(page)
    assert found == [], found
    assert formulas >= 2
    (tmp_path / "feedback.html").write_text(page)
    browser_check(tmp_path / "feedback.html")


def browser_check(page: Path) -> None:
    """Load a page in headless Chromium: no attack ran, the page is visible, formulas are MathML."""
    chromium = next((found for name in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser")
                     if name and (found := shutil.which(name))), None)
    sync_api = pytest.importorskip("playwright.sync_api")
    if chromium is None:
        pytest.skip("Chromium is not installed (apt install chromium)")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            tab = browser.new_page()
            tab.route("**/*", lambda route: route.abort() if not route.request.url.startswith("file:")
                      else route.continue_())  # nothing leaves the machine
            tab.goto(page.as_uri(), wait_until="load")
            tab.mouse.move(10, 10)
            tab.mouse.move(300, 300)
            tab.wait_for_timeout(500)  # failed images fire their onerror by now
            state = tab.evaluate("() => ({title: document.title, pwned: window.pwned === undefined ? null : 1,"
                                 " display: getComputedStyle(document.body).display,"
                                 " math: document.querySelectorAll('math').length,"
                                 " frames: document.querySelectorAll('iframe, object, embed').length})")
        finally:
            browser.close()
    assert "pwned" not in state["title"] and state["pwned"] is None, state
    assert state["display"] != "none" and state["frames"] == 0 and state["math"] >= 2, state


@pytest.mark.slow
def test_hostile_submission_graded_and_fed_back_safely(toy_course: Path, capsys: pytest.CaptureFixture) -> None:
    """A submission with every attack, through `course autograde` and `course feedback`: the
    autograded notebook, the Formgrader's view of it and the feedback page are safe."""
    from course_tools import cli

    assert cli.main(["release", "toy"]) == 0
    nb = nbformat.read(toy_course / "release" / "toy" / "toy.ipynb", as_version=4)
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id == "square":
            cell.source = "def square(x):\n    return x * x\n" + DISPLAYS
        elif grade_id == "mean_square":
            cell.source = "def mean_square(xs):\n    return float(np.mean(np.asarray(xs, dtype=float) ** 2))"
        elif grade_id == "why_negative":
            cell.source, cell.attachments = WRITTEN_ANSWER, ATTACHMENTS
            cell.metadata["tags"] = ["x\" onmouseover=\"window.pwned=1"]
    nb.cells.append(nbformat.v4.new_raw_cell("<script>document.title = 'pwned-raw'</script>",
                                             metadata={"raw_mimetype": "text/html"}))
    nb.metadata["widgets"] = WIDGET_STATE
    submit(toy_course, "alice", nb)
    assert cli.main(["autograde", "toy", "--workers", "1"]) == 0
    capsys.readouterr()

    autograded = toy_course / "autograded" / "alice" / "toy" / "toy.ipynb"
    graded = nbformat.read(autograded, as_version=4)
    check_notebook(graded)
    shown = [o for c in graded.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert shown, "the student's outputs reached the notebook (the valid image among them)"
    page, _ = formgrader_exporter(toy_course).from_filename(str(autograded), resources=dict(FORMGRADER_RESOURCES))
    found, formulas = dangers(page)
    assert found == [] and formulas >= 2, found

    assert cli.main(["feedback", "toy", "--provisional"]) == 0
    feedback = toy_course / "feedback" / "alice" / "toy" / "toy.html"
    found, formulas = dangers(feedback.read_text())
    assert found == [] and formulas >= 2, found
    assert "Because a product of two numbers" in feedback.read_text()
    browser_check(feedback)
