"""Domain services: ingest and chain append, reports, verification, tokens."""
