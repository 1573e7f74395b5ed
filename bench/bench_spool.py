"""Spool throughput: append (fsync per batch) and read back + ack, records/s and MB/s.

    .venv/bin/python bench/bench_spool.py [--records N] [--batch N] [--size B] [--dir DIR]

Appends ``--records`` records of about ``--size`` bytes of value in batches of
``--batch``, calling ``sync()`` (fdatasync) after every batch, then reads them all back
in batches of ``--batch``, acking each batch (segments are deleted as they empty). Also
measures appends without sync (the page-cache cost, what a kill -9 already survives) and
reopening a spool full of unacked records. Prints a table, then one JSON line. The
directory (default: a temporary one) decides the fsync cost: use the disk you deploy on.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from marketd.data.records import Market, Record
from marketd.spool import Spool, SpoolSettings


def make_records(n: int, size: int) -> list[Record]:
    return [
        Record(
            topic="marketdata.raw",
            key=b"BTCUSDT",
            value=bytes(size),
            headers=(),
            received_ns=time.time_ns(),
            market=Market.SPOT,
            kind="trade",
            symbol="BTCUSDT",
            seq=i,
        )
        for i in range(n)
    ]


def run(directory: Path, n: int, batch: int, size: int) -> dict[str, float]:
    cfg = SpoolSettings(
        directory=str(directory), segment_bytes=64 << 20, max_bytes=max(1 << 30, 4 * n * size)
    )
    recs = make_records(n, size)
    batches = [recs[i : i + batch] for i in range(0, n, batch)]
    out: dict[str, float] = {}
    with Spool.open(cfg) as spool:
        t0 = time.perf_counter()
        for b in batches:
            spool.append(b)
            spool.sync()
        t_append = time.perf_counter() - t0
        disk = spool.statistics().bytes
        t0 = time.perf_counter()
        got = 0
        while items := spool.read(batch):
            got += len(items)
            spool.ack(items[-1][0])
        t_read = time.perf_counter() - t0
        assert got == n, (got, n)
        t0 = time.perf_counter()
        for b in batches:
            spool.append(b)
        t_nosync = time.perf_counter() - t0
    t0 = time.perf_counter()
    with Spool.open(cfg) as spool:
        t_open = time.perf_counter() - t0
        assert spool.statistics().records_pending == n
    mb = disk / 1e6
    out["append_sync_rps"] = n / t_append
    out["append_sync_mbps"] = mb / t_append
    out["append_nosync_rps"] = n / t_nosync
    out["read_ack_rps"] = n / t_read
    out["read_ack_mbps"] = mb / t_read
    out["reopen_s"] = t_open
    out["bytes_per_record"] = disk / n
    out["syncs_per_s"] = len(batches) / t_append
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--size", type=int, default=150, help="bytes of Record.value")
    ap.add_argument("--dir", type=Path, default=None, help="spool directory (emptied first)")
    args = ap.parse_args()
    base = args.dir or Path(tempfile.mkdtemp(prefix="bench-spool-"))
    directory = base / "spool"
    shutil.rmtree(directory, ignore_errors=True)
    try:
        res = run(directory, args.records, args.batch, args.size)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
        if args.dir is None:
            shutil.rmtree(base, ignore_errors=True)
    rows = [
        ("append + fdatasync per batch", f"{res['append_sync_rps']:,.0f} rec/s",
         f"{res['append_sync_mbps']:.1f} MB/s", f"{res['syncs_per_s']:,.0f} syncs/s"),
        ("append, no sync", f"{res['append_nosync_rps']:,.0f} rec/s", "", ""),
        ("read + ack per batch", f"{res['read_ack_rps']:,.0f} rec/s",
         f"{res['read_ack_mbps']:.1f} MB/s", ""),
        ("reopen with all pending", f"{res['reopen_s'] * 1000:.1f} ms", "", ""),
    ]  # fmt: skip
    per = res["bytes_per_record"]
    print(f"spool: {args.records} records, value {args.size} B ({per:.0f} B on disk each), "
          f"batch {args.batch}, dir {base}")  # fmt: skip
    for row in rows:
        print(f"  {row[0]:<30} {row[1]:>16} {row[2]:>12} {row[3]:>16}")
    json.dump({"bench": "spool", "records": args.records, "batch": args.batch,
               "value_bytes": args.size, **{k: round(v, 4) for k, v in res.items()}},
              sys.stdout)  # fmt: skip
    print()


if __name__ == "__main__":
    main()
