"""Issue 12: the daemon's health in the UI.

``GET /api/status`` (the body :meth:`marketd.health.Health.status_report` makes, the pure
section builders of :mod:`marketd.obs.status`), then the header badge and the status panel
in a real headless Chromium while the exchange's feed is cut and comes back.
"""

from __future__ import annotations

import contextlib
import copy
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import attrs
import prometheus_client
import pytest
import trio
from kit.browser import csp_violations, in_browser, new_page, requires_browser
from kit.daemon import FAST_RECOVERY, binance_config
from kit.net import free_port
from kit.wait import poll_until_blocking
from quart_trio import QuartTrio

from marketd.alerts.service import DetectorServiceStatistics
from marketd.app import Daemon
from marketd.books.service import UnsyncedBook
from marketd.books.sync import State
from marketd.config.alerts import AlertSettings
from marketd.config.books import BookSettings
from marketd.config.settings import (
    ExchangeSettings,
    HttpSettings,
    KafkaSettings,
    Settings,
    Subscription,
)
from marketd.data.events import DepthDiff
from marketd.data.records import FrameBatch, Market, Record
from marketd.fakex import FakeExchange, FakeExchangeConfig, Fault, FaultKind, open_fake_exchange
from marketd.feed.stats import FeedStatistics
from marketd.kafka.delivery import PublisherStatistics
from marketd.obs import status
from marketd.spool.model import SpoolStatistics
from marketd.spool.settings import SpoolSettings
from marketd.testing.processes import DaemonProcess, http_json

WALL_NS = 1_700_000_100_000_000_000  # "now" on the wall clock of the unit tests
NOWHERE = ExchangeSettings(  # nothing is served in the unit tests: nothing connects
    spot_ws_url="ws://127.0.0.1:9/spot",
    spot_rest_url="http://127.0.0.1:9/spot",
    futures_ws_url="ws://127.0.0.1:9/usdm",
    futures_rest_url="http://127.0.0.1:9/usdm",
)
SPOT_DEPTH = Subscription(
    market=Market.SPOT, symbols=("BTCUSDT", "ETHUSDT", "SOLUSDT"), channels=("depth@100ms",)
)
USDM_TICKERS = Subscription(market=Market.USDM, streams=("!miniTicker@arr",))


# -- the pure parts ----------------------------------------------------------------------


def test_rates_come_from_samples_over_the_last_seconds() -> None:
    rates = status.RateSampler(window_s=5.0, min_span_s=1.0, min_gap_s=0.25)
    assert rates.rate("a", 100, now=10.0) is None  # one sample: no rate yet
    assert rates.rate("a", 101, now=10.5) is None  # not over a second yet
    assert rates.rate("a", 130, now=12.0) == 15.0
    assert rates.rate("a", 160, now=14.0) == 15.0  # over 10 s → 14 s
    # The base moves on: the newest sample at least 5 s old (12 s at 17 s, 14 s at 19 s);
    # a sample closer than min_gap_s to the last one kept is not kept.
    assert rates.rate("a", 250, now=17.0) == 24.0
    assert rates.rate("a", 250, now=17.1) == pytest.approx(120 / 5.1)  # 17.1 s: not kept
    assert rates.rate("a", 250, now=19.0) == 18.0
    assert rates.rate("b", 7, now=19.0) is None  # keys are apart
    assert rates.rate("b", 9, now=20.0) == 2.0
    assert rates.rate("a", 3, now=20.0) is None  # a counter that went back starts again
    assert rates.rate("a", 13, now=21.0) == 10.0


def feed_stats(**changes: Any) -> FeedStatistics:
    base = FeedStatistics(
        connection_id="usdm-market-0", market=Market.USDM, route="/market",
        url="ws://127.0.0.1:9/usdm/market/stream?streams=!miniTicker@arr", streams=1,
        connected=True, subscribed=True, connects=1, reconnects={"closed": 2, "error": 1},
        frames_received=90, control_frames=1, frames_forwarded=89, batches_sent=40,
        frames_pending=0, last_frame_at=5.0, last_frame_age_s=0.123456, last_error="",
    )  # fmt: skip
    return attrs.evolve(base, **changes)


