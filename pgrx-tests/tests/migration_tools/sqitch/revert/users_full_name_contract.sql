-- Revert zdm_recipe:users_full_name_contract
-- complete dropped users.name: there is nothing to go back to. Refuse, plainly.
DO $$ BEGIN
    RAISE EXCEPTION 'users_full_name is completed: users.name is gone'
        USING HINT = 'Write a new change (e.g. zdm.rename_column back) instead of reverting this one.';
END $$;
