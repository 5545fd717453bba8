-- A rename from start to complete, as a DBA runs it in psql, with what each
-- phase leaves in the catalog.
\set SHOW_CONTEXT never
CREATE SCHEMA lifecycle;
CREATE TABLE lifecycle.users (id bigint PRIMARY KEY, name text NOT NULL, email text);
INSERT INTO lifecycle.users SELECT g, 'user ' || g, 'u' || g || '@x' FROM generate_series(1, 5) g;

SELECT zdm.rename_column('lifecycle.users', 'name', 'full_name', 'users_rename');
SELECT name, phase, table_name, columns FROM zdm.migrations WHERE table_name LIKE 'lifecycle.%';

-- Both applications write: the old one by name, the new one by full_name.
INSERT INTO lifecycle.users (id, name) VALUES (6, 'old app');
INSERT INTO lifecycle.users (id, full_name) VALUES (7, 'new app');
UPDATE lifecycle.users SET name = 'renamed by the old app' WHERE id = 1;
SELECT id, name, full_name FROM lifecycle.users ORDER BY id;

-- The same call again returns the same migration (a migration file re-run).
SELECT zdm.rename_column('lifecycle.users', 'name', 'full_name', 'users_rename');

-- The backfill, one batch at a time: what CALL zdm.backfill() loops over,
-- committing after each batch (its NOTICEs carry timings: not used here).
SELECT zdm.backfill_batch('users_rename') > 0 AS more;
SELECT zdm.backfill_batch('users_rename') > 0 AS more;
SELECT phase FROM zdm.migrations WHERE name = 'users_rename';

SELECT zdm.complete('users_rename');
SELECT name, phase FROM zdm.migrations WHERE table_name LIKE 'lifecycle.%';
SELECT attname FROM pg_attribute WHERE attrelid = 'lifecycle.users'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum;
SELECT count(*) AS triggers_left FROM pg_trigger WHERE tgrelid = 'lifecycle.users'::regclass AND NOT tgisinternal;
SELECT id, full_name FROM lifecycle.users ORDER BY id;
-- Completing again is a no-op.
SELECT zdm.complete('users_rename');
DROP SCHEMA lifecycle CASCADE;
