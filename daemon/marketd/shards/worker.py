"""A worker's settings: the parent's, as shard ``i`` of ``collector.shards`` runs them.

Its own subscriptions (:func:`marketd.config.shards.subscriptions_of_shard`), spool and
recording directories, detector state, Kafka client id (and so its transactional id) and
its share of the REST weight budget: the shards of one IP share Binance's limits, so
together they never exceed them. Its book audits come ``collector.shards`` times less
often: each market of a shard audits one of its books per ``audit_interval_s * shards``,
so a book is audited as often, and the audits weigh as much in all, however many shards
there are (at the same interval each shard would audit as often as one process does:
N times the audits, and twice the share of each shard's halved budget).
"""

from __future__ import annotations

import attrs

from marketd.config.settings import Settings
from marketd.config.shards import shard_dir, subscriptions_of_shard
from marketd.roles import GATEWAY


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
        spool=attrs.evolve(settings.spool, directory=shard_dir(settings.spool.directory, shard)),
        recorder=attrs.evolve(
            settings.recorder, directory=shard_dir(settings.recorder.directory, shard)
        ),
        alerts=attrs.evolve(settings.alerts, state_dir=shard_dir(settings.alerts.state_dir, shard)),
        books=attrs.evolve(
            settings.books,
            weight_budget_fraction=settings.books.weight_budget_fraction / shards,
            audit_interval_s=settings.books.audit_interval_s * shards,
        ),
    )


def describe_shards(settings: Settings) -> list[str]:
    """What the shards run and which streams each collects (``marketd check-config``);
    nothing without shards."""
    collector = settings.collector
    if collector.shards <= 1:
        return []
    workers = ", ".join(r for r in settings.roles if r != GATEWAY)
    if collector.worker:
        head = f"shards: this process is shard {collector.shard} of {collector.shards}"
    else:
        gateway = (
            "the gateway (alerts from kafka.topics.alerts) and "
            if GATEWAY in settings.roles
            else ""
        )
        head = (
            f"shards: {collector.shards} worker processes ({workers}); this parent runs "
            f"{gateway}the probes of all"
        )
    lines = [head]
    for i in range(collector.shards):
        parts = [
            f"{sub.market.value}: symbols {len(sub.symbols)}, "
            f"streams {len(sub.symbols) * len(sub.channels) + len(sub.streams)}"
            for sub in subscriptions_of_shard(settings.subscriptions, i, collector.shards)
        ]
        lines.append(f"  shard {i}: " + "; ".join(parts))
    return lines
