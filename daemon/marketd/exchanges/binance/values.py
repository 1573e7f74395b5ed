"""The value types of Binance payloads, and the cheap checks that keep garbage out.

Binance prints ids and times as non-negative integers and prices, quantities and volumes as
decimal strings (``"0.00100000"``, ``"100"``). A value outside that shape is not market data
but damage (or a hostile peer), and the whole payload is rejected as malformed:

* ids and times: ``0 <= n <= 2**63 - 1`` (``Id``); a ticker's first/last trade id may be
  ``-1`` ("no trade in the window", ``TradeIdOrNone``). msgspec checks these in C.
* decimals: ASCII digits with at most one inner point; price changes, percentages and
  funding rates may start with ``-``. Length (1..64) is checked by msgspec in C; the shape
  by one precompiled regex per payload, over all its decimals at once, from the struct's
  ``__post_init__`` (msgspec turns the ``ValueError`` into a ``ValidationError``).
  Rejected: ``"abc"``, ``"1.2.3"``, ``""``, ``"NaN"``, ``"1e5"``, ``".5"``, ``"5."``,
  ``"+1"``, ``" 1"``, ``"1,5"``, ``"0x1F"``, non-ASCII digits, ...
* kline intervals: ``<1-2 digits><s|m|h|d|w|M>``; order words (liquidation side, type, time
  in force, status): 1..32 of ``A-Z 0-9 _``, starting with a letter (msgspec patterns).
* symbols: 1..40 characters, none of them a control character, a space or a line break,
  ASCII or not (Binance lists symbols with CJK letters, so other non-ASCII is allowed);
  checked in the same regex call as the decimals.

The checks cost about 0.2-0.3 µs per payload (a few µs for a 20-level depth diff): see
``bench/bench_codec.py``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated

import msgspec

INT64_MAX = 2**63 - 1
MAX_DECIMAL_CHARS = 64
MAX_SYMBOL_CHARS = 40

Id = Annotated[int, msgspec.Meta(ge=0, le=INT64_MAX)]
TradeIdOrNone = Annotated[int, msgspec.Meta(ge=-1, le=INT64_MAX)]
DecimalText = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_DECIMAL_CHARS)]
# A decimal Binance may leave empty (``"r": ""`` for contracts without funding).
OptionalDecimalText = Annotated[str, msgspec.Meta(max_length=MAX_DECIMAL_CHARS)]
Symbol = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_SYMBOL_CHARS)]
# A kline or average-price interval as Binance spells it ("1s", "15m", "1M": M is a month).
# ``\Z``, not ``$``: msgspec searches the pattern, and ``$`` also matches before a newline.
Interval = Annotated[str, msgspec.Meta(pattern=r"\A[0-9]{1,2}[smhdwM]\Z")]
# An upper-case word naming an order property (side, type, time in force, status:
# "SELL", "LIMIT", "IOC", "FILLED"). A word rather than a fixed list: Binance adds values.
OrderWord = Annotated[str, msgspec.Meta(pattern=r"\A[A-Z][A-Z0-9_]{0,31}\Z")]

BAD_VALUE = "a symbol, price, quantity or volume is not well-formed"

_UNSIGNED = r"[0-9]++(?:\.[0-9]++)?+"
# C0 and C1 controls, DEL, and every Unicode space and line/paragraph separator.
_NOT_IN_SYMBOLS = r"\x00-\x20\x7f-\xa0\u1680\u2000-\u200b\u2028\u2029\u202f\u205f\u3000\ufeff"
_TOKENS = {
    "y": rf"[^{_NOT_IN_SYMBOLS}]++",  # a symbol
    "u": _UNSIGNED,
    "s": rf"-?+{_UNSIGNED}",
    "o": rf"(?:-?+{_UNSIGNED})?+",
}


def values_check(signature: str) -> Callable[[str], re.Match[str] | None]:
    """A matcher for ``len(signature)`` values joined by single spaces.

    ``signature`` has one letter per value: ``y`` a symbol, ``u`` an unsigned decimal, ``s``
    a signed one, ``o`` signed or empty. No token can hold a space and the count is exact,
    so a value holding a space (or nothing) cannot pass as two (or zero) tokens: every
    value must be one well-formed token on its own.
    """
    return re.compile(" ".join(_TOKENS[c] for c in signature)).fullmatch


_LEVEL = rf'\["{_UNSIGNED}","{_UNSIGNED}"\]'
_SIDE = rf"\[(?:{_LEVEL}(?:,{_LEVEL})*+)?+\]"
# ``msgspec.json.encode((bids, asks))`` of well-formed levels: quotes and backslashes in a
# value are escaped there, so a value cannot fake the structure around it.
_LEVELS = re.compile(rf"\[{_SIDE},{_SIDE}\]".encode()).fullmatch
_encode = msgspec.json.encode


def levels_ok(bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> bool:
    """Every price and quantity of a depth diff is an unsigned decimal."""
    return _LEVELS(_encode((bids, asks))) is not None
