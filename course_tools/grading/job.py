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
import resource
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

from traitlets.config import Config

from course_tools.config import quiet_library_warnings, scratch_config
from course_tools.layout import Course
from course_tools.grading import execute, zygote
from course_tools.grading.execute import ExecutionReport, merge_reports, read_report
from course_tools.grading.nbgrader_errors import explain, failure_text
from course_tools.grading.status import FLAGGED, GRADED, NOT_GRADED, clip
from course_utils.paths import EXECUTION_ENV, FAST_ENV


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
    warm_kernels: bool = True  # fork kernels from a process with the libraries imported (grading/zygote.py)


@dataclass
class Kit:
    """What every task of one assignment shares: its gradebook entry, files and reference values."""

    assignment: str
    notebooks: list[str]  # notebook names without .ipynb
    gradebook: bytes  # an SQLite gradebook holding only this assignment (its cells, tests, checksums)
    files: dict[str, bytes] = field(default_factory=dict)  # the assignment's other files (data, images)
    reference: dict[str, dict] | None = None  # notebook -> what the solution published; None: make it


@dataclass
class Submission:
    student: str
    files: dict[str, bytes]  # the student's submitted folder, by relative path
    timestamp: str | None = None
    problem: str = ""  # why the folder itself cannot be graded (found when it was read), or ""
    judge_only: tuple[str, ...] = ()  # for a selfcheck's mutant: run up to these test cells, judge only them

    @property
    def digest(self) -> str:
        """sha256 over the submitted files: a changed submission is graded again."""
        h = hashlib.sha256(self.problem.encode())
        for name in sorted(self.files):
            h.update(name.encode("utf-8", "backslashreplace") + b"\0" + hashlib.sha256(self.files[name]).digest())
        return h.hexdigest()


@dataclass
class Outcome:
    student: str
    status: str
    reason: str = ""
    digest: str = ""
    notebooks: dict[str, str] = field(default_factory=dict)  # name -> autograded notebook JSON
    scores: dict[str, list[float]] = field(default_factory=dict)  # grade_id -> [score, max_score]
    report: ExecutionReport = field(default_factory=ExecutionReport)  # kernel deaths, truncated output, verdicts
    reference: dict[str, dict] = field(default_factory=dict)  # a reference run's published values
    seconds: float = 0.0

    def to_json(self) -> dict:
        data = asdict(self)
        data.pop("notebooks")
        data.pop("reference")
        return data


# The grading job's own files in its scratch course, beside nbgrader's folders: what the grading
# process is given and what it leaves (``{notebook}`` is each notebook's name).
REFERENCE_IN = "reference-{notebook}.json"  # the solution's values, to judge against
REFERENCE_OUT = "reference-out-{notebook}.json"  # a reference run's values
REPORT = "report-{notebook}.json"  # each notebook's ExecutionReport
KERNEL_RUN_DIR, KERNEL_WORK_DIR = ".kernel", ".work"  # a cold kernel's sockets and working folder


@dataclass(frozen=True)
class WarmKernels:
    """Where a worker's warm-kernel process (:mod:`course_tools.grading.zygote`) forks kernels: the
    folders its sandbox has mounted, its socket and the user its kernels run as. Sent to the
    grading process, which points :class:`~course_tools.grading.execute.GradingExecute` at it."""

    work_dir: str
    run_dir: str
    socket: str
    uid: int | None

    @classmethod
    def of(cls, warm: zygote.Zygote) -> "WarmKernels":
        return cls(str(warm.work), str(warm.run), warm.socket, warm.uid)


@dataclass(frozen=True)
class Job:
    """What the grading process is sent: one submission laid out in the scratch course at ``root``."""

    root: str
    assignment: str
    student: str
    settings: Settings
    reference_run: bool  # run the solution for its values instead of judging
    judge_only: tuple[str, ...] = ()
    warm: WarmKernels | None = None


