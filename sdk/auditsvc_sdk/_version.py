"""The SDK's version, written here only: ``sdk/pyproject.toml`` reads it
(``dynamic = ["version"]``), ``auditsvc_sdk.__version__`` re-exports it and
the client's User-Agent names it (tests/test_sdk_version.py pins all three)."""

__version__ = "0.2.0"
