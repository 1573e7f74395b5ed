"""Settings of the recorder (``recorder`` section): every raw frame as received, to
compressed segment files (:mod:`marketd.recorder`)."""

from __future__ import annotations

from typing import Any

import attrs

from marketd.config.validators import _fail_relational, at_least, within

MIB = 1024 * 1024


def _max_bytes(inst: RecorderSettings, attribute: attrs.Attribute[Any], value: int) -> None:
    at_least(2 * 65_536)(inst, attribute, value)
    if value < 2 * inst.segment_bytes:
        raise _fail_relational(
            attribute, f"must be >= 2 * segment_bytes ({2 * inst.segment_bytes}), got {value!r}"
        )


@attrs.frozen
class RecorderSettings:
    # Record every frame the feeds receive (its connection, stream and receive time), the
    # connections' control frames and markers, and the REST answers of the books and the
    # backfill, to zstd segment files, for replay and backtests. The feeds never wait for
    # it. The recorder role needs it.
    enabled: bool = False
    # Directory of the segments and their indexes (created if missing; relative: to the
    # working directory; one recording process at a time).
    directory: str = "var/recording"
    # A new segment after this many seconds of receive time.
    segment_s: float = attrs.field(default=300.0, validator=within(0, 86_400, low_open=True))
    # ... or after this many compressed bytes.
    segment_bytes: int = attrs.field(default=64 * MIB, validator=at_least(65_536))
    # Bound on the recording's size on disk (bytes): the oldest segments are deleted
    # beyond it. At least 2 * segment_bytes.
    max_bytes: int = attrs.field(default=2048 * MIB, validator=_max_bytes)
    # Segments whose newest frame is more than this many seconds older than the newest
    # recorded frame are deleted; 0: no age limit.
    max_age_s: float = attrs.field(default=0.0, validator=within(0, 10 * 365 * 86_400))
    # Frame batches waiting for the disk at most; beyond, batches are dropped and counted.
    queue_batches: int = attrs.field(default=256, validator=at_least(1))
