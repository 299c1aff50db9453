"""Judging outside the kernel: how a test cell is rewritten for a student's kernel, and how
published values are matched against the solution's."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from course_tools import testcells
from course_tools.grading import judge
from course_utils import checks

CELL = '''assert square(3) == 9, "square(3) should be 9"
### BEGIN HIDDEN TESTS
_g = np.random.default_rng(7)
_x = _g.normal(size=5)
### BEGIN REFERENCE
_want = _x * _x
### END REFERENCE
checks.expect(square(_x), _want, "square of random numbers", rtol=1e-6)
for _k in range(2):
    ### BEGIN REFERENCE
    _t = _k * _k
    ### END REFERENCE
    checks.expect(square(_k), target=_t, message="square of small ints")
### END HIDDEN TESTS'''


def test_the_student_version_computes_no_target() -> None:
    student = testcells.student_version(CELL)
    assert "_want" not in student and "_t =" not in student and "_x * _x" not in student
    assert "checks.expect(square(_x), None, 'square of random numbers', rtol=1e-06)" in student
    assert "target=None" in student
    compile(student, "<test>", "exec")  # still valid: a block that was a loop's whole body became `pass`
    assert testcells.visible_part(CELL) == 'assert square(3) == 9, "square(3) should be 9"'
    assert testcells.expectation_count(CELL) == 2


def test_a_target_computed_outside_a_reference_block_is_caught() -> None:
    leaky = CELL.replace("### BEGIN REFERENCE\n_want = _x * _x\n### END REFERENCE\n", "_want = _x * _x\n")
    assert testcells.target_leaks(leaky) == ["_want"]
    assert testcells.target_leaks(CELL) == []  # _x is an input: used for the value too
    with pytest.raises(testcells.UnjudgeableCell):
        testcells.student_version("%timeit 1\n" + CELL)


def _published(label: str, value: object, **tol: float) -> checks.Published:
    return checks.Published(label=label, value=checks.encode(value), rtol=tol.get("rtol", checks.RTOL),
                            atol=tol.get("atol", checks.ATOL))


def test_values_are_matched_by_message_and_occurrence() -> None:
    reference = [_published("a", np.arange(3.0)), _published("b", 1), _published("b", 4)]
    assert judge.judge(reference, [_published("b", 1), _published("a", np.arange(3.0)), _published("b", 4)]).passed
    missing = judge.judge(reference, [_published("a", np.arange(3.0)), _published("b", 1)])
    assert missing.message == "b" and not missing.reached  # the test stopped before it: feedback says so
    wrong = judge.judge(reference, [_published("a", np.ones(3)), _published("b", 1), _published("b", 4)])
    assert wrong.message == "a" and wrong.reached
    assert not judge.judge([], []).passed  # nothing to judge is never a pass
    assert judge.surplus(reference, [_published("b", 1)] * 3) == ["b"]


def test_values_that_lie_about_themselves_never_match() -> None:
    class Yes(str):
        def __eq__(self, other: object) -> bool:
            return True

        __hash__ = str.__hash__

    assert checks.compare(checks.decode(checks.encode(Yes("x"))), "a") is not None
    assert checks.compare(checks.decode(checks.encode(np.zeros(2).view(type("A", (np.ndarray,), {})))),
                          np.zeros(2)) is not None
    assert checks.compare(checks.decode(checks.encode(True)), 1.0) is not None  # a bool is not a number
    assert checks.compare(checks.decode(checks.encode(2)), 2.0) is None
    assert checks.decode({"t": "array", "dtype": "float64", "shape": [10], "v": ""}).__class__ is checks.Unsupported
    assert checks.decode({"t": "array", "dtype": "object", "shape": [1], "v": "AA=="}).__class__ is checks.Unsupported
    assert judge.parse_payload("{not json") is None and judge.parse_payload(json.dumps({"value": 1})) is None


def test_a_published_message_reads_back_as_it_was_sent() -> None:
    text = checks.published_text("square of small ints", np.arange(3.0), rtol=1e-6, atol=0.0)
    message = checks.read_published(text)
    assert message == checks.Published(label="square of small ints", value=checks.encode(np.arange(3.0)),
                                       rtol=1e-6, atol=0.0)
    assert json.loads(text) == message  # the records keep the same object: stored values still read
    assert checks.stored_published(json.loads(text)) == message
    old = checks.stored_published({"label": "x", "value": {"t": "none"}})  # a record without tolerances
    assert old is not None and (old["rtol"], old["atol"]) == (checks.RTOL, checks.ATOL)
    odd = checks.stored_published({"label": "x", "value": 1, "rtol": 10**400, "atol": "0"})
    assert odd is not None and (odd["rtol"], odd["atol"]) == (checks.RTOL, checks.ATOL)
    assert checks.stored_list([{"label": 1, "value": 2}, "x", json.loads(text)]) == [message]
    assert checks.stored_list({"label": "x"}) == []


def test_a_note_names_its_test_whatever_its_words() -> None:
    from course_tools.grading.execute import TestNote

    note = TestNote("test_square", "'a: b' published 3 times: by the submission")
    assert TestNote.parse(note.text()) == note


def test_reports_of_two_notebooks_merge(tmp_path: Path) -> None:
    from course_tools.grading.execute import merge_reports, new_report, read_report, write_report

    first, second = new_report(warm=True), new_report(warm=False)
    first["kernel_deaths"].append("cell-1")
    second["kernel_deaths"].append("cell-9")
    second["judged"]["test_b"] = True
    write_report(tmp_path / "r.json", second)
    merged = merge_reports(first, read_report(tmp_path / "r.json"))
    assert merged["kernel_deaths"] == ["cell-1", "cell-9"] and merged["judged"] == {"test_b": True}
    assert read_report(tmp_path / "missing.json") == {}
