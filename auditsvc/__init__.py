"""auditsvc: an append-only, hash-chained PHI access audit log."""

__version__ = "0.1.0"
