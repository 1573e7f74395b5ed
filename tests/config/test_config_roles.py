"""The ``roles`` setting: values from the file and MARKETD_ROLES, every problem named, and
what check-config says a configuration runs."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import yaml

from marketd.config.load import check_config, load_settings
from marketd.config.settings import Settings
from marketd.errors import ConfigError
from marketd.roles import Roles

KAFKA = {"MARKETD_KAFKA__BOOTSTRAP_SERVERS": "kafka:9092"}


def problems(environ: dict[str, str], text: str | None = None, tmp_path: Path | None = None):
    path = None
    if text is not None:
        assert tmp_path is not None
        path = tmp_path / "marketd.yaml"
        path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ)
    return caught.value.problems


def test_default_is_every_role_in_one_process() -> None:
    settings = Settings()
    assert settings.roles == ("collector", "detector", "gateway")
    roles = Roles.of(settings.roles, alerts_enabled=settings.alerts.enabled)
    assert roles == Roles(collector=True, detector=True, gateway=True, alerts_from_kafka=False)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("collector,gateway", ("collector", "gateway")),
        (" Collector , GATEWAY ", ("collector", "gateway")),
        ("[detector, gateway]", ("detector", "gateway")),
        ("gateway", ("gateway",)),
    ],
)
def test_roles_from_the_environment(value: str, expected: tuple[str, ...]) -> None:
    environ = {"MARKETD_ROLES": value, "MARKETD_ALERTS__SOURCE": "kafka", **KAFKA}
    assert load_settings(None, environ).roles == expected


def test_roles_from_the_file(tmp_path: Path) -> None:
    path = tmp_path / "marketd.yaml"
    path.write_text(
        "roles: [detector]\nalerts: {source: kafka}\nkafka: {bootstrap_servers: 'k:1'}\n",
        encoding="utf-8",
    )
    settings = load_settings(path, {})
    assert settings.roles == ("detector",)
    roles = Roles.of(settings.roles, alerts_enabled=True)
    assert roles == Roles(collector=False, detector=True, gateway=False, alerts_from_kafka=False)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            "collector,feeder",
            "roles: 'feeder' is not a role (collector, detector, gateway, recorder)",
        ),
        ("", "roles: at least one role is needed (collector, detector, gateway, recorder)"),
        ("[]", "roles: at least one role is needed (collector, detector, gateway, recorder)"),
        ("collector,gateway,Collector", "roles: collector is given twice"),
    ],
)
def test_bad_role_lists(value: str, expected: str) -> None:
    (problem,) = problems({"MARKETD_ROLES": value, **KAFKA})
    assert problem == f"{expected} (from MARKETD_ROLES)"


def test_a_role_that_is_not_a_string(tmp_path: Path) -> None:
    (problem,) = problems({}, "roles: [collector, 5]\n", tmp_path)
    assert problem.startswith("roles[1]: expected a string, got 5")


def test_detector_without_collector_needs_source_kafka_and_kafka() -> None:
    found = problems({"MARKETD_ROLES": "detector"})
    assert found == [
        "roles: detector without collector reads prices from Kafka: set alerts.source: kafka "
        "(pipeline is this process's own stream, which has no collector) (from MARKETD_ROLES)",
        "roles: detector without collector needs kafka.bootstrap_servers (it reads "
        "kafka.topics.raw and publishes kafka.topics.alerts) (from MARKETD_ROLES)",
    ]
    (only,) = problems({"MARKETD_ROLES": "detector", **KAFKA})
    assert "set alerts.source: kafka" in only
    settings = load_settings(
        None, {"MARKETD_ROLES": "detector", "MARKETD_ALERTS__SOURCE": "kafka", **KAFKA}
    )
    assert settings.roles == ("detector",)


def test_detector_without_collector_needs_alerts_enabled() -> None:
    environ = {
        "MARKETD_ROLES": "detector,gateway",
        "MARKETD_ALERTS__SOURCE": "kafka",
        "MARKETD_ALERTS__ENABLED": "false",
        **KAFKA,
    }
    (problem,) = problems(environ)
    assert problem.startswith("roles: detector without collector needs alerts.enabled: true")


def test_gateway_without_detector_needs_kafka() -> None:
    (problem,) = problems({"MARKETD_ROLES": "collector,gateway"})
    assert problem == (
        "roles: gateway without detector reads its alerts from kafka.topics.alerts: "
        "set kafka.bootstrap_servers, or add the detector role (from MARKETD_ROLES)"
    )
    settings = load_settings(None, {"MARKETD_ROLES": "collector,gateway", **KAFKA})
    roles = Roles.of(settings.roles, alerts_enabled=settings.alerts.enabled)
    assert roles == Roles(collector=True, detector=False, gateway=True, alerts_from_kafka=True)


def test_collector_alone_needs_nothing_more() -> None:
    settings = load_settings(None, {"MARKETD_ROLES": "collector"})
    assert not settings.kafka.enabled
    roles = Roles.of(settings.roles, alerts_enabled=True)
    assert roles == Roles(collector=True, detector=False, gateway=False, alerts_from_kafka=False)


def test_the_default_roles_with_alerts_disabled_keep_todays_behaviour() -> None:
    """alerts.enabled: false with every role: no detector, and the gateway stays in-process
    (it does not start reading Kafka), as before roles existed."""
    settings = load_settings(None, {"MARKETD_ALERTS__ENABLED": "false"})
    roles = Roles.of(settings.roles, alerts_enabled=settings.alerts.enabled)
    assert roles == Roles(collector=True, detector=False, gateway=True, alerts_from_kafka=False)


RECORDING = {"MARKETD_RECORDER__ENABLED": "true"}


def test_recorder_needs_recorder_enabled() -> None:
    (problem,) = problems({"MARKETD_ROLES": "recorder"})
    assert problem == (
        "roles: recorder needs recorder.enabled: true (the role records, and records nothing "
        "without it); or drop the role (from MARKETD_ROLES)"
    )
    (beside,) = problems({"MARKETD_ROLES": "collector,recorder"})
    assert beside.startswith("roles: recorder needs recorder.enabled: true")
    settings = load_settings(None, {"MARKETD_ROLES": "recorder", **RECORDING})
    roles = Roles.of(settings.roles, alerts_enabled=settings.alerts.enabled)
    assert roles == Roles(
        collector=False, detector=False, gateway=False, alerts_from_kafka=False, recorder=True
    )
    assert roles.intake


def test_recorder_enabled_false_in_the_file_names_the_roles_line(tmp_path: Path) -> None:
    text = "roles: [recorder]\nrecorder: {enabled: false, directory: rec}\n"
    (problem,) = problems({}, text, tmp_path)
    assert problem.startswith("roles: recorder needs recorder.enabled: true")
    assert problem.endswith(f"({tmp_path / 'marketd.yaml'}:1)")


def test_the_collector_records_as_before_without_the_recorder_role() -> None:
    settings = load_settings(None, {"MARKETD_ROLES": "collector", **RECORDING})
    roles = Roles.of(settings.roles, alerts_enabled=True)
    assert (roles.collector, roles.recorder, roles.intake) == (True, False, True)
    assert settings.recorder.enabled
    # The default roles are still collector, detector and gateway: no recorder role.
    assert Settings().roles == ("collector", "detector", "gateway")


def test_recorder_role_with_a_detector_needs_kafka_as_without_the_collector() -> None:
    """The recorder role publishes nothing: a detector beside it is one without collector."""
    found = problems({"MARKETD_ROLES": "recorder,detector", **RECORDING})
    assert len(found) == 2
    assert "reads prices from Kafka: set alerts.source: kafka" in found[0]
    assert "needs kafka.bootstrap_servers" in found[1]
    environ = {
        "MARKETD_ROLES": "recorder,detector,gateway",
        "MARKETD_ALERTS__SOURCE": "kafka",
        **KAFKA,
        **RECORDING,
    }
    roles = Roles.of(load_settings(None, environ).roles, alerts_enabled=True)
    assert (roles.recorder, roles.collector, roles.detector, roles.intake) == (
        True, False, True, True,
    )  # fmt: skip


def test_a_failed_recorder_section_does_not_cause_role_problems() -> None:
    environ = {"MARKETD_ROLES": "recorder", "MARKETD_RECORDER__SEGMENT_S": "soon"}
    (problem,) = problems(environ)
    assert problem.startswith("recorder.segment_s: expected a number")


def test_a_section_that_failed_does_not_cause_role_problems() -> None:
    """A bad kafka key leaves kafka at its default (no Kafka) in the draft: the roles must
    not be reported for what that default causes."""
    environ = {
        "MARKETD_ROLES": "gateway",
        "MARKETD_KAFKA__BOOTSTRAP_SERVERS": "k:9092",
        "MARKETD_KAFKA__LINGER_MS": "soon",
    }
    (problem,) = problems(environ)
    assert problem.startswith("kafka.linger_ms: expected an integer")


def test_problems_of_the_file_name_its_line(tmp_path: Path) -> None:
    (problem,) = problems({}, "log: {level: info}\nroles: [gateway]\n", tmp_path)
    assert problem.startswith("roles: gateway without detector reads its alerts")
    assert problem.endswith(f"({tmp_path / 'marketd.yaml'}:2)")


@pytest.mark.parametrize(
    ("environ", "summary"),
    [
        (
            {},
            "# roles: collector (feeds → embedded bus), detector (this process's stream), "
            "gateway (alerts of this process's detector)",
        ),
        (
            {"MARKETD_ROLES": "collector", **KAFKA},
            "# roles: collector (feeds → Kafka)",
        ),
        (
            {"MARKETD_ROLES": "detector", "MARKETD_ALERTS__SOURCE": "kafka", **KAFKA},
            "# roles: detector (kafka.topics.raw → kafka.topics.alerts)",
        ),
        (
            {"MARKETD_ROLES": "gateway", **KAFKA},
            "# roles: gateway (alerts from kafka.topics.alerts)",
        ),
        (
            {"MARKETD_ROLES": "recorder", **RECORDING},
            "# roles: recorder (feeds → var/recording, nothing published)",
        ),
        (
            {"MARKETD_ROLES": "collector", **KAFKA, **RECORDING},
            "# roles: collector (feeds → Kafka, recorded in var/recording)",
        ),
    ],
)
def test_check_config_shows_the_roles(environ: dict[str, str], summary: str) -> None:
    out = io.StringIO()
    assert check_config(None, environ, out) == 0
    first, *_ = out.getvalue().splitlines()
    assert first == summary
    shown = yaml.safe_load(out.getvalue())
    assert shown["roles"] == list(load_settings(None, environ).roles)


def test_check_config_exits_2_on_a_role_problem() -> None:
    out = io.StringIO()
    assert check_config(None, {"MARKETD_ROLES": "gateway"}, out) == 2
    lines = out.getvalue().splitlines()
    assert lines[0] == "error: invalid configuration"
    assert lines[1].strip().startswith("roles: gateway without detector")
