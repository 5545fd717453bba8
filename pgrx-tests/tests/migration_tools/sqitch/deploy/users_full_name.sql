-- Deploy zdm_recipe:users_full_name
-- sqitch wraps nothing: psql runs this file statement by statement, in
-- autocommit, and each transaction is the file's own.

-- Expand: one short transaction. Safe to re-run (same spec: returns the name;
-- after a revert the name is free again).
BEGIN;
SELECT zdm.rename_column('public.users', 'name', 'full_name', 'users_full_name');
COMMIT;

-- Migrate: commits after every batch, so a lone CALL outside BEGIN ... COMMIT.
-- A no-op (NOTICE) when there is nothing left to backfill.
CALL zdm.backfill('users_full_name');

-- Index builds (CREATE INDEX CONCURRENTLY, carried over to full_name): top
-- level, one statement at a time. After a failed build the list holds the
-- DROP INDEX CONCURRENTLY and the CREATE again: re-running this file recovers.
SELECT statement FROM zdm.pending_statements('users_full_name') \gexec
