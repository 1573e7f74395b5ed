"""Merging the Prometheus text expositions of the shard workers into the parent's one.

With ``collector.shards: N`` the parent runs N worker processes, each serving its own
loopback ``/metrics``; Prometheus scrapes only the parent. :func:`merge_expositions` turns
the parent's own exposition and the texts it fetched from the workers into one exposition
in text format 0.0.4 (what ``prometheus_client.generate_latest`` emits), every worker's
sample carrying a ``shard`` label so that the series of different workers stay distinct.

It is pure (no I/O, no clock): the parent's handler fetches, then merges, and the merge is
tested against real registries and ``promtool``.

The merge works on the text, not on parsed metric objects: it runs on every scrape of the
parent over up to 8 shards of ~2,000 lines, and parsing with ``prometheus_client.parser``
then rendering again takes some fifty times as long; values also stay byte for byte as the
workers wrote them. A run of sample lines that all belong to the family declared just above
them (every run generate_latest writes) is relabelled with a few ``str.replace`` calls on
the whole run; anything else goes line by line, checked line by line, about eight times
slower (8 x 2,000 lines: ~8 ms against ~60 ms and ~375 ms for the parser, on a small VM).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["merge_expositions"]

_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")

# One label pair of a label set, with the blanks the text format allows around its parts.
_PAIR = r'[ \t]*[a-zA-Z_][a-zA-Z0-9_]*[ \t]*=[ \t]*"(?:[^"\\]|\\.)*"[ \t]*'
# The same, naming the label, to go through a label set already found well formed.
_LABEL_PAIR = re.compile(r'[ \t]*([a-zA-Z_][a-zA-Z0-9_]*)[ \t]*=[ \t]*"(?:[^"\\]|\\.)*"[ \t]*,?')

# A whole sample line, checked only on the line-by-line path: a line that does not pass is
# dropped, as one bad line would make Prometheus reject the whole scrape. Names in the
# quoted UTF-8 form (``{"a.b"} 1``) are not 0.0.4 (generate_latest writes them only when
# asked to). The value is what Go's ParseFloat takes, but for hex and underscores.
_SAMPLE_LINE = re.compile(
    r"(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)"
    rf"(?:[ \t]*\{{(?P<labels>(?:{_PAIR},)*(?:{_PAIR})?[ \t]*)\}}[ \t]*|[ \t]+)"
    r"[+-]?(?:[0-9]+\.?[0-9]*(?:[eE][+-]?[0-9]+)?|\.[0-9]+(?:[eE][+-]?[0-9]+)?"
    r"|(?i:inf(?:inity)?|nan))"
    r"(?:[ \t]+-?[0-9]+)?[ \t]*"
)

# Sample names that belong to a family of the given TYPE besides the family name itself
# (generate_latest puts ``_created``, ``_gsum`` and ``_gcount`` in gauge families of their
# own, so they need no entry here).
_SUFFIXES: dict[str, tuple[str, ...]] = {
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("_sum", "_count"),
}


class _Family:
    """One metric family of the merged exposition, its samples in source order; or, not
    kept, the sink for the samples of a family whose TYPE disagreed with the kept one."""

    __slots__ = ("chunks", "help", "kept", "name", "sample_names", "type")

    def __init__(self, name: str, *, kept: bool = True) -> None:
        self.name = name
        self.kept = kept
        self.help: str | None = None
        self.type: str | None = None
        # The names its samples may have; more than the family's own with some TYPEs.
        self.sample_names: tuple[str, ...] = (name,)
        # Sample lines, several to a chunk, each line after a newline.
        self.chunks: list[str] = []

    def set_type(self, kind: str) -> None:
        self.type = kind
        name = self.name
        self.sample_names = (name, *(name + suffix for suffix in _SUFFIXES.get(kind, ())))


class _Source:
    """One text being added: what is needed to label its samples and route them."""

    __slots__ = ("discarded", "families", "label", "maybe_labelled", "openings", "pair")

    def __init__(
        self, families: dict[str, _Family], pair: str | None, label: str, text: str
    ) -> None:
        self.families = families
        # ``shard="0"``, or None for the parent's own samples, which are copied untouched.
        self.pair = pair
        self.label = label
        # What may follow a sample's name. generate_latest writes no tabs, so most texts
        # spare the whole-run path a pass per name.
        self.openings = ("{", " ", "\t") if "\t" in text else ("{", " ")
        # Whether a sample may already have the label; if so, runs that mention it go
        # line by line (most texts never mention it at all).
        self.maybe_labelled = pair is not None and self.names_label(text)
        # Sample name -> the sink of its family, for families of this source whose TYPE
        # disagrees with the one kept.
        self.discarded: dict[str, _Family] = {}

    def names_label(self, text: str) -> bool:
        """False if no label set in ``text`` can name the label (True may be wrong)."""
        label = self.label
        return label in text and any(f"{label}{after}" in text for after in ("=", " ", "\t"))

    def family_of(self, sample_name: str) -> _Family:
        """The family of a sample found outside the run of its family's declaration."""
        family = self.discarded.get(sample_name) or self.families.get(sample_name)
        if family is not None:
            return family
        for suffixes in _SUFFIXES.values():
            for suffix in suffixes:
                if sample_name.endswith(suffix):
                    family = self.families.get(sample_name[: -len(suffix)])
                    if family is not None and sample_name in family.sample_names:
                        return family
        family = self.families[sample_name] = _Family(sample_name)
        return family


