"""Per service: the HTTP request an alert becomes, and what the answer means (pure).

* ``webhook``: ``POST <url>``, the JSON of :func:`~marketd.notify.messages.webhook_body`,
  signed (:mod:`marketd.notify.messages` documents the scheme).
* ``telegram``: ``POST <api_base>/bot<token>/sendMessage`` with ``chat_id``, ``text``
  (HTML), ``parse_mode`` and ``link_preview_options`` (the Bot API's successor of
  ``disable_web_page_preview``); a 429 says how long to wait in
  ``parameters.retry_after`` (seconds).
* ``discord``: ``POST <webhook url>`` with ``content`` (mentions disabled); a 429 says how
  long in the body's ``retry_after`` (seconds, a float) and the ``Retry-After`` header.

Answers: 2xx is delivered; 429 and 5xx are retried (after at least what the service
asked for); any other status fails at once (a 4xx will not get better by repeating it, and
redirects are not followed). Network errors and timeouts are retried.
"""

from __future__ import annotations

import email.utils
import enum
import html
import math
import random
import re
from collections.abc import Mapping
from typing import Any

import attrs
import orjson

from marketd.alerts.model import Alert
from marketd.config.notify import NotifierSettings
from marketd.notify.messages import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    alert_lines,
    signature,
    webhook_body,
)
from marketd.runtime.backoff import BackoffPolicy

# A server may ask for a longer wait than the backoff's cap; honoured up to this.
MAX_RETRY_AFTER_S = 600.0
USER_AGENT = "marketd"
_REASON_CHARS = 200
_DISCORD_MARKDOWN = re.compile(r"([\\*_~`|>])")


@attrs.frozen
class Request:
    """One POST. ``url`` and ``headers`` may hold secrets (a token in the path, the
    signature): kept out of ``repr``; logs show :meth:`NotifierSettings.target`."""

    url: str = attrs.field(repr=False)
    headers: tuple[tuple[str, str], ...] = attrs.field(repr=False)
    body: bytes


class Outcome(enum.Enum):
    DELIVERED = "delivered"
    RETRY = "retry"
    FAILED = "failed"


@attrs.frozen
class Verdict:
    """What an answer (or its absence) means; ``reason`` is for the log and holds no secret."""

    outcome: Outcome
    reason: str
    retry_after: float | None = None


# -- requests -------------------------------------------------------------------------


def build_request(notifier: NotifierSettings, alert: Alert, now_s: float) -> Request:
    """The request that sends ``alert`` through ``notifier``; ``now_s`` (unix seconds)
    stamps a webhook's signature."""
    json = (("Content-Type", "application/json"), ("User-Agent", USER_AGENT))
    if notifier.kind == "webhook":
        body = webhook_body(alert, notifier.name)
        timestamp = str(int(now_s))
        signed = (
            (TIMESTAMP_HEADER, timestamp),
            (SIGNATURE_HEADER, signature(notifier.secret, timestamp, body)),
        )
        return Request(notifier.url, json + signed, body)
    if notifier.kind == "telegram":
        url = f"{notifier.api_base.rstrip('/')}/bot{notifier.bot_token}/sendMessage"
        return Request(url, json, orjson.dumps(telegram_message(notifier.chat_id, alert)))
    if notifier.kind == "discord":
        return Request(notifier.url, json, orjson.dumps(discord_message(alert)))
    raise ValueError(f"unknown notifier kind {notifier.kind!r}")


def telegram_message(chat_id: str, alert: Alert) -> dict[str, Any]:
    """The ``sendMessage`` parameters: the three lines, the headline bold (HTML)."""
    head, rule, chart = (html.escape(line, quote=False) for line in alert_lines(alert))
    chat: int | str = int(chat_id) if re.fullmatch(r"-?[0-9]+", chat_id) else chat_id
    return {
        "chat_id": chat,
        "text": f"<b>{head}</b>\n{rule}\n{chart}",
        "parse_mode": "HTML",
        "link_preview_options": {"is_disabled": True},
    }


