"""``course run``: execute a source notebook headless, as a student would run it top to bottom.

The source notebook is never modified: it is executed in memory and, if
asked, the executed copy is written elsewhere. Metrics the notebook passes to
:func:`course_utils.record` land in the results file.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from course_tools import assignments
from course_tools.config import temporary_env
from course_utils.kernel_client import PromptKernelManager
from course_utils.paths import FAST_ENV, RESULTS_ENV


class _ProgressClient(NotebookClient):
    """Prints one line per code cell so a long run shows where it is."""

    def __init__(self, nb: nbformat.NotebookNode, **kw) -> None:
        super().__init__(nb, **kw)
        self._total = sum(c.cell_type == "code" for c in nb.cells)
        self._done = 0
        self._t0 = time.perf_counter()

    async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
        if cell.cell_type == "code":
            self._done += 1
            gid = cell.metadata.get("nbgrader", {}).get("grade_id", "")
            first = (cell.source.strip().splitlines() or [""])[0][:60]
            print(f"[{time.perf_counter() - self._t0:6.1f}s] cell {self._done}/{self._total} {gid or first}",
                  file=sys.stderr, flush=True)
        return await super().async_execute_cell(cell, cell_index, execution_count, store_history)


def run(name: str, fast: bool = False, results: Path | None = None, output: Path | None = None) -> dict:
    """Execute ``notebooks/<name>/<name>.ipynb``; return the recorded metrics.

    Raises ``CellExecutionError`` (with the failing cell's traceback) if any
    cell errors, so a broken solution cannot pass a benchmark.
    """
    assignment = assignments.load(name)
    nb = nbformat.read(assignment.path, as_version=4)
    results = Path(results or assignment.path.with_suffix(".results.json")).resolve()
    results.unlink(missing_ok=True)
    with temporary_env(**{FAST_ENV: "1" if fast else "0", RESULTS_ENV: str(results)}):
        client = _ProgressClient(nb, timeout=None, kernel_name="python3", kernel_manager_class=PromptKernelManager,
                                 extra_arguments=["--IPKernelApp.log_level=ERROR"],
                                 resources={"metadata": {"path": str(assignment.path.parent)}})
        try:
            client.execute()
        finally:
            if output:
                nbformat.write(nb, output)
    return json.loads(results.read_text()) if results.is_file() else {}


__all__ = ["run", "CellExecutionError"]
