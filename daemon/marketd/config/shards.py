"""Which streams belong to which shard of the collector (pure).

A (market, symbol) belongs to shard ``crc32("<market>:<SYMBOL>") % shards``: stable across
processes, machines and versions (Python's ``hash`` is salted per process), so every shard
of a StatefulSet and every restart agrees, and each symbol's order holds within one shard.
All-market streams (``!miniTicker@arr``) go to shard 0. Shard i keeps its files in
``<directory>/shard-<i>`` (:func:`shard_dir`). The rest of a worker's settings:
:mod:`marketd.shards.worker`; the spool directories of different shard counts:
:mod:`marketd.spool.layout`.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar, cast

import attrs

from marketd.data.records import Market


class _Subscription(Protocol):
    """What the assignment reads of a subscription (``config.settings.Subscription``,
    which validates itself with this module: a protocol, not an import, keeps the two
    out of a circle)."""

    @property
    def market(self) -> Market: ...
    @property
    def symbols(self) -> tuple[str, ...]: ...
    @property
    def channels(self) -> tuple[str, ...]: ...
    @property
    def streams(self) -> tuple[str, ...]: ...


S = TypeVar("S", bound=_Subscription)

SHARD_DIR_PREFIX = "shard-"  # shard i's directories: <directory>/shard-<i>


def shard_of(market: Market, symbol: str, shards: int) -> int:
    """The shard of ``symbol`` on ``market`` ("" — an all-market stream — is shard 0)."""
    if shards <= 1 or not symbol:
        return 0
    return zlib.crc32(f"{market.value}:{symbol.upper()}".encode()) % shards


def shard_dir(directory: str, shard: int) -> str:
    """Shard ``shard``'s own directory under ``directory`` (spool, recording, state)."""
    return str(Path(directory) / f"{SHARD_DIR_PREFIX}{shard}")


def stream_symbol(stream: str) -> str:
    """``"btcusdt@kline_1m"`` → ``"BTCUSDT"``; ``"!miniTicker@arr"`` → ``""``."""
    return "" if stream.startswith("!") else stream.partition("@")[0].upper()


def subscriptions_of_shard(subscriptions: Sequence[S], shard: int, shards: int) -> tuple[S, ...]:
    """The part of ``subscriptions`` that ``shard`` of ``shards`` collects (subscriptions
    left with nothing are dropped)."""
    out: list[S] = []
    for sub in subscriptions:
        symbols = tuple(s for s in sub.symbols if shard_of(sub.market, s, shards) == shard)
        streams = tuple(
            s for s in sub.streams if shard_of(sub.market, stream_symbol(s), shards) == shard
        )
        channels = sub.channels if symbols else ()
        if symbols or streams:
            part = attrs.evolve(cast(Any, sub), symbols=symbols, channels=channels, streams=streams)
            out.append(part)
    return tuple(out)


def empty_shards(subscriptions: Sequence[_Subscription], shards: int) -> list[int]:
    """The shards that would collect nothing (fewer symbols than shards)."""
    return [i for i in range(shards) if not subscriptions_of_shard(subscriptions, i, shards)]
