"""The kernel manager of grading: every kernel starts inside the sandbox, cold or forked warm.

:mod:`~course_tools.grading.sandbox` says what a sandbox is (bubblewrap, limits, the folders it
shows); :mod:`~course_tools.grading.zygote` keeps a warm process per worker that forks kernels.
This manager is where jupyter_client meets both: nbgrader's executor starts its kernels through it.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

from course_tools.grading import sandbox, zygote
from course_utils.kernel_client import PromptKernelManager


class SandboxedKernelManager(PromptKernelManager):
    """A kernel manager whose kernels start inside the sandbox.

    The grader sets :attr:`policy` before starting; the connection file and
    the Unix sockets live in the first writable folder.
    """

    policy: sandbox.Policy | None = None
    zygote: str | None = None  # the socket of a warm-kernel process to fork kernels from (grading/zygote.py)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.transport = "ipc"

    async def _async_pre_start_kernel(self, **kw: Any):  # type: ignore[override]
        if self.policy is None:
            raise sandbox.SandboxUnavailable("SandboxedKernelManager.policy is not set")
        if self.zygote:  # a kernel that died may have left processes: none may run while the grader writes
            zygote.end_all(self.zygote)
        for path in self.policy.writable:
            path.mkdir(parents=True, exist_ok=True)
        run = self.policy.writable[-1]
        self.ip = str(run / "kernel")  # ipc transport: socket paths start with this
        self.connection_file = str(run / "kernel.json")
        # A signal would reach bwrap, outside the sandbox, and end it: interrupt by message instead.
        self.kernel_spec.interrupt_mode = "message"
        return await super()._async_pre_start_kernel(**kw)

    async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
        assert self.policy is not None
        env = kw.get("env") or dict(os.environ)
        cwd = Path(kw.get("cwd") or self.policy.writable[0])
        sandbox.prepare_writable(self.policy.writable, self.policy.uid)
        if self.zygote:
            process = zygote.spawn(self.zygote, kernel_cmd, cwd, sandbox.kernel_environment(env))
            assert self.provisioner is not None
            self.provisioner.process, self.provisioner.pid, self.provisioner.pgid = process, process.pid, None
            self._reconcile_connection_info(self.provisioner.connection_info)
            return
        wrapped = sandbox.command(kernel_cmd, self.policy, env, cwd)
        # What the kernel writes to its own stdout/stderr (not to cells) could flood the grader's terminal.
        kw["stdout"] = kw["stderr"] = subprocess.DEVNULL
        await super()._async_launch_kernel(wrapped, **kw)
