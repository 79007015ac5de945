"""Benchmarks that measure auditsvc against raw PostgreSQL on the same server.

``python -m bench.ingest`` and ``python -m bench.verify``; see bench/README.md.
"""
