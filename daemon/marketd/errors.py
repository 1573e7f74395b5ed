"""The short error hierarchy of marketd. Each message says what to do."""

from __future__ import annotations


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
