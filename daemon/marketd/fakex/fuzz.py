"""Frames for the ``fuzz`` fault: real frames, mutated so that none is usable (pure, no trio).

Each fuzzed frame starts from a valid frame of a stream the connection carries (``FuzzBase``:
a payload exactly as the fake prints it, wrapped as a combined-stream frame when the
connection is combined) and applies one mutation. Every mutation class is invalid **by
construction** for a Binance client that checks what Binance documents (JSON syntax, the
combined-stream envelope, the payload's required keys and their types, integer ids and
times within int64 and not negative, prices and quantities as decimal strings): no fuzzed
frame can decode as a plausible event with a changed id or price, so a client's malformed +
unknown counters must grow by exactly the number of fuzzed frames, and nothing else may.

Mutation classes (``MUTATIONS``):

* ``truncated`` — the frame cut at a random point (possibly to nothing): the top-level
  object is never closed.
* ``broken_syntax`` — one structural character outside strings (``{}[]:,``) replaced by a
  character that is never valid outside a JSON string (``#;@<>|~``).
* ``trailing_garbage`` — a complete frame followed by non-whitespace.
* ``control_char`` — a raw control character (U+0000..U+001F) inside a string (JSON
  requires them escaped).
* ``bad_escape`` — an invalid escape sequence inside a string (``\\x``, ``\\u12G4``, ...).
* ``missing_key`` — a required key deleted from the payload (one item of an array payload),
  or ``stream`` / ``data`` deleted from the envelope.
* ``wrong_type`` — a required value of the wrong type (string <-> number <-> null <-> bool
  <-> list <-> object; depth levels of the wrong shape); or a non-string ``stream``.
* ``int64_overflow`` — an id or time beyond the int64 range (either side).
* ``negative_id`` — an id or time below -1.
* ``long_string`` — the symbol or a decimal replaced by a string of 1,000-20,000 chars.
* ``deep_nesting`` — a required value (or ``data``) replaced by arrays or objects nested
  8-5,000 deep (past the decoder's recursion limit at the deep end).
* ``bad_decimal`` — a price, quantity or volume (or a depth level's) that is not a decimal
  string: ``"1.2.3"``, ``"abc"``, ``""``, ``"NaN"``, ``"1e5"``, ``".5"``, ``"0x1F"``, ...
* ``unknown_event`` — ``e`` (added where the payload has none) set to an event type the
  stream never carries; an array payload becomes one such object.
* ``data_shape`` — ``data`` of the wrong shape: a list around an object payload, an object
  instead of an array payload, or a scalar.
* ``unknown_stream`` — the envelope names a stream that does not exist (``<s>@fuzz..``);
  on a raw (non-combined) connection: an ``unknown_event`` instead.
* ``not_envelope`` — a combined connection gets a bare payload, ``{}``, or a JSON scalar
  or array; a raw connection a JSON scalar or array.
* ``empty`` — an empty or whitespace-only frame.
* ``not_json`` — text that starts with a character no JSON text can start with.

Frames hold no lone surrogates (they are valid UTF-8 text frames), never name the
``!serverShutdown`` stream or a ``serverShutdown`` event, and never carry the keys of a
control reply (``result``, ``error``, ``id``, ``code``, ``msg``).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import attrs
import orjson

from marketd.fakex.frames import combined

MUTATIONS: tuple[str, ...] = (
    "truncated",
    "broken_syntax",
    "trailing_garbage",
    "control_char",
    "bad_escape",
    "missing_key",
    "wrong_type",
    "int64_overflow",
    "negative_id",
    "long_string",
    "deep_nesting",
    "bad_decimal",
    "unknown_event",
    "data_shape",
    "unknown_stream",
    "not_envelope",
    "empty",
    "not_json",
)

# Keys a payload may lack (``e``: spot bookTicker has none; ``M``: ignored; ``nq``: spot).
OPTIONAL_KEYS = frozenset({"e", "M", "nq"})
# Objects nested in a payload (a kline's candle ``k``, a liquidation's order ``o``): a
# mutation may spoil them too. Per key: the keys in it that marketd ignores (may go).
NESTED: dict[str, frozenset[str]] = {"k": frozenset({"s", "B"}), "o": frozenset()}
# String values that are words, not decimals (symbols, intervals, order side/type/status):
# ``bad_decimal`` leaves them alone. Per nested key ("" for the payload itself).
WORDS: dict[str, frozenset[str]] = {
    "": frozenset({"s", "i"}),
    "k": frozenset({"s", "i"}),
    "o": frozenset({"s", "S", "o", "f", "X"}),
}
# Decimals Binance may send empty (funding rate and estimated settle price of a contract
# without funding), so ``""`` is no fault there.
EMPTY_OK = frozenset({("markPriceUpdate", "P"), ("markPriceUpdate", "r")})
BAD_DECIMALS = (
    "1.2.3", "abc", "NaN", "nan", "Infinity", "1e5", "1E-8", ".5", "5.", ".", "-", "--1",
    "+1.0", " 1.0", "1.0 ", "1,5", "0x1F", "1_000", "1..2", "1.5\n", "null",
    "\u0661\u0662",  # Arabic-Indic digits
    "\uff11.\uff15",  # full-width digits
)  # fmt: skip
# Event types marketd does not decode (kline and forceOrder were, until they became known).
UNKNOWN_EVENTS = ("klineV2", "forceOrderV2", "depthSnapshot", "listStatus", "24hrFuzzTicker")
_BREAKERS = "#;@<>|~"
_GARBAGE = ("}", "]", ",", "x", "{}", '"', "0", ":1", "\x00")
# Invalid whatever follows them (a short ``\\u00`` could borrow hex digits that follow).
_BAD_ESCAPES = ("\\x41", "\\u12G4", "\\'", "\\U0041", "\\ ", "\\a", "\\uZZZZ")
_NOT_JSON_START = "#;@<>|~%^&*=?!'`\\)}]"
_SCALARS = ("null", "42", '"text"', "[]", "true", "-1", "[1,2,3]", '"{}"')
_BLANKS = ("", " ", "\n", "\t \r\n", "   ")
_HOLE = "@@FUZZ@@"
# Re-serializes the payload around one changed object of it.
Pack = Callable[[dict[str, Any]], str]


@attrs.frozen
class FuzzBase:
    """A valid frame to mutate: a stream name and its payload as JSON text."""

    stream: str
    payload: str


@attrs.frozen
class FuzzFrame:
    mutation: str
    text: str


def fuzz_frames(
    count: int, seed: int | str, bases: Sequence[FuzzBase], *, is_combined: bool
) -> Iterator[FuzzFrame]:
    """``count`` fuzzed frames, lazily; the same arguments give the same frames.

    Mutation classes come in rounds, each round every class once in a seeded order, so
    any ``len(MUTATIONS)`` consecutive frames from a round boundary cover every class.
    """
    if not bases:
        raise ValueError("fuzzing needs at least one base frame")
    rng = random.Random(f"marketd-fuzz/{seed}")
    parsed = [(b, orjson.loads(b.payload)) for b in bases]
    order: list[str] = []
    for _ in range(count):
        if not order:
            order = list(MUTATIONS)
            rng.shuffle(order)
            order.reverse()
        mutation = order.pop()
        base, payload = parsed[rng.randrange(len(parsed))]
        yield FuzzFrame(mutation, _MUTATORS[mutation](_Ctx(rng, base, payload, is_combined)))


@attrs.frozen
class _Ctx:
    rng: random.Random
    base: FuzzBase
    payload: Any  # the parsed payload: never mutated in place
    combined: bool

    def frame(self, payload_text: str | None = None, stream: str | None = None) -> str:
        text = self.base.payload if payload_text is None else payload_text
        if not self.combined:
            return text
        return combined(self.base.stream if stream is None else stream, text)

    def item(self, eligible: Callable[[Part], bool] | None = None) -> Part:
        """One object of the payload (an array payload: a random item; a payload with a
        nested object: it or that object, among those ``eligible``) and its re-packer."""
        payload, rng = self.payload, self.rng
        if isinstance(payload, dict):
            top = Part(payload, _dumps, "")
        else:
            i = rng.randrange(len(payload))
            top = Part(payload[i], lambda obj: _dumps([*payload[:i], obj, *payload[i + 1 :]]), "")
        nested = [k for k in NESTED if isinstance(top.obj.get(k), dict)]
        if not nested:
            return top
        parts = [top] + [Part(top.obj[k], _repack(top, k), k) for k in nested]
        if eligible is not None:
            parts = [p for p in parts if eligible(p)] or parts
        return rng.choice(parts)

    def event(self, item: dict[str, Any]) -> str:
        e = item.get("e")
        return e if isinstance(e, str) else "bookTicker"

    def keys(self, item: dict[str, Any] | Part, kind: type | None = None) -> list[str]:
        """The required keys of ``item`` (of values of ``kind``; int excludes bool)."""
        optional = OPTIONAL_KEYS
        if isinstance(item, Part):
            optional = OPTIONAL_KEYS | NESTED.get(item.nested, frozenset())
            item = item.obj
        out = []
        for key, value in item.items():
            if key in optional:
                continue
            if kind is None or (type(value) is kind):
                out.append(key)
        return out


@attrs.frozen
class Part:
    """An object of a payload a mutation spoils, the re-packer of the whole payload around
    it, and the key it is nested under ("" for the payload or an item of it)."""

    obj: dict[str, Any]
    pack: Pack
    nested: str


def _repack(outer: Part, key: str) -> Pack:
    """The re-packer of the object nested under ``key`` in ``outer``."""
    return lambda inner: outer.pack({**outer.obj, key: inner})


def _dumps(obj: Any) -> str:
    return orjson.dumps(obj).decode()


def _replace(ctx: _Ctx, item: dict[str, Any], pack: Pack, key: str, value_text: str) -> str:
    """The frame with ``item[key]`` set to raw JSON ``value_text``."""
    return ctx.frame(pack({**item, key: _HOLE}).replace(f'"{_HOLE}"', value_text, 1))


def _string_spans(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of every string literal's content (``end`` is its closing quote)."""
    spans, i, n = [], 0, len(text)
    while i < n:
        if text[i] == '"':
            start = i = i + 1
            while text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            spans.append((start, i))
        i += 1
    return spans