def merge_expositions(
    shards: Sequence[tuple[str, str | None]], own: str, label: str = "shard"
) -> str:
    """The Prometheus text exposition of the parent: its own samples (``own``, unlabelled as
    they are) and every shard's (``(shard id, text)``; text None = the shard did not answer,
    skip it) with ``label="<shard id>"`` added to each sample; families merged (one HELP/TYPE
    each, all samples of a family together), in order of first appearance, ``own`` first.

    Sources are read as text format 0.0.4; the output is 0.0.4 too. Where the inputs do not
    fit together, the output stays one that Prometheus accepts:

    * A shard sample that already has a label named ``label`` keeps its value and gets no
      second one: a repeated label name would make Prometheus reject the whole scrape.
    * When sources disagree on a family's TYPE, the first TYPE seen is kept and the samples
      of that family from a disagreeing source are dropped: ``_bucket`` lines under a gauge
      family, or a bare sample under a histogram, would fail the whole scrape too.
    * The first HELP seen for a family is kept. A family no source gave a TYPE gets
      ``untyped``, so that parsers keep its samples together.
    * Comment lines other than HELP/TYPE and blank lines are dropped.
    * The rest of a sample line (value, ``NaN``/``+Inf``, timestamp) is copied byte for
      byte. Lines in the order generate_latest writes are trusted to be well formed; in
      any other order, a line that is not a well-formed sample is dropped.

    Raises ValueError if ``label`` is not a usable label name or a shard id is repeated
    (both caller errors that would give clashing series), never because of the texts.
    """
    if _LABEL_NAME.fullmatch(label) is None or label.startswith("__"):
        raise ValueError(f"not a usable label name: {label!r}")
    ids = [shard_id for shard_id, _ in shards]
    if len(set(ids)) != len(ids):
        raise ValueError(f"shard ids must be unique: {ids!r}")

    families: dict[str, _Family] = {}
    _add_text(_Source(families, None, label, own), own)
    for shard_id, text in shards:
        if text is not None:
            pair = f'{label}="{_escape_label_value(shard_id)}"'
            _add_text(_Source(families, pair, label, text), text)

    # Every piece starts with the newline that ends the line before it.
    out: list[str] = []
    for family in families.values():
        if family.help is not None:
            out.append(f"\n# HELP {family.name} {family.help}")
        out.append(f"\n# TYPE {family.name} {family.type or 'untyped'}")
        out.extend(family.chunks)
    out.append("\n")
    return "".join(out)[1:]


def _escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _add_text(source: _Source, text: str) -> None:
    """Add one source's families and samples: runs of sample lines between comment lines.

    Runs keep the newline *before* each line (the text gets one in front), so that a
    newline followed by a name is exactly the start of a sample line: a raw newline only
    ever ends a line, label values escape theirs.
    """
    text = text.rstrip("\n")
    if not text:
        return
    text = "\n" + text + "\n"
    last = len(text) - 1
    current: _Family | None = None
    pos = 0  # text[pos] is the newline before a line
    while pos < last:
        comment = text.find("\n#", pos)
        if comment < 0:
            comment = last
        if comment > pos:
            current = _add_run(source, current, text[pos:comment])
        if comment == last:
            break
        pos = text.find("\n", comment + 1)
        current = _declare(source, current, text[comment + 1 : pos])


