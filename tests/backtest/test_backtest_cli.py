"""``marketd backtest`` through its command module: the rules file shapes, the time
options, the output files (byte-identical across runs), damaged recordings, and the exit
codes with their one-line errors."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import orjson
import pytest
from conftest import T0_MS, Scenario

from marketd.backtest.cli import add_arguments, run
from marketd.backtest.inputs import time_ns

RULES = [{"name": "jump", "window_s": 60, "threshold_pct": 2, "cooldown_s": 30}]


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="marketd backtest")
    add_arguments(parser)
    return parser.parse_args(argv)


def jumps(s: Scenario, seconds: int = 200) -> Path:
    """BTCUSDT at 100, +3 % at 120 s; a trade a second. The recording's directory."""
    for second in range(seconds):
        s.agg_trade("BTCUSDT", "103.00" if second >= 120 else "100.00", second * 1000)
    return s.write(max_segment_s=30.0)


def rules_file(tmp_path: Path, content: object, name: str = "rules.json") -> Path:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def test_a_run_prints_the_report_and_writes_identical_files_each_time(
    scenario: Scenario, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = jumps(scenario)
    rules = rules_file(tmp_path, {"rules": RULES})
    outputs = []
    for n in (1, 2):
        files = [tmp_path / f"r{n}.json", tmp_path / f"r{n}.csv", tmp_path / f"r{n}.html"]
        code = run(parse([str(directory), "--rules", str(rules), "--json", str(files[0]),
                          "--csv", str(files[1]), "--html", str(files[2])]))  # fmt: skip
        assert code == 0
        outputs.append([f.read_bytes() for f in files])
    assert outputs[0] == outputs[1]
    out, err = capsys.readouterr()
    assert "rule jump: 2% in 60s, cooldown 30s [price]" in out
    assert "BTCUSDT" in out
    # Not a terminal: one final line per run on stderr, no progress lines.
    assert [line.split(",")[0] for line in err.splitlines()] == ["backtest: 200 entries"] * 2
    document = orjson.loads(outputs[0][0])
    assert [(a["symbol"], a["price"]) for a in document["alerts"]] == [("BTCUSDT", "103.00")]


def test_quiet_prints_no_progress(
    scenario: Scenario, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = jumps(scenario)
    code = run(parse([str(directory), "--rules", str(rules_file(tmp_path, RULES)), "--quiet"]))
    assert code == 0
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("rules.json", RULES),
        ("rules.json", {"rules": RULES}),
        ("rules.yaml", "rules:\n  - name: jump\n    window_s: 60\n    threshold_pct: 2\n"),
        ("rules.yaml", "- {name: jump, window_s: 60, threshold_pct: '2'}\n"),
    ],
)
def test_every_rules_shape_marketd_reads_is_accepted(
    scenario: Scenario, tmp_path: Path, name: str, content: object
) -> None:
    directory = jumps(scenario)
    out = tmp_path / "out.json"
    rules = rules_file(tmp_path, content, name)
    assert run(parse([str(directory), "--rules", str(rules), "--json", str(out), "--quiet"])) == 0
    document = orjson.loads(out.read_bytes())
    assert [r["rule"]["name"] for r in document["rules"]] == ["jump"]
    assert len(document["alerts"]) == 1


def test_a_configuration_file_gives_its_rules_kinds_and_markets(
    scenario: Scenario, tmp_path: Path
) -> None:
    directory = jumps(scenario)
    config = (
        "kafka:\n  bootstrap_servers: ''\n"
        "alerts:\n  kinds: [aggTrade]\n  markets: [usdm]\n"
        "  rules:\n    - name: jump\n      window_s: 60\n      threshold_pct: 2\n"
    )
    out = tmp_path / "out.json"
    rules = rules_file(tmp_path, config, "marketd.yaml")
    assert run(parse([str(directory), "--rules", str(rules), "--json", str(out), "--quiet"])) == 0
    document = orjson.loads(out.read_bytes())
    assert document["watched"] == {"kinds": ["aggTrade"], "markets": ["usdm"]}
    assert len(document["alerts"]) == 1
    # The daemon's default kinds (24hrMiniTicker) where the file names none: no trade read.
    rules.write_text("alerts:\n  rules:\n    - name: jump\n")
    assert run(parse([str(directory), "--rules", str(rules), "--json", str(out), "--quiet"])) == 0
    assert orjson.loads(out.read_bytes())["statistics"]["decode"]["ticks"] == 0


@pytest.mark.parametrize(
    ("name", "content", "says"),
    [
        ("rules.json", [{"name": "jump", "window_s": -1}], "rules[0].window_s: must be"),
        ("rules.json", [{"name": "jump", "colour": "red"}], "rules[0].colour: unknown key"),
        ("rules.json", [], "rules: at least one rule is needed"),
        ("rules.json", "[{", "not valid JSON"),
        ("rules.yaml", "rules: [\n", "not valid YAML"),
        ("rules.yaml", "other: 1\n", "got keys ['other']"),
        ("rules.yaml", "alerts:\n  rules: [{name: 'a b'}]\n", "alerts.rules[0].name: must be"),
        ("rules.yaml", "alerts:\n  kinds: [depthUpdate]\n", "alerts.kinds: ['depthUpdate']"),
    ],
)
def test_a_bad_rules_file_exits_2_with_one_line(
    scenario: Scenario,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    content: object,
    says: str,
) -> None:
    directory = jumps(scenario, 5)
    rules = rules_file(tmp_path, content, name)
    assert run(parse([str(directory), "--rules", str(rules)])) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert len(err.splitlines()) == 1
    assert err.startswith(f"error: {rules}: ")
    assert says in err


