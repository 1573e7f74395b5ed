"""The detector service: market events in, alerts out to listeners (and Kafka).

Two inputs, one detector (:mod:`marketd.alerts.detector`):

* **Embedded** — ``service.serve_channel(batches)``: record batches from the
  in-process pipeline. The bus waits when this channel is full, so a slow detector slows the
  pipeline (backpressure), nothing is dropped. Alerts go to the listeners only.
* **Kafka** — :func:`marketd.alerts.kafka_io.serve_kafka_detector` (imported only where it
  runs, so aiokafka loads only then) with ``kafka`` settings: consume ``topics.raw``
  in the consumer group ``alerts.consumer_group`` (replicas share symbols by partition,
  records are keyed by symbol) and publish alerts to ``topics.alerts`` (and their outcomes
  to ``topics.outcomes``) exactly once, in transactions that also commit the consumed
  offsets (:mod:`marketd.alerts.kafka_io`).
  Alerts reach the listeners after their transaction committed.

Listeners (``AlertListener.publish``) must not block. Rules come from a
:class:`~marketd.alerts.rules.RulesStore`; a new version applies at the next batch, and
the rules file is re-read every ``RULES_POLL_S`` in case another process changed it.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence

import attrs
import structlog
import trio
from prometheus_client.core import Metric

from marketd.alerts.detector import Detector, wall_ms
from marketd.alerts.encoding import TickReader, alert_record, outcome_record
from marketd.alerts.model import Alert, AlertListener, Outcome, OutcomeListener
from marketd.alerts.rules import RulesError, RulesStore
from marketd.config.alerts import AlertSettings
from marketd.config.settings import KafkaSettings
from marketd.data.records import Record
from marketd.errors import RetryableError
from marketd.obs.logs import LineBudget, RateLimitedLog
from marketd.obs.metrics import counter, gauge
from marketd.obs.telemetry import span

log = structlog.get_logger(__name__)

# The terminal shows one line per alert, at most this many a second after a burst of
# ALERT_LINES_BURST: a careless rule must not drown the log (the next line shown says how
# many were not).
ALERT_LINES_PER_S = 10
ALERT_LINES_BURST = 50

RULES_POLL_S = 2.0


class DetectorError(RetryableError):
    """The detector's Kafka input or output failed; the supervisor restarts it (its
    state is rebuilt from the topic, and nothing is published twice)."""


@attrs.frozen
class DetectorServiceStatistics:
    running: bool
    ticks: int  # ticks used by the detector (replayed ones included)
    duplicates: int
    out_of_order: int
    invalid: int  # prices that are not positive decimals
    malformed: int  # values that are not MarketEvents
    alerts: dict[tuple[str, str], int]  # delivered, by (rule, direction)
    alerts_published: int  # committed to the alerts topic (Kafka only)
    replayed: int  # records re-read after a (re)start to rebuild state (Kafka only)
    transactions: int  # Kafka transactions committed
    instruments: int
    last_event_time_ms: int
    rules: tuple[str, ...]
    outcomes: int = 0  # prices after an alert (+1/+5/+15 min) found and delivered
    outcomes_pending: int = 0  # alerts waiting for an outcome
    outcomes_skipped: int = 0  # alerts that got none (too many were waiting)


class DetectorService:
    """Owns the detector, the tick reader and the counters across restarts of ``serve``."""

    def __init__(
        self,
        settings: AlertSettings,
        store: RulesStore,
        *,
        kafka: KafkaSettings | None = None,
        listeners: Sequence[AlertListener] = (),
        clock: Callable[[], int] = wall_ms,
    ) -> None:
        self.settings = settings
        self.store = store
        self.kafka = kafka if kafka is not None and kafka.enabled else None
        self.listeners: list[AlertListener] = list(listeners)
        self.clock = clock
        self.detector = Detector(store.rules(), clock=clock)
        self.reader = TickReader(settings.kinds, settings.markets)
        self.running = False
        self.alerts: Counter[tuple[str, str]] = Counter()
        self.alerts_published = 0
        self.replayed = 0
        self.transactions = 0
        self.outcomes = 0
        self._retired = Counter[str]()  # counts of detectors replaced by a restart
        self._rules_version = store.version
        self._next_refresh = 0.0
        self._rules_log = RateLimitedLog(interval=60.0)
        self._alert_lines = LineBudget(ALERT_LINES_PER_S, ALERT_LINES_BURST)

    def add_listener(self, listener: AlertListener) -> None:
        self.listeners.append(listener)

    # -- observation ------------------------------------------------------------------

    def statistics(self) -> DetectorServiceStatistics:
        d = self.detector
        r = self._retired
        return DetectorServiceStatistics(
            running=self.running,
            ticks=d.ticks + r["ticks"],
            duplicates=d.duplicates + r["duplicates"],
            out_of_order=d.out_of_order + r["out_of_order"],
            invalid=d.invalid + r["invalid"],
            malformed=self.reader.malformed,
            alerts=dict(self.alerts),
            alerts_published=self.alerts_published,
            replayed=self.replayed,
            transactions=self.transactions,
            instruments=d.statistics().instruments,
            last_event_time_ms=d.last_event_time_ms,
            rules=tuple(r.name for r in d.rules),
            outcomes=self.outcomes,
            outcomes_pending=d.pending_outcomes,
            outcomes_skipped=d.outcomes_skipped + r["outcomes_skipped"],
        )

    def metrics(self) -> Iterable[Metric]:
        """Metric families for the daemon's collector (labels: current rule names, the
        two directions, four drop reasons: bounded)."""
        st = self.statistics()
        yield counter("marketd_detector_ticks_total", "Prices fed to the detector.", (),
                      {(): st.ticks})  # fmt: skip
        yield counter(
            "marketd_detector_ticks_dropped_total",
            "Detector input dropped: duplicate, out_of_order (older event time), invalid "
            "(price), malformed (not a MarketEvent).",
            ("reason",),
            {
                ("duplicate",): st.duplicates,
                ("out_of_order",): st.out_of_order,
                ("invalid",): st.invalid,
                ("malformed",): st.malformed,
            },
        )
        by_rule: dict[tuple[str, ...], int] = {
            (rule, d): st.alerts.get((rule, d), 0) for rule in st.rules for d in ("up", "down")
        }
        yield counter(
            "marketd_alerts_detected_total",
            "Alerts raised and delivered, by rule and direction (up: pump, down: dump).",
            ("rule", "direction"),
            by_rule,
        )
        yield counter(
            "marketd_alert_outcomes_total",
            "What happened after alerts: prices +1/+5/+15 min found (found), and alerts "
            "that got no outcome because too many were waiting (skipped).",
            ("result",),
            {("found",): st.outcomes, ("skipped",): st.outcomes_skipped},
        )
        yield gauge("marketd_alert_outcomes_pending", "Alerts waiting for an outcome.", (),
                    {(): float(st.outcomes_pending)})  # fmt: skip
        yield gauge("marketd_detector_instruments", "Instruments with detector state.", (),
                    {(): float(st.instruments)})  # fmt: skip
        if st.last_event_time_ms:
            yield gauge(
                "marketd_detector_event_lag_seconds",
                "Wall clock minus the newest event time the detector has seen.",
                (),
                {(): max(0.0, time.time() - st.last_event_time_ms / 1000)},
            )
        yield gauge("marketd_detector_running", "1 while the detector is serving.", (),
                    {(): float(st.running)})  # fmt: skip
        if self.kafka is not None:
            yield counter("marketd_detector_alerts_published_total",
                          "Alerts committed to the alerts topic (exactly once).", (),
                          {(): st.alerts_published})  # fmt: skip
            yield counter("marketd_detector_replayed_records_total",
                          "Raw records re-read after a (re)start to rebuild detector state.",
                          (), {(): st.replayed})  # fmt: skip
            yield counter("marketd_detector_transactions_total",
                          "Kafka transactions committed (alerts + consumer offsets).", (),
                          {(): st.transactions})  # fmt: skip

    # -- shared by both inputs ----------------------------------------------------------

    def new_detector(self) -> Detector:
        """A fresh detector (a Kafka restart rebuilds state from the topic)."""
        old = self.detector
        for name in ("ticks", "duplicates", "out_of_order", "invalid", "outcomes_skipped"):
            self._retired[name] += getattr(old, name)
        self.detector = Detector(self.store.rules(), clock=self.clock)
        self._rules_version = self.store.version
        return self.detector

    def sync_rules(self) -> None:
        """Apply a new rules version; every ``RULES_POLL_S`` look at the file too."""
        now = trio.current_time()
        if now >= self._next_refresh:
            self._next_refresh = now + RULES_POLL_S
            try:
                self.store.refresh()
            except RulesError as exc:
                if self._rules_log.ready() is not None:
                    log.error(  # noqa: TRY400 - the message says it all, no traceback
                        "saved rules are invalid; keeping the rules in force", error=str(exc)
                    )
        if self.store.version != self._rules_version:
            self._rules_version = self.store.version
            self.detector.set_rules(self.store.rules())
            log.info("detector rules changed", rules=[attrs.asdict(r) for r in self.store.rules()])

    def deliver_outcomes(self, outcomes: list[Outcome]) -> None:
        """Hand what happened after alerts to the listeners that take it (the hub)."""
        self.outcomes += len(outcomes)
        for listener in self.listeners:
            if isinstance(listener, OutcomeListener):
                listener.publish_outcomes(outcomes)

    def deliver(self, alerts: list[Alert]) -> None:
        """Count and hand alerts to every listener (non-blocking)."""
        for alert in alerts:
            self.alerts[(alert.rule, alert.direction.value)] += 1
            if (unshown := self._alert_lines.ready()) is not None:
                _log_alert(alert, unshown)
        for listener in self.listeners:
            listener.publish(alerts)

    # -- the embedded input -------------------------------------------------------------

    async def serve_channel(
        self,
        batches: trio.abc.ReceiveChannel[list[Record]],
        *,
        alerts_out: trio.abc.SendChannel[list[Record]] | None = None,
        alerts_topic: str = "alerts",
        outcomes_topic: str = "alerts.outcomes",
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Detect on record batches until the channel ends (then return) or cancelled.

        With ``alerts_out`` (the daemon's sink: Kafka or the embedded bus), every alert is
        also sent there as a record on ``alerts_topic``, and every outcome on
        ``outcomes_topic``, keyed by symbol; that channel is closed when this returns.
        """
        reader = self.reader
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(batches)
            if alerts_out is not None:
                await stack.enter_async_context(alerts_out)
            self.running = True
            try:
                task_status.started()
                async for batch in batches:
                    self.sync_rules()
                    ticks = reader.ticks(batch)
                    if not ticks:
                        continue
                    with span("alerts.detect", ticks=len(ticks)):
                        alerts = self.detector.observe_many(ticks)
                    outcomes = self.detector.take_outcomes()
                    if alerts:
                        with span("alerts.deliver", alerts=len(alerts)):
                            self.deliver(alerts)
                    if outcomes:
                        self.deliver_outcomes(outcomes)
                    if alerts_out is not None and (alerts or outcomes):
                        records = [alert_record(a, alerts_topic) for a in alerts]
                        records += [outcome_record(o, outcomes_topic) for o in outcomes]
                        await alerts_out.send(records)
                        self.alerts_published += len(alerts)
            finally:
                self.running = False


def _log_alert(alert: Alert, unshown: int) -> None:
    extra = {"not_shown": unshown} if unshown else {}
    log.info(
        "alert",
        symbol=alert.symbol,
        market=alert.market,
        direction=alert.direction.value,
        move=f"{alert.change_pct:+.2f}%",
        rule=alert.rule,
        price=alert.price,
        **extra,
    )
