"""What the commands share about their arguments: argparse value types that say what is
valid, and telling a server that could not listen from other failures."""

from __future__ import annotations

import argparse
import errno
import math
import socket
from collections.abc import Callable

from marketd.errors import leaves

_BIND_ERRNOS = frozenset({errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES})


def whole(what: str, low: int | None = None, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer in ``low..high``; anything else is refused with
    ``must be <what>, got '<text>'`` (argparse prefixes the flag and exits 2)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
        if (low is not None and value < low) or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
        return value

    return parse


def number(what: str, *, zero: bool) -> Callable[[str], float]:
    """An argparse type: a finite number, positive (or also 0 when ``zero``); anything
    else is refused with ``must be <what>, got '<text>'``."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value < 0 or (value == 0 and not zero):
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
        return value

    return parse


def bind_error(exc: BaseException, *, any_errno: bool = False) -> OSError | None:
    """The ``OSError`` of a server that could not listen, bare or alone in the (nested)
    groups a trio nursery wraps it in; else None. Unless ``any_errno``, only the errors of
    binding count: a host that does not resolve, an address in use or not this machine's,
    a privileged port."""
    found = leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc]
    if len(found) != 1 or not isinstance(found[0], OSError):
        return None
    error = found[0]
    if any_errno or isinstance(error, socket.gaierror) or error.errno in _BIND_ERRNOS:
        return error
    return None
