"""Settings of the durable on-disk spool (``spool`` section of the configuration)."""

from __future__ import annotations

from typing import Any

import attrs

from marketd.config.validators import _fail_relational, at_least, within

MIB = 1024 * 1024


def _max_bytes(inst: SpoolSettings, attribute: attrs.Attribute[Any], value: int) -> None:
    at_least(2 * 4096)(inst, attribute, value)
    if value < 2 * inst.segment_bytes:
        raise _fail_relational(
            attribute, f"must be >= 2 * segment_bytes ({2 * inst.segment_bytes}), got {value!r}"
        )


@attrs.frozen
class SpoolSettings:
    # Write every record to the spool before Kafka (used only with kafka.bootstrap_servers).
    # Off: a Kafka outage holds the pipeline (backpressure to the feeds), and a crash or a
    # stop with Kafka down loses what was not acknowledged.
    enabled: bool = True
    # Directory of the segment files, the ack checkpoint and the last trade ids (created if
    # missing). Relative paths are relative to the working directory. One process at a
    # time: a second one fails to open it. Give it its own disk space (see max_bytes).
    directory: str = "var/spool"
    # A segment file is closed and a new one started past this size (bytes).
    segment_bytes: int = attrs.field(default=64 * MIB, validator=at_least(4096))
    # Bound on the spool's size on disk (bytes, all segments). An append that would pass
    # it is refused (SpoolFull): intake stops until Kafka acknowledges and segments are
    # deleted. At least 2 * segment_bytes; usable space is at least max - segment_bytes.
    max_bytes: int = attrs.field(default=1024 * MIB, validator=_max_bytes)
    # Seconds between fsyncs of appended records (group commit). A kill -9 loses nothing
    # appended; an OS crash or power loss loses at most this much. 0 = after every batch.
    sync_interval_s: float = attrs.field(default=0.2, validator=within(0, 60))
    # Records read from the spool per batch handed to the Kafka publisher.
    read_batch_records: int = attrs.field(default=5000, validator=at_least(1))
