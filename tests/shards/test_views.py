"""The parent's /readyz and /api/status made of its workers' (marketd.shards.views)."""

from __future__ import annotations

from typing import Any

from marketd.shards.views import ShardView, merge_readiness, merge_status


def worker_status(shard: int, *, ready: bool = True, backlog: int = 0) -> dict[str, Any]:
    return {
        "ready": ready,
        "not_ready": [] if ready else ["feed:spot-0"],
        "roles": ["collector", "detector"],
        "connections": [{"id": "spot-0", "market": "spot", "ready": ready, "reconnects": shard}],
        "books": {
            "synced": 2, "resyncing": 0, "waiting": 1 - int(ready),
            "not_synced": [] if ready else [
                {"market": "spot", "symbol": f"S{shard}", "state": "waiting", "resyncs": 0,
                 "out_of_sync_s": None}],
        },
        "spool": {"backlog": backlog, "oldest_age_s": 0.5 * shard or None, "bytes": 100,
                  "max_bytes": 1000, "full": False},
        "kafka": {"connected": True, "in_flight": 1, "pending_retry": 0,
                  "oldest_in_flight_s": 0.1, "last_error": "boom" if shard else None,
                  "last_error_age_s": 3.0 if shard else None},
        "detector": {"running": True, "source": "pipeline", "lag_s": 0.2 * (shard + 1),
                     "ticks": 10, "alerts": shard, "instruments": 3},
    }  # fmt: skip


def test_ready_only_when_every_shard_is() -> None:
    own = (True, {"roles": ["gateway"], "components": ["alerts_reader"], "not_ready": []})
    shards = [ShardView(0, 100, 0, worker_status(0)), ShardView(1, 101, 2, worker_status(1))]
    ready, detail = merge_readiness(own, shards)
    assert ready
    assert detail["not_ready"] == []
    assert detail["shards"]["1"] == {"shard": 1, "ready": True, "pid": 101, "restarts": 2,
                                     "not_ready": []}  # fmt: skip
    # One shard's feed down, another not heard from (restarting): named, not ready.
    shards = [ShardView(0, 100, 0, worker_status(0, ready=False)), ShardView(1, None, 3, None)]
    ready, detail = merge_readiness(own, shards)
    assert not ready
    assert detail["not_ready"] == ["shard:0:feed:spot-0", "shard:1"]
    assert detail["components"] == ["alerts_reader"]  # this process's own
    # This process itself not ready: not ready whatever the shards say.
    assert not merge_readiness((False, {"not_ready": ["x"]}), [])[0]


def test_the_status_body_keeps_its_shape_with_every_shard_in_it() -> None:
    own = {"ready": True, "not_ready": [], "roles": ["gateway"], "gateway": {"clients": 4}}
    shards = [
        ShardView(0, 100, 0, worker_status(0, backlog=5)),
        ShardView(1, 101, 1, worker_status(1, ready=False, backlog=7)),
        ShardView(2, None, 1, None),
    ]
    body = merge_status(own, shards)
    assert body["ready"] is False
    assert body["not_ready"] == ["shard:1:feed:spot-0", "shard:2"]
    assert body["roles"] == ["collector", "detector", "gateway"]
    assert body["gateway"] == {"clients": 4}
    assert [c["id"] for c in body["connections"]] == ["shard-0/spot-0", "shard-1/spot-0"]
    assert [c["shard"] for c in body["connections"]] == [0, 1]
    assert body["books"] == {
        "synced": 4, "resyncing": 0, "waiting": 1,
        "not_synced": [{"market": "spot", "symbol": "S1", "state": "waiting", "resyncs": 0,
                        "out_of_sync_s": None, "shard": 1}],
    }  # fmt: skip
    assert body["spool"] == {"backlog": 12, "oldest_age_s": 0.5, "bytes": 200,
                             "max_bytes": 2000, "full": False}  # fmt: skip
    assert body["kafka"]["in_flight"] == 2
    assert body["kafka"]["last_error"] == "boom"
    assert body["kafka"]["last_error_age_s"] == 3.0
    assert body["detector"] == {"running": True, "source": "pipeline", "lag_s": 0.4,
                                "ticks": 20, "alerts": 1, "instruments": 6}  # fmt: skip
    assert [s["shard"] for s in body["shards"]] == [0, 1, 2]
    assert body["shards"][2]["pid"] is None


def test_no_shard_heard_yet() -> None:
    body = merge_status({"ready": True, "not_ready": [], "roles": []}, [ShardView(0, 5, 0, None)])
    assert body["ready"] is False
    assert "connections" not in body
    assert "spool" not in body
    assert body["not_ready"] == ["shard:0"]
