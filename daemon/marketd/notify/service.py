"""The notifiers: a listener of the detector, and the supervised tasks that send.

:meth:`Notifications.publish` is an :class:`~marketd.alerts.model.AlertListener`: the
detector calls it with each batch of alerts, and it must never block. It puts each alert
into the bounded queue of every notifier its rule names (``alerts.rules[].notify``, read
from the rules in force, so a change over ``PUT /api/rules`` applies at once) with
``send_nowait``. A full queue (the target is slow or down) drops the alert for that
notifier and counts it: detection and the browsers never wait for a notifier.

:meth:`Notifications.serve` runs as a service stage under the supervisor: one task per
notifier takes alerts from its queue in order and POSTs each
(:mod:`marketd.notify.senders` builds the request and judges the answer). Network errors,
timeouts, 5xx and 429 are retried up to ``max_retries`` times with capped, jittered
exponential backoff, waiting at least what the service asked for (``Retry-After``,
Telegram's and Discord's ``retry_after``); any other answer fails the alert at once.
Failures and drops are logged at most once a minute per notifier, naming only the
target's scheme, host and port (never a path or URL: they hold tokens). Alerts still
queued when the daemon stops are not sent (they are in the alerts topic and the gateway's
history).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Sequence

import attrs
import structlog
import trio
from prometheus_client.core import Metric

from marketd.alerts.model import Alert
from marketd.config.alerts import RuleSettings
from marketd.config.notify import NotifierSettings
from marketd.notify.http import Post, PostError, post
from marketd.notify.senders import (
    Outcome,
    Verdict,
    backoff_policy,
    build_request,
    classify,
    network_error,
    retry_delay,
)
from marketd.obs.logs import RateLimitedLog
from marketd.obs.metrics import counter, gauge

log = structlog.get_logger(__name__)

OUTCOMES = ("delivered", "failed", "dropped")
LOG_INTERVAL_S = 60.0


@attrs.frozen
class NotifierStatistics:
    kind: str
    delivered: int  # alerts the service accepted (2xx)
    failed: int  # refused (4xx) or still failing after max_retries
    dropped: int  # not queued: the queue was full (or the daemon stopping)
    retries: int  # attempts repeated after a network error, 5xx or 429
    queued: int
    capacity: int


class _Notifier:
    """One notifier's settings, queue and counters (across restarts of ``serve``)."""

    def __init__(self, settings: NotifierSettings) -> None:
        self.settings = settings
        self.send, self.receive = trio.open_memory_channel[Alert](settings.max_queue)
        self.policy = backoff_policy(settings)
        self.delivered = self.failed = self.dropped = self.retries = 0
        self.failure_log = RateLimitedLog(interval=LOG_INTERVAL_S)
        self.drop_log = RateLimitedLog(interval=LOG_INTERVAL_S)

    def offer(self, alert: Alert) -> None:
        try:
            self.send.send_nowait(alert)
        except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
            self.dropped += 1
            if (held := self.drop_log.ready()) is not None:
                s = self.settings
                log.warning(
                    "notification queue full; alert dropped", notifier=s.name, kind=s.kind,
                    target=s.target(), max_queue=s.max_queue, not_logged=held,
                )  # fmt: skip

    def statistics(self) -> NotifierStatistics:
        st = self.send.statistics()
        return NotifierStatistics(
            kind=self.settings.kind,
            delivered=self.delivered,
            failed=self.failed,
            dropped=self.dropped,
            retries=self.retries,
            queued=st.current_buffer_used,
            capacity=self.settings.max_queue,
        )


