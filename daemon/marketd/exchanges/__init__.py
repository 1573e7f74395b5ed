"""Exchange adapters: what one exchange's streams and REST endpoints are, behind one seam.

Each adapter is a sibling package (``binance``); the stages (feed, normalizer, sequencer,
books, spool, Kafka, gateway) are meant to name no exchange.
"""
