"""merge_expositions: the parent's one /metrics made of its own exposition and its shards'.

The inputs are what real prometheus_client registries give (generate_latest, every metric
type it has); the judges are prometheus_client's own parser and, when installed, promtool.
"""

from __future__ import annotations

import math
import re
import shutil
from collections.abc import Iterable, Iterator

import pytest
from ops.promql import run_promtool
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Enum,
    Gauge,
    Histogram,
    Info,
    Summary,
    generate_latest,
)
from prometheus_client.core import (
    GaugeHistogramMetricFamily,
    GaugeMetricFamily,
    Metric,
    UnknownMetricFamily,
)
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from marketd.shards import exposition
from marketd.shards.exposition import merge_expositions

# A label value with everything the text format escapes.
ODD = 'say "hi" \\ C:\\path\nnext line'

# (name, labels, value as text, timestamp): comparable, NaN included.
Row = tuple[str, frozenset[tuple[str, str]], str, object]


class _Hand(Collector):
    """What the Counter/Gauge/... classes never produce: timestamps, NaN, ±Inf, a summary
    with quantiles, a gauge histogram, an untyped metric."""

    def __init__(self, shard: int) -> None:
        self.shard = shard

    def collect(self) -> Iterator[Metric]:
        lag = GaugeMetricFamily("marketd_test_lag_seconds", "Lag, odd values.", labels=["feed"])
        lag.add_metric(["nan"], math.nan, timestamp=1_700_000_000.25 + self.shard)
        lag.add_metric(["inf"], math.inf)
        lag.add_metric(["-inf"], -math.inf, timestamp=1_700_000_001)
        yield lag
        rtt = Metric("marketd_test_rtt_seconds", "Round trips.", "summary")
        rtt.add_sample("marketd_test_rtt_seconds", {"quantile": "0.5"}, 0.01 * (self.shard + 1))
        rtt.add_sample("marketd_test_rtt_seconds", {"quantile": "0.99"}, 0.2)
        rtt.add_sample("marketd_test_rtt_seconds_sum", {}, 4.5)
        rtt.add_sample("marketd_test_rtt_seconds_count", {}, 30)
        yield rtt
        yield GaugeHistogramMetricFamily(
            "marketd_test_queue_depth", "Queue.", buckets=[("1.0", 3), ("+Inf", 5)], gsum_value=7
        )
        yield UnknownMetricFamily("marketd_test_legacy", "Untyped, as of old.", value=3)


def shard_registry(shard: int) -> CollectorRegistry:
    """A worker's registry: the same families in every shard, values that differ."""
    registry = CollectorRegistry()
    messages = Counter(
        "marketd_test_messages", "Messages \\ received.\nPer stream.", ["symbol", "stream"],
        registry=registry,
    )  # fmt: skip
    messages.labels("BTCUSDT", "trade").inc(10 + shard)
    messages.labels(ODD, "depth").inc(2)
    Gauge("marketd_test_connected", "Whether connected.", registry=registry).set(1 - shard)
    latency = Histogram(
        "marketd_test_latency_seconds", "Latency.", ["symbol"], buckets=(0.1, 1.0),
        registry=registry,
    )  # fmt: skip
    latency.labels("BTCUSDT").observe(0.5 * (shard + 1))
    Summary("marketd_test_batch_bytes", "Batch size.", registry=registry).observe(100)
    Info("marketd_test_build", "Build.", registry=registry).info({"version": "1.2.3"})
    state = Enum("marketd_test_state", "State.", states=["starting", "running"], registry=registry)
    state.state("running")
    registry.register(_Hand(shard))
    if shard == 1:
        Gauge("marketd_test_only_in_one", "Only shard 1 has it.", registry=registry).set(7)
    return registry


def own_registry() -> CollectorRegistry:
    """The parent's: a family shared with the shards, its own ones (one with a ``shard``
    label of its own, which stays as it is)."""
    registry = CollectorRegistry()
    Info("marketd_test_build", "Build.", registry=registry).info({"version": "1.2.3"})
    restarts = Counter("marketd_test_shard_restarts", "Restarts.", ["shard"], registry=registry)
    restarts.labels("1").inc(3)
    Gauge("marketd_test_shards_up", "Shards answering.", registry=registry).set(2)
    return registry


def text_of(registry: CollectorRegistry) -> str:
    return generate_latest(registry).decode()


@pytest.fixture(scope="module")
def sources() -> tuple[list[tuple[str, str | None]], str]:
    # Each text is made once: _created samples would differ from one call to the next.
    shards: list[tuple[str, str | None]] = [
        ("0", text_of(shard_registry(0))),
        ("1", text_of(shard_registry(1))),
        ("2", None),
    ]
    return shards, text_of(own_registry())


