-- Bad input: a clear error with its SQLSTATE, a message naming the object,
-- a hint, and nothing changed.
\set SHOW_CONTEXT never
CREATE SCHEMA refusals;
CREATE TABLE refusals.users (id bigint PRIMARY KEY, name text NOT NULL, email text);
INSERT INTO refusals.users SELECT g, 'user ' || g, 'u' || g || '@x' FROM generate_series(1, 5) g;

-- A column that does not exist.
SELECT zdm.rename_column('refusals.users', 'nam', 'full_name');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- A new name already taken.
SELECT zdm.rename_column('refusals.users', 'name', 'email');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- A spec with a misspelled field.
SELECT zdm.start('{"name": "refusals_spec", "operations": [{"op": "rename_column", "table": "refusals.users", "column": "name", "to": "full_name"}]}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- An expression that reads another table.
SELECT zdm.alter_column_type('refusals.users', 'email', 'varchar(320)', up_expr => '(SELECT max(email) FROM refusals.users)');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- A volatile expression where the value must be reproducible (the sync
-- trigger computes it again for every write).
SELECT zdm.alter_column_type('refusals.users', 'email', 'varchar(320)', up_expr => 'email || random()::text');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- A type that does not exist.
SELECT zdm.alter_column_type('refusals.users', 'email', 'varchr(320)');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- A migration that does not exist.
SELECT zdm.complete('no_such_migration');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- A migration name with a control character.
SELECT zdm.rename_column('refusals.users', 'name', 'full_name', E'bad\nname');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- A view.
CREATE VIEW refusals.user_names AS SELECT id, name FROM refusals.users;
SELECT zdm.rename_column('refusals.user_names', 'name', 'full_name');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
DROP VIEW refusals.user_names;
-- The backfill procedure inside a transaction block.
BEGIN;
SELECT zdm.rename_column('refusals.users', 'name', 'full_name', 'refusals_rename');
CALL zdm.backfill('refusals_rename');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK;
-- A second migration claiming a column of an active one.
SELECT zdm.rename_column('refusals.users', 'name', 'full_name', 'refusals_rename');
SELECT zdm.drop_column('refusals.users', 'name');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- Nothing of the refused calls is left behind.
SELECT name, phase, table_name, columns FROM zdm.migrations WHERE table_name LIKE 'refusals.%' ORDER BY created_at;
SELECT attname FROM pg_attribute WHERE attrelid = 'refusals.users'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum;
SELECT zdm.rollback('refusals_rename');
DROP SCHEMA refusals CASCADE;
