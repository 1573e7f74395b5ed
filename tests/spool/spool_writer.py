"""Child process of the kill -9 test: append, sync, read and ack in a loop, forever.

    python spool_writer.py DIRECTORY

After each sync it prints ``synced <seq> acked <seq>`` (flushed): every record up to the
first number is durable, and the ack checkpoint has reached at least the second.
Records are numbered by ``Record.seq`` from where the spool left off.
"""

from __future__ import annotations

import sys
from pathlib import Path

from spoolkit import records, settings

from marketd.spool import Spool


def main() -> None:
    spool = Spool.open(settings(Path(sys.argv[1]), segment_bytes=1 << 16, max_bytes=1 << 30))
    n = spool.statistics().next_seq  # the spool's seq and the record's seq stay equal
    acked = spool.statistics().ack_seq
    while True:
        spool.append(records(n, 50, size=200))
        n += 50
        got = spool.read(40)  # the reader lags behind: unacked records pile up
        if got:
            spool.ack(got[-1][0])
            acked = got[-1][0].seq
        synced = spool.sync()
        print(f"synced {synced} acked {acked}", flush=True)


if __name__ == "__main__":
    main()
