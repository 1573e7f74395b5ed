"""structlog set-up: console or JSON lines, one level for marketd and the libraries.

Every line logged inside a span carries its ``trace_id`` and ``span_id``. Warnings and
errors that repeat (same logger, level and event) are rate-limited by a processor: at most
``REPEAT_BURST`` lines per key per ``REPEAT_INTERVAL_S``, and the first line let through
after a quiet spell says how many were held back (``suppressed``). Hot paths still use
:class:`RateLimitedLog` themselves, which saves building the line at all.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, MutableMapping
from typing import Any

import attrs
import structlog
from opentelemetry import trace

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


# Repeated warnings/errors: this many lines per (logger, level, event) per interval.
REPEAT_BURST = 5
REPEAT_INTERVAL_S = 10.0
_LIMITED_LEVELS = frozenset({"warning", "error", "critical", "exception"})

EventDict = MutableMapping[str, Any]


def add_trace_context(_: Any, __: str, event_dict: EventDict) -> EventDict:
    """structlog processor: ``trace_id`` / ``span_id`` (hex) of the current span, if any."""
    ctx = trace.get_current_span().get_span_context()
    if ctx.is_valid:
        event_dict.setdefault("trace_id", format(ctx.trace_id, "032x"))
        event_dict.setdefault("span_id", format(ctx.span_id, "016x"))
    return event_dict


@attrs.define
class _Window:
    start: float
    count: int = 0
    suppressed: int = 0


class LimitRepeats:
    """structlog processor: at most ``burst`` warning/error lines per (logger, level,
    event) per ``interval`` seconds; the rest are dropped and counted, and the next line
    let through for that key carries ``suppressed=<n>``. Info and debug pass untouched.

    Keys are bounded by the code's event names; ``max_keys`` caps them anyway."""

    def __init__(
        self,
        burst: int = REPEAT_BURST,
        interval: float = REPEAT_INTERVAL_S,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 1024,
    ) -> None:
        self.burst, self.interval, self._clock, self._max_keys = burst, interval, clock, max_keys
        self._windows: dict[tuple[str, str, str], _Window] = {}

    def __call__(self, _: Any, method: str, event_dict: EventDict) -> EventDict:
        level = str(event_dict.get("level", method)).lower()
        if level not in _LIMITED_LEVELS:
            return event_dict
        key = (str(event_dict.get("logger", "")), level, str(event_dict.get("event", "")))
        held = self.allow(key)
        if held is None:
            raise structlog.DropEvent
        if held:
            event_dict["suppressed"] = event_dict.get("suppressed", 0) + held
        return event_dict

    def allow(self, key: tuple[str, str, str]) -> int | None:
        """``None``: drop this line; else let it through, mentioning this many held back."""
        now = self._clock()
        window = self._windows.get(key)
        held = 0
        if window is None or now - window.start >= self.interval:
            if window is not None:
                held = window.suppressed
            elif len(self._windows) >= self._max_keys:
                self._windows.clear()
            window = self._windows[key] = _Window(now)
        if window.count >= self.burst:
            window.suppressed += 1
            return None
        window.count += 1
        return held


class LimitForeignRepeats(logging.Filter):
    """The same limit for stdlib records of the libraries (aiokafka, hypercorn, ...)."""

    def __init__(self, limiter: LimitRepeats) -> None:
        super().__init__()
        self.limiter = limiter

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or isinstance(record.msg, dict):
            return True  # below warning, or from structlog (limited by the processor)
        key = (record.name, record.levelname.lower(), str(record.msg))
        held = self.limiter.allow(key)
        if held is None:
            return False
        if held:
            record.msg = f"{record.msg} (suppressed={held})"
        return True


class TopicNotInMetadataYet(logging.Filter):
    """aiokafka logs "Topic … not found in cluster metadata" at ERROR on the metadata
    refresh that precedes a topic's auto-creation: every first start of a healthy daemon.
    Said at WARNING with what it means; a topic that stays missing shows up as failed
    deliveries (``marketd_kafka_records_retried_total``, ``/readyz``), not through this."""

    _TEXT = "Topic %s not found in cluster metadata"

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == self._TEXT and record.levelno == logging.ERROR:
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.msg = (
                "Topic %s not in the cluster metadata yet (the broker creates it on first "
                "use if auto.create.topics.enable; otherwise create it)"
            )
        return True


def configure_logging(level: str = "info", fmt: str = "console") -> None:
    """Route structlog and stdlib logging (aiokafka, hypercorn) to stderr in one format."""
    numeric = _LEVELS.get(level, logging.INFO)
    limiter = LimitRepeats()
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        add_trace_context,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            *shared[:3],
            limiter,  # before the line is built further; DropEvent ends it here
            *shared[3:],
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    handler.addFilter(LimitForeignRepeats(limiter))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    # aiokafka is chatty at INFO about every reconnect attempt.
    logging.getLogger("aiokafka").setLevel(max(numeric, logging.WARNING))
    cluster = logging.getLogger("aiokafka.cluster")
    if not any(isinstance(f, TopicNotInMetadataYet) for f in cluster.filters):
        cluster.addFilter(TopicNotInMetadataYet())


@attrs.define
class RateLimitedLog:
    """Let one log line through per ``interval`` seconds; count what was held back."""

    interval: float = 10.0
    _last: float = -1e18
    _suppressed: int = 0

    def ready(self) -> int | None:
        """``None``: stay quiet; else log now, mentioning this many suppressed events."""
        now = time.monotonic()
        if now - self._last < self.interval:
            self._suppressed += 1
            return None
        self._last, suppressed, self._suppressed = now, self._suppressed, 0
        return suppressed


@attrs.define
class LineBudget:
    """Let up to ``per_s`` lines a second through, in bursts of up to ``burst``; count
    what was held back (a token bucket: each line one token)."""

    per_s: float
    burst: int
    clock: Callable[[], float] = time.monotonic
    _tokens: float = attrs.field(init=False, default=-1.0)
    _at: float = attrs.field(init=False, default=0.0)
    _suppressed: int = attrs.field(init=False, default=0)

    def ready(self) -> int | None:
        """``None``: stay quiet; else log now, mentioning this many suppressed lines."""
        now = self.clock()
        if self._tokens < 0:  # the first line: a full bucket
            self._tokens = float(self.burst)
        else:
            self._tokens = min(float(self.burst), self._tokens + (now - self._at) * self.per_s)
        self._at = now
        if self._tokens < 1:
            self._suppressed += 1
            return None
        self._tokens -= 1
        suppressed, self._suppressed = self._suppressed, 0
        return suppressed