def test_a_missing_rules_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(parse([str(tmp_path), "--rules", str(tmp_path / "none.yaml")])) == 2
    err = capsys.readouterr().err
    assert err == f"error: cannot read the rules file {str(tmp_path / 'none.yaml')!r}: " \
        "No such file or directory\n"  # fmt: skip


@pytest.mark.parametrize("what", ["missing", "empty", "file"])
def test_a_directory_that_is_no_recording_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], what: str
) -> None:
    directory = tmp_path / "recording"
    if what == "empty":
        directory.mkdir()
    elif what == "file":
        directory.write_text("not a directory")
    rules = rules_file(tmp_path, RULES)
    assert run(parse([str(directory), "--rules", str(rules)])) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1
    if what == "empty":
        assert err == f"error: {str(directory)!r} holds no recording segments (*.seg.zst)\n"
    else:
        assert err.startswith(f"error: cannot read the recording {str(directory)!r}: ")


def test_an_unwritable_report_file_exits_1(
    scenario: Scenario, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = jumps(scenario, 5)
    target = tmp_path / "no" / "such" / "dir.json"
    code = run(parse([str(directory), "--rules", str(rules_file(tmp_path, RULES)),
                      "--json", str(target), "--quiet"]))  # fmt: skip
    assert code == 1
    assert capsys.readouterr().err.startswith(f"error: cannot write {str(target)!r}: ")


def test_times_are_iso_utc_or_epoch_milliseconds() -> None:
    ns = T0_MS * 1_000_000
    assert time_ns("2024-05-01T00:00:00Z") == ns
    assert time_ns("2024-05-01T00:00:00") == ns
    assert time_ns("2024-05-01") == ns
    assert time_ns("2024-05-01T02:00:00+02:00") == ns
    assert time_ns("2024-05-01T00:00:00.001Z") == ns + 1_000_000
    assert time_ns(str(T0_MS)) == ns
    with pytest.raises(argparse.ArgumentTypeError, match="ISO-8601"):
        time_ns("yesterday")


def test_bad_options_exit_2(
    tmp_path: Path, scenario: Scenario, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse([str(tmp_path), "--rules", "r.yaml", "--from", "soon"])
    assert exit_info.value.code == 2
    assert "argument --from: must be an ISO-8601 time" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse([str(tmp_path), "--rules", "r.yaml", "--kinds", "depthUpdate"])
    assert "argument --kinds: must be comma-separated event kinds" in capsys.readouterr().err
    directory = jumps(scenario, 5)
    argv = [str(directory), "--rules", str(rules_file(tmp_path, RULES)),
            "--from", "2024-05-02", "--to", "2024-05-01"]  # fmt: skip
    assert run(parse(argv)) == 2
    assert capsys.readouterr().err == "error: --from must be before --to\n"


def test_from_and_to_on_the_command_line_select_the_alerts(
    scenario: Scenario, tmp_path: Path
) -> None:
    directory = jumps(scenario)
    out = tmp_path / "out.json"
    rules = str(rules_file(tmp_path, RULES))
    base = [str(directory), "--rules", rules, "--json", str(out), "--quiet"]
    assert run(parse([*base, "--to", str(T0_MS + 100_000)])) == 0
    assert orjson.loads(out.read_bytes())["alerts"] == []
    assert run(parse([*base, "--from", "2024-05-01T00:01:30Z"])) == 0
    document = orjson.loads(out.read_bytes())
    # Windows start empty at --from: the jump is measured from the first price after it.
    assert [(a["base_time_ms"], a["price_time_ms"]) for a in document["alerts"]] == [
        (T0_MS + 90_000, T0_MS + 120_000)
    ]
    assert document["range"] == {"from_ns": (T0_MS + 90_000) * 1_000_000, "to_ns": None}


def test_a_damaged_segment_is_counted_and_the_rest_is_read(
    scenario: Scenario, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = jumps(scenario)
    segments = sorted(directory.glob("*.seg.zst"))
    assert len(segments) > 3
    damaged = segments[1]
    data = bytearray(damaged.read_bytes())
    data[24 + 24 + 10] ^= 0xFF  # in the first block's zstd frame: its crc32 fails
    damaged.write_bytes(bytes(data))
    out = tmp_path / "out.json"
    rules = str(rules_file(tmp_path, RULES))
    assert run(parse([str(directory), "--rules", rules, "--json", str(out), "--quiet"])) == 0
    document = orjson.loads(out.read_bytes())
    assert document["statistics"]["read"]["corrupt_blocks"] == 1
    assert document["statistics"]["read"]["entries"] < 200
    assert "damage    1 corrupt blocks" in capsys.readouterr().out
