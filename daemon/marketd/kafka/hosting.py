"""Hosting an aiokafka worker in trio, shared by the detector on Kafka and the alerts reader.

The worker's clients live on a trio-asyncio loop: :func:`open_hosted` starts them within a
bound, lets the trio side run, and stops them in a shielded, bounded scope however the run
ends. Whatever fails comes out as one domain error (a
:class:`~marketd.errors.RetryableError` the supervisor restarts), not as the exception
groups trio-asyncio wraps errors in.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any, NoReturn, Protocol

import trio
import trio_asyncio
from trio_asyncio import aio_as_trio

from marketd.config.settings import KafkaSettings
from marketd.errors import leaves
from marketd.kafka.delivery import producer_kwargs

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


class Hosted(Protocol):
    """The asyncio side of a worker: start its clients, stop them within ``timeout``."""

    async def start(self) -> None: ...

    async def stop(self, timeout: float) -> None: ...  # noqa: ASYNC109 - asyncio side


@contextlib.asynccontextmanager
async def open_hosted(
    worker: Hosted, request_timeout_s: float, domain: Callable[[Exception], Exception]
) -> AsyncIterator[None]:
    """Start ``worker`` on a trio-asyncio loop (within twice Kafka's request timeout plus
    5 s), run the block, then stop it (shielded, within the request timeout plus 1 s). An
    error of the start, the block or the stop is raised as ``domain(error)`` (``domain`` may
    return the error itself)."""
    timeout = request_timeout_s
    try:
        async with trio_asyncio.open_loop():
            try:
                with trio.fail_after(2 * timeout + 5):
                    await aio_as_trio(worker.start)()
                yield
            finally:
                with trio.CancelScope(shield=True), trio.move_on_after(timeout + 1):
                    await aio_as_trio(worker.stop)(timeout)
    except BaseExceptionGroup as group:
        # trio-asyncio wraps what escapes open_loop() twice: hand on the error itself.
        errors = leaves(group)
        if len(errors) == 1 and isinstance(errors[0], Exception):
            _raise(errors[0], domain)
        raise
    except Exception as exc:
        _raise(exc, domain)


def _raise(exc: Exception, domain: Callable[[Exception], Exception]) -> NoReturn:
    mapped = domain(exc)
    if mapped is exc:
        raise exc
    raise mapped from exc
