"""The short error hierarchy of marketd. Each message says what to do."""

from __future__ import annotations

import errno
import socket


class MarketdError(Exception):
    """Base of every error marketd raises on purpose."""


class ConfigError(MarketdError):
    """The configuration is invalid. Not retryable: the daemon exits with code 2.

    ``problems`` holds one line per problem, each naming the key (``kafka.linger_ms``)
    and what is wrong with it.
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("invalid configuration:\n  " + "\n  ".join(self.problems))


class ListenError(MarketdError):
    """A server cannot listen where it was told to: the port is in use, the host does not
    resolve or is not this machine's. marketd cannot start: exit code 1."""

    @classmethod
    def bind_failed(
        cls, address: str, cause: OSError | UnicodeError, *, host: str, change: str
    ) -> ListenError:
        """``cannot listen on <address>: <what is wrong>; <how to fix it>``, where ``change``
        names the settings or flags that choose the address (``--listen or http.listen``).
        ``cause`` is what binding raised (a ``UnicodeError``: a name IDNA cannot encode)."""
        elsewhere = "an address of this machine (127.0.0.1, or 0.0.0.0 for every interface)"
        if isinstance(cause, UnicodeError):
            problem = f"{host!r} is not a valid host name"
            fix = f"use {elsewhere} in {change}"
        elif isinstance(cause, socket.gaierror):
            problem = f"host {host!r} does not resolve ({cause.strerror})"
            fix = f"use {elsewhere} in {change}"
        elif cause.errno == errno.EADDRINUSE:
            problem = "address already in use"
            fix = f"stop the other process or choose another port with {change}"
        elif cause.errno == errno.EADDRNOTAVAIL:
            problem = f"{host} is not an address of this machine"
            fix = f"use {elsewhere} in {change}"
        elif cause.errno == errno.EACCES:
            problem = "permission denied (ports below 1024 need privileges)"
            fix = f"choose a port from 1024 up with {change}"
        else:
            problem = cause.strerror or str(cause)
            fix = f"choose another address with {change}"
        return cls(f"cannot listen on {address}: {problem}; {fix}")


class RetryableError(MarketdError):
    """A transient failure: the supervisor restarts the component with backoff."""


class FeedError(RetryableError):
    """A WebSocket feed failed (connect, handshake, stale stream, protocol error)."""


class FeedTimeout(FeedError):
    """A feed saw no frame within the staleness limit, or a handshake took too long."""


class ServerShutdown(FeedError):
    """The exchange announced ``serverShutdown``: reconnect now."""


class RestError(RetryableError):
    """A REST call to the exchange failed (network, 5xx, 429/418 with Retry-After)."""


class PublishError(RetryableError):
    """Kafka did not acknowledge a batch; it is retried, never dropped."""


def leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    """The exceptions of ``group`` and of every group nested in it, flattened."""
    out: list[BaseException] = []
    for exc in group.exceptions:
        out.extend(leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return out
