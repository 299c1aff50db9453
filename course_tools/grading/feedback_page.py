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
``drop_mathjax_script`` removes the CDN script tag from a finished page.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import nbformat
from nbconvert.preprocessors import Preprocessor
from traitlets import Bool

from course_tools.layout import Course

PROVISIONAL_TITLE = "Provisional feedback: grading is not finished"
NOT_GRADED_YET = "Not graded yet: the score shown for this answer is not final."

# Math in markdown, outermost delimiters first; code spans and fenced blocks are left alone.
_CODE = re.compile(r"(```.*?```|~~~.*?~~~|`[^`\n]*`)", re.DOTALL)
_MATH = re.compile(r"(?<!\\)\$\$(?P<d1>.+?)(?<!\\)\$\$|\\\[(?P<d2>.+?)\\\]"
                   r"|(?P<d3>\\begin\{(?P<env>equation|align|gather|multline)\*?\}.*?\\end\{(?P=env)\*?\})"
                   r"|(?<![\\$])\$(?P<i1>[^$\n]+?)(?<!\\)\$|\\\((?P<i2>.+?)\\\)", re.DOTALL)
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


def markdown_math_to_mathml(text: str) -> str:
    """Every formula of a markdown text as MathML, code spans and code blocks untouched."""
    def formula(match: re.Match) -> str:
        groups = match.groupdict()
        for key, display in (("d1", True), ("d2", True), ("d3", True), ("i1", False), ("i2", False)):
            if groups.get(key) is not None:
                return tex_to_mathml(groups[key], display)
        return match.group(0)

    parts = _CODE.split(text)
    return "".join(part if i % 2 else _MATH.sub(formula, part) for i, part in enumerate(parts))


class RenderMath(Preprocessor):
    """LaTeX in markdown cells and ``text/latex`` outputs drawn as MathML, so pages need no MathJax."""

    enabled = Bool(True)

    def preprocess_cell(self, cell: Any, resources: dict, index: int):  # noqa: ANN201 (nbconvert's pair)
        if cell.cell_type == "markdown":
            cell.source = markdown_math_to_mathml(cell.source)
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "text/latex" in data and "text/html" not in data:
                data["text/html"] = markdown_math_to_mathml(data["text/latex"])
        return cell, resources


def drop_mathjax_script(page: Path) -> None:
    """Remove the MathJax CDN script nbgrader's template puts in every page (its math is MathML now)."""
    html = page.read_text(encoding="utf-8")
    cleaned = _MATHJAX_SCRIPT.sub("", html, count=1)
    if cleaned != html:
        page.write_text(cleaned, encoding="utf-8")