def _inside_string(ctx: _Ctx, insert: str) -> str:
    text = ctx.frame()
    start, end = ctx.rng.choice(_string_spans(text))
    at = ctx.rng.randint(start, end)
    return text[:at] + insert + text[at:]


# -- the mutations --------------------------------------------------------------------------


def _truncated(ctx: _Ctx) -> str:
    text = ctx.frame()
    return text[: ctx.rng.randrange(len(text))]


def _broken_syntax(ctx: _Ctx) -> str:
    text = ctx.frame()
    inside = bytearray(len(text))
    for start, end in _string_spans(text):
        inside[start - 1 : end + 1] = b"\x01" * (end + 1 - start + 1)
    spots = [i for i, c in enumerate(text) if c in "{}[]:," and not inside[i]]
    at = ctx.rng.choice(spots)
    return text[:at] + ctx.rng.choice(_BREAKERS) + text[at + 1 :]


def _trailing_garbage(ctx: _Ctx) -> str:
    return ctx.frame() + ctx.rng.choice(_GARBAGE)


def _control_char(ctx: _Ctx) -> str:
    return _inside_string(ctx, chr(ctx.rng.randrange(0x20)))


def _bad_escape(ctx: _Ctx) -> str:
    return _inside_string(ctx, ctx.rng.choice(_BAD_ESCAPES))


