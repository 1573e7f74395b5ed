"""The daemon: which stages run in this process, and their channels, in dependency order.

    feeds ─FrameBatch─► normalizer ─► [books] ─┬─► [spool] ─► sink (Kafka publisher | embedded bus)
                                               └─► [detector]  (its branch: the tap)

Start order: HTTP → sink → spool → detector → books → normalizer → feeds, each once the
one it feeds has started (the sink behind the spool may still be waiting for Kafka).
Stop (SIGINT/SIGTERM): cancel the feeds (stop intake), drain within ``shutdown.grace_s``,
then stop HTTP. This module only builds and wires: the stages run under the supervisor
(:mod:`marketd.runtime.stage`), the start and the drain are :mod:`marketd.runtime.lifecycle`,
readiness, metric sources and statistics are :mod:`marketd.health`.

What runs is chosen by ``roles`` (:mod:`marketd.roles`): the pipeline above with the
collector, or with the recorder role alone (then its sink is :class:`Discard`, with no
spool and no detector: it records and publishes nothing); the detector on it or on Kafka;
the gateway's routes, fed by the detector here or by a reader of the alerts topic. HTTP
(metrics and probes) runs in every role.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any

import attrs
import prometheus_client
import structlog
import trio

from marketd.alerts.kafka_io import serve_kafka_detector
from marketd.alerts.model import AlertListener
from marketd.alerts.rules import RulesError, RulesStore, rule_text
from marketd.alerts.service import DetectorService
from marketd.alerts.topic_reader import AlertsTopicReader, serve_alerts_reader
from marketd.books.service import Books
from marketd.config.checks import warnings as config_warnings
from marketd.config.settings import KafkaSettings, Settings, subscribed_kinds
from marketd.data.records import FrameBatch, Market, Record
from marketd.errors import ConfigError
from marketd.feed.service import FeedGroup
from marketd.gateway import AlertHub, Gateway, install_gateway
from marketd.health import Health
from marketd.kafka.exactly_once import ExactlyOncePublisher
from marketd.kafka.sink import KafkaPublisher
from marketd.notify.service import Notifications
from marketd.obs.status import install_status
from marketd.obs.web import Probes, create_app, serve_http
from marketd.pipeline.backfill import Backfiller
from marketd.pipeline.bus import MemoryBus
from marketd.pipeline.codecs import Codecs
from marketd.pipeline.discard import Discard
from marketd.pipeline.normalizer import Normalizer
from marketd.pipeline.normalizer_metrics import normalizer_metrics
from marketd.pipeline.sink import Sink
from marketd.pipeline.tap import Tap, TeeSendChannel
from marketd.recorder.stage import Recorder
from marketd.rest.budget import RestBudgets
from marketd.rest.client import HttpGet, http_get
from marketd.roles import Roles
from marketd.runtime.backoff import policy_from_settings
from marketd.runtime.lifecycle import Lifecycle
from marketd.runtime.stage import Channels, Stage, Supervisor
from marketd.runtime.supervisor import wait_for_signal
from marketd.spool.layout import ids_left_elsewhere
from marketd.spool.stage import SpoolStage
from marketd.status import StatusStream

log = structlog.get_logger(__name__)


class Daemon:
    """Owns the components of one ``marketd run`` and wires their channels.

    ``sink`` replaces the sink the settings choose (the Kafka publisher with Kafka, else
    the embedded bus), e.g. a test's; there is no spool then (only Kafka's acks move it).
    ``probes`` adds others' state to this process's probes (the parent of shards: its
    workers', :mod:`marketd.shards.parent`).
    """

    def __init__(
        self,
        settings: Settings,
        registry: prometheus_client.CollectorRegistry | None = None,
        *,
        sink: Sink | None = None,
        probes: Probes | None = None,
    ) -> None:
        self.settings = settings
        self.probes = probes
        self.roles = roles = Roles.of(settings.roles, alerts_enabled=settings.alerts.enabled)
        self.supervisor = Supervisor(policy_from_settings(settings.supervisor.restart))
        self.channels = Channels()
        self.pipeline: list[Stage] = []  # started in this order; drained at a stop
        self.services: list[Stage] = []  # beside the pipeline until the daemon stops
        self.http_shutdown = trio.Event()
        self.registry = registry or prometheus_client.REGISTRY
        # Every role serves /metrics, /healthz and /readyz; only the gateway the UI and API.
        self.app = create_app(
            self.readiness, self.registry, exposition=probes.exposition if probes else None
        )
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
        if roles.intake:
            self._wire_pipeline()
        self.gateway: Gateway | None = None
        self.alerts_reader: AlertsTopicReader | None = None
        if self.hub is not None:
            self._make_gateway(self.hub)
        self.health = Health(
            settings=settings, roles=roles, supervisor=self.supervisor, channels=self.channels,
            sink=self.sink, bus=self.bus, feeds=self.feeds, normalizer=self.normalizer,
            rest_budgets=self.rest_budgets, spool=self.spool, books=self.books,
            backfiller=self.backfiller, tap=self.tap, detector=self.detector,
            alerts_reader=self.alerts_reader, hub=self.hub, gateway=self.gateway,
            recorder=self.recorder, status_stream=self.status,
        )  # fmt: skip
        install_status(self.app, self.status_report)  # /api/status, in every role
        self.collector = self.health.collector()
        self.registry.register(self.collector)
        http = functools.partial(serve_http, self.app, settings.http.listen, self.http_shutdown)
        intake = functools.partial(self.feeds.serve, self._frames_send) if roles.intake else None
        self.lifecycle = Lifecycle(
            supervisor=self.supervisor, pipeline=self.pipeline, services=self.services,
            serve_http=http, http_shutdown=self.http_shutdown, reports=self.health,
            grace_s=settings.shutdown.grace_s, stats_interval_s=settings.log.stats_interval_s,
            intake=intake, spool=self.spool, connected=lambda: self.sink.statistics().connected,
        )  # fmt: skip

    def _make_collector(self, sink: Sink | None) -> None:
        """The collector's components (built, and idle, without the collector role); with
        the recorder role alone, those that make the recording whole (the feeds, the
        backfill, the books) and a sink that drops everything."""
        settings, collecting, intake = self.settings, self.roles.collector, self.roles.intake
        self.codec = Codecs(settings.kafka.topics)
        # One REST weight budget per market, shared by the backfill and the book snapshots.
        self.rest_budgets = RestBudgets.from_settings(settings.books)
        self.recorder: Recorder | None = None
        get: HttpGet = http_get
        if intake and settings.recorder.enabled:
            self.recorder = Recorder(settings.recorder)
            get = self.recorder.recording(http_get)  # their REST answers are recorded too
            self.services.append(self.supervisor.stage(
                "recorder", self.recorder.serve, metrics=self.recorder.metrics))  # fmt: skip
        self.backfiller: Backfiller | None = None
        if intake and settings.pipeline.backfill_trades:
            self.backfiller = Backfiller(
                encoder=self.codec,
                rest_urls=settings.binance.rest_urls(),
                max_trades=settings.pipeline.backfill_max_trades,
                timeout=settings.binance.rest_timeout_s,
                budgets=self.rest_budgets,
                get=get,
            )
        self.normalizer = Normalizer(self.codec, self.backfiller)
        self.normalizer.batch_interval_s = settings.pipeline.batch_interval_ms / 1000
        self.normalizer.batch_frames = settings.binance.max_frames_per_batch
        # What the collector could not see, reported beside the data (topics.status).
        self.status: StatusStream | None = None
        if intake:
            self.status = StatusStream(settings.kafka.topics.status, settings.kafka.client_id)
            self.normalizer.status = self.status
        self.bus = MemoryBus(topics=attrs.astuple(settings.kafka.topics))
        self.spool: SpoolStage | None = None
        self.publisher: KafkaPublisher | ExactlyOncePublisher | None = None
        if collecting and settings.kafka.enabled and sink is None:
            if settings.spool.enabled:
                # Trades missed while the daemon was down are backfilled from the ids
                # that reached the spool before.
                self.spool = SpoolStage(
                    settings.spool,
                    on_recovered=self.normalizer.sequencer.seed,
                    ids_elsewhere=ids_left_elsewhere(settings),
                )
                self.spool.status = self.status
            if settings.kafka.exactly_once and self.spool is not None:
                self.publisher = ExactlyOncePublisher(settings.kafka, self.spool)
            else:
                self.publisher = KafkaPublisher(
                    settings.kafka, on_settled=self.spool.on_settled if self.spool else None
                )
        chosen: Sink = (self.publisher or self.bus) if collecting else Discard()
        self.sink: Sink = sink if sink is not None else chosen
        recording = self.recorder is not None  # their control frames and markers too
        self.feeds = FeedGroup.from_settings(
            settings, intake, record_control=recording, status=self.status
        )
        if self.recorder is not None:
            self.normalizer.record = self.recorder.offer  # never blocks the pipeline
        self.books: Books | None = None
        if intake and settings.books.enabled:
            self.books = Books(settings, budgets=self.rest_budgets, get=get, status=self.status)

    def _make_detector(self) -> None:
        """The detector, on this process's pipeline (its branch: the tap) or on Kafka."""
        settings, alerts = self.settings, self.settings.alerts
        if alerts.source == "kafka" and not settings.kafka.enabled:
            raise ConfigError(
                ["alerts.source: 'kafka' needs kafka.bootstrap_servers (or use 'pipeline')"]
            )
        try:
            self.rules = RulesStore(alerts, notifiers=[n.name for n in settings.notifications])
        except RulesError as exc:
            raise ConfigError([f"alerts.rules (stored): {p}" for p in exc.problems]) from exc
        provenance = self.rules.provenance()
        log.info("alert rules in force", **provenance)
        if provenance.get("overrides_config"):
            log.warning(
                "the saved rules override alerts.rules; delete the file to run the configured "
                "rules",
                path=provenance["path"],
                configured=[rule_text(r) for r in self.rules.configured],
            )
        listeners: list[AlertListener] = [self.hub] if self.hub else []
        if settings.notifications:  # beside the browsers: its queues never block the detector
            notify = Notifications(settings.notifications, self.rules.rules)
            listeners.append(notify)
            self.services.append(self.supervisor.stage(
                "notifier", notify.serve, *notify.queues, metrics=notify.metrics))  # fmt: skip
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
        subscribed = subscribed_kinds(self.settings.subscriptions)
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
        status: list[Stage] = []
        if self.status is not None:  # its reports join the data on the way to the spool
            status_send, status_recv = ch.open("status", _records_channel(cap))
            status = [
                sup.stage("status", self.status.serve, main_recv, status_send,
                          metrics=self.status.metrics)
            ]  # fmt: skip
            main_recv = status_recv
        spool: list[Stage] = []
        if self.spool is not None:
            spool_send, sink_recv = ch.open("sink", _records_channel(cap))
            spool = [
                sup.stage("spool", self.spool.serve, main_recv, spool_send,
                          metrics=self.spool.metrics)
            ]  # fmt: skip
        else:
            sink_recv = main_recv
            ch.show("sink", sink_recv)
        # Behind the spool the sink may wait for Kafka: the spool takes everything meanwhile.
        # The spool closes when the sink ends, not when the spool stage does: that one ends
        # once it has handed the last records on, and their acknowledgements come after.
        sink = sup.stage("sink", self.sink.serve, sink_recv, metrics=self.sink.metrics,
                         waited=self.spool is None,
                         close=self.spool.close if self.spool is not None else None)  # fmt: skip
        books: list[Stage] = []
        if self.books is not None:
            books = [sup.stage("books", self.books.serve, records_recv, out,
                               metrics=self.books.metrics)]  # fmt: skip
            out = records_send
        normalizer = sup.stage(
            "normalizer", self.normalizer.serve, frames_recv, out,
            metrics=lambda: normalizer_metrics(self.normalizer.statistics(), subscribed),
        )  # fmt: skip
        self.pipeline = [sink, *spool, *status, *detector, *books, normalizer]

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
            rules_elsewhere=from_kafka, listen=settings.http.listen,
            state_dir=settings.alerts.state_dir,
        )  # fmt: skip

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """See :meth:`Health.readiness` (and ``probes``); ``create_app`` takes it before
        ``health`` exists."""
        own = self.health.readiness()
        return own if self.probes is None else self.probes.readiness(own)

    def status_report(self) -> dict[str, Any]:
        """The body of ``GET /api/status``: :meth:`Health.status_report` (and ``probes``)."""
        own = self.health.status_report()
        return own if self.probes is None else self.probes.status(own)

    def close(self) -> None:
        with contextlib.suppress(KeyError):
            self.registry.unregister(self.collector)

    async def run(
        self,
        stop: trio.Event,
        *,
        task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
    ) -> bool:
        """Run until ``stop`` is set, then drain (:meth:`Lifecycle.run`). Return True if
        everything was flushed."""
        return await self.lifecycle.run(stop, task_status=task_status)


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
        batches,
        alerts_out=alerts_out,
        alerts_topic=kafka.topics.alerts,
        outcomes_topic=kafka.topics.outcomes,
        task_status=task_status,
    )


def _records_channel(
    capacity: int,
) -> tuple[trio.MemorySendChannel[list[Record]], trio.MemoryReceiveChannel[list[Record]]]:
    return trio.open_memory_channel[list[Record]](capacity)


async def run_daemon(settings: Settings) -> int:
    """Run the daemon until SIGINT/SIGTERM. Return the process exit code."""
    stop = trio.Event()
    # A shard's warnings were said by its parent, about the whole configuration (a shard's
    # part alone may look incomplete: all-market streams are on shard 0 only).
    for warning in [] if settings.collector.worker else config_warnings(settings):
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
