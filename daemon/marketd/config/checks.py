"""Checks across sections of a valid configuration: allowed, but probably not what was meant.

Each finding is one line saying what and how to fix it. ``marketd check-config`` prints
them as ``# warning:`` comments (the YAML stays valid) and ``marketd run`` logs them at
start-up; neither refuses the configuration.
"""

from __future__ import annotations

from marketd.config.alerts import PRICE_KINDS
from marketd.config.settings import Settings, subscribed_kinds
from marketd.data.records import Market
from marketd.exchanges import adapter
from marketd.roles import DETECTOR


def warnings(settings: Settings) -> list[str]:
    if DETECTOR not in settings.roles:
        return []  # no detector here (a collector, a recorder): its alerts are not ours
    return alert_coverage(settings) + rule_reach(settings)


# The detector's kinds that carry a 24 h quote volume (the rules' volume filter needs one).
_VOLUME_KINDS = ("24hrMiniTicker", "24hrTicker")


# The event kinds each rule kind reads (one of them must be among alerts.kinds).
_RULE_INPUTS = {
    "price": tuple(k for k in PRICE_KINDS if k != "forceOrder"),
    "volume": ("aggTrade", "trade"),
    "liquidation": ("forceOrder",),
    "premium": ("markPriceUpdate",),
    "funding": ("markPriceUpdate",),
}
_USDM_ONLY = frozenset({"liquidation", "premium", "funding"})


def rule_reach(settings: Settings) -> list[str]:
    """Rules that can never fire as configured: a market the detector does not watch, no
    watched kind that carries what the rule's kind reads (or only on a market without it),
    or a volume minimum with no 24 h ticker among the watched kinds."""
    alerts = settings.alerts
    if not alerts.enabled:
        return []
    found = []
    for i, rule in enumerate(alerts.rules):
        if rule.markets and not set(rule.markets) & set(alerts.markets):
            found.append(
                f"alerts.rules[{i}] ({rule.name}): markets {', '.join(rule.markets)} are not "
                f"watched (alerts.markets: {', '.join(alerts.markets)}), so it never fires; "
                "add them to alerts.markets or change the rule's markets"
            )
        needs = _RULE_INPUTS[rule.kind]
        if not set(needs) & set(alerts.kinds):
            found.append(
                f"alerts.rules[{i}] ({rule.name}): a {rule.kind} rule reads "
                f"{' or '.join(needs)}, and alerts.kinds has none of them, so it never fires"
            )
        markets = set(rule.markets or alerts.markets) & set(alerts.markets)
        if rule.kind in _USDM_ONLY and markets and "usdm" not in markets:
            found.append(
                f"alerts.rules[{i}] ({rule.name}): {rule.kind} data exists on usdm only "
                f"(markets: {', '.join(sorted(markets))}), so it never fires"
            )
        if rule.min_quote_volume_24h > 0 and not set(_VOLUME_KINDS) & set(alerts.kinds):
            found.append(
                f"alerts.rules[{i}] ({rule.name}): min_quote_volume_24h needs a 24 h ticker "
                f"among alerts.kinds ({' or '.join(_VOLUME_KINDS)}); without one no volume is "
                "known and the rule never fires"
            )
    return found


def alert_coverage(settings: Settings) -> list[str]:
    """The (kind, market) pairs the in-process detector watches that no subscription
    carries: it would never see a price of them."""
    alerts = settings.alerts
    if not alerts.enabled or alerts.source != "pipeline":
        return []
    carried = subscribed_kinds(settings.subscriptions)
    found = []
    for market in (Market(m) for m in alerts.markets):
        for kind in alerts.kinds:
            if (market, kind) in carried:
                continue
            ways = adapter(market).vocabulary.spellings(kind)
            fix = (
                f"subscribe to {' or '.join(ways[:3])} on {market.value}"
                if ways
                else f"{market.value} does not serve it: remove it from alerts.kinds or markets"
            )
            found.append(
                f"alerts.kinds: the detector watches {kind} on {market.value}, but no "
                f"{market.value} subscription carries it; {fix}"
            )
    return found
