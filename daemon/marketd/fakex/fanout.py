"""Subscribers of one stream and the sending of one payload to all of them (pure, no trio).

A group maps the combined-frame prefix (``None`` for raw ``/ws`` connections) to the
subscribers: a payload is formatted once, and a combined frame once per stream name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from marketd.data.records import Market
    from marketd.fakex.protocol import StreamRef


class Subscriber(Protocol):
    def push(self, frame: str) -> None:
        """Queue one frame for sending."""

    def push_seq(self, frame: str) -> None:
        """Queue one sequenced frame (trade, aggTrade, depth): a ``gap`` fault may skip it."""


Group = dict[str | None, list[Subscriber]]


class StreamHub(Protocol):
    """What a connection subscribes through: the fake's market hub, or a replay's."""

    @property
    def market(self) -> Market: ...

    @property
    def symbol_index(self) -> Mapping[str, int]:
        """Lower-case symbol → index, for parsing stream names."""

    def add(self, sub: Subscriber, ref: StreamRef, *, combined: bool) -> None: ...

    def remove(self, sub: Subscriber, ref: StreamRef, *, combined: bool) -> None: ...


def join(group: Group, sub: Subscriber, prefix: str | None) -> None:
    group.setdefault(prefix, []).append(sub)


def leave(group: Group, sub: Subscriber, prefix: str | None) -> None:
    subs = group.get(prefix)
    if subs is None:
        return
    if sub in subs:
        subs.remove(sub)
    if not subs:
        del group[prefix]


def send(group: Group, payload: str, seq: bool = False) -> int:
    """Queue ``payload`` to every subscriber of ``group``; return how many frames."""
    n = 0
    for prefix, subs in group.items():
        frame = payload if prefix is None else prefix + payload + "}"
        for s in subs:
            if seq:
                s.push_seq(frame)
            else:
                s.push(frame)
        n += len(subs)
    return n
