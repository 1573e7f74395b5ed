"""What a replay needs to know of recorded entries, and its command-line values (pure).

A recorded WebSocket entry's connection is marketd's connection id (``spot-0``,
``usdm-public-0``, ``usdm-market-1``): its market is the part before the first ``-``. A
REST entry's market is in its path (``/api/...`` spot, ``/fapi/...`` USD-M). A WebSocket
payload is the combined-stream frame as received, ``{"stream":"<name>","data":<data>}``.
"""

from __future__ import annotations

import datetime as dt
import re
from urllib.parse import parse_qsl, urlsplit

from marketd.data.records import Market
from marketd.recorder.format import Entry

_MARKETS = {m.value: m for m in Market}
_REST_PREFIXES = (("/api/", Market.SPOT), ("/fapi/", Market.USDM))
_DIGITS = re.compile(r"[0-9]{1,19}")


def market_of(entry: Entry) -> Market | None:
    """The market an entry belongs to; ``None`` when it cannot be told."""
    if entry.kind == "rest":
        for prefix, market in _REST_PREFIXES:
            if entry.stream.startswith(prefix):
                return market
        return None
    return _MARKETS.get(entry.connection.partition("-")[0])


def rest_target(target: str) -> tuple[str, dict[str, str]]:
    """A recorded REST target (path and query) split into the path and its parameters."""
    parts = urlsplit(target)
    return parts.path, dict(parse_qsl(parts.query))


def data_of(frame: str, stream: str) -> str | None:
    """The ``data`` of a combined-stream frame of ``stream``, without parsing it."""
    # '{"stream":"' + stream + '","data":' ... '}'
    at = 11 + len(stream)
    if (
        frame.startswith('{"stream":"')
        and frame.startswith(stream, 11)
        and frame.startswith('","data":', at)
        and frame.endswith("}")
    ):
        return frame[at + 9 : -1]
    return None


def parse_instant(text: str) -> int:
    """Nanoseconds since the epoch of ``2026-12-02T14:00:00Z`` (ISO 8601; no zone: UTC) or
    of epoch milliseconds (``1796220000000``); ``ValueError`` says what is accepted."""
    text = text.strip()
    if _DIGITS.fullmatch(text):
        return int(text) * 1_000_000
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"a time must be ISO 8601 (2026-12-02T14:00:00Z) or epoch milliseconds, got {text!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    delta = moment - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def parse_speed(text: str) -> float | None:
    """A replay speed: ``max`` (``None``: as fast as the clients read) or a factor > 0."""
    if text.strip().lower() == "max":
        return None
    try:
        speed = float(text)
    except ValueError:
        speed = float("nan")
    if not 0 < speed < float("inf"):
        raise ValueError(f"a speed is a number above 0 (1: as recorded) or max, got {text!r}")
    return speed
