"""What a feedback page says beyond nbgrader's: that grading is unfinished, and its mathematics, offline.

nbgrader makes feedback from whatever the gradebook holds: a written answer nobody has
graded yet shows "0.0 / 3.0", as if it had earned nothing. ``MarkProvisional`` puts a
banner at the top of such a page and a note above each answer still waiting for a
person, whichever way the feedback is made (``course feedback``, ``nbgrader
generate_feedback``, the Formgrader's button).

nbgrader's page also loads MathJax from a CDN, so without network its mathematics shows
as raw ``$...$``; and JupyterLab shows an HTML file without running its scripts anyway.
``RenderMath`` turns the LaTeX of markdown cells (and ``text/latex`` outputs) into MathML,
which browsers draw natively: no script, no font download, no network.
``drop_mathjax_script`` removes the CDN script tag from a finished page. ``RenderMath`` runs in
every ``HTMLExporter`` of the course (feedback and the Formgrader's view alike), and what it makes
is cleaned there like the rest of the page (``course_tools/grading/sanitize.py``).

Formulas are found in one pass over the text (a regular expression that retried every unclosed
``\\[`` to the end took a minute for 135 kB), and a cell past ``MAX_TYPESET_CHARS`` or
``MAX_FORMULAS`` is shown as escaped plain text under a note instead.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any, Callable, Iterator

import nbformat
from nbconvert.preprocessors import Preprocessor
from traitlets import Bool

from course_tools.layout import Course

PROVISIONAL_TITLE = "Provisional feedback: grading is not finished"
NOT_GRADED_YET = "Not graded yet: the score shown for this answer is not final."
# The most of one cell the formula renderer takes on: a longer answer, or one with more formulas,
# is shown as plain text under a note, so no answer, however long or strange, makes a page slow
# (converting one formula takes about 0.1 ms; nbconvert's markdown renderer is quadratic in unclosed
# \begin{...}: 10,000 characters of them take 0.5 s).
MAX_TYPESET_CHARS = 10_000
MAX_FORMULAS = 1_000
TOO_LONG_NOTE = (f"This answer is too long to typeset (more than {MAX_TYPESET_CHARS:,} characters or "
                 f"{MAX_FORMULAS:,} formulas): it is shown as plain text.")

_ENVIRONMENTS = ("equation", "align", "gather", "multline")
_DOLLAR_OR_NEWLINE = re.compile(r"[$\n]")
_CODE_STARTS = re.compile(r"[`~]")
_MATH_STARTS = re.compile(r"[$\\]")
_MATHJAX_SCRIPT = re.compile(r"\s*<!-- Load mathjax -->.*?<!-- End of mathjax configuration -->", re.DOTALL)


def waiting_for_grading(course: Course, assignment: str) -> dict[str, list[str]]:
    """Students whose submission of ``assignment`` has answers still waiting for a person (written
    answers not yet marked, cells flagged for review), with the grade ids of those answers."""
    from nbgrader.api import Gradebook, MissingEntry

    waiting: dict[str, list[str]] = {}
    with Gradebook(course.gradebook_url()) as gb:
        try:
            submissions = gb.find_assignment(assignment).submissions
        except MissingEntry:
            return waiting
        for sub in submissions:
            names = [grade.name for notebook in sub.notebooks for grade in notebook.grades if grade.needs_manual_grade]
            if names:
                waiting[sub.student.id] = names
    return waiting


class MarkProvisional(Preprocessor):
    """A banner atop the feedback of a submission whose grading is unfinished, and a note above each
    answer still waiting; runs after nbgrader's ``GetGrades`` (it reads the same gradebook)."""

    enabled = Bool(True)

    def preprocess(self, nb: nbformat.NotebookNode, resources: dict):  # noqa: ANN201 (nbconvert's pair)
        from nbgrader.api import Gradebook

        info = resources["nbgrader"]
        with Gradebook(info["db_url"]) as gb:
            notebook = gb.find_submission_notebook(info["notebook"], info["assignment"], info["student"])
            waiting = [g.name for g in notebook.grades if g.needs_manual_grade]
        if not waiting:
            return nb, resources
        cells = []
        for cell in nb.cells:
            if cell.metadata.get("nbgrader", {}).get("grade_id") in waiting:
                cells.append(nbformat.v4.new_markdown_cell(f"**{NOT_GRADED_YET}**",
                                                           metadata={"course_note": "not-graded-yet"}))
            cells.append(cell)
        banner = (f"## {PROVISIONAL_TITLE}\n\n{len(waiting)} answer(s) of this notebook are still to be graded "
                  "by a person. Their scores below are placeholders, and so is the total: this page will be "
                  "replaced when grading is finished.")
        nb.cells = [nbformat.v4.new_markdown_cell(banner, metadata={"course_note": "provisional"}), *cells]
        return nb, resources