def test_a_connection_in_the_status() -> None:
    event = (1_700_000_000_000, 1_700_000_000_042_600_000)  # received 42.6 ms after
    assert status.connection_status(feed_stats(), ready=True, rate=12.345, event=event) == {
        "id": "usdm-market-0",
        "market": "usdm",
        "route": "/market",
        "state": "subscribed",
        "ready": True,
        "streams": 1,
        "messages_per_s": 12.3,
        "last_frame_age_s": 0.123,
        "delay_ms": 43,
        "reconnects": 3,
        "last_error": None,
    }
    down = feed_stats(connected=False, subscribed=False, last_error="OSError: refused")
    shown = status.connection_status(down, ready=False, rate=None, event=None)
    assert (shown["state"], shown["ready"], shown["messages_per_s"], shown["delay_ms"]) == (
        "reconnecting", False, None, None,
    )  # fmt: skip
    assert shown["last_error"] == "OSError: refused"
    assert status.connection_state(feed_stats(subscribed=False)) == "connected"
    never = feed_stats(connected=False, subscribed=False, connects=0)
    assert status.connection_state(never) == "connecting"


def test_books_are_counted_and_the_worst_listed_first() -> None:
    states = {("spot", "synced"): 3, ("usdm", "synced"): 1, ("spot", "resyncing"): 1,
              ("spot", "syncing"): 1, ("usdm", "syncing"): 1}  # fmt: skip
    unsynced = [
        UnsyncedBook(Market.SPOT, "AUSDT", State.SYNCING, 0, 0),
        UnsyncedBook(Market.USDM, "BUSDT", State.SYNCING, 0, 0),
        UnsyncedBook(Market.SPOT, "CUSDT", State.RESYNCING, 2, WALL_NS - 12_340_000_000),
    ]
    assert status.books_status(states, unsynced, WALL_NS) == {
        "synced": 4,
        "resyncing": 1,
        "waiting": 2,
        "not_synced": [
            {"market": "spot", "symbol": "AUSDT", "state": "waiting", "resyncs": 0,
             "out_of_sync_s": None},
            {"market": "usdm", "symbol": "BUSDT", "state": "waiting", "resyncs": 0,
             "out_of_sync_s": None},
            {"market": "spot", "symbol": "CUSDT", "state": "resyncing", "resyncs": 2,
             "out_of_sync_s": 12.3},
        ],
    }  # fmt: skip
    many = [UnsyncedBook(Market.SPOT, f"S{i}USDT", State.SYNCING, 0, 0) for i in range(25)]
    listed = status.books_status({("spot", "syncing"): 25}, many, WALL_NS)
    assert listed["waiting"] == 25
    assert len(listed["not_synced"]) == status.MAX_BOOKS_LISTED == 20


def test_spool_kafka_and_detector_sections() -> None:
    spool = SpoolStatistics(
        directory="/s", bytes=4096, max_bytes=1 << 30, segments=1, records_pending=1500,
        records_unread=0, oldest_pending_age_s=7.25049, appended=9000, acknowledged=7500,
        refused_appends=0, full=False, corrupted_entries=0, corrupted_bytes=0,
        truncated_bytes=0, checkpoint_corrupted=False, next_seq=9001, ack_seq=7500,
        synced_seq=9000,
    )  # fmt: skip
    assert status.spool_status(spool, full=True, max_bytes=1 << 30) == {
        "backlog": 1500, "oldest_age_s": 7.25, "bytes": 4096, "max_bytes": 1 << 30,
        "full": True,
    }  # fmt: skip
    drained = attrs.evolve(spool, records_pending=0, oldest_pending_age_s=0.0)
    assert status.spool_status(drained, full=False, max_bytes=1 << 30)["oldest_age_s"] is None
    assert status.spool_status(None, full=False, max_bytes=5) == {
        "backlog": 0, "oldest_age_s": None, "bytes": 0, "max_bytes": 5, "full": False,
    }  # fmt: skip
    kafka = PublisherStatistics(
        connected=False, sent=10, acknowledged=4, failed_attempts=6, retried=6, rejected=0,
        in_flight=6, pending_retry=6, oldest_in_flight_s=3.0, producer_starts=2,
        acknowledged_by_topic={}, last_error="KafkaConnectionError: down",
        last_error_at=WALL_NS / 1e9 - 4.5,
    )  # fmt: skip
    assert status.kafka_status(kafka, WALL_NS) == {
        "connected": False, "in_flight": 6, "pending_retry": 6, "oldest_in_flight_s": 3.0,
        "last_error": "KafkaConnectionError: down", "last_error_age_s": 4.5,
    }  # fmt: skip
    detector = DetectorServiceStatistics(
        running=True, ticks=120, duplicates=0, out_of_order=0, invalid=0, malformed=0,
        alerts={("default", "up"): 2, ("default", "down"): 1}, alerts_published=0,
        replayed=0, transactions=0, instruments=5,
        last_event_time_ms=WALL_NS // 1_000_000 - 1_250, rules=("default",),
    )  # fmt: skip
    assert status.detector_status(detector, source="pipeline", wall_ns=WALL_NS) == {
        "running": True, "source": "pipeline", "lag_s": 1.25, "ticks": 120, "alerts": 3,
        "instruments": 5,
    }  # fmt: skip
    idle = attrs.evolve(detector, last_event_time_ms=0)
    assert status.detector_status(idle, source="kafka", wall_ns=WALL_NS)["lag_s"] is None


