"""Grade one submission, start to finish, in a scratch course of its own.

This is the task a grading worker runs (:mod:`course_tools.grading.coordinator` sends
it to dask workers, local or on a cluster). Everything it needs arrives in
memory and everything it makes goes back in memory, so a worker needs the
course environment installed but no view of the course folder: it never
opens the real gradebook, which only the coordinator writes.

nbgrader itself runs in a child process with a wall-clock limit on the whole
run; the kernel inside it runs in the sandbox (see
:mod:`course_tools.grading.execute`). Whatever goes wrong comes back as an
:class:`Outcome` with status ``"not graded"`` and the reason, never as a zero.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

from traitlets.config import Config

from course_tools.config import scratch_config
from course_tools.grading import execute
from course_tools.grading.status import FLAGGED, GRADED, NOT_GRADED



@dataclass
class Settings:
    """How submissions are graded: the same for every worker of a run."""

    fast: bool = True
    sandbox: bool = True
    cell_timeout: int = 300  # seconds one cell may run
    run_timeout: int = 1800  # seconds the whole grading of one submission may take
    memory_mib: int = 8192
    cpu_seconds: int = 1800
    processes: int = 256
    max_restarts: int = 3


@dataclass
class Kit:
    """What every task of one assignment shares: its gradebook entry and files."""

    assignment: str
    notebooks: list[str]  # notebook names without .ipynb
    gradebook: bytes  # an SQLite gradebook holding only this assignment (its cells, tests, checksums)
    files: dict[str, bytes] = field(default_factory=dict)  # the assignment's other files (data, images)


@dataclass
class Submission:
    student: str
    files: dict[str, bytes]  # the student's submitted folder, by relative path
    timestamp: str | None = None

    @property
    def digest(self) -> str:
        """sha256 over the submitted files: a changed submission is graded again."""
        h = hashlib.sha256()
        for name in sorted(self.files):
            h.update(name.encode() + b"\0" + hashlib.sha256(self.files[name]).digest())
        return h.hexdigest()


@dataclass
class Outcome:
    student: str
    status: str
    reason: str = ""
    digest: str = ""
    notebooks: dict[str, str] = field(default_factory=dict)  # name -> autograded notebook JSON
    scores: dict[str, list[float]] = field(default_factory=dict)  # grade_id -> [score, max_score]
    report: dict = field(default_factory=dict)  # kernel deaths, tampering, truncated output
    seconds: float = 0.0

    def to_json(self) -> dict:
        data = asdict(self)
        data.pop("notebooks")
        return data


def precheck(kit: Kit, submission: Submission) -> str:
    """Why the submission cannot be graded at all, or ''."""
    import nbformat

    for name in kit.notebooks:
        raw = submission.files.get(f"{name}.ipynb")
        if raw is None:
            found = sorted(n for n in submission.files if n.endswith(".ipynb")) or ["no notebook"]
            return (f"{name}.ipynb is missing from the submission (found: {', '.join(found)}); "
                    f"the notebook must keep its released name")
        try:
            nb = nbformat.reads(raw.decode("utf-8"), as_version=4)
            nbformat.validate(nb)
        except UnicodeDecodeError:
            return f"{name}.ipynb is not a text file"
        except Exception as exc:  # noqa: BLE001 (nbformat raises several unrelated types)
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            return f"{name}.ipynb is not a valid notebook (invalid JSON or structure): {first}"
    return ""


def grade(kit: Kit, submission: Submission, settings: Settings) -> Outcome:
    """Grade one submission; never raises for a bad submission."""
    started = time.monotonic()
    outcome = Outcome(submission.student, NOT_GRADED, digest=submission.digest)
    problem = precheck(kit, submission)
    if problem:
        outcome.reason = problem
        return outcome
    root = Path(tempfile.mkdtemp(prefix=f"grade-{kit.assignment}-"))
    try:
        _lay_out(root, kit, submission)
        _run_nbgrader(root, kit, submission, settings, outcome)
    finally:
        shutil.rmtree(root, ignore_errors=True)
        outcome.seconds = round(time.monotonic() - started, 2)
    return outcome


def _lay_out(root: Path, kit: Kit, submission: Submission) -> None:
    (root / "gradebook.db").write_bytes(kit.gradebook)
    source = root / "notebooks" / kit.assignment
    source.mkdir(parents=True)
    for rel, data in kit.files.items():
        _write(source, rel, data)
    folder = root / "submitted" / submission.student / kit.assignment
    folder.mkdir(parents=True)
    for rel, data in submission.files.items():
        _write(folder, rel, data)
    if submission.timestamp:
        (folder / "timestamp.txt").write_text(submission.timestamp)


def _write(folder: Path, rel: str, data: bytes) -> None:
    path = (folder / rel).resolve()
    if folder.resolve() not in path.parents:
        return  # a path such as ../../x never leaves the folder
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _run_nbgrader(root: Path, kit: Kit, submission: Submission, settings: Settings, outcome: Outcome) -> None:
    job = {"root": str(root), "assignment": kit.assignment, "student": submission.student,
           "settings": asdict(settings)}
    if multiprocessing.current_process().daemon:
        raise RuntimeError("grading workers must not be daemonic processes (they start one process per "
                           "submission): start dask workers with DASK_DISTRIBUTED__WORKER__DAEMON=False")
    receive, send = _CONTEXT.Pipe(duplex=False)
    child = _CONTEXT.Process(target=_child, args=(job, send), name=f"grade-{submission.student}")
    child.start()
    send.close()
    try:
        finished = receive.poll(settings.run_timeout)
        result = receive.recv() if finished else None
    except EOFError:  # the child died without a word
        result = {"ok": False, "error": f"the grading process died (exit code {child.exitcode})"}
    if result is None:
        child.kill()  # sandboxed kernels die with it (bwrap --die-with-parent)
        child.join()
        outcome.reason = f"grading took longer than the whole-run limit of {settings.run_timeout} s"
        return
    child.join(timeout=10)
    if child.is_alive():  # it has answered; whatever keeps it from exiting does not matter
        child.kill()
        child.join()
    if not result["ok"]:
        tail = str(result["error"]).strip().splitlines()[-12:]
        outcome.reason = "nbgrader could not grade it: " + " | ".join(tail)
        return
    folder = root / "autograded" / submission.student / kit.assignment
    report_path = root / "report.json"
    outcome.report = json.loads(report_path.read_text()) if report_path.is_file() else {}
    for name in kit.notebooks:
        path = folder / f"{name}.ipynb"
        if not path.is_file():
            outcome.reason = f"nbgrader produced no autograded copy of {name}.ipynb"
            return
        outcome.notebooks[name] = path.read_text()
    outcome.scores = result["scores"]
    tampered = outcome.report.get("tampered") or []
    if tampered:
        outcome.status = FLAGGED
        what = sorted({name for t in tampered for name in t["changed"]})
        outcome.reason = "replaced what the tests check with (" + ", ".join(what) + "): review before release"
    else:
        outcome.status = GRADED
        outcome.reason = _notes(outcome.report)


def _notes(report: dict) -> str:
    notes = []
    if report.get("kernel_deaths"):
        notes.append("kernel died in " + ", ".join(report["kernel_deaths"]) + " (restarted; marks above kept)")
    if report.get("not_run"):
        notes.append(f"{len(report['not_run'])} cells not run")
    if report.get("strays"):
        killed = sum(s["killed"] for s in report["strays"])
        notes.append(f"{killed} stray processes ended after " + ", ".join(s["cell"] for s in report["strays"]))
    if report.get("truncated"):
        notes.append("output cut in " + ", ".join(report["truncated"]))
    return "; ".join(notes)


def _child(job: dict, send: Connection) -> None:
    """In the grading process: autograde with nbgrader in the scratch course, send back the scores."""
    from nbgrader.api import Gradebook
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    os.setsid()  # its own session: nothing it starts can signal the worker
    settings = Settings(**job["settings"])
    os.environ["COURSE_FAST"] = "1" if settings.fast else "0"
    root, assignment, student = Path(job["root"]), job["assignment"], job["student"]
    try:
        config = grading_config(root, settings, report=root / "report.json")
        api = NbGraderAPI(CourseDirectory(config=config), config=config)
        result = api.autograde(assignment, student, force=True, create=True)
        if not result["success"]:
            send.send({"ok": False, "error": result.get("error") or result.get("log")})
            return
        with Gradebook(config.CourseDirectory.db_url) as gb:
            scores = {g.name: [float(g.score or 0), float(g.max_score or 0)]
                      for nb in gb.find_submission(assignment, student).notebooks for g in nb.grades}
        send.send({"ok": True, "scores": scores})
    except Exception as exc:  # noqa: BLE001 (reported as "not graded" with the reason)
        send.send({"ok": False, "error": f"{type(exc).__name__}: {exc}"})
    finally:
        # Exit at once: interpreter teardown (zmq contexts, atexit hooks of the kernel client)
        # can hang for a minute, and the answer has been sent.
        send.close()
        os._exit(0)


def grading_config(root: Path, settings: Settings, report: Path) -> Config:
    """The course's configuration, pointed at a scratch course in ``root`` and
    executing with :class:`course_tools.grading.execute.GradingExecute`."""
    from nbconvert.preprocessors import ClearMetadataPreprocessor
    from nbgrader.preprocessors import (AssignLatePenalties, CheckCellMetadata, IgnorePattern, LimitOutput,
                                        SaveAutoGrades)

    config = scratch_config(root)
    config.Autograde.autograde_preprocessors = [execute.GradingExecute, IgnorePattern, ClearMetadataPreprocessor,
                                                LimitOutput, SaveAutoGrades, AssignLatePenalties, CheckCellMetadata]
    ge = config.GradingExecute
    ge.timeout = settings.cell_timeout
    ge.use_sandbox = settings.sandbox
    ge.run_dir = str(root / ".kernel")
    ge.memory_mib, ge.cpu_seconds, ge.processes = settings.memory_mib, settings.cpu_seconds, settings.processes
    ge.max_restarts = settings.max_restarts
    ge.report_file = str(report)
    return config


def _preload() -> list[str]:
    """The modules every grading process needs, imported once in the fork server (about 2.5 s saved)."""
    import nbgrader.apps

    return [nbgrader.apps.__name__, execute.__name__, __name__]


_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload(_preload())
