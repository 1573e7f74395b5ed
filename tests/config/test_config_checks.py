"""Cross-section checks: a detector watching what no subscription carries is said, with the fix."""

from __future__ import annotations

import io

import attrs

from marketd.config.alerts import RuleSettings
from marketd.config.checks import alert_coverage, rule_reach, warnings
from marketd.config.load import check_config
from marketd.config.recorder import RecorderSettings
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


def test_no_warning_about_alerts_in_a_process_without_the_detector() -> None:
    watching = with_alerts(Settings(), kinds=("kline",))
    assert warnings(watching)
    for roles in (("collector",), ("recorder",)):
        enabled = RecorderSettings(enabled=True)
        assert warnings(attrs.evolve(watching, roles=roles, recorder=enabled)) == []


def test_check_config_prints_the_warning_as_a_comment_and_succeeds() -> None:
    out = io.StringIO()
    environ = {"MARKETD_ALERTS__KINDS": '["avgPrice"]', "MARKETD_ALERTS__MARKETS": '["spot"]'}
    assert check_config(None, environ, out) == 0
    lines = out.getvalue().splitlines()
    assert lines[1] == (
        "# warning: alerts.kinds: the detector watches avgPrice on spot, but no spot subscription "
        "carries it; subscribe to <symbol>@avgPrice on spot"
    )


def test_rules_that_can_never_fire_are_named_with_the_fix() -> None:
    assert rule_reach(Settings()) == []
    rules = (
        RuleSettings(name="spot-only", markets=("spot",)),
        RuleSettings(name="liquid", min_quote_volume_24h=1e6),
        RuleSettings(name="fine", markets=("usdm", "spot"), min_quote_volume_24h=1e6),
    )
    # usdm mini tickers are watched by default: only the spot-only rule is out of reach.
    assert rule_reach(with_alerts(Settings(), rules=rules[1:])) == []
    settings = with_alerts(Settings(), rules=rules[1:], kinds=("markPriceUpdate",))
    assert rule_reach(settings) == [
        "alerts.rules[0] (liquid): min_quote_volume_24h needs a 24 h ticker among alerts.kinds "
        "(24hrMiniTicker or 24hrTicker); without one no volume is known and the rule never fires",
        "alerts.rules[1] (fine): min_quote_volume_24h needs a 24 h ticker among alerts.kinds "
        "(24hrMiniTicker or 24hrTicker); without one no volume is known and the rule never fires",
    ]
    settings = with_alerts(Settings(), rules=rules[:1])
    assert rule_reach(settings) == [
        "alerts.rules[0] (spot-only): markets spot are not watched (alerts.markets: usdm), so it "
        "never fires; add them to alerts.markets or change the rule's markets"
    ]
    assert rule_reach(settings)[0] in warnings(settings)  # check-config and run say it


def test_a_rule_kind_without_its_input_or_market_is_named() -> None:
    rules = (
        RuleSettings(name="vol", kind="volume"),
        RuleSettings(name="liq", kind="liquidation", min_notional=1e6),
        RuleSettings(name="prem", kind="premium", markets=("spot",)),
        RuleSettings(name="fund", kind="funding"),
    )
    settings = with_alerts(Settings(), rules=rules, markets=("usdm", "spot"))
    assert rule_reach(settings) == [
        "alerts.rules[0] (vol): a volume rule reads aggTrade or trade, and alerts.kinds has "
        "none of them, so it never fires",
        "alerts.rules[1] (liq): a liquidation rule reads forceOrder, and alerts.kinds has none "
        "of them, so it never fires",
        "alerts.rules[2] (prem): a premium rule reads markPriceUpdate, and alerts.kinds has "
        "none of them, so it never fires",
        "alerts.rules[2] (prem): premium data exists on usdm only (markets: spot), so it never "
        "fires",
        "alerts.rules[3] (fund): a funding rule reads markPriceUpdate, and alerts.kinds has "
        "none of them, so it never fires",
    ]
    kinds = ("24hrMiniTicker", "aggTrade", "forceOrder", "markPriceUpdate")
    fixed = with_alerts(Settings(), rules=rules[:2] + rules[3:], kinds=kinds)
    assert rule_reach(fixed) == []
    # A price rule does not read liquidations.
    price_only = with_alerts(Settings(), kinds=("forceOrder",))
    assert rule_reach(price_only) == [
        "alerts.rules[0] (default): a price rule reads trade or aggTrade or 24hrMiniTicker or "
        "24hrTicker or markPriceUpdate or kline or avgPrice, and alerts.kinds has none of "
        "them, so it never fires"
    ]
