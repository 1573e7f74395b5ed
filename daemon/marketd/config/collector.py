"""Settings of the collector's split into shards (see :mod:`marketd.shards`)."""

from __future__ import annotations

from typing import Any

import attrs

from marketd.config.validators import InvalidValue, within

# The most worker processes one parent starts (a machine's cores, with room).
MAX_SHARDS = 64


def _shard_in_range(inst: CollectorSettings, attribute: attrs.Attribute[Any], value: int) -> None:
    if value != -1 and not 0 <= value < inst.shards:
        raise InvalidValue(
            attribute.name,
            [],
            relational=[f"must be -1 (not one shard) or in [0, {inst.shards - 1}], got {value}"],
        )


@attrs.frozen
class CollectorSettings:
    # Split the collector into this many shards: each (market, symbol) belongs to one, by a
    # stable hash; all-market streams to shard 0. With shards > 1 and no shard below,
    # `marketd run` is the parent that starts and supervises one worker process per shard.
    shards: int = attrs.field(default=1, validator=within(1, MAX_SHARDS))
    # This process is shard i of `shards` (a worker, or a pod of a StatefulSet whose
    # ordinal is i); -1: not one shard (the parent, or unsharded with shards: 1).
    shard: int = attrs.field(default=-1, validator=_shard_in_range)

    @property
    def parent(self) -> bool:
        """This process starts the shards (shards > 1, no shard of its own)."""
        return self.shards > 1 and self.shard == -1

    @property
    def worker(self) -> bool:
        """This process is one shard of several."""
        return self.shards > 1 and self.shard >= 0
