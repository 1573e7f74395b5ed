"""The alerts gateway: fan-out hub, the browser UI's routes, and the JSON API."""

from marketd.gateway.hub import AlertHub, HubStatistics, Subscription
from marketd.gateway.routes import Gateway, RulesStore, install_gateway

__all__ = ["AlertHub", "Gateway", "HubStatistics", "RulesStore", "Subscription", "install_gateway"]
