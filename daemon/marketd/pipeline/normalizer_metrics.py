"""The normalizer's metric families, from its :class:`NormalizerStatistics` snapshot
(apart from ``normalizer.py``, which holds the data path)."""

from __future__ import annotations

from collections.abc import Collection, Iterable

from prometheus_client.core import Metric

from marketd.data.records import Market
from marketd.obs.metrics import counter, gauge, seeded
from marketd.pipeline.normalizer import NormalizerStatistics
from marketd.pipeline.sequence import DEDUPLICATED_KINDS, SEQUENCED_KINDS

_PARSE_ERRORS = ("malformed", "unknown")


def normalizer_metrics(
    norm: NormalizerStatistics, subscribed: Collection[tuple[Market, str]] = ()
) -> Iterable[Metric]:
    """The normalizer's families; every series of the ``subscribed`` (market, kind) pairs
    exists from the start, at 0, not after its first event."""
    markets = sorted({m.value for m, _ in subscribed})
    yield counter(
        "marketd_events_total",
        "Market events decoded and accepted, by market and event kind.",
        ("market", "kind"),
        seeded([(m.value, k) for m, k in subscribed], norm.events),
    )
    errors = seeded([(m, r) for m in markets for r in _PARSE_ERRORS], {})
    for market, n in norm.malformed.items():
        errors[(market, "malformed")] = n
    for market, n in norm.unknown.items():
        errors[(market, "unknown")] = n
    yield counter(
        "marketd_parse_errors_total",
        "Frames skipped: malformed (bad JSON, types, fields) or unknown (event/stream).",
        ("market", "reason"),
        errors,
    )
    yield counter(
        "marketd_frames_decoded_total", "Frames handed to the codec.", (), {(): norm.frames}
    )
    yield counter(
        "marketd_duplicates_dropped_total",
        "Events dropped because their id was already published (reconnect or "
        "make-before-break overlap), by kind.",
        ("kind",),
        seeded(
            [(k,) for _, k in subscribed if k in SEQUENCED_KINDS | DEDUPLICATED_KINDS],
            {(k,): n for k, n in norm.duplicates_by_kind.items()},
        ),
    )
    yield counter("marketd_trade_gaps_total", "Trade id gaps detected.", (), {(): norm.gaps})
    yield counter(
        "marketd_trade_gaps_closed_total",
        "Trade id gaps closed: every missing trade backfilled from REST.",
        (),
        {(): norm.gaps_closed},
    )
    yield gauge(
        "marketd_backfills_running",
        "Symbols whose live trades are held while a gap is backfilled from REST.",
        (),
        {(): norm.backfills_running},
    )
    yield gauge(
        "marketd_backfill_parked_records",
        "Live records held behind trade gaps being backfilled (all symbols).",
        (),
        {(): norm.parked_records},
    )
    yield counter(
        "marketd_trades_backfilled_total",
        "Trades fetched from REST history to fill gaps.",
        (),
        {(): norm.backfilled},
    )
    yield counter(
        "marketd_trades_unfilled_total",
        "Missed trades that REST could not supply (lost, and counted).",
        (),
        {(): norm.unfilled},
    )
