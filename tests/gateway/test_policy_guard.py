"""Pure decisions of the gateway's guards: the Host allow-list, the slow-down of repeated
wrong tokens, the cap on alerts pushed live, and why a connection ended (no I/O)."""

from __future__ import annotations

import math

import pytest

from marketd.gateway import policy
from marketd.gateway.policy import FailureThrottle, HostAllowList, LiveCap


@pytest.mark.parametrize(
    ("host", "local", "ok"),
    [
        (None, None, True),  # no Host header: not a browser
        ("127.0.0.1:8080", None, True),
        ("localhost:8080", None, True),
        ("LOCALHOST", None, True),
        ("[::1]:8080", None, True),
        ("127.0.0.1:49152", None, True),  # a published port that is not the listen port
        ("evil.example:8080", None, False),  # DNS rebinding: the attacker's name
        ("evil.example", None, False),
        ("127.0.0.1.evil.example:8080", None, False),
        ("10.1.2.3:8080", "10.1.2.3", True),  # the address the connection arrived on
        ("10.1.2.3:8080", "10.9.9.9", False),
        ("[fe80::1]:8080", "fe80::1", True),
        ("marketd.lan:8080", None, True),  # the listen host
        ("dash.example", None, True),  # configured without a port: any port
        ("dash.example:9000", None, True),
        ("ops.example:8443", None, True),  # configured with its port
        ("ops.example:8444", None, False),
        ("ops.example", None, False),
        ("bad host", None, False),
        ("a/b", None, False),
        ("", None, False),
    ],
)
def test_host_allow_list(host: str | None, local: str | None, ok: bool) -> None:
    allow = HostAllowList.of(("dash.example", "ops.example:8443"), listen="marketd.lan:8080")
    assert allow.allows(host, local) is ok


def test_host_allow_list_defaults_and_star() -> None:
    defaults = HostAllowList.of((), listen="0.0.0.0:8080")
    assert defaults.names == {"localhost", "127.0.0.1", "[::1]"}  # 0.0.0.0 is not a name
    assert not defaults.allows("0.0.0.0:8080")
    assert HostAllowList.of(("*",)).allows("anything.example:1")
    assert HostAllowList.of(("site.example:443",)).allows("site.example")  # default port
    with pytest.raises(ValueError, match="not a host"):
        HostAllowList.of(("http://x",))


def test_shown_bounds_and_cleans_client_values() -> None:
    assert policy.shown(None) is None
    assert policy.shown("ok.example") == "ok.example"
    assert policy.shown("a\nb\x00c") == "a?b?c"
    assert policy.shown("x" * 100, limit=10) == "x" * 10 + "…"


def test_throttle_lets_the_first_failures_through_then_doubles_the_delay() -> None:
    throttle = FailureThrottle(free=3, base_s=1.0, max_s=8.0, forget_s=100.0)
    ip = "192.0.2.1"
    assert [throttle.failed(ip, 0.0) for _ in range(2)] == [None, None]
    assert throttle.retry_after(ip, 0.0) is None
    assert throttle.failed(ip, 0.0) == 1.0  # the third: blocked for 1 s
    assert throttle.retry_after(ip, 0.25) == 0.75
    assert throttle.retry_after(ip, 1.0) is None  # checked again after the delay
    assert throttle.failed(ip, 1.0) == 2.0
    assert throttle.failed(ip, 3.0) == 4.0
    assert throttle.failed(ip, 7.0) == 8.0
    assert throttle.failed(ip, 15.0) == 8.0  # capped
    assert throttle.retry_after("192.0.2.2", 15.0) is None  # another address is not slowed
    throttle.succeeded(ip)
    assert throttle.retry_after(ip, 16.0) is None
    assert throttle.failed(ip, 16.0) is None  # a success forgets the failures


def test_throttle_forgets_quiet_clients_and_bounds_its_table() -> None:
    throttle = FailureThrottle(free=2, base_s=1.0, max_s=10.0, forget_s=60.0, max_clients=3)
    throttle.failed("a", 0.0)
    assert throttle.failed("a", 61.0) is None  # the first failure was forgotten
    for i in range(10):
        throttle.failed(f"10.0.0.{i}", 62.0)
    assert len(throttle) == 3  # the least recently failing ones went first
    assert throttle.failed("10.0.0.9", 62.0) == 1.0  # the most recent is remembered
    assert throttle.failed("10.0.0.0", 62.0) is None  # the oldest was not


def test_throttle_refuses_impossible_settings() -> None:
    with pytest.raises(ValueError, match="free >= 1"):
        FailureThrottle(free=0)
    with pytest.raises(ValueError, match="max_s"):
        FailureThrottle(base_s=10.0, max_s=1.0)


def test_live_cap_is_a_sliding_window() -> None:
    cap = LiveCap(3)
    assert [cap.admit(t) for t in (0.0, 0.1, 0.2, 0.3, 0.9)] == [True, True, True, False, False]
    assert cap.admit(1.0)  # the alert of 0.0 left the window
    assert not cap.admit(1.05)
    assert cap.admit(1.1)
    assert all(LiveCap(0).admit(0.0) for _ in range(1000))  # 0: no cap
    with pytest.raises(ValueError, match="per_s >= 0"):
        LiveCap(-1)


@pytest.mark.parametrize(
    ("now", "sending_since", "stall_ended", "cut"),
    [
        (10.0, None, -math.inf, False),  # no send in progress, never stalled: it left
        (10.0, 9.99, -math.inf, False),  # a send in progress, not stalled
        (10.0, 8.5, -math.inf, True),  # lost while a send was stalled
        (10.0, None, 9.5, True),  # lost just after a stalled send returned (failed)
        (10.0, None, 5.0, False),  # a stall long ago, recovered
    ],
)
def test_lost_during_stalled_send(
    now: float, sending_since: float | None, stall_ended: float, cut: bool
) -> None:
    assert policy.lost_during_stalled_send(now, sending_since, stall_ended) is cut
