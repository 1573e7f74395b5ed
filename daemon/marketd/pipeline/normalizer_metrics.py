"""The normalizer's metric families, from its :class:`NormalizerStatistics` snapshot.

(Kept beside ``normalizer.py`` rather than in it only while that module is being
reworked; it belongs there as ``Normalizer.metrics()``.)
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.core import Metric

from marketd.obs.metrics import counter, gauge
from marketd.pipeline.normalizer import NormalizerStatistics


def normalizer_metrics(norm: NormalizerStatistics) -> Iterable[Metric]:
    yield counter(
        "marketd_events_total",
        "Market events decoded and accepted, by market and event kind.",
        ("market", "kind"),
        dict(norm.events),
    )
    errors: dict[tuple[str, ...], int] = {}
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
        {(k,): n for k, n in norm.duplicates_by_kind.items()},
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
