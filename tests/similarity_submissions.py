"""Submissions of the similarity fixture (tests/fixtures/similarity): a released assignment,
``mini_train.ipynb`` (its stubs and given code, as ``course release`` leaves them), and answers
written as different students would write them.

``answers/independent/sNN.py`` are eight students' own answers to its three answer cells
(a softmax, one step of logistic regression, a data normaliser): different structure and
idioms, all correct. ``answers/disguised/sNN.py`` copies ``independent/sNN.py`` the way
students disguise a copy: variables renamed, functions reordered, comments and blank lines
changed, a helper inlined. Each file holds one student's cells, each after a line
``#### cell: <grade id>``.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parent.parent
FIXTURE = REPO / "tests" / "fixtures" / "similarity"
ASSIGNMENT = "mini_train"
CELLS = ("softmax", "sgd_step", "normaliser")


def answers(kind: str) -> dict[str, dict[str, str]]:
    """``independent`` or ``disguised``: file stem -> grade id -> the cell's code."""
    out = {}
    for path in sorted((FIXTURE / "answers" / kind).glob("*.py")):
        parts = re.split(r"^#### cell: (\w+)\n", path.read_text(), flags=re.M)
        out[path.stem] = dict(zip(parts[1::2], parts[2::2]))
    return out


def make_course(root: Path) -> Path:
    """A course folder with the fixture's release and the course's nbgrader configuration."""
    (root / "release" / ASSIGNMENT).mkdir(parents=True)
    shutil.copy(FIXTURE / f"{ASSIGNMENT}.ipynb", root / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")
    shutil.copy(REPO / "nbgrader_config.py", root / "nbgrader_config.py")
    return root


def notebook(cells: dict[str, str]) -> nbformat.NotebookNode:
    """The released notebook with these answer cells written in."""
    nb = nbformat.read(FIXTURE / f"{ASSIGNMENT}.ipynb", as_version=4)
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in cells:
            cell.source = cells[gid].rstrip("\n")
    return nb


def submit(root: Path, student: str, content: dict[str, str] | nbformat.NotebookNode | bytes) -> Path:
    """Place a submission as `nbgrader collect` would; returns the notebook's path."""
    folder = root / "submitted" / student / ASSIGNMENT
    folder.mkdir(parents=True)
    path = folder / f"{ASSIGNMENT}.ipynb"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        nbformat.write(notebook(content) if isinstance(content, dict) else content, path)
    return path


def write_record(root: Path, student: str, published: dict | None, scores: dict | None = None,
                 assignment: str = ASSIGNMENT, **fields: object) -> None:
    """A status record as `course autograde` writes it, with the values the run published when given
    (``fields``: any other field of the record, e.g. its status, reason or seconds)."""
    record = {"student": student, "status": "graded", "reason": "", "digest": "", "report": {}, "seconds": 1.0,
              "scores": scores or {"test_softmax": [2.0, 2.0], "test_sgd_step": [3.0, 3.0],
                                   "test_normaliser": [2.0, 2.0]}, **fields}
    if published is not None:
        record["published"] = published
    folder = root / "grading" / assignment
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{student}.json").write_text(json.dumps(record))


def write_reference(root: Path, cells: dict[str, list[dict]], assignment: str = ASSIGNMENT) -> None:
    """grading/<A>.reference.json as `course release` stores it (the digest is not checked here)."""
    (root / "grading").mkdir(parents=True, exist_ok=True)
    (root / "grading" / f"{assignment}.reference.json").write_text(
        json.dumps({"digest": "fixture", "notebooks": {assignment: {"cells": cells, "errors": {}}}}))
