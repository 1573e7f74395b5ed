"""Market data values that cross every layer: records, record batches and decoded events."""
