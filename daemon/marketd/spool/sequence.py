"""The last trade ids that reached the spool, kept across crashes and restarts.

A restarted daemon must know where each symbol's trades stopped, or the trades made
while it was down would be silently missing from Kafka. The spool stage writes
``sequence.json`` in the spool directory after every fsync of the spool: for each
(market, kind, symbol) of a consecutive-id kind (``trade``, ``aggTrade``), the highest
id appended, and ``spool_seq``, the spool sequence number up to which those appends
reach. The file is replaced atomically (temporary file, fsync, rename).

At start-up :func:`open_spool` reads the file, opens the spool and reads the records it
holds beyond ``spool_seq`` (appended after the last checkpoint; a ``kill -9`` keeps them
in the page cache), so the result is exactly the highest id that is either in Kafka or
will be delivered from the spool. For that, the spool must still hold those records
when Kafka has already acknowledged them: it is opened holding every record above the
checkpoint's ``spool_seq`` (``hold_after``), and the stage releases records only up to
the ``spool_seq`` of a checkpoint written. The normalizer starts from these ids: the
first live trade of each symbol opens a gap that is backfilled from REST
(``pipeline.backfill``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from typing import Final

import msgspec
import structlog

from marketd.data.records import Market, Record
from marketd.pipeline.sequence import SEQUENCED_KINDS, SeqKey
from marketd.spool.settings import SpoolSettings
from marketd.spool.spool import Spool

log = structlog.get_logger(__name__)

SEQUENCE_FILE: Final = "sequence.json"
FORMAT_VERSION: Final = 1
_SCAN_BATCH = 10_000


class _File(msgspec.Struct, frozen=True):
    version: int
    spool_seq: int
    written_at_ms: int
    last_ids: list[tuple[str, str, str, int]]


def note_ids(last_ids: dict[SeqKey, int], records: Iterable[Record]) -> bool:
    """Remember the highest consecutive id per key among ``records`` (append order).
    Return whether any id moved."""
    kinds = SEQUENCED_KINDS
    moved = False
    for r in records:
        if r.kind in kinds:
            key = (r.market, r.kind, r.symbol)
            if r.seq > last_ids.get(key, -1):
                last_ids[key] = r.seq
                moved = True
    return moved


def write_checkpoint(directory: str, spool_seq: int, last_ids: dict[SeqKey, int]) -> None:
    """Replace ``sequence.json`` atomically and durably. Blocking: run in a thread."""
    body = msgspec.json.encode(
        _File(
            version=FORMAT_VERSION,
            spool_seq=spool_seq,
            written_at_ms=time.time_ns() // 1_000_000,
            # Sorted as tuples of strings (not by str() of each item: 5x the CPU, 5 times a
            # second per process).
            last_ids=sorted((m.value, k, s, i) for (m, k, s), i in last_ids.items()),
        )
    )
    path = os.path.join(directory, SEQUENCE_FILE)
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, body)
        os.fdatasync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def read_checkpoint(directory: str) -> tuple[int, dict[SeqKey, int]] | None:
    """``(spool_seq, last_ids)`` from ``sequence.json``; ``None`` if missing or unreadable."""
    path = os.path.join(directory, SEQUENCE_FILE)
    try:
        with open(path, "rb") as f:
            data = msgspec.json.decode(f.read(), type=_File)
    except FileNotFoundError:
        return None
    except (OSError, msgspec.DecodeError, ValueError) as exc:
        log.error(  # noqa: TRY400 - the reason is the message; a traceback adds nothing
            "spool sequence checkpoint unreadable; scanning the spool", error=str(exc)
        )
        return None
    if data.version != FORMAT_VERSION:
        log.error("spool sequence checkpoint of another version ignored", version=data.version)
        return None
    return data.spool_seq, {(Market(m), k, s): i for m, k, s, i in data.last_ids}


def open_spool(settings: SpoolSettings) -> tuple[Spool, dict[SeqKey, int]]:
    """Open the spool holding what the checkpoint does not cover, and recover the highest
    trade/aggTrade id per key that reached it before this start.

    Blocking (reads the spool's tail): run in a thread.
    """
    found = read_checkpoint(settings.directory)
    spool = Spool.open(settings, hold_after=found[0] if found is not None else 0)
    try:
        return spool, _recover_last_ids(spool, found)
    except BaseException:
        spool.close()
        raise


def _recover_last_ids(
    spool: Spool, found: tuple[int, dict[SeqKey, int]] | None
) -> dict[SeqKey, int]:
    spool_seq, last_ids = found if found is not None else (0, {})
    scanned = 0
    while batch := spool.peek_after(spool_seq, _SCAN_BATCH):
        note_ids(last_ids, (record for _, record in batch))
        spool_seq = batch[-1][0].seq
        scanned += len(batch)
    if found is not None or last_ids:
        log.info(
            "trade ids recovered from the spool",
            keys=len(last_ids),
            scanned_after_checkpoint=scanned,
            checkpoint=found is not None,
        )
    return last_ids
