"""Warm kernels: a process in the sandbox, with the kernel's libraries imported, that forks kernels.

Every kernel of a notebook course starts the same way: Python, then
ipykernel, numpy, matplotlib and torch, about two and a half seconds of CPU
before the first cell runs. A *zygote* pays that once per grading worker: it
starts inside the worker's sandbox, imports them, and then forks a fresh
kernel for each submission. A fork shares nothing with the next one but the
files in the worker's slot, which are emptied between submissions.

The zygote runs as the sandbox's root, with no capability but to change user:
each kernel it forks drops to the unprivileged user of the worker before any
student code runs, so a kernel can neither signal nor trace the zygote. Then
the kernel enters namespaces of its own (user, mount, IPC, network: see
``isolate`` in the program), so what one kernel leaves that outlives it (SysV
and POSIX IPC objects, files in /tmp and /dev/shm, abstract sockets, keys in
its user's keyrings) ends with its namespaces and never meets the next one;
between submissions every process but the zygote is ended. Where the host
allows no user namespace the zygote does not start and kernels start cold. Its
program is :mod:`course_tools.grading.zygote_process`, the one file of the
grading code bound into the sandbox (read-only); it talks to the grader over a
Unix socket in the slot's socket folder, one JSON request per connection.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from course_tools.grading import sandbox

PROGRAM = Path(__file__).with_name("zygote_process.py")  # the zygote itself, bound read-only into its sandbox


class ZygoteGone(RuntimeError):
    """The zygote stopped answering (killed, or out of memory): start a new one."""


class IsolationImpossible(ZygoteGone):
    """This host gives a forked kernel no namespaces of its own (no user namespaces): kernels start cold."""


def request(sock_path: str, **req: Any) -> dict:
    """One request to the zygote at ``sock_path`` and its answer."""
    try:
        with socket.socket(socket.AF_UNIX) as conn:
            conn.settimeout(60)
            conn.connect(sock_path)
            conn.sendall((json.dumps(req) + "\n").encode())
            line = conn.makefile().readline()
    except OSError as exc:
        raise ZygoteGone(f"the warm-kernel process does not answer ({exc})") from exc
    if not line:
        raise ZygoteGone("the warm-kernel process closed the connection")
    return json.loads(line)


class ZygoteProcess:
    """A kernel forked by the zygote, with the part of ``subprocess.Popen`` jupyter_client uses."""

    stdin = stdout = stderr = None

    def __init__(self, sock_path: str, pid: int) -> None:
        self.sock_path, self.pid, self.returncode = sock_path, pid, None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                self.returncode = request(self.sock_path, op="poll", pid=self.pid)["code"]
            except ZygoteGone:
                self.returncode = -signal.SIGKILL  # the zygote took its kernels with it
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired("kernel", timeout or 0)
            time.sleep(0.05)
        return self.returncode  # type: ignore[return-value]

    def send_signal(self, sig: int) -> None:
        try:
            request(self.sock_path, op="signal", pid=self.pid, sig=int(sig))
        except ZygoteGone:
            pass

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


def spawn(sock_path: str, kernel_cmd: list[str], cwd: Path, env: dict[str, str]) -> ZygoteProcess:
    """A new kernel from the zygote: ``kernel_cmd`` is jupyter_client's (``python -m ipykernel_launcher ...``)."""
    args = kernel_cmd[kernel_cmd.index("ipykernel_launcher") + 1:] if "ipykernel_launcher" in kernel_cmd \
        else kernel_cmd[1:]
    pid = request(sock_path, op="spawn", args=args, cwd=str(cwd), env=env)["pid"]
    return ZygoteProcess(sock_path, pid)