def _missing_key(ctx: _Ctx) -> str:
    rng = ctx.rng
    if ctx.combined and rng.random() < 0.15:
        if rng.random() < 0.5:
            return f'{{"data":{ctx.base.payload}}}'
        return f'{{"stream":"{ctx.base.stream}"}}'
    part = ctx.item()
    drop = rng.choice(ctx.keys(part))
    return ctx.frame(part.pack({k: v for k, v in part.obj.items() if k != drop}))


def _wrong_value(rng: random.Random, value: Any) -> str:
    if isinstance(value, bool):
        choices = ['"true"', "1", "0", "null", '"false"', "[]", "{}"]
    elif isinstance(value, int):
        choices = [f'"{value}"', f"{value}.5", "12.5", "null", "true", f"[{value}]", "{}"]
    elif isinstance(value, str):
        choices = ["1.5", "42", "null", "false", f"[{_dumps(value)}]", '{"v":"1"}']
    else:  # a list of depth levels
        choices = [
            '"abc"', "5", "null", "{}", "[[1.5,2.5]]", '[["1.5"]]', '[["1.5","2","3"]]',
            '["1.5","2"]', '[{"p":"1.5","q":"2"}]', "true",
        ]  # fmt: skip
    return rng.choice(choices)


def _wrong_type(ctx: _Ctx) -> str:
    rng = ctx.rng
    if ctx.combined and rng.random() < 0.15:
        value = rng.choice(["7", "null", "true", '["btcusdt@trade"]', '{"s":"x"}'])
        return f'{{"stream":{value},"data":{ctx.base.payload}}}'
    part = ctx.item()
    item, pack = part.obj, part.pack
    keys = ctx.keys(part) + (["e"] if "e" in item else [])
    key = rng.choice(keys)
    if key == "e":
        return _replace(ctx, item, pack, "e", rng.choice(["7", "null", "true", '["x"]', "{}"]))
    return _replace(ctx, item, pack, key, _wrong_value(rng, item[key]))


