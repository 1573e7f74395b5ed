"""Loading the YAML file: defaults, overlay, unknown keys, types, ranges, subscriptions."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest

from marketd.config.load import load_settings
from marketd.config.settings import BackoffSettings, Settings, Subscription
from marketd.data.records import Market
from marketd.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "marketd.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, text), environ or {})
    assert caught.value.problems, "a ConfigError must list its problems"
    return caught.value.problems


def only_problem(tmp_path: Path, text: str) -> str:
    problems = problems_of(tmp_path, text)
    assert len(problems) == 1, problems
    return problems[0]


# --- defaults ------------------------------------------------------------------------


def test_no_file_and_no_environment_gives_defaults() -> None:
    assert load_settings(None, {}) == Settings()


@pytest.mark.parametrize(
    "text",
    ["", "\n", "# only a comment\n", "---\n", "kafka:\n  # linger_ms: 5\nlog:\n"],
    ids=["empty", "blank", "comment", "document-marker", "sections-all-commented-out"],
)
def test_empty_file_or_sections_give_defaults(tmp_path: Path, text: str) -> None:
    assert load_settings(write(tmp_path, text), {}) == Settings()


def test_defaults_pass_their_own_validators() -> None:
    settings = Settings()
    assert attrs.evolve(settings) == settings
    assert not settings.kafka.enabled


# --- overlay -------------------------------------------------------------------------


def test_yaml_overlays_defaults_key_by_key(tmp_path: Path) -> None:
    text = """
binance:
  spot_ws_url: ws://127.0.0.1:9000
  reconnect: {max_s: 5}
kafka:
  bootstrap_servers: broker-1:9092,broker-2:9092
  retry:
    max_s: 3
log:
  level: DEBUG
"""
    settings = load_settings(write(tmp_path, text), {})
    assert settings.binance.spot_ws_url == "ws://127.0.0.1:9000"
    assert settings.binance.spot_rest_url == Settings().binance.spot_rest_url
    assert settings.binance.reconnect == BackoffSettings(max_s=5.0)
    # A partial section keeps that section's defaults, not the class defaults.
    assert settings.kafka.retry == attrs.evolve(Settings().kafka.retry, max_s=3.0)
    assert settings.kafka.enabled
    assert settings.log.level == "debug"
    assert settings.pipeline == Settings().pipeline


def test_subscriptions_replace_the_default_list(tmp_path: Path) -> None:
    text = """
subscriptions:
  - market: spot
    symbols: [btcusdt, EthUsdt]
    channels: [aggTrade, bookTicker]
  - market: USDM
    symbols: [BTCUSDT_260626]
    channels: [markPrice@1s]
    streams: ["!markPrice@arr@1s", "BTCUSDT@aggTrade"]
