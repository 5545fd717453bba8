-- Deploy zdm_recipe:users_full_name_contract
-- Once no running application reads users.name. A no-op (NOTICE) when already completed.
SELECT zdm.complete('users_full_name');
