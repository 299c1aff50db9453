"""``course rejudge A``: judge every graded submission again, without running anyone's code.

Each graded submission's status record keeps what its kernel published for each test cell
(``"published": {grade_id: [message, ...]}``, each a :class:`course_utils.checks.Published`:
the judge's inputs). When a hidden test is fixed (a tolerance, a target) and ``course release``
has made the reference values again, those stored values are judged against the new reference with its tolerances, in this
process: no kernel starts. Scores change in the gradebook through nbgrader's API (each test
cell's ``auto_score``; a TA's manual override stays), in the status record and in the
autograded notebook's test cell (its failure message), and late penalties follow the new scores.

A test whose code changed so that it publishes other values cannot be judged from stored
ones. Which submissions need a run is read from the values themselves: a run publishes the
reference's expectations in order and stops early only where the student's code raised, so
stored labels that are not a prefix of the reference's, or a reference longer than what any
submission ever published for that test, mean the test changed. Those submissions are listed
for ``course autograde A --force --students ...``; their other tests are judged as usual.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from course_tools.grading import judge, late, reference, status
from course_tools.grading.status import FLAGGED, GRADED
from course_tools.layout import Course
from course_utils.checks import stored_list

JUDGED_STATUSES = (GRADED, FLAGGED)


class RejudgeError(RuntimeError):
    """Nothing can be judged (no current reference values); nothing changed."""


@dataclass
class Change:
    student: str
    old: float
    new: float
    tests: list[str]  # grade ids whose verdict changed


@dataclass
class RejudgeReport:
    assignment: str
    judged: int = 0
    changed: list[Change] = field(default_factory=list)
    rerun: dict[str, list[str]] = field(default_factory=dict)  # student -> tests that need new values
    penalties_changed: int = 0
    seconds: float = 0.0

    def lines(self) -> list[str]:
        out = [f"rejudged {self.judged} submissions of {self.assignment} against the current reference values "
               f"(no code run) in {self.seconds:.1f} s; {len(self.changed)} scores changed"]
        out += [f"  {c.student}: {c.old:g} -> {c.new:g}  ({', '.join(c.tests)})" for c in self.changed]
        if self.rerun:
            out.append(f"{len(self.rerun)} submissions need their code run again (a test's code changed, so its "
                       "stored values do not answer it):")
            out += [f"  {student}: {', '.join(tests)}" for student, tests in sorted(self.rerun.items())]
            out.append(f"course autograde {self.assignment} --force --students {' '.join(sorted(self.rerun))}")
        return out


def expected_labels(values: dict[str, dict]) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Each test's expectation labels in order, and its notebook, from reference values."""
    labels, notebook_of = {}, {}
    for notebook, stored in values.items():
        for gid, payloads in stored["cells"].items():
            labels[gid] = [p["label"] for p in stored_list(payloads)]
            notebook_of[gid] = notebook
    return labels, notebook_of


def stale_tests(expected: dict[str, list[str]], records: dict[str, dict]) -> dict[str, list[str]]:
    """For each student, the tests whose stored values cannot answer the current reference."""
    def labels(record: dict, gid: str) -> list[str] | None:
        payloads = record.get("published", {}).get(gid)
        return None if payloads is None else [p.get("label") for p in payloads if isinstance(p, dict)]

    complete = {gid: any(labels(r, gid) == want for r in records.values()) for gid, want in expected.items()}
    out: dict[str, list[str]] = {}
    for student, record in records.items():
        for gid, want in expected.items():
            got = labels(record, gid)
            if got is None or got != want[:len(got)] or (len(got) < len(want) and not complete[gid]):
                out.setdefault(student, []).append(gid)
    return out