async def test_the_route_serves_the_report_uncached() -> None:
    app = QuartTrio("status-test")
    body = {"ready": False, "not_ready": ["feed:spot-0"], "roles": ["collector"]}
    status.install_status(app, lambda: body)
    response = await app.test_client().get("/api/status")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert response.content_type == "application/json"
    assert await response.get_json() == body


# -- Health.status_report on a daemon built in this process (nothing served) ------------------


@contextlib.contextmanager
def built(settings: Settings) -> Iterator[Daemon]:
    daemon = Daemon(settings, registry=prometheus_client.CollectorRegistry())
    try:
        yield daemon
    finally:
        daemon.close()


def frames(connection: str, market: Market, received_ns: int, *texts: str) -> FrameBatch:
    return FrameBatch(market, connection, list(texts), [received_ns] * len(texts))


async def normalize(daemon: Daemon, *batches: FrameBatch) -> list[Record]:
    """Run the daemon's normalizer over ``batches`` (channels only, no network)."""
    frames_send, frames_recv = trio.open_memory_channel[FrameBatch](len(batches))
    records_send, records_recv = trio.open_memory_channel[list[Record]](len(batches))
    out: list[Record] = []
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            await nursery.start(daemon.normalizer.serve, frames_recv, records_send)
            async with frames_send:
                for batch in batches:
                    await frames_send.send(batch)
            async with records_recv:
                async for records in records_recv:
                    out.extend(records)
    return out


