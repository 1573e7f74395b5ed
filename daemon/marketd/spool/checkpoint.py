"""The ack checkpoint: the highest spool seq Kafka acknowledged, kept across crashes.

One small file with two 512-byte slots, written alternately with ``pwrite`` (one sector
each, so a torn write spoils at most the slot being written; the other keeps the previous
value). A slot: b"MDCK" | u64 generation | u64 ack seq | u64 segment | u64 offset |
u32 crc32. Reading takes the valid slot with the highest generation. ``segment`` and
``offset`` locate the first unacknowledged entry (a hint: reading starts there).
"""

from __future__ import annotations

import os
import struct
import zlib
from typing import Final

import attrs

CHECKPOINT_FILE: Final = "ack.ckpt"
_MAGIC: Final = b"MDCK"
_SLOT = struct.Struct("<4sQQQQI")
_SLOT_SPACING: Final = 512


@attrs.frozen
class Checkpoint:
    generation: int = 0
    ack_seq: int = 0
    segment: int = 0
    offset: int = 0


def _encode(cp: Checkpoint) -> bytes:
    body = struct.pack("<4sQQQQ", _MAGIC, cp.generation, cp.ack_seq, cp.segment, cp.offset)
    return body + struct.pack("<I", zlib.crc32(body))


def _decode(data: bytes) -> Checkpoint | None:
    if len(data) < _SLOT.size:
        return None
    magic, gen, ack_seq, segment, offset, crc = _SLOT.unpack_from(data)
    if magic != _MAGIC or crc != zlib.crc32(data[: _SLOT.size - 4]):
        return None
    return Checkpoint(gen, ack_seq, segment, offset)


class CheckpointFile:
    """Open (creating if missing) the checkpoint file of a spool directory."""

    def __init__(self, directory: str) -> None:
        path = os.path.join(directory, CHECKPOINT_FILE)
        self.created = not os.path.exists(path)
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        data = os.pread(self.fd, 2 * _SLOT_SPACING, 0)
        slots = [_decode(data[i * _SLOT_SPACING :]) for i in (0, 1)]
        valid = [cp for cp in slots if cp is not None]
        # A file with content but no valid slot is corrupted (both slots spoiled).
        self.corrupted = not valid and any(data)
        self.current = max(valid, key=lambda cp: cp.generation) if valid else Checkpoint()
        self.dirty = False

    def write(self, ack_seq: int, segment: int, offset: int) -> None:
        """Record a new ack cursor (page cache: survives kill -9; :meth:`sync` for power)."""
        cp = Checkpoint(self.current.generation + 1, ack_seq, segment, offset)
        os.pwrite(self.fd, _encode(cp), (cp.generation % 2) * _SLOT_SPACING)
        self.current = cp
        self.dirty = True

    def sync(self) -> None:
        self.dirty = False
        os.fdatasync(self.fd)

    def close(self) -> None:
        os.close(self.fd)