def rejudge(course: Course, assignment: str) -> RejudgeReport:
    """Judge every graded submission of ``assignment`` again from its stored values (see the module)."""
    started = time.perf_counter()
    values = reference.load(course, assignment)
    if values is None:
        raise RejudgeError(f"the reference values of {assignment} are missing or older than its notebook: run "
                           f"`course release {assignment}` first (it makes them from the solution)")
    expected, notebook_of = expected_labels(values)
    ref_payloads = {gid: stored_list(payloads) for stored in values.values()
                    for gid, payloads in stored["cells"].items()}
    records = {s: r for s in sorted(status.students_with_records(course, assignment))
               if (r := status.read(course, assignment, s)) and r.get("status") in JUDGED_STATUSES}
    report = RejudgeReport(assignment, rerun=stale_tests(expected, records))
    verdicts = {}
    for student, record in records.items():
        skip = set(report.rerun.get(student, []))
        verdicts[student] = {gid: judge.judge(ref_payloads[gid], stored_list(record["published"][gid]))
                             for gid in expected if gid not in skip}
    report.changed = _save(course, assignment, notebook_of, records, verdicts)
    report.judged = len(records)
    report.penalties_changed = late.apply(course, assignment)
    report.seconds = time.perf_counter() - started
    return report


def _save(course: Course, assignment: str, notebook_of: dict[str, str], records: dict[str, dict],
          verdicts: dict[str, dict[str, judge.Verdict]]) -> list[Change]:
    """New auto scores into the gradebook (one transaction), the status records and autograded notebooks."""
    from nbgrader.api import Gradebook, MissingEntry

    changes = []
    with Gradebook(course.gradebook_url()) as gb:
        for student, by_test in verdicts.items():
            try:
                sub = gb.find_submission(assignment, student)
            except MissingEntry:
                continue  # graded, then removed from the gradebook by hand: nothing to change
            grades = {(nb.name, g.name): g for nb in sub.notebooks for g in nb.grades}
            old_total, flipped = float(sub.score), []
            for gid, verdict in by_test.items():
                grade = grades.get((notebook_of[gid], gid))
                if grade is None:
                    continue
                points = float(grade.max_score) if verdict.passed else 0.0
                if grade.auto_score != points:
                    grade.auto_score = points
                    flipped.append(gid)
            if not flipped:
                continue
            gb.db.flush()
            gb.db.refresh(sub)
            changes.append(Change(student, old_total, float(sub.score), flipped))
            _update_record(course, assignment, student, records[student], by_test, grades, notebook_of)
            _update_notebooks(course, assignment, student, {gid: by_test[gid] for gid in flipped}, notebook_of)
        gb.db.commit()
    return changes


def _update_record(course: Course, assignment: str, student: str, record: dict,  # noqa: PLR0913
                   by_test: dict[str, judge.Verdict], grades: dict, notebook_of: dict[str, str]) -> None:
    judged = record.setdefault("report", {}).setdefault("judged", {})
    for gid, verdict in by_test.items():
        judged[gid] = verdict.passed
        grade = grades.get((notebook_of[gid], gid))
        if grade is not None and gid in record.get("scores", {}):
            record["scores"][gid][0] = float(grade.auto_score or 0)
    record.setdefault("rejudged", []).append(time.strftime("%Y-%m-%d %H:%M:%S"))
    status.write(course, assignment, student, record)


def _update_notebooks(course: Course, assignment: str, student: str, flipped: dict[str, judge.Verdict],
                      notebook_of: dict[str, str]) -> None:
    """The autograded notebook's test cells say the new verdict (what feedback shows)."""
    import nbformat
    from nbformat.v4 import new_output

    for notebook in {notebook_of[gid] for gid in flipped}:
        path = course.autograded(student, assignment) / f"{notebook}.ipynb"
        if not path.is_file() or path.is_symlink():
            continue
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
            if gid not in flipped or notebook_of[gid] != notebook:
                continue
            cell.outputs = [o for o in cell.get("outputs", []) if o.get("ename") != "TestFailed"]
            if not flipped[gid].passed:
                cell.outputs.append(new_output("error", ename="TestFailed", evalue=flipped[gid].message,
                                               traceback=[f"TestFailed: {flipped[gid].message}"]))
        nbformat.write(nb, path)
