"""``events`` partitioned by ``seq`` range; ``event_ids``; ``event_partitions``.

``events`` becomes a table partitioned by range of ``seq`` (native
declarative partitioning), so that the log grows by new tables of a bounded
size and, later, old ranges can be sealed and archived whole. Partitions are
created ahead of need by the service itself through
``auditsvc_extend_partitions(upto, width)``: a SECURITY DEFINER function
owned by the owner role (the runtime role may not CREATE TABLE), with a fixed
search_path, that creates each partition standalone, gives it its TRUNCATE
trigger (a TRUNCATE of a partition does not fire the parent's statement
trigger; the row trigger is cloned from the parent on attach) and attaches
it with ATTACH PARTITION, which takes SHARE UPDATE EXCLUSIVE on ``events``
and so never waits for, nor blocks, an append. ``event_partitions`` records
every partition's range (only the function writes it).

A partitioned table cannot hold a unique index that does not contain the
partition key, so ``UNIQUE (log_id, event_id)`` moves to ``event_ids``:
``(log_id, event_id) PRIMARY KEY -> seq``, unpartitioned, written in the
append transaction, used for duplicate detection and ``GET
/v1/events/{event_id}`` and checked by ``verify`` against the records like
the read model.

What is not partitioned, and why (docs/operations.md): ``merkle_nodes``
(about one row per 128 events, and a proof for a recent leaf reads nodes
over the whole history, so no range would ever be pruned), and the tables
reports look up by patient, system or actor (``patient_events``,
``event_facts``, ``event_identifiers``, ``identifier_links``,
``patient_identifiers``): partitioned by ``seq``, a lookup by patient would
probe every partition, a cost growing with the log, not with the rows
returned.

Upgrade of a store with rows, in this revision's one transaction (measured
in bench/README.md): the rows stored so far become the first partition
``[0, head)`` as they are (renamed and attached: ATTACH scans them once to
check the range; nothing is rewritten), and ``event_ids`` is filled from
them (about 60 bytes a row). An empty store gets no partition here: the
service creates the first one with ``AUDITSVC_PARTITION_ROWS``.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from __future__ import annotations

import re
from typing import Any

from alembic import op
from sqlalchemy import text

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

# Partition names carry their lower bound, zero-padded so that they sort.
LEGACY = "events_" + "0" * 19
PARTITION_LOCK_CLASS = 0x41505254  # "APRT": creating partitions (store/locks.py)

# Named as 0001 named them: attaching the old table matches its constraints by name.
PARENT = """
CREATE TABLE events (
    log_id       smallint NOT NULL CONSTRAINT events_log_id_fkey REFERENCES logs (log_id),
    seq          bigint NOT NULL CONSTRAINT events_seq_check CHECK (seq >= 0),
    event_id     uuid NOT NULL,
    occurred_at  timestamptz NOT NULL,
    record       text NOT NULL,
    leaf_hash    bytea NOT NULL CONSTRAINT events_leaf_hash_check CHECK (octet_length(leaf_hash) = 32),
    chain_hash   bytea NOT NULL CONSTRAINT events_chain_hash_check CHECK (octet_length(chain_hash) = 32),
    PRIMARY KEY (log_id, seq)
) PARTITION BY RANGE (seq)
"""

EVENT_IDS = """
CREATE TABLE event_ids (
    log_id    smallint NOT NULL,
    event_id  uuid NOT NULL,
    seq       bigint NOT NULL
)
"""

EVENT_PARTITIONS = """
CREATE TABLE event_partitions (
    name        text PRIMARY KEY,
    lower       bigint NOT NULL UNIQUE,
    upper       bigint NOT NULL UNIQUE CHECK (upper > lower),
    created_at  timestamptz NOT NULL DEFAULT now()
)
"""

# Only ever called outside the append lock (store/partitions.py). The width
# and the distance ahead of the head are bounded so that a runtime role gone
# wrong cannot fill the catalog with partitions.
EXTEND = f"""
CREATE FUNCTION auditsvc_extend_partitions(upto bigint, width bigint) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    top   bigint;
    last  bigint;
    head  bigint;
    part  text;
