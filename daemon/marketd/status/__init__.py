"""The status stream: what marketd could and could not see, as Kafka records
(``schemas/marketd/v1/status.proto``): :mod:`.events` builds them, :mod:`.stream` carries
them from every part of the collector to the sink without ever blocking it."""

from marketd.status.events import EVENT_TYPES, symbol_of_stream
from marketd.status.stream import StatusStream

__all__ = ["EVENT_TYPES", "StatusStream", "symbol_of_stream"]
