"""The detection rules in force, changeable at runtime and kept across restarts (no trio).

At start the rules come from ``<state_dir>/rules.json`` if that file exists (rules changed
at runtime win over the configuration), else from ``alerts.rules``;
:attr:`RulesStore.source` and :func:`describe_rules` say which, for the start-up log and
``check-config``. :meth:`RulesStore.replace` validates a new rule set with the same checks
as the configuration (each field's range, unique names, at least one rule, at most
``MAX_RULES``), writes it atomically (a temporary file in the same directory, fsync,
rename, fsync of the directory) and bumps :attr:`RulesStore.version`; the detector service
applies a new version at its next batch. :meth:`RulesStore.refresh` re-reads the file when
another process (a gateway with the same ``state_dir``) changed it.

The accepted shape is a JSON list of rules, or ``{"rules": [...]}``; each rule is an object
with ``name`` (required), ``kind``, ``window_s``, ``threshold_pct``, ``cooldown_s``,
``multiple``, ``baseline_s``, ``min_notional``, ``notify`` (a list of notifier names) and
the filters ``symbols``, ``exclude`` (lists of globs), ``markets`` (a list) and
``min_quote_volume_24h``; defaults as in the configuration when omitted. Numbers may be
given as strings. A store given the configured notifier names (``notifications``) refuses
a rule naming another one.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import attrs

from marketd.config.alerts import AlertSettings, RuleSettings, check_rules
from marketd.config.load import make_converter
from marketd.config.notify import notify_problems
from marketd.config.validators import InvalidValue
from marketd.statefile import write_atomically

RULES_FILE = "rules.json"
_CONVERTER = make_converter()
_FIELDS = {f.name: f for f in attrs.fields(attrs.resolve_types(RuleSettings))}
_TYPES: dict[str, Any] = {n: f.type for n, f in _FIELDS.items()}
# The list fields of a rule, and what their items are (for the message of a non-list).
_LISTS = {
    "notify": "notifier names",
    "symbols": "symbol globs",
    "exclude": "symbol globs",
    "markets": "markets",
}


class RulesError(ValueError):
    """A rule set is invalid; the message names each bad field (``rules[0].window_s: ...``)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


def parse_rules(raw: object, notifiers: Collection[str] | None = None) -> tuple[RuleSettings, ...]:
    """Validate ``raw`` (a list of rule objects, or ``{"rules": [...]}``) into rules;
    with ``notifiers`` (the configured names), each rule's ``notify`` must name them."""
    if isinstance(raw, Mapping):
        extra = sorted(str(k) for k in raw if k != "rules")
        if extra or "rules" not in raw:
            raise RulesError([f'expected {{"rules": [...]}}, got keys {sorted(map(str, raw))}'])
        raw = raw["rules"]
    if not isinstance(raw, list | tuple):
        raise RulesError([f"rules: expected a list of rules, got {type(raw).__name__}"])
    rules: list[RuleSettings] = []
    problems: list[str] = []
    for index, item in enumerate(raw):
        rule, found = _parse_rule(item, f"rules[{index}]")
        problems += found
        if rule is not None:
            rules.append(rule)
    if not problems:
        problems += [f"rules: {p}" for p in check_rules(tuple(rules))]
    if not problems and notifiers is not None:
        named = [(f"rules[{i}].notify", rule.notify) for i, rule in enumerate(rules)]
        problems += notify_problems(named, notifiers)
    if problems:
        raise RulesError(problems)
    return tuple(rules)


def _parse_rule(item: object, path: str) -> tuple[RuleSettings | None, list[str]]:
    if not isinstance(item, Mapping):
        return None, [
            f"{path}: expected an object with name, window_s, threshold_pct, cooldown_s, ..."
        ]
    problems = [
        f"{path}.{key}: unknown key (known: {', '.join(_FIELDS)})"
        for key in item
        if key not in _FIELDS
    ]
    if "name" not in item:
        problems.append(f"{path}.name: required")
    values: dict[str, Any] = {}
    for name in _FIELDS:
        if name not in item:
            continue
        if name in _LISTS and not _names(item[name]):
            problems.append(f"{path}.{name}: expected a list of {_LISTS[name]}")
            continue
        try:
            values[name] = _CONVERTER.structure(item[name], _TYPES[name])
        except (TypeError, ValueError) as exc:
            problems.append(f"{path}.{name}: {exc}")
    if problems:
        return None, problems
    with attrs.validators.disabled():
        rule = RuleSettings(**values)
    for field in _FIELDS.values():
        if field.validator is None:
            continue
        try:
            field.validator(rule, field, getattr(rule, field.name))
        except InvalidValue as exc:
            problems += [f"{path}.{field.name}: {p}" for p in exc.problems]
    return (None if problems else rule), problems


def _names(value: object) -> bool:
    return isinstance(value, list | tuple) and all(isinstance(v, str) for v in value)


# Left out of the saved file at their defaults, so a file that does not use them stays
# readable by a marketd that predates them (a rollback).
_OPTIONAL = (
    "kind", "notify", "symbols", "exclude", "markets", "min_quote_volume_24h", "multiple",
    "baseline_s", "min_notional",
)  # fmt: skip


def rules_to_json(rules: tuple[RuleSettings, ...]) -> list[dict[str, Any]]:
    """The saved file's rules; the optional fields (``notify`` and the filters) only when
    a rule sets them."""
    return [
        attrs.asdict(
            r, filter=lambda field, value: field.name not in _OPTIONAL or value != field.default
        )
        for r in rules
    ]


