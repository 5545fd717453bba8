"""pg_zdm steps that must run at top level, for Alembic migrations."""
import sqlalchemy as sa
from alembic import op


def top_level(migration, swap=False):
    """Backfill, build the pending indexes and, for a shadow table, swap it in.

    CALL zdm.backfill commits between batches and CREATE INDEX CONCURRENTLY
    refuses any transaction block: both run in an autocommit block (which
    first commits the migration's transaction so far). Every step is safe to
    re-run: backfill and pending_statements have nothing left to do the second
    time, and the swap is guarded by the phase.
    """
    with op.get_context().autocommit_block():
        conn = op.get_bind()
        conn.execute(sa.text("CALL zdm.backfill(:m)"), {"m": migration})
        pending = conn.execute(
            sa.text("SELECT statement FROM zdm.pending_statements(:m)"), {"m": migration}
        ).fetchall()
        for (statement,) in pending:
            # As written: no bind-parameter or percent-sign processing.
            conn.exec_driver_sql(statement, execution_options={"no_parameters": True})
        if swap:
            conn.execute(
                sa.text("SELECT zdm.swap_tables(name) FROM zdm.migrations WHERE name = :m AND phase = 'backfilled'"),
                {"m": migration},
            )
