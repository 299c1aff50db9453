"""nbgrader's Execute step, hardened for code nobody has reviewed.

Plain nbgrader loses every mark of a notebook whose kernel dies (one
``os._exit`` in the last cell zeroes the work above it), keeps every byte a
cell prints in memory, and trusts the kernel's own numpy. This subclass:

- starts the kernel in the sandbox (:mod:`course_tools.grading.sandbox`);
- when the kernel dies, marks that cell with a ``KernelDied`` error, starts a
  new kernel, re-runs the cells above it (so later answers see their
  imports and data) and goes on with the next cell: marks earned before the
  crash are kept;
- stops recording a cell's output past a size cap;
- runs the :mod:`course_tools.grading.tamper` probe after every test cell.

What happened is written to :attr:`GradingExecute.report_file` as JSON for
the grading job to read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nbclient.exceptions import DeadKernelError
from nbformat import NotebookNode
from nbformat.v4 import new_code_cell, new_output
from nbgrader.preprocessors import Execute
from traitlets import Bool, Int, Unicode

from course_tools.assignments import grade_id, is_test_cell
from course_tools.grading import sandbox, tamper


class GradingExecute(Execute):
    """Execute with a sandboxed kernel, restarts after a crash, an output cap and a tamper probe."""

    use_sandbox = Bool(True, help="start kernels in the sandbox").tag(config=True)
    run_dir = Unicode("", help="writable folder for the kernel's sockets (outside the notebook's)").tag(config=True)
    memory_mib = Int(sandbox.Limits.memory_mib).tag(config=True)
    cpu_seconds = Int(sandbox.Limits.cpu_seconds).tag(config=True)
    processes = Int(sandbox.Limits.processes).tag(config=True)
    max_output_bytes = Int(2_000_000, help="output kept per cell").tag(config=True)
    max_restarts = Int(3, help="kernel restarts before the remaining cells are given up").tag(config=True)
    report_file = Unicode("", help="JSON file for what happened").tag(config=True)
    _side_run = False  # True while replaying cells or probing: their output is not the cell's own

    def create_kernel_manager(self):  # type: ignore[override]
        if self.use_sandbox:
            self.kernel_manager_class = sandbox.SandboxedKernelManager
        km = super().create_kernel_manager()
        if isinstance(km, sandbox.SandboxedKernelManager):
            folder = Path(self.resources.get("metadata", {}).get("path") or ".").resolve()
            run = Path(self.run_dir).resolve() if self.run_dir else folder.parent / ".kernel"
            limits = sandbox.Limits(memory_mib=self.memory_mib, cpu_seconds=self.cpu_seconds,
                                    processes=self.processes)
            km.policy = sandbox.Policy(writable=[folder, run], limits=limits)
        return km

    def preprocess(self, nb: NotebookNode, resources: Any = None, km: Any = None):  # type: ignore[override]
        from nbclient.client import NotebookClient

        NotebookClient.__init__(self, nb, km)
        self.reset_execution_trackers()
        self._check_assign_resources(resources)
        self._report: dict[str, list] = {"kernel_deaths": [], "tampered": [], "truncated": [], "not_run": []}
        self._output_bytes: dict[int, int] = {}
        crashed: list[int] = []
        start = 0
        while start < len(self.nb.cells):
            with self.setup_kernel():
                self._kernel_info()
                if not self._replay(start, crashed):
                    self._give_up(start, "the kernel died again while the cells above were re-run")
                    break
                died_at = self._run_from(start, resources)
            if died_at is None:
                break
            crashed.append(died_at)
            self._mark_death(died_at)
            start = died_at + 1
            if len(crashed) > self.max_restarts:
                self._give_up(start, f"the kernel died {len(crashed)} times")
                break
        self.set_widgets_metadata()
        if self.report_file:
            Path(self.report_file).write_text(json.dumps(self._report, indent=1))
        return self.nb, self.resources

    def _kernel_info(self) -> None:
        info = self.wait_for_reply(self.kc.kernel_info())
        if info:
            self.nb.metadata["language_info"] = info["content"]["language_info"]

    def _run_from(self, start: int, resources: Any) -> int | None:
        """Run cells from ``start`` on; the index of the cell the kernel died in, or None."""
        for index in range(start, len(self.nb.cells)):
            cell = self.nb.cells[index]
            try:
                self.preprocess_cell(cell, resources, index)
                self._end_strays(cell, index)
                if is_test_cell(cell):
                    self._probe(cell, index)
            except DeadKernelError:
                return index
        return None

    def _replay(self, upto: int, crashed: list[int]) -> bool:
        """Re-run the code cells above ``upto`` in a fresh kernel, outputs discarded. False if it died."""
        for index in range(upto):
            cell = self.nb.cells[index]
            if cell.cell_type != "code" or index in crashed:
                continue
            try:
                self._side_execute(new_code_cell(cell.source), index)
            except DeadKernelError:
                return False
        return True

    def _side_execute(self, cell: NotebookNode, index: int) -> None:
        """Run a cell that is not part of the notebook (a replay or the probe)."""
        original = self.nb.cells[index]
        self._side_run = True
        try:
            self.execute_cell(cell, index, store_history=False)
        finally:
            self._side_run = False
            self.nb.cells[index] = original  # nbclient stores the executed cell at its index

    def _probe(self, cell: NotebookNode, index: int) -> None:
        probe = new_code_cell(tamper.PROBE)
        self._side_execute(probe, index)
        text = "".join(o.get("text", "") for o in probe.outputs if o.get("output_type") == "stream")
        changed = tamper.changed(text)
        if changed:
            self._report["tampered"].append({"cell": grade_id(cell, index), "changed": changed})

    def _end_strays(self, cell: NotebookNode, index: int) -> None:
        """Kill processes a cell left behind (a fork bomb's copies of the kernel would
        otherwise answer on its sockets and hold the process limit)."""
        import psutil

        process = getattr(getattr(self.km, "provisioner", None), "process", None)
        if process is None:
            return
        try:
            launched = psutil.Process(process.pid)
            tree = [launched, *launched.children(recursive=True)]
            kernel = next((p for p in tree if p.name().startswith("python")  # not bwrap, whose argv has it too
                           and "ipykernel_launcher" in " ".join(p.cmdline())), None)
            strays = kernel.children(recursive=True) if kernel else []
        except psutil.Error:
            return
        for stray in strays:
            try:
                stray.kill()
            except psutil.Error:
                pass
        if strays:
            self._report.setdefault("strays", []).append({"cell": grade_id(cell, index), "killed": len(strays)})

    def _mark_death(self, index: int) -> None:
        cell = self.nb.cells[index]
        cell.outputs.append(new_output(
            "error", ename="KernelDied",
            evalue=("the kernel stopped while running this cell (it exited, crashed, or went over a memory, "
                    "CPU-time or process limit). The grader started a new kernel, re-ran the cells above and "
                    "went on with the next cell: marks earned above are kept."),
            traceback=[]))
        self._report["kernel_deaths"].append(grade_id(cell, index))

    def _give_up(self, start: int, why: str) -> None:
        for index in range(start, len(self.nb.cells)):
            cell = self.nb.cells[index]
            if cell.cell_type == "code":
                cell.outputs = [new_output("error", ename="NotRun", evalue=f"not run: {why}", traceback=[])]
                self._report["not_run"].append(grade_id(cell, index))

    def output(self, outs: list, msg: dict, display_id: str | None, cell_index: int):  # type: ignore[override]
        """Keep a cell's output up to :attr:`max_output_bytes`, then one note that the rest was dropped."""
        if self._side_run:
            return super().output(outs, msg, display_id, cell_index)
        size = sum(len(str(v)) for v in msg.get("content", {}).values())
        used = self._output_bytes.get(cell_index, 0)
        self._output_bytes[cell_index] = used + size
        if used + size <= self.max_output_bytes:
            return super().output(outs, msg, display_id, cell_index)
        if used <= self.max_output_bytes:
            self._report["truncated"].append(grade_id(self.nb.cells[cell_index], cell_index))
            outs.append(new_output("stream", name="stderr", text=(
                f"\n[output cut by the grader after {self.max_output_bytes // 1000} kB]\n")))
        return None
