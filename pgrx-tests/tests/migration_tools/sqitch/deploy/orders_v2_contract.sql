-- Deploy zdm_recipe:orders_v2_contract
-- Once no running application needs the old orders (kept current until now).
SELECT zdm.complete('orders_v2');

-- A new index on the restructured table: started in a short transaction, built
-- CONCURRENTLY at top level, then completed. Every call is safe to re-run.
BEGIN;
SELECT zdm.create_index('public.orders', 'orders_currency_idx', '(currency)', 'orders_currency_idx');
COMMIT;
SELECT statement FROM zdm.pending_statements('orders_currency_idx') \gexec
SELECT zdm.complete('orders_currency_idx');
