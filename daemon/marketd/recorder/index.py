"""Segment indexes and the directory listing, shared by the writer and the reader: the
:class:`Index` of a segment (see :mod:`.format` for its JSON), :class:`Tally` counting
one entry by entry, :func:`load_index` reading and checking one, and
:func:`list_segments` listing a recording's segments in reading order."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypedDict

from marketd.recorder.format import INDEX_SUFFIX, INDEX_VERSION, parse_segment_name


class Index(TypedDict):
    version: int
    first_ns: int | None
    last_ns: int | None
    entries: int
    bytes: int
    streams: dict[str, int]


class Tally:
    """What an index counts, accumulated entry by entry (or batch by batch)."""

    __slots__ = ("_bulk", "_streams", "entries", "first_ns", "last_ns")

    def __init__(self) -> None:
        self.entries = 0
        self.first_ns: int | None = None
        self.last_ns: int | None = None
        self._streams: dict[tuple[str, str], int] = {}
        # Per kind, the streams of add_many: counted in C, folded in when read.
        self._bulk: dict[str, Counter[str]] = {}

    @property
    def streams(self) -> dict[tuple[str, str], int]:
        """Entries per (kind, stream)."""
        counts = self._streams
        for kind, bulk in self._bulk.items():
            for stream, count in bulk.items():
                key = (kind, stream)
                counts[key] = counts.get(key, 0) + count
        self._bulk.clear()
        return counts

    def add(self, ns: int, kind: str, stream: str) -> None:
        self.entries += 1
        if self.first_ns is None or ns < self.first_ns:
            self.first_ns = ns
        if self.last_ns is None or ns > self.last_ns:
            self.last_ns = ns
        key = (kind, stream)
        self._streams[key] = self._streams.get(key, 0) + 1

    def add_many(self, kind: str, received_ns: Sequence[int], streams: Sequence[str]) -> None:
        """Entries of one kind at once: :meth:`add` of each, in C loops."""
        if not received_ns:
            return
        self.entries += len(received_ns)
        low, high = min(received_ns), max(received_ns)
        if self.first_ns is None or low < self.first_ns:
            self.first_ns = low
        if self.last_ns is None or high > self.last_ns:
            self.last_ns = high
        bulk = self._bulk.get(kind)
        if bulk is None:
            bulk = self._bulk[kind] = Counter()
        bulk.update(streams)

    def merge(self, other: Tally) -> None:
        low, high = other.first_ns, other.last_ns
        if low is None or high is None:
            return  # nothing counted
        self.first_ns = low if self.first_ns is None else min(self.first_ns, low)
        self.last_ns = high if self.last_ns is None else max(self.last_ns, high)
        self.entries += other.entries
        counts = self._streams
        for key, count in other.streams.items():
            counts[key] = counts.get(key, 0) + count

    def index(self, size: int) -> Index:
        return Index(
            version=INDEX_VERSION,
            first_ns=self.first_ns,
            last_ns=self.last_ns,
            entries=self.entries,
            bytes=size,
            streams={f"{k}:{s}": n for (k, s), n in sorted(self.streams.items())},
        )


def list_segments(directory: Path) -> list[tuple[int, int, str]]:
    """``(first received_ns, seq, name)`` of the directory's segments, in reading order."""
    found = []
    for name in os.listdir(directory):
        parsed = parse_segment_name(name)
        if parsed is not None:
            found.append((*parsed, name))
    return sorted(found)


def load_index(path: Path) -> Index | None:
    """The segment's index if it is valid and describes the file as it is now."""
    try:
        size = path.stat().st_size
        data: Any = json.loads(Path(f"{path}{INDEX_SUFFIX}").read_bytes())
    except (OSError, ValueError):
        return None
    if not (
        isinstance(data, dict)
        and data.get("version") == INDEX_VERSION
        and data.get("bytes") == size
        and _is_count(data.get("entries"))
        and isinstance(streams := data.get("streams"), dict)
        and all(isinstance(k, str) and _is_count(v) for k, v in streams.items())
    ):
        return None
    first, last = data.get("first_ns"), data.get("last_ns")
    if data["entries"] == 0:
        if first is not None or last is not None:
            return None
    elif not (_is_count(first) and _is_count(last)):
        return None
    return Index(
        version=INDEX_VERSION,
        first_ns=first,
        last_ns=last,
        entries=data["entries"],
        bytes=size,
        streams=streams,
    )


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
