"""Hosting aiokafka in trio: the one place that owns the trio-asyncio loop rules.

Every aiokafka user (the publisher, the detector on Kafka, the alerts reader) runs its
clients on a trio-asyncio loop opened here, and crosses to them with :data:`aio_as_trio`:

* :func:`open_loop` opens the loop; an error escaping it comes out as itself (or as a
  domain error), not wrapped twice in exception groups as trio-asyncio hands it on.
* Starting is bounded: twice Kafka's request timeout plus 5 s (:func:`start_client`,
  :func:`open_hosted`); a client that fails to start is stopped again.
* Stopping is bounded and never raises (:func:`close_client`): aiokafka's ``stop()`` can
  wait for a whole request timeout when the broker is down, so it gets the request
  timeout, then a producer's sockets are closed directly.
* :func:`open_hosted` runs a worker (the asyncio side of a reader or a detector: start its
  clients, stop them) around a block of trio code, stopping it shielded however the block
  ends.

Keep the futures aiokafka's ``send()`` returns and inspect them (else asyncio logs
"exception was never retrieved"): see :mod:`marketd.kafka.delivery`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any, NoReturn, Protocol

import trio
import trio_asyncio
from aiokafka import AIOKafkaProducer
from trio_asyncio import aio_as_trio

from marketd.config.settings import KafkaSettings
from marketd.errors import leaves
from marketd.kafka.delivery import producer_kwargs

__all__ = [
    "Hosted",
    "aio_as_trio",
    "client_kwargs",
    "close_client",
    "open_hosted",
    "open_loop",
    "start_client",
    "start_within_s",
]

_CLIENT_KEYS = (
    "bootstrap_servers",
    "client_id",
    "security_protocol",
    "ssl_context",
    "sasl_mechanism",
    "sasl_plain_username",
    "sasl_plain_password",
    "request_timeout_ms",
)


def client_kwargs(kafka: KafkaSettings) -> dict[str, Any]:
    """Connection and security arguments of a consumer (those of the producer that apply)."""
    return {k: v for k, v in producer_kwargs(kafka).items() if k in _CLIENT_KEYS}


def start_within_s(request_timeout_s: float) -> float:
    """How long starting a client may take: a metadata round trip may need two requests."""
    return 2 * request_timeout_s + 5


def _same(exc: Exception) -> Exception:
    return exc


@contextlib.asynccontextmanager
async def open_loop(
    domain: Callable[[Exception], Exception] = _same,
) -> AsyncIterator[None]:
    """A trio-asyncio loop for the block. An error of the block is raised as
    ``domain(error)`` (by default the error itself), unwrapped from trio-asyncio's groups."""
    try:
        async with trio_asyncio.open_loop():
            yield
    except BaseExceptionGroup as group:
        # trio-asyncio wraps what escapes open_loop() twice: hand on the error itself.
        errors = leaves(group)
        if len(errors) == 1 and isinstance(errors[0], Exception):
            errors[0].__suppress_context__ = True  # not "during handling of" the group
            _raise(errors[0], domain)
        raise
    except Exception as exc:
        _raise(exc, domain)


async def start_client(factory: Callable[[], Any], request_timeout_s: float) -> Any:
    """(trio side, in :func:`open_loop`) Make a client with ``factory`` on the asyncio side
    (aiokafka binds it to the running loop) and start it, within :func:`start_within_s`
    (``trio.TooSlowError`` past it). A client that fails to start is closed."""

    async def create() -> Any:
        client = factory()
        try:
            await client.start()
        except BaseException:
            await close_client(client, request_timeout_s)
            raise
        return client

    with trio.fail_after(start_within_s(request_timeout_s)):
        return await aio_as_trio(create)()


async def close_client(client: Any, timeout: float) -> None:  # noqa: ASYNC109 - asyncio side
    """(asyncio side) Stop an aiokafka client within ``timeout``; never raises. ``stop()``
    waits for undeliverable batches: past ``timeout`` a producer's sockets are closed."""
    try:
        await asyncio.wait_for(client.stop(), timeout)
    except Exception:  # TimeoutError included
        if isinstance(client, AIOKafkaProducer):
            with contextlib.suppress(Exception):
                # Private (aiokafka 0.14): stop() gave up half-way; close what it left open.
                await client._sender.close()
                await client.client.close()


class Hosted(Protocol):
    """The asyncio side of a worker: start its clients, stop them within ``timeout``."""

    async def start(self) -> None: ...

    async def stop(self, timeout: float) -> None: ...  # noqa: ASYNC109 - asyncio side


@contextlib.asynccontextmanager
async def open_hosted(
    worker: Hosted, request_timeout_s: float, domain: Callable[[Exception], Exception]
) -> AsyncIterator[None]:
    """Start ``worker`` on a trio-asyncio loop (within :func:`start_within_s`), run the
    block, then stop it (shielded, within the request timeout plus 1 s). An error of the
    start, the block or the stop is raised as ``domain(error)`` (``domain`` may return the
    error itself)."""
    timeout = request_timeout_s
    async with open_loop(domain):
        try:
            with trio.fail_after(start_within_s(timeout)):
                await aio_as_trio(worker.start)()
            yield
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(timeout + 1):
                await aio_as_trio(worker.stop)(timeout)


def _raise(exc: Exception, domain: Callable[[Exception], Exception]) -> NoReturn:
    mapped = domain(exc)
    if mapped is exc:
        raise exc
    raise mapped from exc
