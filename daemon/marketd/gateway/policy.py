"""Pure decisions of the gateway (no I/O, times given): Origin and Host checks, security
headers, tokens and the slow-down of repeated failures, query limits, the cap on alerts
pushed live, and why a WebSocket connection ended."""

from __future__ import annotations

import collections
import hmac
import re
from collections.abc import Iterable
from typing import Final
from urllib.parse import urlsplit

import attrs

_DEFAULT_PORTS: Final = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_DIGITS = re.compile(r"[0-9]{1,9}")
_HOST = re.compile(r"^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$")

TRADINGVIEW_FRAMES: Final = "https://s.tradingview.com https://www.tradingview.com"


def split_host(host: str) -> tuple[str, int | None] | None:
    """``host[:port]`` → (name lower-cased, IPv6 in brackets; port or None); None if it is
    not a plain host[:port] (a Host header, an ``allowed_hosts`` entry, a listen address)."""
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
    return (f"[{name}]" if ":" in name else name), port


def _netloc(scheme: str, host: str) -> str | None:
    """``host[:port]`` lower-cased, without the scheme's default port; None if malformed."""
    parsed = split_host(host)
    if parsed is None:
        return None
    name, port = parsed
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


# -- the Host allow-list (DNS rebinding) ---------------------------------------------------

LOOPBACK_NAMES: Final = frozenset({"localhost", "127.0.0.1", "[::1]"})
_WILDCARDS: Final = frozenset({"", "0.0.0.0", "[::]"})  # listen on every address


@attrs.frozen
class HostAllowList:
    """Which ``Host`` headers the gateway's routes answer: the guard against DNS rebinding
    (a page on ``evil.example`` whose name is re-pointed at this machine makes the browser
    send ``Host: evil.example``; refusing names that are not ours defeats it).

    Allowed: no Host header (not a browser); ``localhost``, ``127.0.0.1``, ``[::1]``, the
    listen address's host and the address the connection arrived on, on any port (a name
    that is an address or ``localhost`` cannot be re-pointed by an attacker's DNS, and a
    container's published port differs from the one it listens on); every configured
    entry: ``name`` on any port, ``name:port`` on that port only; ``"*"`` allows any.
    """

    names: frozenset[str]
    with_port: frozenset[tuple[str, int]] = frozenset()
    any_host: bool = False

    @classmethod
    def of(cls, configured: Iterable[str], listen: str = "") -> HostAllowList:
        names, with_port, any_host = set(LOOPBACK_NAMES), set(), False
        for entry in configured:
            if entry.strip() == "*":
                any_host = True
                continue
            parsed = split_host(entry)
            if parsed is None:
                raise ValueError(f"{entry!r} is not a host[:port]")
            name, port = parsed
            if port is None:
                names.add(name)
            else:
                with_port.add((name, port))
        listen_host = split_host(listen)
        if listen_host is not None and listen_host[0] not in _WILDCARDS:
            names.add(listen_host[0])
        return cls(frozenset(names), frozenset(with_port), any_host)

    def allows(self, host: str | None, local_address: str | None = None) -> bool:
        """``host``: the Host header; ``local_address``: where the connection arrived."""
        if host is None or self.any_host:
            return True
        parsed = split_host(host)
        if parsed is None:
            return False
        name, port = parsed
        if name in self.names:
            return True
        if local_address is not None:
            local = split_host(f"[{local_address}]" if ":" in local_address else local_address)
            if local is not None and local[0] == name:
                return True
        ports = (80, 443) if port is None else (port,)
        return any((name, p) in self.with_port for p in ports)


def shown(value: str | None, limit: int = 80) -> str | None:
    """A client-supplied header value safe to put in a log line: printable, bounded."""
    if value is None:
        return None
    cleaned = "".join(c if c.isprintable() else "?" for c in value[:limit])
    return cleaned + "…" if len(value) > limit else cleaned


# -- repeated failed tokens ------------------------------------------------------------------


@attrs.define
class _Failures:
    count: int = 0
    blocked_until: float = 0.0
    last: float = 0.0


