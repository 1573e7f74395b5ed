"""Checks across sections of a valid configuration: allowed, but probably not what was meant.

Each finding is one line saying what and how to fix it. ``marketd check-config`` prints
them as ``# warning:`` comments (the YAML stays valid) and ``marketd run`` logs them at
start-up; neither refuses the configuration.
"""

from __future__ import annotations

from marketd.config.settings import Settings, subscribed_kinds
from marketd.data.records import Market
from marketd.exchanges import adapter


def warnings(settings: Settings) -> list[str]:
    return alert_coverage(settings)


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
