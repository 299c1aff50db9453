"""Seconds to draw one feedback page whose written answer is pathological.

Each answer goes through what ``course feedback`` does to a markdown cell: the course's
``HTMLExporter`` configuration (sanitizer, formulas as MathML) with nbgrader's feedback template.
A page that grew with the square of its answer (unclosed ``\\[`` used to take a minute for 135 kB)
shows here as seconds.

    .venv/bin/python benchmarks/feedback_pages.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from course_tools.grading.feedback_page import MAX_TYPESET_CHARS  # noqa: E402


def pathological_answers(size: int) -> dict[str, str]:
    """Answers of about ``size`` characters built to make a scanner backtrack."""
    unit = {
        "unclosed \\[": "\\[",
        "unclosed $$": "$$a",
        "unclosed \\(": "\\(",
        "unclosed $ (escaped closers)": "$a\\$",
        "unclosed \\begin{align}": "\\begin{align}",
        "unclosed code fences and spans": "`a ``` ~~~ ",
        "nested delimiters": "$$\\[\\(\\begin{equation}$",
        "many small formulas": "$x_i^2$ ",
        "deep braces": "{",
    }
    return {name: (piece * (size // len(piece) + 1))[:size] for name, piece in unit.items()}


def exporter():  # noqa: ANN201
    """The course's HTMLExporter with nbgrader's feedback template, as ``generate_feedback`` uses it."""
    import nbgrader
    from nbconvert.exporters import HTMLExporter
    from traitlets.config import Config
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader("nbgrader_config.py", path=str(REPO)).load_config()
    templates = Path(nbgrader.__file__).parent / "server_extensions" / "formgrader" / "templates"
    extra = Config()
    extra.HTMLExporter.template_name = "feedback"
    extra.HTMLExporter.extra_template_basedirs = [str(templates)]
    extra.HTMLExporter.extra_template_paths = [str(templates.parent / "static" / "node_modules" / "bootstrap"
                                                   / "dist" / "css")]
    config.merge(extra)
    return HTMLExporter(config=config)


def page_seconds(answer: str, html_exporter=None) -> float:  # noqa: ANN001
    """Seconds to make the feedback page of a notebook holding ``answer`` as its written answer."""
    html_exporter = html_exporter or exporter()
    cell = nbformat.v4.new_markdown_cell(answer, metadata={"nbgrader": {
        "grade": True, "solution": True, "grade_id": "answer", "points": 1, "score": 0, "schema_version": 3}})
    nb = nbformat.v4.new_notebook(cells=[cell])
    resources = {"nbgrader": {"notebook": "answer", "score": 0, "max_score": 1, "late_penalty": 0}}
    started = time.perf_counter()
    html_exporter.from_notebook_node(nb, resources=resources)
    return time.perf_counter() - started


def main() -> None:
    html_exporter = exporter()
    page_seconds("warm-up $x$", html_exporter)
    sizes = (MAX_TYPESET_CHARS, 135_000, 1_000_000)
    print(f"{'answer':34s}" + "".join(f"{size:>12,d} ch" for size in sizes))
    for name in pathological_answers(1):
        seconds = [page_seconds(pathological_answers(size)[name], html_exporter) for size in sizes]
        print(f"{name:34s}" + "".join(f"{s:>13.2f}s" for s in seconds))


if __name__ == "__main__":
    main()
