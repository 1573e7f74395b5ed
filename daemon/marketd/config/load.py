"""Load the configuration: a YAML file overlaid by ``MARKETD_*`` environment variables.

Pure except for reading the one file. The steps:

1. read the YAML file (``--config``, else ``$MARKETD_CONFIG``, else none: all defaults),
   remembering the line of every key so problems can say where a value came from;
2. overlay environment variables ``MARKETD_<SECTION>__<KEY>`` (more ``__`` for deeper
   keys, key part case-insensitive); each value is a string converted to the field's type;
3. structure each section with a strict :class:`cattrs.Converter` (unknown keys and wrong
   types are problems), with attrs validators disabled;
4. run every field validator of :mod:`marketd.config.settings` to collect the range problems.

Every problem found is reported at once in one :class:`~marketd.errors.ConfigError`,
each naming the dotted key (``kafka.linger_ms``, ``subscriptions[1].market``), what is
wrong and, when known, the file line or environment variable the value came from.
"""

from __future__ import annotations

import copy
import difflib
import enum
import math
import re
import typing
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TextIO

import attrs
import cattrs
import yaml
from cattrs.cols import homogenous_tuple_structure_factory
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError, IterableValidationError
from cattrs.gen import make_dict_structure_fn

from marketd.config.checks import warnings
from marketd.config.settings import Settings
from marketd.config.validators import InvalidValue
from marketd.errors import ConfigError
from marketd.roles import describe_roles

ENV_PREFIX = "MARKETD_"
ENV_CONFIG = "MARKETD_CONFIG"
"""Names the configuration file when ``--config`` is not given; not a configuration key."""
ENV_SEPARATOR = "__"
MASK = "***"
EXIT_INVALID_CONFIG = 2

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


# --- where values came from ----------------------------------------------------------


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _parent(path: str) -> str:
    """``a[1].b`` → ``a[1]`` → ``a`` → ``""``."""
    cut = max(path.rfind("."), path.rfind("["))
    return path[:cut] if cut > 0 else ""


def _ancestors(path: str) -> Iterator[str]:
    """``a[1].b`` → ``a[1].b``, ``a[1]``, ``a``."""
    while path:
        yield path
        path = _parent(path)


@attrs.define
class _Sources:
    """Dotted key → where its value was set (``file:line`` or an environment variable)."""

    where: dict[str, str] = attrs.field(factory=dict)

    def set(self, path: str, source: str) -> None:
        for key in [k for k in self.where if k.startswith((f"{path}.", f"{path}["))]:
            del self.where[key]
        self.where[path] = source

    def of(self, path: str) -> str | None:
        return next((self.where[p] for p in _ancestors(path) if p in self.where), None)

    def problem(self, path: str, problem: str) -> str:
        source = self.of(path)
        line = f"{path}: {problem}" if path else problem
        return f"{line} ({source})" if source else line


# --- reading the file ----------------------------------------------------------------


