"""The pure parts of the notifiers: message text, webhook body and signature, each
service's request, how answers are judged, and the retry delay (no I/O)."""

from __future__ import annotations

import hashlib
import hmac
import random

import attrs
import orjson
import pytest

from marketd.alerts.model import Alert, AlertKind, Direction
from marketd.config.notify import NotifierSettings
from marketd.notify.messages import (
    alert_lines,
    headline,
    plain_text,
    signature,
    tradingview_url,
    webhook_body,
)
from marketd.notify.senders import (
    MAX_RETRY_AFTER_S,
    Outcome,
    Verdict,
    build_request,
    classify,
    retry_delay,
)
from marketd.runtime.backoff import BackoffPolicy

TOKEN = "123456:ABC-def_ghi"
SECRET = "s3cret-key"
NOW = 1_767_000_000.75


def alert(
    market: str = "usdm",
    direction: Direction = Direction.UP,
    symbol: str = "BTCUSDT",
    change_pct: float = 3.214,
    price: str = "65000.10",
    window_s: float = 60.0,
    threshold_pct: float = 2.0,
) -> Alert:
    return Alert(
        id="a1b2c3", symbol=symbol, market=market, rule="jump", direction=direction,
        change_pct=change_pct, price=price, price_time_ms=1_767_000_000_000,
        base_price="62978.00", base_time_ms=1_766_999_950_000,
        detected_at_ms=1_767_000_000_050, window_s=window_s, threshold_pct=threshold_pct,
        cooldown_s=30.0,
    )  # fmt: skip


def webhook(**kw: object) -> NotifierSettings:
    return NotifierSettings(  # type: ignore[arg-type]
        name="ops", kind="webhook", url="https://hooks.example.com/in/x?y=1", secret=SECRET, **kw
    )


def telegram(chat_id: str = "-1001234567890") -> NotifierSettings:
    return NotifierSettings(name="chat", kind="telegram", bot_token=TOKEN, chat_id=chat_id)


def discord() -> NotifierSettings:
    return NotifierSettings(
        name="desk", kind="discord", url="https://discord.com/api/webhooks/42/tok-EN_secret"
    )


# -- text -------------------------------------------------------------------------------


def test_tradingview_link_has_p_only_for_usdm_perpetuals() -> None:
    assert tradingview_url(alert("usdm")) == (
        "https://www.tradingview.com/chart/?symbol=BINANCE:BTCUSDT.P"
    )
    assert tradingview_url(alert("spot", symbol="ETHUSDT")) == (
        "https://www.tradingview.com/chart/?symbol=BINANCE:ETHUSDT"
    )
    # A dated delivery contract, as the UI links it (ui/app.js, perpetual()).
    assert tradingview_url(alert("usdm", symbol="BTCUSDT_260626")) == (
        "https://www.tradingview.com/chart/?symbol=BINANCE:BTCUSDT_260626"
    )


def test_text_names_symbol_market_direction_move_price_rule_window_and_chart() -> None:
    assert plain_text(alert()) == (
        "▲ BTCUSDT usdm pump +3.21% at 65000.10\n"
        "rule jump: > 2% in 60s\n"
        "https://www.tradingview.com/chart/?symbol=BINANCE:BTCUSDT.P"
    )
    down = alert("spot", Direction.DOWN, "ETHUSDT", -2.5, "3100.5", 300.0, 1.5)
    assert alert_lines(down) == (
        "▼ ETHUSDT spot dump -2.50% at 3100.5",
        "rule jump: > 1.5% in 300s",
        "https://www.tradingview.com/chart/?symbol=BINANCE:ETHUSDT",
    )


def test_each_kind_says_what_it_saw() -> None:
    def of(kind: AlertKind, direction: Direction, change: float, figures: dict[str, str]) -> Alert:
        return attrs.evolve(
            alert(direction=direction, change_pct=change), kind=kind, figures=figures
        )

    volume = of(AlertKind.VOLUME, Direction.UP, 1.2, {"ratio": "7.31", "trades": "40"})
    assert alert_lines(volume)[:2] == (
        "▲ BTCUSDT usdm volume x7.31 (+1.20%) at 65000.10",
        "rule jump (volume, 60s window)",
    )
    longs = of(AlertKind.LIQUIDATION, Direction.DOWN, -0.5,
               {"side": "SELL", "notional": "1250000.5", "count": "3"})  # fmt: skip
    assert headline(longs) == "▼ BTCUSDT usdm longs liquidated 1250000.5 (3 orders) at 65000.10"
    shorts = of(AlertKind.LIQUIDATION, Direction.UP, 0.0,
                {"side": "BUY", "notional": "20000", "count": "1"})  # fmt: skip
    assert headline(shorts) == "▲ BTCUSDT usdm shorts liquidated 20000 (1 order) at 65000.10"
    premium = of(AlertKind.PREMIUM, Direction.UP, 0.8532,
                 {"mark_price": "65000.10", "index_price": "64450"})  # fmt: skip
    assert alert_lines(premium)[:2] == (
        "▲ BTCUSDT usdm premium +0.85% (mark 65000.10, index 64450)",
        "rule jump (premium, beyond 2%)",
    )
    funding = of(AlertKind.FUNDING, Direction.DOWN, -0.25,
                 {"funding_rate": "-0.0025", "mark_price": "65000.10"})  # fmt: skip
    assert headline(funding) == "▼ BTCUSDT usdm funding rate -0.2500% (mark 65000.10)"


