"""The roles of one marketd process (the ``roles`` setting) and what each one needs (pure).

* ``collector``: the feeds, the normalizer, the books, the spool and the sink (the Kafka
  publisher, or the embedded bus without Kafka): the market-data pipeline.
* ``detector``: the price-jump detector. With the collector in the same process it reads
  that pipeline (``alerts.source: pipeline``) or ``kafka.topics.raw``
  (``alerts.source: kafka``); without the collector only the latter is possible.
* ``gateway``: the browser UI, ``/ws/alerts`` and ``/api/*``. Its alerts come from the
  detector in the same process, or, without the detector role, from
  ``kafka.topics.alerts`` (every replica reads every partition).
* ``recorder``: a process that only records (``recorder.enabled: true`` is required): the
  feeds, the recorder, and what makes the recording whole for a replay — the normalizer
  and the books, whose trade backfill and book snapshots fetch the REST responses the
  recording holds. It publishes nothing: no Kafka, no embedded bus, no spool, no
  detector; the records it decodes end there. Beside ``collector`` it adds nothing (the
  collector records whenever ``recorder.enabled`` is true).

Every process serves ``/metrics``, ``/healthz`` and ``/readyz``; its readiness names only
what its own roles need. The default is collector, detector and gateway in one process.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

COLLECTOR = "collector"
DETECTOR = "detector"
GATEWAY = "gateway"
RECORDER = "recorder"
ROLES: tuple[str, ...] = (COLLECTOR, DETECTOR, GATEWAY, RECORDER)
DEFAULT_ROLES: tuple[str, ...] = (COLLECTOR, DETECTOR, GATEWAY)
_SHOWN = ", ".join(ROLES)


def role_problems(
    roles: tuple[str, ...],
    *,
    alerts_enabled: bool,
    alerts_source: str,
    kafka_enabled: bool,
    recorder_enabled: bool = False,
) -> tuple[list[str], list[str]]:
    """(problems of the list itself, problems comparing it with other settings)."""
    problems = [f"{r!r} is not a role ({_SHOWN})" for r in roles if r not in ROLES]
    seen: set[str] = set()
    for role in roles:
        if role in seen and f"{role} is given twice" not in problems:
            problems.append(f"{role} is given twice")
        seen.add(role)
    if not roles:
        problems.append(f"at least one role is needed ({_SHOWN})")
    relational = []
    if DETECTOR in seen and COLLECTOR not in seen:
        alone = "detector without collector"
        if not alerts_enabled:
            relational.append(f"{alone} needs alerts.enabled: true (it would run nothing)")
        if alerts_source != "kafka":
            relational.append(
                f"{alone} reads prices from Kafka: set alerts.source: kafka "
                "(pipeline is this process's own stream, which has no collector)"
            )
        if not kafka_enabled:
            relational.append(
                f"{alone} needs kafka.bootstrap_servers "
                "(it reads kafka.topics.raw and publishes kafka.topics.alerts)"
            )
    if GATEWAY in seen and DETECTOR not in seen and not kafka_enabled:
        relational.append(
            "gateway without detector reads its alerts from kafka.topics.alerts: "
            "set kafka.bootstrap_servers, or add the detector role"
        )
    if RECORDER in seen and not recorder_enabled:
        relational.append(
            "recorder needs recorder.enabled: true (the role records, and records nothing "
            "without it); or drop the role"
        )
    return problems, relational


@attrs.frozen
class Roles:
    """What runs in this process, decided once from the settings."""

    collector: bool
    # The detector runs here: the role is given and alerts.enabled is true.
    detector: bool
    gateway: bool
    # The gateway reads kafka.topics.alerts (the detector role is not in this process).
    alerts_from_kafka: bool
    # The recorder role: the feeds and the pipeline run (for the recording) even without
    # the collector, publishing nothing.
    recorder: bool = False

    @property
    def intake(self) -> bool:
        """The feeds and the pipeline run here (the collector's, or the recorder's)."""
        return self.collector or self.recorder

    @classmethod
    def of(cls, roles: Iterable[str], *, alerts_enabled: bool) -> Roles:
        given = set(roles)
        return cls(
            collector=COLLECTOR in given,
            detector=DETECTOR in given and alerts_enabled,
            gateway=GATEWAY in given,
            alerts_from_kafka=GATEWAY in given and DETECTOR not in given,
            recorder=RECORDER in given,
        )


def describe_roles(
    roles: tuple[str, ...],
    *,
    alerts_enabled: bool,
    alerts_source: str,
    kafka_enabled: bool,
    recording: str | None = None,
    sharded: bool = False,
) -> str:
    """One line saying what this configuration runs (``marketd check-config`` prints it);
    ``recording``: the recorder's directory when it is enabled; ``sharded``: the parent of
    shard workers, whose gateway reads the workers' alerts from Kafka."""
    given = set(roles)
    parts = []
    recorded = "" if recording is None else f", recorded in {recording}"
    if COLLECTOR in given:
        sink = "Kafka" if kafka_enabled else "embedded bus"
        parts.append(f"collector (feeds → {sink}{recorded})")
    elif RECORDER in given:
        parts.append(f"recorder (feeds → {recording or 'nothing: recorder.enabled is false'}, "
                     "nothing published)")  # fmt: skip
    if DETECTOR in given:
        if not alerts_enabled:
            parts.append("detector off (alerts.enabled: false)")
        elif alerts_source == "kafka":
            parts.append("detector (kafka.topics.raw → kafka.topics.alerts)")
        elif sharded:
            parts.append("detector (each shard's stream, in its worker)")
        else:
            parts.append("detector (this process's stream)")
    if GATEWAY in given:
        if DETECTOR in given and not sharded:
            parts.append("gateway (alerts of this process's detector)")
        else:
            parts.append("gateway (alerts from kafka.topics.alerts)")
    return "roles: " + ", ".join(parts)
