"""``course autograde``: grade every submission of an assignment in parallel.

nbgrader grades one submission after another and writes the gradebook as it
goes. Here a coordinator reads ``submitted/<student>/<assignment>/``, sends
each submission to a dask worker (a LocalCluster on this machine by default,
or any cluster by its scheduler's address: the same code path), and writes
each result as it comes back: the autograded notebook into
``autograded/<student>/<assignment>/``, the scores into the gradebook
through nbgrader's own ``SaveAutoGrades`` (so formgrader and
``generate_feedback`` work as usual), and a status record into
``grading/<assignment>/<student>.json``. Workers never open the gradebook,
so they never contend for it, and it may be any SQLAlchemy URL.

A run that stops half-way resumes: a submission whose status record is
``graded`` or ``flagged`` for the same files is not graded again unless
``force`` is given.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from tqdm.auto import tqdm

from course_tools.grading import reference, status
from course_tools.grading.execute import TestNote
from course_tools.grading.intake import read_submission
from course_tools.grading.job import Kit, Outcome, Settings, Submission, grade
from course_tools.grading.reference import GradingSetupError
from course_tools.grading.sanitize import sanitize_notebook_json
from course_tools.grading.status import FLAGGED, GRADED, NOT_GRADED
from course_tools.layout import GRADEBOOK_FILE, Course
from course_tools.scratch import scratch_course

__all__ = ["GradingSetupError", "autograde", "make_kit", "run_pool", "submissions", "store"]


def make_kit(course: Course, assignment: str) -> Kit:
    """The assignment's gradebook entry, made from the source notebook and checked
    against the course gradebook, plus its non-notebook files."""
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(course.gradebook_url()) as gb:
        try:
            released = {c.name: c.checksum for c in _grade_cells(gb, assignment)}
        except MissingEntry:
            raise GradingSetupError(f"{assignment} is not in the gradebook: run `course release {assignment}` "
                                    "first (nbgrader grades against the released version).") from None
    gradebook, notebooks, fresh = _assignment_entry(course, assignment)
    if fresh != released:
        raise GradingSetupError(f"notebooks/{assignment} changed since it was released (its graded cells differ "
                                f"from the gradebook's): run `course release {assignment}` so grading uses the "
                                "tests students were given, or restore the notebook.")
    source = course.source(assignment)
    ignore = {".ipynb_checkpoints", "__pycache__"}
    files = {str(p.relative_to(source)): p.read_bytes() for p in sorted(source.rglob("*"))
             if p.is_file() and p.suffix != ".ipynb" and not p.name.endswith(".results.json")
             and not ignore & set(p.parts)}
    return Kit(assignment, notebooks, gradebook, files)


def _assignment_entry(course: Course, assignment: str) -> tuple[bytes, list[str], dict[str, str]]:
    """A gradebook holding only this assignment (as released from the source now), its notebooks
    and the checksums of its graded cells. Releasing takes seconds, so the entry is kept in
    ``grading/<assignment>.kit.db`` and made again only when the source notebook changes."""
    import hashlib
    import json

    from nbgrader.api import Gradebook

    stored, about = course.kit_file(assignment), course.kit_file(assignment).with_suffix(".json")
    digest = hashlib.sha256(course.source_notebook(assignment).read_bytes()).hexdigest()
    if stored.is_file() and about.is_file() and json.loads(about.read_text()).get("digest") == digest:
        gradebook = stored.read_bytes()
    else:
        with scratch_course(assignment, source=course) as scratch:
            scratch.release()
            gradebook = scratch.course.gradebook_file().read_bytes()
        stored.parent.mkdir(parents=True, exist_ok=True)
        stored.write_bytes(gradebook)
        about.write_text(json.dumps({"digest": digest}))
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / GRADEBOOK_FILE).write_bytes(gradebook)
        with Gradebook(f"sqlite:///{Path(tmp) / GRADEBOOK_FILE}") as gb:
            fresh = {c.name: c.checksum for c in _grade_cells(gb, assignment)}
            notebooks = [nb.name for nb in gb.find_assignment(assignment).notebooks]
    return gradebook, notebooks, fresh


def _grade_cells(gb, assignment: str) -> list:  # noqa: ANN001
    return [c for nb in gb.find_assignment(assignment).notebooks for c in nb.source_cells]


def submissions(course: Course, assignment: str, students: Iterable[str] | None = None) -> list[Submission]:
    """Every collected submission of ``assignment`` (``submitted/<student>/<assignment>/``)."""
    root = course.submissions_root()
    wanted = set(students or [])
    found = []
    for student in sorted(p.name for p in root.iterdir()) if root.is_dir() else []:
        folder = course.submitted(student, assignment)
        if (wanted and student not in wanted) or not (folder.is_dir() or folder.is_symlink()):
            continue
        try:
            found.append(read_submission(folder, student))
        except OSError as exc:  # unreadable: this submission's status, not the run's end
            found.append(Submission(student, {}, problem=f"the submission could not be read ({exc.strerror})"))
    missing = wanted - {s.student for s in found}
    if missing:
        raise GradingSetupError(f"no submission of {assignment} from {', '.join(sorted(missing))} in submitted/ "
                                "(run `nbgrader collect` first?)")
    return found


@dataclass
class RunSummary:
    graded: int = 0
    flagged: int = 0
    not_graded: int = 0
    skipped: int = 0
    seconds: float = 0.0

    def line(self) -> str:
        return (f"graded {self.graded}, flagged for review {self.flagged}, not graded {self.not_graded}, "
                f"skipped (already graded) {self.skipped} in {self.seconds:.0f} s")


def autograde(assignment: str, students: list[str] | None = None, workers: int = 2, scheduler: str | None = None,
              force: bool = False, settings: Settings | None = None, progress: bool = True) -> RunSummary:
    """Grade the submissions of ``assignment`` on dask workers; write results as they arrive."""
    import time

    from course_tools.grading import sandbox

    started = time.monotonic()
    settings = settings or Settings()
    course = Course.current()
    if settings.sandbox:
        sandbox.check()
        _warm_data()
    kit = make_kit(course, assignment)
    kit.reference = reference.ensure(course, kit, settings)
    todo, summary = [], RunSummary()
    for sub in submissions(course, assignment, students):
        previous = status.read(course, assignment, sub.student)
        if not force and previous and previous["status"] in (GRADED, FLAGGED) and previous["digest"] == sub.digest:
            summary.skipped += 1
        else:
            todo.append(sub)
    by_student = {sub.student: sub for sub in todo}
    for outcome in run_pool(kit, todo, settings, workers, scheduler, progress):
        try:
            store(course, kit, outcome, by_student[outcome.student])
        except Exception as exc:  # noqa: BLE001 (one submission's trouble never stops the batch)
            outcome = Outcome(outcome.student, NOT_GRADED, digest=outcome.digest,
                              reason=f"its result could not be stored: {type(exc).__name__}: {exc}")
            store(course, kit, outcome, by_student[outcome.student])
        summary.graded += outcome.status == GRADED
        summary.flagged += outcome.status == FLAGGED
        summary.not_graded += outcome.status == NOT_GRADED
    summary.seconds = time.monotonic() - started
    return summary


def _warm_data() -> None:
    """Fill the data cache before grading: the sandbox sees it read-only."""
    from course_utils import data

    for entry in data.REGISTRY.values():
        data.model_folder(entry) if isinstance(entry, data.ModelFolder) else data.fetch(entry)
    data.mnist()


def run_pool(kit: Kit, todo: list[Submission], settings: Settings, workers: int, scheduler: str | None,
         progress: bool) -> Iterable[Outcome]:
    """Outcomes in the order they finish, from dask workers."""
    if not todo:
        return
    import logging

    import dask
    from distributed import Client, LocalCluster, as_completed

    if scheduler:
        client, cluster = Client(scheduler), None
    else:
        with dask.config.set({"distributed.worker.daemon": False}):  # a worker starts a process per submission
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, memory_limit=0,
                                   dashboard_address=None, silence_logs=logging.ERROR)
        client = Client(cluster)
    try:
        kit_future = client.scatter(kit, broadcast=True)
        futures = {client.submit(grade, kit_future, sub, settings, key=f"grade-{kit.assignment}-{sub.student}",
                                 pure=False): sub.student for sub in todo}
        bar = tqdm(total=len(futures), desc=f"autograde {kit.assignment}", unit="sub", disable=not progress)
        for future in as_completed(futures):
            try:
                outcome = future.result()
            except Exception as exc:  # noqa: BLE001 (a worker lost, or the task itself failed)
                outcome = Outcome(futures[future], NOT_GRADED, reason=f"the grading worker failed: {exc!r}")
            bar.update()
            bar.set_postfix_str(f"{outcome.student}: {outcome.status}")
            yield outcome
        bar.close()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def store(course: Course, kit: Kit, outcome: Outcome, sub: Submission) -> None:
    """Write one outcome: autograded folder and gradebook (graded or flagged), status record (always)."""
    from nbgrader.api import Gradebook, MissingEntry

    outcome.digest = outcome.digest or sub.digest
    outcome.reason = status.clip(outcome.reason)  # the note, the record and the export quote it
    dest = course.autograded(sub.student, kit.assignment)
    url = course.gradebook_url()
    if outcome.status == NOT_GRADED:
        shutil.rmtree(dest, ignore_errors=True)
        with Gradebook(url) as gb:
            try:
                gb.remove_submission(kit.assignment, sub.student)
            except MissingEntry:
                pass
        _write_note(course, kit.assignment, outcome)
    else:
        _write_autograded(dest, kit, sub, outcome)
        _save_grades(url, kit, sub, outcome, course.nbgrader_config)
        course.not_graded_note(sub.student, kit.assignment).unlink(missing_ok=True)
    record = outcome.to_json()
    # What the kernel published for each test, plain data: `course rejudge` judges it again without a kernel.
    record["published"] = record["report"].pop("published", {})
    status.write(course, kit.assignment, sub.student, record)


def _write_autograded(dest: Path, kit: Kit, sub: Submission, outcome: Outcome) -> None:
    staging = Path(tempfile.mkdtemp(dir=dest.parent.parent if dest.parent.parent.exists() else None))
    try:
        for files in (sub.files, kit.files):  # the assignment's own files win, as in nbgrader
            for rel, data in files.items():
                path = staging / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
        for name, text in outcome.notebooks.items():
            (staging / f"{name}.ipynb").write_text(sanitize_notebook_json(text))  # read by people's browsers
        if sub.timestamp:
            (staging / "timestamp.txt").write_text(sub.timestamp)
        shutil.rmtree(dest, ignore_errors=True)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(staging), dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _save_grades(url: str, kit: Kit, sub: Submission, outcome: Outcome, config) -> None:  # noqa: ANN001
    import nbformat
    from nbgrader.api import Gradebook
    from nbgrader.preprocessors import AssignLatePenalties, SaveAutoGrades
    from nbgrader.utils import parse_utc

    with Gradebook(url) as gb:
        gb.update_or_create_student(sub.student)
        if sub.timestamp:
            gb.update_or_create_submission(kit.assignment, sub.student, timestamp=parse_utc(sub.timestamp))
        else:
            gb.update_or_create_submission(kit.assignment, sub.student)
    flagged = {TestNote.parse(entry).test for entry in outcome.report.get("surplus", [])}
    for name, text in outcome.notebooks.items():
        nb = nbformat.reads(text, as_version=4)
        resources = {"nbgrader": {"db_url": url, "assignment": kit.assignment, "notebook": name,
                                  "student": sub.student}}
        SaveAutoGrades(config=config).preprocess(nb, resources)
        AssignLatePenalties(config=config).preprocess(nb, resources)
        if flagged:
            with Gradebook(url) as gb:
                for grade_row in gb.find_submission_notebook(name, kit.assignment, sub.student).grades:
                    if grade_row.name in flagged:
                        grade_row.needs_manual_grade = True  # formgrader lists it for review
                gb.db.commit()


def _write_note(course: Course, assignment: str, outcome: Outcome) -> None:
    """A feedback note for a submission that could not be graded: the reason and what to do."""
    note = course.not_graded_note(outcome.student, assignment)
    note.parent.mkdir(parents=True, exist_ok=True)
    note.write_text(
        f"Your submission of {assignment} could not be graded, so it has no score yet (it is not a zero).\n\n"
        f"Reason: {outcome.reason}\n\n"
        "What to do: fix this and submit again, or contact your TA, who can see the same reason in the "
        "course's grade export.\n")