async def test_the_status_of_an_all_in_one_daemon(tmp_path: Path) -> None:
    settings = Settings(
        binance=NOWHERE,
        subscriptions=(SPOT_DEPTH, USDM_TICKERS),
        books=BookSettings(publish_levels=1),
        alerts=AlertSettings(state_dir=str(tmp_path)),
        http=HttpSettings(listen="127.0.0.1:0"),
    )
    with built(settings) as daemon:
        before = daemon.health.status_report(now=100.0, wall_ns=WALL_NS)
        assert list(before) == [
            "ready", "not_ready", "roles", "connections", "books", "detector", "gateway",
        ]  # fmt: skip
        assert before["ready"] is False
        assert before["not_ready"] == [
            "sink", "feed:spot-0", "feed:usdm-market-0", "detector",
        ]  # fmt: skip
        assert before["not_ready"] == daemon.readiness()[1]["not_ready"]  # as /readyz
        assert before["roles"] == ["collector", "detector", "gateway"]
        assert [(c["id"], c["market"], c["state"], c["ready"], c["streams"],
                 c["messages_per_s"], c["last_frame_age_s"], c["delay_ms"])
                for c in before["connections"]] == [
            ("spot-0", "spot", "connecting", False, 3, None, None, None),
            ("usdm-market-0", "usdm", "connecting", False, 1, None, None, None),
        ]  # fmt: skip
        assert before["books"] == {
            "synced": 0, "resyncing": 0, "waiting": 3,
            "not_synced": [
                {"market": "spot", "symbol": s, "state": "waiting", "resyncs": 0,
                 "out_of_sync_s": None}
                for s in ("BTCUSDT", "ETHUSDT", "SOLUSDT")
            ],
        }  # fmt: skip
        assert before["detector"] == {
            "running": False, "source": "pipeline", "lag_s": None, "ticks": 0, "alerts": 0,
            "instruments": 0,
        }  # fmt: skip
        assert before["gateway"] == {"clients": 0, "alerts_from": "detector"}

        # A depth diff on the spot connection and a watched mini ticker on the USD-M one:
        # their event times against the receipt of their frames.
        event_ms = WALL_NS // 1_000_000 - 3_000
        depth = (
            '{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":%d,'
            '"s":"BTCUSDT","U":5,"u":6,"b":[["100.0","1.5"]],"a":[["100.5","2"]]}}'
        )
        tickers = ('{"stream":"!miniTicker@arr","data":[{"e":"24hrMiniTicker","E":%d,'
                   '"s":"BTCUSDT","c":"101.0","o":"99.0","h":"102.0","l":"98.0",'
                   '"v":"10","q":"1000"}]}')  # fmt: skip
        records = await normalize(
            daemon,
            frames("spot-0", Market.SPOT, (event_ms + 38) * 1_000_000, depth % event_ms),
            frames("usdm-market-0", Market.USDM, (event_ms + 1_007) * 1_000_000,
                   tickers % (event_ms + 1_000)),
        )  # fmt: skip
        assert [(r.kind, r.symbol) for r in records] == [
            ("depthUpdate", "BTCUSDT"), ("24hrMiniTicker", "BTCUSDT"),
        ]  # fmt: skip
        # Books: ETHUSDT synced, then lost at a gap; SOLUSDT lost sync later; BTCUSDT waits.
        assert daemon.books is not None
        diff_at = WALL_NS - 9_000_000_000
        for symbol, at in (("ETHUSDT", diff_at), ("SOLUSDT", diff_at + 4_000_000_000)):
            book = daemon.books.syncs[(Market.SPOT, symbol)]
            book.on_snapshot(10, [("100.0", "1")], [("101.0", "1")])
            book.on_diff(DepthDiff(11, 11, None, [("100.0", "2")], [], event_ms, at))
            assert book.synced
            book.on_diff(DepthDiff(13, 13, None, [("100.0", "3")], [], event_ms, at + 1))
        # The detector: two prices 10 % apart, an alert (the default rule: 2 % in 60 s).
        service = daemon.detector
        assert service is not None
        service.detector.observe("usdm", "BTCUSDT", event_ms, "100.0")
        service.deliver(list(service.detector.observe("usdm", "BTCUSDT", event_ms + 1_000, "110")))

        after = daemon.health.status_report(now=102.0, wall_ns=WALL_NS)
        assert [(c["id"], c["messages_per_s"], c["delay_ms"]) for c in after["connections"]] == [
            ("spot-0", 0.0, 38), ("usdm-market-0", 0.0, 7),
        ]  # fmt: skip
        assert after["books"] == {
            "synced": 0, "resyncing": 2, "waiting": 1,
            "not_synced": [
                {"market": "spot", "symbol": "BTCUSDT", "state": "waiting", "resyncs": 0,
                 "out_of_sync_s": None},
                {"market": "spot", "symbol": "ETHUSDT", "state": "resyncing", "resyncs": 1,
                 "out_of_sync_s": 9.0},
                {"market": "spot", "symbol": "SOLUSDT", "state": "resyncing", "resyncs": 1,
                 "out_of_sync_s": 5.0},
            ],
        }  # fmt: skip
        assert after["detector"] == {
            "running": False, "source": "pipeline", "lag_s": 2.0, "ticks": 2, "alerts": 1,
            "instruments": 1,
        }  # fmt: skip
        assert after["gateway"] == {"clients": 0, "alerts_from": "detector"}
        assert daemon.hub is not None
        assert [a.change_pct for a in daemon.hub.recent(5)] == [10.0]


async def test_the_status_of_a_kafka_collector_and_of_a_gateway(tmp_path: Path) -> None:
    kafka = KafkaSettings(bootstrap_servers="127.0.0.1:9")
    collector = Settings(
        roles=("collector",),
        binance=NOWHERE,
        subscriptions=(USDM_TICKERS,),
        kafka=kafka,
        spool=SpoolSettings(directory=str(tmp_path / "spool")),
        http=HttpSettings(listen="127.0.0.1:0"),
    )
    with built(collector) as daemon:
        body = daemon.health.status_report(now=1.0, wall_ns=WALL_NS)
        assert list(body) == ["ready", "not_ready", "roles", "connections", "spool", "kafka"]
        assert body["not_ready"] == ["sink", "kafka", "feed:usdm-market-0"]
        assert body["spool"] == {
            "backlog": 0, "oldest_age_s": None, "bytes": 0,
            "max_bytes": collector.spool.max_bytes, "full": False,
        }  # fmt: skip
        assert body["kafka"] == {
            "connected": False, "in_flight": 0, "pending_retry": 0, "oldest_in_flight_s": 0.0,
            "last_error": None, "last_error_age_s": None,
        }  # fmt: skip
    gateway = Settings(
        roles=("gateway",), binance=NOWHERE, kafka=kafka, http=HttpSettings(listen="127.0.0.1:0")
    )
    with built(gateway) as daemon:
        assert daemon.health.status_report() == {
            "ready": False,
            "not_ready": ["alerts_reader"],
            "roles": ["gateway"],
            "gateway": {"clients": 0, "alerts_from": "kafka"},
        }