@pytest.fixture(scope="module")
def merged(sources: tuple[list[tuple[str, str | None]], str]) -> str:
    shards, own = sources
    return merge_expositions(shards, own)


def _order(row: Row) -> str:
    # Not repr(row): equal frozensets may list their items in different orders.
    return repr((row[0], sorted(row[1]), row[2], row[3]))


def rows(samples: Iterable[object], extra: dict[str, str] | None = None) -> list[Row]:
    out = []
    for sample in samples:
        name, labels, value, timestamp = sample[:4]  # type: ignore[index]
        labels = {**labels, **(extra or {})}
        out.append((name, frozenset(labels.items()), repr(float(value)), timestamp))
    return sorted(out, key=_order)


def families(text: str) -> dict[str, tuple[str, list[Row]]]:
    """Family name -> (type, samples); fails if a family comes twice."""
    out: dict[str, tuple[str, list[Row]]] = {}
    for family in text_string_to_metric_families(text):
        assert family.name not in out, f"family {family.name} comes twice"
        out[family.name] = (family.type, rows(family.samples))
    return out


def label_names(line: str) -> list[str]:
    """The label names of one sample line, in order, repeats kept."""
    opening = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*\{", line)
    if opening is None:
        return []
    pairs = re.finditer(r'\s*([a-zA-Z_]\w*)\s*=\s*"(?:[^"\\]|\\.)*"\s*,?', line[opening.end() :])
    return [pair.group(1) for pair in pairs]


def sample_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def assert_promtool_passes(text: str) -> None:
    """promtool's verdict where it is installed; without it, the tests that call this still
    check the rest and test_the_merge_passes_promtool shows the skip."""
    if shutil.which("promtool") is None:
        return
    result = run_promtool("check", "metrics", stdin=text)
    assert result.returncode == 0, result.stdout + result.stderr


# --- the merge of real registries -------------------------------------------------------


def test_the_merge_passes_promtool(merged: str) -> None:
    result = run_promtool("check", "metrics", stdin=merged)  # skips without promtool
    assert result.returncode == 0, result.stdout + result.stderr


def test_each_family_once_with_exactly_the_expected_samples(
    sources: tuple[list[tuple[str, str | None]], str], merged: str
) -> None:
    shards, own = sources
    expected: dict[str, tuple[str, list[Row]]] = {}
    for text, extra in [(own, None)] + [(t, {"shard": s}) for s, t in shards if t is not None]:
        for family in text_string_to_metric_families(text):
            _, samples = expected.setdefault(family.name, (family.type, []))
            samples.extend(rows(family.samples, extra))
    expected = {
        name: (kind, sorted(samples, key=_order)) for name, (kind, samples) in expected.items()
    }

    got = families(merged)
    assert list(got) == list(expected)  # order of first appearance, own first
    assert got == expected
    # Every type generate_latest writes is in there.
    assert {kind for kind, _ in got.values()} == {
        "counter", "gauge", "histogram", "summary", "unknown",
    }  # fmt: skip


def test_own_samples_stay_unlabelled_and_shard_samples_get_their_shard(merged: str) -> None:
    got = families(merged)
    _, messages = got["marketd_test_messages"]
    btc = {
        (labels, value) for name, labels, value, _ in messages if ("symbol", "BTCUSDT") in labels
    }
    assert btc == {
        (frozenset({("symbol", "BTCUSDT"), ("stream", "trade"), ("shard", "0")}), "10.0"),
        (frozenset({("symbol", "BTCUSDT"), ("stream", "trade"), ("shard", "1")}), "11.0"),
    }
    _, build = got["marketd_test_build_info"]
    assert {labels for _, labels, _, _ in build} == {
        frozenset({("version", "1.2.3")}),
        frozenset({("version", "1.2.3"), ("shard", "0")}),
        frozenset({("version", "1.2.3"), ("shard", "1")}),
    }
    # The parent's own ``shard`` label is its own business: untouched, nothing added.
    assert 'marketd_test_shard_restarts_total{shard="1"} 3.0\n' in merged
    _, connected = got["marketd_test_connected"]
    assert [(dict(labels), value) for _, labels, value, _ in connected] == [
        ({"shard": "0"}, "1.0"), ({"shard": "1"}, "0.0"),
    ]  # fmt: skip


def test_one_help_and_type_per_family_and_its_samples_together(merged: str) -> None:
    declared: list[str] = []
    for line in merged.splitlines():
        if line.startswith("# TYPE "):
            declared.append(line.split()[2])
        elif not line.startswith("#"):
            # Every sample follows its own family's TYPE line, hence no family is split.
            name = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group()  # type: ignore[union-attr]
            assert name in {
                declared[-1],
                *(declared[-1] + s for s in ("_bucket", "_sum", "_count")),
            }
    assert len(declared) == len(set(declared))
    helps = [line.split()[2] for line in merged.splitlines() if line.startswith("# HELP ")]
    assert helps == declared


def test_no_sample_has_a_label_twice(merged: str) -> None:
    for line in sample_lines(merged):
        names = label_names(line)
        assert len(names) == len(set(names)), line


def test_values_and_timestamps_are_copied_as_written(
    sources: tuple[list[tuple[str, str | None]], str], merged: str
) -> None:
    assert "marketd_test_connected 1.0\n" in sources[0][0][1]  # type: ignore[operator]
    assert 'marketd_test_connected{shard="0"} 1.0\n' in merged
    assert 'marketd_test_lag_seconds{shard="0",feed="nan"} NaN 1700000000250\n' in merged
    assert 'marketd_test_lag_seconds{shard="1",feed="inf"} +Inf\n' in merged
    assert 'marketd_test_lag_seconds{shard="1",feed="-inf"} -Inf 1700000001000\n' in merged
    assert (
        'marketd_test_latency_seconds_bucket{shard="1",le="+Inf",symbol="BTCUSDT"} 1.0\n' in merged
    )


def test_escaped_label_values_and_help_survive(merged: str) -> None:
    got = families(merged)
    for family in ("marketd_test_messages", "marketd_test_messages_created"):
        odd = [
            dict(labels)["shard"] for _, labels, _, _ in got[family][1] if ("symbol", ODD) in labels
        ]
        assert sorted(odd) == ["0", "1"]
    assert "# HELP marketd_test_messages_total Messages \\\\ received.\\nPer stream.\n" in merged


def test_a_family_only_one_shard_has(merged: str) -> None:
    kind, samples = families(merged)["marketd_test_only_in_one"]
    assert kind == "gauge"
    assert samples == [("marketd_test_only_in_one", frozenset({("shard", "1")}), "7.0", None)]


def test_a_shard_that_did_not_answer_is_left_out(
    sources: tuple[list[tuple[str, str | None]], str], merged: str
) -> None:
    shards, own = sources
    assert 'shard="2"' not in merged
    assert merge_expositions([s for s in shards if s[1] is not None], own) == merged


def test_own_alone_comes_out_as_generate_latest_wrote_it(
    sources: tuple[list[tuple[str, str | None]], str],
) -> None:
    shards, own = sources
    assert merge_expositions([("0", None)], own) == own
    assert merge_expositions([], shards[0][1] or "") == shards[0][1]
    assert merge_expositions([], "") == ""
    assert merge_expositions([("0", None), ("1", None)], "") == ""


def test_another_label_name() -> None:
    text = text_of(shard_registry(0))
    merged = merge_expositions([("a", text)], "", label="worker")
    assert 'marketd_test_connected{worker="a"} 1.0\n' in merged
    assert "shard=" not in merged


def test_shard_ids_are_escaped() -> None:
    shard_id = 'odd "id" \\ with\nnewline'
    merged = merge_expositions([(shard_id, '# TYPE up gauge\nup 1\nv{x="1"} 2\n')], "")
    got = families(merged)
    assert got["up"][1][0][1] == frozenset({("shard", shard_id)})
    assert got["v"][1][0][1] == frozenset({("shard", shard_id), ("x", "1")})


def test_generate_latest_texts_take_the_whole_run_path(
    sources: tuple[list[tuple[str, str | None]], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """What keeps a scrape of the parent cheap: no line of what generate_latest writes goes
    down the line-by-line path (several times slower)."""
    shards, own = sources
    expected = merge_expositions(shards, own)

    def line_by_line(*args: object) -> None:
        raise AssertionError("went line by line")

    monkeypatch.setattr(exposition, "_add_lines", line_by_line)
    assert merge_expositions(shards, own) == expected
    assert merge_expositions(shards, "") != ""


# --- texts that stray from what generate_latest writes ----------------------------------


def test_a_sample_that_has_the_label_already_keeps_it_and_gets_no_second() -> None:
    text = (
        '# HELP x X.\n# TYPE x gauge\nx{shard="7",a="b"} 1\nx{a="c", shard = "8" } 2\nx{a="d"} 3\n'
    )
    merged = merge_expositions([("0", text)], "")
    for line in sample_lines(merged):
        assert label_names(line).count("shard") == 1, line
    _, samples = families(merged)["x"]
    assert {dict(labels)["a"]: dict(labels)["shard"] for _, labels, _, _ in samples} == {
        "b": "7", "c": "8", "d": "0",
    }  # fmt: skip
    assert_promtool_passes(merged)


def test_the_label_name_in_a_value_or_a_metric_name_is_no_label() -> None:
    text = (
        "# HELP x X.\n# TYPE x gauge\n"
        'x{a="shard=",b="x,shard=\\"1\\""} 1\n'
        "# HELP marketd_shard_lag A name with the label in it.\n# TYPE marketd_shard_lag gauge\n"
        "marketd_shard_lag 2\n"
    )
    merged = merge_expositions([("0", text)], "")
    got = families(merged)
    assert got["x"][1][0][1] == frozenset({("a", "shard="), ("b", 'x,shard="1"'), ("shard", "0")})
    assert got["marketd_shard_lag"][1][0][1] == frozenset({("shard", "0")})
    assert_promtool_passes(merged)


def test_empty_label_sets_and_blanks() -> None:
    text = (
        '# HELP x X.\n# TYPE x gauge\nx{} 1\nx{ } 2\nx\t3\nx{a="1"}\t4\n'
        '# HELP b B.\n# TYPE b gauge\nb {a="1"} 1\nb 2\n'
    )
    merged = merge_expositions([("0", text)], "")
    assert 'x{shard="0"} 1\n' in merged
    assert 'x{shard="0"}\t3\n' in merged
    got = families(merged)
    assert {row[2] for row in got["x"][1]} == {"1.0", "2.0", "3.0", "4.0"}
    assert got["b"][1] == rows(
        [("b", {"a": "1", "shard": "0"}, 1, None), ("b", {"shard": "0"}, 2, None)]
    )
    for _, samples in got.values():
        assert all(dict(row[1])["shard"] == "0" for row in samples)
    assert_promtool_passes(merged)


def test_a_text_out_of_generate_latest_order() -> None:
    # Samples before any TYPE, a family in two pieces, comments, blank lines, indentation,
    # blanks before a label set, lines that are no sample.
    own = "# HELP y Y.\n# TYPE y gauge\ny 1\n# HELP loose Loose: only its HELP is here.\n"
    text = (
        "loose 1\n"
        "\n"
        "# a comment\n"
        "# HELP h H.\n# TYPE h histogram\n"
        'h_bucket{le="1"} 1\n  h_bucket {le="+Inf"} 2\n'
        "y 5 1700000000000\n"  # no TYPE of its own here: more of y
        "h_sum 3\n"
        "h_count 2\n"
        "not a sample\n"
        "h_sum{} \n"
        "h_sum oops\n"
        "h_sum 1 2 3\n"
        '{"quoted.name"} 4\n'
    )
    merged = merge_expositions([("0", text), ("1", text)], own)
    got = families(merged)
    assert list(got) == ["y", "loose", "h"]
    assert got["y"][1] == rows(
        [
            ("y", {}, 1, None),
            ("y", {"shard": "0"}, 5, 1700000000.0),
            ("y", {"shard": "1"}, 5, 1700000000.0),
        ]
    )
    assert got["loose"] == ("unknown", rows([("loose", {"shard": s}, 1, None) for s in "01"]))
    assert len(got["h"][1]) == 8
    assert 'h_bucket {shard="1",le="+Inf"} 2\n' in merged
    assert "quoted" not in merged
    assert "not" not in merged
    assert_promtool_passes(merged)


def test_a_type_conflict_keeps_the_first_type_and_drops_the_other_samples() -> None:
    own = "# HELP x X, a gauge here.\n# TYPE x gauge\nx 1\n"
    histogram = (
        "# HELP x X, a histogram there.\n# TYPE x histogram\n"
        'x_bucket{le="+Inf"} 2\nx_sum 3\nx_count 2\n'
        "# HELP z Z.\n# TYPE z gauge\nz 4\n"
    )
    gauge = "# HELP x X.\n# TYPE x gauge\nx 5\n"
    counter = "# HELP x X.\n# TYPE x counter\nx 6\n# HELP z Z.\n# TYPE z gauge\nz 7\n"
    merged = merge_expositions([("0", histogram), ("1", gauge), ("2", counter)], own)
    got = families(merged)
    assert got["x"] == ("gauge", rows([("x", {}, 1, None), ("x", {"shard": "1"}, 5, None)]))
    assert got["z"][1] == rows([("z", {"shard": "0"}, 4, None), ("z", {"shard": "2"}, 7, None)])
    assert "# HELP x X, a gauge here.\n" in merged
    assert "_bucket" not in merged
    assert_promtool_passes(merged)


def test_caller_errors() -> None:
    with pytest.raises(ValueError, match="unique"):
        merge_expositions([("0", ""), ("0", None)], "")
    with pytest.raises(ValueError, match="label name"):
        merge_expositions([], "", label="not-a-label")
    with pytest.raises(ValueError, match="label name"):
        merge_expositions([], "", label="__name__")
