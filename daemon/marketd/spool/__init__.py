"""The durable on-disk spool between the pipeline and Kafka (see :mod:`.spool`)."""

from marketd.spool.acks import AckWindow
from marketd.spool.model import Position, SpoolError, SpoolFull, SpoolStatistics
from marketd.spool.settings import SpoolSettings
from marketd.spool.spool import Spool

__all__ = [
    "AckWindow",
    "Position",
    "Spool",
    "SpoolError",
    "SpoolFull",
    "SpoolSettings",
    "SpoolStatistics",
]
