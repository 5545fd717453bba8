//! In-server tests of least privilege: no role gains a right through pg_zdm,
//! and a table's owner (not a superuser) can use it. Real roles, switched
//! with SET ROLE inside the test's transaction (which is rolled back).

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use crate::tests::tests::{one, sqlstate};
    use pgrx::prelude::*;

    /// Run `sql` as `role`; the SQLSTATE it failed with (None: it succeeded).
    fn as_role(role: &str, sql: &str) -> Option<String> {
        sqlstate(&format!("SET ROLE {role}; {sql}; RESET ROLE"))
    }

    /// Run `sql` as `role`; it must succeed.
    fn ok_as(role: &str, sql: &str) {
        assert_eq!(as_role(role, sql), None, "as {role}: {sql}");
    }

    /// Two roles that are not superusers: the owner of schema `app`, and an
    /// outsider who may use the schema and read the tables.
    fn roles(owner: &str, outsider: &str) {
        Spi::run(&format!(
            "CREATE ROLE {owner}; CREATE ROLE {outsider};
             CREATE SCHEMA app_{owner} AUTHORIZATION {owner};
             GRANT USAGE ON SCHEMA app_{owner} TO {outsider};"
        ))
        .unwrap();
    }

    /// Every batch of `m`, as `role` (None: the test's superuser).
    fn backfill(role: Option<&str>, m: &str) {
        let all = format!("DO $$ BEGIN WHILE zdm.backfill_batch('{m}', 200) > 0 LOOP END LOOP; END $$");
        match role {
            Some(role) => ok_as(role, &all),
            None => Spi::run(&all).unwrap(),
        }
    }

    fn phase(m: &str) -> String {
        one::<String>(&format!("SELECT phase FROM zdm.migrations WHERE name = '{m}'")).unwrap()
    }

    /// The users/orders case study, run by the owner of the tables:
    /// rename `users.name`, restructure `orders` through a shadow, add an
    /// index; every call the outsider makes on them is refused with 42501.
    #[pg_test]
    fn a_table_owner_runs_every_lifecycle_and_others_get_42501() {
        roles("zdm_o1", "zdm_x1");
        let app = "app_zdm_o1";
        ok_as(
            "zdm_o1",
            &format!(
                "CREATE TABLE {app}.users (id bigint PRIMARY KEY, name text NOT NULL, email text);
                 INSERT INTO {app}.users SELECT g, 'u' || g FROM generate_series(1, 300) g;
                 CREATE TABLE {app}.orders (id bigint PRIMARY KEY, amount integer NOT NULL, note text);
                 INSERT INTO {app}.orders SELECT g, g, 'n' FROM generate_series(1, 700) g;
                 CREATE VIEW {app}.big_orders AS SELECT id, amount FROM {app}.orders WHERE amount > 100;
                 GRANT SELECT ON {app}.users, {app}.orders TO zdm_x1"
            ),
        );
        ok_as(
            "zdm_o1",
            &format!("SELECT zdm.rename_column('{app}.users', 'name', 'full_name', 'o1_rename')"),
        );
        ok_as(
            "zdm_o1",
            &format!("SELECT zdm.create_shadow_table('{app}.orders', ARRAY['ALTER COLUMN amount TYPE bigint'], NULL, 'o1_shadow')"),
        );
        ok_as(
            "zdm_o1",
            &format!("SELECT zdm.add_column('{app}.users', 'score', 'integer', fill_expr => 'id * 2', migration => 'o1_add')"),
        );
        ok_as(
            "zdm_o1",
            &format!("SELECT zdm.create_index('{app}.users', 'users_email', '(email)', 'o1_index')"),
        );
        let outsider_calls = [
            "SELECT zdm.complete('o1_rename')",
            "SELECT zdm.rollback('o1_rename')",
            "SELECT zdm.backfill_batch('o1_shadow')",
            "SELECT zdm.pause('o1_add')",
            "SELECT zdm.resume('o1_add')",
            "SELECT zdm.set_backfill_settings('o1_add', '{\"batch_size\": 1}')",
            "SELECT zdm.verify('o1_shadow')",
            "SELECT zdm.swap_tables('o1_shadow')",
            "SELECT zdm.unschedule_backfill('o1_add')",
            "SELECT zdm.forget('o1_add')",
            "SELECT zdm.schedule_backfill('o1_add')",
            "SELECT * FROM zdm.pending_statements('o1_index')",
            "SELECT zdm._backfill_step('o1_add', NULL, 'CALL')",
            "SELECT zdm._backfill_failed('o1_add', '22000', 'x')",
            "SELECT zdm._backfill_ended('o1_add')",
            "SELECT zdm.rename_column('app_zdm_o1.orders', 'note', 'remark')",
            "SELECT zdm.plan('{\"operations\": [{\"op\": \"drop_column\", \"table\": \"app_zdm_o1.orders\", \"column\": \"note\"}]}')",
        ];
        for call in outsider_calls {
            assert_eq!(as_role("zdm_x1", call).as_deref(), Some("42501"), "{call}");
        }
        assert_eq!(
            one::<i64>("SELECT count(*) FROM zdm.pending_statements()"),
            Some(1),
            "the superuser sees the pending statements of every migration"
        );
        assert_eq!(
            as_role(
                "zdm_x1",
                "CREATE TEMP TABLE x1_pending AS SELECT * FROM zdm.pending_statements()"
            ),
            None
        );
        assert_eq!(
            one::<i64>("SELECT count(*) FROM x1_pending"),
            Some(0),
            "none of them is the outsider's"
        );
        for (m, p) in [
            ("o1_rename", "started"),
            ("o1_shadow", "started"),
            ("o1_add", "started"),
        ] {
            assert_eq!(phase(m), p, "{m} unchanged by the outsider");
        }

        // The owner runs every phase.
        backfill(Some("zdm_o1"), "o1_rename");
        backfill(Some("zdm_o1"), "o1_add");
        backfill(Some("zdm_o1"), "o1_shadow");
        ok_as("zdm_o1", "SELECT zdm.verify('o1_shadow')");
        ok_as("zdm_o1", "SELECT zdm.swap_tables('o1_shadow')");
        ok_as(
            "zdm_o1",
            &format!("INSERT INTO {app}.orders VALUES (5000, 2000000000, 'big')"),
        );
        ok_as(
            "zdm_o1",
            "DO $$ DECLARE s text; BEGIN
                 FOR s IN SELECT statement FROM zdm.pending_statements('o1_index') LOOP
                     EXECUTE replace(s, ' CONCURRENTLY', '');
                 END LOOP;
             END $$",
        );
        for m in ["o1_rename", "o1_shadow", "o1_add", "o1_index"] {
            ok_as("zdm_o1", &format!("SELECT zdm.complete('{m}')"));
            assert_eq!(phase(m), "completed", "{m}");
        }
        assert_eq!(
            one::<String>(&format!(
                "SELECT format_type(atttypid, atttypmod) FROM pg_attribute
                  WHERE attrelid = '{app}.orders'::regclass AND attname = 'amount'"
            ))
            .unwrap(),
            "bigint"
        );
        assert_eq!(
            one::<i64>(&format!("SELECT count(*) FROM {app}.big_orders")),
            one::<i64>(&format!("SELECT count(*) FROM {app}.orders WHERE amount > 100")),
            "the view follows the new table"
        );
        assert_eq!(
            one::<String>(&format!(
                "SELECT pg_get_userbyid(relowner)::text FROM pg_class WHERE oid = '{app}.orders'::regclass"
            ))
            .unwrap(),
            "zdm_o1"
        );
        assert_eq!(
            one::<i64>(&format!(
                "SELECT count(*) FROM {app}.users WHERE score IS NULL OR full_name IS NULL"
            )),
            Some(0)
        );
        assert_eq!(
            one::<String>("SELECT string_agg(DISTINCT by_user::text, ',') FROM zdm.events WHERE migration LIKE 'o1%'")
                .as_deref(),
            Some("zdm_o1"),
            "events name the caller, not the catalog's owner"
        );
    }

    /// A writer with INSERT rights only puts a domain named `date` in its
    /// pg_temp: nothing of the shadow trigger (SECURITY DEFINER) resolves to it.
    #[pg_test]
    fn a_writer_cannot_slip_its_types_into_the_shadow_trigger() {
        Spi::run(
            "SET LOCAL zdm.shadow_indexes_after_copy = off;
             CREATE ROLE zdm_w2;
             CREATE TABLE public.ev2 (day date PRIMARY KEY, v int);
             INSERT INTO public.ev2 SELECT d, 1 FROM generate_series(date '2020-01-01', date '2020-12-31', '1 day') d;
             CREATE TABLE public.ev2_log (who name);
             GRANT INSERT ON public.ev2, public.ev2_log TO zdm_w2;
             SELECT zdm.create_shadow_table('public.ev2', ARRAY['ALTER COLUMN v TYPE bigint'], NULL, 'ev2');",
        )
        .unwrap();
        backfill(None, "ev2");
        assert_eq!(
            one::<pgrx::JsonB>("SELECT zdm.verify('ev2')").unwrap().0["matched"],
            true
        );
        let hijack = "CREATE FUNCTION pg_temp.evil(pg_catalog.date) RETURNS boolean LANGUAGE sql
                          AS $$ INSERT INTO public.ev2_log VALUES (current_user) RETURNING true $$;
                      CREATE DOMAIN pg_temp.date AS pg_catalog.date CHECK (pg_temp.evil(VALUE));
                      INSERT INTO public.ev2 VALUES ('2031-01-01', 2)";
        ok_as("zdm_w2", hijack);
        assert_eq!(
            one::<i64>("SELECT count(*) FROM public.ev2_log"),
            Some(0),
            "no code of the writer ran in the trigger"
        );
        assert_eq!(
            one::<i64>("SELECT count(*) FROM public.zdm_shadow_ev2 WHERE day = '2031-01-01'"),
            Some(1)
        );
    }

    /// The shadow belongs to the table's owner, who may put a trigger on it:
    /// that trigger must run with the owner's rights, whoever writes (a
    /// writer through the SECURITY DEFINER sync function, a superuser's batch).
    #[pg_test]
    fn the_owners_trigger_on_the_shadow_runs_with_the_owners_rights() {
        roles("zdm_o3", "zdm_w3");
        let app = "app_zdm_o3";
        ok_as(
            "zdm_o3",
            &format!(
                "CREATE TABLE {app}.acct (id bigint PRIMARY KEY, v int);
                 INSERT INTO {app}.acct SELECT g, g FROM generate_series(1, 100) g;
                 CREATE TABLE {app}.spy (who name);
                 GRANT INSERT ON {app}.acct, {app}.spy TO PUBLIC"
            ),
        );
        // A superuser starts it and runs the batches.
        Spi::run(&format!(
            "SELECT zdm.create_shadow_table('{app}.acct', '{{}}', NULL, 'acct3')"
        ))
        .unwrap();
        let spy = format!(
            "CREATE FUNCTION {app}.spy() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN INSERT INTO {app}.spy VALUES (current_user); RETURN NULL; END $$;
             CREATE TRIGGER spy AFTER INSERT OR UPDATE ON {app}.zdm_shadow_acct3
                 FOR EACH ROW EXECUTE FUNCTION {app}.spy()"
        );
        // The DDL guard refuses a user's trigger on a shadow (it could make the
        // sync's writes do nothing); with the guard disabled, it still runs
        // with no more than the owner's rights.
        assert_eq!(as_role("zdm_o3", &spy).as_deref(), Some("55006"));
        Spi::run("ALTER EVENT TRIGGER zdm_guard_create DISABLE").unwrap();
        ok_as("zdm_o3", &spy);
        Spi::run("ALTER EVENT TRIGGER zdm_guard_create ENABLE").unwrap();
        backfill(None, "acct3");
        ok_as("zdm_w3", &format!("INSERT INTO {app}.acct VALUES (1000, 1)"));
        Spi::run(&format!("SELECT zdm.verify('acct3')")).unwrap();
        assert!(
            one::<i64>(&format!("SELECT count(*) FROM {app}.spy")).unwrap() > 0,
            "the spy ran"
        );
        assert_eq!(
            one::<i64>(&format!(
                "SELECT count(*) FROM {app}.spy s JOIN pg_roles r ON r.rolname = s.who WHERE r.rolsuper OR s.who <> 'zdm_o3'"
            )),
            Some(0),
            "every run had the owner's rights"
        );
        let owners = one::<String>(
            "SELECT string_agg(DISTINCT pg_get_userbyid(p.proowner)::text, ',') FROM pg_proc p
              WHERE p.pronamespace = 'zdm'::regnamespace AND p.proname LIKE '%acct3'",
        )
        .unwrap();
        assert_eq!(owners, "zdm_o3", "the generated functions belong to the table's owner");
    }

    /// Generated functions are not PUBLIC's, and refuse to act for another table.
    #[pg_test]
    fn generated_functions_cannot_be_attached_elsewhere() {
        Spi::run(
            "CREATE ROLE zdm_x4;
             CREATE TABLE public.tt4 (id bigint PRIMARY KEY, v int);
             INSERT INTO public.tt4 SELECT g, g FROM generate_series(1, 100) g;
             SELECT zdm.create_shadow_table('public.tt4', '{}', NULL, 'tt4');",
        )
        .unwrap();
        backfill(None, "tt4");
        assert_eq!(
            one::<i64>(
                "SELECT count(*) FROM pg_proc p
                  WHERE p.pronamespace = 'zdm'::regnamespace
                    AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
                                       AND d.objid = p.oid AND d.deptype = 'e')
                    AND has_function_privilege('zdm_x4', p.oid, 'EXECUTE')"
            ),
            Some(0),
            "no generated function is executable by PUBLIC"
        );
        assert!(
            one::<i64>(
                "SELECT count(*) FROM pg_proc p WHERE p.pronamespace = 'zdm'::regnamespace AND p.proname LIKE '%tt4'"
            )
            .unwrap()
                >= 5
        );
        assert_eq!(
            as_role(
                "zdm_x4",
                "CREATE TEMP TABLE mine4 (x int);
                 CREATE TRIGGER t AFTER TRUNCATE ON mine4 FOR EACH STATEMENT EXECUTE FUNCTION zdm.shadow_truncate_tt4()"
            )
            .as_deref(),
            Some("42501")
        );
        // Even its owner cannot make it act for another table.
        let rows = one::<i64>("SELECT count(*) FROM public.zdm_shadow_tt4");
        assert_eq!(rows, Some(100));
        assert_eq!(
            sqlstate(
                "CREATE TEMP TABLE own4 (x int);
                 CREATE TRIGGER t AFTER TRUNCATE ON own4 FOR EACH STATEMENT EXECUTE FUNCTION zdm.shadow_truncate_tt4();
                 TRUNCATE own4"
            )
            .as_deref(),
            Some("42501")
        );
        assert_eq!(
            one::<i64>("SELECT count(*) FROM public.zdm_shadow_tt4"),
            rows,
            "the shadow is untouched"
        );
    }

    /// The catalog is written by pg_zdm's functions only, whatever a session sets.
    #[pg_test]
    fn the_catalog_is_not_writable_by_setting_a_guc() {
        crate::tests::tests::users_table("public.cg5");
        Spi::run("CREATE ROLE zdm_x5; SELECT zdm.rename_column('public.cg5', 'name', 'full_name', 'cg5')").unwrap();
        for sql in [
            "SET LOCAL zdm.catalog_write = on; UPDATE zdm.migrations SET plan = '{}'",
            "SET LOCAL zdm.catalog_write = on; DELETE FROM zdm.migrations",
            "SET LOCAL zdm.catalog_write = on; INSERT INTO zdm.events (migration, event) VALUES ('cg5', 'x')",
            "SET LOCAL zdm.catalog_write = on; TRUNCATE zdm.events",
        ] {
            assert_eq!(as_role("zdm_x5", sql).as_deref(), Some("42501"), "{sql}");
            assert_eq!(sqlstate(sql).as_deref(), Some("42501"), "superuser: {sql}");
        }
        assert_eq!(
            as_role(
                "zdm_x5",
                "SELECT count(*) FROM zdm.migrations, zdm.events, zdm.progress"
            ),
            None
        );
        assert_eq!(
            one::<i64>("SELECT count(*) FROM zdm.migrations WHERE name = 'cg5' AND plan ? 'start'"),
            Some(1)
        );
    }

    /// The API means the same whatever the caller's search_path holds, while
    /// a table named without its schema resolves the way the caller expects.
    #[pg_test]
    fn the_api_ignores_operators_in_the_callers_path() {
        Spi::run(
            "CREATE SCHEMA zdm_evil6;
             CREATE FUNCTION zdm_evil6.never(text, text) RETURNS boolean LANGUAGE sql AS 'SELECT false';
             CREATE OPERATOR zdm_evil6.= (LEFTARG = text, RIGHTARG = text, FUNCTION = zdm_evil6.never);
             CREATE SCHEMA zdm_app6;
             CREATE TABLE zdm_app6.people (id bigint PRIMARY KEY, name text);
             INSERT INTO zdm_app6.people VALUES (1, 'a'), (2, 'b');",
        )
        .unwrap();
        Spi::run("SET LOCAL search_path = zdm_evil6, pg_catalog, zdm_app6").unwrap();
        let m = one::<String>("SELECT zdm.rename_column('people', 'name', 'full_name')").unwrap();
        assert_eq!(m, "people_rename_name_to_full_name");
        let status = one::<pgrx::JsonB>(&format!("SELECT zdm.status('{m}')")).unwrap().0;
        assert_eq!(status["table"], "zdm_app6.people", "resolved with the caller's path");
        Spi::run(&format!(
            "SELECT zdm.start('{{\"name\": \"p6\", \"operations\": [{{\"op\": \"add_column\", \"table\": \"people\", \"column\": \"x\", \"type\": \"int\"}}]}}')"
        ))
        .unwrap();
        backfill(None, &m);
        Spi::run(&format!("SELECT zdm.complete('{m}'); SELECT zdm.rollback('p6')")).unwrap();
        Spi::run("SET LOCAL search_path = pg_catalog, public").unwrap();
        assert_eq!(phase("people_rename_name_to_full_name"), "completed");
        assert_eq!(phase("p6"), "rolled_back");
    }

    /// Writes under session_replication_role = replica (a subscriber's apply
    /// worker) still reach the new column and the shadow; a swap refuses when
    /// the trigger feeding the shadow does not fire for every write.
    #[pg_test]
    fn replica_writes_are_synced_and_a_disabled_feed_stops_the_swap() {
        crate::tests::tests::users_table("public.rp7");
        Spi::run(
            "SELECT zdm.rename_column('public.rp7', 'name', 'full_name', 'rp7');
             SET LOCAL session_replication_role = replica;
             INSERT INTO public.rp7 (id, name) VALUES (5001, 'from a subscriber');
             UPDATE public.rp7 SET name = 'changed there' WHERE id = 1;
             SET LOCAL session_replication_role = origin;",
        )
        .unwrap();
        assert_eq!(
            one::<String>("SELECT full_name FROM public.rp7 WHERE id = 5001").as_deref(),
            Some("from a subscriber")
        );
        assert_eq!(
            one::<String>("SELECT full_name FROM public.rp7 WHERE id = 1").as_deref(),
            Some("changed there")
        );

        crate::tests::tests::orders_table("public.sw7");
        Spi::run("SELECT zdm.create_shadow_table('public.sw7', '{}', NULL, 'sw7')").unwrap();
        backfill(None, "sw7");
        Spi::run(
            "SELECT zdm.verify('sw7');
             SET LOCAL session_replication_role = replica;
             UPDATE public.sw7 SET note = 'replica' WHERE id = 3;
             SET LOCAL session_replication_role = origin;",
        )
        .unwrap();
        assert_eq!(
            one::<String>("SELECT note FROM public.zdm_shadow_sw7 WHERE id = 3").as_deref(),
            Some("replica")
        );
        // The DDL guard refuses this; a superuser may disable the guard first.
        assert_eq!(
            sqlstate("ALTER TABLE public.sw7 DISABLE TRIGGER zdm_sync_sw7").as_deref(),
            Some("55006")
        );
        Spi::run("ALTER EVENT TRIGGER zdm_guard_alter DISABLE; ALTER TABLE public.sw7 DISABLE TRIGGER zdm_sync_sw7")
            .unwrap();
        let err = crate::tests::tests::error_text("SELECT zdm.swap_tables('sw7')");
        assert!(
            err.starts_with("55000: the trigger zdm_sync_sw7 feeding the shadow"),
            "{err}"
        );
        assert!(err.contains("ENABLE ALWAYS TRIGGER zdm_sync_sw7"), "{err}");
        assert_eq!(phase("sw7"), "backfilled");
    }

    /// An index definition is run later by whoever runs zdm.pending_statements(),
    /// whatever their standard_conforming_strings: it must be one CREATE INDEX
    /// in both modes, and its tablespace one the table's owner may use.
    #[pg_test]
    fn index_definitions_cannot_hide_a_statement_or_borrow_a_tablespace() {
        roles("zdm_o8", "zdm_x8");
        ok_as("zdm_o8", "CREATE TABLE app_zdm_o8.t (id int PRIMARY KEY, x text)");
        let hidden = [
            // one statement with the setting off, two with it on
            "SET LOCAL standard_conforming_strings = off; \
             SELECT zdm.create_index('app_zdm_o8.t', 'ix_a', $$ (x) WHERE x <> '\\' OR x = ''; ALTER ROLE zdm_o8 SUPERUSER; --'$$)",
            // one statement with the setting on, two with it off
            "SELECT zdm.create_index('app_zdm_o8.t', 'ix_b', $$ (x) WHERE x <> 'a\\'' ; ALTER ROLE zdm_o8 SUPERUSER; --'$$)",
        ];
        for sql in hidden {
            assert_eq!(as_role("zdm_o8", sql).as_deref(), Some("42601"), "{sql}");
        }
        assert_eq!(
            as_role(
                "zdm_o8",
                "SELECT zdm.create_index('app_zdm_o8.t', 'ix_c', '(x) TABLESPACE pg_global')"
            )
            .as_deref(),
            Some("42501")
        );
        // A backslash written so that it means the same in both modes is fine.
        ok_as(
            "zdm_o8",
            "SELECT zdm.create_index('app_zdm_o8.t', 'ix_d', $$ (x) WHERE x <> E'\\\\' $$, 'ix_d')",
        );
        assert_eq!(
            one::<i64>("SELECT count(*) FROM zdm.migrations WHERE name <> 'ix_d'"),
            Some(0)
        );
        // Another role's active migration in a schema this owner may not use
        // does not stop this owner's start (the conflict check reads no schema).
        Spi::run("CREATE SCHEMA zdm_priv8; CREATE TABLE zdm_priv8.p (id int PRIMARY KEY, y text); SELECT zdm.create_index('zdm_priv8.p', 'p_y', '(y)', 'p8')").unwrap();
        ok_as("zdm_o8", "SELECT zdm.rename_column('app_zdm_o8.t', 'x', 'x2', 'o8r')");
        assert_eq!(as_role("zdm_x8", "SELECT zdm.rollback('p8')").as_deref(), Some("42501"));
    }

    /// A publication with a row filter or a column list would publish every
    /// row and column of the new table after a plain re-add: the swap refuses.
    #[pg_test]
    fn a_swap_refuses_to_drop_a_publications_filter() {
        crate::tests::tests::orders_table("public.pb9");
        Spi::run("SELECT zdm.create_shadow_table('public.pb9', '{}', NULL, 'pb9')").unwrap();
        backfill(None, "pb9");
        Spi::run("CREATE PUBLICATION pub9 FOR TABLE public.pb9 (id, amount) WHERE (amount > 100)").unwrap();
        let err = crate::tests::tests::error_text("SELECT zdm.swap_tables('pb9')");
        assert!(
            err.starts_with("0A000: publication pub9 publishes public.pb9 with a row filter"),
            "{err}"
        );
        assert_eq!(phase("pb9"), "backfilled");
        assert_eq!(
            one::<String>("SELECT rowfilter FROM pg_publication_tables WHERE pubname = 'pub9'").as_deref(),
            Some("(amount > 100)")
        );
    }

    /// A migration whose table is gone (dropped with the DDL guard disabled):
    /// its creator may abandon it (rollback), anyone else gets 42501.
    #[pg_test]
    fn a_migration_whose_table_is_gone_is_abandoned_by_its_creator_only() {
        roles("zdm_o10", "zdm_x10");
        ok_as(
            "zdm_o10",
            "CREATE TABLE app_zdm_o10.t (id int PRIMARY KEY, a text); \
             SELECT zdm.rename_column('app_zdm_o10.t', 'a', 'b', 'g10')",
        );
        Spi::run("ALTER EVENT TRIGGER zdm_guard_drop DISABLE; DROP TABLE app_zdm_o10.t").unwrap();
        assert_eq!(
            as_role("zdm_x10", "SELECT zdm.rollback('g10')").as_deref(),
            Some("42501")
        );
        let err = crate::tests::tests::error_text("SELECT zdm.complete('g10')");
        assert!(
            err.starts_with(
                "42P01: relation \"app_zdm_o10.t\" does not exist / The table of this migration was dropped"
            ),
            "{err}"
        );
        assert_eq!(as_role("zdm_o10", "SELECT zdm.rollback('g10')"), None);
        assert_eq!(phase("g10"), "abandoned");
    }
}
