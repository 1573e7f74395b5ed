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
``bench/bench_codec.py``. Many payloads of one kind can be checked at once, several times
cheaper per payload, with :func:`columns_check` (the backtest's fast path,
:mod:`marketd.exchanges.binance.ticks`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
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
    "e": rf"(?:{_UNSIGNED})?+",
}


def values_check(signature: str) -> Callable[[str], re.Match[str] | None]:
    """A matcher for ``len(signature)`` values joined by single spaces.

    ``signature`` has one letter per value: ``y`` a symbol, ``u`` an unsigned decimal, ``s``
    a signed one, ``o`` signed or empty, ``e`` unsigned or empty. No token can hold a
    space and the count is exact, so a value holding a space (or nothing) cannot pass as
    two (or zero) tokens: every value must be one well-formed token on its own.
    """
    return re.compile(" ".join(_TOKENS[c] for c in signature)).fullmatch


ColumnsCheck = Callable[[Sequence[Sequence[str]]], bool]


def columns_check(signature: str) -> ColumnsCheck:
    """A check of many payloads' values at once: given one column per letter of
    ``signature`` (as for :func:`values_check`; column ``i`` holds value ``i`` of every
    payload), True only when every value is well-formed, i.e. when ``values_check``
    accepts every payload's row. False when one is not, or when the check cannot tell
    cheaply (a symbol with letters beyond ASCII is checked with the regex, one by one;
    a decimal never has such letters): then check the payloads one by one.

    Built of str and bytes operations that run in C over the joined columns, no regex
    per value: about a tenth of the cost of ``values_check`` per payload.
    """
    checks = [_COLUMN_CHECKS[letter] for letter in signature]

    def check(columns: Sequence[Sequence[str]]) -> bool:
        return all(ok(column) for ok, column in zip(checks, columns, strict=True))

    return check


_SYMBOL = re.compile(_TOKENS["y"]).fullmatch
_SYMBOL_BYTES = bytes(range(0x21, 0x7F))  # what the symbol token allows of ASCII
_DIGITS = b"0123456789"


def _symbols_ok(column: Sequence[str]) -> bool:
    """Each value is a symbol: not empty, no control character, space or line break."""
    if "" in column:
        return False
    text = "".join(column)
    if text.isascii():  # O(1): CPython keeps the flag
        return not text.encode("ascii").translate(None, _SYMBOL_BYTES)
    return all(_SYMBOL(v) for v in column)


def _decimals_ok(column: Sequence[str], signed: bool, optional: bool) -> bool:
    """Each value is ASCII digits with at most one inner point (``signed``: after an
    optional ``-``; ``optional``: or empty), as the ``u``, ``s``, ``o`` and ``e`` tokens
    say. Told from the joined column ``" v1 v2 ... vn "`` with the digits deleted: only
    spaces and points may be left, the spaces exactly the n + 1 separators (no value holds
    one), no two separators adjacent (no value empty, unless ``optional``), no point beside
    a separator (first or last in its value) and no two points adjacent (two in one
    value)."""
    if not column:
        return True
    text = f" {' '.join(column)} "
    if not text.isascii():  # a digit beyond ASCII, or other garbage
        return False
    joined = text.encode("ascii")
    if signed:
        if optional and b" - " in joined:  # a lone sign: neither empty nor a number
            return False
        joined = joined.replace(b" -", b" ")  # a lone "-" becomes empty: refused below
    rest = joined.translate(None, _DIGITS)
    return (
        not rest.translate(None, b". ")
        and rest.count(b" ") == len(column) + 1
        and (optional or b"  " not in joined)
        and b" ." not in joined
        and b". " not in joined
        and b".." not in rest
    )


_COLUMN_CHECKS: dict[str, Callable[[Sequence[str]], bool]] = {
    "y": _symbols_ok,
    "u": lambda c: _decimals_ok(c, signed=False, optional=False),
    "s": lambda c: _decimals_ok(c, signed=True, optional=False),
    "o": lambda c: _decimals_ok(c, signed=True, optional=True),
    "e": lambda c: _decimals_ok(c, signed=False, optional=True),
}


_LEVEL = rf'\["{_UNSIGNED}","{_UNSIGNED}"\]'
_SIDE = rf"\[(?:{_LEVEL}(?:,{_LEVEL})*+)?+\]"
# ``msgspec.json.encode((bids, asks))`` of well-formed levels: quotes and backslashes in a
# value are escaped there, so a value cannot fake the structure around it.
_LEVELS = re.compile(rf"\[{_SIDE},{_SIDE}\]".encode()).fullmatch
_encode = msgspec.json.encode


def levels_ok(bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> bool:
    """Every price and quantity of a depth diff is an unsigned decimal."""
    return _LEVELS(_encode((bids, asks))) is not None