def test_an_alert_without_its_rule_parameters_names_the_rule_only() -> None:
    assert alert_lines(alert(window_s=0.0, threshold_pct=0.0))[1] == "rule jump"
    assert alert_lines(alert(window_s=30.0, threshold_pct=0.0))[1] == "rule jump: window 30s"


# -- the webhook ----------------------------------------------------------------------------


def test_webhook_body_is_the_alert_with_its_rule_link_and_text() -> None:
    assert orjson.loads(webhook_body(alert(), "ops")) == {
        "version": 1,
        "notifier": "ops",
        "alert": {
            "id": "a1b2c3",
            "kind": "price",
            "symbol": "BTCUSDT",
            "market": "usdm",
            "rule": "jump",
            "direction": "up",
            "change_pct": 3.214,
            "price": "65000.10",
            "price_time_ms": 1_767_000_000_000,
            "base_price": "62978.00",
            "base_time_ms": 1_766_999_950_000,
            "duration_ms": 50_000,
            "detected_at_ms": 1_767_000_000_050,
            "window_s": 60.0,
            "figures": {},
            "path": [],
            "threshold_pct": 2.0,
        },
        "tradingview_url": "https://www.tradingview.com/chart/?symbol=BINANCE:BTCUSDT.P",
        "text": plain_text(alert()),
    }


def test_retry_after_as_an_http_date_is_the_time_until_then() -> None:
    now = 1_767_000_000.0  # 2025-12-29 09:20:00 GMT
    headers = {"retry-after": "Mon, 29 Dec 2025 09:20:30 GMT"}
    assert classify("webhook", 503, headers, b"", now).retry_after == 30.0
    assert classify("webhook", 503, headers, b"", now + 60).retry_after == 0.0  # past
    assert classify("webhook", 503, headers, b"").retry_after is None  # no clock given
    for bad in ("soon", "Mon, 29 Dec 2025 09:20:30", "Mon, 99 Dec 2025 09:20:30 GMT"):
        assert classify("webhook", 503, {"retry-after": bad}, b"", now).retry_after is None


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    body = b'{"a":1}'
    expected = hmac.new(b"s3cret-key", b'1767000000.{"a":1}', hashlib.sha256).hexdigest()
    assert signature(SECRET, "1767000000", body) == "sha256=" + expected
    # The timestamp is signed: another one, or another body, gives another signature.
    assert signature(SECRET, "1767000001", body) != signature(SECRET, "1767000000", body)
    assert signature(SECRET, "1767000000", b'{"a":2}') != signature(SECRET, "1767000000", body)
    assert signature("other", "1767000000", body) != signature(SECRET, "1767000000", body)


def test_webhook_request_is_signed_json_to_the_url() -> None:
    request = build_request(webhook(), alert(), NOW)
    headers = dict(request.headers)
    assert request.url == "https://hooks.example.com/in/x?y=1"
    assert request.body == webhook_body(alert(), "ops")
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Marketd-Timestamp"] == "1767000000"
    mac = hmac.new(SECRET.encode(), b"1767000000." + request.body, hashlib.sha256)
    assert headers["X-Marketd-Signature"] == "sha256=" + mac.hexdigest()
    assert SECRET not in repr(request)
    assert "sha256=" not in repr(request)


# -- Telegram and Discord -----------------------------------------------------------------


def test_telegram_request_is_send_message_with_the_token_in_the_path() -> None:
    request = build_request(telegram(), alert(), NOW)
    assert request.url == f"https://api.telegram.org/bot{TOKEN}/sendMessage"
    assert dict(request.headers)["Content-Type"] == "application/json"
    assert orjson.loads(request.body) == {
        "chat_id": -1001234567890,
        "text": "<b>▲ BTCUSDT usdm pump +3.21% at 65000.10</b>\n"
        "rule jump: &gt; 2% in 60s\n"
        "https://www.tradingview.com/chart/?symbol=BINANCE:BTCUSDT.P",
        "parse_mode": "HTML",
        "link_preview_options": {"is_disabled": True},
    }
    assert TOKEN not in repr(request)


def test_telegram_channel_names_are_sent_as_strings() -> None:
    body = orjson.loads(build_request(telegram("@marketd_alerts"), alert(), NOW).body)
    assert body["chat_id"] == "@marketd_alerts"


