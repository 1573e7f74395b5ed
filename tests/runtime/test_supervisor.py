import pytest
import trio
import trio.testing

from marketd.errors import FeedError
from marketd.runtime.backoff import BackoffPolicy
from marketd.runtime.supervisor import ChildState, serve_restarting

FAST = BackoffPolicy(initial=0.01, cap=0.05, jitter=0)


async def test_retryable_failures_restart_until_the_child_returns(
    autojump_clock: trio.testing.MockClock,
) -> None:
    runs: list[int] = []

    async def child(*, task_status: trio.TaskStatus[None]) -> None:
        runs.append(len(runs))
        task_status.started()
        if len(runs) < 3:
            raise FeedError("boom")

    state = ChildState("child")
    with trio.fail_after(5):
        await serve_restarting("child", child, FAST, state)
    assert runs == [0, 1, 2]
    assert state.failures == 2
    assert state.starts == 3
    assert "boom" in state.last_error
    assert state.running is False


async def test_non_retryable_errors_propagate(autojump_clock: trio.testing.MockClock) -> None:
    async def child(*, task_status: trio.TaskStatus[None]) -> None:
        task_status.started()
        raise ValueError("a bug, not a network hiccup")

    with trio.fail_after(5), pytest.RaisesGroup(ValueError, flatten_subgroups=True):
        await serve_restarting("child", child, FAST)


async def test_started_is_reported_once_after_the_first_start(
    autojump_clock: trio.testing.MockClock,
) -> None:
    attempts = 0

    async def child(*, task_status: trio.TaskStatus[None]) -> None:
        nonlocal attempts
        attempts += 1
        task_status.started()
        if attempts == 1:
            raise OSError("connection reset")
        await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        with trio.fail_after(5):
            await nursery.start(serve_restarting, "child", child, FAST)
        await trio.sleep(1)
        assert attempts == 2
        nursery.cancel_scope.cancel()
