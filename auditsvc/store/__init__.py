"""PostgreSQL: DSNs and engines, the embedded server, migrations and queries."""
