-- Revert zdm_recipe:orders_v2
-- Before the swap: drops the shadow. After it: swaps back first (nothing written
-- since the swap is lost). A no-op (NOTICE) when already rolled back.
SELECT zdm.rollback('orders_v2');