# -- the UI in Chromium against `marketd run` while the feed is cut and comes back ---------


class Cable:
    """The network between the daemon and the fake exchange's WebSocket port: a TCP relay
    on a loopback port of its own. :meth:`cut` has the fake reset every open connection (its
    ``drop`` fault) and stops listening, so that reconnects are refused; :meth:`mend` listens
    again on the same port. (The fake has no fault that refuses connections.)"""

    def __init__(self, nursery: trio.Nursery, fx: FakeExchange) -> None:
        self.nursery = nursery
        self.fx = fx
        self.port = free_port()
        self._listening: trio.CancelScope | None = None
        self._closed = trio.Event()

    def url(self, market: Market) -> str:
        return f"ws://127.0.0.1:{self.port}/{market.value}"

    async def mend(self) -> None:
        self._closed = trio.Event()
        self._listening = await self.nursery.start(self._listen)

    async def cut(self) -> None:
        assert self._listening is not None
        self._listening.cancel()
        await self._closed.wait()  # refusing before the fake drops anyone
        self.fx.inject_fault(Fault(FaultKind.DROP))

    async def _listen(self, *, task_status: trio.TaskStatus[trio.CancelScope]) -> None:
        try:
            with trio.CancelScope() as scope:
                listeners = await trio.open_tcp_listeners(self.port, host="127.0.0.1")
                task_status.started(scope)
                # Relays run in the outer nursery: they outlive the listener, until a drop.
                await trio.serve_listeners(self._relay, listeners, handler_nursery=self.nursery)
        finally:
            self._closed.set()

    async def _relay(self, down: trio.SocketStream) -> None:
        async with down:
            try:
                up = await trio.open_tcp_stream("127.0.0.1", self.fx.ws_port)
            except OSError:
                return
            async with up, trio.open_nursery() as nursery:
                nursery.start_soon(_pump, down, up, nursery.cancel_scope)
                nursery.start_soon(_pump, up, down, nursery.cancel_scope)


