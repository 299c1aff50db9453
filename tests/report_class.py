"""A class of the toy assignment (tests/fixtures/toy) whose answers are known, built without a kernel:
each student's submitted notebook, the status record `course autograde` would write (scores, grading
time, the values the run published), the reference values, `course.toml` and a gradebook made through
nbgrader's API (test scores, written answers marked or waiting, hand-in times).

The values a run publishes are computed by running the student's own answer cells here (the toy's
code, a few lines), so a cluster of wrong values and the code behind it always agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import nbformat
import numpy as np
from similarity_submissions import write_record, write_reference
from toy_submissions import cell, solution, submit

from course_tools.authoring.mutants import solved_code
from course_utils import checks

TOY = "toy"
NEGATIVE = "square of a negative number should be positive"
FRACTION = "square of a negative fraction should be positive"
MEAN = "mean_square must average the squares (negative numbers too)"
DUE = "2026-10-01 23:59"
ON_TIME = "2026-10-01 10:00:00.000000 UTC"
LATE = "2026-10-03 10:00:00.000000 UTC"
HOSTILE = "<b onclick=x>mallory"
SCRIPT = "</code><script>alert(1)</script>"
COURSE_TOML = f'[course]\ntimezone = "UTC"\n\n[assignments.toy]\ndue = "{DUE}"\n'

SQUARE = {  # how a student wrote square(x): the edit of the solution's line
    "right": None,
    "doubles": ("return x * x", "return x * x if x > 0 else x * 2"),  # right on the visible test
    "signed": ("return x * x", "return abs(x) * x"),
    "truncates": ("return x * x", "return int(x) * int(x)"),
    "stops": ("return x * x", "raise NotImplementedError()"),
}
MEAN_SQUARE = {  # and mean_square(xs)
    "right": None,
    "square_of_mean": ("np.mean(np.asarray(xs, dtype=float) ** 2)", "np.mean(np.asarray(xs, dtype=float)) ** 2"),
    "odd": ("dtype=float) ** 2))", "dtype=float) ** 2) + 8)"),
    "script": ("float(np.mean(np.asarray(xs, dtype=float) ** 2))", repr(SCRIPT)),
}


@dataclass(frozen=True)
class Student:
    name: str
    square: str = "right"
    mean: str = "right"
    written: float | None = 1.0  # the written answer's manual score; None: not marked yet
    late: bool = False
    status: str = "graded"  # of the status record


def roster() -> list[Student]:
    """30 judged students, one not graded; s32 and s33 (missing) are only in the gradebook."""
    out = [Student(f"s{i:02d}", written=None) for i in (1, 2, 3)]
    out += [Student(f"s{i:02d}", late=i == 5) for i in range(4, 11)]
    out += [Student(f"s{i:02d}", "doubles", late=i == 12) for i in range(11, 17)]
    out += [Student("s17", "signed", "odd"), Student("s18", "signed", late=True), Student("s19", "signed")]
    out += [Student("s20", "truncates"), Student("s21", "truncates", written=0.0),
            Student("s22", "truncates", written=0.0)]
    out += [Student(f"s{i}", "stops", written=0.0) for i in (23, 24)]
    out += [Student(f"s{i}", mean="square_of_mean", written=0.0) for i in range(25, 29)]
    out += [Student("s30", mean="script", written=0.0), Student(HOSTILE, mean="script", written=0.0, status="flagged")]
    return out


NOT_GRADED_STUDENT = "s31"
MISSING_STUDENTS = ("s32", "s33")


def notebook(course: Path, student: Student) -> nbformat.NotebookNode:
    """The student's notebook: the solution's answers without markers (as a student hands them in), edited."""
    nb = solution(course)
    for gid, edit in (("square", SQUARE[student.square]), ("mean_square", MEAN_SQUARE[student.mean])):
        target = cell(nb, gid)
        target.source = solved_code(target.source)
        if edit:
            assert edit[0] in target.source, edit
            target.source = target.source.replace(*edit)
    return nb


def _payload(label: str, value: object) -> dict:
    return {"label": label, "value": checks.encode(value)}


def published(nb: nbformat.NotebookNode) -> dict[str, list[dict]]:
    """What each test cell's hidden expectations publish for this notebook (a test stops at an error)."""
    namespace: dict = {"np": np}
    for gid in ("square", "mean_square"):
        exec(cell(nb, gid).source, namespace)  # noqa: S102 (the fixture's own answers)
    out: dict[str, list[dict]] = {"test_square": [], "test_mean_square": []}
    try:
        assert namespace["square"](3) == 9  # the visible test: a failure stops the cell before the hidden ones
        square = namespace["square"]
        out["test_square"] += [_payload(NEGATIVE, square(-2)), _payload(FRACTION, square(-1.5))]
    except (AssertionError, NotImplementedError):
        pass
    out["test_mean_square"].append(_payload(MEAN, namespace["mean_square"]([-1.0, 1.0, -2.0, 0.5])))
    return out