def discord_message(alert: Alert) -> dict[str, Any]:
    """The webhook's JSON: the three lines, the headline bold, the link in ``<>`` (no
    embed preview); no mentions are parsed."""
    head, rule, chart = alert_lines(alert)
    text = f"**{_discord_escape(head)}**\n{_discord_escape(rule)}\n<{chart}>"
    return {"content": text, "allowed_mentions": {"parse": []}}


def _discord_escape(text: str) -> str:
    return _DISCORD_MARKDOWN.sub(r"\\\1", text)


# -- answers --------------------------------------------------------------------------


def classify(
    kind: str, status: int, headers: Mapping[str, str], body: bytes, now: float | None = None
) -> Verdict:
    """What an answer means for ``kind``'s service; ``headers`` have lower-case names;
    ``now`` (Unix seconds) reads a ``Retry-After`` given as an HTTP date."""
    if 200 <= status < 300:
        return Verdict(Outcome.DELIVERED, f"HTTP {status}")
    document = _json_object(body) if kind in ("telegram", "discord") else {}
    reason = f"HTTP {status}"
    detail = document.get("description" if kind == "telegram" else "message")
    if isinstance(detail, str) and detail:
        reason += f": {detail[:_REASON_CHARS]}"
    if status == 429 or 500 <= status < 600:
        return Verdict(Outcome.RETRY, reason, retry_after(kind, headers, document, now))
    if 300 <= status < 400:
        reason += " (redirects are not followed)"
    return Verdict(Outcome.FAILED, reason)


def network_error(reason: str) -> Verdict:
    return Verdict(Outcome.RETRY, reason)


def retry_after(
    kind: str, headers: Mapping[str, str], document: Mapping[str, Any], now: float | None = None
) -> float | None:
    """Seconds the service asked to wait: Telegram's ``parameters.retry_after``, Discord's
    ``retry_after``, else the ``Retry-After`` header: delta-seconds, or an HTTP date
    (the seconds from ``now`` until then, 0 if past; ignored without ``now``)."""
    asked: object = None
    if kind == "telegram":
        parameters = document.get("parameters")
        if isinstance(parameters, Mapping):
            asked = parameters.get("retry_after")
    elif kind == "discord":
        asked = document.get("retry_after")
    seconds = _seconds(asked)
    if seconds is not None:
        return seconds
    header = headers.get("retry-after")
    seconds = _seconds(header)
    if seconds is None and header and now is not None:
        seconds = _until(header, now)
    return seconds


def _until(date: str, now: float) -> float | None:
    """Seconds from ``now`` to an HTTP date (RFC 9110), 0 if it is past; None if unreadable."""
    try:
        when = email.utils.parsedate_to_datetime(date)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None  # an HTTP date is always GMT; one without a zone is not one
    return max(0.0, when.timestamp() - now)


def _seconds(value: object) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        if not re.fullmatch(r"\s*[0-9]+(?:\.[0-9]+)?\s*", value):
            return None
        value = float(value)
    if isinstance(value, int | float) and math.isfinite(value) and value >= 0:
        return float(value)
    return None


def _json_object(body: bytes) -> Mapping[str, Any]:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {}
    return document if isinstance(document, dict) else {}


def retry_delay(
    policy: BackoffPolicy, attempt: int, asked: float | None, rng: random.Random | None = None
) -> float:
    """Seconds before retry ``attempt`` (0-based): the jittered, capped backoff, or what
    the service asked for when longer, at most :data:`MAX_RETRY_AFTER_S`."""
    delay = policy.delay(attempt, rng)
    if asked is not None:
        delay = max(delay, asked)
    return min(delay, MAX_RETRY_AFTER_S)


def backoff_policy(notifier: NotifierSettings) -> BackoffPolicy:
    return BackoffPolicy(
        initial=notifier.retry_initial_s, cap=notifier.retry_max_s, multiplier=2.0, jitter=0.5
    )
