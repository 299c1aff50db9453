"""The grading front end on the toy assignment: release, selfcheck, mutants, feedback."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from course_tools import assignments
from course_tools import cli
from course_tools.authoring import mutants
from course_tools.grading.feedback import HideTestTracebacks
from course_tools.authoring.selfcheck import release_leaks, selfcheck


def _toy_notebook(root: Path) -> Path:
    return root / "notebooks" / "toy" / "toy.ipynb"


def _edit_cell(path: Path, grade_id: str, old: str, new: str) -> None:
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id:
            cell.source = cell.source.replace(old, new)
    nbformat.write(nb, path)


def test_list_counts_cells_and_points(toy_course: Path, capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["list"]) == 0
    row = capsys.readouterr().out.splitlines()[1].split()
    assert row == ["toy", "2", "4", "1", "1"]


def test_metadata_problems_catch_duplicates_and_generated_ids(toy_course: Path) -> None:
    path = _toy_notebook(toy_course)
    nb = nbformat.read(path, as_version=4)
    by_id = {c.metadata.nbgrader.grade_id: c for c in nb.cells}
    by_id["test_square"].metadata.nbgrader.grade_id = "square"  # the test cell now shares the answer's id
    by_id["why_negative"].metadata.nbgrader.grade_id = "cell-0123456789abcdef"
    nbformat.write(nb, path)
    problems = " ".join(assignments.metadata_problems(assignments.load("toy")))
    assert "'square' is used by more than one cell" in problems
    assert "generated default" in problems


def test_release_strips_solutions(toy_course: Path) -> None:
    assert cli.main(["release", "toy"]) == 0
    released = (toy_course / "release" / "toy" / "toy.ipynb").read_text()
    assert "raise NotImplementedError('write square: Return x squared.')" in released
    assert "x * x" not in released and "square(-2)" not in released and "Mark scheme" not in released


def test_release_leak_detection() -> None:
    source = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "def f(x):\n    ### BEGIN SOLUTION\n    return x * 41 + 1\n    ### END SOLUTION")])
    leaky = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("def f(x):\n    return x * 41 + 1")])
    clean = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("def f(x):\n    raise NotImplementedError()")])
    assert release_leaks(source, leaky) and not release_leaks(source, clean)


def test_stale_mutant_is_reported(toy_course: Path) -> None:
    nb = nbformat.read(_toy_notebook(toy_course), as_version=4)
    stale = mutants.Mutant("stale", "square", ("test_square",), "", edits=(("x ** 2", "x"),))
    with pytest.raises(ValueError, match="update tests/mutants"):
        mutants.apply(nb, stale)


def test_workspace_never_overwrites_student_work(toy_course: Path) -> None:
    assert cli.main(["release", "toy"]) == 0
    assert cli.main(["workspace"]) == 0
    mine = toy_course / "assignments" / "toy" / "toy.ipynb"
    mine.write_text(mine.read_text().replace("YOUR CODE HERE", "my own attempt"))
    assert cli.main(["workspace"]) == 0
    assert "my own attempt" in mine.read_text()


def test_feedback_shows_messages_not_hidden_code() -> None:
    cell = nbformat.v4.new_code_cell("assert ok", metadata={"nbgrader": {"grade": True, "solution": False}})
    cell.outputs = [nbformat.v4.new_output("error", ename="AssertionError", evalue="square of a negative",
                                           traceback=["assert square(-2) == 4, 'square of a negative'"])]
    out, _ = HideTestTracebacks().preprocess_cell(cell, {}, 0)
    assert out.outputs[0].traceback == ["AssertionError: square of a negative"]


@pytest.mark.slow
def test_selfcheck_accepts_a_sound_assignment(toy_course: Path) -> None:
    report = selfcheck("toy")
    assert report.ok, report.problems
    assert report.summary.startswith("selfcheck toy: OK solution 4/4, blank 0/4, mutants 3/3 rejected, "
                                     "alternatives 2/2 full marks")
    assert "alternatives 1 (power_operator, python_sum): full marks 4/4" in report.lines
    assert "alternatives 2 (warns_on_lists): full marks 4/4" in report.lines  # a warning is not a failure


@pytest.mark.slow
def test_selfcheck_catches_weak_tests(toy_course: Path) -> None:
    # Drop the hidden test: the sign-keeping mutant now survives.
    _edit_cell(_toy_notebook(toy_course), "test_square",
               'checks.expect(square(-2), 4, "square of a negative number should be positive")\n'
               'checks.expect(square(-1.5), 2.25, "square of a negative fraction should be positive")',
               'checks.expect(square(4), 16, "square(4)")')
    # An equivalent rewrite registered as a mutant must be reported as surviving too.
    extra = '\n[[mutant]]\nname = "power"\ncell = "square"\ntargets = ["test_square"]\nedits = [["x * x", "x ** 2"]]\n'
    with open(toy_course / "tests" / "mutants" / "toy.toml", "a") as f:
        f.write(extra)
    report = selfcheck("toy")
    assert not report.ok
    assert any("mutant signed" in p for p in report.problems)
    assert any("mutant power" in p for p in report.problems)
    assert "mutants 2/4 rejected" in report.summary


@pytest.mark.slow
def test_selfcheck_catches_a_test_that_passes_blank(toy_course: Path) -> None:
    _edit_cell(_toy_notebook(toy_course), "test_square", 'assert square(3) == 9, "square(3) should be 9"', "x = 1")
    _edit_cell(_toy_notebook(toy_course), "test_square",
               'checks.expect(square(-2), 4, "square of a negative number should be positive")\n'
               'checks.expect(square(-1.5), 2.25, "square of a negative fraction should be positive")',
               'checks.expect(1, 1, "always")')
    report = selfcheck("toy", only_mutants=["doubles"])
    assert any("blank release scores on test_square" in p for p in report.problems)


@pytest.mark.slow
def test_feedback_html_hides_hidden_tests(toy_course: Path) -> None:
    from course_tools.authoring import mutants as mut
    from course_tools.grading.coordinator import autograde
    from toy_submissions import submit

    assert cli.main(["release", "toy"]) == 0
    source = nbformat.read(_toy_notebook(toy_course), as_version=4)
    signed = next(m for m in mut.load_mutants("toy") if m.name == "signed")
    submit(toy_course, "alice", mut.apply(source, signed))
    assert autograde("toy", workers=1, progress=False).graded == 1
    assert cli.main(["feedback", "toy", "--provisional"]) == 0  # its written answer is not graded yet
    html = (toy_course / "feedback" / "alice" / "toy" / "toy.html").read_text()
    assert "square of a negative number should be positive" in html  # the test's own message
    assert "square(-2)" not in html and "BEGIN HIDDEN" not in html  # never its code
