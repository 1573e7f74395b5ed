"""Spool directories across collector layouts: what another shard count left behind.

A layout's spools: unsharded, ``spool.directory`` itself (the *root*); with
``collector.shards: N``, ``<root>/shard-<i>`` for each i < N. Changing N — or going from one
process to shards and back — leaves the old layout's directories where they were, and two
things in them matter:

* **Records not yet in Kafka** (a stop with Kafka down, a crash). The new layout would never
  deliver them, and delivered later they would come after the same symbols' newer records.
  So a parent, or an unsharded process, refuses to start while a spool of another layout
  holds any (:func:`refuse_stray_spools`: exit code 1, naming each directory, its records
  and what delivers them). A clean stop with Kafka up leaves every spool empty, so a
  planned resharding never meets this.
* **The last trade ids** (``sequence.json``). A symbol that moved to another shard would
  start there without its last id, and the trades made while the collector restarted
  would never be backfilled. Every process takes, for the symbols it collects, the highest
  id that any layout's checkpoint under the root holds (:func:`ids_left_elsewhere`) — the
  symbol's old shard wrote it at its clean stop; after a crash, the parent's look at the
  stray spools rewrites each one's checkpoint with the ids its records hold.

Only what one machine sees: a StatefulSet's pods each have their own volume, so there a
symbol that changes shards starts without its last id (say so when resharding one).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import attrs

from marketd.config.settings import Settings
from marketd.config.shards import SHARD_DIR_PREFIX, shard_dir, shard_of
from marketd.pipeline.sequence import SeqKey
from marketd.roles import COLLECTOR
from marketd.spool import format as fmt
from marketd.spool.model import SpoolError
from marketd.spool.sequence import SEQUENCE_FILE, open_spool, read_checkpoint, write_checkpoint


def layout_root(settings: Settings) -> str:
    """The root of the spool layouts ``settings`` belongs to (a worker's settings hold its
    own directory, ``<root>/shard-<i>``)."""
    directory = os.path.normpath(settings.spool.directory)
    return os.path.dirname(directory) if settings.collector.worker else directory


def spool_dirs(root: str) -> list[str]:
    """The spool directories under ``root`` that hold anything of a spool (segments or a
    last-ids checkpoint): ``root`` itself, then each ``shard-<i>`` in shard order."""
    found: list[tuple[int, str]] = []
    if _holds_spool(root):
        found.append((-1, root))
    try:
        names = os.listdir(root)
    except OSError:
        return []
    for name in names:
        index = name.removeprefix(SHARD_DIR_PREFIX)
        if name.startswith(SHARD_DIR_PREFIX) and index.isascii() and index.isdigit():
            path = os.path.join(root, name)
            if os.path.isdir(path) and _holds_spool(path):
                found.append((int(index), path))
    return [path for _, path in sorted(found)]


def _holds_spool(directory: str, *, segments_only: bool = False) -> bool:
    try:
        names = os.listdir(directory)
    except OSError:
        return False
    return any(
        fmt.parse_segment_name(n) is not None or (n == SEQUENCE_FILE and not segments_only)
        for n in names
    )


def _layout(root: str, shards: int) -> set[str]:
    if shards <= 1:
        return {root}
    return {shard_dir(root, i) for i in range(shards)}


def _written_by(root: str, directory: str) -> str:
    if directory == root:
        return "one unsharded process (collector.shards: 1)"
    shard = int(Path(directory).name.removeprefix(SHARD_DIR_PREFIX))
    return f"shard {shard} of an earlier collector.shards ({shard + 1} or more)"


@attrs.frozen
class StraySpool:
    directory: str
    pending: int
    written_by: str


def stray_spools(settings: Settings) -> list[StraySpool]:
    """The spools under this layout's root that another layout wrote and that still hold
    records not acknowledged by Kafka. Blocking: it opens each (and so takes its lock: one
    in use by another process raises :class:`SpoolError`)."""
    root = layout_root(settings)
    mine = _layout(root, settings.collector.shards)  # normalized, as spool_dirs gives them
    out: list[StraySpool] = []
    for directory in spool_dirs(root):
        if directory in mine or not _holds_spool(directory, segments_only=True):
            continue
        spool, ids = open_spool(attrs.evolve(settings.spool, directory=directory))
        try:
            pending = spool.statistics().records_pending
            if ids:
                # Its ids as recovery found them, past a crash's last checkpoint: where
                # ids_left_elsewhere reads them, before the acked records go.
                write_checkpoint(directory, spool.last_seq, ids)
        finally:
            spool.close()
        if pending:
            out.append(StraySpool(directory, pending, _written_by(root, directory)))
    return out


def refuse_stray_spools(settings: Settings) -> None:
    """Raise :class:`SpoolError` naming every stray spool with records pending (see the
    module doc); nothing when this process writes no spool (no collector role, no Kafka,
    no spool) or is a worker (its parent looked)."""
    writes_spool = COLLECTOR in settings.roles and settings.spool.enabled and settings.kafka.enabled
    if not writes_spool or settings.collector.worker:
        return
    strays = stray_spools(settings)
    if not strays:
        return
    held = "; ".join(
        f"{s.directory} holds {s.pending} records not yet in Kafka, written by {s.written_by}"
        for s in strays
    )
    raise SpoolError(
        f"spools of another collector layout: {held}. This layout would never deliver them: "
        "start with the collector.shards that wrote them until Kafka has them all (a clean "
        "stop with Kafka up leaves a spool empty), then reshard; or move a directory away "
        "to discard what it holds"
    )


def ids_left_elsewhere(settings: Settings) -> Callable[[], dict[SeqKey, int]]:
    """A blocking function returning, for the symbols this process collects, the highest
    last trade id any other spool directory's checkpoint under the root holds."""
    root = layout_root(settings)
    own = os.path.normpath(settings.spool.directory)
    shards, shard = settings.collector.shards, max(settings.collector.shard, 0)

    def read() -> dict[SeqKey, int]:
        best: dict[SeqKey, int] = {}
        for directory in spool_dirs(root):
            if directory == own:
                continue
            found = read_checkpoint(directory)
            if found is None:
                continue
            for key, seq in found[1].items():
                market, _, symbol = key
                if shard_of(market, symbol, shards) == shard and seq > best.get(key, -1):
                    best[key] = seq
        return best

    return read
