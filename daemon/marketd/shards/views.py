"""What the parent of shards says of them (pure): ``/readyz`` and ``/api/status`` made of
its own answer and each worker's last ``/api/status`` body.

The status body keeps the shape :mod:`marketd.obs.status` documents, so the UI's health
view shows every shard without knowing about shards: connections and unsynced books are
listed from all of them (ids prefixed ``shard-<i>/``, each with its ``shard``), counts are
summed, ages take the worst, ``connected``/``running`` need every shard. ``shards`` adds a
line per worker. A worker that has not answered (starting, restarting, too busy) is not
ready, named ``shard:<i>`` in ``not_ready``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import attrs

from marketd.obs.status import MAX_BOOKS_LISTED


@attrs.frozen
class ShardView:
    """One worker as the parent last heard it."""

    index: int
    pid: int | None
    restarts: int
    # Its last /api/status body, None when it has not answered lately.
    status: dict[str, Any] | None

    @property
    def ready(self) -> bool:
        return self.pid is not None and self.status is not None and bool(self.status["ready"])

    def not_ready(self) -> list[str]:
        if self.pid is None or self.status is None:
            return [f"shard:{self.index}"]
        return [f"shard:{self.index}:{name}" for name in self.status.get("not_ready", [])]

    def line(self) -> dict[str, Any]:
        return {
            "shard": self.index,
            "ready": self.ready,
            "pid": self.pid,
            "restarts": self.restarts,
            "not_ready": self.not_ready(),
        }


def merge_readiness(
    own: tuple[bool, dict[str, Any]], shards: Sequence[ShardView]
) -> tuple[bool, dict[str, Any]]:
    """Ready when this process and every shard are; the shards' detail under ``shards``."""
    ready, detail = own
    not_ready = list(detail.get("not_ready", []))
    for shard in shards:
        not_ready += [] if shard.ready else shard.not_ready()
    merged = {**detail, "not_ready": not_ready,
              "shards": {str(s.index): s.line() for s in shards}}  # fmt: skip
    return ready and all(s.ready for s in shards), merged


def merge_status(own: dict[str, Any], shards: Sequence[ShardView]) -> dict[str, Any]:
    """This process's status body with the shards' sections merged in (see the module)."""
    bodies = [(s.index, s.status) for s in shards if s.status is not None]
    body = dict(own)
    body["ready"] = bool(own.get("ready", True)) and all(s.ready for s in shards)
    body["not_ready"] = list(own.get("not_ready", [])) + [
        n for s in shards if not s.ready for n in s.not_ready()
    ]
    body["roles"] = sorted({*own.get("roles", []), *(r for _, b in bodies for r in b["roles"])})
    body["shards"] = [s.line() for s in shards]
    connections = [
        {**c, "id": f"shard-{i}/{c['id']}", "shard": i}
        for i, b in bodies
        for c in b.get("connections", [])
    ]
    if connections:
        body["connections"] = connections
    if books := [(i, b["books"]) for i, b in bodies if "books" in b]:
        body["books"] = _books(books)
    if spools := [b["spool"] for _, b in bodies if "spool" in b]:
        body["spool"] = _spool(spools)
    if kafkas := [b["kafka"] for _, b in bodies if "kafka" in b]:
        body["kafka"] = _kafka(kafkas)
    if detectors := [b["detector"] for _, b in bodies if "detector" in b]:
        body["detector"] = _detector(detectors)
    return body


def _worst(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def _books(books: list[tuple[int, dict[str, Any]]]) -> dict[str, Any]:
    counts = {k: sum(b[k] for _, b in books) for k in ("synced", "resyncing", "waiting")}
    unsynced = [{**u, "shard": i} for i, b in books for u in b["not_synced"]]
    # Worst first across shards, as each shard lists its own.
    unsynced.sort(key=lambda u: (-(u["out_of_sync_s"] or 0.0), -u["resyncs"]))
    return {**counts, "not_synced": unsynced[:MAX_BOOKS_LISTED]}


def _spool(spools: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "backlog": sum(s["backlog"] for s in spools),
        "oldest_age_s": _worst(s["oldest_age_s"] for s in spools),
        "bytes": sum(s["bytes"] for s in spools),
        "max_bytes": sum(s["max_bytes"] for s in spools),
        "full": any(s["full"] for s in spools),
    }


def _kafka(kafkas: list[dict[str, Any]]) -> dict[str, Any]:
    errors = [k for k in kafkas if k["last_error"]]
    newest = min(errors, key=lambda k: k["last_error_age_s"] or 0.0) if errors else None
    return {
        "connected": all(k["connected"] for k in kafkas),
        "in_flight": sum(k["in_flight"] for k in kafkas),
        "pending_retry": sum(k["pending_retry"] for k in kafkas),
        "oldest_in_flight_s": _worst(k["oldest_in_flight_s"] for k in kafkas),
        "last_error": newest["last_error"] if newest else None,
        "last_error_age_s": newest["last_error_age_s"] if newest else None,
    }


def _detector(detectors: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "running": all(d["running"] for d in detectors),
        "source": detectors[0]["source"],
        "lag_s": _worst(d["lag_s"] for d in detectors),
        "ticks": sum(d["ticks"] for d in detectors),
        "alerts": sum(d["alerts"] for d in detectors),
        "instruments": sum(d["instruments"] for d in detectors),
    }