BEGIN
    PERFORM pg_advisory_xact_lock({PARTITION_LOCK_CLASS}, 0);
    SELECT p.upper, p.upper - p.lower INTO top, last FROM public.event_partitions p ORDER BY p.upper DESC LIMIT 1;
    top := coalesce(top, 0);
    -- No width given: that of the last partition (or the default).
    width := coalesce(width, last, 10000000);
    IF width < 100 OR width > 1000000000000 THEN
        RAISE EXCEPTION 'auditsvc: partition width % out of range [100, 10^12]', width
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF upto <= top THEN
        RETURN top;
    END IF;
    SELECT coalesce(max(h.next), 0) INTO head FROM public.logs l
    CROSS JOIN LATERAL (
        SELECT e.seq + 1 AS next FROM public.events e WHERE e.log_id = l.log_id ORDER BY e.seq DESC LIMIT 1
    ) h;
    IF upto > head + 2 * width + 1000000 THEN
        RAISE EXCEPTION 'auditsvc: partitions up to % requested, too far ahead of the head %', upto, head
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    WHILE top < upto LOOP
        part := 'events_' || lpad(top::text, 19, '0');
        EXECUTE format(
            'CREATE TABLE public.%I (LIKE public.events INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE)',
            part);
        EXECUTE format(
            'CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON public.%I '
            'FOR EACH STATEMENT EXECUTE FUNCTION public.auditsvc_refuse_change()', part);
        EXECUTE format('ALTER TABLE public.events ATTACH PARTITION public.%I FOR VALUES FROM (%s) TO (%s)',
            part, top, top + width);
        INSERT INTO public.event_partitions (name, lower, upper) VALUES (part, top, top + width);
        top := top + width;
    END LOOP;
    RETURN top;
END;
$$
"""

_ROLE = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def _append_only(table: str, row_trigger: bool = True) -> None:
    if row_trigger:
        op.execute(
            f"CREATE TRIGGER {table}_no_update_delete BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION auditsvc_refuse_change()"
        )
    op.execute(
        f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
        "FOR EACH STATEMENT EXECUTE FUNCTION auditsvc_refuse_change()"
    )


def upgrade(runtime_role: str = "auditsvc_app", **kw: Any) -> None:
    if not _ROLE.fullmatch(runtime_role):
        raise ValueError("runtime role name must be a plain lowercase identifier")
    conn = op.get_bind()
    # Nothing is appended while this runs: ALTER TABLE holds ACCESS EXCLUSIVE on events to the commit.
    op.execute("LOCK TABLE events IN ACCESS EXCLUSIVE MODE")
    head = int(
        conn.execute(
            text(
                "SELECT coalesce(max(h.next), 0) FROM logs l CROSS JOIN LATERAL ("
                "SELECT e.seq + 1 AS next FROM events e WHERE e.log_id = l.log_id ORDER BY e.seq DESC LIMIT 1) h"
            )
        ).scalar_one()
    )

    # 1. event_ids, from the rows stored so far; its key built once, after.
    op.execute(EVENT_IDS)
    op.execute("INSERT INTO event_ids (log_id, event_id, seq) SELECT log_id, event_id, seq FROM events")
    op.execute("ALTER TABLE event_ids ADD PRIMARY KEY (log_id, event_id)")
    _append_only("event_ids")

    # 2. The old table steps aside, without its event_id index (event_ids
    # replaces it) and without its row trigger (attaching clones the parent's).
    op.execute(f"ALTER TABLE events RENAME TO {LEGACY}")
    op.execute(f"ALTER INDEX events_pkey RENAME TO {LEGACY}_pkey")
    op.execute(f"ALTER TABLE {LEGACY} DROP CONSTRAINT events_log_id_event_id_key")
    op.execute(f"DROP TRIGGER events_no_update_delete ON {LEGACY}")
    op.execute(f"REVOKE ALL ON {LEGACY} FROM PUBLIC, {runtime_role}")

    # 3. The partitioned table, its bookkeeping and the function that extends it.
    op.execute(PARENT)
    _append_only("events")
    op.execute(EVENT_PARTITIONS)
    _append_only("event_partitions")
    if head > 0:
        # The rows stored so far, as they are, become the partition [0, head).
        op.execute(f"ALTER TABLE events ATTACH PARTITION {LEGACY} FOR VALUES FROM (0) TO ({head})")
        op.execute(f"INSERT INTO event_partitions (name, lower, upper) VALUES ('{LEGACY}', 0, {head})")
    else:
        op.execute(f"DROP TABLE {LEGACY}")
    op.execute(EXTEND)

    # 4. The runtime role: SELECT and INSERT on the log tables, SELECT on the
    # bookkeeping (only the function writes it), EXECUTE on the function.
    op.execute("REVOKE ALL ON events, event_ids, event_partitions FROM PUBLIC")
    op.execute(f"GRANT SELECT, INSERT ON events, event_ids TO {runtime_role}")
    op.execute(f"GRANT SELECT ON event_partitions TO {runtime_role}")
    op.execute("REVOKE EXECUTE ON FUNCTION auditsvc_extend_partitions(bigint, bigint) FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION auditsvc_extend_partitions(bigint, bigint) TO {runtime_role}")


def downgrade(**kw: Any) -> None:
    raise RuntimeError("the audit log cannot be downgraded: dropping it would destroy evidence")