"""
    settings = load_settings(write(tmp_path, text), {})
    assert settings.subscriptions == (
        Subscription(Market.SPOT, ("BTCUSDT", "ETHUSDT"), ("aggTrade", "bookTicker")),
        Subscription(
            Market.USDM,
            ("BTCUSDT_260626",),
            ("markPrice@1s",),
            ("!markPrice@arr@1s", "btcusdt@aggTrade"),
        ),
    )


def test_config_path_from_marketd_config(tmp_path: Path) -> None:
    path = write(tmp_path, "log: {level: error}\n")
    assert load_settings(None, {"MARKETD_CONFIG": str(path)}).log.level == "error"
    other = tmp_path / "other.yaml"
    other.write_text("log: {level: warning}\n", encoding="utf-8")
    # --config wins over MARKETD_CONFIG.
    assert load_settings(other, {"MARKETD_CONFIG": str(path)}).log.level == "warning"


# --- unknown keys --------------------------------------------------------------------


def test_unknown_top_level_section(tmp_path: Path) -> None:
    problem = only_problem(tmp_path, "kafak:\n  linger_ms: 5\n")
    assert problem.startswith("kafak: unknown section (did you mean kafka?)")
    assert "marketd.yaml:1" in problem


def test_unknown_nested_keys_are_named_with_their_line(tmp_path: Path) -> None:
    text = "kafka:\n  linger_ms: 5\n  retry:\n    max_seconds: 3\n"
    problem = only_problem(tmp_path, text)
    assert problem.startswith("kafka.retry.max_seconds: unknown key")
    assert problem.endswith(f"({tmp_path / 'marketd.yaml'}:4)")


def test_unknown_key_in_a_subscription(tmp_path: Path) -> None:
    text = (
        "subscriptions:\n"
        "  - {market: usdm, streams: ['!bookTicker']}\n"
        "  - {market: spot, symbol: [BTCUSDT]}\n"
    )
    problems = problems_of(tmp_path, text)
    assert any(
        p.startswith("subscriptions[1].symbol: unknown key (did you mean symbols?)")
        for p in problems
    )


def test_key_given_twice(tmp_path: Path) -> None:
    problem = only_problem(tmp_path, "log:\n  level: info\n  level: debug\n")
    assert problem.startswith("log.level: given twice")
    assert ":2 and " in problem
    assert problem.endswith(":3)")


# --- wrong types ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "key", "expected"),
    [
        ("kafka: {linger_ms: five}", "kafka.linger_ms", "expected an integer, got 'five'"),
        ("kafka: {linger_ms: 5.5}", "kafka.linger_ms", "expected an integer, got 5.5"),
        ("kafka: {linger_ms: true}", "kafka.linger_ms", "expected an integer, got True"),
        ("kafka: {linger_ms: }", "kafka.linger_ms", "expected an integer, got nothing"),
        ("binance: {stale_after_s: [1]}", "binance.stale_after_s", "expected a number, got a list"),
        ("pipeline: {backfill_trades: maybe}", "pipeline.backfill_trades", "expected a boolean"),
        ("kafka: {client_id: 42}", "kafka.client_id", "expected a string, got 42"),
        ("binance: 5", "binance", "expected a mapping of keys, got 5"),
        ("kafka: {retry: fast}", "kafka.retry", "expected a mapping of keys, got 'fast'"),
        ("subscriptions: {market: spot}", "subscriptions", "expected a list, got a mapping"),
        ("subscriptions: [spot]", "subscriptions[0]", "expected a mapping of keys, got 'spot'"),
        (
            "subscriptions: [{market: margin, streams: []}]",
            "subscriptions[0].market",
            "expected one of spot, usdm",
        ),
        (
            "subscriptions: [{streams: ['!miniTicker@arr']}]",
            "subscriptions[0].market",
            "required key is missing",
        ),
        (
            "subscriptions: [{market: spot, symbols: BTCUSDT, channels: 5}]",
            "subscriptions[0].channels",
            "expected a list, got 5",
        ),
    ],
)
def test_wrong_type_names_the_key(tmp_path: Path, text: str, key: str, expected: str) -> None:
    problem = only_problem(tmp_path, text + "\n")
    assert problem.startswith(f"{key}: {expected}")
    assert "marketd.yaml:1)" in problem


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    assert "top level must be a mapping" in only_problem(tmp_path, "- kafka\n")


# --- ranges --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "key", "expected"),
    [
        (
            "binance: {max_streams_per_connection: 0}",
            "binance.max_streams_per_connection",
            "must be in [1, 1024], got 0",
        ),
        (
            "binance: {max_streams_per_connection: 1025}",
            "binance.max_streams_per_connection",
            "must be in [1, 1024]",
        ),
        (
            "binance: {spot_messages_per_second: 6}",
            "binance.spot_messages_per_second",
            "must be in (0, 5], got 6.0",
        ),
        (
            "binance: {spot_messages_per_second: 0}",
            "binance.spot_messages_per_second",
            "must be in (0, 5]",
        ),
        (
            "binance: {futures_messages_per_second: 10.5}",
            "binance.futures_messages_per_second",
            "must be in (0, 10]",
        ),
        (
            "binance: {spot_ws_url: 'https://stream.binance.com'}",
            "binance.spot_ws_url",
            "must be a ws:// or wss:// URL",
        ),
        (
            "binance: {futures_rest_url: 'wss://fapi.binance.com'}",
            "binance.futures_rest_url",
            "must be a http:// or https:// URL",
        ),
        ("binance: {spot_rest_url: 'https://'}", "binance.spot_rest_url", "with a host"),
        ("binance: {stale_after_s: 0}", "binance.stale_after_s", "must be > 0, got 0.0"),
        ("binance: {connect_timeout_s: -1}", "binance.connect_timeout_s", "must be > 0"),
        ("binance: {rotate_after_s: 90000}", "binance.rotate_after_s", "must be in (0, 86400]"),
        ("binance: {max_frames_per_batch: 0}", "binance.max_frames_per_batch", "must be >= 1"),
        (
            "binance: {reconnect: {jitter: 1.5}}",
            "binance.reconnect.jitter",
            "must be in [0, 1], got 1.5",
        ),
        ("binance: {reconnect: {multiplier: 0.5}}", "binance.reconnect.multiplier", "must be >= 1"),
        (
            "binance: {reconnect: {initial_s: 5, max_s: 1}}",
            "binance.reconnect.max_s",
            "must be >= initial_s (5), got 1.0",
        ),
        (
            "binance: {reconnect: {initial_s: .nan}}",
            "binance.reconnect.initial_s",
            "expected a number, got nan",
        ),
        (
            "kafka: {compression: brotli}",
            "kafka.compression",
            "must be one of none, gzip, snappy, lz4, zstd",
        ),
        (
            "kafka: {security_protocol: TLS}",
            "kafka.security_protocol",
            "must be one of PLAINTEXT, SSL",
        ),
        (
            "kafka: {sasl_mechanism: PLAIN}",
            "kafka.sasl_mechanism",
            "needs security_protocol SASL_PLAINTEXT or SASL_SSL",
        ),
        (
            "kafka: {sasl_mechanism: GSSAPI}",
            "kafka.sasl_mechanism",
            "must be one of '', PLAIN, SCRAM-SHA-256",
        ),
        ("kafka: {linger_ms: -1}", "kafka.linger_ms", "must be >= 0, got -1"),
        ("kafka: {linger_records: -1}", "kafka.linger_records", "must be >= 0, got -1"),
        ("kafka: {linger_max_ms: 60001}", "kafka.linger_max_ms", "must be in [0, 60000]"),
        (
            "pipeline: {batch_interval_ms: 1001}",
            "pipeline.batch_interval_ms",
            "must be in [0, 1000]",
        ),
        ("pipeline: {batch_interval_ms: -1}", "pipeline.batch_interval_ms", "must be in [0, 1000]"),
        (
            "readiness: {books_resync_grace_s: 3601}",
            "readiness.books_resync_grace_s",
            "must be in [0, 3600]",
        ),
        ("kafka: {max_inflight_batches: 0}", "kafka.max_inflight_batches", "must be >= 1"),
        ("kafka: {client_id: ''}", "kafka.client_id", "must not be empty"),
        (
            "kafka: {bootstrap_servers: 'broker'}",
            "kafka.bootstrap_servers",
            "'broker': must be host:port",
        ),
        ("kafka: {topics: {raw: 'market data'}}", "kafka.topics.raw", "must be a Kafka topic name"),
        ("pipeline: {channel_capacity: 0}", "pipeline.channel_capacity", "must be >= 1, got 0"),
        ("http: {listen: 'localhost'}", "http.listen", "must be host:port, got 'localhost'"),
        ("http: {listen: '0.0.0.0:70000'}", "http.listen", "port must be in 0..65535, got 70000"),
        ("http: {listen: '::1:8080'}", "http.listen", "write IPv6 as [address]:port"),
        (
            "log: {level: verbose}",
            "log.level",
            "must be one of debug, info, warning, error; got 'verbose'",
        ),
        ("log: {format: xml}", "log.format", "must be one of console, json"),
        ("log: {stats_interval_s: 0}", "log.stats_interval_s", "must be > 0"),
        ("shutdown: {grace_s: -1}", "shutdown.grace_s", "must be >= 0"),
        (
            "supervisor: {restart: {reset_after_s: 0}}",
            "supervisor.restart.reset_after_s",
            "must be > 0",
        ),
        ("subscriptions: []", "subscriptions", "at least one subscription is needed"),
    ],
)
def test_out_of_range_names_key_and_range(
    tmp_path: Path, text: str, key: str, expected: str
) -> None:
    problem = only_problem(tmp_path, text + "\n")
    assert problem.startswith(f"{key}: ")
    assert expected in problem


@pytest.mark.parametrize("listen", ["127.0.0.1:0", "0.0.0.0:8080", "[::1]:9000", "localhost:65535"])
def test_listen_addresses_accepted(tmp_path: Path, listen: str) -> None:
    settings = load_settings(write(tmp_path, f"http: {{listen: '{listen}'}}\n"), {})
    assert settings.http.listen == listen


def test_sasl_needs_mechanism_and_credentials(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, "kafka: {security_protocol: sasl_ssl}\n")
    assert [p.split(" (")[0] for p in problems] == [
        "kafka.sasl_mechanism: must be set when security_protocol is SASL_SSL"
    ]
    problems = problems_of(
        tmp_path, "kafka: {security_protocol: SASL_SSL, sasl_mechanism: scram-sha-512}\n"
    )
    assert [p.split(": ")[0] for p in problems] == ["kafka.sasl_username", "kafka.sasl_password"]


def test_all_problems_are_reported_together(tmp_path: Path) -> None:
    text = """
