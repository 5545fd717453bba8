-- Revert zdm_recipe:orders_v2_contract
-- complete dropped the old orders table: there is nothing to go back to.
DO $$ BEGIN
    RAISE EXCEPTION 'orders_v2 is completed: the old orders table is gone'
        USING HINT = 'Write a new change instead of reverting this one.';
END $$;
