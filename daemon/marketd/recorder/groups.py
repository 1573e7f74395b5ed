"""The groups of format version 2 (see :mod:`.format` for the layout): :class:`Group`
gathers the consecutive entries of one kind and connection for a block (whole frame
batches at a time: the recorder's hot path), :func:`decode_groups` reads a block's, as
:class:`~marketd.recorder.format.Columns`."""

from __future__ import annotations

import itertools
import struct
import sys
from array import array
from collections.abc import Iterable, Sequence
from operator import itemgetter
from typing import Final

from marketd.recorder.format import KINDS, Columns

# Length of the rest of the group, kind, len(connection), n entries, n streams.
_GROUP: Final = struct.Struct("<IBHIH")
_U16: Final = struct.Struct("<H")
GROUP_HEADER: Final = _GROUP.size
ENTRY_SIZE: Final = 8 + 2 + 4  # received_ns, stream index, payload length
MAX_STREAMS: Final = 0xFFFF  # a group's stream table
MAX_NAME: Final = 0xFFFF  # bytes of a connection, of a stream
# The columns are little-endian; array's native order is swapped where it is not.
_SWAP: Final = sys.byteorder != "little"


class Group:
    """Entries of one kind and connection, column by column; ``size`` is the exact size
    of :meth:`encode`'s bytes. Not thread-safe (the writer's)."""

    __slots__ = ("_conn", "_names", "_payloads", "code", "connection", "ids", "lengths", "ns",
                 "size", "table")  # fmt: skip

    def __init__(self, code: int, connection: str) -> None:
        conn = connection.encode()
        if len(conn) > MAX_NAME:
            raise ValueError(f"a connection takes at most {MAX_NAME} bytes")
        self.code = code
        self.connection = connection
        self._conn = conn
        self.table: dict[str, int] = {}  # stream → its index
        self._names: list[bytes] = []
        self.ns = array("Q")
        self.ids = array("H")
        self.lengths = array("I")
        self._payloads: list[bytes] = []
        self.size = _GROUP.size + len(conn)

    def __len__(self) -> int:
        return len(self.ns)

    def add_streams(self, streams: Iterable[str]) -> None:
        """Add ``streams`` (not in the table yet) to the table, in order. The caller has
        checked that they fit (:data:`MAX_STREAMS`)."""
        table, names = self.table, self._names
        for stream in streams:
            name = stream.encode()
            if len(name) > MAX_NAME:
                raise ValueError(f"a stream name takes at most {MAX_NAME} bytes")
            table[stream] = len(names)
            names.append(name)
            self.size += 2 + len(name)

    def ids_of(self, streams: Sequence[str]) -> array[int] | None:
        """The table indexes of ``streams``; ``None`` if one is not in the table."""
        try:
            if len(streams) == 1:
                return array("H", (self.table[streams[0]],))
            # One C call for every lookup (itemgetter of one item returns it bare).
            return array("H", itemgetter(*streams)(self.table))
        except KeyError:
            return None

    def append(self, received_ns: int, stream: str, payload: bytes) -> None:
        """One entry (its stream in the table, or room for it: see :meth:`add_streams`)."""
        if stream not in self.table:
            self.add_streams((stream,))
        self.ns.append(received_ns)
        self.ids.append(self.table[stream])
        self.lengths.append(len(payload))
        self._payloads.append(payload)
        self.size += ENTRY_SIZE + len(payload)

    def extend(
        self, received_ns: array[int], ids: array[int], lengths: array[int], payloads: bytes
    ) -> None:
        """Entries whose payloads are ``payloads``, one after the other, cut by ``lengths``."""
        self.ns.extend(received_ns)
        self.ids.extend(ids)
        self.lengths.extend(lengths)
        self._payloads.append(payloads)
        self.size += ENTRY_SIZE * len(received_ns) + len(payloads)

    def encode(self) -> bytes:
        names = self._names
        head = _GROUP.pack(self.size - 4, self.code, len(self._conn), len(self.ns), len(names))
        table = b"".join(_U16.pack(len(name)) + name for name in names)
        columns = [self.ns, self.ids, self.lengths]
        if _SWAP:
            columns = [array(c.typecode, c) for c in columns]
            for column in columns:
                column.byteswap()
        return b"".join((head, self._conn, table, *(c.tobytes() for c in columns), *self._payloads))


def decode_groups(raw: bytes) -> tuple[list[Columns], bool]:
    """The groups of a version 2 block's raw bytes, and whether it ended with a bad
    group (the groups after one are not decoded: a bad length leaves no place to
    resume)."""
    out: list[Columns] = []
    end = len(raw)
    pos = 0
    while pos < end:
        if end - pos < _GROUP.size:
            return out, True
        length, code, n_conn, count, n_streams = _GROUP.unpack_from(raw, pos)
        stop = pos + 4 + length
        at = pos + _GROUP.size
        if code >= len(KINDS) or stop > end or at + n_conn > stop:
            return out, True
        streams: list[str] = []
        try:
            connection = str(raw[at : at + n_conn], "utf-8")
            at += n_conn
            for _ in range(n_streams):
                if at + 2 > stop:
                    return out, True
                (n,) = _U16.unpack_from(raw, at)
                if at + 2 + n > stop:
                    return out, True
                streams.append(str(raw[at + 2 : at + 2 + n], "utf-8"))
                at += 2 + n
        except UnicodeDecodeError:
            return out, True
        if at + ENTRY_SIZE * count > stop:
            return out, True
        ns, ids, lengths = array("Q"), array("H"), array("I")
        for column in (ns, ids, lengths):
            size = column.itemsize * count
            column.frombytes(raw[at : at + size])
            if _SWAP:
                column.byteswap()
            at += size
        if sum(lengths) != stop - at or (count and max(ids) >= n_streams):
            return out, True
        starts = list(itertools.accumulate(lengths, initial=at))
        payloads = list(map(raw.__getitem__, map(slice, starts, starts[1:])))
        out.append(Columns(KINDS[code], connection, streams, ns.tolist(), ids.tolist(), payloads))
        pos = stop
    return out, False
