"""Alembic environment for migrations that call pg_zdm.

transaction_per_migration=True: Alembic's default runs every pending
migration in ONE transaction; one per migration keeps each expand step short
(its ACCESS EXCLUSIVE lock is held until that transaction commits).
"""
import os
import sys

from alembic import context
from sqlalchemy import create_engine, pool

sys.path.insert(0, os.path.dirname(__file__))  # for zdm_alembic.py

if context.is_offline_mode():
    # --sql cannot read zdm.pending_statements() from the database.
    raise SystemExit("these migrations call pg_zdm and read its pending statements: run them online")

engine = create_engine(os.environ["ZDM_DATABASE_URL"], poolclass=pool.NullPool)
with engine.connect() as connection:
    context.configure(connection=connection, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()
