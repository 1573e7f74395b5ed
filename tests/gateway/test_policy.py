"""Pure gateway decisions: Origin checks, CSP, bearer tokens, limits, route timings."""

from __future__ import annotations

import pytest

from marketd.config.alerts import GatewaySettings
from marketd.config.validators import InvalidValue
from marketd.gateway import policy
from marketd.gateway.timing import RouteTimings


@pytest.mark.parametrize(
    ("origin", "host", "allowed", "ok"),
    [
        (None, "127.0.0.1:8080", (), True),  # no Origin: not a browser
        ("http://127.0.0.1:8080", "127.0.0.1:8080", (), True),  # same origin
        ("https://alerts.example.com", "alerts.example.com", (), True),  # default port
        ("http://ALERTS.example.com:80", "alerts.example.com", (), True),
        ("http://evil.example", "127.0.0.1:8080", (), False),
        ("http://127.0.0.1:9999", "127.0.0.1:8080", (), False),  # another port
        ("null", "127.0.0.1:8080", (), False),
        ("http://dash.example", "127.0.0.1:8080", ("http://dash.example",), True),
        ("http://dash.example:80", "127.0.0.1:8080", ("http://dash.example/",), True),
        ("https://dash.example", "127.0.0.1:8080", ("http://dash.example",), False),
        ("http://anything", "127.0.0.1:8080", ("*",), True),
        ("null", "127.0.0.1:8080", ("*",), True),
        ("http://[::1]:8080", "[::1]:8080", (), True),
        ("http://evil.example/path", "evil.example", (), False),
    ],
)
def test_origin_allowed(origin: str | None, host: str, allowed: tuple[str, ...], ok: bool) -> None:
    assert policy.origin_allowed(origin, host, allowed) is ok


def test_page_csp_is_tight_and_never_echoes_a_bad_host() -> None:
    csp = policy.page_csp("127.0.0.1:8080")
    directives = dict(d.split(" ", 1) for d in csp.split("; "))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["connect-src"] == "'self' ws://127.0.0.1:8080 wss://127.0.0.1:8080"
    assert directives["frame-ancestors"] == "'none'"
    assert "https://s.tradingview.com" in directives["frame-src"]
    assert "unsafe" not in csp
    assert "connect-src 'self';" in policy.page_csp("evil; script-src *")


def test_bearer_token() -> None:
    assert policy.bearer_matches("Bearer s3cret", "s3cret")
    assert policy.bearer_matches("bearer s3cret", "s3cret")
    assert not policy.bearer_matches("Bearer wrong", "s3cret")
    assert not policy.bearer_matches("Basic s3cret", "s3cret")
    assert not policy.bearer_matches(None, "s3cret")
    assert not policy.bearer_matches("Bearer ", "")


@pytest.mark.parametrize(
    ("raw", "expected"), [(None, 50), ("", 50), ("0", 0), ("7", 7), ("1000", 1000)]
)
def test_limit_accepts(raw: str | None, expected: int) -> None:
    assert policy.parse_limit(raw, default=50, maximum=1000) == expected


@pytest.mark.parametrize("raw", ["-1", "1001", "abc", "1e3", "٣", " 5", "9" * 30])
def test_limit_refuses(raw: str) -> None:
    with pytest.raises(ValueError, match="limit must be an integer from 0 to 1000"):
        policy.parse_limit(raw, default=50, maximum=1000)


def test_route_timings_histogram() -> None:
    timings = RouteTimings(buckets=(0.01, 0.1))
    timings.observe("/api/alerts", "GET", 200, 0.005)
    timings.observe("/api/alerts", "GET", 204, 0.05)
    timings.observe("/api/alerts", "GET", 400, 0.05)
    timings.observe(None, "BREW", 404, 2.0)
    (family,) = timings.metrics()
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in family.samples}
    key = (("le", "0.1"), ("method", "GET"), ("route", "/api/alerts"), ("status", "2xx"))
    assert samples[("marketd_http_request_duration_seconds_bucket", key)] == 2
    bad = (("method", "GET"), ("route", "/api/alerts"), ("status", "4xx"))
    assert samples[("marketd_http_request_duration_seconds_count", bad)] == 1
    unmatched = (("method", "OTHER"), ("route", "<unmatched>"), ("status", "4xx"))
    assert samples[("marketd_http_request_duration_seconds_count", unmatched)] == 1


@pytest.mark.parametrize("origin", ["dash.example", "https://dash.example/path", "ftp://x", "null"])
def test_settings_refuse_what_is_not_an_origin(origin: str) -> None:
    with pytest.raises(InvalidValue, match="is not an origin"):
        GatewaySettings(allowed_origins=(origin,))


def test_settings_accept_origins_and_star() -> None:
    value = ("https://dash.example", "http://127.0.0.1:3000", "*")
    assert GatewaySettings(allowed_origins=value).allowed_origins == value
