"""The daemon: one trio nursery supervising the pipeline, in dependency order.

    feeds ──FrameBatch──► normalizer ──list[Record]──► sink (Kafka publisher | memory bus)

Start order: HTTP → sink → normalizer → feeds. Stop (SIGINT/SIGTERM): cancel the feeds
(stop intake); each stage then sees its input closed, drains, and closes its output;
the sink flushes; all of it bounded by ``shutdown.grace_s``. Then HTTP stops.

What runs is chosen by ``roles`` (:mod:`marketd.roles`): the pipeline above only with the
collector; the detector on it or on Kafka; the gateway's routes, fed by the detector here
or by a reader of the alerts topic. HTTP (metrics and probes) runs in every role.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterable
from typing import Any

import prometheus_client
import structlog
import trio
from prometheus_client.core import Metric

from marketd import __version__
from marketd.alerts.rules import RulesError, RulesStore
from marketd.alerts.service import DetectorService
from marketd.alerts.topic_reader import AlertsTopicReader, serve_alerts_reader
from marketd.books.service import Books
from marketd.config.settings import Settings
from marketd.errors import ConfigError
from marketd.exchanges.binance.codec import Codec
from marketd.feed.connection import Feed
from marketd.feed.streams import plan_connections
from marketd.gateway import AlertHub, Gateway, install_gateway
from marketd.kafka.sink import KafkaPublisher
from marketd.obs.metrics import StatisticsCollector, counter, gauge
from marketd.obs.systemd import notify_stopping, serve_systemd_notify
from marketd.obs.web import create_app, serve_http
from marketd.pipeline.backfill import Backfiller
from marketd.pipeline.bus import MemoryBus
from marketd.pipeline.normalizer import Normalizer
from marketd.pipeline.records import FrameBatch, Market, Record
from marketd.pipeline.tap import serve_tap
from marketd.rest.budget import RestBudgets
from marketd.roles import Roles
from marketd.runtime.backoff import policy_from_settings
from marketd.runtime.supervisor import ChildState, serve_restarting, wait_for_signal
from marketd.spool.stage import SpoolStage

log = structlog.get_logger(__name__)

_SHUTDOWN_POLL_S = 0.1


class Daemon:
    """Owns the components of one ``marketd run`` and wires their channels."""

    def __init__(
        self, settings: Settings, registry: prometheus_client.CollectorRegistry | None = None
    ) -> None:
        self.settings = settings
        self.roles = Roles.of(settings.roles, alerts_enabled=settings.alerts.enabled)
        collecting = self.roles.collector
        self.codec = Codec(settings.kafka.topics)
        # One REST weight budget per market, shared by the backfill and the book snapshots.
        self.rest_budgets = RestBudgets.from_settings(settings.books)
        backfiller = None
        if collecting and settings.pipeline.backfill_trades:
            backfiller = Backfiller(
                encoder=self.codec,
                rest_urls={
                    Market.SPOT: settings.binance.spot_rest_url,
                    Market.USDM: settings.binance.futures_rest_url,
                },
                max_trades=settings.pipeline.backfill_max_trades,
                timeout=settings.binance.rest_timeout_s,
                budgets=self.rest_budgets,
            )
        self.normalizer = Normalizer(self.codec, backfiller)
        self.bus = MemoryBus()
        self.spool: SpoolStage | None = None
        self.publisher: KafkaPublisher | None = None
        if collecting and settings.kafka.enabled:
            if settings.spool.enabled:
                # Trades missed while the daemon was down are backfilled from the ids
                # that reached the spool before.
                self.spool = SpoolStage(settings.spool, on_recovered=self.normalizer.sequencer.seed)
            self.publisher = KafkaPublisher(
                settings.kafka, on_settled=self.spool.on_settled if self.spool else None
            )
        self.feeds = (
            [
                Feed(plan, settings.binance)
                for plan in plan_connections(settings.subscriptions, settings.binance)
            ]
            if collecting
            else []
        )
        self.books = (
            Books(settings, budgets=self.rest_budgets)
            if collecting and settings.books.enabled
            else None
        )
        # Without the collector role the pipeline's channels below stay idle: nothing
        # of the pipeline is started (see _start_pipeline).
        self.children: dict[str, ChildState] = {
            name: ChildState(name) for name in ("sink", "normalizer", "books") if collecting
        }
        cap = settings.pipeline.channel_capacity
        self.frames_send, self.frames_recv = trio.open_memory_channel[FrameBatch](cap)
        # normalizer → [books] → [tap] → sink; the tap copies the detector's input.
        self.records_send, self.records_recv = _records_channel(cap)
        upstream = self.records_recv
        if self.books is not None:
            self.books_in = upstream
            self.books_send, self.books_recv = _records_channel(cap)
            upstream = self.books_recv
        gw = settings.gateway
        self.hub: AlertHub | None = None
        if self.roles.gateway:
            self.hub = AlertHub(history=gw.history, replay=gw.replay, client_queue=gw.client_queue)
        self.rules: RulesStore | None = None
        self.detector: DetectorService | None = None
        self.tap_in: trio.MemoryReceiveChannel[list[Record]] | None = None
        alerts = settings.alerts
        if self.roles.detector:
            self.children["detector"] = ChildState("detector")
            if alerts.source == "kafka" and not settings.kafka.enabled:
                raise ConfigError(
                    ["alerts.source: 'kafka' needs kafka.bootstrap_servers (or use 'pipeline')"]
                )
            try:
                self.rules = RulesStore(alerts)
            except RulesError as exc:
                raise ConfigError([f"alerts.rules (stored): {p}" for p in exc.problems]) from exc
            self.detector = DetectorService(
                alerts, self.rules, kafka=settings.kafka, listeners=[self.hub] if self.hub else []
            )
            if alerts.source == "pipeline":
                self.children["tap"] = ChildState("tap")
                self.tap_in = upstream
                self.detector_send, self.detector_recv = _records_channel(cap)
                self.sink_send, upstream = _records_channel(cap)
        self.sink_recv = upstream
        if self.spool is not None:
            # sink_recv → spool (disk) → publisher
            self.spool_in = upstream
            self.spool_send, self.sink_recv = _records_channel(cap)
            self.children["spool"] = ChildState("spool")
        self._feeds_scope = trio.CancelScope()
        self.http_shutdown = trio.Event()
        self.registry = registry or prometheus_client.REGISTRY
        # Every role serves /metrics, /healthz and /readyz; only the gateway the UI and API.
        self.app = create_app(self.readiness, self.registry)
        self.gateway: Gateway | None = None
        self.alerts_reader: AlertsTopicReader | None = None
        if self.hub is not None:
            if self.roles.alerts_from_kafka:
                self.alerts_reader = AlertsTopicReader(
                    settings.kafka, [self.hub], history=gw.history
                )
                self.children["alerts_reader"] = ChildState("alerts_reader")
            self.gateway = install_gateway(
                self.app,
                self.hub,
                self.rules,
                gw,
                self.http_shutdown,
                rules_elsewhere=self.roles.alerts_from_kafka,
            )
        self.http_binds: list[str] = []
        self.collector = StatisticsCollector()
        self.collector.add(self._metrics)
        if collecting:
            self.collector.add(self._pipeline_metrics)
        if self.gateway is not None:
            self.collector.add(self.gateway.metrics)
        if self.alerts_reader is not None:
            self.collector.add(self.alerts_reader.metrics)
        if self.books is not None:
            self.collector.add(self.books.metrics)
        if collecting:
            self.collector.add(self.rest_budgets.metrics)
        if backfiller is not None:
            self.collector.add(backfiller.metrics)
        if self.spool is not None:
            self.collector.add(self._spool_metrics)
        if self.detector is not None:
            self.collector.add(self.detector.metrics)
        self.registry.register(self.collector)

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

    # -- readiness and metrics ------------------------------------------------------------

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Ready when every component this process's roles need is; the detail names them
        (``components``) and those not ready (``not_ready``)."""
        books: tuple[bool, dict[str, Any]] | None = None
        if self.books is not None and self.settings.readiness.require_books_synced:
            books = self.books.readiness()
        checks = self._readiness_checks(books_ready=None if books is None else books[0])
        not_ready = [failing for _, ok, failing in checks if not ok]
        detail: dict[str, Any] = {
            "roles": list(self.settings.roles),
            "components": [name for name, _, _ in checks],
            "not_ready": not_ready,
        }
        if books is not None:
            detail.update(books[1])
        return not not_ready, detail

    def _readiness_checks(self, *, books_ready: bool | None) -> list[tuple[str, bool, str]]:
        """(component, ready, its name in ``not_ready``) for what this process runs;
        ``books_ready`` is None when books are not required."""
        checks: list[tuple[str, bool, str]] = []
        if self.roles.collector:
            checks.append(("sink", self.children["sink"].running, "sink"))
            if self.publisher is not None:
                checks.append(("kafka", self.publisher.statistics().connected, "kafka"))
            stale_after = self.settings.binance.stale_after_s
            for feed in self.feeds:
                st = feed.statistics()
                age = st.last_frame_age_s
                fresh = st.subscribed and age is not None and age <= stale_after
                checks.append((f"feed:{st.connection_id}", fresh, f"feed:{st.connection_id}"))
            if self.spool is not None:
                checks.append(("spool", not self.spool.full, "spool:full"))
        if self.detector is not None:
            checks.append(("detector", self.children["detector"].running, "detector"))
        if books_ready is not None:
            checks.append(("books", books_ready, "books"))
        if self.alerts_reader is not None:
            running = self.children["alerts_reader"].running and self.alerts_reader.ready()
            checks.append(("alerts_reader", running, "alerts_reader"))
        return checks

    def _metrics(self) -> Iterable[Metric]:
        """What every role has: restarts of its children, readiness, the version."""
        yield counter(
            "marketd_child_restarts_total",
            "Supervised children restarted after a failure.",
            ("child",),
            {(n,): s.failures for n, s in self.children.items()},
        )
        yield gauge(
            "marketd_ready", "1 when /readyz answers 200.", (), {(): float(self.readiness()[0])}
        )
        yield gauge("marketd_build_info", "marketd version.", ("version",), {(__version__,): 1})

    def _pipeline_metrics(self) -> Iterable[Metric]:
        norm = self.normalizer.statistics()
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
        bus = self.bus.statistics()
        yield counter(
            "marketd_bus_records_total",
            "Records delivered on the embedded bus (no Kafka), by topic.",
            ("topic",),
            {(t,): n for t, n in bus.by_topic.items()},
        )
        queued: dict[tuple[str, ...], float] = {
            ("frames",): self.frames_send.statistics().current_buffer_used,
            ("records",): self.records_send.statistics().current_buffer_used,
            ("sink",): self.sink_recv.statistics().current_buffer_used,
        }
        if self.books is not None:
            queued[("books",)] = self.books_send.statistics().current_buffer_used
        if self.tap_in is not None:
            queued[("detector",)] = self.detector_send.statistics().current_buffer_used
        yield gauge(
            "marketd_channel_queued_batches",
            "Batches waiting in each bounded pipeline channel.",
            ("channel",),
            queued,
        )
        yield gauge(
            "marketd_channel_capacity_batches",
            "Capacity of each bounded pipeline channel.",
            ("channel",),
            {(c,): float(self.settings.pipeline.channel_capacity) for (c,) in queued},
        )
        yield from self._feed_metrics()
        if self.publisher is not None:
            yield from self.publisher.metrics()

    def _spool_metrics(self) -> Iterable[Metric]:
        spool = self.spool.spool if self.spool is not None else None
        if spool is not None:
            yield from spool.metrics()
            yield counter(
                "marketd_spool_records_rejected_total",
                "Records larger than the whole spool bound (spool.max_bytes), dropped.",
                (),
                {(): self.spool.rejected if self.spool else 0},
            )

    def _feed_metrics(self) -> Iterable[Metric]:
        stats = [f.statistics() for f in self.feeds]
        yield counter(
            "marketd_feed_handovers_total",
            "Make-before-break handovers (rotation, serverShutdown) per connection.",
            ("connection",),
            {(f.connection_id,): f.handovers for f in self.feeds},
        )
        yield counter(
            "marketd_feed_overlap_frames_dropped_total",
            "Frames of a new connection dropped at handover because the old one sent them.",
            ("connection",),
            {(f.connection_id,): f.overlap_frames_dropped for f in self.feeds},
        )
        yield gauge(
            "marketd_feed_connected",
            "1 when the feed connection is subscribed and reading.",
            ("connection",),
            {(s.connection_id,): float(s.subscribed) for s in stats},
        )
        yield counter(
            "marketd_feed_frames_total",
            "Frames received on each feed connection.",
            ("connection",),
            {(s.connection_id,): s.frames_received for s in stats},
        )
        yield counter(
            "marketd_feed_reconnects_total",
            "Feed reconnects by reason.",
            ("connection", "reason"),
            {(s.connection_id, r): n for s in stats for r, n in s.reconnects.items()},
        )
        yield gauge(
            "marketd_feed_last_frame_age_seconds",
            "Seconds since the last frame on each feed connection.",
            ("connection",),
            {
                (s.connection_id,): s.last_frame_age_s
                for s in stats
                if s.last_frame_age_s is not None
            },
        )

    def log_statistics(self) -> None:
        fields: dict[str, Any] = {}
        if self.roles.collector:
            norm = self.normalizer.statistics()
            published = (
                self.publisher.statistics().acknowledged
                if self.publisher is not None
                else self.bus.statistics().records
            )
            fields.update(
                frames=norm.frames,
                records=norm.records,
                delivered=published,
                sink="kafka" if self.publisher else "memory-bus",
                malformed=sum(norm.malformed.values()),
                unknown=sum(norm.unknown.values()),
                duplicates=norm.duplicates,
                backfilled=norm.backfilled,
                book_snapshots=self.books.statistics().snapshots_published if self.books else 0,
                feeds_connected=sum(f.statistics().subscribed for f in self.feeds),
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
                if self.detector is not None and self.tap_in is None:
                    # On Kafka the detector runs until cancelled, apart from the drain.
                    services.start_soon(self._serve_detector, None)
                if self.alerts_reader is not None:
                    services.start_soon(self._serve_alerts_reader, self.alerts_reader)
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
                        self._feeds_scope.cancel()
                        pipeline_scope.deadline = (
                            trio.current_time() + self.settings.shutdown.grace_s
                        )
                        if self.spool is not None:
                            services.start_soon(self._end_drain_once_spooled, pipeline_scope)
                if pipeline_scope.cancelled_caught and running.is_set():
                    if self.spool is not None and self.spool.durable.is_set():
                        log.warning(
                            "stopped with records in the spool; the next start delivers them",
                            pending=self._spool_pending(),
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

    async def _end_drain_once_spooled(self, pipeline_scope: trio.CancelScope) -> None:
        """At shutdown, once everything received is fsynced in the spool, keep flushing to
        Kafka only while Kafka takes it: an unreachable broker ends the drain at once (the
        records wait in the spool) instead of holding the stop for the whole grace period."""
        assert self.spool is not None
        assert self.publisher is not None
        await self.spool.durable.wait()
        log.info("intake drained into the spool; flushing to Kafka", pending=self._spool_pending())
        while self.publisher.statistics().connected:  # noqa: ASYNC110 - polled state, no event
            await trio.sleep(_SHUTDOWN_POLL_S)
        log.warning("Kafka unreachable while stopping; records stay in the spool")
        pipeline_scope.cancel()

    def _spool_pending(self) -> int:
        spool = self.spool.spool if self.spool is not None else None
        return spool.statistics().records_pending if spool is not None else 0

    async def _start_pipeline(self, pipeline: trio.Nursery) -> None:
        """Start the stages in dependency order: sink, detector, books, normalizer, feeds
        (nothing without the collector role)."""
        if not self.roles.collector:
            log.info(
                "marketd running",
                http=self.http_binds,
                roles=list(self.settings.roles),
                detector="off" if self.detector is None else self.settings.alerts.source,
                alerts="kafka" if self.alerts_reader is not None else "in-process",
            )
            return
        if self.spool is not None:
            # The publisher may wait for Kafka; the spool takes everything meanwhile.
            pipeline.start_soon(self._serve_sink)
            await pipeline.start(self._serve_spool, self.spool)
        else:
            await pipeline.start(self._serve_sink)
        if self.tap_in is not None:
            await pipeline.start(self._serve_detector, self.detector_recv)
            await pipeline.start(self._serve_tap, self.tap_in)
        if self.books is not None:
            await pipeline.start(self._serve_books, self.books)
        await pipeline.start(self._serve_normalizer)
        pipeline.start_soon(self._serve_feeds, self._feeds_scope)
        log.info(
            "marketd running",
            http=self.http_binds,
            feeds=len(self.feeds),
            sink="kafka" if self.publisher else "memory-bus",
            detector="off" if self.detector is None else self.settings.alerts.source,
            roles=list(self.settings.roles),
        )

    async def _serve_detector(
        self,
        batches: trio.MemoryReceiveChannel[list[Record]] | None,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        detector = self.detector
        assert detector is not None
        policy = policy_from_settings(self.settings.supervisor.restart)

        async def child(*, task_status: trio.TaskStatus[None]) -> None:
            if batches is None:
                # aiokafka loads only in a process whose detector reads Kafka.
                from marketd.alerts.kafka_io import serve_kafka_detector

                assert detector.kafka is not None
                await serve_kafka_detector(detector, detector.kafka, task_status=task_status)
                return
            await detector.serve_channel(
                batches.clone(),
                alerts_out=self.sink_send.clone(),
                alerts_topic=self.settings.kafka.topics.alerts,
                task_status=task_status,
            )

        async with contextlib.AsyncExitStack() as stack:
            if batches is not None:
                await stack.enter_async_context(batches)
            await serve_restarting(
                "detector", child, policy, self.children["detector"], task_status=task_status
            )

    async def _serve_alerts_reader(self, reader: AlertsTopicReader) -> None:
        policy = policy_from_settings(self.settings.supervisor.restart)
        child = functools.partial(serve_alerts_reader, reader)
        await serve_restarting("alerts_reader", child, policy, self.children["alerts_reader"])

    async def _log_periodically(self) -> None:
        while True:
            await trio.sleep(self.settings.log.stats_interval_s)
            self.log_statistics()

    async def _serve_sink(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        policy = policy_from_settings(self.settings.supervisor.restart)
        recv = self.sink_recv
        if self.publisher is not None:
            publisher = self.publisher

            async def child(*, task_status: trio.TaskStatus[None]) -> None:
                await publisher.serve(recv.clone(), task_status=task_status)
        else:
            bus = self.bus

            async def child(*, task_status: trio.TaskStatus[None]) -> None:
                await bus.serve(recv.clone(), task_status=task_status)

        async with recv:
            await serve_restarting(
                "sink", child, policy, self.children["sink"], task_status=task_status
            )

    async def _serve_books(self, books: Books, *, task_status: trio.TaskStatus[None]) -> None:
        policy = policy_from_settings(self.settings.supervisor.restart)
        recv, send = self.books_in, self.books_send

        async def child(*, task_status: trio.TaskStatus[None]) -> None:
            await books.serve(recv.clone(), send.clone(), task_status=task_status)

        async with recv, send:
            await serve_restarting(
                "books", child, policy, self.children["books"], task_status=task_status
            )

    async def _serve_spool(self, stage: SpoolStage, *, task_status: trio.TaskStatus[None]) -> None:
        policy = policy_from_settings(self.settings.supervisor.restart)
        recv, send = self.spool_in, self.spool_send

        async def child(*, task_status: trio.TaskStatus[None]) -> None:
            await stage.serve(recv.clone(), send.clone(), task_status=task_status)

        try:
            async with recv, send:
                await serve_restarting(
                    "spool", child, policy, self.children["spool"], task_status=task_status
                )
        finally:
            await stage.close()

    async def _serve_tap(
        self,
        tap_in: trio.MemoryReceiveChannel[list[Record]],
        *,
        task_status: trio.TaskStatus[None],
    ) -> None:
        alerts = self.settings.alerts
        markets = [Market(m) for m in alerts.markets]
        out, tapped = self.sink_send, self.detector_send

        async def child(*, task_status: trio.TaskStatus[None]) -> None:
            await serve_tap(
                tap_in.clone(),
                out.clone(),
                tapped.clone(),
                alerts.kinds,
                markets,
                task_status=task_status,
            )

        async with tap_in, out, tapped:
            await serve_restarting(
                "tap", child, policy_from_settings(self.settings.supervisor.restart),
                self.children["tap"], task_status=task_status,
            )  # fmt: skip

    async def _serve_normalizer(self, *, task_status: trio.TaskStatus[None]) -> None:
        policy = policy_from_settings(self.settings.supervisor.restart)
        frames_recv, records_send = self.frames_recv, self.records_send
        child = functools.partial(self._normalizer_child, frames_recv, records_send)
        async with frames_recv, records_send:
            await serve_restarting(
                "normalizer", child, policy, self.children["normalizer"], task_status=task_status
            )

    async def _normalizer_child(
        self,
        frames_recv: trio.MemoryReceiveChannel[FrameBatch],
        records_send: trio.MemorySendChannel[list[Record]],
        *,
        task_status: trio.TaskStatus[None],
    ) -> None:
        await self.normalizer.serve(
            frames_recv.clone(), records_send.clone(), task_status=task_status
        )

    async def _serve_feeds(self, scope: trio.CancelScope) -> None:
        async with self.frames_send:
            with scope:
                async with trio.open_nursery() as nursery:
                    for feed in self.feeds:
                        nursery.start_soon(self._feed_child, feed)

    async def _feed_child(self, feed: Feed) -> None:
        await feed.serve(self.frames_send.clone())


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
