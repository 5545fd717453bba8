-- Deploy zdm_recipe:orders_v2
-- amount integer -> numeric(10,2) under the same name, and a new currency column,
-- through a shadow table.

BEGIN;
SELECT zdm.create_shadow_table('public.orders',
    ARRAY['ALTER COLUMN amount TYPE numeric(10,2)',
          'ADD COLUMN currency varchar(3) NOT NULL DEFAULT ''EUR'''],
    NULL, 'orders_v2');
COMMIT;

CALL zdm.backfill('orders_v2');

-- The swap verifies first (refused on any difference) and takes its locks with
-- zdm.lock_timeout, retried. Guarded by the phase, so a re-run after it passes.
SELECT zdm.swap_tables(name) FROM zdm.migrations WHERE name = 'orders_v2' AND phase = 'backfilled';