def test_discord_request_is_content_without_mentions() -> None:
    request = build_request(discord(), alert("spot", symbol="BTC_USDT"), NOW)
    assert request.url == "https://discord.com/api/webhooks/42/tok-EN_secret"
    assert orjson.loads(request.body) == {
        "content": "**▲ BTC\\_USDT spot pump +3.21% at 65000.10**\n"
        "rule jump: \\> 2% in 60s\n"
        "<https://www.tradingview.com/chart/?symbol=BINANCE:BTC_USDT>",
        "allowed_mentions": {"parse": []},
    }
    assert "tok-EN" not in repr(request)


# -- answers ------------------------------------------------------------------------------

TG_429 = orjson.dumps(
    {"ok": False, "error_code": 429, "description": "Too Many Requests: retry after 5",
     "parameters": {"retry_after": 5}}
)  # fmt: skip
TG_400 = orjson.dumps(
    {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"}
)
DC_429 = orjson.dumps(
    {"message": "You are being rate limited.", "retry_after": 0.75, "global": False}
)


@pytest.mark.parametrize(
    ("kind", "status", "headers", "body", "verdict"),
    [
        ("webhook", 200, {}, b"", Verdict(Outcome.DELIVERED, "HTTP 200")),
        ("discord", 204, {}, b"", Verdict(Outcome.DELIVERED, "HTTP 204")),
        ("telegram", 200, {}, b'{"ok":true}', Verdict(Outcome.DELIVERED, "HTTP 200")),
        ("webhook", 500, {}, b'{"message":"x"}', Verdict(Outcome.RETRY, "HTTP 500")),
        ("webhook", 503, {"retry-after": "7"}, b"", Verdict(Outcome.RETRY, "HTTP 503", 7.0)),
        ("webhook", 429, {"retry-after": "1.5"}, b"", Verdict(Outcome.RETRY, "HTTP 429", 1.5)),
        # An HTTP-date is not read: the backoff decides.
        ("webhook", 429, {"retry-after": "Wed, 21 Oct 2026 07:28:00 GMT"}, b"",
         Verdict(Outcome.RETRY, "HTTP 429")),
        ("telegram", 429, {}, TG_429,
         Verdict(Outcome.RETRY, "HTTP 429: Too Many Requests: retry after 5", 5.0)),
        ("telegram", 400, {}, TG_400,
         Verdict(Outcome.FAILED, "HTTP 400: Bad Request: chat not found")),
        ("discord", 429, {"retry-after": "1"}, DC_429,
         Verdict(Outcome.RETRY, "HTTP 429: You are being rate limited.", 0.75)),
        ("discord", 429, {"retry-after": "2"}, b"", Verdict(Outcome.RETRY, "HTTP 429", 2.0)),
        ("discord", 429, {"retry-after": "3"}, b'{"retry_after": -1}',
         Verdict(Outcome.RETRY, "HTTP 429", 3.0)),
        ("discord", 429, {}, b'{"retry_after": true}', Verdict(Outcome.RETRY, "HTTP 429")),
        ("discord", 404, {}, b'{"message": "Unknown Webhook", "code": 10015}',
         Verdict(Outcome.FAILED, "HTTP 404: Unknown Webhook")),
        ("webhook", 400, {}, b"", Verdict(Outcome.FAILED, "HTTP 400")),
        ("webhook", 408, {}, b"", Verdict(Outcome.FAILED, "HTTP 408")),
        ("webhook", 301, {"location": "https://elsewhere"}, b"",
         Verdict(Outcome.FAILED, "HTTP 301 (redirects are not followed)")),
    ],
)  # fmt: skip
def test_answers_are_judged_per_service(
    kind: str, status: int, headers: dict[str, str], body: bytes, verdict: Verdict
) -> None:
    assert classify(kind, status, headers, body) == verdict


def test_a_long_service_description_is_cut() -> None:
    body = orjson.dumps({"ok": False, "description": "x" * 1000})
    assert classify("telegram", 400, {}, body).reason == "HTTP 400: " + "x" * 200


# -- the retry delay ------------------------------------------------------------------------


def test_retry_delay_is_capped_jittered_backoff() -> None:
    policy = BackoffPolicy(initial=1.0, cap=8.0, multiplier=2.0, jitter=0.5)
    rng = random.Random(7)
    for attempt in range(12):
        base = min(8.0, 2.0**attempt)
        for _ in range(50):
            assert base / 2 <= retry_delay(policy, attempt, None, rng) <= base


def test_retry_delay_waits_at_least_what_the_service_asked_up_to_a_bound() -> None:
    policy = BackoffPolicy(initial=0.01, cap=0.02, multiplier=2.0, jitter=0.5)
    assert retry_delay(policy, 0, 5.0) == 5.0
    assert retry_delay(policy, 3, 0.0) <= 0.02
    assert retry_delay(policy, 0, 10 * MAX_RETRY_AFTER_S) == MAX_RETRY_AFTER_S
    slow = BackoffPolicy(initial=30.0, cap=30.0, multiplier=2.0, jitter=0.0)
    assert retry_delay(slow, 0, 1.0) == 30.0  # the backoff when it is longer
