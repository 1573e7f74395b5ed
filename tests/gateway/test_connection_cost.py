"""What a /ws/alerts connection costs the gateway beyond Hypercorn's and Quart's: one task
of its own (the reader) besides the handler's, whatever else it waits for."""

from __future__ import annotations

import contextlib

import trio

from marketd.gateway import websocket

from .support import open_gateway, open_ws, receive_json


def gateway_tasks() -> list[str]:
    """The tasks running a coroutine of marketd.gateway.websocket (other than the
    handler's own, whose outermost coroutine is Quart's)."""
    found = []
    root = trio.lowlevel.current_root_task()
    assert root is not None
    pending = [root]
    while pending:
        task = pending.pop()
        code = getattr(task.coro, "cr_code", None)
        if code is not None and code.co_filename == websocket.__file__:
            found.append(code.co_name)
        pending += [child for nursery in task.child_nurseries for child in nursery.child_tasks]
    return found


async def test_a_connection_costs_the_gateway_one_task_of_its_own() -> None:
    clients = 5
    with trio.fail_after(20):
        async with open_gateway() as served, contextlib.AsyncExitStack() as stack:
            before = gateway_tasks()
            for _ in range(clients):
                ws = await stack.enter_async_context(open_ws(served))
                assert (await receive_json(ws))["type"] == "replay"
            added = gateway_tasks()
            for name in before:
                added.remove(name)
            assert sorted(added) == ["_read"] * clients