@dataclass(frozen=True)
class Answer:
    """What the grading process sends back: the scores nbgrader saved, or why it could not grade."""

    ok: bool
    error: str = ""  # nbgrader's failure (its log and error), for :func:`explain`
    scores: dict[str, list[float]] = field(default_factory=dict)  # grade_id -> [score, max_score]
    seconds: float = 0.0
    peak_rss_mib: float | None = None


def precheck(kit: Kit, submission: Submission) -> str:
    """Why the submission cannot be graded at all, or ''. Never quotes a file's contents."""
    import nbformat

    if submission.problem:
        return submission.problem
    for name in kit.notebooks:
        raw = submission.files.get(f"{name}.ipynb")
        if raw is None:
            found = sorted(n for n in submission.files if n.endswith(".ipynb")) or ["no notebook"]
            return (f"{name}.ipynb is missing from the submission (found: {', '.join(found)}); "
                    f"the notebook must keep its released name")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return f"{name}.ipynb is not a text file (it is not UTF-8)"
        try:
            json.loads(text)
        except ValueError as exc:
            where = f" at line {exc.lineno}, column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
            return f"{name}.ipynb is not a valid notebook: it is not valid JSON{where} (was it edited by hand?)"
        try:
            nbformat.validate(nbformat.reads(text, as_version=4))
        except Exception as exc:  # noqa: BLE001 (nbformat raises several unrelated types)
            return f"{name}.ipynb is not a valid notebook: its structure is not nbformat 4 ({type(exc).__name__})"
    return ""


def grade(kit: Kit, submission: Submission, settings: Settings) -> Outcome:
    """Grade one submission; never raises for a bad submission.

    With ``kit.reference`` None, ``submission`` is the solution: it is run to
    make the reference values (``Outcome.reference``) instead of being judged.
    """
    started = time.monotonic()
    outcome = Outcome(submission.student, NOT_GRADED, digest=submission.digest)
    problem = precheck(kit, submission)
    if problem:
        outcome.reason = problem
        return outcome
    root = Path(tempfile.mkdtemp(prefix=f"grade-{kit.assignment}-"))
    warm = _warm_kernels(settings)
    try:
        course = Course(root, scratch_config(root))
        _lay_out(course, kit, submission)
        _run_nbgrader(course, kit, submission, settings, outcome, warm)
    except Exception as exc:  # noqa: BLE001 (whatever it is, it is this submission's status, not the batch's)
        outcome.status = NOT_GRADED
        outcome.reason = clip(f"the grader failed on this submission: {type(exc).__name__}: {exc}")
    finally:
        shutil.rmtree(root, ignore_errors=True)
        if warm is not None:
            _reset(warm)  # no process, /tmp file or working file of this submission meets the next one
        outcome.seconds = round(time.monotonic() - started, 2)
    return outcome


def _warm_kernels(settings: Settings) -> zygote.Zygote | None:
    """This worker's warm-kernel process, emptied for a new submission; None where there is none
    (no sandbox, or it will not start: kernels then start the usual way)."""
    if not (settings.sandbox and settings.warm_kernels):
        return None
    from course_tools.grading import sandbox

    limits = sandbox.Limits(memory_mib=settings.memory_mib, cpu_seconds=settings.cpu_seconds,
                            processes=settings.processes)
    env = {**os.environ, FAST_ENV: "1" if settings.fast else "0", EXECUTION_ENV: "autograde"}
    for _ in range(2):
        try:
            warm = zygote.warm(limits, env)
            warm.reset()
            return warm
        except zygote.ZygoteGone:
            continue
    return None


def _reset(warm: zygote.Zygote) -> None:
    try:
        warm.reset()
    except zygote.ZygoteGone:
        warm.close()  # the next submission starts a new one