class Notifications:
    """The configured notifiers; see the module doc. ``rules`` returns the rules in force
    (``RulesStore.rules``); ``post``, ``clock`` (unix seconds, for webhook signatures) and
    ``rng`` (the backoff's jitter) are for tests."""

    def __init__(
        self,
        notifiers: Sequence[NotifierSettings],
        rules: Callable[[], Iterable[RuleSettings]],
        *,
        post: Post = post,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self._notifiers = {n.name: _Notifier(n) for n in notifiers}
        self._rules = rules
        self._post = post
        self._clock = clock
        self._rng = rng or random.Random()

    @property
    def queues(self) -> tuple[trio.MemoryReceiveChannel[Alert], ...]:
        """The receive end of each notifier's queue, in order: the stage's channels."""
        return tuple(n.receive for n in self._notifiers.values())

    # -- the listener (never blocks) ----------------------------------------------------

    def publish(self, alerts: list[Alert]) -> None:
        routes = {rule.name: rule.notify for rule in self._rules()}
        for alert in alerts:
            for name in routes.get(alert.rule, ()):
                notifier = self._notifiers.get(name)
                if notifier is not None:
                    notifier.offer(alert)

    # -- the senders --------------------------------------------------------------------

    async def serve(
        self,
        *queues: trio.MemoryReceiveChannel[Alert],
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Send what each queue (``queues``: clones of :attr:`queues`, in order) holds,
        until the queues end or this is cancelled."""
        async with trio.open_nursery() as nursery:
            for notifier, queue in zip(self._notifiers.values(), queues, strict=True):
                nursery.start_soon(self._serve_one, notifier, queue)
            task_status.started()

    async def _serve_one(
        self, notifier: _Notifier, queue: trio.MemoryReceiveChannel[Alert]
    ) -> None:
        async with queue:
            async for alert in queue:
                await self._send(notifier, alert)

    async def _send(self, notifier: _Notifier, alert: Alert) -> None:
        settings = notifier.settings
        attempt = 0
        while True:
            verdict = await self._attempt(settings, alert)
            if verdict.outcome is Outcome.DELIVERED:
                notifier.delivered += 1
                return
            if verdict.outcome is Outcome.FAILED or attempt >= settings.max_retries:
                break
            notifier.retries += 1
            await trio.sleep(retry_delay(notifier.policy, attempt, verdict.retry_after, self._rng))
            attempt += 1
        notifier.failed += 1
        if (held := notifier.failure_log.ready()) is not None:
            log.warning(
                "notification failed", notifier=settings.name, kind=settings.kind,
                target=settings.target(), symbol=alert.symbol, rule=alert.rule,
                attempts=attempt + 1, reason=verdict.reason, not_logged=held,
            )  # fmt: skip

    async def _attempt(self, settings: NotifierSettings, alert: Alert) -> Verdict:
        request = build_request(settings, alert, self._clock())
        try:
            response = await self._post(
                request.url, request.headers, request.body, time_limit=settings.timeout_s
            )
        except PostError as exc:
            return network_error(str(exc))
        return classify(
            settings.kind, response.status, response.headers, response.body, time.time()
        )

    # -- observation --------------------------------------------------------------------

    def statistics(self) -> dict[str, NotifierStatistics]:
        return {name: n.statistics() for name, n in self._notifiers.items()}

    def metrics(self) -> Iterable[Metric]:
        """Families by notifier (configured names: bounded), every outcome from 0."""
        stats = self.statistics()
        yield counter(
            "marketd_notifications_total",
            "Alerts per notifier by outcome: delivered (accepted by the service), failed "
            "(refused, or failing after max_retries), dropped (its queue was full).",
            ("notifier", "outcome"),
            {(name, outcome): getattr(st, outcome) for name, st in stats.items()
             for outcome in OUTCOMES},
        )  # fmt: skip
        yield counter(
            "marketd_notification_retries_total",
            "Requests repeated after a network error, 5xx or 429, per notifier.",
            ("notifier",),
            {(name,): st.retries for name, st in stats.items()},
        )
        yield gauge(
            "marketd_notification_queued_alerts",
            "Alerts waiting in each notifier's queue.",
            ("notifier",),
            {(name,): float(st.queued) for name, st in stats.items()},
        )
        yield gauge(
            "marketd_notification_queue_capacity_alerts",
            "Capacity of each notifier's queue (notifications[].max_queue).",
            ("notifier",),
            {(name,): float(st.capacity) for name, st in stats.items()},
        )
