"""The trio-asyncio hosting rules, without a broker: errors come out unwrapped (or as the
domain's error), a client that fails to start is closed, closing is bounded and quiet."""

from __future__ import annotations

import asyncio

import pytest
import trio

from marketd.kafka.hosting import aio_as_trio, close_client, open_hosted, open_loop, start_client


class Client:
    """Stands in for an aiokafka client: ``start``/``stop`` on the asyncio side."""

    def __init__(self, *, start_error: Exception | None = None, stop_hangs: bool = False) -> None:
        self.start_error = start_error
        self.stop_hangs = stop_hangs
        self.started = self.stopped = False

    async def start(self) -> None:
        asyncio.get_running_loop()  # aiokafka's clients need the running loop
        if self.start_error is not None:
            raise self.start_error
        self.started = True

    async def stop(self, timeout: float = 0.0) -> None:  # noqa: ASYNC109 - asyncio side
        if self.stop_hangs:
            await asyncio.sleep(3600)
        self.stopped = True


class DomainError(Exception):
    pass


async def test_an_error_of_the_block_comes_out_unwrapped() -> None:
    async def fail() -> None:
        async with open_loop():
            await aio_as_trio(asyncio.sleep)(0)
            raise ValueError("boom")

    with pytest.raises(ValueError, match="boom") as caught:
        await fail()
    assert caught.value.__suppress_context__ or caught.value.__context__ is None


async def test_the_domain_maps_an_error_and_keeps_its_cause() -> None:
    async def fail() -> None:
        async with open_loop(lambda exc: DomainError(f"wrapped {exc!r}")):
            raise KeyError("k")

    with pytest.raises(DomainError) as caught:
        await fail()
    assert isinstance(caught.value.__cause__, KeyError)


async def test_a_client_that_fails_to_start_is_closed() -> None:
    client = Client(start_error=ConnectionError("no broker"))

    async def start() -> None:
        async with open_loop():
            await start_client(lambda: client, request_timeout_s=1.0)

    with pytest.raises(ConnectionError):
        await start()
    assert client.stopped


async def test_start_client_returns_the_started_client() -> None:
    async with open_loop():
        client = await start_client(Client, request_timeout_s=1.0)
        assert client.started
        await aio_as_trio(close_client)(client, 1.0)
    assert client.stopped


async def test_closing_is_bounded_and_never_raises() -> None:
    client = Client(stop_hangs=True)
    async with open_loop():
        with trio.fail_after(5):
            await aio_as_trio(close_client)(client, 0.1)
    assert not client.stopped


async def test_open_hosted_stops_the_worker_however_the_block_ends() -> None:
    worker = Client()

    async def fail() -> None:
        async with open_hosted(worker, 1.0, lambda exc: DomainError(repr(exc))):
            assert worker.started
            raise RuntimeError("the block failed")

    with pytest.raises(DomainError):
        await fail()
    assert worker.stopped
