"""Binance's control frames, told from data frames without parsing data (pure, no I/O).

A combined-stream data frame starts with ``{"stream":"`` (Binance's key order and no
whitespace); that is all the hot path looks at. Anything else is rare — acks, error
replies, a bare ``serverShutdown`` event, or garbage — and is parsed only if it is small.
Whatever is not recognised as control is data: it is forwarded and the codec downstream
counts it as malformed if it is.
"""

from __future__ import annotations

import orjson

from marketd.exchanges.seam import SHUTDOWN, Ack, Control, ErrorReply

_DATA_PREFIX = '{"stream":"'
_SHUTDOWN_PREFIX = '{"stream":"!serverShutdown"'
# Control frames are tiny; a larger frame that does not start like data is not parsed
# here (it is forwarded, and the codec judges it).
MAX_CONTROL_FRAME_LENGTH = 4096


def _error_text(error: object) -> str:
    if isinstance(error, dict):
        code = error.get("code")
        msg = error.get("msg", error.get("message", ""))
        return f"code {code}: {msg}" if code is not None else str(msg or error)
    return str(error)


def _request_id(value: object) -> int | None:
    # bool is an int subclass; JSON true/false are not request ids.
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def parse_control(frame: str) -> Control | None:
    """The control meaning of ``frame``, or ``None`` if it is (possibly malformed) data."""
    if frame.startswith(_DATA_PREFIX):
        return SHUTDOWN if frame.startswith(_SHUTDOWN_PREFIX) else None
    if len(frame) > MAX_CONTROL_FRAME_LENGTH:
        return None
    try:
        obj = orjson.loads(frame)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(obj, dict):
        return None
    request_id = _request_id(obj.get("id"))
    if "error" in obj:
        return ErrorReply(id=request_id, message=_error_text(obj["error"]))
    if "result" in obj and request_id is not None:
        return Ack(id=request_id, result=obj["result"])
    if "code" in obj and "msg" in obj and "stream" not in obj:
        return ErrorReply(id=request_id, message=_error_text(obj))
    if obj.get("e") == "serverShutdown" or obj.get("stream") == "!serverShutdown":
        return SHUTDOWN
    data = obj.get("data")
    if isinstance(data, dict) and data.get("e") == "serverShutdown":
        return SHUTDOWN
    return None
