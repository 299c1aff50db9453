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
code is a string run with ``python -c``: nothing of the grading code is
mounted into the sandbox. It talks to the grader over a Unix socket in the
slot's socket folder, one JSON request per connection.
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

ZYGOTE = r'''
import ctypes, fcntl, json, os, signal, socket, struct, sys, time
path, kernel_uid, tmp_mib, shown = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), json.loads(sys.argv[4])
import ipykernel.kernelapp, IPython, zmq, numpy  # what every kernel imports (matplotlib is not: its
# cache folder would be the zygote's, shared by every kernel)
import resource
room = resource.getrlimit(resource.RLIMIT_AS)[0]
if room == resource.RLIM_INFINITY or room >= 6 << 30:  # torch reserves 3 GB of address space: below
    try:                                                # that margin its kernels would have none left
        import torch
    except Exception:
        pass
import course_utils, course_utils.checks
libc = ctypes.CDLL(None, use_errno=True)
libc.prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0: not traceable by its kernels even under the same user
done = {}

def reap(*_):
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        done[pid] = os.waitstatus_to_exitcode(status)

def others(keep, zombies=True):
    me = os.getpid()
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) not in (1, me, *keep):
            if not zombies:
                try:
                    with open(f"/proc/{name}/stat") as stat:
                        if stat.read().rsplit(")", 1)[1].split()[0] == "Z":
                            continue  # already ended: its parent has not collected it yet
                except OSError:
                    continue
            yield int(name)

def kill(pids, everyone=False, sig=signal.SIGKILL):
    """``sig`` to ``pids`` (and, with ``everyone``, SIGKILL to every process of the kernels' user at
    once), sent as the kernels' user: the zygote may not signal another user's processes."""
    if kernel_uid < 0:
        for pid in pids:
            try:
                os.kill(pid, sig)
            except OSError:
                pass
        return
    child = os.fork()
    if child == 0:
        try:
            os.setresuid(kernel_uid, kernel_uid, kernel_uid)
            if everyone:
                os.kill(-1, signal.SIGKILL)
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except OSError:
                    pass
        finally:
            os._exit(0)
    try:
        os.waitpid(child, 0)
    except ChildProcessError:
        pass

def end_all():
    """Every process but the zygote ended, a fork bomb's too (no fork slips past a kill(-1))."""
    for _ in range(100):
        left = list(others(()))
        if not left:
            return
        kill(left, everyone=True)
        time.sleep(0.02)
        reap()

CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWIPC, CLONE_NEWNET = 0x20000, 0x10000000, 0x08000000, 0x40000000
MS_NOSUID, MS_NODEV, MS_BIND, MS_REC, MS_PRIVATE = 0x2, 0x4, 0x1000, 0x4000, 0x40000

def check(result, what):
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")

def isolate():
    """Namespaces of this kernel's own, entered as the kernels' user, then every capability dropped:
    a user namespace (its own keyrings; the capabilities to set up the rest), IPC (SysV objects,
    POSIX message queues), network (abstract sockets, loopback) and mount: a fresh /tmp and /dev/shm,
    with the sandbox's folders under /tmp bound in again, the zygote's own socket folder not."""
    uid, gid = os.getuid(), os.getgid()
    libc.prctl(4, 1, 0, 0, 0)  # PR_SET_DUMPABLE: its own /proc/self/uid_map is then its own to write
    check(libc.unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWNET), "unshare")
    for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
        with open(f"/proc/self/{name}", "w") as f:
            f.write(text)
    check(libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "mount --make-rprivate /")
    kept = [(p, os.open(p, os.O_PATH | os.O_DIRECTORY)) for p in shown]  # before /tmp is covered
    for where in ("/tmp", "/dev/shm"):
        if os.path.isdir(where):
            check(libc.mount(b"tmpfs", where.encode(), b"tmpfs", MS_NOSUID | MS_NODEV,
                             f"mode=1777,size={tmp_mib}m".encode()), f"mount {where}")
    for folder, fd in kept:
        os.makedirs(folder, exist_ok=True)
        check(libc.mount(f"/proc/self/fd/{fd}".encode(), folder.encode(), None, MS_BIND | MS_REC, None),
              f"mount {folder}")
        os.close(fd)
    with socket.socket() as s:  # loopback up, as bubblewrap leaves it in a cold sandbox
        flags = struct.unpack("16sh22x", fcntl.ioctl(s, 0x8913, struct.pack("16sh22x", b"lo", 0)))[1]
        fcntl.ioctl(s, 0x8914, struct.pack("16sh22x", b"lo", flags | 0x1 | 0x40))  # IFF_UP, IFF_RUNNING
    for cap in range(int(open("/proc/sys/kernel/cap_last_cap").read()) + 1):
        check(libc.prctl(24, cap, 0, 0, 0), "drop from the bounding set")  # PR_CAPBSET_DROP
    check(libc.capset((ctypes.c_uint32 * 2)(0x20080522, 0), (ctypes.c_uint32 * 6)()), "capset")
    check(libc.prctl(38, 1, 0, 0, 0), "no new privileges")  # PR_SET_NO_NEW_PRIVS

def become_kernel_user():
    if kernel_uid >= 0:
        os.setgroups([])
        os.setresgid(kernel_uid, kernel_uid, kernel_uid)
        os.setresuid(kernel_uid, kernel_uid, kernel_uid)
    isolate()

def kernel(req):
    os.setsid()
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    become_kernel_user()
    os.chdir(req["cwd"])
    os.environ.clear()
    os.environ.update(req["env"])
    sys.argv = ["ipykernel_launcher", *req["args"]]
    ipykernel.kernelapp.launch_new_instance()

def probe():
    """Whether a kernel can be given its own namespaces here ('' if so, else why not)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            become_kernel_user()
            os.write(write, b"ok")
        except Exception as exc:
            os.write(write, str(exc).encode()[:500])
        os._exit(0)
    os.close(write)
    answer = os.read(read, 600).decode(errors="replace")
    os.close(read)
    os.waitpid(pid, 0)
    return "" if answer == "ok" else answer or "the probe died"

refused = probe()
if refused:
    print("isolation impossible:", refused, flush=True)
    sys.exit(3)
signal.signal(signal.SIGCHLD, reap)
server = socket.socket(socket.AF_UNIX)
server.bind(path)
server.listen(16)
print("ready", flush=True)
quiet = os.open(os.devnull, os.O_WRONLY)
os.dup2(quiet, 1)  # nobody reads this pipe after "ready": a kernel writing to it must never block
os.dup2(quiet, 2)
while True:
    conn, _ = server.accept()
    with conn:
        req = json.loads(conn.makefile().readline())
        op, reply = req["op"], {}
        if op == "spawn":
            pid = os.fork()
            if pid == 0:
                server.close()
                code = 1
                try:
                    kernel(req)
                    code = 0
                finally:
                    os._exit(code)
            reply = {"pid": pid}
        elif op == "poll":
            reply = {"code": done.get(req["pid"])}
        elif op == "signal":
            kill([req["pid"]], sig=req["sig"])
        elif op == "strays":
            strays = list(others(req["keep"], zombies=False))
            kill(strays)
            reply = {"killed": len(strays)}
        elif op in ("reset", "end"):
            end_all()
        conn.sendall((json.dumps(reply) + "\n").encode())
'''


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

    def __init__(self, slot: Path, limits: Any, env: dict[str, str]) -> None:
        from course_tools.grading import sandbox

        self.slot = slot
        self.work, self.run, own = slot / "work", slot / "run", slot / "zygote"
        for folder in (self.work, self.run, own):
            folder.mkdir(parents=True, exist_ok=True)
        own.chmod(0o700)  # its socket: the grader's and its own, not its kernels'
        self.socket = str(own / "zygote.sock")
        Path(self.socket).unlink(missing_ok=True)
        policy = sandbox.Policy(writable=[self.work, self.run, own], limits=limits)
        uid = policy.uid if policy.uid is not None else -1
        self.uid = policy.uid  # the user its kernels run as
        sandbox.prepare_writable([self.work, self.run], policy.uid)
        # What a kernel's fresh /tmp must show again: the sandbox's folders there, but its own.
        shown = [str(p) for p in [*policy.readonly, self.work, self.run] if Path("/tmp") in p.parents]
        cmd = sandbox.command([sys.executable, "-c", ZYGOTE, self.socket, str(uid), str(limits.tmp_mib),
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


def warm(limits: Any, env: dict[str, str]) -> Zygote:
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


