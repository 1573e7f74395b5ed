"""marketd: Binance market data → Protobuf → Kafka, and price-jump alerts, in one Trio daemon."""

__version__ = "0.1.0"