def _read_yaml(path: Path, named_by: str) -> tuple[Any, _Sources, list[str]]:
    """The document, the line of each key, and problems such as keys given twice."""
    shown = f"{path} (named by {named_by})" if named_by else str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        problem = f"{shown}: cannot read the configuration file: {exc.strerror or exc}"
        raise ConfigError([problem]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{shown}: not UTF-8 text (byte {exc.start}: {exc.reason})"]) from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = None if node is None else loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = exc.problem or exc.context or "syntax error"
        raise ConfigError([f"{where}: invalid YAML: {problem}"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"{shown}: invalid YAML: {exc}"]) from None
    finally:
        loader.dispose()
    sources = _Sources()
    problems: list[str] = []
    if node is not None:
        _note_lines(node, "", str(path), sources, problems)
    return data, sources, problems


def _note_lines(
    node: yaml.Node, path: str, file: str, sources: _Sources, problems: list[str]
) -> None:
    if isinstance(node, yaml.MappingNode):
        first_line: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            key_path = _join(path, key)
            if key in first_line:
                problems.append(
                    f"{key_path}: given twice ({file}:{first_line[key]} and {file}:{line})"
                )
            first_line.setdefault(key, line)
            sources.where[key_path] = f"{file}:{line}"
            _note_lines(value_node, key_path, file, sources, problems)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            item_path = f"{path}[{index}]"
            sources.where[item_path] = f"{file}:{item.start_mark.line + 1}"
            _note_lines(item, item_path, file, sources, problems)


# --- the converter -------------------------------------------------------------------


def _describe(value: object) -> str:
    if value is None:
        return "nothing (an empty value)"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return repr(value)


def _structure_str(value: object, _: type) -> str:
    if isinstance(value, str):
        return value
    raise TypeError(f"expected a string, got {_describe(value)}")


def _structure_int(value: object, _: type) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*[-+]?[0-9_]+\s*", value):
        try:
            return int(value)
        except ValueError:
            pass
    raise TypeError(f"expected an integer, got {_describe(value)}")


def _structure_float(value: object, _: type) -> float:
    number: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            number = None
    if number is None or not math.isfinite(number):
        raise TypeError(f"expected a number, got {_describe(value)}")
    return number


def _structure_bool(value: object, _: type) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    raise TypeError(f"expected a boolean (true/false, yes/no, on/off, 1/0), got {_describe(value)}")


def _is_enum(t: Any) -> bool:
    return isinstance(t, type) and issubclass(t, enum.Enum)


def _enum_hook(t: type[enum.Enum]) -> Callable[[object, type], enum.Enum]:
    values = ", ".join(str(member.value) for member in t)

    def structure(value: object, _: type) -> enum.Enum:
        if isinstance(value, t):
            return value
        if isinstance(value, str):
            for member in t:
                if str(member.value).lower() == value.strip().lower():
                    return member
        raise ValueError(f"expected one of {values}, got {_describe(value)}")

    return structure


def _is_homogeneous_tuple(t: Any) -> bool:
    args = typing.get_args(t)
    return typing.get_origin(t) is tuple and len(args) == 2 and args[1] is Ellipsis


def _list_from_text(text: str, scalar_items: bool) -> object:
    """An environment value for a list: YAML/JSON text, or comma-separated scalars."""
    stripped = text.strip()
    if not stripped:
        return []
    if scalar_items and not stripped.startswith("["):
        return [part.strip() for part in stripped.split(",") if part.strip()]
    try:
        parsed = yaml.safe_load(stripped)
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc)
        raise ValueError(f"not a YAML/JSON list: {problem}") from None
    return [] if parsed is None else parsed


def _tuple_hook(t: Any, converter: cattrs.Converter) -> Callable[[object, type], tuple[Any, ...]]:
    base = homogenous_tuple_structure_factory(t, converter)
    item_type = typing.get_args(t)[0]
    scalar_items = not attrs.has(item_type)

    def structure(value: object, _: type) -> tuple[Any, ...]:
        if isinstance(value, str):
            value = _list_from_text(value, scalar_items)
        if not isinstance(value, list | tuple):
            raise TypeError(f"expected a list, got {_describe(value)}")
        return tuple(base(value, t))

    return structure


def _attrs_hook(cls: type[Any], converter: cattrs.Converter) -> Callable[[object, type], Any]:
    base = make_dict_structure_fn(cls, converter)

    def structure(value: object, _: type) -> Any:
        if value is None:  # a section with every key commented out
            value = {}
        if not isinstance(value, Mapping):
            raise TypeError(f"expected a mapping of keys, got {_describe(value)}")
        return base(value, cls)

    return structure


def make_converter() -> cattrs.Converter:
    """The strict converter: unknown keys and wrong types are errors.

    Strings are accepted for every scalar type (environment values are strings): ints,
    floats, bools (true/false/yes/no/on/off/1/0), enums by value; lists also from YAML
    flow (``[a, b]``) or comma-separated text.
    """
    converter = cattrs.Converter(forbid_extra_keys=True)
    converter.register_structure_hook(str, _structure_str)
    converter.register_structure_hook(int, _structure_int)
    converter.register_structure_hook(float, _structure_float)
    converter.register_structure_hook(bool, _structure_bool)
    converter.register_structure_hook_factory(_is_enum, _enum_hook)
    converter.register_structure_hook_factory(_is_homogeneous_tuple, _tuple_hook)
    converter.register_structure_hook_factory(attrs.has, _attrs_hook)
    return converter


_CONVERTER = make_converter()


# --- the shape of Settings -----------------------------------------------------------


def _is_class(t: Any) -> bool:
    return isinstance(t, type) and attrs.has(t)


def _is_list_of_classes(t: Any) -> bool:
    return _is_homogeneous_tuple(t) and _is_class(typing.get_args(t)[0])


def _fields(cls: type[Any]) -> tuple[attrs.Attribute[Any], ...]:
    return tuple(attrs.fields(attrs.resolve_types(cls)))