def rule_text(rule: RuleSettings) -> str:
    """``name: 2% in 60s, cooldown 30s`` (``, notify a, b``, then the filters:
    ``, symbols BTC*|ETH*, not *DOWN*, usdm only, min 24h quote vol 5e+07``): a rule as an
    operator reads it."""
    text = f"{rule.name}: {_condition(rule)}, cooldown {rule.cooldown_s:g}s"
    if rule.notify:
        text += f", notify {', '.join(rule.notify)}"
    if rule.symbols:
        text += f", symbols {'|'.join(rule.symbols)}"
    if rule.exclude:
        text += f", not {'|'.join(rule.exclude)}"
    if rule.markets:
        text += f", {'|'.join(rule.markets)} only"
    if rule.min_quote_volume_24h:
        text += f", min 24h quote vol {rule.min_quote_volume_24h:g}"
    return text


def _condition(rule: RuleSettings) -> str:
    """What makes ``rule`` fire, in a few words."""
    if rule.kind == "volume":
        text = f"volume {rule.multiple:g}x in {rule.window_s:g}s vs {rule.baseline_s:g}s before"
        return text + (f", at least {rule.min_notional:g}" if rule.min_notional else "")
    if rule.kind == "liquidation":
        return f"liquidations over {rule.min_notional:g} in {rule.window_s:g}s"
    if rule.kind == "premium":
        return f"mark vs index beyond {rule.threshold_pct:g}%"
    if rule.kind == "funding":
        return f"funding rate beyond {rule.threshold_pct:g}%"
    return f"{rule.threshold_pct:g}% in {rule.window_s:g}s"


CONFIG = "config"
SAVED = "saved"


class RulesStore:
    """The rule set in force; see the module doc."""

    def __init__(
        self, settings: AlertSettings, *, notifiers: Collection[str] | None = None
    ) -> None:
        self.path = Path(settings.state_dir) / RULES_FILE
        # The configured notifier names a rule may give in ``notify`` (None: not checked).
        self.notifiers = None if notifiers is None else frozenset(notifiers)
        self.version = 0
        self._stamp: tuple[int, int] | None = None
        self.configured = settings.rules
        self._rules = settings.rules
        # Where the rules in force came from: the configuration, or the saved file (which
        # a change at runtime writes, and which then wins at every start).
        self.source = CONFIG
        if self.path.exists():
            self._rules = self._load()
            self.source = SAVED

    def rules(self) -> tuple[RuleSettings, ...]:
        return self._rules

    def replace(self, raw: object) -> tuple[RuleSettings, ...]:
        """Validate, persist and apply a new rule set; :class:`RulesError` if invalid
        (nothing changes then). ``OSError`` if it cannot be written (nothing changes)."""
        rules = parse_rules(raw, self.notifiers)
        self._write(rules)
        self._rules = rules
        self.source = SAVED
        self.version += 1
        return rules

    def provenance(self) -> dict[str, Any]:
        """The rules in force and where they came from, as log fields."""
        fields: dict[str, Any] = {
            "rules": [rule_text(r) for r in self._rules],
            "source": self.source,
        }
        if self.source == SAVED:
            fields["path"] = str(self.path)
            fields["overrides_config"] = self._rules != self.configured
        return fields

    def refresh(self) -> bool:
        """Re-read the file if another process changed it; True when the rules changed.
        A file that became invalid is ignored (the rules in force stay) and reported."""
        stamp = self._file_stamp()
        if stamp is None or stamp == self._stamp:
            return False
        try:
            rules = self._load()
        except RulesError:
            self._stamp = stamp  # report once per change of the file
            raise
        if rules == self._rules:
            return False
        self._rules = rules
        self.version += 1
        return True

    def _file_stamp(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def _load(self) -> tuple[RuleSettings, ...]:
        stamp = self._file_stamp()
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise RulesError(
                [f"{self.path}: cannot read the saved rules: {exc}; fix or delete the file"]
            ) from None
        try:
            rules = parse_rules(raw, self.notifiers)
        except RulesError as exc:
            problems = [f"{self.path}: {p}" for p in exc.problems]
            problems.append(f"{self.path}: fix or delete the file (rules then come from config)")
            raise RulesError(problems) from None
        self._stamp = stamp
        return rules

    def _write(self, rules: tuple[RuleSettings, ...]) -> None:
        write_atomically(self.path, json.dumps({"rules": rules_to_json(rules)}, indent=2) + "\n")
        self._stamp = self._file_stamp()


def describe_rules(settings: AlertSettings, notifiers: Collection[str] | None = None) -> list[str]:
    """What ``check-config`` says about the rules the detector would run: those in force
    and where from, then (``warning: ``) whether a saved file overrides the configured
    ones or cannot be used (with ``notifiers``, the configured notifier names, checked as
    ``marketd run`` checks them)."""
    try:
        store = RulesStore(settings, notifiers=notifiers)
    except RulesError as exc:
        return [f"warning: the saved rules cannot be used, so the detector will not start: {p}"
                for p in exc.problems]  # fmt: skip
    rules = "; ".join(rule_text(r) for r in store.rules())
    if store.source == CONFIG:
        return [f"rules in force (from alerts.rules): {rules}"]
    lines = [f"rules in force (from the saved file {store.path}): {rules}"]
    if store.rules() != store.configured:
        configured = "; ".join(rule_text(r) for r in store.configured)
        lines.append(
            f"warning: the saved file {store.path} overrides alerts.rules ({configured}); "
            "delete it to run the configured rules"
        )
    return lines
