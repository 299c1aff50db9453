"""``course feedback``: nbgrader's feedback for graded submissions, notes for the rest,
and the preprocessor that keeps hidden tests out of feedback pages."""

from __future__ import annotations

from typing import Any

from nbconvert.preprocessors import Preprocessor
from traitlets import Bool

from course_tools.assignments import is_test_cell
from course_tools.testcells import visible_part
from course_tools.grading.export import rows
from course_tools.grading.nbgrader_errors import explain
from course_tools.grading.feedback_page import drop_mathjax_script, waiting_for_grading
from course_tools.grading.status import NO_SUBMISSION, NOT_GRADED
from course_tools.layout import Course


class HideHiddenTests(Preprocessor):
    """Remove hidden tests from the test cells of a feedback page.

    Unlike nbgrader's ``ClearHiddenTests`` it reads markers only in test
    cells, whose source the grader restored from the release, so a student's
    own ``### BEGIN HIDDEN TESTS`` comment in an answer can neither break the
    feedback nor hide anything.
    """

    enabled = Bool(True)

    def preprocess_cell(self, cell: Any, resources: dict, index: int):
        if is_test_cell(cell):
            cell.source = visible_part(cell.source)
        return cell, resources


class HideTestTracebacks(Preprocessor):
    """Replace the traceback of a failed grading cell by its error message.

    nbgrader's ``ClearHiddenTests`` removes hidden test lines from a cell's
    source, but the traceback of a failing hidden ``assert`` still prints the
    line. Students see ``AssertionError: <the test's own message>`` instead,
    which is what the message is written for.
    """

    enabled = Bool(True)  # nbconvert runs a registered preprocessor only when enabled

    def preprocess_cell(self, cell: Any, resources: dict, index: int):
        if is_test_cell(cell):
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    message = f"{output.get('ename', 'Error')}: {output.get('evalue', '')}".rstrip(": ")
                    output["traceback"] = [message]
        return cell, resources


def feedback(course: Course, assignment: str, provisional: bool = False) -> tuple[int, int, dict[str, str]]:
    """nbgrader's feedback for every graded submission; the not-graded ones keep their note.

    A submission with answers still waiting for a person's grade gets none, unless ``provisional``
    (its page then says so at the top); ``waiting_for_grading`` lists them. A submission whose
    feedback fails is listed with the reason and the others go on.

    Returns (feedback files made, not-graded notes in place, {student: why its feedback failed}).
    """
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    config = course.nbgrader_config
    api = NbGraderAPI(CourseDirectory(config=config), config=config)
    made = notes = 0
    failed: dict[str, str] = {}
    waiting = waiting_for_grading(course, assignment)
    for row in rows(course, [assignment]):
        student = row["student"]
        if row["status"] == NOT_GRADED:
            notes += course.not_graded_note(student, assignment).is_file()
            continue
        if row["status"] == NO_SUBMISSION or (student in waiting and not provisional):
            continue
        try:
            result = api.generate_feedback(assignment, student, force=True)
            if not result["success"]:
                failed[student] = explain(str(result.get("log") or "") + "\n" + str(result.get("error") or ""))
                continue
            for page in course.feedback(student, assignment).glob("*.html"):
                drop_mathjax_script(page)
        except Exception as exc:  # noqa: BLE001 (one student's page never stops the others)
            failed[student] = f"{type(exc).__name__}: {exc}"
            continue
        made += 1
    return made, notes, failed


def main(course: Course, assignment: str, provisional: bool = False) -> int:
    """``course feedback A``: make it and say what was made, what was not and why.
    0: everyone's is made; 1: some submission has none (failed, or its grading is unfinished)."""
    made, notes, failed = feedback(course, assignment, provisional=provisional)
    print(f"feedback/: {made} feedback files, {notes} not-graded notes; "
          f"`nbgrader release_feedback {assignment}` hands them out")
    for student, why in sorted(failed.items()):
        print(f"  no feedback for {student}: {why}")
    waiting = waiting_for_grading(course, assignment)
    if waiting and provisional:
        print(f"{len(waiting)} of them marked provisional at the top: answers still wait for a person")
    elif waiting:
        print(f"no feedback for {len(waiting)} submissions whose grading is unfinished (grade them in the "
              "Formgrader, or pass --provisional to hand out pages marked provisional):")
        for student, cells in sorted(waiting.items()):
            print(f"  {student}: {', '.join(cells)}")
        return 1
    return 1 if failed else 0