def tex_to_mathml(tex: str, display: bool) -> str:
    """One LaTeX formula as one line of MathML; the LaTeX itself, as code, if it cannot be converted."""
    from latex2mathml.converter import convert

    try:
        mathml = convert(tex.strip(), display="block" if display else "inline")
    except Exception:  # noqa: BLE001 (the converter raises many types; the page must still be made)
        escaped = tex.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        return f"<code>{escaped}</code>"
    return mathml.replace("\n", "")


class _Closers:
    """Where each kind of closing delimiter next occurs, searched for at most once per position.

    A search that finds no closer after position p finds none after any later position either, so
    it is remembered: each kind of delimiter costs one pass over the text, however many openers
    are never closed (a regular expression retried every opener to the end of the text)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.missing: dict[str, int] = {}  # closer -> a position after which it does not occur

    def find(self, closer: str, start: int, unescaped: bool = False) -> int:
        """The index of ``closer`` at or after ``start`` (not after a backslash if ``unescaped``), or -1."""
        if start >= self.missing.get(closer, len(self.text) + 1):
            return -1
        at = self.text.find(closer, start)
        while unescaped and at > 0 and self.text[at - 1] == "\\":
            at = self.text.find(closer, at + 1)
        if at < 0:
            self.missing[closer] = min(start, self.missing.get(closer, start))
        return at


def _formula_at(text: str, i: int, closers: _Closers) -> tuple[int, str, bool] | None:
    """The formula starting at ``text[i]``: (index after it, its LaTeX, display?), or None.

    Delimiters, outermost first: ``$$..$$``, ``\\[..\\]``, ``\\begin{equation|align|gather|multline}``
    (starred too) to its ``\\end``, ``$..$`` on one line, ``\\(..\\)``; a dollar after a backslash
    opens nothing."""
    before = text[i - 1] if i else ""
    if text.startswith("$$", i) and before != "\\":
        end = closers.find("$$", i + 3, unescaped=True)
        return (end + 2, text[i + 2:end], True) if end >= 0 else None
    if text.startswith("\\[", i):
        end = closers.find("\\]", i + 3)
        return (end + 2, text[i + 2:end], True) if end >= 0 else None
    if text.startswith("\\begin{", i):
        for env in _ENVIRONMENTS:
            for name in (env + "*", env):
                if text.startswith("\\begin{" + name + "}", i):
                    closer = "\\end{" + name + "}"
                    end = closers.find(closer, i + len(closer) + 2)
                    return (end + len(closer), text[i:end + len(closer)], True) if end >= 0 else None
        return None
    if text.startswith("$", i) and before not in ("\\", "$"):
        end = _DOLLAR_OR_NEWLINE.search(text, i + 1)
        if end is not None and text[end.start()] == "$" and end.start() > i + 1 and text[end.start() - 1] != "\\":
            return end.start() + 1, text[i + 1:end.start()], False
        return None
    if text.startswith("\\(", i):
        end = closers.find("\\)", i + 3)
        return (end + 2, text[i + 2:end], False) if end >= 0 else None
    return None


def _code_at(text: str, i: int) -> int:
    """The index after a code block or span starting at ``text[i]`` (``i`` if none starts there).
    A fence left open runs to the end of the text, as in markdown."""
    for fence in ("```", "~~~"):
        if text.startswith(fence, i):
            end = text.find(fence, i + 3)
            return len(text) if end < 0 else end + 3
    if text[i] == "`":
        line_end = text.find("\n", i + 1)
        end = text.find("`", i + 1, len(text) if line_end < 0 else line_end)
        if end > 0:
            return end + 1
    return i


def markdown_math_to_mathml(text: str) -> str:
    """Every formula of a markdown text as MathML, code spans and code blocks untouched.

    One pass over the text; a text longer than ``MAX_TYPESET_CHARS`` is not typeset at all but
    shown escaped, as preformatted text, under a note that says why."""
    typeset = _typeset(text, lambda plain: plain) if len(text) <= MAX_TYPESET_CHARS else None
    return f"**{TOO_LONG_NOTE}**\n\n<pre>{html.escape(text)}</pre>\n" if typeset is None else typeset


def _typeset(text: str, plain: Callable[[str], str]) -> str | None:
    """``text`` with each formula replaced by its MathML and everything else passed through ``plain``;
    None past ``MAX_FORMULAS`` formulas. Code spans and blocks are cut out first, so a formula
    never reaches into one."""
    out: list[str] = []
    formulas = 0
    for is_code, piece in _code_and_text(text):
        if is_code:
            out.append(plain(piece))
            continue
        closers, done, i = _Closers(piece), 0, 0
        while (found := _MATH_STARTS.search(piece, i)) is not None:
            i = found.start()
            formula = _formula_at(piece, i, closers)
            if formula is None:
                i += 2 if piece.startswith(("$$", "\\$"), i) else 1
                continue
            formulas += 1
            if formulas > MAX_FORMULAS:
                return None
            end, tex, display = formula
            out += [plain(piece[done:i]), tex_to_mathml(tex, display)]
            done = i = end
        out.append(plain(piece[done:]))
    return "".join(out)


def _code_and_text(text: str) -> Iterator[tuple[bool, str]]:
    """The text in pieces, in one pass: (True, a code block or span) or (False, text between them)."""
    done = i = 0
    while (found := _CODE_STARTS.search(text, i)) is not None:
        i = found.start()
        end = _code_at(text, i)
        if end == i:
            i += 1
            continue
        yield False, text[done:i]
        yield True, text[i:end]
        done = i = end
    yield False, text[done:]


def latex_output_html(tex: str) -> str:
    """A ``text/latex`` output as HTML: its formulas as MathML, any other text escaped. The MathML
    keeps what ``\\text{}`` held: pages clean it (``sanitize.clean_html``) like any output's HTML."""
    typeset = _typeset(tex, html.escape) if len(tex) <= MAX_TYPESET_CHARS else None
    if typeset is None:
        return f"<p><strong>{TOO_LONG_NOTE}</strong></p><pre>{html.escape(tex)}</pre>"
    return typeset


class RenderMath(Preprocessor):
    """LaTeX in markdown cells and ``text/latex`` outputs drawn as MathML, so pages need no MathJax.
    The page cleans what it makes like the rest of its HTML (``sanitize.markdown2html``, ``clean_html``)."""

    enabled = Bool(True)

    def preprocess_cell(self, cell: Any, resources: dict, index: int):  # noqa: ANN201 (nbconvert's pair)
        if cell.cell_type == "markdown":
            cell.source = markdown_math_to_mathml(cell.source)
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "text/latex" in data and "text/html" not in data:
                data["text/html"] = latex_output_html(data["text/latex"])
        return cell, resources


def drop_mathjax_script(page: Path) -> None:
    """Remove the MathJax CDN script nbgrader's template puts in every page (its math is MathML now)."""
    html = page.read_text(encoding="utf-8")
    cleaned = _MATHJAX_SCRIPT.sub("", html, count=1)
    if cleaned != html:
        page.write_text(cleaned, encoding="utf-8")
