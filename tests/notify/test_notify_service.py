"""The notifiers against real HTTP servers on loopback: the exact request each service
gets, retries (5xx, 429 with the wait each service asks for, network errors), giving up,
no retry for other answers, drops when a queue is full, counters from zero, and logs
that never show a token or a URL path."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any

import orjson
import structlog
import trio
from kit.net import free_port
from kit.wait import poll_until
from notifypeer import Answer, Peer, json_answer, open_peer

from marketd.alerts.model import Alert, Direction
from marketd.config.alerts import RuleSettings
from marketd.config.notify import NotifierSettings
from marketd.notify.service import Notifications, NotifierStatistics

NOW = 1_767_000_000.25
TOKEN = "123456:ABC-def_ghi"
SECRET = "webhook-secret-value"
FAST = {"retry_initial_s": 0.01, "retry_max_s": 0.05}


def alert(symbol: str = "BTCUSDT", rule: str = "jump", n: int = 0) -> Alert:
    return Alert(
        id=f"id-{symbol}-{n}", symbol=symbol, market="usdm", rule=rule, direction=Direction.UP,
        change_pct=3.0, price="103", price_time_ms=2000 + n, base_price="100",
        base_time_ms=1000, detected_at_ms=2005 + n, window_s=60.0, threshold_pct=2.0,
    )  # fmt: skip


def webhook(peer: Peer | str, **kw: Any) -> NotifierSettings:
    base = peer if isinstance(peer, str) else peer.base
    kw = {"url": f"{base}/hooks/marketd?src=test", "secret": SECRET, **FAST, **kw}
    return NotifierSettings(name="ops", kind="webhook", **kw)


def telegram(peer: Peer, **kw: Any) -> NotifierSettings:
    return NotifierSettings(
        name="chat", kind="telegram", bot_token=TOKEN, chat_id="-100200300",
        api_base=peer.base, **{**FAST, **kw},
    )  # fmt: skip


def discord(peer: Peer, **kw: Any) -> NotifierSettings:
    return NotifierSettings(
        name="desk", kind="discord", url=f"{peer.base}/api/webhooks/42/discord-token",
        **{**FAST, **kw},
    )  # fmt: skip


def routes(*notifiers: NotifierSettings) -> Callable[[], Iterable[RuleSettings]]:
    """Rule ``jump`` sends to every notifier; rule ``quiet`` to none."""
    rules = (
        RuleSettings(name="jump", notify=tuple(n.name for n in notifiers)),
        RuleSettings(name="quiet"),
    )
    return lambda: rules


@asynccontextmanager
async def running(*notifiers: NotifierSettings) -> AsyncIterator[Notifications]:
    notify = Notifications(notifiers, routes(*notifiers), clock=lambda: NOW)
    async with trio.open_nursery() as nursery:
        await nursery.start(notify.serve, *notify.queues)
        yield notify
        nursery.cancel_scope.cancel()


def stats(notify: Notifications, name: str) -> NotifierStatistics:
    return notify.statistics()[name]


async def settled(notify: Notifications, name: str, count: int = 1) -> NotifierStatistics:
    await poll_until(
        lambda: (s := stats(notify, name)).delivered + s.failed >= count,
        timeout=20, what=f"{count} alert(s) through {name}",
    )  # fmt: skip
    return stats(notify, name)


# -- the exact requests ---------------------------------------------------------------------


async def test_webhook_gets_a_signed_json_post() -> None:
    with trio.fail_after(30):
        async with open_peer(Answer(204)) as peer, running(webhook(peer)) as notify:
            notify.publish([alert()])
            st = await settled(notify, "ops")
    assert (st.delivered, st.failed, st.retries, st.dropped) == (1, 0, 0, 0)
    [seen] = peer.seen
    assert (seen.method, seen.target) == ("POST", "/hooks/marketd?src=test")
    assert seen.headers["host"] == f"127.0.0.1:{peer.port}"
    assert seen.headers["content-type"] == "application/json"
    assert seen.headers["content-length"] == str(len(seen.body))
    assert seen.headers["x-marketd-timestamp"] == "1767000000"
    mac = hmac.new(SECRET.encode(), b"1767000000." + seen.body, hashlib.sha256).hexdigest()
    assert seen.headers["x-marketd-signature"] == f"sha256={mac}"
    body = seen.json()
    assert body["notifier"] == "ops"
    assert body["alert"] == {**alert().to_json(), "window_s": 60.0, "threshold_pct": 2.0}
    assert body["tradingview_url"] == "https://www.tradingview.com/chart/?symbol=BINANCE:BTCUSDT.P"


async def test_telegram_gets_send_message_on_the_bot_path() -> None:
    ok = json_answer(200, {"ok": True, "result": {"message_id": 7}})
    with trio.fail_after(30):
        async with open_peer(ok) as peer, running(telegram(peer)) as notify:
            notify.publish([alert()])
            st = await settled(notify, "chat")
    assert (st.delivered, st.failed) == (1, 0)
    [seen] = peer.seen
    assert (seen.method, seen.target) == ("POST", f"/bot{TOKEN}/sendMessage")
    assert seen.headers["content-type"] == "application/json"
    assert "x-marketd-signature" not in seen.headers
    assert seen.json() == {
        "chat_id": -100200300,
        "text": "<b>▲ BTCUSDT usdm pump +3.00% at 103</b>\nrule jump: &gt; 2% in 60s\n"
        "https://www.tradingview.com/chart/?symbol=BINANCE:BTCUSDT.P",
        "parse_mode": "HTML",
        "link_preview_options": {"is_disabled": True},
    }


async def test_discord_gets_the_content_on_the_webhook_url() -> None:
    with trio.fail_after(30):
        async with open_peer(Answer(204)) as peer, running(discord(peer)) as notify:
            notify.publish([alert()])
            st = await settled(notify, "desk")
    assert (st.delivered, st.failed) == (1, 0)
    [seen] = peer.seen
    assert (seen.method, seen.target) == ("POST", "/api/webhooks/42/discord-token")
    assert seen.headers["content-type"] == "application/json"
    assert seen.json() == {
        "content": "**▲ BTCUSDT usdm pump +3.00% at 103**\nrule jump: \\> 2% in 60s\n"
        "<https://www.tradingview.com/chart/?symbol=BINANCE:BTCUSDT.P>",
        "allowed_mentions": {"parse": []},
    }


async def test_alerts_go_only_to_the_notifiers_their_rule_names_in_order() -> None:
    with trio.fail_after(30):
        async with open_peer() as peer, running(webhook(peer)) as notify:
            notify.publish([alert("AAAUSDT"), alert("BBBUSDT", rule="quiet"), alert("CCCUSDT")])
            notify.publish([alert("DDDUSDT", rule="unknown")])
            st = await settled(notify, "ops", 2)
    assert st.delivered == 2
    assert [s.json()["alert"]["symbol"] for s in peer.seen] == ["AAAUSDT", "CCCUSDT"]


# -- retries ------------------------------------------------------------------------------


async def test_a_5xx_is_retried_with_the_same_alert() -> None:
    with trio.fail_after(30):
        async with open_peer(Answer(500), Answer(502)) as peer, running(webhook(peer)) as notify:
            notify.publish([alert()])
            st = await settled(notify, "ops")
    assert (st.delivered, st.failed, st.retries) == (1, 0, 2)
    assert [s.body for s in peer.seen] == [peer.seen[0].body] * 3


async def test_a_429_waits_at_least_the_retry_after_header() -> None:
    busy = Answer(429, (("Retry-After", "1"),))
    with trio.fail_after(30):
        async with open_peer(busy) as peer, running(webhook(peer)) as notify:
            notify.publish([alert()])
            st = await settled(notify, "ops")
    assert (st.delivered, st.retries) == (1, 1)
    first, second = peer.seen
    assert second.at - first.at >= 1.0  # the backoff alone would be at most 0.05 s


async def test_telegram_429_waits_its_retry_after_parameter() -> None:
    flood = json_answer(429, {
        "ok": False, "error_code": 429, "description": "Too Many Requests: retry after 1",
        "parameters": {"retry_after": 1},
    })  # fmt: skip
    with trio.fail_after(30):
        async with open_peer(flood) as peer, running(telegram(peer)) as notify:
            notify.publish([alert()])
            st = await settled(notify, "chat")
    assert (st.delivered, st.retries) == (1, 1)
    first, second = peer.seen
    assert second.at - first.at >= 1.0
    assert first.body == second.body


async def test_discord_429_waits_its_retry_after_in_the_body() -> None:
    limited = json_answer(429, {"message": "You are being rate limited.", "retry_after": 0.6,
                                "global": False})  # fmt: skip
    with trio.fail_after(30):
        async with open_peer(limited) as peer, running(discord(peer)) as notify:
            notify.publish([alert()])
            st = await settled(notify, "desk")
    assert (st.delivered, st.retries) == (1, 1)
    first, second = peer.seen
    assert second.at - first.at >= 0.6


async def test_gives_up_after_max_retries_and_logs_without_secrets() -> None:
    with structlog.testing.capture_logs() as logs, trio.fail_after(30):
        async with (
            open_peer(default=Answer(503)) as peer,
            running(telegram(peer, max_retries=2)) as notify,
        ):
            notify.publish([alert()])
            st = await settled(notify, "chat")
    assert (st.delivered, st.failed, st.retries) == (0, 1, 2)
    assert len(peer.seen) == 3
    [line] = [entry for entry in logs if entry["event"] == "notification failed"]
    assert {k: line[k] for k in ("notifier", "kind", "target", "attempts", "reason")} == {
        "notifier": "chat", "kind": "telegram", "target": f"http://127.0.0.1:{peer.port}",
        "attempts": 3, "reason": "HTTP 503",
    }  # fmt: skip
    assert TOKEN not in repr(logs)
    assert "/bot" not in repr(logs)


async def test_other_4xx_fail_at_once() -> None:
    refused = json_answer(404, {"message": "Unknown Webhook", "code": 10015})
    with structlog.testing.capture_logs() as logs, trio.fail_after(30):
        async with open_peer(refused) as peer, running(discord(peer)) as notify:
            notify.publish([alert()])
            st = await settled(notify, "desk")
    assert (st.delivered, st.failed, st.retries, len(peer.seen)) == (0, 1, 0, 1)
    [line] = [entry for entry in logs if entry["event"] == "notification failed"]
    assert line["reason"] == "HTTP 404: Unknown Webhook"
    assert "discord-token" not in repr(logs)


async def test_a_refused_connection_is_retried_then_counted_failed() -> None:
    nowhere = webhook(f"http://127.0.0.1:{free_port()}", max_retries=3)
    with structlog.testing.capture_logs() as logs, trio.fail_after(30):
        async with running(nowhere) as notify:
            notify.publish([alert()])
            st = await settled(notify, "ops")
    assert (st.delivered, st.failed, st.retries) == (0, 1, 3)
    [line] = [entry for entry in logs if entry["event"] == "notification failed"]
    assert line["attempts"] == 4
    assert "/hooks/marketd" not in repr(logs)
    assert SECRET not in repr(logs)


async def test_a_server_that_never_answers_times_out_and_is_retried() -> None:
    with trio.fail_after(30):
        async with (
            open_peer(default=Answer(hang=True)) as peer,
            running(webhook(peer, timeout_s=0.3, max_retries=1)) as notify,
        ):
            notify.publish([alert()])
            st = await settled(notify, "ops")
    assert (st.delivered, st.failed, st.retries, len(peer.seen)) == (0, 1, 1, 2)


# -- the bounded queue --------------------------------------------------------------------


async def test_a_full_queue_drops_and_counts_without_waiting() -> None:
    with trio.fail_after(30):
        async with (
            open_peer(default=Answer(hang=True)) as peer,
            running(webhook(peer, timeout_s=60, max_queue=2)) as notify,
        ):
            notify.publish([alert(n=0)])
            # The sender holds the first alert, waiting for an answer that never comes.
            await poll_until(lambda: peer.hanging == 1, timeout=10, what="the request held")
            notify.publish([alert(n=n) for n in range(1, 6)])  # not async: cannot wait
            assert stats(notify, "ops") == NotifierStatistics(
                kind="webhook", delivered=0, failed=0, dropped=3, retries=0, queued=2,
                capacity=2,
            )  # fmt: skip


async def test_counters_start_at_zero_for_every_notifier_and_outcome() -> None:
    notify = Notifications(
        [webhook("http://127.0.0.1:9"), NotifierSettings(name="chat", kind="telegram",
         bot_token=TOKEN, chat_id="1")], routes(),
    )  # fmt: skip
    families = {f.name: f for f in notify.metrics()}
    samples = {
        (s.labels["notifier"], s.labels["outcome"]): s.value
        for s in families["marketd_notifications"].samples
        if s.name == "marketd_notifications_total"
    }
    assert samples == {
        (name, outcome): 0
        for name in ("ops", "chat")
        for outcome in ("delivered", "failed", "dropped")
    }
    family = families["marketd_notification_queue_capacity_alerts"]
    capacity = {s.labels["notifier"]: s.value for s in family.samples}
    assert capacity == {"ops": 100.0, "chat": 100.0}


def test_peer_answers_are_json() -> None:
    assert orjson.loads(json_answer(429, {"retry_after": 1}).body) == {"retry_after": 1}
