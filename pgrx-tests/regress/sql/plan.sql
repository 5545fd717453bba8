-- A dry run: every step of every phase, with its lock and its SQL, as
-- zdm.plan_steps() shows it. Nothing is created.
\set SHOW_CONTEXT never
CREATE SCHEMA plan;
CREATE TABLE plan.orders (id bigint PRIMARY KEY, amount integer NOT NULL, note text);

SELECT phase, position, description, lock_mode, locked_relation, top_level
  FROM zdm.plan_steps('{"name": "orders_amount", "operations": [{"op": "alter_column_type",
                          "table": "plan.orders", "column": "amount", "new_type": "numeric(12,2)"}]}')
 ORDER BY phase, position;

-- The statements in full, as they will run (the batch function, generated
-- like the others, is left out here for length).
\pset format unaligned
\pset tuples_only on
SELECT format(E'-- %s %s: %s\n%s;', phase, position, description, statement)
  FROM zdm.plan_steps('{"name": "orders_amount", "operations": [{"op": "alter_column_type",
                          "table": "plan.orders", "column": "amount", "new_type": "numeric(12,2)"}]}')
 WHERE phase IN ('start', 'complete', 'rollback') AND description <> 'backfill batch function'
 ORDER BY CASE phase WHEN 'start' THEN 1 WHEN 'complete' THEN 2 ELSE 3 END, position;
\pset format aligned
\pset tuples_only off

-- Nothing was created.
SELECT count(*) AS migrations FROM zdm.migrations WHERE table_name LIKE 'plan.%';
SELECT count(*) AS functions FROM pg_proc WHERE proname LIKE '%orders_amount%';
DROP SCHEMA plan CASCADE;
