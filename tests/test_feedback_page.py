"""Feedback that does not mislead: none (or a provisional banner) while written answers wait,
and formulas drawn as MathML so that pages need neither MathJax nor the network."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest

from toy_submissions import submit

from course_tools import cli
from course_tools.grading.feedback_page import (MAX_TYPESET_CHARS, TOO_LONG_NOTE, drop_mathjax_script,
                                                markdown_math_to_mathml)

REPO = Path(__file__).resolve().parent.parent

FORMULA = r"The mean square is $\frac{1}{n}\sum_{i=1}^{n} x_i^2$."


def test_formulas_become_mathml_and_code_stays_code() -> None:
    text = markdown_math_to_mathml(FORMULA + "\n\n$$\\mathbb{E}[x] = \\mu$$\n\nIn code: `cost = $5`, and \\$3.")
    assert text.count("<math") == 2 and 'display="block"' in text and "\\frac" not in text
    assert "`cost = $5`" in text and "\\$3" in text  # a code span and an escaped dollar are not math
    assert "\n" not in text.split("<math")[1].split("</math>")[0]  # one line: markdown cannot split it


def test_a_formula_the_converter_cannot_read_shows_as_its_source() -> None:
    assert markdown_math_to_mathml(r"$\begin{nonsense}x$") == r"<code>\begin{nonsense}x</code>"


def test_every_delimiter_and_code_kind() -> None:
    text = markdown_math_to_mathml(r"\(a\) \[b\] \begin{align*}c &= d\end{align*} $$e$$ $f$ \$g$ `$h$`"
                                   "\n```\n$i$\n```\n~~~\n$j$\n~~~\n$k\n$")
    assert text.count("<math") == 5 and "\\$g$" in text and "`$h$`" in text and "$i$" in text and "$j$" in text
    assert "$k\n$" in text  # an inline formula never spans lines
    assert markdown_math_to_mathml("```\n$x$ never closed") == "```\n$x$ never closed"  # a fence runs to the end


def test_a_long_answer_is_shown_as_text_with_a_note() -> None:
    answer = "$x$ <b>bold</b> " * (MAX_TYPESET_CHARS // 10)
    text = markdown_math_to_mathml(answer)
    assert TOO_LONG_NOTE in text and "<math" not in text and "&lt;b&gt;bold&lt;/b&gt;" in text


PATHOLOGICAL = {
    "unclosed \\[": "\\[", "unclosed $$": "$$a", "unclosed \\(": "\\(", "unclosed $": "$a\\$",
    "unclosed \\begin": "\\begin{align}", "unclosed fences and spans": "`a ``` ~~~ ",
    "nested": "$$\\[\\(\\begin{equation}$", "many formulas": "$x_i^2$ ", "deep braces": "$" + "{" * 50,
}


@pytest.mark.parametrize("size", [MAX_TYPESET_CHARS, 135_000, 1_000_000])
@pytest.mark.parametrize("name", list(PATHOLOGICAL))
def test_pathological_answers_render_in_linear_time(name: str, size: int) -> None:
    """A whole feedback page (the course's exporter, nbgrader's feedback template) for one answer.
    67k unclosed \\[ took 62 s before the formula scanner was linear; the bound only guards."""
    import sys

    sys.path.insert(0, str(REPO / "benchmarks"))
    from feedback_pages import exporter, page_seconds

    answer = (PATHOLOGICAL[name] * (size // len(PATHOLOGICAL[name]) + 1))[:size]
    if "exporter" not in _EXPORTER:
        _EXPORTER["exporter"] = exporter()
        page_seconds("warm-up: $x$", _EXPORTER["exporter"])  # templates compiled once, outside the bound
    assert page_seconds(answer, _EXPORTER["exporter"]) < 2.0


_EXPORTER: dict = {}


def test_mathjax_script_is_dropped(tmp_path: Path) -> None:
    page = tmp_path / "toy.html"
    page.write_text('<head><!-- Load mathjax -->\n<script src="https://cdnjs.cloudflare.com/x.js"></script>\n'
                    '<!-- End of mathjax configuration --></head><body><math></math></body>')
    drop_mathjax_script(page)
    assert "cdnjs" not in page.read_text() and "<math></math>" in page.read_text()


@pytest.mark.slow
def test_feedback_waits_for_written_answers(toy_course: Path, capsys: pytest.CaptureFixture) -> None:
    source = toy_course / "notebooks" / "toy" / "toy.ipynb"
    nb = nbformat.read(source, as_version=4)
    nb.cells.insert(1, nbformat.v4.new_markdown_cell(FORMULA))
    nbformat.write(nb, source)
    assert cli.main(["release", "toy"]) == 0
    answer = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "why_negative")
    answer.source = "Same signs multiply to a positive number."  # a written answer a person must grade
    submit(toy_course, "alice", nb)
    assert cli.main(["autograde", "toy", "--workers", "1"]) == 0
    capsys.readouterr()

    assert cli.main(["feedback", "toy"]) == 1  # refused: the written answer waits
    out = capsys.readouterr().out
    assert "no feedback for 1 submissions whose grading is unfinished" in out and "alice: why_negative" in out
    assert not (toy_course / "feedback" / "alice").exists()

    assert cli.main(["feedback", "toy", "--provisional"]) == 0
    html = (toy_course / "feedback" / "alice" / "toy" / "toy.html").read_text()
    assert "Provisional feedback: grading is not finished" in html
    assert "Not graded yet: the score shown for this answer is not final." in html
    assert "<math" in html and "\\frac" not in html and "cdnjs" not in html and "MathJax" not in html
    shutil.rmtree(toy_course / "feedback")

    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{toy_course / 'gradebook.db'}") as gb:  # what the Formgrader does
        grade = gb.find_grade("why_negative", "toy", "toy", "alice")
        grade.manual_score, grade.needs_manual_grade = 1, False  # as its grade API saves a score
        gb.db.commit()
    assert cli.main(["feedback", "toy"]) == 0
    html = (toy_course / "feedback" / "alice" / "toy" / "toy.html").read_text()
    assert "Provisional" not in html and "Not graded yet" not in html
