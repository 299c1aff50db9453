"""The warm-kernel process itself (:mod:`course_tools.grading.zygote` starts and drives it).

Run inside a grading worker's sandbox as
``python zygote_process.py SOCKET KERNEL_UID TMP_MIB SHOWN_JSON``: it imports what every kernel
imports, then forks a kernel for each ``spawn`` request on its Unix socket. It is a program of its
own, never imported by the grader: nothing of the grading code is in the sandbox but this one
file, bound read-only, so it imports only the standard library and the kernel's libraries.
"""

import ctypes
import fcntl
import json
import os
import signal
import socket
import struct
import sys
import time
from typing import Iterator

path: str = ""  # the socket it listens on
kernel_uid = -1  # the user its kernels run as (-1: the grader's own, when it is not root)
tmp_mib = 512  # size of each kernel's own /tmp and /dev/shm
shown: list[str] = []  # the sandbox's folders under /tmp, bound again into each kernel's fresh /tmp
libc = ctypes.CDLL(None, use_errno=True)
done: dict[int, int] = {}  # exit codes of kernels that ended, by pid


def preload() -> None:
    """What every kernel imports, once (matplotlib is not: its cache folder would be the zygote's,
    shared by every kernel); torch only where the address-space limit leaves its kernels room."""
    import resource

    import IPython  # noqa: F401
    import ipykernel.kernelapp  # noqa: F401
    import numpy  # noqa: F401
    import zmq  # noqa: F401

    room = resource.getrlimit(resource.RLIMIT_AS)[0]
    if room == resource.RLIM_INFINITY or room >= 6 << 30:  # torch reserves 3 GB of address space
        try:
            import torch  # noqa: F401
        except Exception:
            pass
    import course_utils  # noqa: F401
    import course_utils.checks  # noqa: F401


def reap(*_: object) -> None:
    """Collect every ended child, keeping kernels' exit codes for ``poll``."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        done[pid] = os.waitstatus_to_exitcode(status)


def others(keep: list[int] | tuple[int, ...], zombies: bool = True) -> Iterator[int]:
    """Every process of the sandbox but the zygote, init and ``keep``."""
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


def kill(pids: list[int], everyone: bool = False, sig: int = signal.SIGKILL) -> None:
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


def end_all() -> None:
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


def check(result: int, what: str) -> None:
    """Raise OSError with the C library's errno when a call failed."""
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def isolate() -> None:
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


def become_kernel_user() -> None:
    """Drop to the kernels' user, then into namespaces of the kernel's own."""
    if kernel_uid >= 0:
        os.setgroups([])
        os.setresgid(kernel_uid, kernel_uid, kernel_uid)
        os.setresuid(kernel_uid, kernel_uid, kernel_uid)
    isolate()


def kernel(req: dict) -> None:
    """In the forked child: become the kernel the request describes (never returns)."""
    os.setsid()
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    become_kernel_user()
    os.chdir(req["cwd"])
    os.environ.clear()
    os.environ.update(req["env"])
    sys.argv = ["ipykernel_launcher", *req["args"]]
    import ipykernel.kernelapp  # loaded already, by preload

    ipykernel.kernelapp.launch_new_instance()


def probe() -> str:
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


def main() -> None:
    """Load, prove that kernels can be isolated here, then serve requests until ended."""
    global path, kernel_uid, tmp_mib, shown
    path, kernel_uid, tmp_mib, shown = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), json.loads(sys.argv[4])
    preload()
    libc.prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0: not traceable by its kernels even under the same user
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


if __name__ == "__main__":
    main()
