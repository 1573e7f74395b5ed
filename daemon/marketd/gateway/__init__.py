"""The alerts gateway: fan-out hub, the browser UI's routes, and the JSON API."""

from marketd.gateway.hub import AlertHub, HubClient, HubStatistics
from marketd.gateway.mutes import MuteStore
from marketd.gateway.routes import Gateway, RulesAccess, install_gateway

__all__ = [
    "AlertHub",
    "Gateway",
    "HubClient",
    "HubStatistics",
    "MuteStore",
    "RulesAccess",
    "install_gateway",
]
