"""Alternatives: right answers written differently from the solution, registered as `[[alternative]]` in
tests/mutants/<a>.toml; `course selfcheck` grades them in variants and every one must earn full marks."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from course_tools import assignments
from course_tools.authoring import mutants
from course_tools.authoring.selfcheck import selfcheck
from course_tools.scratch import scratch_course

WRONG = '''
[[alternative]]
name = "keeps_sign"
cell = "square"
why = "keeps the sign: not a right answer, registered to see the selfcheck refuse it"
code = """
def square(x):
    return abs(x) * x
"""
'''


def _register(course: Path, text: str) -> None:
    with open(course / "tests" / "mutants" / "toy.toml", "a") as f:
        f.write(text)


def _answers(nb: nbformat.NotebookNode) -> dict[str, str]:
    return {c.metadata.nbgrader["grade_id"]: c.source for c in nb.cells
            if assignments.cell_kind(c) == "autograded answer"}


def test_alternatives_are_read_in_file_order(toy_course: Path) -> None:
    found = mutants.load_alternatives("toy")
    assert [(a.name, a.cell) for a in found] == [("power_operator", "square"), ("python_sum", "mean_square"),
                                                 ("warns_on_lists", "mean_square")]
    assert "x ** 2" in found[0].code and found[0].why


def test_variant_k_holds_the_kth_alternative_of_every_cell() -> None:
    f1, f2, f3 = (mutants.Alternative(f"f{i}", "f", "", "") for i in (1, 2, 3))
    g1 = mutants.Alternative("g1", "g", "", "")
    assert mutants.alternative_variants([f1, g1, f2, f3]) == [[f1, g1], [f2], [f3]]
    assert mutants.alternative_variants([]) == []


@pytest.mark.parametrize("entry, problem", [
    ('name = "m"\ncell = "square"\ncode = """\n### BEGIN SOLUTION\nreturn 1\n"""', "without markers"),
    ('name = "power_operator"\ncell = "square"\ncode = "def square(x):\\n    return x * x"', "unique"),
    ('name = "no_code"\ncell = "square"', "needs code"),
])
def test_a_malformed_alternative_is_refused(toy_course: Path, entry: str, problem: str) -> None:
    _register(toy_course, f"\n[[alternative]]\n{entry}\n")
    with pytest.raises(ValueError, match=problem):
        mutants.load_alternatives("toy")


def test_a_variant_is_the_release_with_every_answer_filled_in(toy_course: Path) -> None:
    source = nbformat.read(toy_course / "notebooks" / "toy" / "toy.ipynb", as_version=4)
    power = mutants.load_alternatives("toy")[0]
    with scratch_course("toy") as course:
        release = nbformat.read(course.release(), as_version=4)
    filled = _answers(mutants.apply_alternatives(source, release, [power]))
    assert filled["square"] == "def square(x):\n    return x ** 2"
    # The cell without an alternative holds the solution as a student would hand it in: no markers.
    assert "np.mean(np.asarray(xs, dtype=float) ** 2)" in filled["mean_square"]
    assert "###" not in filled["mean_square"] and "NotImplementedError" not in filled["mean_square"]
    assert "NotImplementedError" in _answers(release)["square"]  # the release itself is untouched
    stray = mutants.Alternative("stray", "test_square", "", "x = 1")
    with pytest.raises(ValueError, match="no autograded answer cell with grade_id 'test_square'"):
        mutants.apply_alternatives(source, release, [stray])


@pytest.mark.slow
def test_selfcheck_grades_every_alternative_variant_even_in_a_sample(toy_course: Path) -> None:
    _register(toy_course, WRONG)
    report = selfcheck("toy", sample=1)
    assert "alternatives 1 (power_operator, python_sum): full marks 4/4" in report.lines
    assert "alternatives 2 (keeps_sign, warns_on_lists): LOST POINTS 2/4 (test_square 0/2)" in report.lines
    assert report.problems == ["alternative keeps_sign (keeps the sign: not a right answer, registered to see the "
                               "selfcheck refuse it) loses points on test_square: "
                               "square of a negative number should be positive"]
    assert "alternatives 1/2 full marks" in report.summary and "FAILED" in report.summary