def _lay_out(course: Course, kit: Kit, submission: Submission) -> None:
    """The scratch course: the assignment's gradebook entry and files, the submission, the reference values."""
    course.gradebook_file().write_bytes(kit.gradebook)
    source = course.source(kit.assignment)
    source.mkdir(parents=True)
    for rel, data in kit.files.items():
        _write(source, rel, data)
    folder = course.submitted(submission.student, kit.assignment)
    folder.mkdir(parents=True)
    for rel, data in submission.files.items():
        _write(folder, rel, data)
    if submission.timestamp:
        (folder / "timestamp.txt").write_text(submission.timestamp)
    for name, values in (kit.reference or {}).items():
        (course.root / REFERENCE_IN.format(notebook=name)).write_text(json.dumps(values))


def _write(folder: Path, rel: str, data: bytes) -> None:
    path = (folder / rel).resolve()
    if folder.resolve() not in path.parents:
        return  # a path such as ../../x never leaves the folder
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _run_nbgrader(course: Course, kit: Kit, submission: Submission, settings: Settings, outcome: Outcome,
                  warm: zygote.Zygote | None) -> None:
    root = course.root
    job = Job(str(root), kit.assignment, submission.student, settings, reference_run=kit.reference is None,
              judge_only=tuple(submission.judge_only), warm=WarmKernels.of(warm) if warm is not None else None)
    if multiprocessing.current_process().daemon:
        raise RuntimeError("grading workers must not be daemonic processes (they start one process per "
                           "submission): start dask workers with DASK_DISTRIBUTED__WORKER__DAEMON=False")
    receive, send = _CONTEXT.Pipe(duplex=False)
    child = _CONTEXT.Process(target=_child, args=(job, send), name=f"grade-{submission.student}")
    child.start()
    send.close()
    try:
        finished = receive.poll(settings.run_timeout)
        answer: Answer | None = receive.recv() if finished else None
    except EOFError:  # the child died without a word
        answer = Answer(False, error=f"the grading process died (exit code {child.exitcode})")
    if answer is None:
        child.kill()  # sandboxed kernels die with it (bwrap --die-with-parent)
        child.join()
        outcome.reason = f"grading took longer than the whole-run limit of {settings.run_timeout} s"
        return
    outcome.report["peak_rss_mib"] = answer.peak_rss_mib
    child.join(timeout=10)
    if child.is_alive():  # it has answered; whatever keeps it from exiting does not matter
        child.kill()
        child.join()
    if not answer.ok:
        outcome.reason = "nbgrader could not grade it: " + explain(answer.error)
        return
    folder = course.autograded(submission.student, kit.assignment)
    for name in kit.notebooks:
        path = folder / f"{name}.ipynb"
        if not path.is_file():
            outcome.reason = f"nbgrader produced no autograded copy of {name}.ipynb"
            return
        outcome.notebooks[name] = path.read_text()
        outcome.report = merge_reports(outcome.report, read_report(root / REPORT.format(notebook=name)))
        made = root / REFERENCE_OUT.format(notebook=name)
        if made.is_file():
            outcome.reference[name] = json.loads(made.read_text())
    outcome.scores = answer.scores
    outcome.status, outcome.reason = verdict(outcome.report)
    seconds = outcome.report.setdefault("seconds", {})
    seconds["nbgrader in all"] = round(answer.seconds, 2)
    for key, value in seconds.items():
        seconds[key] = round(value, 2)


def verdict(report: ExecutionReport) -> tuple[str, str]:
    """The status and the reason a TA reads, from what the grading saw."""
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
    if report.get("dropped_values"):
        notes.append("published values over the limit dropped in " + ", ".join(report["dropped_values"]))
    if report.get("unjudged"):
        notes.append("could not judge " + "; ".join(report["unjudged"]))
    if report.get("surplus"):
        what = "; ".join(report["surplus"][:5])
        return FLAGGED, clip(("the submission published grading messages itself (" + what + "): its scores "
                              "come only from values judged outside its kernel, but look at what it tried; "
                              + "; ".join(notes)).rstrip("; "))
    return GRADED, clip("; ".join(notes))


