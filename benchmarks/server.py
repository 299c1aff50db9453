"""What one student costs a shared server: memory and CPU of each notebook at its defaults.

    python benchmarks/server.py                      # every assignment, default settings (minutes each)
    python benchmarks/server.py vae vib              # some
    python benchmarks/server.py vae --fast           # FAST mode, a smoke run
    python benchmarks/server.py --server 16 64       # and how many students a 16-core, 64 GiB server holds

Each notebook runs top to bottom in its own kernel, as a student's Run All would, while a sampler
reads the kernel (and any process it starts) every half second: peak resident memory (RSS) and
peak proportional memory (PSS: shared libraries such as torch's counted once across processes,
so it is what each further student adds), and CPU seconds used. An idle JupyterLab server, the
other half of a student's footprint, is measured once. The figures are printed, never judged:
a busy machine inflates the seconds, not the memory.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import psutil

from course_tools import assignments

GIB = 1024**3
OS_RESERVE_GIB = 2.0  # the system, JupyterHub and its proxy
HOURLY_RUNS = 1.0  # how often an active student runs the whole notebook in an hour, for the CPU bound


@dataclass
class Cost:
    name: str
    wall: float
    cpu: float
    peak_rss: int
    peak_pss: int

    def line(self) -> str:
        return (f"{self.name:<22}{self.wall:>8.0f}{self.cpu:>9.0f}{self.cpu / max(self.wall, 1e-9):>7.2f}"
                f"{self.peak_rss / GIB:>10.2f}{self.peak_pss / GIB:>10.2f}")


class Sampler(threading.Thread):
    """Peak memory and CPU time of a process tree, sampled until stopped."""

    def __init__(self, root: psutil.Process) -> None:
        super().__init__(daemon=True)
        self.root, self.peak_rss, self.peak_pss, self.cpu = root, 0, 0, 0.0
        self._stop_event, self._cpu_by_pid = threading.Event(), {}

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.sample()
            self._stop_event.wait(0.5)

    def sample(self) -> None:
        rss = pss = 0
        try:
            procs = [self.root, *self.root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        for proc in procs:
            try:
                info = proc.memory_full_info()
                times = proc.cpu_times()
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            rss, pss = rss + info.rss, pss + info.pss
            self._cpu_by_pid[proc.pid] = times.user + times.system  # a process's CPU time only grows
        self.peak_rss, self.peak_pss = max(self.peak_rss, rss), max(self.peak_pss, pss)
        self.cpu = sum(self._cpu_by_pid.values())

    def stop(self) -> None:
        self._stop_event.set()
        if self.is_alive():
            self.join()
        self.sample()


def notebook_cost(name: str, fast: bool) -> Cost:
    """Run ``name`` as a student would (Run All, its defaults) and measure its kernel."""
    import nbformat
    from nbclient import NotebookClient

    from course_tools.config import temporary_env
    from course_utils.kernel_client import PromptKernelManager
    from course_utils.paths import FAST_ENV

    path = assignments.load(name).path
    nb = nbformat.read(path, as_version=4)
    with temporary_env(**{FAST_ENV: "1" if fast else "0"}):
        client = NotebookClient(nb, timeout=None, kernel_name="python3", kernel_manager_class=PromptKernelManager,
                                extra_arguments=["--IPKernelApp.log_level=ERROR"],
                                resources={"metadata": {"path": str(path.parent)}})
        with client.setup_kernel():
            sampler = Sampler(psutil.Process(client.km.provisioner.process.pid))
            sampler.start()
            start = time.perf_counter()
            try:
                for index, cell in enumerate(nb.cells):
                    client.execute_cell(cell, index)
            finally:
                wall = time.perf_counter() - start
                sampler.stop()
    return Cost(name, wall, sampler.cpu, sampler.peak_rss, sampler.peak_pss)


def idle_lab_cost() -> Cost:
    """An idle JupyterLab server with no notebook open: what every logged-in student costs."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as root:
        server = subprocess.Popen([sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}",
                                   "--ip=127.0.0.1", "--IdentityProvider.token=bench", f"--ServerApp.root_dir={root}",
                                   *(["--allow-root"] if os.geteuid() == 0 else [])],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        start = time.perf_counter()
        try:
            while True:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token=bench", timeout=5).close()
                    break
                except OSError:
                    if time.perf_counter() - start > 120:
                        raise RuntimeError("JupyterLab did not start within 120 s") from None
                    time.sleep(0.5)
            time.sleep(5)  # settled
            sampler = Sampler(psutil.Process(server.pid))
            sampler.stop()
        finally:
            server.terminate()
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
    return Cost("(idle JupyterLab)", time.perf_counter() - start, sampler.cpu, sampler.peak_rss, sampler.peak_pss)


def capacity(costs: list[Cost], lab: Cost, cores: int, memory_gib: float) -> list[str]:
    """How many students a server holds, per notebook: by memory if every student's kernel peaks at
    once, and by CPU if each runs the whole notebook HOURLY_RUNS times an hour."""
    lines = [f"A server with {cores} cores and {memory_gib:g} GiB ({OS_RESERVE_GIB:g} GiB kept for the system):",
             f"{'notebook':<22}{'by memory':>10}{'by CPU':>8}"]
    for cost in costs:
        by_memory = int((memory_gib - OS_RESERVE_GIB) * GIB // (cost.peak_pss + lab.peak_pss))
        by_cpu = int(cores * 3600 // (cost.cpu * HOURLY_RUNS))
        lines.append(f"{cost.name:<22}{by_memory:>10}{by_cpu:>8}")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("assignments", nargs="*")
    parser.add_argument("--fast", action="store_true", help="FAST mode (seconds), for a smoke run")
    parser.add_argument("--server", nargs=2, type=float, metavar=("CORES", "GIB"),
                        help="also print how many students a server of this size holds")
    args = parser.parse_args()
    names = args.assignments or assignments.available()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; {'FAST' if args.fast else 'defaults'}")
    print(f"{'notebook':<22}{'wall s':>8}{'CPU s':>9}{'cores':>7}{'RSS GiB':>10}{'PSS GiB':>10}", flush=True)
    lab = idle_lab_cost()
    print(lab.line(), flush=True)
    costs = []
    for name in names:
        try:
            costs.append(notebook_cost(name, args.fast))
        except Exception as exc:  # noqa: BLE001 (a dead kernel or a failing cell: say so, measure the rest)
            print(f"{name:<22}not measured: {exc.__class__.__name__}: {str(exc).strip()[-200:]}", flush=True)
            continue
        print(costs[-1].line(), flush=True)
    if args.server:
        print("\n".join(capacity(costs, lab, int(args.server[0]), args.server[1])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