def _declare(source: _Source, current: _Family | None, line: str) -> _Family | None:
    """Take in a comment line; returns the family that the samples after it belong to."""
    parts = line.split(None, 3)
    if len(parts) < 3 or parts[0] != "#" or parts[1] not in ("HELP", "TYPE"):
        return current  # a plain comment
    name = parts[2]
    family = source.families.get(name)
    if family is None:
        family = source.families[name] = _Family(name)
    rest = parts[3] if len(parts) > 3 else ""
    if parts[1] == "HELP":
        if family.help is None:
            family.help = rest
        return family
    kind = rest.strip()
    if family.type is None:
        family.set_type(kind)
    elif family.type != kind:
        sink = _Family(name, kept=False)
        sink.set_type(kind)
        source.discarded.update(dict.fromkeys(sink.sample_names, sink))
        return sink
    return family


def _add_run(source: _Source, current: _Family | None, run: str) -> _Family | None:
    """Add a run of lines (each after a newline) with no comment line among them; returns
    the family now current."""
    if current is not None:
        # The common case, done on the whole run at once: every line a sample of the
        # family declared above it, none naming the label already.
        if not current.kept or source.pair is None:
            if _only_samples_of(current, run, source.openings):
                if current.kept:
                    current.chunks.append(run)
                return current
        elif not (source.maybe_labelled and source.names_label(run)):
            relabelled = _relabel(current, run, source.pair, source.openings[1:])
            if relabelled is not None:
                current.chunks.append(relabelled)
                return current
    return _add_lines(source, current, run)


def _only_samples_of(family: _Family, run: str, openings: tuple[str, ...]) -> bool:
    found = 0
    for name in family.sample_names:
        for opening in openings:
            found += run.count(f"\n{name}{opening}")
    return found == run.count("\n")


def _relabel(family: _Family, run: str, pair: str, blanks: tuple[str, ...]) -> str | None:
    """``run`` with ``pair`` added to each sample, or None if not every line of it is a
    sample of ``family`` with a plain label set or none (then the caller goes line by line)."""
    # Each replacement lengthens the text by a known amount, which counts them for free.
    lines = run.count("\n")
    found = 0
    text = run
    for name in family.sample_names:
        size = len(text)
        text = text.replace(f"\n{name}{{", f"\n{name}{{{pair},")
        found += (len(text) - size) // (len(pair) + 1)
    if found != lines:
        # Samples with no label set, or blanks between the name and the label set (which
        # would now read ``name{shard="0"} {a="b"} 1``: left to the exact path).
        for name in family.sample_names:
            for blank in blanks:
                size = len(text)
                text = text.replace(f"\n{name}{blank}", f"\n{name}{{{pair}}}{blank}")
                found += (len(text) - size) // (len(pair) + 2)
        if re.search(re.escape(f"{{{pair}}}") + r"[ \t]+\{", text) is not None:
            return None
    if found != lines:
        return None
    if "{}" in run:
        # ``name{}`` became ``name{shard="0",}``. That text can only be ours: quotes inside
        # a label value are escaped.
        text = text.replace(f"{{{pair},}}", f"{{{pair}}}")
    return text


def _add_lines(source: _Source, current: _Family | None, run: str) -> _Family | None:
    """The exact path, line by line, for runs that mix families, name the label already,
    have blank or malformed lines, or come before any HELP/TYPE."""
    for raw in run.split("\n"):  # not splitlines(): it also splits on \x85, \u2028...
        line = raw.strip(" \t")
        if not line:
            continue
        if line[0] == "#":
            current = _declare(source, current, line)
            continue
        sample = _SAMPLE_LINE.fullmatch(line)
        if sample is None:
            continue
        name = sample.group("name")
        if current is None or name not in current.sample_names:
            # A sample with no HELP/TYPE of its own is an untyped family (or more samples
            # of a family declared before, if the text strays from generate_latest's order).
            current = source.family_of(name)
        if not current.kept:
            continue
        if source.pair is not None:
            line = _add_label(line, sample, source.pair, source.label)
        current.chunks.append("\n" + line)
    return current


def _add_label(line: str, sample: re.Match[str], pair: str, label: str) -> str:
    labels = sample.group("labels")
    if labels is None:
        end = sample.end("name")
        return f"{line[:end]}{{{pair}}}{line[end:]}"  # name 1 -> name{shard="0"} 1
    if label in labels and any(p.group(1) == label for p in _LABEL_PAIR.finditer(labels)):
        return line  # keep the sample's own value; see merge_expositions
    start = sample.start("labels")
    if not labels.strip(" \t"):
        return f"{line[:start]}{pair}{line[start:]}"  # an empty label set takes no comma
    return f"{line[:start]}{pair},{line[start:]}"
