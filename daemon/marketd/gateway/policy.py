"""Pure decisions of the gateway: Origin checks, security headers, tokens, query limits."""

from __future__ import annotations

import hmac
import re
from collections.abc import Iterable
from typing import Final
from urllib.parse import urlsplit

_DEFAULT_PORTS: Final = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_DIGITS = re.compile(r"[0-9]{1,9}")
_HOST = re.compile(r"^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$")

TRADINGVIEW_FRAMES: Final = "https://s.tradingview.com https://www.tradingview.com"


def _netloc(scheme: str, host: str) -> str | None:
    """``host[:port]`` lower-cased, without the scheme's default port; None if malformed."""
    host = host.strip().lower()
    if not _HOST.match(host):
        return None
    try:
        parts = urlsplit("//" + host)
        port = parts.port
    except ValueError:
        return None
    name = parts.hostname
    if not name:
        return None
    if ":" in name:
        name = f"[{name}]"
    if port is None or port == _DEFAULT_PORTS.get(scheme):
        return name
    return f"{name}:{port}"


def normalize_origin(origin: str) -> str | None:
    """``scheme://host[:port]`` lower-cased without a default port; None if not an origin."""
    try:
        parts = urlsplit(origin.strip())
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or parts.path not in ("", "/"):
        return None
    if parts.query or parts.fragment or parts.username or parts.password:
        return None
    netloc = _netloc(parts.scheme, parts.netloc)
    return None if netloc is None else f"{parts.scheme}://{netloc}"


def origin_allowed(origin: str | None, host: str | None, allowed: Iterable[str]) -> bool:
    """May a WebSocket handshake with ``Origin: origin`` to ``Host: host`` proceed?

    * No Origin header: allowed. Browsers always send one on WebSocket handshakes, and
      cross-site WebSocket hijacking needs a browser; command-line clients send none.
    * Same origin (the Origin's host and port equal the Host header's): allowed.
    * Otherwise only when listed in ``allowed`` (exact ``scheme://host[:port]``) or
      ``allowed`` contains ``"*"``. ``Origin: null`` is only allowed by ``"*"``.
    """
    allowed = tuple(allowed)
    if origin is None:
        return True
    if "*" in allowed:
        return True
    norm = normalize_origin(origin)
    if norm is None:
        return False
    scheme, _, netloc = norm.partition("://")
    if host is not None and _netloc(scheme, host) == netloc:
        return True
    return norm in {normalize_origin(a) for a in allowed}


def safe_host(host: str | None) -> str | None:
    """The Host header if it is a plain host[:port] (safe to echo into a header)."""
    if host is None or not _HOST.match(host):
        return None
    return host.lower()


def page_csp(host: str | None) -> str:
    """Content-Security-Policy of the UI page: its own scripts and styles, its own
    WebSocket, TradingView chart frames; nothing inline, no plugins, no framing."""
    own = safe_host(host)
    connect = f"'self' ws://{own} wss://{own}" if own else "'self'"
    return "; ".join(
        (
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            f"connect-src {connect}",
            f"frame-src {TRADINGVIEW_FRAMES}",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        )
    )


API_CSP: Final = "default-src 'none'; frame-ancestors 'none'"
"""Content-Security-Policy of everything that is not the page (JSON, metrics, assets)."""

COMMON_HEADERS: Final = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


def bearer_matches(authorization: str | None, token: str) -> bool:
    """Constant-time check of ``Authorization: Bearer <token>`` (``token`` not empty)."""
    if not token or not authorization:
        return False
    scheme, _, given = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())


def parse_limit(raw: str | None, *, default: int, maximum: int) -> int:
    """``?limit=``: an integer in [0, maximum]; ``default`` when absent. ValueError says why."""
    if raw is None or raw == "":
        return min(default, maximum)
    if not _DIGITS.fullmatch(raw):
        raise ValueError(f"limit must be an integer from 0 to {maximum}, got {raw[:20]!r}")
    value = int(raw)
    if value > maximum:
        raise ValueError(f"limit must be an integer from 0 to {maximum}, got {value}")
    return value