def _set_int(ctx: _Ctx, value: int) -> str:
    part = ctx.item(lambda p: bool(ctx.keys(p, int)))
    return _replace(ctx, part.obj, part.pack, ctx.rng.choice(ctx.keys(part, int)), str(value))


def _int64_overflow(ctx: _Ctx) -> str:
    rng = ctx.rng
    value = rng.choice(
        [
            2**63 + rng.randrange(2**62),
            2**64 + rng.randrange(2**62),
            10 ** rng.randint(20, 40) + rng.randrange(1000),
            -(2**63) - 1 - rng.randrange(2**62),
        ]
    )
    return _set_int(ctx, value)


def _negative_id(ctx: _Ctx) -> str:
    return _set_int(ctx, -ctx.rng.choice([2, 3, 17, 1000, 2**31, 2**53, 2**63]))


def _long_string(ctx: _Ctx) -> str:
    rng = ctx.rng
    part = ctx.item(lambda p: bool(ctx.keys(p, str)))
    item, pack = part.obj, part.pack
    n = rng.randint(1_000, 20_000)
    fill = rng.choice(["9", "1.5", "A", "x", "é"])
    value = (fill * (n // len(fill) + 1))[:n]
    keys = ctx.keys(part, str)
    if not keys:  # no string but in the depth levels (spot partial depth): spoil a level
        key = rng.choice([k for k in ctx.keys(part, list) if item[k]])
        levels = [list(level) for level in item[key]]
        levels[rng.randrange(len(levels))][rng.randrange(2)] = value
        return ctx.frame(pack({**item, key: levels}))
    return _replace(ctx, item, pack, rng.choice(keys), _dumps(value))


def _nested(rng: random.Random, depth: int) -> str:
    if rng.random() < 0.5:
        return "[" * depth + "]" * depth
    return '{"a":' * depth + "1" + "}" * depth


def _deep_nesting(ctx: _Ctx) -> str:
    rng = ctx.rng
    depth = rng.choice([8, 64, 300, 2_000, 5_000])
    nested = _nested(rng, depth)
    if ctx.combined and rng.random() < 0.3:
        return ctx.frame(nested)
    part = ctx.item()
    return _replace(ctx, part.obj, part.pack, rng.choice(ctx.keys(part)), nested)


def _bad_decimal(ctx: _Ctx) -> str:
    rng = ctx.rng

    def decimals(part: Part) -> list[str]:
        words = WORDS[part.nested]
        return [k for k in ctx.keys(part, str) if k not in words] + ctx.keys(part, list)

    part = ctx.item(lambda p: bool(decimals(p)))
    item, pack = part.obj, part.pack
    event = ctx.event(item)
    key = rng.choice(decimals(part))
    choices = BAD_DECIMALS if (event, key) in EMPTY_OK else (*BAD_DECIMALS, "")
    bad = rng.choice(choices)
    value = item[key]
    if isinstance(value, list):  # depth levels: spoil one price or quantity
        levels = [list(level) for level in value] or [["1.0", "1.0"]]
        levels[rng.randrange(len(levels))][rng.randrange(2)] = bad
        return ctx.frame(pack({**item, key: levels}))
    return ctx.frame(pack({**item, key: bad}))


def _unknown_event_name(rng: random.Random) -> str:
    return rng.choice(UNKNOWN_EVENTS) + ("" if rng.random() < 0.5 else str(rng.randrange(99)))


def _unknown_event(ctx: _Ctx) -> str:
    name = _unknown_event_name(ctx.rng)
    payload = ctx.payload
    item = payload if isinstance(payload, dict) else payload[0]
    others = {k: v for k, v in item.items() if k != "e"}
    return ctx.frame(_dumps({"e": name, **others}))


def _data_shape(ctx: _Ctx) -> str:
    rng = ctx.rng
    payload = ctx.payload
    if rng.random() < 0.3:
        return ctx.frame(rng.choice(["null", "42", '"data"', "true", "1.5"]))
    if isinstance(payload, dict):
        return ctx.frame(rng.choice([f"[{ctx.base.payload}]", "[]", "[1,2]"]))
    return ctx.frame(rng.choice([_dumps(payload[0]), "{}", "[1,2]", '["a"]']))


def _unknown_stream(ctx: _Ctx) -> str:
    if not ctx.combined:
        return _unknown_event(ctx)
    rng = ctx.rng
    symbol = ctx.base.stream.partition("@")[0].lstrip("!") or "btcusdt"
    name = rng.choice([f"{symbol}@fuzz{rng.randrange(1000)}", f"!fuzz{rng.randrange(1000)}@arr"])
    return ctx.frame(stream=name)


def _not_envelope(ctx: _Ctx) -> str:
    rng = ctx.rng
    if ctx.combined and rng.random() < 0.6:
        return rng.choice([ctx.base.payload, "{}"])
    return rng.choice(_SCALARS)


def _empty(ctx: _Ctx) -> str:
    return ctx.rng.choice(_BLANKS)


def _not_json(ctx: _Ctx) -> str:
    rng = ctx.rng
    body = "".join(chr(rng.randrange(0x20, 0xD800)) for _ in range(rng.randrange(40)))
    return rng.choice(_NOT_JSON_START) + body


_MUTATORS: dict[str, Callable[[_Ctx], str]] = {
    "truncated": _truncated,
    "broken_syntax": _broken_syntax,
    "trailing_garbage": _trailing_garbage,
    "control_char": _control_char,
    "bad_escape": _bad_escape,
    "missing_key": _missing_key,
    "wrong_type": _wrong_type,
    "int64_overflow": _int64_overflow,
    "negative_id": _negative_id,
    "long_string": _long_string,
    "deep_nesting": _deep_nesting,
    "bad_decimal": _bad_decimal,
    "unknown_event": _unknown_event,
    "data_shape": _data_shape,
    "unknown_stream": _unknown_stream,
    "not_envelope": _not_envelope,
    "empty": _empty,
    "not_json": _not_json,
}
assert tuple(_MUTATORS) == MUTATIONS
