"""Values the spool hands out: positions, statistics, errors."""

from __future__ import annotations

import attrs
import msgspec

from marketd.errors import MarketdError


class SpoolError(MarketdError):
    """The spool cannot read or write its directory (I/O error, directory in use by another
    process, or an earlier failure left it unusable): check the disk and spool.directory,
    then restart."""


class SpoolFull(SpoolError):
    """An append would pass ``spool.max_bytes`` (or the disk is full); nothing of it was
    written. The caller's policy applies (default: stop intake until acks free space)."""


class Position(msgspec.Struct, frozen=True, order=True, gc=False):
    """Where a spooled record is. Ordered by ``seq``, the record's spool sequence number
    (dense and increasing for the directory's life; gaps only where entries were lost to
    corruption). ``segment`` names the segment file (its first seq) and ``end`` is the
    byte offset just past the entry there: where reading resumes after it."""

    seq: int
    segment: int
    end: int


@attrs.frozen
class SpoolStatistics:
    directory: str
    bytes: int  # on disk, every segment file (acked entries not yet deleted included)
    max_bytes: int
    segments: int
    records_pending: int  # appended, not acknowledged
    records_unread: int  # appended, not handed out by read() yet
    oldest_pending_age_s: float  # now - received_ns of the oldest pending record; 0 if none
    appended: int  # records appended since open
    acknowledged: int  # records acknowledged since open
    refused_appends: int  # append() calls refused with SpoolFull since open
    full: bool  # the last append was refused and no ack has freed space since
    corrupted_entries: int  # damaged regions skipped (each may hold several entries)
    corrupted_bytes: int
    truncated_bytes: int  # torn tail removed at open
    checkpoint_corrupted: bool  # the ack checkpoint was unreadable at open (all replayed)
    next_seq: int
    ack_seq: int
    synced_seq: int  # every record up to this seq survives an OS crash
    syncs: int = 0  # sync() calls that fsynced something, since open
    appends: int = 0  # append() calls that wrote records (each one write), since open
