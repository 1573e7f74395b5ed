"""The alerts gateway: fan-out hub, the browser UI's routes, and the JSON API.

The names below are imported on first use: a module of the package can be imported alone
without Quart and the rest of the gateway (the fake exchange frames its messages with
:mod:`marketd.gateway.frames`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
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

_MODULES: Final = {
    "AlertHub": "hub",
    "HubClient": "hub",
    "HubStatistics": "hub",
    "MuteStore": "mutes",
    "Gateway": "routes",
    "RulesAccess": "routes",
    "install_gateway": "routes",
}


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
