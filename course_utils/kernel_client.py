"""A kernel client that never sleeps through a kernel's reply, for running notebooks headless.

Why this exists: a cell that writes into an ``ipywidgets.Output`` (every explorer widget in the
course does) sometimes made nbclient wait out the whole cell timeout, then carry on as if nothing
had happened. The chain, measured here with nbclient 0.11, jupyter_client 8.10 and pyzmq 27.3:

1. nbclient mirrors an Output widget's new contents back to the kernel by sending a ``comm_msg``
   on the shell channel, from the task that reads IOPub, while another task awaits the cell's
   ``execute_reply`` on that same shell socket;
2. ``jupyter_client.Session.send`` sends through a blocking *shadow* of the asyncio socket, so
   pyzmq's asyncio layer never learns that the socket was used; libzmq processes the socket's
   pending commands during that send and so consumes the edge-triggered ``zmq.FD`` wake-up of a
   reply that has just arrived;
3. the awaiting poll is never woken: it returns only when its timeout fires, and the final
   non-blocking poll finds the reply that had been waiting all along.

The fix is to never wait on the edge alone: :class:`PromptChannel` polls in short slices, and a
slice that ends asks libzmq directly (a level check), so a missed edge costs at most
:data:`SLICE_SECONDS`. :class:`PromptKernelManager` hands out clients built from it; point any
nbclient-based runner at it (nbconvert, ``nbgrader validate``, the course's own runners)::

    c.Execute.kernel_manager_class = "course_utils.kernel_client.PromptKernelManager"
"""

from __future__ import annotations

import time
from queue import Empty
from typing import Any

from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.channels import AsyncZMQSocketChannel
from jupyter_client.manager import AsyncKernelManager
from traitlets import Type, validate

SLICE_SECONDS = 0.2  # the longest a missed wake-up can delay a message; a slice costs one timer


class PromptChannel(AsyncZMQSocketChannel):
    """A channel whose waits end within :data:`SLICE_SECONDS` of a message's arrival."""

    async def get_msg(self, timeout: float | None = None) -> dict[str, Any]:  # type: ignore[override]
        """The next message, waiting at most ``timeout`` seconds (forever when None); Empty if none came."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = SLICE_SECONDS if deadline is None else min(SLICE_SECONDS, deadline - time.monotonic())
            # poll(0) is a direct libzmq poll; a positive wait ends with one too, so an edge consumed
            # by someone else's send is still seen when the slice ends.
            if await self.socket.poll(max(0, int(left * 1000))):
                return await self._recv()
            if deadline is not None and time.monotonic() >= deadline:
                raise Empty


class PromptKernelClient(AsyncKernelClient):
    """An asyncio kernel client whose channels are :class:`PromptChannel`."""

    shell_channel_class = Type(PromptChannel)  # type: ignore[assignment]
    iopub_channel_class = Type(PromptChannel)  # type: ignore[assignment]
    stdin_channel_class = Type(PromptChannel)  # type: ignore[assignment]
    control_channel_class = Type(PromptChannel)  # type: ignore[assignment]


CLIENT = f"{PromptKernelClient.__module__}.{PromptKernelClient.__qualname__}"


class PromptKernelManager(AsyncKernelManager):
    """A kernel manager whose clients are :class:`PromptKernelClient`, whatever a runner asks for.

    nbclient sets ``client_class`` to jupyter_client's asyncio client after creating the manager;
    an asyncio client is what it needs, so that request is answered with the prompt one.
    """

    @validate("client_class")
    def _prompt_client(self, proposal: dict) -> str:
        """Any asyncio client request gets :class:`PromptKernelClient`; a blocking one is left alone."""
        wanted = str(proposal["value"])
        return CLIENT if wanted.endswith("AsyncKernelClient") else wanted

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.client_class = CLIENT
