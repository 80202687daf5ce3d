"""Between the venues and the sinks: quality checks, dedup, whales, batching."""
