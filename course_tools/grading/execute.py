"""nbgrader's Execute step, hardened for code nobody has reviewed, and judging outside the kernel.

Plain nbgrader runs hidden tests in the student's kernel and scores a test
cell by what that kernel reports (no error, or a number it displays), loses
every mark of a notebook whose kernel dies, and keeps every byte a cell
prints. This subclass:

- runs the kernel in the sandbox (:mod:`course_tools.grading.sandbox`), in a
  working folder of its own that holds the submission's files but no
  notebook (the one being graded, hidden tests restored, lies elsewhere);
- runs the notebook in two passes (:mod:`course_tools.grading.judge`):
  first every cell as the student saw it, hidden tests removed; then each
  test cell again in its student version (:mod:`course_tools.testcells`), whose published values are
  judged in this process against the reference run of the solution. A test
  cell's outputs then hold what the student's visible checks printed and,
  if it failed, one error with the test's own message: nothing the kernel
  displays can score, and no hidden test text ever reaches an output;
- when the kernel dies, marks that cell, starts a new kernel, re-runs the
  cells above (so later answers see their imports and data) and goes on:
  marks earned before the crash are kept;
- caps every kind of output a cell sends (streams, displays, display
  updates, widget messages), per cell and for the whole notebook, keeps
  nothing of a re-run after a kernel death, caps the values a test cell and
  the notebook publish, and ends every process a cell leaves behind: what
  this process holds for a submission is bounded whatever its kernel sends.

With ``reference_out`` set it runs the solution instead and writes what its
expectations published, for :mod:`course_tools.grading.reference`.
What happened is written to :attr:`GradingExecute.report_file` as an :class:`ExecutionReport`,
defined here for the grading job that reads it.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat import NotebookNode
from nbformat.v4 import new_code_cell, new_output
from nbgrader.preprocessors import Execute
from traitlets import Bool, Int, List, Unicode

from course_tools.assignments import grade_id, is_test_cell
from course_tools import testcells
from course_tools.grading import judge, sandbox, status, zygote
from course_tools.grading.kernels import SandboxedKernelManager
from course_utils.checks import EXPECT_MIME, Published, published_cost, read_published, stored_list
from course_utils.paths import JUDGE_ENV

QUEUED_MESSAGES = 16  # messages from the kernel waiting in this process, at most (zmq's default is 1000)
# Every kernel of the course starts with these (nbgrader_config.py gives them to nbgrader's Execute):
# history in memory, start-up notes unprinted.
KERNEL_ARGS = ("--HistoryManager.hist_file=:memory:", "--IPKernelApp.log_level=ERROR")
_NOT_OUTPUT = {"status", "execute_input", "shutdown_reply"}


# ---------------------------------------------------------------- the report of one notebook's grading


@dataclass(frozen=True)
class TestNote:
    """A remark about one test cell (a message it published that no test writes, a cell that cannot be
    judged). The report keeps it as the text a TA reads, ``"<grade id>: <what>"`` (:meth:`text`);
    :meth:`parse` gives back the test it names (grade ids hold no ": ")."""

    test: str
    what: str

    def text(self) -> str:
        return f"{self.test}: {self.what}"

    @classmethod
    def parse(cls, text: str) -> "TestNote":
        test, _, what = text.partition(": ")
        return cls(test, what)


class Stray(TypedDict):
    cell: str  # grade id of the cell after which processes were ended
    killed: int


class ExecutionReport(TypedDict, total=False):
    """What grading one notebook saw: :class:`GradingExecute` writes it to its ``report_file``
    (:func:`write_report`), the grading job reads it back (:func:`read_report`), joins the notebooks'
    (:func:`merge_reports`), adds its own measures and returns it; the status record keeps it
    (``"report"``, with ``"published"`` moved beside it)."""

    kernel_deaths: list[str]  # grade ids of the cells the kernel died in
    truncated: list[str]  # cells whose output was cut
    not_run: list[str]
    strays: list[Stray]
    dropped_values: list[str]  # test cells whose published values went over the limit
    judged: dict[str, bool]  # test cell -> passed
    surplus: list[str]  # TestNote texts: messages the submission published itself
    unjudged: list[str]  # TestNote texts: test cells that could not be judged, and why
    warm: bool  # the kernel was forked from a warm-kernel process
    seconds: dict[str, float]  # where the time went
    published: dict[str, list[Published]]  # test cell -> its published values (the judge's inputs)
    peak_rss_mib: float | None  # the grading job's: the most memory its grading process held


def new_report(warm: bool) -> ExecutionReport:
    return ExecutionReport(kernel_deaths=[], truncated=[], not_run=[], strays=[], dropped_values=[], judged={},
                           surplus=[], unjudged=[], warm=warm,
                           seconds={"kernel start": 0.0, "cells": 0.0, "judging": 0.0})


def write_report(path: Path, report: ExecutionReport) -> None:
    path.write_text(json.dumps(report, indent=1))


def read_report(path: Path) -> ExecutionReport:
    """A report :func:`write_report` wrote; an empty one where there is none (the notebook never ran)."""
    return ExecutionReport(**json.loads(path.read_text())) if path.is_file() else ExecutionReport()


def merge_reports(a: ExecutionReport, b: ExecutionReport) -> ExecutionReport:
    """Two notebooks' reports as one (lists joined, dicts merged, anything else the later's)."""
    out: dict[str, Any] = dict(a)
    for key, value in b.items():
        if isinstance(value, list):
            out[key] = [*out.get(key, []), *value]
        elif isinstance(value, dict):
            out[key] = {**out.get(key, {}), **value}
        else:
            out[key] = value
    return ExecutionReport(**out)


class GradingExecute(Execute):
    """Execute with a sandboxed kernel, two passes judged outside the kernel, restarts and caps."""

    use_sandbox = Bool(True, help="start kernels in the sandbox").tag(config=True)
    run_dir = Unicode("", help="writable folder for the kernel's sockets (default: a new temporary one)").tag(config=True)
    work_dir = Unicode("", help="the kernel's working folder (default: a new temporary one)").tag(config=True)
    memory_mib = Int(sandbox.Limits.memory_mib).tag(config=True)
    cpu_seconds = Int(sandbox.Limits.cpu_seconds).tag(config=True)
    processes = Int(sandbox.Limits.processes).tag(config=True)
    max_output_bytes = Int(2_000_000, help="output kept per cell, all message types together").tag(config=True)
    max_notebook_output_bytes = Int(20_000_000, help="output kept for the whole notebook").tag(config=True)
    max_published_cell_bytes = Int(2 * judge.MAX_PAYLOAD, help="published values kept per test cell").tag(config=True)
    max_published_bytes = Int(8 * judge.MAX_PAYLOAD, help="published values kept for the notebook").tag(config=True)
    max_record_bytes = Int(2_000_000, help="published values kept in the status record").tag(config=True)
    max_restarts = Int(3, help="kernel restarts before the remaining cells are given up").tag(config=True)
    report_file = Unicode("", help="JSON file for what happened").tag(config=True)
    reference_file = Unicode("", help="the solution's published values to judge against "
                                      "(default: the course's grading/<assignment>/reference.json)").tag(config=True)
    reference_out = Unicode("", help="run the solution and write its published values here").tag(config=True)
    zygote_socket = Unicode("", help="a warm-kernel process to fork kernels from (grading/zygote.py)").tag(config=True)
    kernel_uid = Int(-1, help="with a warm-kernel process: the user its kernels run as").tag(config=True)
    judge_only = List(Unicode(), help="grade ids of the only test cells to judge; the cells after the last of "
                                      "them are not run (a selfcheck's mutant needs no more)").tag(config=True)

    # A starved kernel (a fork bomb, a busy machine) may answer a cell before its last output arrives:
    # wait longer for it, and never let the wait end the grading of the whole notebook.
    raise_on_iopub_timeout = Bool(False).tag(config=True)
    iopub_timeout = Int(30).tag(config=True)

    _side_run = False  # True while replaying cells or judging: their output is not the cell's own
    _collecting: int | None = None  # the test cell whose published values are being collected

    def create_kernel_manager(self):  # type: ignore[override]
        if self.use_sandbox:
            self.kernel_manager_class = SandboxedKernelManager
        km = super().create_kernel_manager()
        if isinstance(km, SandboxedKernelManager):
            limits = sandbox.Limits(memory_mib=self.memory_mib, cpu_seconds=self.cpu_seconds,
                                    processes=self.processes)
            km.policy = sandbox.Policy(writable=[self._work, self._run], limits=limits,
                                       uid=self.kernel_uid if self.zygote_socket and self.kernel_uid >= 0 else None)
            km.zygote = self.zygote_socket or None
        km.client = functools.partial(km.client, context=_bounded_context())
        return km

    # ------------------------------------------------------------ the two passes

    def preprocess(self, nb: NotebookNode, resources: Any = None, km: Any = None):  # type: ignore[override]
        from nbclient.client import NotebookClient

        NotebookClient.__init__(self, nb, km)
        self.reset_execution_trackers()
        self._check_assign_resources(resources)
        self.extra_arguments = [*KERNEL_ARGS, *(a for a in self.extra_arguments if a not in KERNEL_ARGS)]
        self._report = new_report(warm=bool(self.zygote_socket))
        self._output_bytes: dict[int, int] = {}  # output each cell sent, kept or not
        self._kept_bytes = 0  # output kept in the notebook, all cells together
        self._cut: set[int] = set()  # cells whose output was cut (marked once)
        self._published: dict[int, list[Published]] = {}
        self._published_bytes: dict[int, int] = {}  # what each test cell's kept values cost
        self._unreadable: set[int] = set()
        self._record_bytes = 0  # test cells that published a value no expectation could write
        self._errors: dict[int, str] = {}  # test cells whose judged run raised or died: why
        self._judge_deaths = 0
        self._stray_publishers: set[int] = set()
        notebook_folder = self.resources.get("metadata", {}).get("path") or "."
        temporary = self._make_folders(Path(notebook_folder))
        tests = [i for i, cell in enumerate(self.nb.cells) if is_test_cell(cell)]
        full = {i: self.nb.cells[i].source for i in tests}
        judged_code = self._judged_code(full)
        previous = os.environ.get(JUDGE_ENV)
        os.environ[JUDGE_ENV] = "1"  # the kernel inherits it: expectations publish their values
        try:
            for i in tests:
                self.nb.cells[i].source = testcells.visible_part(full[i])
            steps = self._plan(judged_code)
            self._run_steps(steps, judged_code)
        finally:
            for i in tests:
                self.nb.cells[i].source = full[i]
            self.resources.setdefault("metadata", {})["path"] = notebook_folder
            if previous is None:
                os.environ.pop(JUDGE_ENV, None)
            else:
                os.environ[JUDGE_ENV] = previous
            for folder in temporary:
                shutil.rmtree(folder, ignore_errors=True)
        if self.reference_out:
            self._write_reference(tests)
        else:
            self._apply_verdicts(tests)
        self.set_widgets_metadata()
        if self.report_file:
            write_report(self._for_notebook(self.report_file), self._report)
        return self.nb, self.resources

    def _for_notebook(self, template: str) -> Path:
        """A configured path, with ``{notebook}`` replaced by the name of the notebook being graded."""
        return Path(template.format(notebook=self.resources.get("nbgrader", {}).get("notebook", "notebook")))

    def _make_folders(self, notebook_folder: Path) -> list[Path]:
        """The kernel's working folder (the submission's files, no notebook) and socket folder."""
        made = []
        self._work = Path(self.work_dir) if self.work_dir else Path(tempfile.mkdtemp(prefix="grading-work-"))
        self._run = Path(self.run_dir) if self.run_dir else Path(tempfile.mkdtemp(prefix="grading-kernel-"))
        made += [p for p, given in ((self._work, self.work_dir), (self._run, self.run_dir)) if not given]
        self._work.mkdir(parents=True, exist_ok=True)
        zygote.empty(self._work)  # nothing of a previous notebook stays; the folder may be mounted
        for path in sorted(notebook_folder.rglob("*")):
            rel = path.relative_to(notebook_folder)
            if path.is_symlink() or not path.is_file() or path.suffix == ".ipynb" or rel.name == "timestamp.txt" \
                    or ".ipynb_checkpoints" in rel.parts:
                continue
            (self._work / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, self._work / rel)
        self.resources.setdefault("metadata", {})["path"] = str(self._work)
        return made

    def _plan(self, judged_code: dict[int, str]) -> list[tuple[str, int]]:
        """Every cell in order, then every test cell judged; with :attr:`judge_only`, the cells up
        to the last of those test cells, then only those judged (the rest is reported not run)."""
        cells, judged = list(range(len(self.nb.cells))), list(judged_code)
        if self.judge_only:
            judged = [i for i in judged if grade_id(self.nb.cells[i], i) in self.judge_only]
            last = max(judged, default=-1)
            self._give_up([("cell", i) for i in cells[last + 1:]], "only the tests a selfcheck needs were run")
            cells = cells[: last + 1]
        return [("cell", i) for i in cells] + [("judge", i) for i in judged]

    def _judged_code(self, full: dict[int, str]) -> dict[int, str]:
        """What the second pass runs for each test cell (the student version, or the whole cell
        for the reference run). A cell that cannot be turned into its student version fails."""
        code = {}
        for i, source in full.items():
            if self.reference_out:
                code[i] = source
                continue
            try:
                code[i] = testcells.student_version(source)
            except testcells.UnjudgeableCell as exc:
                self._report["unjudged"].append(TestNote(grade_id(self.nb.cells[i], i), str(exc)).text())
        return code

    def _run_steps(self, steps: list[tuple[str, int]], judged_code: dict[int, str]) -> None:
        """Run the steps in order in one kernel, restarting it after a crash (the first pass's
        cells above are re-run, outputs discarded) up to :attr:`max_restarts` times."""
        crashed: list[int] = []
        start = 0
        while start < len(steps):
            started = time.perf_counter()
            with self.setup_kernel():
                self._kernel_info()
                self._report["seconds"]["kernel start"] += time.perf_counter() - started
                replay = [i for kind, i in steps[:start] if kind == "cell" and i not in crashed]
                if not self._replay(replay):
                    self._give_up(steps[start:], "the kernel died again while the cells above were re-run")
                    return
                died_at = self._run_from(steps, start, judged_code)
            if died_at is None:
                return
            kind, index = steps[died_at]
            if kind == "cell":
                crashed.append(index)
                self._mark_death(index)
            else:
                self._errors[index] = "the kernel died while this test ran"
                self._judge_deaths += 1
            start = died_at + 1
            deaths = len(crashed) + self._judge_deaths
            if deaths > self.max_restarts:
                self._give_up(steps[start:], f"the kernel died {deaths} times")
                return

    def _run_from(self, steps: list[tuple[str, int]], start: int, judged_code: dict[int, str]) -> int | None:
        """Run steps from ``start`` on; the position of the step the kernel died in, or None."""
        for position in range(start, len(steps)):
            kind, index = steps[position]
            cell = self.nb.cells[index]
            started = time.perf_counter()
            try:
                if kind == "cell":
                    self.preprocess_cell(cell, self.resources, index)
                else:
                    self._collect(index, judged_code[index])
                self._end_strays(index)
            except DeadKernelError:
                return position
            except CellTimeoutError as exc:  # the kernel stopped answering: this cell's loss only
                self._end_strays(index)
                if kind == "cell":
                    cell.outputs.append(new_output("error", ename="CellTimeoutError", evalue=str(exc).splitlines()[0],
                                                   traceback=[]))
                else:
                    self._errors.setdefault(index, "the kernel stopped answering while this test ran")
            finally:
                self._report["seconds"]["cells" if kind == "cell" else "judging"] += time.perf_counter() - started
        return None

    def _replay(self, indices: list[int]) -> bool:
        """Re-run code cells in a fresh kernel, outputs discarded. False if it died."""
        for index in indices:
            cell = self.nb.cells[index]
            if cell.cell_type != "code":
                continue
            try:
                self._side_execute(new_code_cell(cell.source), index)
            except DeadKernelError:
                return False
        return True

    def _collect(self, index: int, code: str) -> None:
        """Run a test cell's judged code, keeping only what its expectations publish."""
        self._published[index], self._published_bytes[index] = [], 0
        self._collecting = index
        try:
            self._side_execute(new_code_cell(code), index)
        finally:
            self._collecting = None

    def _side_execute(self, cell: NotebookNode, index: int) -> None:
        """Run a cell that is not part of the notebook (a replay or a judged test)."""
        original = self.nb.cells[index]
        self._side_run = True
        try:
            self.execute_cell(cell, index, store_history=False)
        finally:
            self._side_run = False
            self.nb.cells[index] = original  # nbclient stores the executed cell at its index

    def _kernel_info(self) -> None:
        """The kernel's language info into the notebook's metadata, unless it is oversized."""
        info = self.wait_for_reply(self.kc.kernel_info())
        language = (info or {}).get("content", {}).get("language_info")
        if isinstance(language, dict) and len(json.dumps(language, default=str)) <= 10_000:
            self.nb.metadata["language_info"] = language

    # ------------------------------------------------------------ verdicts

    def _reference(self) -> dict[str, list[Published]]:
        path = self._for_notebook(self.reference_file) if self.reference_file else self._course_reference()
        if not path.is_file():
            raise RuntimeError(f"no reference values at {path}: run `course release` (it computes them; if it "
                               "says a test cell makes no checks.expect, run `course convert "
                               f"{self.resources.get('nbgrader', {}).get('assignment', '<assignment>')}` (or "
                               "rewrite the test cell with checks.expect) first)")
        return {gid: stored_list(values) for gid, values in json.loads(path.read_text())["cells"].items()}

    def _course_reference(self) -> Path:
        from course_tools.layout import Course

        root = Path(self.config.CourseDirectory.get("root") or ".")
        return Course(root, self.config).reference_file(self.resources["nbgrader"]["assignment"])

    def _apply_verdicts(self, tests: list[int]) -> None:
        reference = self._reference()
        for i in tests:
            cell, gid = self.nb.cells[i], grade_id(self.nb.cells[i], i)
            published = self._published.get(i, [])
            verdict = judge.judge(reference.get(gid, []), published)
            self._report["judged"][gid] = verdict.passed
            self._keep_for_rejudge(gid, published)
            labels = judge.surplus(reference.get(gid, []), published)
            self._report["surplus"] += [TestNote(gid, status.quote(label)).text() for label in labels[:10]]
            if len(labels) > 10:
                self._report["surplus"].append(TestNote(gid, f"{len(labels) - 10} more messages").text())
            stopped = any(o.get("output_type") == "error" for o in cell.outputs)
            cell.outputs = [_neutral(o, judged_right=verdict.passed) for o in cell.outputs]
            if not verdict.passed:
                message = verdict.message if verdict.reached or not stopped else \
                    f"{verdict.message} (not checked: the test stopped at the error above)"
                cell.outputs.append(new_output("error", ename="TestFailed", evalue=message,
                                               traceback=[f"TestFailed: {message}"]))
        notes = [TestNote(grade_id(self.nb.cells[i], i), "published outside its hidden tests")
                 for i in self._stray_publishers]
        notes += [TestNote(grade_id(self.nb.cells[i], i), "published a value no expectation writes (malformed or "
                           "oversized)") for i in sorted(self._unreadable)]
        self._report["surplus"] += [note.text() for note in notes]

    def _keep_for_rejudge(self, gid: str, published: list[Published]) -> None:
        """A test's published values into the report (the judge's inputs, for `course rejudge`), while
        the report's values stay under :attr:`max_record_bytes`; a test left out is graded again
        instead of rejudged (its values are missing)."""
        kept = self._report.setdefault("published", {})
        size = sum(len(p["label"]) + published_cost(json.dumps(p["value"])) for p in published)
        if self._record_bytes + size <= self.max_record_bytes:
            self._record_bytes += size
            kept[gid] = published

    def _write_reference(self, tests: list[int]) -> None:
        cells = {grade_id(self.nb.cells[i], i): self._published.get(i, []) for i in tests}
        errors = {grade_id(self.nb.cells[i], i): e for i, e in self._errors.items()}
        self._for_notebook(self.reference_out).write_text(json.dumps({"cells": cells, "errors": errors}))

    # ------------------------------------------------------------ messages from the kernel

    def process_message(self, msg: dict, cell: NotebookNode, cell_index: int):  # type: ignore[override]
        """Route every message: published values of a judged test to the judge, nothing else of it
        kept; everything else counted against the cell's output cap, whatever its type."""
        msg_type = msg["msg_type"]
        if not isinstance(msg.get("content"), dict):  # a forged message: nothing in it is output
            return None
        if msg_type in _NOT_OUTPUT:
            return super().process_message(msg, cell, cell_index)
        if cell_index in self._cut and self._collecting is None and not self._side_run:
            return None  # over its cap already: not even measured
        if self._collecting is not None:
            self._take_published(msg, self._collecting)
            return None
        if _published_value(msg) is not None:
            if not self._side_run:
                self._stray_publishers.add(cell_index)
            return None
        if self._side_run:  # a re-run of the cells above after a kernel death: nothing of it is kept
            return None
        return self._keep_within_caps(msg, cell, cell_index)

    def _keep_within_caps(self, msg: dict, cell: NotebookNode, cell_index: int):  # noqa: ANN202
        """Keep an output message (a stream, a display or its update, widget state) while the cell and
        the notebook are under their caps; the first message over a cap leaves a marker instead."""
        size = len(json.dumps(msg.get("content", {}), default=str))
        size += sum(memoryview(b).nbytes for b in msg.get("buffers") or [])
        used = self._output_bytes.get(cell_index, 0)
        self._output_bytes[cell_index] = used + size
        if used + size <= self.max_output_bytes and self._kept_bytes + size <= self.max_notebook_output_bytes:
            self._kept_bytes += size
            return super().process_message(msg, cell, cell_index)
        if cell_index not in self._cut:
            self._cut.add(cell_index)
            self._report["truncated"].append(grade_id(self.nb.cells[cell_index], cell_index))
            why = (f"after {self.max_output_bytes // 1000} kB" if used + size > self.max_output_bytes else
                   f"because the notebook's outputs reached {self.max_notebook_output_bytes // 1_000_000} MB")
            cell.outputs.append(new_output("stream", name="stderr", text=f"\n[output cut by the grader {why}]\n"))
        return None

    def _take_published(self, msg: dict, index: int) -> None:
        """Keep a value the judged test published, within the test cell's and the notebook's budget
        (a value past either is dropped, so its expectation fails); remember the test's first error."""
        raw = _published_value(msg)
        if raw is not None:
            gid = grade_id(self.nb.cells[index], index)
            spent, used = published_cost(raw), self._published_bytes.get(index, 0)
            if used + spent > self.max_published_cell_bytes \
                    or sum(self._published_bytes.values()) + spent > self.max_published_bytes:
                if gid not in self._report["dropped_values"]:
                    self._report["dropped_values"].append(gid)
                return  # not even parsed: a flood costs as little as it can
            payload = read_published(raw)
            if payload is None:  # the course's encoder never sends one
                self._unreadable.add(index)
                return
            self._published_bytes[index] = used + spent
            self._published[index].append(payload)
        elif msg["msg_type"] == "error" and index not in self._errors:
            self._errors[index] = f"{msg['content'].get('ename', 'Error')}: {msg['content'].get('evalue', '')}"[:500]

    # ------------------------------------------------------------ crashes and strays

    def _end_strays(self, index: int) -> None:
        """End every process of the sandbox except the kernel: whatever a cell started, however it
        detached (double forks, new sessions), is a descendant of the sandbox's first process."""
        import psutil

        process = getattr(getattr(self.km, "provisioner", None), "process", None)
        if process is None:
            return
        if isinstance(process, zygote.ZygoteProcess):
            try:
                killed = zygote.end_strays(process.sock_path, process.pid)
            except zygote.ZygoteGone:
                return
            if killed:
                self._report["strays"].append(Stray(cell=grade_id(self.nb.cells[index], index), killed=killed))
            return
        try:
            launched = psutil.Process(process.pid)
            tree = [launched, *launched.children(recursive=True)]
            kernel = next((p for p in tree if p.name().startswith("python")  # not bwrap, whose argv has it too
                           and "ipykernel_launcher" in " ".join(p.cmdline())), None)
            if kernel is None:
                return
            keep = {kernel.pid, *(p.pid for p in kernel.parents())}
            strays = [p for p in tree if p.pid not in keep and p.status() != psutil.STATUS_ZOMBIE]  # (ended)
        except psutil.Error:
            return
        for stray in strays:
            try:
                stray.kill()
            except psutil.Error:
                pass
        if strays:
            self._report["strays"].append(Stray(cell=grade_id(self.nb.cells[index], index), killed=len(strays)))

    def _mark_death(self, index: int) -> None:
        cell = self.nb.cells[index]
        cell.outputs.append(new_output(
            "error", ename="KernelDied",
            evalue=("the kernel stopped while running this cell (it exited, crashed, or went over a memory, "
                    "CPU-time or process limit). The grader started a new kernel, re-ran the cells above and "
                    "went on with the next cell: marks earned above are kept."),
            traceback=[]))
        self._report["kernel_deaths"].append(grade_id(cell, index))

    def _give_up(self, steps: list[tuple[str, int]], why: str) -> None:
        for kind, index in steps:
            cell = self.nb.cells[index]
            if kind == "cell" and cell.cell_type == "code":
                cell.outputs = [new_output("error", ename="NotRun", evalue=f"not run: {why}", traceback=[])]
                self._report["not_run"].append(grade_id(cell, index))
            elif kind == "judge":
                self._errors.setdefault(index, f"not run: {why}")


