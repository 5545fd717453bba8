-- DDL from outside during a migration: what breaks it is refused (55006)
-- and changes nothing; what does not goes through.
\set SHOW_CONTEXT never
CREATE SCHEMA guard;
CREATE TABLE guard.orders (id bigint PRIMARY KEY, amount integer NOT NULL, note text);
INSERT INTO guard.orders SELECT g, g * 10, NULL FROM generate_series(1, 5) g;
SELECT zdm.create_shadow_table('guard.orders', ARRAY['ALTER COLUMN amount TYPE numeric(12,2)'], NULL, 'orders_v2');

ALTER TABLE guard.orders RENAME TO orders_old;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ALTER TABLE guard.orders ALTER COLUMN note TYPE varchar(20);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
DROP TRIGGER zdm_sync_orders_v2 ON guard.orders;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ALTER TABLE guard.zdm_shadow_orders_v2 ADD COLUMN extra int;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
DROP TABLE guard.zdm_shadow_orders_v2;
\echo SQLSTATE :LAST_ERROR_SQLSTATE

-- Harmless: an index, a comment.
CREATE INDEX orders_note ON guard.orders (note);
COMMENT ON TABLE guard.orders IS 'orders';

SELECT zdm.rollback('orders_v2');
-- With no migration active, the same DDL goes through.
ALTER TABLE guard.orders ALTER COLUMN note TYPE varchar(20);
SELECT name, phase FROM zdm.migrations WHERE table_name LIKE 'guard.%';
DROP SCHEMA guard CASCADE;
