-- Revert zdm_recipe:users_full_name
-- Back to exactly the table before start; a no-op (NOTICE) when already rolled back.
SELECT zdm.rollback('users_full_name');
