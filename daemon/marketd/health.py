"""What one process says about itself: readiness, liveness, metrics and statistics.

:class:`Health` reads the components :class:`~marketd.app.Daemon` built, for the roles
this process runs, and answers:

* readiness (``/readyz``, ``marketd_ready``, the systemd status): ready when every
  component those roles need is; the detail names them and those not ready;
* liveness (the systemd watchdog): always, since only a live event loop can answer;
* the metric sources registered for ``/metrics``: the process's own families, the
  supervisor's (with every stage's), and those of the components that are not stages;
* the body of ``GET /api/status`` (:mod:`marketd.obs.status`), for the UI's status panel;
* the ``statistics`` log line, logged periodically and once after the drain, and the
  fields of the ``marketd running`` line.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any

import attrs
import structlog
from prometheus_client.core import Metric

from marketd import __version__
from marketd.alerts.service import DetectorService
from marketd.alerts.topic_reader import AlertsTopicReader
from marketd.books.service import Books
from marketd.config.settings import Settings
from marketd.feed.service import FeedGroup, fresh
from marketd.gateway import AlertHub, Gateway
from marketd.kafka.delivery import PublisherStatistics
from marketd.obs import status
from marketd.obs.metrics import MetricSource, StatisticsCollector, gauge
from marketd.pipeline.backfill import Backfiller
from marketd.pipeline.bus import MemoryBus
from marketd.pipeline.normalizer import Normalizer
from marketd.pipeline.sink import Sink
from marketd.pipeline.tap import Tap
from marketd.recorder.stage import Recorder
from marketd.rest.budget import RestBudgets
from marketd.roles import Roles
from marketd.runtime.stage import Channels, Supervisor
from marketd.spool.stage import SpoolStage
from marketd.status import StatusStream

log = structlog.get_logger(__name__)


@attrs.frozen(kw_only=True)
class Health:
    """The components of one process, as its probes, metrics and logs read them (``None``:
    not run here)."""

    settings: Settings
    roles: Roles
    supervisor: Supervisor
    channels: Channels
    sink: Sink
    bus: MemoryBus
    feeds: FeedGroup
    normalizer: Normalizer
    rest_budgets: RestBudgets
    spool: SpoolStage | None
    books: Books | None
    backfiller: Backfiller | None
    tap: Tap | None
    detector: DetectorService | None
    alerts_reader: AlertsTopicReader | None
    hub: AlertHub | None
    gateway: Gateway | None
    recorder: Recorder | None = None
    status_stream: StatusStream | None = None
    # For the rates of the statistics line: name → (value, monotonic time) last logged.
    _last: dict[str, tuple[int, float]] = attrs.field(factory=dict, init=False)
    _started: float = attrs.field(factory=time.monotonic, init=False)
    # Frames read per connection, sampled at each status request (messages per second).
    _frame_rates: status.RateSampler = attrs.field(factory=status.RateSampler, init=False)

    def summary(self) -> dict[str, Any]:
        """What runs here, for the ``marketd running`` line."""
        fields: dict[str, Any] = {
            "roles": list(self.settings.roles),
            "detector": "off" if self.detector is None else self.settings.alerts.source,
        }
        if self.roles.collector:
            fields.update(feeds=len(self.feeds), sink=self.sink.name)
        elif self.roles.recorder:
            fields.update(feeds=len(self.feeds), recording=self.settings.recorder.directory)
        else:
            fields.update(alerts="kafka" if self.alerts_reader is not None else "in-process")
        return fields

    def healthy(self) -> bool:
        """Liveness for the systemd watchdog: the event loop runs this, so it is alive.
        (Kafka or exchange outages are readiness matters, never a reason to restart.)"""
        return True

    def status(self) -> str:
        ready, detail = self.readiness()
        return "ready" if ready else "not ready: " + ", ".join(detail["not_ready"])

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Ready when every component this process's roles need is; the detail names them
        (``components``) and those not ready (``not_ready``)."""
        books: tuple[bool, dict[str, Any]] | None = None
        if self.books is not None and self.settings.readiness.require_books_synced:
            books = self.books.readiness(self.settings.readiness.books_resync_grace_s)
        checks = list(self._readiness_checks(books_ready=None if books is None else books[0]))
        not_ready = [failing for _, ok, failing in checks if not ok]
        detail: dict[str, Any] = {
            "roles": list(self.settings.roles),
            "components": [name for name, _, _ in checks],
            "not_ready": not_ready,
        }
        if books is not None:
            detail.update(books[1])
        return not not_ready, detail

    def _readiness_checks(self, *, books_ready: bool | None) -> Iterator[tuple[str, bool, str]]:
        """(component, ready, its name in ``not_ready``) for what this process runs;
        ``books_ready`` is None when books are not required."""
        running = self.supervisor.running
        if self.roles.collector:
            yield "sink", running("sink"), "sink"
            if self.sink.remote:
                yield self.sink.name, self.sink.statistics().connected, self.sink.name
        if self.roles.intake:  # the collector's feeds, or the recorder role's
            for name, fresh in self.feeds.readiness(self.settings.binance.stale_after_s):
                yield name, fresh, name
            if self.spool is not None:
                yield "spool", not self.spool.full, "spool:full"
            if self.recorder is not None:
                yield "recorder", self.recorder.ready(), "recorder"
        if self.detector is not None:
            yield "detector", running("detector"), "detector"
        if books_ready is not None:
            yield "books", books_ready, "books"
        if self.alerts_reader is not None:
            ready = running("alerts_reader") and self.alerts_reader.ready()
            yield "alerts_reader", ready, "alerts_reader"

    def status_report(
        self, *, now: float | None = None, wall_ns: int | None = None
    ) -> dict[str, Any]:
        """The body of ``GET /api/status`` (:mod:`marketd.obs.status`): readiness as
        ``/readyz`` says it, then a section per component this process runs. ``now``
        (monotonic) and ``wall_ns`` (epoch ns) default to the clocks."""
        now = time.monotonic() if now is None else now
        wall_ns = time.time_ns() if wall_ns is None else wall_ns
        ready, detail = self.readiness()
        body: dict[str, Any] = {
            "ready": ready,
            "not_ready": detail["not_ready"],
            "roles": detail["roles"],
        }
        if self.roles.intake:
            stale_after, events = self.settings.binance.stale_after_s, self.normalizer.event_times
            body["connections"] = [
                status.connection_status(
                    st,
                    ready=fresh(st, stale_after),
                    rate=self._frame_rates.rate(st.connection_id, st.frames_received, now),
                    event=events.get(st.connection_id),
                )
                for st in self.feeds.statistics()
            ]
        if self.books is not None and self.books.syncs:  # it keeps books (depth streams)
            unsynced = self.books.out_of_sync(status.MAX_BOOKS_LISTED)
            states = self.books.statistics().states
            body["books"] = status.books_status(states, unsynced, wall_ns)
        if (spool := self.spool) is not None:
            body["spool"] = status.spool_status(
                spool.statistics(), full=spool.full, max_bytes=spool.settings.max_bytes
            )
        sink = self.sink.statistics() if self.roles.collector else None
        if isinstance(sink, PublisherStatistics):
            body["kafka"] = status.kafka_status(sink, wall_ns)
        if self.detector is not None:
            body["detector"] = status.detector_status(
                self.detector.statistics(), source=self.settings.alerts.source, wall_ns=wall_ns
            )
        if self.hub is not None:
            body["gateway"] = {
                "clients": self.hub.statistics().clients,
                "alerts_from": "kafka" if self.alerts_reader is not None else "detector",
            }
        return body

    def metric_sources(self) -> Iterator[MetricSource]:
        """Every component's metric families, for what this process runs (the stages'
        come with the supervisor's)."""
        yield self.metrics
        yield self.supervisor.metrics
        if self.roles.collector and self.sink is not self.bus:
            yield self.bus.metrics  # declared with Kafka too: the dashboard reads it
        if self.roles.intake:
            yield self.channels.metrics
            yield self.feeds.metrics
            yield self.rest_budgets.metrics
        for component in (self.tap, self.backfiller, self.gateway):
            if component is not None:
                yield component.metrics

    def collector(self) -> StatisticsCollector:
        """A collector of :meth:`metric_sources`, for the process's registry."""
        collector = StatisticsCollector()
        for source in self.metric_sources():
            collector.add(source)
        return collector

    def metrics(self) -> Iterable[Metric]:
        """The process's own: readiness, the version."""
        yield gauge(
            "marketd_ready", "1 when /readyz answers 200.", (), {(): float(self.readiness()[0])}
        )
        yield gauge("marketd_build_info", "marketd version.", ("version",), {(__version__,): 1})

    def log_statistics(self) -> None:
        """The periodic line: rates since the last one, then what an operator watches
        (feeds up, alerts, browsers), then problems only when there are any. The running
        totals of records, book snapshots and deliveries stay: after the drain they prove
        everything accepted was delivered."""
        now = time.monotonic()
        fields: dict[str, Any] = {}
        counts: dict[str, int] = {}
        if self.roles.intake:
            norm = self.normalizer.statistics()
            feeds = self.feeds.statistics()
            counts["frames"] = norm.frames
            fields["in_per_s"] = self._rate("frames", norm.frames, now)
            if self.roles.collector:
                delivered = self.sink.statistics().delivered
                counts["delivered"] = delivered
                fields["delivered_per_s"] = self._rate("delivered", delivered, now)
            fields.update(
                feeds=f"{sum(s.subscribed for s in feeds)}/{len(self.feeds)} up",
                records=norm.records,
            )
            if self.roles.collector:
                fields["delivered"] = delivered
            elif self.recorder is not None:  # the recorder role publishes nothing
                fields["recorded"] = self.recorder.statistics().recorded
            if self.books is not None:
                fields["book_snapshots"] = self.books.statistics().snapshots_published
            if (reports := self.status_stream) is not None:  # published: in "delivered"
                fields["status_events"] = sum(reports.emitted.values()) - reports.dropped
            if self.spool is not None and (pending := self.spool.pending()):
                fields["spool_backlog"] = pending
            problems = {
                "malformed": sum(norm.malformed.values()),
                "unknown": sum(norm.unknown.values()),
                "duplicates": norm.duplicates,
                "gaps": norm.gaps,
                "unfilled": norm.unfilled,
            }
            fields.update({k: v for k, v in problems.items() if v})
        elif self.detector is not None:
            ticks = self.detector.statistics().ticks
            counts["ticks"] = ticks
            fields["ticks_per_s"] = self._rate("ticks", ticks, now)
        if self.detector is not None:
            fields["alerts"] = sum(self.detector.statistics().alerts.values())
        if self.alerts_reader is not None:
            fields["alerts_read"] = self.alerts_reader.statistics().read
        if self.hub is not None:
            fields["clients"] = self.hub.statistics().clients
        self._last.update((k, (v, now)) for k, v in counts.items())
        log.info("statistics", **fields)

    def _rate(self, name: str, value: int, now: float) -> float:
        """Per second since the last line (since start for the first)."""
        before, then = self._last.get(name, (0, self._started))
        return round((value - before) / max(now - then, 1e-3), 1)
