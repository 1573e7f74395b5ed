"""Rendering the effective configuration, check_config, and conf/marketd.yaml."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import attrs
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from marketd.config.load import check_config, load_settings, render_settings, to_plain
from marketd.config.settings import (
    BackoffSettings,
    KafkaSettings,
    Settings,
    Subscription,
)
from marketd.data.records import Market

CONF = Path(__file__).resolve().parents[2] / "conf" / "marketd.yaml"

SASL = {
    "MARKETD_KAFKA__BOOTSTRAP_SERVERS": "kafka:9093",
    "MARKETD_KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
    "MARKETD_KAFKA__SASL_MECHANISM": "SCRAM-SHA-512",
    "MARKETD_KAFKA__SASL_USERNAME": "marketd",
    "MARKETD_KAFKA__SASL_PASSWORD": "hunter2-very-secret",
}


def reload(text: str, tmp_path: Path) -> Settings:
    path = tmp_path / "rendered.yaml"
    path.write_text(text, encoding="utf-8")
    return load_settings(path, {})


# --- masking -------------------------------------------------------------------------


def test_secret_is_masked_when_set() -> None:
    settings = load_settings(None, SASL)
    assert settings.kafka.sasl_password == "hunter2-very-secret"
    text = render_settings(settings)
    assert "hunter2" not in text
    assert yaml.safe_load(text)["kafka"]["sasl_password"] == "***"
    assert yaml.safe_load(text)["kafka"]["sasl_username"] == "marketd"
    assert "hunter2" not in repr(settings)


def test_empty_secret_is_shown_empty() -> None:
    assert yaml.safe_load(render_settings(Settings()))["kafka"]["sasl_password"] == ""


def test_masking_follows_field_metadata() -> None:
    secrets = [f.name for f in attrs.fields(KafkaSettings) if f.metadata.get("secret")]
    assert secrets == ["sasl_password"]
    assert to_plain(load_settings(None, SASL), mask=False)["kafka"]["sasl_password"] == (
        "hunter2-very-secret"
    )


# --- round trip ----------------------------------------------------------------------


def test_round_trip_defaults(tmp_path: Path) -> None:
    assert reload(render_settings(Settings()), tmp_path) == Settings()


def test_round_trip_customised(tmp_path: Path) -> None:
    custom = attrs.evolve(
        Settings(),
        subscriptions=(
            Subscription(Market.SPOT, ("btcusdt",), ("kline_1s", "depth5@100ms")),
            Subscription(Market.USDM, ("ETHUSDT",), ("markPrice@1s",), ("!forceOrder@arr",)),
        ),
        kafka=attrs.evolve(
            Settings().kafka,
            bootstrap_servers="a:1,b:2",
            compression="zstd",
            retry=BackoffSettings(initial_s=1, max_s=1, multiplier=1, jitter=0),
        ),
    )
    assert reload(render_settings(custom), tmp_path) == custom


def test_round_trip_with_secret_unmasked(tmp_path: Path) -> None:
    settings = load_settings(None, SASL)
    text = yaml.safe_dump(to_plain(settings, mask=False))
    assert reload(text, tmp_path) == settings


@pytest.mark.parametrize("odd", ["\x85", "a\u2028b", "end\u2029"])
def test_round_trip_of_characters_yaml_reads_as_line_breaks(tmp_path: Path, odd: str) -> None:
    custom = attrs.evolve(Settings(), kafka=attrs.evolve(Settings().kafka, sasl_username=odd))
    assert reload(render_settings(custom), tmp_path).kafka.sasl_username == odd


backoffs = st.builds(
    lambda initial, extra, multiplier, jitter, reset: BackoffSettings(
        initial, initial + extra, multiplier, jitter, reset
    ),
    st.floats(1e-3, 1e3),
    st.floats(0, 1e3),
    st.floats(1, 10),
    st.floats(0, 1),
    st.floats(1e-3, 1e5),
)


# No deadline: each example writes and reads a file, whose time depends on the machine.
@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(reconnect=backoffs, restart=backoffs, linger=st.integers(0, 10**6), odd=st.text())
def test_round_trip_property(
    tmp_path: Path, reconnect: BackoffSettings, restart: BackoffSettings, linger: int, odd: str
) -> None:
    settings_ = Settings()
    custom = attrs.evolve(
        settings_,
        binance=attrs.evolve(settings_.binance, reconnect=reconnect),
        supervisor=attrs.evolve(settings_.supervisor, restart=restart),
        kafka=attrs.evolve(settings_.kafka, linger_ms=linger, sasl_username=odd),
    )
    assert reload(render_settings(custom), tmp_path) == custom


# --- check_config --------------------------------------------------------------------


def test_check_config_prints_the_effective_configuration(tmp_path: Path) -> None:
    out = io.StringIO()
    assert check_config(None, {"MARKETD_LOG__LEVEL": "debug"}, out) == 0
    assert yaml.safe_load(out.getvalue())["log"]["level"] == "debug"


def test_check_config_lists_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("kafka: {linger_ms: -1}\nhttp: {listen: nowhere}\n", encoding="utf-8")
    out = io.StringIO()
    assert check_config(path, {"MARKETD_KAFKA__BOOTSTRAP_SERVER": "k:1"}, out) == 2
    lines = out.getvalue().splitlines()
    assert lines[0] == "error: invalid configuration"
    assert [line.strip().split(":")[0] for line in lines[1:]] == [
        "MARKETD_KAFKA__BOOTSTRAP_SERVER",
        "kafka.linger_ms",
        "http.listen",
    ]


# --- conf/marketd.yaml ---------------------------------------------------------------


def leaf_keys(value: Any, path: str = "") -> set[str]:
    if isinstance(value, dict):
        keys: set[str] = set()
        for key, item in value.items():
            keys |= leaf_keys(item, f"{path}.{key}" if path else key)
        return keys
    return {path}


def test_documented_file_is_the_defaults() -> None:
    assert load_settings(CONF, {}) == Settings()


def test_documented_file_has_every_key() -> None:
    documented = yaml.safe_load(CONF.read_text(encoding="utf-8"))
    assert leaf_keys(documented) == leaf_keys(to_plain(Settings()))
    subscription_keys = {key for item in documented["subscriptions"] for key in item}
    assert subscription_keys == {f.name for f in attrs.fields(Subscription)}


def test_documented_file_has_a_comment_above_every_key() -> None:
    lines = CONF.read_text(encoding="utf-8").splitlines()
    key_line = re.compile(r"^\s*([a-z_]+):")
    in_subscriptions = False
    for number, line in enumerate(lines):
        match = key_line.match(line)
        if not match:
            continue
        if not line.startswith(" "):
            in_subscriptions = match.group(1) == "subscriptions"
        if in_subscriptions and line.startswith(" "):
            continue  # the subscription keys are documented in the block above the list
        above = lines[number - 1].strip()
        # A top-level section may follow a blank line; its keys carry the comments.
        if line.startswith(" ") or match.group(1) == "subscriptions":
            assert above.startswith("#"), f"conf/marketd.yaml:{number + 1}: {line.strip()}"
