"""A worker's settings: the parent's, as shard ``i`` of ``collector.shards`` runs them.

Its own subscriptions (:func:`marketd.config.shards.subscriptions_of_shard`), spool and
recording directories, detector state, Kafka client id (and so its transactional id) and
its share of the REST weight budget: the shards of one IP share Binance's limits, so
together they never exceed them.
"""

from __future__ import annotations

from pathlib import Path

import attrs

from marketd.config.settings import Settings
from marketd.config.shards import subscriptions_of_shard


def _sub_dir(directory: str, shard: int) -> str:
    return str(Path(directory) / f"shard-{shard}")


def settings_of_shard(settings: Settings, shard: int) -> Settings:
    """``settings`` as shard ``shard`` of ``collector.shards`` runs them (see the module
    doc); with one shard, ``settings`` themselves."""
    shards = settings.collector.shards
    if shards <= 1:
        return settings
    kafka = settings.kafka
    suffix = f"-shard-{shard}"
    return attrs.evolve(
        settings,
        subscriptions=subscriptions_of_shard(settings.subscriptions, shard, shards),
        collector=attrs.evolve(settings.collector, shard=shard),
        kafka=attrs.evolve(
            kafka,
            client_id=kafka.client_id + suffix,
            transactional_id=kafka.transactional_id + suffix if kafka.transactional_id else "",
        ),
        spool=attrs.evolve(settings.spool, directory=_sub_dir(settings.spool.directory, shard)),
        recorder=attrs.evolve(
            settings.recorder, directory=_sub_dir(settings.recorder.directory, shard)
        ),
        alerts=attrs.evolve(settings.alerts, state_dir=_sub_dir(settings.alerts.state_dir, shard)),
        books=attrs.evolve(
            settings.books,
            weight_budget_fraction=settings.books.weight_budget_fraction / shards,
        ),
    )
