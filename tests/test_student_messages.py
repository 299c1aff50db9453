"""What a student reads: stubs that name what to write, a blank notebook that stops at the first
of them, and `course validate` showing a failed check's value and hint."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from course_tools import cli
from course_tools.authoring.stubs import NamedStubs

CODE_STUB = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}


def _release(source: str, grade_id: str = "answer") -> str:
    """The cell as NamedStubs releases it."""
    cell = nbformat.v4.new_code_cell(source, metadata={"nbgrader": {
        "grade": False, "solution": True, "locked": False, "grade_id": grade_id, "schema_version": 3}})
    nb = nbformat.v4.new_notebook(cells=[cell], metadata={"kernelspec": {
        "display_name": "Python 3", "language": "python", "name": "python3"}})
    released, _ = NamedStubs(code_stub=CODE_STUB).preprocess(nb, {})
    return released.cells[0].source


def _raised(source: str) -> str:
    """The message of the NotImplementedError the released cell's stub raises."""
    line = next(line for line in source.splitlines() if "raise NotImplementedError" in line)
    namespace: dict = {}
    with pytest.raises(NotImplementedError) as info:
        exec(line.strip(), namespace)  # noqa: S102 (our own generated stub line)
    return str(info.value)


def test_a_function_stub_names_the_function_and_its_docstring() -> None:
    released = _release('def sample_gaussian(m, v):\n    """Draw z ~ N(m, diag(v)).\n\n    More detail.\n    """\n'
                        "    ### BEGIN SOLUTION\n    return m + v.sqrt() * torch.randn_like(m)\n    ### END SOLUTION\n")
    assert _raised(released) == "write sample_gaussian: Draw z ~ N(m, diag(v))."
    assert "randn_like" not in released and "# YOUR CODE HERE" in released
    assert "    raise NotImplementedError(" in released  # indented like the region it replaces


def test_a_method_stub_names_class_and_method_and_falls_back_to_the_class_docstring() -> None:
    released = _release('class Net(nn.Module):\n    """A two-layer classifier."""\n\n    def __init__(self):\n'
                        "        super().__init__()\n        ### BEGIN SOLUTION\n        self.fc = nn.Linear(2, 2)\n"
                        '        ### END SOLUTION\n\n    def forward(self, x):\n        """Logits of x."""\n'
                        "        ### BEGIN SOLUTION\n        return self.fc(x)\n        ### END SOLUTION\n")
    stubs = [line for line in released.splitlines() if "NotImplementedError" in line]
    assert [_raised(s) for s in stubs] == ["write Net.__init__: A two-layer classifier.", "write Net.forward: Logits of x."]


def test_a_top_level_answer_names_the_variable_and_never_the_value() -> None:
    released = _release('# one of "a", "b", "c"\n### BEGIN SOLUTION\nanswer_best_beta = "b"\n### END SOLUTION\n')
    assert _raised(released) == 'write answer_best_beta: one of "a", "b", "c"'
    assert '= "b"' not in released
    several = _release("### BEGIN SOLUTION\nanswer_gib, answer_flops = 12.5, 3e18\n### END SOLUTION\n")
    assert _raised(several) == "write answer_gib, answer_flops"


def _released_toy() -> nbformat.NotebookNode:
    """The toy assignment as nbgrader releases it with the course's nbgrader_config.py."""
    from course_tools.scratch import scratch_course

    with scratch_course("toy") as course:
        return nbformat.read(course.release(), as_version=4)


@pytest.mark.slow
def test_the_course_configuration_releases_named_stubs(toy_course: Path) -> None:
    stubs = [c.source for c in _released_toy().cells if "NotImplementedError" in c.source]
    assert [_raised(s) for s in stubs] == ["write square: Return x squared.",
                                           "write mean_square: Mean of the squares of the numbers in xs."]


@pytest.mark.slow
def test_a_blank_notebook_run_top_to_bottom_stops_at_the_first_stub(toy_course: Path) -> None:
    """Run All stops at the first error: it must be the first stub's message, not a NameError."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = _released_toy()
    with pytest.raises(CellExecutionError) as info:
        NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    assert info.value.ename == "NotImplementedError"
    assert info.value.evalue == "write square: Return x squared."


def _checked_notebook(path: Path) -> Path:
    """A notebook whose graded test cell fails a visible check by a sign."""
    answer = nbformat.v4.new_code_cell("def half():\n    return -0.5", metadata={"nbgrader": {
        "grade": False, "solution": True, "locked": False, "grade_id": "half", "schema_version": 3}})
    test = nbformat.v4.new_code_cell(
        "from course_utils import checks\nchecks.check_close(half(), 0.5, 'half()', hint='mind the sign')",
        metadata={"nbgrader": {"grade": True, "solution": False, "locked": True, "grade_id": "test_half",
                               "points": 1, "schema_version": 3}})
    nb = nbformat.v4.new_notebook(cells=[answer, test], metadata={
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}})
    nbformat.write(nb, path)
    return path


@pytest.mark.slow
def test_validate_shows_the_failed_checks_value_and_hint(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["validate", str(_checked_notebook(tmp_path / "half.ipynb"))]) == 1
    out, err = capsys.readouterr()
    assert "test_half: failed" in out
    assert "value -0.5 where 0.5 was expected" in out and "Hint: mind the sign" in out
    assert "Traceback" not in out + err and "Warning" not in out + err
