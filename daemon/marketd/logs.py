"""structlog set-up: console or JSON lines, one level for marketd and the libraries."""

from __future__ import annotations

import logging
import sys
import time

import attrs
import structlog

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def configure_logging(level: str = "info", fmt: str = "console") -> None:
    """Route structlog and stdlib logging (aiokafka, hypercorn) to stderr in one format."""
    numeric = _LEVELS.get(level, logging.INFO)
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
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
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    # aiokafka is chatty at INFO about every reconnect attempt.
    logging.getLogger("aiokafka").setLevel(max(numeric, logging.WARNING))


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