def reference() -> dict[str, list[dict]]:
    tol = {"rtol": 1e-5, "atol": 1e-8}
    return {"test_square": [{**_payload(NEGATIVE, 4), **tol}, {**_payload(FRACTION, 2.25), **tol}],
            "test_mean_square": [{**_payload(MEAN, 1.5625), **tol}]}


def points(student: Student) -> dict[str, float]:
    """The two test cells' points, from what the answers are (not from the judge)."""
    return {"test_square": 2.0 if student.square == "right" else 0.0,
            "test_mean_square": 2.0 if student.mean == "right" else 0.0}


def seconds(n: int) -> float:
    """The grading time recorded for the n-th student of the roster (0-based)."""
    return 10.0 + n


def build(course: Path, students: list[Student] | None = None, with_notebooks: bool = True) -> list[Student]:
    """Write the whole class into ``course`` (a copy of the toy fixture); the roster written."""
    students = students if students is not None else roster()
    (course / "course.toml").write_text(COURSE_TOML)
    write_reference(course, reference(), assignment=TOY)
    for n, student in enumerate(students):
        nb = notebook(course, student)
        if with_notebooks:
            folder = submit(course, student.name, nb)
            (folder / "timestamp.txt").write_text(LATE if student.late else ON_TIME)
        got = points(student)
        write_record(course, student.name, published(nb), {**{k: [v, 2.0] for k, v in got.items()},
                                                           "why_negative": [0.0, 1.0]},
                     assignment=TOY, status=student.status, seconds=seconds(n),
                     reason="flagged: published grading messages itself" if student.status == "flagged" else "")
    write_record(course, NOT_GRADED_STUDENT, None, {}, assignment=TOY, status="not graded", seconds=3.0,
                 reason=f"toy.ipynb is not a valid notebook {SCRIPT}")
    _gradebook(course, students)
    return students


def _gradebook(course: Path, students: list[Student]) -> None:
    """The gradebook as autograde and a TA's marking leave it."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        gb.add_assignment(TOY, duedate=datetime(2026, 10, 1, 23, 59))
        gb.add_notebook(TOY, TOY)
        for name, points_, kind in (("test_square", 2, "code"), ("test_mean_square", 2, "code"),
                                    ("why_negative", 1, "markdown")):
            gb.add_grade_cell(name, TOY, TOY, max_score=points_, cell_type=kind)
        for name in ("square", "mean_square", "why_negative"):
            gb.add_solution_cell(name, TOY, TOY)
        for name in (*[s.name for s in students], NOT_GRADED_STUDENT, *MISSING_STUDENTS):
            gb.add_student(name)
        for student in students:
            stamp = LATE if student.late else ON_TIME
            gb.add_submission(TOY, student.name, timestamp=datetime.strptime(stamp[:19], "%Y-%m-%d %H:%M:%S"))
            for test, got in points(student).items():
                grade = gb.find_grade(test, TOY, TOY, student.name)
                grade.auto_score, grade.needs_manual_grade = got, False
            written = gb.find_grade("why_negative", TOY, TOY, student.name)
            written.auto_score, written.manual_score = None, student.written
            written.needs_manual_grade = student.written is None
        gb.db.commit()
