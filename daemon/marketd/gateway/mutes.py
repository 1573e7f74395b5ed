"""Per-symbol mutes of the gateway, changeable at runtime and kept across restarts (no trio).

An alert of a muted symbol is not pushed live to the browsers (:class:`marketd.gateway.hub.
AlertHub` asks :meth:`MuteStore.muted`); it stays in the history and ``/api/alerts``,
marked ``"muted": true``. A mute lasts until a wall-clock time (``until_ms``, epoch ms) or,
without one, until it is lifted.

The mutes live in ``<alerts.state_dir>/mutes.json`` (as the rules live in ``rules.json``):
read at start, and written atomically by :meth:`MuteStore.replace` (a temporary file in
the same directory, fsync, rename, fsync of the directory). Without a directory the store
keeps them in memory only.

The accepted shape (``PUT /api/mutes`` and the file) is ``{"mutes": [{"symbol":
"BTCUSDT", "until_ms": 1760000000000}, {"symbol": "ETHUSDT", "until_ms": null}]}``: at most
``MAX_MUTES`` entries, each symbol ``[A-Z0-9_]{1,32}`` and given once, ``until_ms`` an
integer in the future or null (or omitted). The whole set is replaced.

Every time is passed in (``now_ms``): the store reads no clock.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import attrs

from marketd.statefile import write_atomically

MUTES_FILE: Final = "mutes.json"
MAX_MUTES: Final = 500
"""Most symbols muted at once."""
MAX_UNTIL_MS: Final = 253_402_300_799_999
"""The latest ``until_ms`` accepted: 9999-12-31T23:59:59.999Z."""
SYMBOL: Final = re.compile(r"[A-Z0-9_]{1,32}")
_KEYS: Final = ("symbol", "until_ms")


@attrs.frozen
class Mute:
    symbol: str
    # Epoch ms when the mute ends; None: until it is lifted.
    until_ms: int | None = None

    def active(self, now_ms: int) -> bool:
        return self.until_ms is None or now_ms < self.until_ms

    def to_json(self) -> dict[str, Any]:
        return {"symbol": self.symbol, "until_ms": self.until_ms}


class MutesError(ValueError):
    """A mute list is invalid; the message names each problem (``mutes[0].symbol: ...``)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


def parse_mutes(raw: object, now_ms: int | None) -> tuple[Mute, ...]:
    """Validate ``raw`` (``{"mutes": [...]}``) into mutes, sorted by symbol. With
    ``now_ms``, each ``until_ms`` must be later (a new mute); None accepts past ones (the
    saved file, whose expired mutes are simply no longer active)."""
    if not isinstance(raw, Mapping) or set(raw) != {"mutes"}:
        raise MutesError(['expected a JSON object {"mutes": [{"symbol": ..., "until_ms": ...}]}'])
    items = raw["mutes"]
    if not isinstance(items, list):
        raise MutesError([f"mutes: expected a list, got {type(items).__name__}"])
    if len(items) > MAX_MUTES:
        raise MutesError([f"mutes: at most {MAX_MUTES} symbols can be muted, got {len(items)}"])
    mutes: dict[str, Mute] = {}
    problems: list[str] = []
    for index, item in enumerate(items):
        path = f"mutes[{index}]"
        mute, found = _parse_mute(item, path, now_ms)
        problems += found
        if mute is None:
            continue
        if mute.symbol in mutes:
            problems.append(f"{path}.symbol: {mute.symbol} is listed twice")
        mutes[mute.symbol] = mute
    if problems:
        raise MutesError(problems)
    return tuple(mutes[s] for s in sorted(mutes))


def _parse_mute(item: object, path: str, now_ms: int | None) -> tuple[Mute | None, list[str]]:
    if not isinstance(item, Mapping):
        return None, [f"{path}: expected an object with symbol and until_ms"]
    problems = [
        f"{path}.{key}: unknown key (known: {', '.join(_KEYS)})" for key in item if key not in _KEYS
    ]
    symbol = item.get("symbol")
    if symbol is None:
        problems.append(f"{path}.symbol: required")
    elif not isinstance(symbol, str) or not SYMBOL.fullmatch(symbol):
        shown = symbol[:40] if isinstance(symbol, str) else symbol
        problems.append(
            f"{path}.symbol: 1 to 32 characters of A-Z, 0-9 and _ (as the exchange spells "
            f"it, e.g. BTCUSDT), got {shown!r}"
        )
    until = item.get("until_ms")
    if until is not None:
        if isinstance(until, bool) or not isinstance(until, int):
            problems.append(f"{path}.until_ms: an integer (epoch ms) or null, got {until!r}")
        elif not 0 < until <= MAX_UNTIL_MS:
            problems.append(f"{path}.until_ms: epoch ms between 1 and {MAX_UNTIL_MS}")
        elif now_ms is not None and until <= now_ms:
            problems.append(f"{path}.until_ms: must be in the future (now is {now_ms})")
    if problems:
        return None, problems
    assert isinstance(symbol, str)
    return Mute(symbol, until), []


def mutes_json(mutes: tuple[Mute, ...]) -> list[dict[str, Any]]:
    return [m.to_json() for m in mutes]


class MuteStore:
    """The mutes in force; see the module doc. ``state_dir`` None: in memory only."""

    def __init__(self, state_dir: str | Path | None = None) -> None:
        self.path = Path(state_dir) / MUTES_FILE if state_dir is not None else None
        self._mutes: dict[str, Mute] = {}
        if self.path is not None and self.path.exists():
            self._mutes = {m.symbol: m for m in self._load(self.path)}

    def muted(self, symbol: str, now_ms: int) -> bool:
        mute = self._mutes.get(symbol)
        return mute is not None and mute.active(now_ms)

    def mutes(self, now_ms: int) -> tuple[Mute, ...]:
        """The mutes active at ``now_ms``, sorted by symbol."""
        return tuple(m for m in self._mutes.values() if m.active(now_ms))

    def replace(self, raw: object, now_ms: int) -> tuple[Mute, ...]:
        """Validate, persist and apply a new mute list; :class:`MutesError` if invalid,
        ``OSError`` if it cannot be written (nothing changes in either case)."""
        mutes = parse_mutes(raw, now_ms)
        if self.path is not None:
            text = json.dumps({"mutes": mutes_json(mutes)}, indent=2) + "\n"
            write_atomically(self.path, text)
        self._mutes = {m.symbol: m for m in mutes}
        return mutes

    @staticmethod
    def _load(path: Path) -> tuple[Mute, ...]:
        fix = f"{path}: fix or delete the file (no symbol is muted then)"
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise MutesError([f"{path}: cannot read the saved mutes: {exc}", fix]) from None
        try:
            return parse_mutes(raw, None)
        except MutesError as exc:
            raise MutesError([*(f"{path}: {p}" for p in exc.problems), fix]) from None