class FailureThrottle:
    """Slows down a client that keeps presenting a wrong token (pure: times are given).

    The first ``free`` failures from one client (its remote address) cost nothing; the
    ``free``-th and each later one block it for ``base_s``, then twice as long, ... up to
    ``max_s``. While blocked its attempts are refused unchecked (429 with Retry-After);
    a success forgets it. At most ``max_clients`` clients are remembered (the least
    recently failing one is forgotten first), and one quiet for ``forget_s`` is forgotten.
    """

    def __init__(
        self,
        *,
        free: int = 5,
        base_s: float = 1.0,
        max_s: float = 300.0,
        forget_s: float = 900.0,
        max_clients: int = 4096,
    ) -> None:
        if free < 1 or base_s <= 0 or max_s < base_s or forget_s < max_s or max_clients < 1:
            raise ValueError("free >= 1, 0 < base_s <= max_s <= forget_s, max_clients >= 1")
        self.free, self.base_s, self.max_s = free, base_s, max_s
        self.forget_s, self.max_clients = forget_s, max_clients
        self._clients: collections.OrderedDict[str, _Failures] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._clients)

    def _get(self, client: str, now: float) -> _Failures | None:
        entry = self._clients.get(client)
        if entry is not None and now - entry.last >= self.forget_s and now >= entry.blocked_until:
            del self._clients[client]
            return None
        return entry

    def retry_after(self, client: str, now: float) -> float | None:
        """Seconds ``client`` must still wait before its token is checked, or None."""
        entry = self._get(client, now)
        if entry is None or now >= entry.blocked_until:
            return None
        return entry.blocked_until - now

    def failed(self, client: str, now: float) -> float | None:
        """Record a failure; the seconds ``client`` is now blocked for, or None."""
        entry = self._get(client, now)
        if entry is None:
            while len(self._clients) >= self.max_clients:
                self._clients.popitem(last=False)
            entry = self._clients[client] = _Failures()
        else:
            self._clients.move_to_end(client)
        entry.count += 1
        entry.last = now
        if entry.count < self.free:
            return None
        delay = min(self.max_s, self.base_s * 2.0 ** min(entry.count - self.free, 62))
        entry.blocked_until = now + delay
        return delay

    def succeeded(self, client: str) -> None:
        self._clients.pop(client, None)


# -- alerts pushed live ---------------------------------------------------------------------


class LiveCap:
    """At most ``per_s`` alerts offered live in any window of ``window_s`` seconds (a
    sliding window: the times of the last ``per_s`` admitted alerts); 0 admits all."""

    def __init__(self, per_s: int, window_s: float = 1.0) -> None:
        if per_s < 0 or window_s <= 0:
            raise ValueError("per_s >= 0 and window_s > 0 are required")
        self.per_s, self.window_s = per_s, window_s
        self._admitted: collections.deque[float] = collections.deque(maxlen=per_s or 1)

    def admit(self, now: float) -> bool:
        if not self.per_s:
            return True
        if len(self._admitted) == self.per_s and now - self._admitted[0] < self.window_s:
            return False
        self._admitted.append(now)
        return True


# -- why a WebSocket connection ended --------------------------------------------------------

STALLED_SEND_S: Final = 1.0
"""A send to a client blocked this long means the client stopped reading (its TCP window
is closed); a connection lost during such a send, or within ``STALL_GRACE_S`` after it
returned, was cut by the send timeout (the kernel's ``TCP_USER_TIMEOUT``)."""
STALL_GRACE_S: Final = 1.0


def lost_during_stalled_send(now: float, sending_since: float | None, stall_ended: float) -> bool:
    """Was a connection found gone at ``now`` cut because a send to it stalled?

    ``sending_since``: when the send in progress began (None: none in progress);
    ``stall_ended``: when the last send that lasted ``STALLED_SEND_S`` or more returned.
    (Hypercorn lets the stalled write finish, failed, before it reports the disconnect,
    so the stall is usually seen just ended rather than in progress.)
    """
    if sending_since is not None and now - sending_since >= STALLED_SEND_S:
        return True
    return now - stall_ended <= STALL_GRACE_S
