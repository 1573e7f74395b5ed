"""The daemon: which stages run in this process, and their channels, in dependency order.

    feeds ─FrameBatch─► normalizer ─► [books] ─┬─► [spool] ─► sink (Kafka publisher | embedded bus)
                                               └─► [detector]  (its branch: the tap)

Start order: HTTP → sink → spool → detector → books → normalizer → feeds, each once the
one it feeds has started (the sink behind the spool may still be waiting for Kafka).
Stop (SIGINT/SIGTERM): cancel the feeds (stop intake); each stage then sees its input
end, drains, and closes its output; the sink flushes; all of it bounded by
``shutdown.grace_s``. Then HTTP stops. Stages run under the supervisor
(:mod:`marketd.runtime.stage`); each component's metrics are its own.

What runs is chosen by ``roles`` (:mod:`marketd.roles`): the pipeline above only with the
collector; the detector on it or on Kafka; the gateway's routes, fed by the detector here
or by a reader of the alerts topic. HTTP (metrics and probes) runs in every role.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterable, Iterator
from typing import Any

import prometheus_client
import structlog
import trio
from prometheus_client.core import Metric

from marketd import __version__
from marketd.alerts.kafka_io import serve_kafka_detector
from marketd.alerts.rules import RulesError, RulesStore
from marketd.alerts.service import DetectorService
from marketd.alerts.topic_reader import AlertsTopicReader, serve_alerts_reader
from marketd.books.service import Books
from marketd.config.checks import warnings as config_warnings
from marketd.config.settings import KafkaSettings, Settings
from marketd.data.records import FrameBatch, Market, Record
from marketd.errors import ConfigError
from marketd.exchanges.binance.codec import Codec
from marketd.feed.service import FeedGroup
from marketd.gateway import AlertHub, Gateway, install_gateway
from marketd.kafka.sink import KafkaPublisher
from marketd.obs.metrics import MetricSource, StatisticsCollector, gauge
from marketd.obs.systemd import notify_stopping, serve_systemd_notify
from marketd.obs.web import create_app, serve_http
from marketd.pipeline.backfill import Backfiller
from marketd.pipeline.bus import MemoryBus
from marketd.pipeline.normalizer import Normalizer
from marketd.pipeline.normalizer_metrics import normalizer_metrics
from marketd.pipeline.sink import Sink
from marketd.pipeline.tap import Tap, TeeSendChannel
from marketd.rest.budget import RestBudgets
from marketd.roles import Roles
from marketd.runtime.backoff import policy_from_settings
from marketd.runtime.stage import Channels, Stage, Supervisor
from marketd.runtime.supervisor import wait_for_signal
from marketd.spool.stage import SpoolStage

log = structlog.get_logger(__name__)

_SHUTDOWN_POLL_S = 0.1


class Daemon:
    """Owns the components of one ``marketd run`` and wires their channels.

    ``sink`` replaces the sink the settings choose (the Kafka publisher with Kafka, else
    the embedded bus), e.g. a test's; there is no spool then (only Kafka's acks move it).
    """

    def __init__(
        self,
        settings: Settings,
        registry: prometheus_client.CollectorRegistry | None = None,
        *,
        sink: Sink | None = None,
    ) -> None:
        self.settings = settings
        self.roles = roles = Roles.of(settings.roles, alerts_enabled=settings.alerts.enabled)
        self.supervisor = Supervisor(policy_from_settings(settings.supervisor.restart))
        self.channels = Channels()
        self.pipeline: list[Stage] = []  # started in this order; drained at a stop
        self.services: list[Stage] = []  # beside the pipeline until the daemon stops
        self._intake = trio.CancelScope()  # cancelled to stop intake
        self.http_shutdown = trio.Event()
        self.http_binds: list[str] = []
        self.registry = registry or prometheus_client.REGISTRY
        # Every role serves /metrics, /healthz and /readyz; only the gateway the UI and API.
        self.app = create_app(self.readiness, self.registry)
        gw = settings.gateway
        self.hub = (
            AlertHub(history=gw.history, replay=gw.replay, client_queue=gw.client_queue)
            if roles.gateway
            else None
        )
        self._make_collector(sink)
        self.rules: RulesStore | None = None
        self.detector: DetectorService | None = None
        self.tap: Tap | None = None
        if roles.detector:
            self._make_detector()
        if roles.collector:
            self._wire_pipeline()
        self.gateway: Gateway | None = None
        self.alerts_reader: AlertsTopicReader | None = None
        if self.hub is not None:
            self._make_gateway(self.hub)
        self.collector = StatisticsCollector()
        for source in self._metric_sources():
            self.collector.add(source)
        self.registry.register(self.collector)

    def _make_collector(self, sink: Sink | None) -> None:
        """The collector's components (built, and idle, without the collector role)."""
        settings, collecting = self.settings, self.roles.collector
        self.codec = Codec(settings.kafka.topics)
        # One REST weight budget per market, shared by the backfill and the book snapshots.
        self.rest_budgets = RestBudgets.from_settings(settings.books)
        self.backfiller: Backfiller | None = None
        if collecting and settings.pipeline.backfill_trades:
            self.backfiller = Backfiller(
                encoder=self.codec,
                rest_urls={
                    Market.SPOT: settings.binance.spot_rest_url,
                    Market.USDM: settings.binance.futures_rest_url,
                },
                max_trades=settings.pipeline.backfill_max_trades,
                timeout=settings.binance.rest_timeout_s,
                budgets=self.rest_budgets,
            )
        self.normalizer = Normalizer(self.codec, self.backfiller)
        self.bus = MemoryBus()
        self.spool: SpoolStage | None = None
        self.publisher: KafkaPublisher | None = None
        if collecting and settings.kafka.enabled and sink is None:
            if settings.spool.enabled:
                # Trades missed while the daemon was down are backfilled from the ids
                # that reached the spool before.
                self.spool = SpoolStage(settings.spool, on_recovered=self.normalizer.sequencer.seed)
            self.publisher = KafkaPublisher(
                settings.kafka, on_settled=self.spool.on_settled if self.spool else None
            )
        self.sink: Sink = sink if sink is not None else self.publisher or self.bus
        self.feeds = FeedGroup.from_settings(settings, collecting)
        self.books: Books | None = None
        if collecting and settings.books.enabled:
            self.books = Books(settings, budgets=self.rest_budgets)

    def _make_detector(self) -> None:
        """The detector, on this process's pipeline (its branch: the tap) or on Kafka."""
        settings, alerts = self.settings, self.settings.alerts
        if alerts.source == "kafka" and not settings.kafka.enabled:
            raise ConfigError(
                ["alerts.source: 'kafka' needs kafka.bootstrap_servers (or use 'pipeline')"]
            )
        try:
            self.rules = RulesStore(alerts)
        except RulesError as exc:
            raise ConfigError([f"alerts.rules (stored): {p}" for p in exc.problems]) from exc
        listeners = [self.hub] if self.hub else []
        detector = DetectorService(alerts, self.rules, kafka=settings.kafka, listeners=listeners)
        self.detector = detector
        if alerts.source == "pipeline":
            markets = [Market(m) for m in alerts.markets]
            self.tap = Tap(alerts.kinds, markets)
            # The codec puts a tick beside each watched record: the detector parses none.
            self.codec.watch_prices(alerts.kinds, markets)
        else:
            serve = functools.partial(serve_kafka_detector, detector, settings.kafka)
            stage = self.supervisor.stage("detector", serve, metrics=detector.metrics)
            self.services.append(stage)

    def _wire_pipeline(self) -> None:
        """The collector's stages and their channels, see the module doc. ``main``: the
        market data on its way to the spool or the sink, past the books."""
        cap, ch, sup = self.settings.pipeline.channel_capacity, self.channels, self.supervisor
        frames_send, frames_recv = ch.open("frames", trio.open_memory_channel[FrameBatch](cap))
        records_send, records_recv = ch.open("records", _records_channel(cap))
        main_send, main_recv = records_send, records_recv
        if self.books is not None:
            main_send, main_recv = ch.open("books", _records_channel(cap))
        self._frames_send = frames_send
        # The last market-data stage's output: the main channel, with the detector's branch.
        out: trio.MemorySendChannel[list[Record]] | TeeSendChannel[list[Record]] = main_send
        detector: list[Stage] = []
        if self.tap is not None and self.detector is not None:
            detector_send, detector_recv = ch.open("detector", _records_channel(cap))
            alerts_send = main_send.clone()  # its alerts join the market data
            out = self.tap.tee(main_send, detector_send)
            serve = functools.partial(_serve_detector, self.detector, self.settings.kafka)
            detector = [
                sup.stage("detector", serve, detector_recv, alerts_send,
                          metrics=self.detector.metrics)
            ]  # fmt: skip
        spool: list[Stage] = []
        if self.spool is not None:
            spool_send, sink_recv = ch.open("sink", _records_channel(cap))
            spool = [
                sup.stage("spool", self.spool.serve, main_recv, spool_send,
                          close=self.spool.close, metrics=self.spool.metrics)
            ]  # fmt: skip
        else:
            sink_recv = main_recv
            ch.show("sink", sink_recv)
        # Behind the spool the sink may wait for Kafka: the spool takes everything meanwhile.
        sink = sup.stage("sink", self.sink.serve, sink_recv, metrics=self.sink.metrics,
                         waited=self.spool is None)  # fmt: skip
        books: list[Stage] = []
        if self.books is not None:
            books = [sup.stage("books", self.books.serve, records_recv, out,
                               metrics=self.books.metrics)]  # fmt: skip
            out = records_send
        normalizer = sup.stage(
            "normalizer", self.normalizer.serve, frames_recv, out,
            metrics=lambda: normalizer_metrics(self.normalizer.statistics()),
        )  # fmt: skip
        self.pipeline = [sink, *spool, *detector, *books, normalizer]

    def _make_gateway(self, hub: AlertHub) -> None:
        """The gateway's routes; its alerts come from the detector here or from Kafka."""
        settings, from_kafka = self.settings, self.roles.alerts_from_kafka
        if from_kafka:
            reader = AlertsTopicReader(settings.kafka, [hub], history=settings.gateway.history)
            serve = functools.partial(serve_alerts_reader, reader)
            self.services.append(
                self.supervisor.stage("alerts_reader", serve, metrics=reader.metrics)
            )
            self.alerts_reader = reader
        self.gateway = install_gateway(
            self.app, hub, self.rules, settings.gateway, self.http_shutdown,
            rules_elsewhere=from_kafka,
        )  # fmt: skip

    def healthy(self) -> bool:
        """Liveness for the systemd watchdog: the event loop runs this, so it is alive.
        (Kafka or exchange outages are readiness matters, never a reason to restart.)"""
        return True

    def status(self) -> str:
        ready, detail = self.readiness()
        return "ready" if ready else "not ready: " + ", ".join(detail["not_ready"])

    def close(self) -> None:
        with contextlib.suppress(KeyError):
            self.registry.unregister(self.collector)

    # -- readiness, metrics and logs ------------------------------------------------------

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Ready when every component this process's roles need is; the detail names them
        (``components``) and those not ready (``not_ready``)."""
        books: tuple[bool, dict[str, Any]] | None = None
        if self.books is not None and self.settings.readiness.require_books_synced:
            books = self.books.readiness()
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
            for name, fresh in self.feeds.readiness(self.settings.binance.stale_after_s):
                yield name, fresh, name
            if self.spool is not None:
                yield "spool", not self.spool.full, "spool:full"
        if self.detector is not None:
            yield "detector", running("detector"), "detector"
        if books_ready is not None:
            yield "books", books_ready, "books"
        if self.alerts_reader is not None:
            ready = running("alerts_reader") and self.alerts_reader.ready()
            yield "alerts_reader", ready, "alerts_reader"

    def _metric_sources(self) -> Iterator[MetricSource]:
        """Every component's metric families, for what this process runs (the stages'
        come with the supervisor's)."""
        yield self._metrics
        yield self.supervisor.metrics
        if self.roles.collector:
            if self.sink is not self.bus:
                yield self.bus.metrics  # declared with Kafka too: the dashboard reads it
            yield self.channels.metrics
            yield self.feeds.metrics
            yield self.rest_budgets.metrics
        for component in (self.tap, self.backfiller, self.gateway):
            if component is not None:
                yield component.metrics

    def _metrics(self) -> Iterable[Metric]:
        """The daemon's own: readiness, the version."""
        yield gauge(
            "marketd_ready", "1 when /readyz answers 200.", (), {(): float(self.readiness()[0])}
        )
        yield gauge("marketd_build_info", "marketd version.", ("version",), {(__version__,): 1})

    def log_statistics(self) -> None:
        fields: dict[str, Any] = {}
        if self.roles.collector:
            norm = self.normalizer.statistics()
            fields.update(
                frames=norm.frames,
                records=norm.records,
                delivered=self.sink.statistics().delivered,
                sink=self.sink.name,
                malformed=sum(norm.malformed.values()),
                unknown=sum(norm.unknown.values()),
                duplicates=norm.duplicates,
                backfilled=norm.backfilled,
                book_snapshots=self.books.statistics().snapshots_published if self.books else 0,
                feeds_connected=sum(s.subscribed for s in self.feeds.statistics()),
                feeds=len(self.feeds),
            )
        if self.detector is not None and not self.roles.collector:
            detector = self.detector.statistics()
            fields.update(ticks=detector.ticks, alerts=sum(detector.alerts.values()))
        if self.alerts_reader is not None:
            fields.update(alerts_read=self.alerts_reader.statistics().read)
        if self.hub is not None and not self.roles.collector:
            fields.update(gateway_clients=self.hub.statistics().clients)
        log.info("statistics", **fields)

    # -- running ----------------------------------------------------------------------

    async def run(
        self,
        stop: trio.Event,
        *,
        task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
    ) -> bool:
        """Run until ``stop`` is set, then drain. Return True if everything was flushed."""
        drained = True
        async with trio.open_nursery() as root:
            self.http_binds = await root.start(
                serve_http, self.app, self.settings.http.listen, self.http_shutdown
            )
            running = trio.Event()
            # Background services, cancelled once the pipeline has drained.
            async with trio.open_nursery() as services:
                services.start_soon(self._log_periodically)
                for stage in self.services:
                    services.start_soon(self.supervisor.serve, stage)
                with trio.CancelScope() as pipeline_scope:
                    # A stop before the sink is up (Kafka unreachable) must not wait for it.
                    services.start_soon(_cancel_if_stopped_early, stop, running, pipeline_scope)
                    async with trio.open_nursery() as pipeline:
                        await self._start_pipeline(pipeline)
                        running.set()
                        task_status.started(self.http_binds)
                        await services.start(
                            functools.partial(
                                serve_systemd_notify, self.healthy, status=self.status
                            )
                        )
                        await stop.wait()
                        notify_stopping()
                        log.info(
                            "stopping intake; draining", grace_s=self.settings.shutdown.grace_s
                        )
                        self._intake.cancel()
                        pipeline_scope.deadline = (
                            trio.current_time() + self.settings.shutdown.grace_s
                        )
                        if self.spool is not None:
                            services.start_soon(self._end_drain_once_spooled, pipeline_scope)
                if pipeline_scope.cancelled_caught and running.is_set():
                    if self.spool is not None and self.spool.durable.is_set():
                        log.warning(
                            "stopped with records in the spool; the next start delivers them",
                            pending=self.spool.pending(),
                        )
                    else:
                        drained = False
                        log.error("grace period expired before the pipeline drained")
                elif pipeline_scope.cancelled_caught:
                    log.warning("stopped before the pipeline was ready; nothing was accepted")
                self.log_statistics()
                services.cancel_scope.cancel()
            # WebSocket handlers see this and close with 1001; Hypercorn then returns.
            self.http_shutdown.set()
            root.cancel_scope.deadline = trio.current_time() + 5
        return drained

    async def _start_pipeline(self, pipeline: trio.Nursery) -> None:
        """Start the stages in dependency order, then the feeds (nothing without the
        collector role)."""
        await self.supervisor.start(pipeline, self.pipeline)
        fields: dict[str, Any] = {}
        if self.roles.collector:
            pipeline.start_soon(self._serve_intake)
            fields.update(feeds=len(self.feeds), sink=self.sink.name)
        else:
            fields.update(alerts="kafka" if self.alerts_reader is not None else "in-process")
        log.info(
            "marketd running",
            http=self.http_binds,
            roles=list(self.settings.roles),
            detector="off" if self.detector is None else self.settings.alerts.source,
            **fields,
        )

    async def _serve_intake(self) -> None:
        with self._intake:
            await self.feeds.serve(self._frames_send)

    async def _end_drain_once_spooled(self, pipeline_scope: trio.CancelScope) -> None:
        """At shutdown, once everything received is fsynced in the spool, keep flushing to
        Kafka only while Kafka takes it: an unreachable broker ends the drain at once (the
        records wait in the spool) instead of holding the stop for the whole grace period."""
        assert self.spool is not None
        await self.spool.durable.wait()
        log.info("intake drained into the spool; flushing to Kafka", pending=self.spool.pending())
        while self.sink.statistics().connected:  # noqa: ASYNC110 - polled state, no event
            await trio.sleep(_SHUTDOWN_POLL_S)
        log.warning("Kafka unreachable while stopping; records stay in the spool")
        pipeline_scope.cancel()

    async def _log_periodically(self) -> None:
        while True:
            await trio.sleep(self.settings.log.stats_interval_s)
            self.log_statistics()