class Zygote:
    """The zygote of one grading worker, in the worker's sandbox (see the module docstring)."""

    def __init__(self, slot: Path, limits: sandbox.Limits, env: dict[str, str]) -> None:
        self.slot = slot
        self.work, self.run, own = slot / "work", slot / "run", slot / "zygote"
        for folder in (self.work, self.run, own):
            folder.mkdir(parents=True, exist_ok=True)
        own.chmod(0o700)  # its socket: the grader's and its own, not its kernels'
        self.socket = str(own / "zygote.sock")
        Path(self.socket).unlink(missing_ok=True)
        policy = sandbox.Policy(writable=[self.work, self.run, own], readonly=[*sandbox.default_readonly(), PROGRAM],
                                limits=limits)
        uid = policy.uid if policy.uid is not None else -1
        self.uid = policy.uid  # the user its kernels run as
        sandbox.prepare_writable([self.work, self.run], policy.uid)
        # What a kernel's fresh /tmp must show again: the sandbox's folders there, but its own.
        # (the program itself is not among them: its kernels never need it)
        shown = [str(p) for p in [*policy.readonly, self.work, self.run]
                 if Path("/tmp") in p.parents and p != PROGRAM]
        # -P: the program's folder is not put on sys.path (its kernels inherit the path)
        cmd = sandbox.command([sys.executable, "-P", str(PROGRAM), self.socket, str(uid), str(limits.tmp_mib),
                               json.dumps(shown)], policy, env, self.work, as_root=True)
        self.process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        ready = self.process.stdout.readline().strip() if self.process.stdout else ""
        if ready != "ready":
            self.process.kill()
            code = self.process.wait()
            if ready.startswith("isolation impossible"):
                raise IsolationImpossible(f"the warm-kernel process cannot isolate its kernels ({ready})")
            raise ZygoteGone(f"the warm-kernel process did not start (exit {code})")

    def alive(self) -> bool:
        return self.process.poll() is None

    def reset(self) -> None:
        """Between two submissions: every process but the zygote ended (each kernel's /tmp, /dev/shm
        and namespaces end with them) and the slot emptied (the folders themselves stay: the
        sandbox has them mounted)."""
        request(self.socket, op="reset")
        for folder in (self.work, self.run):
            empty(folder)

    def close(self) -> None:
        if self.alive():
            self.process.kill()
            self.process.wait()


def empty(folder: Path) -> None:
    """Remove what ``folder`` holds, keeping the folder (a sandbox may have it mounted).

    Runs as root on what student code left. Every entry is first moved, by name, into a fresh
    folder of the grader's beside it that no sandbox mounts (a rename moves a link, never what it
    points to), so nothing stays in sight of the next kernel even where removing it fails; then
    that folder is removed without following links.
    """
    trash = tempfile.mkdtemp(prefix=".emptied-", dir=folder.parent)
    source = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    target = os.open(trash, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        for name in os.listdir(source):
            os.rename(name, name, src_dir_fd=source, dst_dir_fd=target)
    finally:
        os.close(source)
        os.close(target)
    try:
        shutil.rmtree(trash, ignore_errors=True)
    except RecursionError:  # a tree nested deeper than Python recurses: out of sight, left on disk
        pass


_WARM: dict[tuple, Zygote] = {}
_REFUSED: list[IsolationImpossible] = []  # once the host refused, no zygote is tried again


def warm(limits: sandbox.Limits, env: dict[str, str]) -> Zygote:
    """This process's zygote for these limits, started on first use and again if it died."""
    if _REFUSED:
        raise _REFUSED[0]
    key = tuple(sorted(vars(limits).items()))
    zygote = _WARM.get(key)
    if zygote is None or not zygote.alive():
        slot = Path(tempfile.mkdtemp(prefix=f"course-slot-{os.getpid()}-"))  # a fresh name nobody made first
        try:
            zygote = _WARM[key] = Zygote(slot, limits, env)
        except ZygoteGone as exc:
            shutil.rmtree(slot, ignore_errors=True)
            if isinstance(exc, IsolationImpossible):
                _REFUSED.append(exc)
            raise
    return zygote


def end_all(sock_path: str) -> None:
    """End every process of the sandbox but the zygote: before a kernel starts, so no process of a
    kernel that died is left to race the grader in the folders it writes to."""
    request(sock_path, op="end")


def end_strays(sock_path: str, kernel_pid: int) -> int:
    """End every process of the sandbox but the zygote and the kernel; how many were ended."""
    return int(request(sock_path, op="strays", keep=[kernel_pid]).get("killed", 0))


