"""The detector service on a channel of records: records in, alerts to listeners; and the
fake exchange's price jump → feeds → codec → the daemon's sink → detector → an alert."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import prometheus_client
import trio
from kit.daemon import binance_settings
from kit.sinks import ChannelSink
from kit.wait import poll_until

from marketd.alerts.encoding import TickReader, alert_record, decode_alert
from marketd.alerts.model import Alert, Direction
from marketd.alerts.rules import RulesStore
from marketd.alerts.service import DetectorService
from marketd.app import Daemon
from marketd.config.alerts import AlertSettings, RuleSettings
from marketd.config.settings import HttpSettings, Settings, Subscription
from marketd.data.records import Market, Record
from marketd.fakex import FakeExchangeConfig, open_fake_exchange
from marketd.obs.metrics import StatisticsCollector
from marketd.v1.market_data_pb2 import MARKET_SPOT, MARKET_USDM, MarketEvent


class Collect:
    def __init__(self) -> None:
        self.alerts: list[Alert] = []
        self.arrived = trio.Event()

    def publish(self, alerts: list[Alert]) -> None:
        self.alerts.extend(alerts)
        self.arrived.set()


def mini(symbol: str, time_ms: int, close: str, market: Market = Market.USDM) -> Record:
    event = MarketEvent(
        market=MARKET_USDM if market is Market.USDM else MARKET_SPOT,
        symbol=symbol,
        event_time_ms=time_ms,
    )
    event.mini_ticker.close_price = close
    return Record("marketdata.raw", symbol.encode(), event.SerializeToString(), (), 0, market,
                  "24hrMiniTicker", symbol)  # fmt: skip


def trade(symbol: str, time_ms: int, price: str) -> Record:
    event = MarketEvent(market=MARKET_SPOT, symbol=symbol, event_time_ms=time_ms)
    event.trade.price = price
    event.trade.trade_id = time_ms
    return Record("marketdata.raw", symbol.encode(), event.SerializeToString(), (), 0,
                  Market.SPOT, "trade", symbol)  # fmt: skip


def alert_settings(tmp_path: Path, **kw: object) -> AlertSettings:
    return AlertSettings(state_dir=str(tmp_path), **kw)  # type: ignore[arg-type]


async def test_channel_input_alerts_listeners_and_applies_rule_changes(tmp_path: Path) -> None:
    settings = alert_settings(tmp_path, rules=(RuleSettings(name="r", cooldown_s=0.0),))
    store = RulesStore(settings)
    sink = Collect()
    service = DetectorService(settings, store, listeners=[sink])
    send, recv = trio.open_memory_channel[list[Record]](1)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(service.serve_channel, recv)
            await send.send([
                mini("BTCUSDT", 1000, "100"),
                trade("BTCUSDT", 1000, "200"),  # spot trade: not a watched kind/market
                mini("BTCUSDT", 1000, "100", Market.SPOT),  # not a watched market
                mini("ETHUSDT", 1000, "10"),
                mini("BTCUSDT", 2000, "102.5"),
                mini("ETHUSDT", 2000, "10.1"),
            ])  # fmt: skip
            await sink.arrived.wait()
            assert [(a.symbol, a.direction, a.price, a.base_price) for a in sink.alerts] == [
                ("BTCUSDT", Direction.UP, "102.5", "100")
            ]
            # a lower threshold applies to the next batch: ETH +1 % against its base 10
            store.replace([{"name": "r", "threshold_pct": 0.5, "cooldown_s": 0}])
            await send.send([mini("ETHUSDT", 3000, "10.1")])
            await send.send([mini("ETHUSDT", 3000, "10.1")])  # a duplicate, and a barrier
            await send.aclose()
        # the input ended: serve returned
    assert [(a.symbol, a.rule, a.price) for a in sink.alerts[1:]] == [("ETHUSDT", "r", "10.1")]
    stats = service.statistics()
    assert stats.alerts == {("r", "up"): 2}
    assert stats.ticks == 5
    assert stats.duplicates == 1
    assert stats.last_event_time_ms == 3000
    assert not stats.running
    registry = prometheus_client.CollectorRegistry()
    collector = StatisticsCollector()
    collector.add(service.metrics)
    registry.register(collector)
    assert (
        registry.get_sample_value("marketd_alerts_detected_total", {"rule": "r", "direction": "up"})
        == 2.0
    )
    assert (
        registry.get_sample_value(
            "marketd_alerts_detected_total", {"rule": "r", "direction": "down"}
        )
        == 0.0
    )
    assert (
        registry.get_sample_value("marketd_detector_ticks_dropped_total", {"reason": "duplicate"})
        == 1.0
    )


def test_alert_record_round_trips() -> None:
    alert = Alert("abc", "BTCUSDT", "usdm", "r", Direction.DOWN, -2.5, "97.5", 2, "100", 1, 3,
                  60.0, 2.0, 30.0)  # fmt: skip
    record = alert_record(alert, "alerts")
    assert (record.topic, record.key, record.headers) == (
        "alerts",
        b"BTCUSDT",
        (("type", b"alert"), ("market", b"usdm")),
    )
    assert decode_alert(record.value) == alert


def test_tick_reader_takes_the_configured_price() -> None:
    reader = TickReader(["trade", "24hrMiniTicker"], ["spot", "usdm"])
    assert [
        (t.symbol, t.price) for t in reader.ticks([trade("X", 1, "3.5"), mini("Y", 1, "2")])
    ] == [
        ("X", "3.5"),
        ("Y", "2"),
    ]
    assert reader.tick(b"\xff\xff") is None
    assert reader.malformed == 1


async def test_fake_exchange_jump_raises_an_alert_through_the_daemon(tmp_path: Path) -> None:
    """Real frames: fake exchange !miniTicker@arr → feed → codec → sink → detector."""
    config = FakeExchangeConfig(symbols=5, seed=3, rate=200)
    async with open_fake_exchange(config) as fx:
        settings = Settings(
            binance=binance_settings(fx),
            subscriptions=(Subscription(market=Market.USDM, streams=("!miniTicker@arr",)),),
            http=HttpSettings(listen="127.0.0.1:0"),
        )
        out = ChannelSink(64)
        daemon = Daemon(settings, registry=prometheus_client.CollectorRegistry(), sink=out)
        alerts = alert_settings(tmp_path, rules=(RuleSettings(name="jump", threshold_pct=5.0),))
        sink = Collect()
        service = DetectorService(alerts, RulesStore(alerts), listeners=[sink])
        stop = trio.Event()
        try:
            with trio.fail_after(30):
                async with trio.open_nursery() as nursery:
                    await nursery.start(service.serve_channel, out.batches)
                    await nursery.start(daemon.run, stop)
                    # polling another component's counters: no event to wait on
                    await poll_until(
                        lambda: service.statistics().ticks >= 10,
                        timeout=20,
                        what="10 ticks taken in by the detector",
                        interval=0.1,
                    )
                    price = fx.jump(Market.USDM, "ETHUSDT", 10.0)
                    await poll_until(
                        lambda: any(a.symbol == "ETHUSDT" for a in sink.alerts),
                        timeout=20,
                        what="an alert of ETHUSDT after its jump",
                    )
                    stop.set()
        finally:
            daemon.close()
    eth = [a for a in sink.alerts if a.symbol == "ETHUSDT"]
    assert len(eth) == 1
    alert = eth[0]
    assert (alert.market, alert.rule, alert.direction) == ("usdm", "jump", Direction.UP)
    # the close of the first mini ticker after the jump: the jump's trade, or a trade
    # a few ticks from it (the market keeps trading until the second's ticker)
    assert abs(Decimal(alert.price) / Decimal(price) - 1) < Decimal("0.005")
    assert Decimal(alert.price) / Decimal(alert.base_price) > Decimal("1.09")
    assert 9.0 < alert.change_pct < 11.5
    assert alert.price_time_ms >= alert.base_time_ms