binance:
  max_streams_per_connection: 2000
  reconnect: {jitter: -0.1}
kafka:
  linger_ms: soon
  compression: xz
  colour: blue
http: {listen: nowhere}
subscriptions:
  - {market: spot, streams: ["!ticker@arr"]}
  - {market: usdm, channels: [markPrice]}
"""
    environ = {"MARKETD_LOG__LEVEL": "loud", "MARKETD_KAFKA__BOOTSTRAP_SERVER": "x:1"}
    problems = problems_of(tmp_path, text, environ)
    keys = sorted(p.split(":")[0] for p in problems)
    assert keys == sorted(
        [
            "MARKETD_KAFKA__BOOTSTRAP_SERVER",
            "binance.max_streams_per_connection",
            "binance.reconnect.jitter",
            "kafka.linger_ms",
            "kafka.compression",
            "kafka.colour",
            "http.listen",
            "subscriptions[0].streams",
            "subscriptions[1].channels",
            "log.level",
        ]
    )
    assert any(
        p.startswith("log.level") and p.endswith("(from MARKETD_LOG__LEVEL)") for p in problems
    )
    assert any(p.startswith("kafka.linger_ms") and p.endswith("marketd.yaml:6)") for p in problems)


def test_a_bad_key_does_not_cause_spurious_problems_in_its_siblings(tmp_path: Path) -> None:
    # initial_s falls back to its default (0.5) while checking; max_s 0.3 < 0.5 must not
    # be reported, as it is fine against the intended initial_s.
    text = "binance: {reconnect: {initial_s: short, max_s: 0.3}}\n"
    problem = only_problem(tmp_path, text)
    assert problem.startswith("binance.reconnect.initial_s: expected a number")


# --- subscriptions -------------------------------------------------------------------


def subscription_problems(tmp_path: Path, *items: str) -> list[str]:
    text = "subscriptions:\n" + "".join(f"  - {item}\n" for item in items)
    return [p.rsplit(" (", 1)[0] for p in problems_of(tmp_path, text)]


def test_ticker_arr_is_rejected_on_spot_with_the_reason(tmp_path: Path) -> None:
    (problem,) = subscription_problems(tmp_path, "{market: spot, streams: ['!ticker@arr']}")
    assert problem.startswith("subscriptions[0].streams: !ticker@arr is not available on spot")
    assert "retired it on spot on 2026-03-26" in problem


def test_ticker_arr_is_accepted_on_futures(tmp_path: Path) -> None:
    path = write(tmp_path, "subscriptions: [{market: usdm, streams: ['!ticker@arr']}]\n")
    assert load_settings(path, {}).subscriptions[0].streams == ("!ticker@arr",)


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ("{market: spot}", "subscriptions[0]: subscribes to nothing"),
        (
            "{market: spot, symbols: [], channels: [], streams: []}",
            "subscriptions[0]: subscribes to nothing",
        ),
        (
            "{market: usdm, channels: [aggTrade]}",
            "subscriptions[0].channels: channels are given but no symbols",
        ),
        (
            "{market: spot, symbols: [BTCUSDT]}",
            "subscriptions[0].symbols: symbols are given but no channels",
        ),
        (
            "{market: spot, symbols: [BTC-USDT], channels: [trade]}",
            "subscriptions[0].symbols: 'BTC-USDT' is not a symbol",
        ),
        (
            "{market: spot, symbols: [BTCUSDT_260626], channels: [trade]}",
            "subscriptions[0].symbols: 'BTCUSDT_260626' is not a symbol",
        ),
        (
            "{market: spot, symbols: [BTCUSDT, btcusdt], channels: [trade]}",
            "subscriptions[0].symbols: BTCUSDT is given twice",
        ),
        (
            "{market: usdm, symbols: [BTCUSDT], channels: [trade]}",
            "subscriptions[0].channels: unknown channel 'trade' on usdm",
        ),
        (
            "{market: spot, symbols: [BTCUSDT], channels: [markPrice]}",
            "subscriptions[0].channels: unknown channel 'markPrice' on spot",
        ),
        (
            "{market: spot, symbols: [BTCUSDT], channels: [aggtrade]}",
            "subscriptions[0].channels: unknown channel 'aggtrade' on spot (did you mean aggTrade?",
        ),
        (
            "{market: spot, streams: ['!bookTicker']}",
            "subscriptions[0].streams: !bookTicker is not available on spot",
        ),
        (
            "{market: usdm, streams: ['!allTheThings']}",
            "subscriptions[0].streams: unknown all-market stream '!allTheThings' on usdm",
        ),
        (
            "{market: spot, streams: [btcusdt]}",
            "subscriptions[0].streams: 'btcusdt' is not a stream name",
        ),
    ],
)
def test_bad_subscription(tmp_path: Path, item: str, expected: str) -> None:
    problems = subscription_problems(tmp_path, item)
    assert len(problems) == 1, problems
    assert problems[0].startswith(expected)


@pytest.mark.parametrize(
    ("market", "channel"),
    [
        ("spot", "trade"),
        ("spot", "depth@1000ms"),
        ("spot", "depth20@100ms"),
        ("spot", "kline_1s"),
        ("spot", "avgPrice"),
        ("usdm", "depth@250ms"),
        ("usdm", "depth5@500ms"),
        ("usdm", "markPrice"),
        ("usdm", "kline_1M"),
    ],
)
def test_known_channels_are_accepted(tmp_path: Path, market: str, channel: str) -> None:
    text = f"subscriptions: [{{market: {market}, symbols: [BTCUSDT], channels: ['{channel}']}}]\n"
    assert load_settings(write(tmp_path, text), {}).subscriptions[0].channels == (channel,)


# --- the file itself -----------------------------------------------------------------


def test_yaml_syntax_error_names_path_and_line(tmp_path: Path) -> None:
    problem = only_problem(tmp_path, "kafka:\n  linger_ms: 5\n  topics: {raw: a\nlog: {}\n")
    assert problem.startswith(f"{tmp_path / 'marketd.yaml'}:4:")
    assert "invalid YAML" in problem


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path / "absent.yaml", {})
    (problem,) = caught.value.problems
    assert problem.startswith(f"{tmp_path / 'absent.yaml'}: cannot read the configuration file")


def test_missing_file_named_by_marketd_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(None, {"MARKETD_CONFIG": str(tmp_path / "absent.yaml")})
    assert "(named by MARKETD_CONFIG)" in caught.value.problems[0]


def test_several_documents_are_refused(tmp_path: Path) -> None:
    assert "invalid YAML" in only_problem(tmp_path, "log: {}\n---\nhttp: {}\n")
