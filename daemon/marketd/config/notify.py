"""Settings of the notifiers (``notifications:``): where alerts are sent besides browsers.

A notifier is one named target of one kind: a generic signed ``webhook``, a ``telegram``
chat (Bot API ``sendMessage``) or a ``discord`` channel webhook. Each detection rule names
the notifiers its alerts go to (``alerts.rules[].notify``); :func:`notify_problems` checks
those names against this list, for the configuration and for rules changed at runtime.

Secrets (the webhook's signing ``secret``, the Telegram ``bot_token``, and ``url``, which
for Discord holds the webhook's token) are marked ``SECRET``: masked when the
configuration is shown, left out of ``repr``, and never quoted in a problem.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from typing import Any
from urllib.parse import urlsplit

import attrs

from marketd.config.validators import (
    SECRET,
    InvalidValue,
    Validator,
    _fail,
    _fail_relational,
    greater_than,
    one_of,
    url,
    within,
)

KINDS = ("webhook", "telegram", "discord")
TELEGRAM_API = "https://api.telegram.org"
# At most this many notifiers: each is a label value of marketd_notifications_total.
MAX_NOTIFIERS = 16
NAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,40}")
_TOKEN_RE = re.compile(r"[0-9]+:[A-Za-z0-9_-]+")
_CHAT_RE = re.compile(r"-?[0-9]+|@[A-Za-z][A-Za-z0-9_]{3,}")
_NAME_HELP = "1-40 of A-Z a-z 0-9 _ . -"


def notifier_name_problem(value: object) -> str | None:
    """What is wrong with a notifier name, or None (a rule's ``notify`` uses it too)."""
    if isinstance(value, str) and NAME_RE.fullmatch(value):
        return None
    return f"{value!r} is not a notifier name ({_NAME_HELP})"


def _name(_: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    if (problem := notifier_name_problem(value)) is not None:
        raise _fail(attribute, problem)


def _http_url_problem(value: str) -> str | None:
    """An http(s) URL with a host, else the problem (never quoting the value: a secret)."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018  (raises ValueError on a bad port)
    except ValueError:
        return "is not a valid URL (the value is secret and not shown)"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http:// or https:// URL with a host (the value is secret and not shown)"
    return None


def _only_for(kinds: tuple[str, ...], what: str) -> Validator:
    """The field is needed by ``kinds`` (``what`` says what for), its value well formed,
    and left empty by the other kinds."""

    def check(inst: NotifierSettings, attribute: attrs.Attribute[Any], value: str) -> None:
        if value and (problem := _shape_problem(attribute.name, value)) is not None:
            raise _fail(attribute, problem)
        if inst.kind not in KINDS:
            return  # the kind's own problem is reported
        shown = " or ".join(kinds)
        if inst.kind in kinds and not value:
            raise _fail_relational(attribute, f"is needed for kind {inst.kind} ({what})")
        if inst.kind not in kinds and value:
            raise _fail_relational(attribute, f"is only for kind {shown}, not {inst.kind}")

    return check


def _shape_problem(name: str, value: str) -> str | None:
    if name == "url":
        return _http_url_problem(value)
    if name == "bot_token" and not _TOKEN_RE.fullmatch(value):
        return "must look like 123456:ABC-DEF... (the value is secret and not shown)"
    if name == "chat_id" and not _CHAT_RE.fullmatch(value):
        return f"must be a numeric chat id or @channelname, got {value!r}"
    return None


def _api_base(inst: NotifierSettings, attribute: attrs.Attribute[Any], value: str) -> None:
    url("http", "https")(inst, attribute, value)
    if value != TELEGRAM_API and inst.kind in KINDS and inst.kind != "telegram":
        raise _fail_relational(attribute, f"is only for kind telegram, not {inst.kind}")


def _retry_max_s(inst: NotifierSettings, attribute: attrs.Attribute[Any], value: float) -> None:
    within(0, 3600, low_open=True)(inst, attribute, value)
    if value < inst.retry_initial_s:
        raise _fail_relational(
            attribute, f"must be >= retry_initial_s ({inst.retry_initial_s:g}), got {value!r}"
        )


@attrs.frozen
class NotifierSettings:
    """One notification target; which keys it needs depends on ``kind`` (see
    ``conf/marketd.yaml``)."""

    # Unique name, used by alerts.rules[].notify and as a metrics label.
    name: str = attrs.field(validator=_name)
    # webhook | telegram | discord.
    kind: str = attrs.field(validator=one_of(KINDS))
    # webhook, discord: where to POST. Secret (a Discord webhook URL holds its token).
    url: str = attrs.field(
        default="", repr=False, metadata=SECRET,
        validator=_only_for(("webhook", "discord"), "the URL to POST to"),
    )  # fmt: skip
    # webhook: the HMAC-SHA256 key of X-Marketd-Signature. Secret.
    secret: str = attrs.field(
        default="", repr=False, metadata=SECRET,
        validator=_only_for(("webhook",), "the key that signs each request"),
    )  # fmt: skip
    # telegram: the bot's token (from @BotFather). Secret.
    bot_token: str = attrs.field(
        default="", repr=False, metadata=SECRET,
        validator=_only_for(("telegram",), "the bot's token"),
    )  # fmt: skip
    # telegram: the chat to post to: a numeric id (quoted in YAML) or @channelname.
    chat_id: str = attrs.field(
        default="", validator=_only_for(("telegram",), "the chat to post to")
    )
    # telegram: the Bot API's base URL.
    api_base: str = attrs.field(default=TELEGRAM_API, validator=_api_base)
    # Seconds one request may take (connect, send, answer).
    timeout_s: float = attrs.field(default=10.0, validator=within(0, 300, low_open=True))
    # Alerts waiting for this notifier; when full, new ones are dropped (counted).
    max_queue: int = attrs.field(default=100, validator=within(1, 100_000))
    # Retries of one alert after network errors, 5xx and 429 (other answers: none).
    max_retries: int = attrs.field(default=5, validator=within(0, 100))
    # Backoff between retries: first delay, and the cap (doubling, with jitter).
    retry_initial_s: float = attrs.field(default=1.0, validator=greater_than(0))
    retry_max_s: float = attrs.field(default=60.0, validator=_retry_max_s)

    def target(self) -> str:
        """Where this notifier sends, as logs may show it: scheme://host[:port], no path
        (a Discord or Telegram path holds a token)."""
        base = self.api_base if self.kind == "telegram" else self.url
        try:
            parts = urlsplit(base)
            port = f":{parts.port}" if parts.port else ""
        except ValueError:
            return "(invalid URL)"
        host = parts.hostname or ""
        host = f"[{host}]" if ":" in host else host
        return f"{parts.scheme}://{host}{port}"


def check_notifiers(notifiers: Iterable[NotifierSettings]) -> list[str]:
    """Problems with the list as a whole (each notifier checks its own keys)."""
    notifiers = tuple(notifiers)
    problems = []
    if len(notifiers) > MAX_NOTIFIERS:
        problems.append(f"at most {MAX_NOTIFIERS} notifiers, got {len(notifiers)}")
    seen: set[str] = set()
    for notifier in notifiers:
        if notifier.name in seen:
            problems.append(f"notifier {notifier.name!r} is given twice (names must be unique)")
        seen.add(notifier.name)
    return problems


def notify_problems(
    notify: Iterable[tuple[str, tuple[str, ...]]], notifiers: Collection[str]
) -> list[str]:
    """Problems with the notifier names rules give: ``notify`` holds (where, names) per
    rule, e.g. ``("rules[0].notify", ("ops",))``; ``notifiers`` are the configured names."""
    known = ", ".join(sorted(notifiers)) or "none are configured"
    return [
        f"{where}: {name!r} is not a notifier (notifications: {known})"
        for where, names in notify
        for name in names
        if name not in notifiers
    ]


def notify_names(_: Any, attribute: attrs.Attribute[Any], value: tuple[str, ...]) -> None:
    """A rule's ``notify``: notifier names, each once (whether they exist is checked
    against ``notifications`` by :func:`notify_problems`)."""
    problems = [p for name in value if (p := notifier_name_problem(name)) is not None]
    seen: set[str] = set()
    for name in value:
        if name in seen:
            problems.append(f"{name!r} is given twice")
        seen.add(name)
    if problems:
        raise InvalidValue(attribute.name, problems)