async def _pump(src: trio.SocketStream, dst: trio.SocketStream, both: trio.CancelScope) -> None:
    try:
        while data := await src.receive_some(65536):
            await dst.send_all(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass  # a reset: the other direction ends with it
    finally:
        both.cancel()


@contextlib.asynccontextmanager
async def exchange_behind_a_cable() -> AsyncIterator[tuple[FakeExchange, Cable]]:
    config = FakeExchangeConfig(symbols=3, seed=12, rate=50)
    async with open_fake_exchange(config) as fx, trio.open_nursery() as nursery:
        cable = Cable(nursery, fx)
        await cable.mend()
        yield fx, cable
        nursery.cancel_scope.cancel()


def seconds(text: str) -> float:
    """A duration as the panel prints it ("12 ms", "3.4 s")."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?) (ms|s)", text)
    assert match, text
    return float(match[1]) / (1000 if match[2] == "ms" else 1)


def rows(page: Any) -> dict[str, dict[str, str]]:
    """The status panel's connection rows: id → state, ready and the cells' text."""
    found: list[dict[str, str]] = page.eval_on_selector_all(
        "#health-body tr.conn",
        """trs => trs.map(tr => ({id: tr.dataset.id, state: tr.dataset.state,
            ready: tr.dataset.ready, shown: tr.querySelector('.conn-state').textContent,
            rate: tr.querySelector('.conn-rate').textContent,
            age: tr.querySelector('.conn-age').textContent,
            delay: tr.querySelector('.conn-delay').textContent}))""",
    )
    return {row.pop("id"): row for row in found}


def badge(page: Any) -> str:
    text: str = page.text_content("#status")
    return text


@pytest.mark.slow
@requires_browser
async def test_badge_and_panel_follow_a_feed_cut_and_its_return(tmp_path: Path) -> None:
    async with exchange_behind_a_cable() as (fx, cable):
        config = {
            "binance": binance_config(
                fx, **copy.deepcopy(FAST_RECOVERY),
                spot_ws_url=cable.url(Market.SPOT), futures_ws_url=cable.url(Market.USDM),
            ),
            "subscriptions": [
                {"market": "spot", "symbols": ["BTCUSDT", "ETHUSDT"],
                 "channels": ["trade", "depth@100ms"]},
                {"market": "usdm", "streams": ["!miniTicker@arr"]},
            ],
            "alerts": {"state_dir": str(tmp_path / "state")},
            "log": {"format": "json"},
        }  # fmt: skip
        connections = {"spot-0", "usdm-market-0"}

        def script(browser: Any) -> None:
            with DaemonProcess(tmp_path, config) as daemon:
                daemon.wait_ready()
                page = new_page(browser, daemon.base + "/")  # waits for the "live" badge
                assert badge(page) == "live"
                page.click("#health-toggle")

                def all_up() -> bool:
                    shown = rows(page)
                    return set(shown) == connections and all(
                        r["state"] == "subscribed" and r["ready"] == "true"
                        and r["rate"] not in ("—", "0.0") and r["delay"] != "—"
                        for r in shown.values()
                    )  # fmt: skip

                poll_until_blocking(all_up, timeout=20, what="both connections up in the panel")
                for row in rows(page).values():
                    assert row["shown"] == "subscribed"
                    assert seconds(row["age"]) < FAST_RECOVERY["stale_after_s"]  # a recent frame
                    assert float(row["rate"].replace(",", "")) > 0
                    assert re.fullmatch(r"-?\d+ ms|-?\d+\.\d s", row["delay"]), row["delay"]
                poll_until_blocking(
                    lambda: (
                        page.text_content("[data-section=books] .books-counts")
                        == "2 synced · 0 resyncing · 0 waiting"
                    ),
                    timeout=20,
                    what="the two spot books synced in the panel",
                )
                assert page.text_content("[data-section=gateway] .gateway-clients") == (
                    "1 browser connected"
                )
                assert page.text_content("[data-section=detector] .detector-running") == (
                    "running · reads the pipeline"
                )
                assert page.text_content("#health-summary").startswith(
                    "Ready · roles: collector, detector, gateway · updated "
                )

                # The exchange drops every connection and refuses new ones.
                trio.from_thread.run(cable.cut)
                poll_until_blocking(
                    lambda: badge(page) == "connected · feeds down",
                    timeout=15,
                    what="the badge to say the feeds are down",
                )
                assert page.get_attribute("#status", "data-state") == "degraded"
                assert page.get_attribute("#status", "title") == (
                    "Not ready: feed:spot-0, feed:usdm-market-0"
                )
                poll_until_blocking(
                    lambda: {r["shown"] for r in rows(page).values()} == {"reconnecting"},
                    timeout=15,
                    what="both connections reconnecting in the panel",
                )
                assert all(r["ready"] == "false" for r in rows(page).values())
                # (Not MARKETD_SCREENSHOTS: the daemon refuses an unknown MARKETD_* variable.)
                page.screenshot(path=str(tmp_path / "status-feeds-down.png"), full_page=True)
                assert page.text_content("#health-summary").startswith(
                    "Not ready: feed:spot-0, feed:usdm-market-0 · "
                )
                code, body = http_json(daemon.base + "/api/status")
                assert (code, body["ready"]) == (200, False)
                assert {c["id"]: c["state"] for c in body["connections"]} == dict.fromkeys(
                    connections, "reconnecting"
                )
                assert all(c["reconnects"] >= 1 for c in body["connections"])

                # The exchange is reachable again: the daemon reconnects by itself.
                trio.from_thread.run(cable.mend)
                poll_until_blocking(
                    lambda: badge(page) == "live", timeout=20, what="the badge live again"
                )
                poll_until_blocking(all_up, timeout=20, what="both connections up again")
                assert csp_violations(page) == []

                # The daemon stops: the socket closes, the badge says offline.
                assert daemon.stop() == 0
                poll_until_blocking(
                    lambda: badge(page).startswith("offline · "),
                    timeout=15,
                    what="the badge offline once the daemon stopped",
                )
                assert page.get_attribute("#status", "data-state") == "reconnecting"

        await in_browser(script, timeout_s=150)