def _bounded_context() -> Any:
    """A zmq context whose sockets queue at most :data:`QUEUED_MESSAGES` received messages: a kernel
    that sends faster than the grader reads is held back (zmq stops reading its connection) and the
    backlog waits in the kernel's memory, not in this process. One message is not bounded: a zmq
    limit on it drops the connection, and the test's own values with it."""
    import zmq
    import zmq.asyncio

    context = zmq.asyncio.Context()
    context.setsockopt(zmq.RCVHWM, QUEUED_MESSAGES)
    return context


def _published_value(msg: dict) -> str | None:
    """The published expectation a display message carries, if it carries one."""
    if msg["msg_type"] not in ("display_data", "execute_result", "update_display_data"):
        return None
    data = msg.get("content", {}).get("data") or {}
    raw = data.get(EXPECT_MIME) if isinstance(data, dict) else None
    return raw if isinstance(raw, str) else None


def _neutral(output: NotebookNode, judged_right: bool = False) -> NotebookNode:
    """A test cell's own output that cannot score: an error becomes its text on stderr (what the
    student's visible checks said), a result becomes a plain display. In a test judged right, text
    on stderr (a library's warning) becomes plain output: nbgrader zeroes a cell with any stderr,
    and a warning is not a wrong answer."""
    if judged_right and output.get("output_type") == "stream" and output.get("name") == "stderr":
        return new_output("stream", name="stdout", text=output.get("text", ""))
    if output.get("output_type") == "error":
        text = "\n".join(output.get("traceback") or []) or f"{output.get('ename')}: {output.get('evalue')}"
        return new_output("stream", name="stderr", text=text + "\n")
    if output.get("output_type") == "execute_result":
        return new_output("display_data", data=output.get("data", {}), metadata=output.get("metadata", {}))
    return output
