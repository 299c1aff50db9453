"""``course report A --mutant-candidates``: the commonest wrong answers as mutants, for review.

A wrong value many students share is a wrong answer the hidden tests must keep rejecting, and
the best mutant there is: one students really wrote. For the largest clusters of
:func:`course_tools.grading.report.clusters`, the answer cell the failing test grades is taken
from one example student's submitted notebook (read as grading reads it: plain files only,
never through a link, bounded in size) and written as a ``[[mutant]]`` whose ``source`` is that
whole cell (:mod:`course_tools.authoring.mutants`), into ``report/<A>.mutant-candidates.toml``.
Nothing goes into ``tests/mutants/`` by itself: a person reads each candidate (it is a student's
code), names it, and moves the good ones there; ``course selfcheck A`` then proves they fail.
"""

from __future__ import annotations

import re
import tomllib

import nbformat

from course_tools import assignments
from course_tools.authoring.mutants import solved_code
from course_tools.grading.report import AssignmentReport
from course_tools.grading.similarity import read_answers, shown_value
from course_tools.layout import Course

TOP = 5  # candidates written at most
HEADER = """\
# Wrong answers students share, as mutants: review each before moving it into tests/mutants/{a}.toml.
# Each `source` is one student's answer cell, as submitted: read it as you would any submission,
# give the mutant a name that says what is wrong, and check it with `course selfcheck {a}`.
"""


def toml_string(text: str) -> str:
    """``text`` as a TOML string: a multi-line literal when it can be one (readable code), else a
    basic string with every quote, backslash and control character escaped."""
    plain = "'''" not in text and not text.endswith("'") and not re.search(r"[\x00-\x08\x0b-\x1f\x7f\ud800-\udfff]",
                                                                              text)
    if plain:
        return "'''\n" + text + "'''"
    out = []
    for ch in text:
        code = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\u{code:04X}")
        elif 0xD800 <= code <= 0xDFFF:  # a lone surrogate (JSON allows it, TOML and UTF-8 do not)
            out.append("\\uFFFD")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _solution_cells(course: Course, assignment: str) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Each test cell's answer cells in notebook order, and each answer cell's solution (markers dropped)."""
    source = nbformat.read(course.source_notebook(assignment), as_version=4)
    order = [assignments.grade_id(c, i) for i, c in enumerate(source.cells)]
    tested = {test: sorted(cells, key=order.index) for test, cells in assignments.tested_answers(source).items()}
    solved = {assignments.grade_id(c, i): solved_code(c.source) for i, c in enumerate(source.cells)
              if assignments.cell_kind(c) == "autograded answer"}
    return tested, solved


def _normal(code: str) -> str:
    return "\n".join(line.rstrip() for line in code.strip().splitlines())


def candidates(course: Course, report: AssignmentReport, top: int = TOP) -> tuple[list[str], list[str]]:
    """TOML entries for the largest clusters (one per distinct answer), and why other clusters gave none."""
    tested, solved = _solution_cells(course, report.assignment)
    entries, skipped, seen = [], [], set()
    for cluster in report.clusters:
        if len(entries) >= top:
            break
        cells = tested.get(cluster.test, [])
        try:
            answers = read_answers(course, report.assignment, cluster.example, cells)
        except OSError as exc:  # no submitted folder left (removed after grading)
            skipped.append(f"{cluster.test}: the submission of the example student cannot be read ({exc.strerror})")
            continue
        changed = [gid for gid in cells if gid in answers.cells
                   and _normal(answers.cells[gid]) != _normal(solved.get(gid, ""))]
        if not changed:
            skipped.append(f"{cluster.test}: {answers.note or 'the example answer cell is the solution or missing'}")
            continue
        cell = changed[0]
        code = _normal(answers.cells[cell]) + "\n"
        if (cell, code) in seen:
            continue  # the same answer behind another expectation's cluster
        seen.add((cell, code))
        why = (f"{cluster.students} of {cluster.judged} students published {shown_value(cluster.value)} for "
               f"{cluster.label!r} in {cluster.test} (this code is {cluster.example}'s)"
               + (f"; also changed: {', '.join(changed[1:])}" if len(changed) > 1 else ""))
        entries.append(f"[[mutant]]\nname = {toml_string(f'seen_{cell}_{len(entries) + 1}')}\n"
                       f"cell = {toml_string(cell)}\ntargets = [{toml_string(cluster.test)}]\n"
                       f"why = {toml_string(why[:500])}\nsource = {toml_string(code)}\n")
    return entries, skipped


def write(course: Course, report: AssignmentReport, top: int = TOP) -> tuple[int, list[str]]:
    """Write ``report/<A>.mutant-candidates.toml``; how many candidates, and the clusters skipped."""
    if not course.source_notebook(report.assignment).is_file():
        return 0, [f"no source notebook {course.source_notebook(report.assignment)} to take the answer cells from"]
    entries, skipped = candidates(course, report, top)
    text = HEADER.format(a=report.assignment) + "".join("\n" + e for e in entries)
    tomllib.loads(text)  # the escaping above makes it valid TOML; a file that is not would mislead
    path = course.mutant_candidates(report.assignment)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return len(entries), skipped


def announce(course: Course, report: AssignmentReport) -> None:
    """Write the candidates of one assignment's report and say where (``course report --mutant-candidates``)."""
    written, skipped = write(course, report)
    print(f"wrote {course.mutant_candidates(report.assignment)}: {written} candidates to review"
          + (f" ({len(skipped)} clusters skipped: {'; '.join(skipped[:3])})" if skipped else ""))