def _leaf_paths(cls: Any, path: str = "") -> Iterator[str]:
    """Every key that holds a value (not a section): ``kafka.retry.max_s``, ``subscriptions``."""
    for field in _fields(cls):
        key = _join(path, field.name)
        if _is_class(field.type):
            yield from _leaf_paths(field.type, key)
        else:
            yield key


def env_name(path: str) -> str:
    """``kafka.retry.max_s`` → ``MARKETD_KAFKA__RETRY__MAX_S``."""
    return ENV_PREFIX + path.upper().replace(".", ENV_SEPARATOR)


def _suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.7)
    return f" (did you mean {close[0]}?)" if close else ""


# --- the environment overlay ---------------------------------------------------------


def _env_key(name: str) -> tuple[str | None, str]:
    """The dotted key an environment variable sets, or None and the problem."""
    segments = name[len(ENV_PREFIX) :].lower().split(ENV_SEPARATOR)
    cls: Any = Settings
    path = ""
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        field = next((f for f in _fields(cls) if f.name == segment), None)
        if field is None:
            known = [env_name(p) for p in _leaf_paths(Settings)]
            what = _join(path, segment) if segment else "an empty key part"
            return None, f"{name}: no such configuration key {what}{_suggest(name, known)}"
        path = _join(path, segment)
        if _is_class(field.type):
            if last:
                return None, f"{name}: {path} is a section; set its keys as {name}__<KEY>"
            cls = field.type
        elif not last:
            if _is_list_of_classes(field.type):
                how = f"set the whole list as YAML/JSON text in {env_name(path)}"
            else:
                how = f"set {env_name(path)}"
            return None, f"{name}: {path} is a value, not a section; {how}"
    return path, ""


def _overlay_env(raw: dict[str, Any], environ: Mapping[str, str], sources: _Sources) -> list[str]:
    problems: list[str] = []
    set_by: dict[str, str] = {}
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX) or name.upper() == ENV_CONFIG:
            continue
        path, problem = _env_key(name)
        if path is None:
            problems.append(problem)
            continue
        if path in set_by:
            problems.append(f"{name}: {path} is also set by {set_by[path]}; keep one")
            continue
        set_by[path] = name
        *parents, leaf = path.split(".")
        node = raw
        for key in parents:
            child = node.get(key)
            if child is None:
                child = node[key] = {}
            if not isinstance(child, dict):
                break  # the file's own type error for this section is reported
            node = child
        else:
            node[leaf] = environ[name]
            sources.set(path, f"from {name}")
    return problems


# --- structuring and validation ------------------------------------------------------


