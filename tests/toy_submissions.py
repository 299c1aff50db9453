"""Building submissions of the toy assignment (tests/fixtures/toy) and reading how they were graded."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat

from course_tools.grading.status import read as read_record
from course_tools.layout import Course

STAMP = "2026-11-20 12:00:00.000000 UTC"
FULL = {"test_square": 2.0, "test_mean_square": 2.0}
SQUARE_ONLY = {"test_square": 2.0, "test_mean_square": 0.0}
NOTHING = {"test_square": 0.0, "test_mean_square": 0.0}
WRONG_SQUARE = ("return x * x", "return x + x")  # right on 2, wrong on every hidden input
WRONG_MEAN = ("np.mean(np.asarray(xs, dtype=float) ** 2)", "np.mean(np.asarray(xs, dtype=float)) ** 2 + 14 / 3 - 4")


def solution(course: Path) -> nbformat.NotebookNode:
    return nbformat.read(course / "notebooks" / "toy" / "toy.ipynb", as_version=4)


def cell(nb: nbformat.NotebookNode, grade_id: str) -> nbformat.NotebookNode:
    return next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def edited(course: Path, grade_id: str, prefix: str = "", replace: tuple[str, str] | None = None,
           suffix: str = "") -> nbformat.NotebookNode:
    """The solution with one cell changed: text replaced, code put before or after it."""
    nb = solution(course)
    target = cell(nb, grade_id)
    if replace:
        assert replace[0] in target.source, replace
        target.source = target.source.replace(*replace)
    target.source = prefix + target.source + suffix
    return nb


def submit(course: Path, student: str, content: nbformat.NotebookNode | bytes, name: str = "toy.ipynb") -> Path:
    """Place a submission as `nbgrader collect` would; returns its folder."""
    folder = course / "submitted" / student / "toy"
    folder.mkdir(parents=True)
    path = folder / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        nbformat.write(content, path)
    (folder / "timestamp.txt").write_text(STAMP)
    return folder


def record(student: str) -> dict:
    return read_record(Course.current(), "toy", student)


def points(student: str) -> dict[str, float]:
    """The points of the two autograded test cells."""
    return {k: v[0] for k, v in record(student)["scores"].items() if k.startswith("test_")}


def outputs(course: Path, student: str, grade_id: str) -> str:
    nb = nbformat.read(course / "autograded" / student / "toy" / "toy.ipynb", as_version=4)
    return json.dumps(cell(nb, grade_id).get("outputs", []))


def autograded_text(course: Path, student: str) -> str:
    return (course / "autograded" / student / "toy" / "toy.ipynb").read_text()


def all_outputs(course: Path, student: str) -> str:
    """Every output of every cell of the autograded notebook, as text."""
    nb = nbformat.read(course / "autograded" / student / "toy" / "toy.ipynb", as_version=4)
    return json.dumps([c.get("outputs", []) for c in nb.cells])


def hidden_lines(course: Path) -> list[str]:
    """Every line of the toy's hidden tests worth searching for (longer than a few characters)."""
    lines, inside = [], False
    for c in solution(course).cells:
        for line in c.source.splitlines():
            if "BEGIN HIDDEN TESTS" in line:
                inside = True
            elif "END HIDDEN TESTS" in line:
                inside = False
            elif inside and len(line.strip()) > 12 and not line.strip().startswith("###"):
                lines.append(line.strip())
    return lines
