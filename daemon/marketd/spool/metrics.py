"""Prometheus families for the spool, built from its statistics at scrape time."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from marketd.spool.model import SpoolStatistics


def spool_metrics(st: SpoolStatistics) -> Iterable[Metric]:
    for name, doc, value in (
        ("marketd_spool_bytes", "Size of the spool's segment files on disk.", st.bytes),
        ("marketd_spool_max_bytes", "Configured bound of the spool's size.", st.max_bytes),
        ("marketd_spool_segments", "Segment files in the spool.", st.segments),
        ("marketd_spool_records_pending", "Spooled records not acknowledged by Kafka yet.",
         st.records_pending),
        ("marketd_spool_oldest_record_age_seconds",
         "Age (since receipt) of the oldest spooled record not acknowledged yet.",
         st.oldest_pending_age_s),
        ("marketd_spool_full", "1 while the spool refuses appends (bound reached).",
         float(st.full)),
    ):  # fmt: skip
        yield GaugeMetricFamily(name, doc, value=float(value))
    for name, doc, count in (
        ("marketd_spool_records_appended", "Records appended to the spool.", st.appended),
        ("marketd_spool_appends", "Appends to the spool (batches of records, one write each).",
         st.appends),
        ("marketd_spool_records_acknowledged", "Spooled records acknowledged by Kafka.",
         st.acknowledged),
        ("marketd_spool_appends_refused", "Appends refused because the spool was full.",
         st.refused_appends),
        ("marketd_spool_corrupted_entries", "Damaged spool regions detected and skipped.",
         st.corrupted_entries),
        ("marketd_spool_truncated_bytes", "Bytes of torn spool tail removed at start-up.",
         st.truncated_bytes),
        ("marketd_spool_syncs", "fsyncs of the spool (group commits) that had data to sync.",
         st.syncs),
    ):  # fmt: skip
        yield CounterMetricFamily(name, doc, value=count)