def _cattrs_problems(exc: BaseException, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(exc, ClassValidationError):
        with_notes, without = exc.group_exceptions()
        secrets = {f.name for f in _fields(exc.cl) if f.metadata.get("secret")}
        for inner, note in with_notes:
            if note.name in secrets:  # the converter's message would quote the value
                yield _join(path, note.name), "must be a string (the value is secret, not shown)"
                continue
            yield from _cattrs_problems(inner, _join(path, note.name))
        for inner in without:
            yield from _cattrs_problems(inner, path)
    elif isinstance(exc, IterableValidationError):
        with_index, without = exc.group_exceptions()
        for inner, index_note in with_index:
            yield from _cattrs_problems(inner, f"{path}[{index_note.index}]")
        for inner in without:
            yield from _cattrs_problems(inner, path)
    elif isinstance(exc, ForbiddenExtraKeysError):
        known = [f.name for f in _fields(exc.cl)]
        for key in sorted(exc.extra_fields, key=str):
            yield _join(path, str(key)), f"unknown key{_suggest(str(key), known)}"
    elif isinstance(exc, KeyError):
        yield path, "required key is missing"
    else:
        yield path, str(exc)


def _validate(obj: Any, path: str) -> Iterator[tuple[str, str, bool]]:
    """Run every attrs validator below ``obj``, collecting instead of stopping.

    Yields (key, problem, relational): relational problems compare with sibling keys.
    """
    for field in _fields(type(obj)):
        value = getattr(obj, field.name)
        key = _join(path, field.name)
        if field.validator is not None:
            try:
                field.validator(obj, field, value)
            except InvalidValue as exc:
                for problem in exc.problems:
                    yield (path if exc.whole else key), problem, problem in exc.relational
            except (TypeError, ValueError) as exc:
                yield key, str(exc), False
        if attrs.has(type(value)):
            yield from _validate(value, key)
        elif isinstance(value, tuple):
            for index, item in enumerate(value):
                if attrs.has(type(item)):
                    yield from _validate(item, f"{key}[{index}]")


def _with_defaults(default: Any, given: Any) -> Any:
    """``given`` over ``default``, mapping by mapping: a partial section keeps the rest of
    its defaults (``kafka.retry`` defaults differ from ``BackoffSettings()``); an empty
    section (every key commented out) is all defaults; lists are replaced whole."""
    if isinstance(default, dict) and given is None:
        return copy.deepcopy(default)
    if isinstance(default, dict) and isinstance(given, dict):
        merged = copy.deepcopy(default)
        for key, value in given.items():
            merged[key] = _with_defaults(default[key], value) if key in default else value
        return merged
    return copy.deepcopy(given)


def _reset(value: Any, default: Any, relative: str) -> tuple[Any, bool]:
    """``value`` with the key at ``relative`` back to its default (an unknown key removed;
    a bad list item resets its whole list). Returns whether anything changed."""
    keys = [k for k in relative.split("[", 1)[0].split(".") if k]
    if not keys:  # the whole value; a list item has no default to fall back on
        changed = default is not None and value != default
        return (copy.deepcopy(default), True) if changed else (value, False)
    node, base = value, default
    for key in keys[:-1]:
        node = node.get(key) if isinstance(node, dict) else None
        base = base.get(key) if isinstance(base, dict) else None
    last = keys[-1]
    if not isinstance(node, dict) or last not in node:
        return value, False
    if isinstance(base, dict) and last in base:
        if node[last] == base[last]:
            return value, False
        node[last] = copy.deepcopy(base[last])
    else:
        del node[last]
    return value, True


def _structure_checked(
    value: Any, default: Any, cls: Any, path: str
) -> tuple[Any, list[tuple[str, str]]]:
    """Structure ``value`` as ``cls`` and run its validators, collecting every problem.

    A key that fails to structure is reset to its default and structuring is retried,
    so range problems elsewhere in the section are still found. Problems comparing a
    key with a sibling that was reset are left out: the default may have caused them.
    """
    problems: list[tuple[str, str]] = []
    failed: set[str] = set()
    attempt = _with_defaults(default, value)
    for _ in range(8):  # each round resets at least one key, so this ends
        try:
            obj = _CONVERTER.structure(attempt, cls)
        except Exception as exc:
            found = [p for p in _cattrs_problems(exc, path) if p[0] not in failed]
            problems += found
            changed = False
            for key, _ in found:
                failed.add(key)
                attempt, reset = _reset(attempt, default, key[len(path) :].lstrip("."))
                changed = changed or reset
            if not changed:
                return None, problems
            continue
        break
    else:
        return None, problems
    near_failed = {_parent(key) for key in failed}
    if attrs.has(type(obj)):
        for key, problem, relational in _validate(obj, path):
            reset_nearby = key in failed or (
                relational and (key in near_failed or _parent(key) in near_failed)
            )
            if not reset_nearby:
                problems.append((key, problem))
    return (None if problems else obj), problems


def _structure_list(value: Any, item_type: Any, path: str) -> tuple[Any, list[tuple[str, str]]]:
    """A list of classes (``subscriptions``), item by item; text is parsed as YAML/JSON."""
    if isinstance(value, str):
        try:
            value = _list_from_text(value, scalar_items=False)
        except ValueError as exc:
            return None, [(path, str(exc))]
    if not isinstance(value, list | tuple):
        return None, [(path, f"expected a list, got {_describe(value)}")]
    items, problems = [], []
    for index, item in enumerate(value):
        structured, found = _structure_checked(item, None, item_type, f"{path}[{index}]")
        items.append(structured)
        problems += found
    return (None if problems else tuple(items)), problems


def _build(raw: dict[str, Any], sources: _Sources) -> tuple[Settings | None, list[str]]:
    fields = _fields(Settings)
    names = [f.name for f in fields]
    problems = [
        sources.problem(str(key), f"unknown section{_suggest(str(key), names)}")
        for key in raw
        if key not in names
    ]
    defaults = to_plain(Settings(), mask=False)
    good: dict[str, Any] = {}
    with attrs.validators.disabled():
        for field in fields:
            if field.name not in raw:
                continue
            if _is_list_of_classes(field.type):
                item_type = typing.get_args(field.type)[0]
                value, found = _structure_list(raw[field.name], item_type, field.name)
            else:
                given, default = raw[field.name], defaults[field.name]
                value, found = _structure_checked(given, default, field.type, field.name)
            problems += [sources.problem(path, problem) for path, problem in found]
            if not found:
                good[field.name] = value
        draft = Settings(**good)
    # A section that failed is left at its defaults in the draft: checks comparing with
    # it (``roles`` against ``kafka``) would only report what the default causes.
    failed = any(f.name in raw and f.name not in good for f in fields)
    for field in fields:  # the checks on Settings' own fields (sections were checked above)
        if field.name in good and field.validator is not None:
            try:
                field.validator(draft, field, getattr(draft, field.name))
            except InvalidValue as exc:
                shown = [p for p in exc.problems if not (failed and p in exc.relational)]
                problems += [sources.problem(field.name, p) for p in shown]
    if problems:
        return None, problems
    return Settings(**good), []


# --- the API -------------------------------------------------------------------------


def config_path(path: Path | None, environ: Mapping[str, str]) -> tuple[Path | None, str]:
    """The file to read: ``path`` (``--config``), else ``$MARKETD_CONFIG``, else none."""
    if path is not None:
        return path, ""
    named = environ.get(ENV_CONFIG, "").strip()
    return (Path(named), ENV_CONFIG) if named else (None, "")


def load_settings(path: Path | None, environ: Mapping[str, str]) -> Settings:
    """The effective configuration: defaults ← YAML file ← ``MARKETD_*`` environment.

    ``path`` is ``--config``; when None, ``$MARKETD_CONFIG`` names the file, and without
    it every key has its default. Raises :class:`ConfigError` listing every problem.
    """
    file, named_by = config_path(path, environ)
    raw: Any = None
    sources = _Sources()
    problems: list[str] = []
    if file is not None:
        raw, sources, problems = _read_yaml(file, named_by)
    if raw is None:  # an empty file
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(
            [f"{file}: the top level must be a mapping of sections, got {_describe(raw)}"]
        )
    problems += _overlay_env(raw, environ, sources)
    settings, found = _build(raw, sources)
    problems += found
    if problems or settings is None:
        raise ConfigError(problems)
    return settings


def to_plain(value: object, *, mask: bool = True) -> Any:
    """Settings as plain YAML-able data; secrets set are shown as ``"***"`` when masking."""
    if attrs.has(type(value)):
        plain = {}
        for field in _fields(type(value)):
            item = getattr(value, field.name)
            secret = mask and field.metadata.get("secret", False) and item
            plain[field.name] = MASK if secret else to_plain(item, mask=mask)
        return plain
    if isinstance(value, list | tuple):
        return [to_plain(item, mask=mask) for item in value]
    if isinstance(value, enum.Enum):
        return value.value
    return value


class _Dumper(yaml.SafeDumper):
    """Block style, except lists of plain values: ``symbols: [BTCUSDT, ETHUSDT]``."""


def _represent_list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    flow = all(not isinstance(item, dict | list) for item in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    # YAML reads NEL and the Unicode line/paragraph separators written as they are as
    # line breaks; only the double-quoted style escapes them.
    style = '"' if any(c in data for c in "\x85\u2028\u2029") else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(list, _represent_list)
_Dumper.add_representer(str, _represent_str)


def render_settings(settings: Settings) -> str:
    """The effective configuration as YAML, secrets masked; loading it gives ``settings``
    back (unless a secret was masked)."""
    return yaml.dump(
        to_plain(settings),
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=100,
    )


def check_config(
    path: Path | None,
    environ: Mapping[str, str],
    out: TextIO,
    notes: Callable[[Settings], list[str]] | None = None,
) -> int:
    """``marketd check-config``: print the effective configuration (0) or the problems (2).

    ``notes`` adds comment lines about a valid configuration that the configuration layer
    cannot know itself (the rules a saved file puts in force: :mod:`marketd.alerts.rules`).
    """
    try:
        settings = load_settings(path, environ)
    except ConfigError as exc:
        out.write("error: invalid configuration\n")
        out.writelines(f"  {problem}\n" for problem in exc.problems)
        return EXIT_INVALID_CONFIG
    out.write(f"# {describe(settings)}\n")
    out.writelines(f"# warning: {warning}\n" for warning in warnings(settings))
    if notes is not None:
        out.writelines(f"# {note}\n" for note in notes(settings))
    out.write(render_settings(settings))
    return 0


def describe(settings: Settings) -> str:
    """What the configuration runs, in one line (see :mod:`marketd.roles`)."""
    return describe_roles(
        settings.roles,
        alerts_enabled=settings.alerts.enabled,
        alerts_source=settings.alerts.source,
        kafka_enabled=settings.kafka.enabled,
        recording=settings.recorder.directory if settings.recorder.enabled else None,
        sharded=settings.collector.shards > 1 and not settings.collector.worker,
    )
