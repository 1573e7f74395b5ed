"""Run the Kafka detector on its own, as a process a test can SIGKILL.

    python tests/alerts/detector_proc.py BOOTSTRAP RAW_TOPIC ALERTS_TOPIC GROUP TXN_ID \
        STATE_DIR MAX_RECORDS

Alert outcomes go to ``<ALERTS_TOPIC>.outcomes``. Prints ``ready`` once consuming; runs
until killed.
"""

from __future__ import annotations

import sys

import trio

from marketd.alerts.kafka_io import serve_kafka_detector
from marketd.alerts.rules import RulesStore
from marketd.alerts.service import DetectorService
from marketd.config.alerts import AlertSettings, RuleSettings
from marketd.config.settings import KafkaSettings, TopicSettings

RULES = (RuleSettings(name="r", window_s=60.0, threshold_pct=2.0, cooldown_s=30.0),)


async def main(argv: list[str]) -> None:
    bootstrap, raw, alerts, group, txn, state_dir, max_records = argv
    topics = TopicSettings(raw=raw, alerts=alerts, outcomes=f"{alerts}.outcomes")
    kafka = KafkaSettings(bootstrap_servers=bootstrap, topics=topics)
    settings = AlertSettings(
        rules=RULES,
        state_dir=state_dir,
        consumer_group=group,
        transactional_id=txn,
        start_from="earliest",
    )
    service = DetectorService(settings, RulesStore(settings), kafka=kafka)
    async with trio.open_nursery() as nursery:
        await nursery.start(
            lambda task_status: serve_kafka_detector(
                service, kafka, max_records=int(max_records), task_status=task_status
            )
        )
        print("ready", flush=True)


if __name__ == "__main__":
    trio.run(main, sys.argv[1:])