def _child(job: Job, send: Connection) -> None:
    """In the grading process: autograde with nbgrader in the scratch course, send back the scores."""
    from nbgrader.api import Gradebook
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    os.setsid()  # its own session: nothing it starts can signal the worker
    quiet_library_warnings()  # a fork server's child does not inherit the caller's warning filters
    os.environ[FAST_ENV] = "1" if job.settings.fast else "0"
    try:
        started = time.perf_counter()
        config = grading_config(Path(job.root), job.settings, reference_run=job.reference_run,
                                judge_only=list(job.judge_only), warm=job.warm)
        api = NbGraderAPI(CourseDirectory(config=config), config=config)
        result = api.autograde(job.assignment, job.student, force=True, create=True)
        seconds = time.perf_counter() - started
        if not result["success"]:
            send.send(Answer(False, error=failure_text(result), peak_rss_mib=_peak_rss_mib()))
            return
        with Gradebook(config.CourseDirectory.db_url) as gb:
            scores = {g.name: [float(g.score or 0), float(g.max_score or 0)]
                      for nb in gb.find_submission(job.assignment, job.student).notebooks for g in nb.grades}
        send.send(Answer(True, scores=scores, seconds=seconds, peak_rss_mib=_peak_rss_mib()))
    except Exception as exc:  # noqa: BLE001 (reported as "not graded" with the reason)
        send.send(Answer(False, error=clip(f"{type(exc).__name__}: {exc}"), peak_rss_mib=_peak_rss_mib()))
    finally:
        # Exit at once: interpreter teardown (zmq contexts, atexit hooks of the kernel client)
        # can hang for a minute, and the answer has been sent.
        send.close()
        os._exit(0)


def _peak_rss_mib() -> float:
    """The most memory this grading process held at once (it holds what the kernel sent), in MiB."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux counts KiB


def grading_config(root: Path, settings: Settings, reference_run: bool = False,
                   judge_only: list[str] | None = None, warm: WarmKernels | None = None) -> Config:
    """The course's configuration, pointed at a scratch course in ``root``: its autograding pipeline as
    ``nbgrader_config.py`` defines it (what ``nbgrader autograde`` runs), whose
    :class:`course_tools.grading.execute.GradingExecute` judges against ``reference-<notebook>.json``
    or, for a reference run, writes ``reference-out-<notebook>.json``."""
    config = scratch_config(root)
    steps = list(config.Autograde.get("autograde_preprocessors") or [])
    if execute.GradingExecute not in steps:
        raise RuntimeError("the course's nbgrader_config.py does not autograde with "
                           "course_tools.grading.execute.GradingExecute: no submission can be graded safely")
    ge = config.GradingExecute
    ge.timeout = settings.cell_timeout
    ge.use_sandbox = settings.sandbox
    ge.run_dir, ge.work_dir = str(root / KERNEL_RUN_DIR), str(root / KERNEL_WORK_DIR)
    if warm is not None:  # the warm-kernel process's folders: its sandbox has them mounted
        ge.work_dir, ge.run_dir, ge.zygote_socket = warm.work_dir, warm.run_dir, warm.socket
        ge.kernel_uid = -1 if warm.uid is None else warm.uid
    ge.memory_mib, ge.cpu_seconds, ge.processes = settings.memory_mib, settings.cpu_seconds, settings.processes
    ge.max_restarts = settings.max_restarts
    ge.report_file = str(root / REPORT)
    ge.judge_only = list(judge_only or [])
    if reference_run:
        ge.reference_out = str(root / REFERENCE_OUT)
    else:
        ge.reference_file = str(root / REFERENCE_IN)
    return config


def _preload() -> list[str]:
    """The modules every grading process needs, imported once in the fork server (about 2.5 s saved)."""
    import nbgrader.apps

    return [nbgrader.apps.__name__, execute.__name__, __name__]


_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload(_preload())
