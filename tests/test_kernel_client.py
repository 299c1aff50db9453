"""The kernel client that every headless run uses: it must not sleep through a reply.

With the stock asyncio channel, a send through a shadow of the socket (what ``Session.send`` does,
and what nbclient does when it mirrors an Output widget back to the kernel) consumes the wake-up
of a reply already waiting, and the wait lasts until its timeout. These tests reproduce that
exactly, at the socket level, and show that :class:`PromptChannel` returns the reply at once.
"""

from __future__ import annotations

import asyncio
import time

import nbformat
import pytest
import zmq
import zmq.asyncio
from jupyter_client.channels import AsyncZMQSocketChannel
from jupyter_client.session import Session

from course_utils.kernel_client import SLICE_SECONDS, PromptChannel, PromptKernelClient, PromptKernelManager

WAIT = 3.0  # seconds: the timeout of the waiting get_msg


async def _reply_wait(channel_class: type[AsyncZMQSocketChannel]) -> tuple[str, float]:
    """Seconds a client waits for a reply that arrived while it sent something else on the same socket."""
    ctx = zmq.asyncio.Context()
    kernel = ctx.socket(zmq.ROUTER)
    port = kernel.bind_to_random_port("tcp://127.0.0.1")
    client = ctx.socket(zmq.DEALER)
    client.connect(f"tcp://127.0.0.1:{port}")
    session = Session(key=b"test")
    try:
        session.send(client, session.msg("execute_request"))
        identity, *_ = await kernel.recv_multipart()
        waiter = asyncio.ensure_future(channel_class(client, session).get_msg(timeout=WAIT))
        await asyncio.sleep(0.1)  # the client is now waiting on the socket's edge-triggered descriptor
        session.send(kernel, session.msg("execute_reply"), ident=identity)
        time.sleep(0.1)  # the reply reaches the client's queue while its event loop is busy
        session.send(client, session.msg("comm_msg"))  # as nbclient's Output widget does, from the other task
        start = time.perf_counter()
        msg = await waiter
        return msg["msg_type"], time.perf_counter() - start
    finally:
        client.close(0)
        kernel.close(0)
        ctx.term()


def test_the_stock_channel_sleeps_through_a_reply_that_a_shadow_send_hid() -> None:
    """The cause, reproduced: if this starts failing, the upstream libraries fixed it and PromptChannel may go."""
    kind, seconds = asyncio.run(_reply_wait(AsyncZMQSocketChannel))
    assert kind == "execute_reply"
    assert seconds > WAIT / 2, f"the stock channel answered in {seconds:.2f} s: the missed wake-up no longer happens"


def test_the_prompt_channel_returns_that_reply_within_a_slice() -> None:
    for _ in range(3):
        kind, seconds = asyncio.run(_reply_wait(PromptChannel))
        assert kind == "execute_reply"
        assert seconds < SLICE_SECONDS + 0.3, f"waited {seconds:.2f} s for a reply already queued"


def test_the_prompt_channel_still_times_out_when_nothing_comes() -> None:
    from queue import Empty

    async def wait_for_nothing() -> float:
        ctx = zmq.asyncio.Context()
        sock = ctx.socket(zmq.DEALER)
        sock.connect("tcp://127.0.0.1:9")  # nothing answers
        start = time.perf_counter()
        try:
            with pytest.raises(Empty):
                await PromptChannel(sock, Session()).get_msg(timeout=0.5)
            return time.perf_counter() - start
        finally:
            sock.close(0)
            ctx.term()

    assert 0.45 < asyncio.run(wait_for_nothing()) < 1.5


def test_runners_that_ask_for_an_asyncio_client_get_the_prompt_one() -> None:
    """nbclient sets the manager's client class after creating it; the prompt client must survive that."""
    km = PromptKernelManager()
    km.client_class = "jupyter_client.asynchronous.AsyncKernelClient"
    assert km.client_factory is PromptKernelClient
    assert km.client().shell_channel_class is PromptChannel


@pytest.mark.slow
def test_cells_that_write_into_output_widgets_finish_promptly() -> None:
    """End to end, through nbclient: six cells each redrawing an Output widget, three runs, no cell waits."""
    from nbclient import NotebookClient

    cells = ["import ipywidgets as w\nfrom IPython.display import display"]
    cells += ["out = w.Output()\ndisplay(out)\nfor k in range(3):\n    out.clear_output(wait=True)\n"
              "    with out:\n        print(k)"] * 6
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in cells])
    for _ in range(3):
        client = NotebookClient(nb, timeout=20, kernel_name="python3", kernel_manager_class=PromptKernelManager)
        start = time.perf_counter()
        client.execute()
        assert time.perf_counter() - start < 15, "a cell waited for a reply that had already come"
