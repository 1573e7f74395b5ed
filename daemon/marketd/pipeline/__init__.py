"""The exchange-agnostic data path: records, the normalizer, sequencing, backfill, tap and bus."""