async def _serve_detector(
    detector: DetectorService,
    kafka: KafkaSettings,
    batches: trio.MemoryReceiveChannel[list[Record]],
    alerts_out: trio.MemorySendChannel[list[Record]],
    *,
    task_status: trio.TaskStatus[None],
) -> None:
    """The detector on its branch of the pipeline; its alerts go to ``alerts_out``."""
    await detector.serve_channel(
        batches, alerts_out=alerts_out, alerts_topic=kafka.topics.alerts, task_status=task_status
    )


def _records_channel(
    capacity: int,
) -> tuple[trio.MemorySendChannel[list[Record]], trio.MemoryReceiveChannel[list[Record]]]:
    return trio.open_memory_channel[list[Record]](capacity)


async def _cancel_if_stopped_early(
    stop: trio.Event, running: trio.Event, scope: trio.CancelScope
) -> None:
    await stop.wait()
    if not running.is_set():
        scope.cancel()


async def run_daemon(settings: Settings) -> int:
    """Run the daemon until SIGINT/SIGTERM. Return the process exit code."""
    stop = trio.Event()
    for warning in config_warnings(settings):
        log.warning("configuration", problem=warning)
    daemon = Daemon(settings)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(wait_for_signal, stop)
            drained = await daemon.run(stop)
            nursery.cancel_scope.cancel()
    finally:
        daemon.close()
    log.info("marketd stopped", drained=drained)
    return 0 if drained else 1
