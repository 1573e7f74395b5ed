"""Cross-section checks: a detector watching what no subscription carries is said, with the fix."""

from __future__ import annotations

import io

import attrs

from marketd.config.checks import alert_coverage
from marketd.config.load import check_config
from marketd.config.settings import Settings, Subscription
from marketd.data.records import Market


def with_alerts(settings: Settings, **changes: object) -> Settings:
    return attrs.evolve(settings, alerts=attrs.evolve(settings.alerts, **changes))


def test_the_defaults_are_covered() -> None:
    assert alert_coverage(Settings()) == []  # USD-M mini tickers, !miniTicker@arr subscribed


def test_a_watched_kind_no_subscription_carries_is_named_with_how_to_subscribe() -> None:
    settings = with_alerts(Settings(), kinds=("kline", "24hrMiniTicker"), markets=("usdm",))
    assert alert_coverage(settings) == [
        "alerts.kinds: the detector watches kline on usdm, but no usdm subscription carries it; "
        "subscribe to <symbol>@kline_1d or <symbol>@kline_1h or <symbol>@kline_1m on usdm"
    ]
    subs = (*settings.subscriptions, Subscription(Market.USDM, ("BTCUSDT",), ("kline_5m",)))
    assert alert_coverage(attrs.evolve(settings, subscriptions=subs)) == []


def test_a_kind_the_market_does_not_serve_and_a_stream_named_in_streams() -> None:
    settings = with_alerts(Settings(), kinds=("markPriceUpdate",), markets=("spot", "usdm"))
    assert alert_coverage(settings) == [
        "alerts.kinds: the detector watches markPriceUpdate on spot, but no spot subscription "
        "carries it; spot does not serve it: remove it from alerts.kinds or markets",
        "alerts.kinds: the detector watches markPriceUpdate on usdm, but no usdm subscription "
        "carries it; subscribe to !markPrice@arr or !markPrice@arr@1s or <symbol>@markPrice "
        "on usdm",
    ]
    subs = (Subscription(Market.USDM, streams=("!markPrice@arr@1s",)),)
    covered = with_alerts(attrs.evolve(settings, subscriptions=subs), markets=("usdm",))
    assert alert_coverage(covered) == []


def test_no_warning_when_the_detector_reads_kafka_or_is_off() -> None:
    watching = with_alerts(Settings(), kinds=("kline",))
    assert alert_coverage(with_alerts(watching, source="kafka")) == []
    assert alert_coverage(with_alerts(watching, enabled=False)) == []


def test_check_config_prints_the_warning_as_a_comment_and_succeeds() -> None:
    out = io.StringIO()
    environ = {"MARKETD_ALERTS__KINDS": '["avgPrice"]', "MARKETD_ALERTS__MARKETS": '["spot"]'}
    assert check_config(None, environ, out) == 0
    lines = out.getvalue().splitlines()
    assert lines[1] == (
        "# warning: alerts.kinds: the detector watches avgPrice on spot, but no spot subscription "
        "carries it; subscribe to <symbol>@avgPrice on spot"
    )
