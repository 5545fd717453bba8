//! In-server tests (`cargo pgrx test`): each runs in its own transaction,
//! against a real PostgreSQL. Concurrency lives in the external suite (pgrx-tests/).

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
pub(crate) mod tests {
    use crate::error::sqlstate_of;
    use crate::session::{caught_sqlstate, in_subtransaction};
    use pgrx::prelude::*;

    /// Run `sql`; return the SQLSTATE it failed with (None when it succeeded).
    pub(crate) fn sqlstate(sql: &str) -> Option<String> {
        match in_subtransaction(|| Spi::run(sql).expect("spi")) {
            Ok(()) => None,
            Err(e) => Some(
                caught_sqlstate(&e)
                    .map(sqlstate_of)
                    .unwrap_or_else(|| "rust panic".into()),
            ),
        }
    }

    /// Run `sql` (a statement PL/pgSQL can EXECUTE); return its error's
    /// "SQLSTATE: message / hint", or "" when it succeeded.
    pub(crate) fn error_text(sql: &str) -> String {
        Spi::run(
            "CREATE OR REPLACE FUNCTION pg_temp.zdm_error_text(stmt text) RETURNS text LANGUAGE plpgsql AS $$
             DECLARE code text; msg text; hint text;
             BEGIN
                 EXECUTE stmt;
                 RETURN '';
             EXCEPTION WHEN others THEN
                 GET STACKED DIAGNOSTICS code = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, hint = PG_EXCEPTION_HINT;
                 RETURN code || ': ' || msg || ' / ' || hint;
             END $$",
        )
        .unwrap();
        let lit = crate::ident::Literal::new(sql);
        one::<String>(&format!("SELECT pg_temp.zdm_error_text({lit})")).unwrap_or_default()
    }

    pub(crate) fn one<T: IntoDatum + FromDatum>(sql: &str) -> Option<T> {
        Spi::get_one::<T>(sql).expect("query")
    }

    pub(crate) fn users_table(name: &str) {
        Spi::run(&format!(
            "CREATE TABLE {name} (id bigint PRIMARY KEY, name varchar(255) NOT NULL, email text);
             INSERT INTO {name} SELECT g, 'user ' || g, CASE WHEN g % 3 = 0 THEN NULL ELSE 'u' || g || '@x' END
               FROM generate_series(1, 1000) g;"
        ))
        .unwrap();
    }

    /// Every column of every row, as one text, to compare before/after.
    pub(crate) fn fingerprint(table: &str, cols: &str) -> String {
        one::<String>(&format!(
            "SELECT string_agg(concat_ws('|', {cols}), ',' ORDER BY id) FROM {table}"
        ))
        .unwrap_or_default()
    }

    #[pg_test]
    fn catalog_starts_empty() {
        assert_eq!(one::<i64>("SELECT count(*) FROM zdm.migrations"), Some(0));
    }

    #[pg_test]
    fn rename_column_whole_lifecycle() {
        users_table("public.users");
        let before = fingerprint("public.users", "id, name, email");
        let m = one::<String>("SELECT zdm.rename_column('public.users', 'name', 'full_name')").unwrap();
        assert_eq!(m, "users_rename_name_to_full_name");
        assert_eq!(one::<String>("SELECT phase FROM zdm.migrations").unwrap(), "started");

        // Old app and new app both write between start and complete.
        Spi::run("INSERT INTO users (id, name) VALUES (2001, 'old app')").unwrap();
        Spi::run("INSERT INTO users (id, full_name) VALUES (2002, 'new app')").unwrap();
        Spi::run("UPDATE users SET name = 'old upd' WHERE id = 1").unwrap();
        Spi::run("UPDATE users SET full_name = 'new upd' WHERE id = 2").unwrap();
        Spi::run("UPDATE users SET email = 'unrelated' WHERE id = 4").unwrap();
        assert_eq!(
            one::<String>("SELECT full_name FROM users WHERE id = 2001").unwrap(),
            "old app"
        );
        assert_eq!(
            one::<String>("SELECT name FROM users WHERE id = 2002").unwrap(),
            "new app"
        );
        assert_eq!(
            one::<String>("SELECT full_name FROM users WHERE id = 1").unwrap(),
            "old upd"
        );
        assert_eq!(one::<String>("SELECT name FROM users WHERE id = 2").unwrap(), "new upd");
        // The NOT NULL check is already enforced for new rows.
        assert_eq!(
            sqlstate("INSERT INTO users (id) VALUES (3000)").as_deref(),
            Some("23502")
        );

        // Complete before backfill is refused with the way out in the hint.
        assert_eq!(
            sqlstate("SELECT zdm.complete('users_rename_name_to_full_name')").as_deref(),
            Some("55000")
        );

        let mut batches = 0;
        while one::<i64>("SELECT zdm.backfill_batch('users_rename_name_to_full_name', 300)").unwrap() > 0 {
            batches += 1;
        }
        assert_eq!(batches, 4, "1002 rows in batches of 300");
        assert_eq!(one::<String>("SELECT phase FROM zdm.migrations").unwrap(), "backfilled");
        assert_eq!(
            one::<i64>("SELECT count(*) FROM users WHERE full_name IS DISTINCT FROM name"),
            Some(0)
        );
        assert_eq!(
            one::<bool>(
                "SELECT convalidated FROM pg_constraint WHERE conname = 'zdm_nn_users_rename_name_to_full_name'"
            ),
            Some(true)
        );

        Spi::run("SELECT zdm.complete('users_rename_name_to_full_name')").unwrap();
        assert_eq!(one::<String>("SELECT phase FROM zdm.migrations").unwrap(), "completed");
        assert_eq!(one::<i64>("SELECT count(*) FROM pg_attribute WHERE attrelid = 'users'::regclass AND attname = 'name' AND NOT attisdropped"), Some(0));
        assert_eq!(
            one::<bool>(
                "SELECT attnotnull FROM pg_attribute WHERE attrelid = 'users'::regclass AND attname = 'full_name'"
            ),
            Some(true)
        );
        assert_eq!(
            one::<i64>("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'users'::regclass"),
            Some(0)
        );
        assert_eq!(
            one::<i64>("SELECT count(*) FROM pg_constraint WHERE conrelid = 'users'::regclass AND contype = 'c'"),
            Some(0)
        );
        assert_eq!(
            one::<i64>("SELECT count(*) FROM pg_proc WHERE proname LIKE 'sync_users_rename%'"),
            Some(0)
        );
        // Values: the original rows (with the app writes above) kept exactly.
        let after = fingerprint("public.users", "id, full_name, email");
        assert_eq!(after.split(',').count(), before.split(',').count() + 2);
        assert_eq!(
            one::<String>("SELECT full_name FROM users WHERE id = 999").unwrap(),
            "user 999"
        );
        // Rollback after complete is refused.
        assert_eq!(
            sqlstate("SELECT zdm.rollback('users_rename_name_to_full_name')").as_deref(),
            Some("55000")
        );
        // The same change again later gets a fresh generated name.
        Spi::run("ALTER TABLE users RENAME COLUMN full_name TO name").unwrap();
        assert_eq!(
            one::<String>("SELECT zdm.rename_column('public.users', 'name', 'full_name')").unwrap(),
            "users_rename_name_to_full_name_2"
        );
        Spi::run("SELECT zdm.rollback('users_rename_name_to_full_name_2')").unwrap();
        let events =
            one::<i64>("SELECT count(*) FROM zdm.events WHERE migration = 'users_rename_name_to_full_name'").unwrap();
        assert!(events >= 5, "{events} events");
    }

    #[pg_test]
    fn rollback_from_each_phase_restores_the_table() {
        for (i, phase) in ["started", "backfilling", "backfilled"].iter().enumerate() {
            let t = format!("public.r{i}");
            users_table(&t);
            let before = fingerprint(&t, "id, name, email");
            let m = format!("r{i}");
            Spi::run(&format!("SELECT zdm.rename_column('{t}', 'name', 'full_name', '{m}')")).unwrap();
            if *phase != "started" {
                Spi::run(&format!("SELECT zdm.backfill_batch('{m}', 100)")).unwrap();
            }
            if *phase == "backfilled" {
                while one::<i64>(&format!("SELECT zdm.backfill_batch('{m}', 600)")).unwrap() > 0 {}
            }
            assert_eq!(
                one::<String>(&format!("SELECT phase FROM zdm.migrations WHERE name = '{m}'")).unwrap(),
                *phase
            );
            Spi::run(&format!("SELECT zdm.rollback('{m}')")).unwrap();
            assert_eq!(fingerprint(&t, "id, name, email"), before);
            assert_eq!(one::<i64>(&format!("SELECT count(*) FROM pg_attribute WHERE attrelid = '{t}'::regclass AND attnum > 0 AND NOT attisdropped")), Some(3));
            assert_eq!(
                one::<i64>(&format!(
                    "SELECT count(*) FROM pg_trigger WHERE tgrelid = '{t}'::regclass"
                )),
                Some(0)
            );
            assert_eq!(
                one::<i64>(&format!(
                    "SELECT count(*) FROM pg_constraint WHERE conrelid = '{t}'::regclass AND contype = 'c'"
                )),
                Some(0)
            );
            assert_eq!(
                one::<String>(&format!("SELECT phase FROM zdm.migrations WHERE name = '{m}'")).unwrap(),
                "rolled_back"
            );
        }
    }

    #[pg_test]
    fn hostile_names_are_quoted_everywhere() {
        Spi::run(r#"CREATE SCHEMA "My Schema";
                    CREATE TABLE "My Schema"."Order; DROP TABLE x" ("Id" int PRIMARY KEY, "select" text, "é col" text DEFAULT 'd''x');
                    INSERT INTO "My Schema"."Order; DROP TABLE x" VALUES (1, 'a', 'b'), (2, NULL, 'c');"#).unwrap();
        let m = one::<String>(r#"SELECT zdm.rename_column('"My Schema"."Order; DROP TABLE x"', 'select', 'from "quoted" é', 'weird $zdm$ name')"#).unwrap();
        assert_eq!(m, "weird $zdm$ name");
        Spi::run(r#"INSERT INTO "My Schema"."Order; DROP TABLE x" ("Id", "from ""quoted"" é") VALUES (3, 'new')"#)
            .unwrap();
        while one::<i64>("SELECT zdm.backfill_batch('weird $zdm$ name')").unwrap() > 0 {}
        Spi::run("SELECT zdm.complete('weird $zdm$ name')").unwrap();
        assert_eq!(
            one::<String>(r#"SELECT string_agg(coalesce("from ""quoted"" é", 'NULL'), ',' ORDER BY "Id") FROM "My Schema"."Order; DROP TABLE x""#).unwrap(),
            "a,NULL,new"
        );
    }

    #[pg_test]
    fn defaults_sequences_and_comments_move_to_the_new_column() {
        Spi::run(
            "CREATE TABLE public.s (id int PRIMARY KEY, n serial, c text DEFAULT 'x');
                  COMMENT ON COLUMN public.s.n IS 'a counter';
                  INSERT INTO public.s (id) SELECT generate_series(1, 10);",
        )
        .unwrap();
        Spi::run("SELECT zdm.rename_column('public.s', 'n', 'counter', 'm_seq')").unwrap();
        Spi::run("INSERT INTO public.s (id) VALUES (11)").unwrap();
        while one::<i64>("SELECT zdm.backfill_batch('m_seq')").unwrap() > 0 {}
        Spi::run("SELECT zdm.complete('m_seq')").unwrap();
        Spi::run("INSERT INTO public.s (id) VALUES (12)").unwrap();
        assert_eq!(one::<i32>("SELECT counter FROM public.s WHERE id = 12"), Some(12));
        assert_eq!(one::<String>("SELECT col_description('public.s'::regclass, (SELECT attnum FROM pg_attribute WHERE attrelid = 'public.s'::regclass AND attname = 'counter'))").unwrap(), "a counter");
        assert!(one::<String>("SELECT pg_get_serial_sequence('public.s', 'counter')").is_some());
    }

    #[pg_test]
    fn refusals_carry_sqlstates_and_change_nothing() {
        users_table("public.u");
        Spi::run(
            "CREATE TABLE public.nokey (a int, b text); CREATE VIEW public.v AS SELECT 1 AS x;
                  CREATE TABLE public.parted (id int, b text) PARTITION BY RANGE (id);",
        )
        .unwrap();
        let cases = [
            ("SELECT zdm.rename_column('public.nope', 'name', 'x')", "42P01"),
            (r#"SELECT zdm.start('{"op": "rename_column", "table": "public.nope", "column": "a", "new_name": "b"}')"#, "42P01"),
            ("SELECT zdm.rename_column('public.u', 'nope', 'x')", "42703"),
            ("SELECT zdm.rename_column('public.u', 'name', 'email')", "42701"),
            ("SELECT zdm.rename_column('public.nokey', 'b', 'c')", "55000"),
            (r#"SELECT zdm.start('{"op": "rename_column", "table": "public.v", "column": "x", "new_name": "y"}')"#, "42809"),
            (r#"SELECT zdm.start('{"op": "rename_column", "table": "public.parted", "column": "b", "new_name": "c"}')"#, "0A000"),
            (r#"SELECT zdm.start('{"op": "rename_column", "table": "public.u", "column": "name"}')"#, "22023"),
            (r#"SELECT zdm.start('{"op": "teleport", "table": "public.u"}')"#, "22023"),
            ("SELECT zdm.start('[]')", "22023"),
            ("SELECT zdm.rename_column('public.u', 'name', 'x', '')", "42602"),
            ("SELECT zdm.complete('no such migration')", "42704"),
            ("SELECT zdm.rollback('no such migration')", "42704"),
            ("SELECT zdm.status('no such migration')", "42704"),
            ("SELECT zdm.backfill_batch('no such migration')", "42704"),
            ("INSERT INTO zdm.migrations (name, table_name, kind, phase, spec, plan) VALUES ('x', 't', 'k', 'started', '{}', '{}')", "42501"),
        ];
        for (sql, want) in cases {
            assert_eq!(sqlstate(sql).as_deref(), Some(want), "{sql}");
        }
        assert_eq!(one::<i64>("SELECT count(*) FROM zdm.migrations"), Some(0));
        assert_eq!(one::<i64>("SELECT count(*) FROM pg_attribute WHERE attrelid = 'public.u'::regclass AND attnum > 0 AND NOT attisdropped"), Some(3));

        // A second migration on the same column; a duplicate name; bad batch size.
        Spi::run("SELECT zdm.rename_column('public.u', 'name', 'full_name', 'first')").unwrap();
        assert_eq!(
            sqlstate("SELECT zdm.rename_column('public.u', 'name', 'nom')").as_deref(),
            Some("55006")
        );
        assert_eq!(
            sqlstate("SELECT zdm.rename_column('public.u', 'email', 'mail', 'first')").as_deref(),
            Some("42710")
        );
        assert_eq!(
            sqlstate("SELECT zdm.backfill_batch('first', 0)").as_deref(),
            Some("22023")
        );
        assert_eq!(
            sqlstate("UPDATE zdm.migrations SET phase = 'completed'").as_deref(),
            Some("42501")
        );
        assert_eq!(sqlstate("DELETE FROM zdm.events").as_deref(), Some("42501"));
        assert_eq!(one::<i64>("SELECT count(*) FROM zdm.migrations"), Some(1));
    }

    #[pg_test]
    fn plan_is_a_dry_run() {
        users_table("public.p");
        let plan = one::<pgrx::JsonB>(r#"SELECT zdm.plan('{"op": "rename_column", "table": "public.p", "column": "name", "new_name": "full_name"}')"#).unwrap().0;
        assert_eq!(plan["migration"], "p_rename_name_to_full_name");
        assert_eq!(plan["phases"]["start"][0]["lock"]["mode"], "ACCESS EXCLUSIVE");
        assert_eq!(
            plan["phases"]["start"][0]["sql"],
            "ALTER TABLE public.p ADD COLUMN full_name character varying(255)"
        );
        assert!(plan["phases"]["complete"].as_array().unwrap().len() >= 4);
        assert_eq!(one::<i64>("SELECT count(*) FROM zdm.migrations"), Some(0));
        assert_eq!(
            one::<i64>(
                "SELECT count(*) FROM pg_attribute WHERE attrelid = 'public.p'::regclass AND attname = 'full_name'"
            ),
            Some(0)
        );
    }

    /// zdm.plan_steps(): the same plan as zdm.plan(), one row per step, in
    /// the order the steps run; the same ownership check; nothing changed.
    #[pg_test]
    fn plan_steps_lists_every_step_as_a_row() {
        users_table("public.ps");
        Spi::run("CREATE INDEX ps_name ON public.ps (name)").unwrap();
        let spec = r#"'{"op": "rename_column", "table": "public.ps", "column": "name", "new_name": "full_name"}'"#;
        assert_eq!(
            one::<String>(&format!(
                "SELECT concat_ws(' | ', phase, position, lock_mode, locked_relation, top_level, statement)
                   FROM zdm.plan_steps({spec}) LIMIT 1"
            ))
            .as_deref(),
            Some("start | 1 | ACCESS EXCLUSIVE | public.ps | f | ALTER TABLE public.ps ADD COLUMN full_name character varying(255)")
        );
        // Phases in the order they run, positions counted within each.
        assert_eq!(
            one::<String>(&format!(
                "SELECT string_agg(phase || position, ',' ORDER BY n) FROM zdm.plan_steps({spec}) WITH ORDINALITY s(phase, position, d, m, r, t, st, n)
                  WHERE position = 1"
            ))
            .as_deref(),
            Some("start1,backfill1,validate1,complete1,rollback1")
        );
        // Every step of zdm.plan(), with its statement.
        assert_eq!(
            one::<bool>(&format!(
                "SELECT array_agg(statement ORDER BY n) = (SELECT array_agg(x->>'sql' ORDER BY ph, i)
                    FROM zdm.plan({spec}) p,
                         LATERAL (VALUES (1, 'start'), (3, 'validate'), (4, 'complete'), (5, 'rollback')) v(ph, name),
                         LATERAL jsonb_array_elements(p->'phases'->v.name) WITH ORDINALITY e(x, i))
                   FROM zdm.plan_steps({spec}) WITH ORDINALITY s(phase, position, d, m, r, t, statement, n)
                  WHERE phase <> 'backfill'"
            )),
            Some(true)
        );
        assert_eq!(
            one::<String>(&format!("SELECT statement FROM zdm.plan_steps({spec}) WHERE top_level")).as_deref(),
            Some("CREATE INDEX CONCURRENTLY zdm_ix0_ps_rename_name_to_full_name ON public.ps USING btree (full_name)")
        );
        assert_eq!(
            one::<String>(&format!(
                "SELECT DISTINCT lock_mode || ' ' || locked_relation FROM zdm.plan_steps({spec}) WHERE phase = 'backfill'"
            ))
            .as_deref(),
            Some("ROW EXCLUSIVE public.ps")
        );
        assert_eq!(one::<i64>("SELECT count(*) FROM zdm.migrations"), Some(0));
        Spi::run("CREATE ROLE zdm_ps_outsider; GRANT USAGE ON SCHEMA zdm TO zdm_ps_outsider").unwrap();
        assert_eq!(
            sqlstate(&format!(
                "SET ROLE zdm_ps_outsider; SELECT * FROM zdm.plan_steps({spec}); RESET ROLE"
            ))
            .as_deref(),
            Some("42501")
        );
    }

    #[pg_test]
    fn status_and_progress_report_the_backfill() {
        users_table("public.st");
        Spi::run("ANALYZE public.st").unwrap();
        Spi::run("SELECT zdm.rename_column('public.st', 'name', 'full_name', 'st')").unwrap();
        Spi::run("SELECT zdm.backfill_batch('st', 250)").unwrap();
        Spi::run("SELECT zdm.backfill_batch('st', 250)").unwrap();
        assert_eq!(
            one::<i64>("SELECT rows_done FROM zdm.progress WHERE migration = 'st'"),
            Some(500)
        );
        assert_eq!(
            one::<i64>("SELECT rows_estimated FROM zdm.progress WHERE migration = 'st'"),
            Some(1000)
        );
        assert_eq!(
            one::<pgrx::AnyNumeric>("SELECT percent FROM zdm.progress WHERE migration = 'st'").map(|n| n.to_string()),
            Some("50.0".into())
        );
        let s = one::<pgrx::JsonB>("SELECT zdm.status('st')").unwrap().0;
        assert_eq!(s["phase"], "backfilling");
        assert_eq!(
            s["next"],
            "CALL zdm.backfill('st'); (top level) or SELECT zdm.schedule_backfill('st');"
        );
        Spi::run("SELECT zdm.pause('st')").unwrap();
        assert_eq!(
            one::<pgrx::JsonB>("SELECT zdm.status('st')").unwrap().0["next"],
            "SELECT zdm.resume('st'); then CALL zdm.backfill('st');"
        );
        Spi::run("SELECT zdm.resume('st')").unwrap();
        while one::<i64>("SELECT zdm.backfill_batch('st')").unwrap() > 0 {}
        assert_eq!(
            one::<pgrx::JsonB>("SELECT zdm.status('st')").unwrap().0["next"],
            "SELECT zdm.complete('st'); once the old application is retired"
        );
        assert_eq!(s["progress"]["batches"], 2);
        assert!(s["events"].as_array().unwrap().len() >= 2);
    }

    #[pg_test]
    fn composite_key_backfill_walks_every_row() {
        Spi::run("CREATE TABLE public.lines (order_id int, line text, qty int, note text, PRIMARY KEY (order_id, line));
                  INSERT INTO public.lines SELECT o, 'L' || l, l, 'n' FROM generate_series(1, 50) o, generate_series(1, 7) l;").unwrap();
        Spi::run("SELECT zdm.rename_column('public.lines', 'note', 'remark', 'lines')").unwrap();
        let mut total = 0;
        loop {
            let n = one::<i64>("SELECT zdm.backfill_batch('lines', 33)").unwrap();
            if n == 0 {
                break;
            }
            total += n;
        }
        assert_eq!(total, 350);
        assert_eq!(
            one::<i64>("SELECT count(*) FROM public.lines WHERE remark IS NULL"),
            Some(0)
        );
    }

    #[pg_test]
    fn backfill_procedure_refuses_a_transaction_block() {
        users_table("public.tb");
        Spi::run("SELECT zdm.rename_column('public.tb', 'name', 'full_name', 'tb')").unwrap();
        // pg_test bodies run inside a transaction: exactly the case to refuse.
        assert_eq!(
            sqlstate("SELECT zdm._backfill_precheck('tb', NULL)").as_deref(),
            Some("25001")
        );
    }

    #[pg_test]
    fn backfill_in_a_transaction_hint_names_both_causes() {
        users_table("public.tbh");
        Spi::run("SELECT zdm.rename_column('public.tbh', 'name', 'full_name', 'tbh')").unwrap();
        // PostgreSQL cannot say whether BEGIN or a multi-statement query string
        // (psql -c "CALL ...; SELECT 1") made the transaction: the hint names both.
        let e = error_text("SELECT zdm._backfill_precheck('tbh', NULL)");
        assert!(e.starts_with("25001: "), "{e}");
        assert!(e.contains("BEGIN"), "{e}");
        assert!(e.contains("one query string"), "{e}");
        assert!(e.contains("psql -c"), "{e}");
    }

    #[pg_test]
    fn progress_says_when_index_builds_are_pending() {
        users_table("public.ipx");
        Spi::run("SELECT zdm.create_index('public.ipx', 'ipx_email_idx', '(email)', 'ipx')").unwrap();
        assert_eq!(
            one::<String>("SELECT state FROM zdm.progress WHERE migration = 'ipx'").unwrap(),
            "index builds pending: run zdm.pending_statements()"
        );
        // The planned index, built (here without CONCURRENTLY: a pg_test is a transaction).
        Spi::run("CREATE INDEX ipx_email_idx ON public.ipx (email)").unwrap();
        assert_eq!(
            one::<String>("SELECT state FROM zdm.progress WHERE migration = 'ipx'").unwrap(),
            "ready to complete"
        );
        // A column copy rebuilds the column's index on the new column: pending after its backfill.
        Spi::run("CREATE INDEX ipx_name_idx ON public.ipx (name)").unwrap();
        Spi::run("SELECT zdm.rename_column('public.ipx', 'name', 'full_name', 'ipr')").unwrap();
        while one::<i64>("SELECT zdm.backfill_batch('ipr', 5000)").unwrap() > 0 {}
        assert_eq!(
            one::<String>("SELECT phase FROM zdm.migrations WHERE name = 'ipr'").unwrap(),
            "backfilled"
        );
        assert_eq!(
            one::<String>("SELECT state FROM zdm.progress WHERE migration = 'ipr'").unwrap(),
            "index builds pending: run zdm.pending_statements()"
        );
    }

    #[pg_test]
    fn pause_resume_and_settings() {
        users_table("public.pr");
        Spi::run("SELECT zdm.rename_column('public.pr', 'name', 'full_name', 'pr')").unwrap();
        Spi::run("SELECT zdm.pause('pr')").unwrap();
        assert_eq!(
            one::<String>("SELECT state FROM zdm.progress WHERE migration = 'pr'").unwrap(),
            "paused"
        );
        // A paused migration runs no batch, by hand or by the loop.
        assert_eq!(sqlstate("SELECT zdm.backfill_batch('pr')").as_deref(), Some("55000"));
        assert_eq!(
            one::<String>("SELECT state FROM zdm._backfill_step('pr', NULL, 'CALL')").unwrap(),
            "paused"
        );
        Spi::run("SELECT zdm.pause('pr')").unwrap(); // idempotent
        Spi::run("SELECT zdm.resume('pr')").unwrap();
        Spi::run("SELECT zdm.resume('pr')").unwrap(); // idempotent

        let eff = one::<pgrx::JsonB>(
            r#"SELECT zdm.set_backfill_settings('pr', '{"batch_size": 111, "target_batch_ms": 0}')"#,
        )
        .unwrap()
        .0;
        assert_eq!(eff["batch_size"], 111);
        assert_eq!(eff["target_batch_ms"], 0);
        assert_eq!(
            one::<i64>("SELECT rows FROM zdm._backfill_step('pr', NULL, 'CALL')"),
            Some(111)
        );
        assert_eq!(
            one::<i32>("SELECT next_batch_size FROM zdm.progress WHERE migration = 'pr'"),
            Some(111)
        );
        assert!(one::<String>("SELECT runner FROM zdm.progress WHERE migration = 'pr'")
            .unwrap()
            .starts_with("CALL (pid "));
        // null goes back to the GUC
        let eff = one::<pgrx::JsonB>(r#"SELECT zdm.set_backfill_settings('pr', '{"batch_size": null}')"#)
            .unwrap()
            .0;
        assert_eq!(eff["batch_size"], 1000);
        assert_eq!(eff["target_batch_ms"], 0);
        assert_eq!(
            sqlstate(r#"SELECT zdm.set_backfill_settings('pr', '{"batch_size": -1}')"#).as_deref(),
            Some("22023")
        );
        assert_eq!(
            sqlstate(r#"SELECT zdm.set_backfill_settings('pr', '{"speed": 1}')"#).as_deref(),
            Some("22023")
        );

        while one::<i64>("SELECT zdm.backfill_batch('pr')").unwrap() > 0 {}
        assert_eq!(sqlstate("SELECT zdm.resume('pr')").as_deref(), Some("55000"));
        assert_eq!(sqlstate("SELECT zdm.pause('pr')").as_deref(), Some("55000"));
        Spi::run("SELECT zdm.rollback('pr')").unwrap();
        // The loop stops by itself on a migration another session rolled back.
        assert_eq!(
            one::<String>("SELECT state FROM zdm._backfill_step('pr', NULL, 'CALL')").unwrap(),
            "gone"
        );
        assert_eq!(sqlstate("SELECT zdm.backfill_batch('pr')").as_deref(), Some("55000"));
        assert_eq!(sqlstate("SELECT zdm.pause('nope')").as_deref(), Some("42704"));
    }

    #[pg_test]
    fn batch_size_adapts_to_the_target_time() {
        users_table("public.ad");
        Spi::run("SELECT zdm.rename_column('public.ad', 'name', 'full_name', 'ad')").unwrap();
        Spi::run(r#"SELECT zdm.set_backfill_settings('ad', '{"batch_size": 50, "target_batch_ms": 10000}')"#).unwrap();
        Spi::run("SELECT * FROM zdm._backfill_step('ad', NULL, 'CALL')").unwrap();
        // 50 rows take far less than 10 s: the next batch doubles.
        assert_eq!(
            one::<i32>("SELECT next_batch_size FROM zdm.progress WHERE migration = 'ad'"),
            Some(100)
        );
    }

    #[pg_test]
    fn empty_table_is_backfilled_at_once() {
        Spi::run("CREATE TABLE public.empty (id int PRIMARY KEY, a text NOT NULL)").unwrap();
        Spi::run("SELECT zdm.rename_column('public.empty', 'a', 'b', 'empty')").unwrap();
        assert_eq!(one::<i64>("SELECT zdm.backfill_batch('empty')"), Some(0));
        assert_eq!(
            one::<String>("SELECT phase FROM zdm.migrations WHERE name = 'empty'").unwrap(),
            "backfilled"
        );
        Spi::run("SELECT zdm.complete('empty')").unwrap();
    }

    #[pg_test]
    fn scheduling_without_pg_cron_is_refused_with_a_hint() {
        users_table("public.sc");
        Spi::run("SELECT zdm.rename_column('public.sc', 'name', 'full_name', 'sc')").unwrap();
        assert_eq!(sqlstate("SELECT zdm.schedule_backfill('sc')").as_deref(), Some("55000"));
        assert_eq!(
            sqlstate("SELECT zdm.schedule_backfill('sc', '* * * * *', 0)").as_deref(),
            Some("22023")
        );
        assert_eq!(one::<bool>("SELECT zdm.unschedule_backfill('sc')"), Some(false));
        assert_eq!(
            sqlstate("SELECT zdm.unschedule_backfill('nope')").as_deref(),
            Some("42704")
        );
    }

    #[pg_test]
    fn monitoring_views_answer() {
        Spi::run("SELECT * FROM zdm.blocking_locks").unwrap();
        Spi::run("SELECT * FROM zdm.long_transactions").unwrap();
        Spi::run("SELECT * FROM zdm.replication_lag").unwrap();
        assert_eq!(one::<i64>("SELECT count(*) FROM zdm.replication_lag"), Some(0));
    }

    #[pg_test]
    fn generated_functions_are_readable_and_schema_qualified() {
        users_table("public.gf");
        Spi::run("SELECT zdm.rename_column('public.gf', 'name', 'full_name', 'gf')").unwrap();
        let batch = one::<String>("SELECT pg_get_functiondef('zdm.backfill_gf'::regproc)").unwrap();
        assert!(
            batch.contains("-- pg_zdm migration gf: one keyset batch of the backfill of public.gf"),
            "{batch}"
        );
        assert!(!batch.contains(" SET search_path"), "no SET clause: {batch}");
        let sync = one::<String>("SELECT pg_get_functiondef('zdm.sync_gf'::regproc)").unwrap();
        assert!(
            sync.contains("-- pg_zdm migration gf: keeps public.gf.name (old application)"),
            "{sync}"
        );
        Spi::run("SELECT zdm.rollback('gf')").unwrap();
        assert_eq!(
            one::<i64>("SELECT count(*) FROM pg_proc WHERE proname IN ('backfill_gf', 'sync_gf')"),
            Some(0)
        );
    }

    pub(crate) fn orders_table(name: &str) {
        Spi::run(&format!(
            "CREATE TABLE {name} (id bigint PRIMARY KEY, amount integer NOT NULL DEFAULT 0, note text);
             INSERT INTO {name} SELECT g, g * 10, 'n' FROM generate_series(1, 500) g;"
        ))
        .unwrap();
    }

    #[pg_test]
    fn alter_column_type_int_to_numeric_whole_lifecycle() {
        orders_table("public.orders");
        let m = one::<String>("SELECT zdm.alter_column_type('public.orders', 'amount', 'numeric(10,2)')").unwrap();
        assert_eq!(m, "orders_amount_to_numeric_10_2");
        // Old app writes amount, new app writes amount_new; both stay consistent.
        Spi::run("INSERT INTO orders (id, amount) VALUES (1001, 7)").unwrap();
        Spi::run("INSERT INTO orders (id, amount_new) VALUES (1002, 8.5)").unwrap();
        Spi::run("UPDATE orders SET amount = 99 WHERE id = 1").unwrap();
        Spi::run("UPDATE orders SET amount_new = 12.75 WHERE id = 2").unwrap();
        Spi::run("UPDATE orders SET note = 'x' WHERE id = 3").unwrap();
        assert_eq!(
            one::<String>("SELECT amount_new::text FROM orders WHERE id = 1001").unwrap(),
            "7.00"
        );
        assert_eq!(one::<i32>("SELECT amount FROM orders WHERE id = 1002"), Some(9)); // 8.5 rounds to 9
        assert_eq!(
            one::<String>("SELECT amount_new::text FROM orders WHERE id = 1").unwrap(),
            "99.00"
        );
        assert_eq!(one::<i32>("SELECT amount FROM orders WHERE id = 2"), Some(13));
        assert_eq!(
            one::<String>("SELECT amount_new::text FROM orders WHERE id = 3").unwrap(),
            "30.00"
        );
        // A value the new type cannot hold fails the writer's statement: never a silent NULL.
        assert_eq!(
            sqlstate("INSERT INTO orders (id, amount) VALUES (1003, 2000000000)").as_deref(),
            Some("22003")
        );
        while one::<i64>(&format!("SELECT zdm.backfill_batch('{m}', 200)")).unwrap() > 0 {}
        assert_eq!(one::<i64>("SELECT count(*) FROM orders WHERE amount_new IS DISTINCT FROM amount::numeric(10,2) AND id NOT IN (2, 1002)"), Some(0));
        // The new application's value survived the backfill (the old column holds it rounded).
        assert_eq!(
            one::<String>("SELECT amount_new::text FROM orders WHERE id = 2").unwrap(),
            "12.75"
        );
        Spi::run(&format!("SELECT zdm.complete('{m}')")).unwrap();
        assert_eq!(one::<String>("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'orders'::regclass AND attname = 'amount'").unwrap(), "numeric(10,2)");
        assert_eq!(
            one::<bool>(
                "SELECT attnotnull FROM pg_attribute WHERE attrelid = 'orders'::regclass AND attname = 'amount'"
            ),
            Some(true)
        );
        assert_eq!(
            one::<String>("SELECT pg_get_expr(adbin, adrelid) FROM pg_attrdef WHERE adrelid = 'orders'::regclass")
                .unwrap(),
            "(0)::numeric(10,2)"
        );
        assert_eq!(
            one::<String>("SELECT amount::text FROM orders WHERE id = 2").unwrap(),
            "12.75"
        );
        Spi::run("INSERT INTO orders (id) VALUES (5000)").unwrap();
        assert_eq!(
            one::<String>("SELECT amount::text FROM orders WHERE id = 5000").unwrap(),
            "0.00"
        );
        assert_eq!(one::<i64>("SELECT count(*) FROM pg_attribute WHERE attrelid = 'orders'::regclass AND attname LIKE 'amount%' AND NOT attisdropped"), Some(1));
    }

    #[pg_test]
    fn alter_column_type_with_expressions_both_ways() {
        orders_table("public.cents");
        let m = one::<String>("SELECT zdm.alter_column_type('public.cents', 'amount', 'numeric(12,2)', 'amount / 100.0', 'round(amount * 100)', 'to_euros')").unwrap();
        assert_eq!(m, "to_euros");
        Spi::run("INSERT INTO cents (id, amount) VALUES (9001, 1234)").unwrap();
        Spi::run("INSERT INTO cents (id, amount_new) VALUES (9002, 5.67)").unwrap();
        assert_eq!(
            one::<String>("SELECT amount_new::text FROM cents WHERE id = 9001").unwrap(),
            "12.34"
        );
        assert_eq!(one::<i32>("SELECT amount FROM cents WHERE id = 9002"), Some(567));
        let f = one::<String>("SELECT pg_get_functiondef('zdm.sync_to_euros'::regproc)").unwrap();
        assert!(
            f.contains("NEW.amount_new := (NEW.amount / 100.0)::numeric(12,2);"),
            "{f}"
        );
        assert!(
            f.contains("NEW.amount := (round(NEW.amount_new * 100))::integer;"),
            "{f}"
        );
        while one::<i64>("SELECT zdm.backfill_batch('to_euros')").unwrap() > 0 {}
        assert_eq!(
            one::<String>("SELECT amount_new::text FROM cents WHERE id = 7").unwrap(),
            "0.70"
        );
        Spi::run("SELECT zdm.rollback('to_euros')").unwrap();
        assert_eq!(one::<String>("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'cents'::regclass AND attname = 'amount'").unwrap(), "integer");
        assert_eq!(one::<i32>("SELECT amount FROM cents WHERE id = 9002"), Some(567));
    }

    /// As in pgroll and Reshape: in down_expr the column's own name is the new
    /// value, so `rating::text` converts the new integer back (it used to read
    /// the old column: the identity, and the old column stayed stale).
    #[pg_test]
    fn down_expr_reads_the_new_value_under_the_column_name() {
        Spi::run(
            "CREATE TABLE public.reviews (id int PRIMARY KEY, rating text);
             INSERT INTO public.reviews SELECT g, (g % 5)::text FROM generate_series(1, 20) g;",
        )
        .unwrap();
        let m = one::<String>(
            "SELECT zdm.alter_column_type('public.reviews', 'rating', 'integer', 'rating::integer', 'rating::text')",
        )
        .unwrap();
        Spi::run("INSERT INTO reviews (id, rating_new) VALUES (100, 4)").unwrap();
        Spi::run("UPDATE reviews SET rating_new = 5 WHERE id = 1").unwrap();
        Spi::run("INSERT INTO reviews (id, rating) VALUES (101, '3')").unwrap();
        assert_eq!(
            one::<String>("SELECT rating FROM reviews WHERE id = 100").as_deref(),
            Some("4")
        );
        assert_eq!(
            one::<String>("SELECT rating FROM reviews WHERE id = 1").as_deref(),
            Some("5")
        );
        assert_eq!(one::<i32>("SELECT rating_new FROM reviews WHERE id = 101"), Some(3));
        let f = one::<String>(&format!("SELECT pg_get_functiondef('zdm.sync_{m}'::regproc)")).unwrap();
        assert!(
            f.contains("NEW.rating := (NEW.rating_new::text)::pg_catalog.text;"),
            "{f}"
        );
        // The new column's own name still means the same.
        Spi::run(&format!("SELECT zdm.rollback('{m}')")).unwrap();
        let m = one::<String>(
            "SELECT zdm.alter_column_type('public.reviews', 'rating', 'integer', 'rating::integer', 'rating_new::text', 'again')",
        )
        .unwrap();
        Spi::run("INSERT INTO reviews (id, rating_new) VALUES (102, 2)").unwrap();
        assert_eq!(
            one::<String>("SELECT rating FROM reviews WHERE id = 102").as_deref(),
            Some("2")
        );
        Spi::run(&format!("SELECT zdm.rollback('{m}')")).unwrap();
        // A down_expr that does not read the new value is refused, saying how to write it.
        let err = error_text(
            "SELECT zdm.alter_column_type('public.reviews', 'rating', 'integer', 'rating::integer', $$'n/a'$$)",
        );
        assert!(
            err.starts_with("22023: down_expr '''n/a''' does not read the new value of column 'rating' / ")
                && err.contains("rating is the new value (integer), e.g. rating::pg_catalog.text"),
            "{err}"
        );
        assert_eq!(
            one::<i64>("SELECT count(*) FROM zdm.migrations WHERE phase NOT IN ('rolled_back')"),
            Some(0)
        );
    }

    /// A new-application INSERT that gives only the new column: the old
    /// column gets down(new), not its own DEFAULT (PostgreSQL fills the default
    /// before the trigger; the trigger overwrites it when the new column is set).
    /// It kept the default while `rating` in down_expr meant the old column.
    #[pg_test]
    fn new_app_insert_of_the_new_column_beats_the_old_default() {
        Spi::run("CREATE TABLE public.rd (id int PRIMARY KEY, rating text NOT NULL DEFAULT '0')").unwrap();
        let m = one::<String>(
            "SELECT zdm.alter_column_type('public.rd', 'rating', 'integer', 'rating::integer', 'rating::text')",
        )
        .unwrap();
        Spi::run("INSERT INTO rd (id, rating_new) VALUES (1, 4)").unwrap();
        Spi::run("INSERT INTO rd (id) VALUES (2)").unwrap();
        // The known limit: an explicit NULL reads as "not given" (README, Known limits).
        Spi::run("INSERT INTO rd (id, rating_new) VALUES (3, NULL)").unwrap();
        assert_eq!(
            one::<String>("SELECT string_agg(id || ':' || rating || '/' || rating_new, ' ' ORDER BY id) FROM rd")
                .as_deref(),
            Some("1:4/4 2:0/0 3:0/0")
        );
        while one::<i64>(&format!("SELECT zdm.backfill_batch('{m}')")).unwrap() > 0 {}
        Spi::run(&format!("SELECT zdm.complete('{m}')")).unwrap();
        Spi::run("INSERT INTO rd (id) VALUES (4)").unwrap();
        assert_eq!(one::<i32>("SELECT rating FROM rd WHERE id = 4"), Some(0));
    }

    #[pg_test]
    fn binary_compatible_type_change_is_one_short_alter() {
        Spi::run(
            "CREATE TABLE public.bc (id int PRIMARY KEY, email varchar(50), code varchar(10));
                  CREATE INDEX bc_email ON public.bc (email);
                  INSERT INTO public.bc SELECT g, 'e' || g, 'c' FROM generate_series(1, 100) g;",
        )
        .unwrap();
        let filenode = one::<i64>("SELECT pg_relation_filenode('public.bc')::int8").unwrap();
        let m = one::<String>("SELECT zdm.alter_column_type('public.bc', 'email', 'varchar(320)')").unwrap();
        assert_eq!(
            one::<String>(&format!("SELECT phase FROM zdm.migrations WHERE name = '{m}'")).unwrap(),
            "backfilled"
        );
        assert_eq!(one::<String>("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'bc'::regclass AND attname = 'email'").unwrap(), "character varying(320)");
        assert_eq!(
            one::<i64>("SELECT pg_relation_filenode('public.bc')::int8"),
            Some(filenode),
            "no rewrite"
        );
        Spi::run(&format!("SELECT zdm.complete('{m}')")).unwrap();
        let m2 = one::<String>("SELECT zdm.alter_column_type('public.bc', 'code', 'text')").unwrap();
        Spi::run(&format!("SELECT zdm.rollback('{m2}')")).unwrap();
        assert_eq!(one::<String>("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'bc'::regclass AND attname = 'code'").unwrap(), "character varying(10)");
    }

    #[pg_test]
    fn bad_expressions_and_types_are_refused() {
        orders_table("public.bad");
        let cases = [
            ("SELECT zdm.alter_column_type('public.bad', 'amount', 'no_such_type')", "42704"),
            ("SELECT zdm.alter_column_type('public.bad', 'amount', 'integer')", "22023"),
            ("SELECT zdm.alter_column_type('public.bad', 'amount', 'numeric(10,2)', 'amount +')", "42601"),
            ("SELECT zdm.alter_column_type('public.bad', 'amount', 'numeric(10,2)', 'nope * 2')", "42703"),
            ("SELECT zdm.alter_column_type('public.bad', 'amount', 'numeric(10,2)', 'amount) FROM pg_class; SELECT (1')", "42601"),
            ("SELECT zdm.alter_column_type('public.bad', 'amount', 'numeric(10,2)', '(SELECT count(*) FROM pg_class)')", "0A000"),
            ("SELECT zdm.alter_column_type('public.bad', 'amount', 'numeric(10,2)', 'amount + random()')", "0A000"),
            ("SELECT zdm.alter_column_type('public.bad', 'amount', 'numeric(10,2)', 'sum(amount)')", "0A000"),
            ("SELECT zdm.alter_column_type('public.bad', 'amount', 'date')", "42846"),
            ("SELECT zdm.alter_column_type('public.bad', 'amount', 'numeric(10,2)', NULL, 'amount_new + ')", "42601"),
            ("SELECT zdm.alter_column_type('public.bad', 'amount', 'int) ; DROP TABLE bad; SELECT (1')", "42601"),
            // up_expr must read the old value, down_expr the new one.
            ("SELECT zdm.alter_column_type('public.bad', 'amount', 'numeric(10,2)', '0')", "22023"),
            ("SELECT zdm.alter_column_type('public.bad', 'amount', 'numeric(10,2)', 'id * 1.0')", "22023"),
            ("SELECT zdm.alter_column_type('public.bad', 'amount', 'numeric(10,2)', NULL, 'id::integer')", "22023"),
        ];
        for (sql, want) in cases {
            assert_eq!(sqlstate(sql).as_deref(), Some(want), "{sql}");
        }
        assert_eq!(one::<i64>("SELECT count(*) FROM zdm.migrations"), Some(0));
        assert_eq!(one::<i64>("SELECT count(*) FROM pg_attribute WHERE attrelid = 'public.bad'::regclass AND attnum > 0 AND NOT attisdropped"), Some(3));
    }

    fn attr(table: &str, col: &str, what: &str) -> Option<String> {
        crate::session::get_optional::<String>(
            &format!("SELECT {what}::text FROM pg_attribute WHERE attrelid = '{table}'::regclass AND attname = '{col}' AND NOT attisdropped"),
            &[],
        )
        .unwrap()
    }

    #[pg_test]
    fn add_column_with_a_catalog_default_is_one_short_step() {
        users_table("public.ac");
        let filenode = one::<i64>("SELECT pg_relation_filenode('public.ac')::int8").unwrap();
        let m = one::<String>("SELECT zdm.add_column('public.ac', 'status', 'text', $$'active'$$, true)").unwrap();
        assert_eq!(m, "ac_add_status");
        assert_eq!(
            one::<String>("SELECT phase FROM zdm.migrations WHERE name = 'ac_add_status'").unwrap(),
            "backfilled"
        );
        Spi::run("INSERT INTO ac (id, name) VALUES (5000, 'old app')").unwrap();
        assert_eq!(
            one::<String>("SELECT status FROM ac WHERE id = 5000").unwrap(),
            "active"
        );
        assert_eq!(one::<String>("SELECT status FROM ac WHERE id = 1").unwrap(), "active");
        assert_eq!(
            sqlstate("INSERT INTO ac (id, name, status) VALUES (5001, 'new app', NULL)").as_deref(),
            Some("23514")
        );
        Spi::run("SELECT zdm.complete('ac_add_status')").unwrap();
        assert_eq!(attr("ac", "status", "attnotnull").as_deref(), Some("true"));
        assert_eq!(
            one::<i64>("SELECT pg_relation_filenode('public.ac')::int8"),
            Some(filenode),
            "no rewrite"
        );
        assert_eq!(
            one::<i64>("SELECT count(*) FROM pg_constraint WHERE conrelid = 'ac'::regclass AND contype = 'c'"),
            Some(0)
        );
    }

    #[pg_test]
    fn add_column_not_null_with_fill_expression() {
        users_table("public.af");
        let m =
            one::<String>("SELECT zdm.add_column('public.af', 'handle', 'text', NULL, true, $$'u' || id$$)").unwrap();
        // Old app inserts without the column, and updates a row not backfilled yet.
        Spi::run("INSERT INTO af (id, name) VALUES (7000, 'old app')").unwrap();
        Spi::run("UPDATE af SET email = 'x' WHERE id = 999").unwrap();
        Spi::run("INSERT INTO af (id, name, handle) VALUES (7001, 'new app', 'chosen')").unwrap();
        assert_eq!(one::<String>("SELECT handle FROM af WHERE id = 7000").unwrap(), "u7000");
        assert_eq!(one::<String>("SELECT handle FROM af WHERE id = 999").unwrap(), "u999");
        while one::<i64>(&format!("SELECT zdm.backfill_batch('{m}', 300)")).unwrap() > 0 {}
        assert_eq!(one::<i64>("SELECT count(*) FROM af WHERE handle IS NULL"), Some(0));
        assert_eq!(
            one::<String>("SELECT handle FROM af WHERE id = 7001").unwrap(),
            "chosen"
        );
        Spi::run(&format!("SELECT zdm.complete('{m}')")).unwrap();
        assert_eq!(attr("af", "handle", "attnotnull").as_deref(), Some("true"));
        assert_eq!(
            one::<i64>("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'af'::regclass"),
            Some(0)
        );
        // Refusals.
        assert_eq!(
            sqlstate("SELECT zdm.add_column('public.af', 'x', 'text', NULL, true)").as_deref(),
            Some("22023")
        );
        assert_eq!(
            sqlstate("SELECT zdm.add_column('public.af', 'handle', 'text')").as_deref(),
            Some("42701")
        );
        assert_eq!(
            sqlstate("SELECT zdm.add_column('public.af', 'y', 'text', 'name')").as_deref(),
            Some("42703")
        );
        assert_eq!(
            sqlstate("SELECT zdm.add_column('public.af', 'y', 'nosuchtype')").as_deref(),
            Some("42704")
        );
    }

    /// fill_expr on a nullable column: rows the old application inserts after
    /// the backfill get it too (they used to keep NULL, the only unfilled rows).
    #[pg_test]
    fn add_column_nullable_fill_expr_fills_rows_inserted_until_complete() {
        users_table("public.anf");
        let m =
            one::<String>("SELECT zdm.add_column('public.anf', 'shout', 'text', fill_expr => 'upper(name)')").unwrap();
        while one::<i64>(&format!("SELECT zdm.backfill_batch('{m}', 400)")).unwrap() > 0 {}
        Spi::run("INSERT INTO anf (id, name) VALUES (8000, 'late')").unwrap();
        Spi::run("INSERT INTO anf (id, name, shout) VALUES (8001, 'new app', 'mine')").unwrap();
        // An UPDATE's NULL is meant: the trigger fills inserts only.
        Spi::run("UPDATE anf SET shout = NULL WHERE id = 1").unwrap();
        Spi::run("UPDATE anf SET email = 'e' WHERE id = 8000").unwrap();
        assert_eq!(
            one::<String>("SELECT shout FROM anf WHERE id = 8000").as_deref(),
            Some("LATE")
        );
        assert_eq!(
            one::<String>("SELECT shout FROM anf WHERE id = 8001").as_deref(),
            Some("mine")
        );
        assert_eq!(
            one::<String>("SELECT shout FROM anf WHERE id = 2").as_deref(),
            Some("USER 2")
        );
        Spi::run(&format!("SELECT zdm.complete('{m}')")).unwrap();
        assert_eq!(one::<i64>("SELECT count(*) FROM anf WHERE shout IS NULL"), Some(1));
        assert_eq!(
            one::<i64>("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'anf'::regclass"),
            Some(0)
        );
        assert_eq!(attr("anf", "shout", "attnotnull").as_deref(), Some("false"));
    }

    #[pg_test]
    fn add_column_with_a_volatile_default_is_backfilled() {
        users_table("public.av");
        let m = one::<String>("SELECT zdm.add_column('public.av', 'token', 'uuid', 'gen_random_uuid()')").unwrap();
        assert_eq!(
            one::<String>(&format!("SELECT phase FROM zdm.migrations WHERE name = '{m}'")).unwrap(),
            "started"
        );
        Spi::run("INSERT INTO av (id, name) VALUES (8000, 'x')").unwrap();
        assert!(one::<String>("SELECT token::text FROM av WHERE id = 8000").is_some());
        while one::<i64>(&format!("SELECT zdm.backfill_batch('{m}')")).unwrap() > 0 {}
        assert_eq!(one::<i64>("SELECT count(DISTINCT token) FROM av"), Some(1001));
        Spi::run(&format!("SELECT zdm.complete('{m}')")).unwrap();
    }

    #[pg_test]
    fn set_not_null_with_and_without_fill() {
        users_table("public.sn");
        // email is NULL on every third row.
        let m = one::<String>("SELECT zdm.set_not_null('public.sn', 'email', $$'unknown-' || id || '@example.com'$$)")
            .unwrap();
        assert_eq!(
            sqlstate("INSERT INTO sn (id, name, email) VALUES (9000, 'n', NULL)"),
            None,
            "filled by the trigger"
        );
        assert_eq!(
            one::<String>("SELECT email FROM sn WHERE id = 9000").unwrap(),
            "unknown-9000@example.com"
        );
        while one::<i64>(&format!("SELECT zdm.backfill_batch('{m}')")).unwrap() > 0 {}
        Spi::run(&format!("SELECT zdm.complete('{m}')")).unwrap();
        assert_eq!(attr("sn", "email", "attnotnull").as_deref(), Some("true"));
        assert_eq!(
            one::<String>("SELECT email FROM sn WHERE id = 3").unwrap(),
            "unknown-3@example.com"
        );

        users_table("public.sn2");
        let m = one::<String>("SELECT zdm.set_not_null('public.sn2', 'email')").unwrap();
        // New NULLs are refused from start on.
        assert_eq!(
            sqlstate("INSERT INTO sn2 (id, name) VALUES (9000, 'n')").as_deref(),
            Some("23514")
        );
        // Old NULL rows remain: complete validates, fails, and changes nothing.
        assert_eq!(
            sqlstate(&format!("SELECT zdm.complete('{m}')")).as_deref(),
            Some("23514")
        );
        assert_eq!(
            one::<String>(&format!("SELECT phase FROM zdm.migrations WHERE name = '{m}'")).unwrap(),
            "backfilled"
        );
        Spi::run("UPDATE sn2 SET email = 'fixed' WHERE email IS NULL").unwrap();
        Spi::run(&format!("SELECT zdm.complete('{m}')")).unwrap();
        assert_eq!(attr("sn2", "email", "attnotnull").as_deref(), Some("true"));
        assert_eq!(
            sqlstate("SELECT zdm.set_not_null('public.sn2', 'email')").as_deref(),
            Some("22023")
        );
    }

    #[pg_test]
    fn drop_column_keeps_new_app_inserts_working() {
        Spi::run(
            "CREATE TABLE public.dc (id int PRIMARY KEY, legacy text NOT NULL, keep text, old2 int NOT NULL);
                  COMMENT ON COLUMN public.dc.old2 IS 'was here';
                  INSERT INTO public.dc SELECT g, 'l', 'k', g FROM generate_series(1, 10) g;",
        )
        .unwrap();
        let m = one::<String>("SELECT zdm.drop_column('public.dc', 'legacy', $$'none'$$)").unwrap();
        assert!(one::<String>("SELECT col_description('dc'::regclass, 2)")
            .unwrap()
            .starts_with("DEPRECATED"));
        Spi::run("INSERT INTO dc (id, keep, old2) VALUES (100, 'new app', 1)").unwrap();
        assert_eq!(one::<String>("SELECT legacy FROM dc WHERE id = 100").unwrap(), "none");
        Spi::run(&format!("SELECT zdm.complete('{m}')")).unwrap();
        assert_eq!(attr("dc", "legacy", "attnum"), None);

        let m2 = one::<String>("SELECT zdm.drop_column('public.dc', 'old2')").unwrap();
        assert_eq!(attr("dc", "old2", "attnotnull").as_deref(), Some("false"));
        Spi::run("INSERT INTO dc (id, keep) VALUES (101, 'new app')").unwrap();
        Spi::run("DELETE FROM dc WHERE id = 101").unwrap();
        Spi::run(&format!("SELECT zdm.rollback('{m2}')")).unwrap();
        assert_eq!(attr("dc", "old2", "attnotnull").as_deref(), Some("true"));
        assert_eq!(
            one::<String>("SELECT col_description('dc'::regclass, 4)").unwrap(),
            "was here"
        );
        assert_eq!(
            sqlstate("SELECT zdm.drop_column('public.dc', 'id')").as_deref(),
            Some("0A000")
        );
        Spi::run("CREATE VIEW dcv AS SELECT keep FROM dc").unwrap();
        assert_eq!(
            sqlstate("SELECT zdm.drop_column('public.dc', 'keep')").as_deref(),
            Some("2BP01")
        );
    }

    #[pg_test]
    fn add_check_and_foreign_key_are_validated_by_complete() {
        orders_table("public.ck");
        let m = one::<String>("SELECT zdm.add_check('public.ck', 'amount_positive', 'amount >= 0')").unwrap();
        assert_eq!(
            one::<bool>("SELECT convalidated FROM pg_constraint WHERE conname = 'amount_positive'"),
            Some(false)
        );
        assert_eq!(
            sqlstate("INSERT INTO ck (id, amount) VALUES (9999, -1)").as_deref(),
            Some("23514")
        );
        Spi::run(&format!("SELECT zdm.complete('{m}')")).unwrap();
        assert_eq!(
            one::<bool>("SELECT convalidated FROM pg_constraint WHERE conname = 'amount_positive'"),
            Some(true)
        );
        assert_eq!(
            sqlstate("SELECT zdm.add_check('public.ck', 'amount_positive', 'true')").as_deref(),
            Some("42710")
        );
        assert_eq!(
            sqlstate("SELECT zdm.add_check('public.ck', 'c2', 'note')").as_deref(),
            Some("42804")
        );
        assert_eq!(
            sqlstate("SELECT zdm.add_check('public.ck', 'c2', 'amount > random()')").as_deref(),
            Some("0A000")
        );
        // A check existing rows break: complete fails, nothing changes, rollback removes it.
        let m = one::<String>("SELECT zdm.add_check('public.ck', 'small', 'amount < 100')").unwrap();
        assert_eq!(
            sqlstate(&format!("SELECT zdm.complete('{m}')")).as_deref(),
            Some("23514")
        );
        Spi::run(&format!("SELECT zdm.rollback('{m}')")).unwrap();
        assert_eq!(
            one::<i64>("SELECT count(*) FROM pg_constraint WHERE conname = 'small'"),
            Some(0)
        );

        Spi::run("CREATE TABLE public.parent (id bigint PRIMARY KEY); INSERT INTO public.parent SELECT generate_series(1, 500);
                  ALTER TABLE public.ck ADD COLUMN parent_id bigint; UPDATE public.ck SET parent_id = id;").unwrap();
        let m = one::<String>("SELECT zdm.add_foreign_key('public.ck', 'ck_parent', ARRAY['parent_id'], 'public.parent', ARRAY['id'], 'cascade')").unwrap();
        assert_eq!(
            sqlstate("INSERT INTO ck (id, parent_id) VALUES (9998, 123456)").as_deref(),
            Some("23503")
        );
        Spi::run(&format!("SELECT zdm.complete('{m}')")).unwrap();
        assert_eq!(
            one::<String>("SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'ck_parent'").unwrap(),
            "FOREIGN KEY (parent_id) REFERENCES parent(id) ON DELETE CASCADE"
        );
        assert_eq!(sqlstate("SELECT zdm.add_foreign_key('public.ck', 'f2', ARRAY['parent_id'], 'public.parent', ARRAY['id'], 'explode')").as_deref(), Some("22023"));
        assert_eq!(
            sqlstate(
                "SELECT zdm.add_foreign_key('public.ck', 'f2', ARRAY['parent_id', 'id'], 'public.parent', ARRAY['id'])"
            )
            .as_deref(),
            Some("42830")
        );
        assert_eq!(
            sqlstate("SELECT zdm.add_foreign_key('public.ck', 'f2', ARRAY['nope'], 'public.parent', ARRAY['id'])")
                .as_deref(),
            Some("42703")
        );
    }

    #[pg_test]
    fn create_index_waits_for_its_top_level_build() {
        users_table("public.ix");
        let m = one::<String>(
            "SELECT zdm.create_index('public.ix', 'ix_email', 'USING btree (email) WHERE email IS NOT NULL')",
        )
        .unwrap();
        assert_eq!(
            one::<String>(&format!("SELECT statement FROM zdm.pending_statements('{m}')")).unwrap(),
            "CREATE INDEX CONCURRENTLY ix_email ON public.ix USING btree (email) WHERE email IS NOT NULL;"
        );
        assert_eq!(
            one::<pgrx::JsonB>(&format!("SELECT zdm.status('{m}')")).unwrap().0["next"],
            format!("SELECT statement FROM zdm.pending_statements('{m}') \\gexec")
        );
        assert_eq!(
            sqlstate(&format!("SELECT zdm.complete('{m}')")).as_deref(),
            Some("55000")
        );
        // What \gexec would do (here without CONCURRENTLY: pg_tests run in a transaction).
        Spi::run("CREATE INDEX ix_email ON public.ix USING btree (email) WHERE email IS NOT NULL").unwrap();
        assert_eq!(
            one::<i64>(&format!("SELECT count(*) FROM zdm.pending_statements('{m}')")),
            Some(0)
        );
        // An INVALID index (a failed build) is dropped and rebuilt, a bounded number of times.
        Spi::run("UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'public.ix_email'::regclass").unwrap();
        assert_eq!(
            sqlstate(&format!("SELECT zdm.complete('{m}')")).as_deref(),
            Some("55000")
        );
        for _ in 0..3 {
            let stmts = one::<String>(&format!(
                "SELECT string_agg(statement, ' ') FROM zdm.pending_statements('{m}')"
            ))
            .unwrap();
            assert!(
                stmts.starts_with("DROP INDEX CONCURRENTLY IF EXISTS public.ix_email; CREATE INDEX CONCURRENTLY"),
                "{stmts}"
            );
        }
        assert_eq!(
            sqlstate(&format!("SELECT * FROM zdm.pending_statements('{m}')")).as_deref(),
            Some("55000")
        );
        Spi::run(&format!("SELECT zdm.rollback('{m}')")).unwrap();
        assert_eq!(
            one::<i64>("SELECT count(*) FROM pg_class WHERE relname = 'ix_email'"),
            Some(0)
        );
        // Refusals.
        assert_eq!(
            sqlstate("SELECT zdm.create_index('public.ix', 'ix_pkey', '(email)')").as_deref(),
            Some("42P07")
        );
        assert_eq!(
            sqlstate("SELECT zdm.create_index('public.ix', 'i2', '(email); DROP TABLE ix')").as_deref(),
            Some("42601")
        );
    }

    #[pg_test]
    fn add_unique_attaches_its_index_on_complete() {
        users_table("public.uq");
        let m = one::<String>("SELECT zdm.add_unique('public.uq', 'uq_name', ARRAY['name'])").unwrap();
        let stmt = one::<String>(&format!("SELECT statement FROM zdm.pending_statements('{m}')")).unwrap();
        assert_eq!(stmt, "CREATE UNIQUE INDEX CONCURRENTLY uq_name ON public.uq (name);");
        Spi::run("CREATE UNIQUE INDEX uq_name ON public.uq (name)").unwrap();
        Spi::run(&format!("SELECT zdm.complete('{m}')")).unwrap();
        assert_eq!(
            one::<String>("SELECT contype::text FROM pg_constraint WHERE conname = 'uq_name'").unwrap(),
            "u"
        );
    }

    /// What `SELECT statement FROM zdm.pending_statements(m) \gexec` does, minus
    /// CONCURRENTLY (pg_tests run inside a transaction).
    fn build_pending(m: &str) {
        let stmts: Vec<String> = Spi::connect(|c| {
            c.select(
                &format!("SELECT statement FROM zdm.pending_statements('{m}')"),
                None,
                &[],
            )
            .unwrap()
            .map(|r| r.get::<String>(1).unwrap().unwrap())
            .collect()
        });
        for s in stmts {
            Spi::run(&s.replace(" CONCURRENTLY", "")).unwrap();
        }
    }

    fn table_ddl(t: &str) -> String {
        one::<String>(&format!(
            "SELECT string_agg(d, E'\n' ORDER BY d) FROM (
               SELECT pg_get_indexdef(indexrelid) AS d FROM pg_index WHERE indrelid = '{t}'::regclass
               UNION ALL SELECT conname || ' ' || pg_get_constraintdef(oid) || ' valid=' || convalidated
                 FROM pg_constraint WHERE conrelid = '{t}'::regclass) s"
        ))
        .unwrap()
    }

    #[pg_test]
    fn rename_carries_indexes_and_constraints_over() {
        Spi::run("CREATE TABLE public.ref (code text PRIMARY KEY); INSERT INTO public.ref VALUES ('a'), ('b');
                  CREATE TABLE public.cv (id int PRIMARY KEY, code text NOT NULL, other int);
                  INSERT INTO public.cv SELECT g, CASE WHEN g % 2 = 0 THEN 'a' ELSE 'b' END, g FROM generate_series(1, 200) g;
                  CREATE INDEX cv_code ON public.cv (code DESC NULLS LAST, other) INCLUDE (id);
                  CREATE INDEX cv_lower ON public.cv (lower(code)) WHERE code <> 'z';
                  CREATE UNIQUE INDEX cv_code_other ON public.cv (code, other);
                  ALTER TABLE public.cv ADD CONSTRAINT cv_code_len CHECK (length(code) < 5);
                  ALTER TABLE public.cv ADD CONSTRAINT cv_code_other_u UNIQUE (other, code);
                  ALTER TABLE public.cv ADD CONSTRAINT cv_code_fk FOREIGN KEY (code) REFERENCES public.ref (code) ON DELETE CASCADE;").unwrap();
        let before = table_ddl("public.cv");
        let m = one::<String>("SELECT zdm.rename_column('public.cv', 'code', 'kind')").unwrap();
        assert_eq!(
            one::<i64>(&format!("SELECT count(*) FROM zdm.pending_statements('{m}')")),
            Some(4)
        );
        assert_eq!(
            sqlstate("INSERT INTO cv (id, code, other) VALUES (1000, 'zzzzzz', 1)").as_deref(),
            Some("23514")
        );
        assert_eq!(
            sqlstate("INSERT INTO cv (id, kind, other) VALUES (1000, 'c', 1)").as_deref(),
            Some("23503")
        );
        while one::<i64>(&format!("SELECT zdm.backfill_batch('{m}')")).unwrap() > 0 {}
        assert_eq!(
            sqlstate(&format!("SELECT zdm.complete('{m}')")).as_deref(),
            Some("55000")
        );
        build_pending(&m);
        Spi::run(&format!("SELECT zdm.complete('{m}')")).unwrap();
        let after = table_ddl("public.cv");
        // Everything as before (names, order, opclasses, predicates, validity), on the renamed column.
        assert_eq!(before.matches("code").count(), 15, "{before}");
        assert_eq!(
            after,
            "CREATE INDEX cv_code ON public.cv USING btree (kind DESC NULLS LAST, other) INCLUDE (id)
CREATE INDEX cv_lower ON public.cv USING btree (lower(kind)) WHERE (kind <> 'z'::text)
CREATE UNIQUE INDEX cv_code_other ON public.cv USING btree (kind, other)
CREATE UNIQUE INDEX cv_code_other_u ON public.cv USING btree (other, kind)
CREATE UNIQUE INDEX cv_pkey ON public.cv USING btree (id)
cv_code_fk FOREIGN KEY (kind) REFERENCES ref(code) ON DELETE CASCADE valid=true
cv_code_len CHECK ((length(kind) < 5)) valid=true
cv_code_other_u UNIQUE (other, kind) valid=true
cv_pkey PRIMARY KEY (id) valid=true",
            "\nbefore:\n{before}"
        );
        Spi::run("DELETE FROM public.ref WHERE code = 'a'").unwrap();
        assert_eq!(
            one::<i64>("SELECT count(*) FROM cv"),
            Some(100),
            "ON DELETE CASCADE carried over"
        );
    }

    #[pg_test]
    fn alter_type_carries_an_index_over() {
        Spi::run(
            "CREATE TABLE public.ti (id int PRIMARY KEY, amount int NOT NULL);
                  INSERT INTO public.ti SELECT g, g FROM generate_series(1, 100) g;
                  CREATE INDEX ti_amount ON public.ti (amount);
                  ALTER TABLE public.ti ADD CONSTRAINT ti_amount_pos CHECK (amount > 0);",
        )
        .unwrap();
        let m = one::<String>("SELECT zdm.alter_column_type('public.ti', 'amount', 'bigint')").unwrap();
        while one::<i64>(&format!("SELECT zdm.backfill_batch('{m}')")).unwrap() > 0 {}
        build_pending(&m);
        Spi::run(&format!("SELECT zdm.complete('{m}')")).unwrap();
        assert_eq!(table_ddl("public.ti"), "CREATE INDEX ti_amount ON public.ti USING btree (amount)\nCREATE UNIQUE INDEX ti_pkey ON public.ti USING btree (id)\nti_amount_pos CHECK ((amount > 0)) valid=true\nti_pkey PRIMARY KEY (id) valid=true");
        assert_eq!(
            attr("ti", "amount", "format_type(atttypid, atttypmod)").as_deref(),
            Some("bigint")
        );
    }

    #[pg_test]
    fn more_refusals_each_with_its_sqlstate() {
        Spi::run(
            "CREATE TABLE public.mr (id int PRIMARY KEY, tok int GENERATED ALWAYS AS IDENTITY, at timestamptz DEFAULT now(),
                                     code text, CONSTRAINT mr_code_check CHECK (code <> ''));
             INSERT INTO public.mr (id, code) SELECT g, 'c' || g FROM generate_series(1, 10) g;",
        )
        .unwrap();
        let long = "x".repeat(64);
        let cases = [
            // (The wrappers take `name` arguments, which PostgreSQL cuts to 63 bytes itself.)
            (format!(r#"SELECT zdm.start('{{"op": "rename_column", "table": "public.mr", "column": "code", "new_name": "{long}"}}')"#), "42602"),
            (format!(r#"SELECT zdm.start('{{"op": "create_index", "table": "public.mr", "index": "{long}", "definition": "(code)"}}')"#), "42602"),
            ("SELECT zdm.rename_column('public.mr', 'tok', 'token')".to_string(), "0A000"),
            // The default now() cannot become an integer: refused at start, not at complete.
            ("SELECT zdm.alter_column_type('public.mr', 'at', 'integer', 'extract(epoch from at)::integer', 'to_timestamp(at_new)')".to_string(), "42846"),
            (r#"SELECT zdm.start('{"op": "add_foreign_key", "table": "public.mr", "constraint": "f", "columns": ["id"], "references": "public.nope", "referenced_columns": ["id"]}')"#.to_string(), "42P01"),
            ("SELECT zdm.add_unique('public.mr', 'mr_code_check', ARRAY['code'])".to_string(), "42710"),
            ("SELECT zdm.add_unique('public.mr', 'u2', ARRAY[]::name[])".to_string(), "22023"),
            ("SELECT zdm.add_unique('public.mr', 'u2', ARRAY['nope'])".to_string(), "42703"),
        ];
        for (sql, want) in &cases {
            assert_eq!(sqlstate(sql).as_deref(), Some(*want), "{sql}");
        }
        assert_eq!(one::<i64>("SELECT count(*) FROM zdm.migrations"), Some(0));
        // Nothing is pending for a finished migration.
        let m = one::<String>("SELECT zdm.add_check('public.mr', 'id_pos', 'id > 0')").unwrap();
        Spi::run(&format!("SELECT zdm.complete('{m}')")).unwrap();
        assert_eq!(
            sqlstate(&format!("SELECT * FROM zdm.pending_statements('{m}')")).as_deref(),
            Some("55000")
        );
    }

    pub(crate) fn shadow_leftovers() -> i64 {
        one::<i64>(
            r"SELECT (SELECT count(*) FROM pg_class WHERE relname LIKE 'zdm\_%')
                  + (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                      WHERE n.nspname = 'zdm'
                        AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e'))
                  + (SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'zdm\_%')
                  + (SELECT count(*) FROM zdm.migrations WHERE phase NOT IN ('completed', 'rolled_back', 'abandoned'))",
        )
        .unwrap()
    }

    #[pg_test]
    fn shadow_refusals_carry_sqlstates_and_leave_nothing_behind() {
        orders_table("public.so");
        Spi::run(
            "ALTER TABLE public.so ADD COLUMN legacy text NOT NULL DEFAULT 'x';
             ALTER TABLE public.so ALTER COLUMN legacy DROP DEFAULT;
             CREATE TABLE public.nokey (a int, b int);
             CREATE TABLE public.k2 (id int PRIMARY KEY, v int);
             CREATE TABLE public.parted (id int PRIMARY KEY) PARTITION BY RANGE (id);
             CREATE VIEW public.so_view AS SELECT id, note FROM public.so;
             CREATE TABLE public.mv_base (id int PRIMARY KEY, v int);
             CREATE VIEW public.mv_view AS SELECT id, v FROM public.mv_base;
             CREATE MATERIALIZED VIEW public.mv AS SELECT id FROM public.mv_view;",
        )
        .unwrap();
        let shadow =
            |alterations: &str, map: &str| format!("SELECT zdm.create_shadow_table('public.so', {alterations}, {map})");
        let cases: Vec<(String, &str)> = vec![
            ("SELECT zdm.create_shadow_table('public.nokey')".into(), "55000"),
            ("SELECT zdm.create_shadow_table('public.parted')".into(), "0A000"),
            ("SELECT zdm.create_shadow_table('public.so_view')".into(), "42809"),
            ("SELECT zdm.create_shadow_table('public.mv_base')".into(), "0A000"),
            (shadow("ARRAY['ALTER COLUMN']", "NULL"), "42601"),
            (
                shadow("ARRAY['ADD COLUMN a int; DROP TABLE public.so']", "NULL"),
                "42601",
            ),
            (shadow("ARRAY['OWNER TO postgres']", "NULL"), "0A000"),
            (shadow("ARRAY['ADD CONSTRAINT c CHECK (amount > 0)']", "NULL"), "0A000"),
            (shadow("ARRAY['ADD COLUMN c int UNIQUE']", "NULL"), "0A000"),
            (shadow("ARRAY['ALTER COLUMN note SET NOT NULL']", "NULL"), "0A000"),
            (
                shadow("ARRAY['ALTER COLUMN amount TYPE text USING amount::text']", "NULL"),
                "0A000",
            ),
            (shadow("ARRAY['DROP COLUMN nope']", "NULL"), "42703"),
            (shadow("ARRAY['ALTER COLUMN amount TYPE int4range']", "NULL"), "42804"),
            (shadow("ARRAY['ADD COLUMN c int NOT NULL']", "NULL"), "23502"),
            (shadow("'{}'", r#"'{"nope": "amount"}'"#), "42703"),
            (shadow("'{}'", r#"'{"amount": "random()::int"}'"#), "0A000"),
            (shadow("'{}'", r#"'{"amount": "note"}'"#), "42804"),
            (shadow("'{}'", r#"'{"amount": "(SELECT 1)"}'"#), "0A000"),
            // the key is what rows are matched by: it must be copied as is
            (
                r#"SELECT zdm.create_shadow_table('public.k2', '{}', '{"id": "id + 0"}')"#.into(),
                "55000",
            ),
            (shadow("ARRAY['DROP COLUMN id']", "NULL"), "2BP01"),
            // the view uses note: renaming it would break the view at the swap
            (shadow("ARRAY['RENAME COLUMN note TO remark']", "NULL"), "2BP01"),
            // legacy is NOT NULL without default: the old table could not be filled back
            (shadow("ARRAY['DROP COLUMN legacy']", "NULL"), "0A000"),
        ];
        for (sql, want) in &cases {
            assert_eq!(sqlstate(sql).as_deref(), Some(*want), "{sql}");
            assert_eq!(shadow_leftovers(), 0, "left something behind: {sql}");
        }
        assert_eq!(one::<i64>("SELECT count(*) FROM zdm.migrations"), Some(0));

        // The lifecycle's own refusals.
        Spi::run("SELECT zdm.create_shadow_table('public.so', ARRAY['ALTER COLUMN amount TYPE bigint'], NULL, 'so1')")
            .unwrap();
        let lifecycle: Vec<(&str, &str)> = vec![
            ("SELECT zdm.swap_tables('so1')", "55000"),
            ("SELECT zdm.complete('so1')", "55000"),
            ("SELECT zdm.swap_tables('so1', 'soon')", "22023"),
            ("SELECT zdm.swap_tables('so1', NULL, 0)", "22023"),
            ("SELECT zdm.swap_tables('nope')", "42704"),
            ("SELECT zdm.add_column('public.so', 'extra', 'int')", "55006"),
            (
                "SELECT zdm.create_shadow_table('public.so', '{}', NULL, 'so2')",
                "55006",
            ),
        ];
        for (sql, want) in &lifecycle {
            assert_eq!(sqlstate(sql).as_deref(), Some(*want), "{sql}");
        }
        while one::<i64>("SELECT zdm.backfill_batch('so1', 400)").unwrap() > 0 {}
        // A row missing from the shadow: verify says so, and the swap refuses.
        Spi::run("DELETE FROM public.zdm_shadow_so1 WHERE id = 7").unwrap();
        let v = one::<pgrx::JsonB>("SELECT zdm.verify('so1')").unwrap().0;
        assert_eq!(v["matched"], false, "{v}");
        assert_eq!(v["differing_rows"], 1, "{v}");
        assert_eq!(v["sample_keys"], serde_json::json!(["(7)"]), "{v}");
        assert_eq!(sqlstate("SELECT zdm.swap_tables('so1')").as_deref(), Some("55000"));
        assert_eq!(
            one::<String>("SELECT phase FROM zdm.migrations WHERE name = 'so1'").unwrap(),
            "backfilled"
        );
        // Put right, verified again: the swap goes through.
        Spi::run("INSERT INTO public.zdm_shadow_so1 SELECT id, amount, note, legacy FROM public.so WHERE id = 7")
            .unwrap();
        // Two rows' values exchanged: every column holds the same values as
        // the original, on other rows. The checksums pair values with keys.
        let swap_amounts = "UPDATE public.zdm_shadow_so1 d SET amount = o.amount FROM public.zdm_shadow_so1 o WHERE (d.id, o.id) IN ((3, 4), (4, 3))";
        Spi::run(swap_amounts).unwrap();
        let v = one::<pgrx::JsonB>("SELECT zdm.verify('so1')").unwrap().0;
        assert_eq!(v["matched"], false, "{v}");
        assert_eq!(v["sample_keys"], serde_json::json!(["(3)", "(4)"]), "{v}");
        Spi::run(swap_amounts).unwrap();
        assert_eq!(
            one::<pgrx::JsonB>("SELECT zdm.verify('so1')").unwrap().0["matched"],
            true
        );
        Spi::run("SELECT zdm.swap_tables('so1')").unwrap();
        assert_eq!(sqlstate("SELECT zdm.verify('so1')").as_deref(), Some("55000"));
        assert_eq!(sqlstate("SELECT zdm.swap_tables('so1')").as_deref(), Some("55000"));
        Spi::run("SELECT zdm.complete('so1')").unwrap();
        assert_eq!(
            one::<String>(
                "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'public.so'::regclass AND attname = 'amount'"
            )
            .unwrap(),
            "bigint"
        );
        // A plain migration is not a shadow.
        let m = one::<String>("SELECT zdm.add_check('public.so', 'amount_pos', 'amount >= 0')").unwrap();
        assert_eq!(sqlstate(&format!("SELECT zdm.verify('{m}')")).as_deref(), Some("55000"));
        Spi::run(&format!("SELECT zdm.complete('{m}')")).unwrap();
        assert_eq!(
            sqlstate(
                r#"SELECT zdm.start('{"operations": [{"op": "create_shadow_table", "table": "public.so"}, {"op": "add_check", "table": "public.so", "constraint": "c", "check": "id > 0"}]}')"#
            )
            .as_deref(),
            Some("0A000")
        );
    }

    #[pg_test]
    fn shadow_lifecycle_with_hostile_names() {
        Spi::run(
            r#"CREATE SCHEMA "My Schema";
               CREATE TABLE "My Schema"."Order; DROP TABLE x" ("Id" int PRIMARY KEY, "Amount" int NOT NULL, "note's" text);
               CREATE INDEX "Idx ""quoted""" ON "My Schema"."Order; DROP TABLE x" ("Amount");
               INSERT INTO "My Schema"."Order; DROP TABLE x" SELECT g, g * 2, 'n''' || g FROM generate_series(1, 500) g;"#,
        )
        .unwrap();
        let table = r#""My Schema"."Order; DROP TABLE x""#;
        let fingerprint = |t: &str| {
            one::<String>(&format!(
                r#"SELECT string_agg(concat_ws('|', "Id", "Amount", "note's"), ',' ORDER BY "Id") FROM {t}"#
            ))
            .unwrap()
        };
        let m = one::<String>(
            r#"SELECT zdm.create_shadow_table('"My Schema"."Order; DROP TABLE x"',
                   ARRAY['ALTER COLUMN "Amount" TYPE numeric(12,2)', 'ADD COLUMN "Tax $zdm$" numeric(12,2)'],
                   '{"Tax $zdm$": "round(\"Amount\" * 0.2, 2)"}')"#,
        )
        .unwrap();
        assert_eq!(m, "Order; DROP TABLE x_restructure");
        let lit = crate::ident::Literal::new(&m);
        Spi::run(&format!("UPDATE {table} SET \"note's\" = NULL WHERE \"Id\" = 3")).unwrap();
        let before = fingerprint(table);
        while one::<i64>(&format!("SELECT zdm.backfill_batch({lit})")).unwrap() > 0 {}
        assert_eq!(
            one::<pgrx::JsonB>(&format!("SELECT zdm.verify({lit})")).unwrap().0["matched"],
            true
        );
        Spi::run(&format!("SELECT zdm.swap_tables({lit})")).unwrap();
        Spi::run(&format!("INSERT INTO {table} (\"Id\", \"Amount\") VALUES (501, 1.5)")).unwrap();
        assert_eq!(
            one::<String>(&format!("SELECT \"Tax $zdm$\"::text FROM {table} WHERE \"Id\" = 10")).unwrap(),
            "4.00"
        );
        Spi::run(&format!("SELECT zdm.rollback({lit})")).unwrap();
        // Rolled back after the swap: the original, with the write made after the swap (rounded back to int).
        let after = fingerprint(table);
        assert_eq!(after, format!("{before},501|2"));
        assert_eq!(
            one::<String>(
                r#"SELECT string_agg(indexname, ',' ORDER BY indexname) FROM pg_indexes WHERE schemaname = 'My Schema'"#
            )
            .unwrap(),
            r#"Idx "quoted",Order; DROP TABLE x_pkey"#
        );
        assert_eq!(shadow_leftovers(), 0);
    }

    #[pg_test]
    fn shadow_keeps_a_self_referencing_foreign_key() {
        Spi::run(
            "CREATE TABLE public.tree (id int PRIMARY KEY, parent_id int REFERENCES public.tree (id), label text);
             INSERT INTO public.tree SELECT g, CASE WHEN g > 1 THEN g / 2 END, 'n' || g FROM generate_series(1, 300) g;",
        )
        .unwrap();
        Spi::run("SELECT zdm.create_shadow_table('public.tree', ARRAY['ALTER COLUMN label TYPE varchar(40)'], NULL, 'tree1')")
            .unwrap();
        while one::<i64>("SELECT zdm.backfill_batch('tree1', 100)").unwrap() > 0 {}
        Spi::run("SELECT zdm.swap_tables('tree1'); SELECT zdm.complete('tree1');").unwrap();
        assert_eq!(
            one::<String>(
                "SELECT conname || ' ' || confrelid::regclass::text || ' ' || convalidated FROM pg_constraint
                  WHERE conrelid = 'public.tree'::regclass AND contype = 'f'"
            )
            .unwrap(),
            "tree_parent_id_fkey tree true"
        );
        assert_eq!(
            sqlstate("INSERT INTO public.tree VALUES (1000, 999, 'orphan')").as_deref(),
            Some("23503")
        );
        assert_eq!(shadow_leftovers(), 0);
    }

    /// The copy phase: the shadow has no index while the batches copy the
    /// rows; writes made meanwhile are noted; the indexes (primary key,
    /// unique and exclusion constraints, plain indexes, with their names and
    /// comments) are built when the batches are done, then the noted keys
    /// are settled. A self-referencing foreign key keeps the indexes from the
    /// start; a unique index the new types break fails the build, and the
    /// migration rolls back cleanly.
    #[pg_test]
    fn shadow_indexes_are_built_after_the_copy() {
        Spi::run(
            "CREATE TABLE public.ix (id int PRIMARY KEY, code text CONSTRAINT ix_code_key UNIQUE,
                                     v numeric NOT NULL, r int4range,
                                     CONSTRAINT ix_r_excl EXCLUDE USING gist (r WITH &&));
             CREATE INDEX ix_v ON public.ix (v) WHERE v > 0;
             COMMENT ON INDEX public.ix_v IS 'positive v';
             INSERT INTO public.ix SELECT g, 'c' || g, g / 10.0, int4range(g * 10, g * 10 + 5) FROM generate_series(1, 300) g;
             SELECT zdm.create_shadow_table('public.ix', ARRAY['ALTER COLUMN code TYPE varchar(20)'], NULL, 'ix1');",
        )
        .unwrap();
        let shadow_indexes = || {
            one::<String>(
                "SELECT coalesce(string_agg(c.relname || coalesce(' ' || obj_description(i.indexrelid, 'pg_class'), ''), ',' ORDER BY c.relname), '')
                   FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                  WHERE i.indrelid = 'public.zdm_shadow_ix1'::regclass",
            )
            .unwrap()
        };
        assert_eq!(shadow_indexes(), "", "no index during the copy");
        Spi::run(
            "INSERT INTO public.ix VALUES (1000, 'new', 1, NULL);
             UPDATE public.ix SET v = -1 WHERE id = 5;
             DELETE FROM public.ix WHERE id = 6;
             UPDATE public.ix SET id = 2000 WHERE id = 7;
             DELETE FROM public.ix WHERE id = 8; INSERT INTO public.ix VALUES (8, 'again', 8, NULL);",
        )
        .unwrap();
        assert_eq!(
            one::<i64>("SELECT count(*) FROM public.zdm_stale_ix1"),
            Some(7),
            "every key written is noted"
        );
        assert_eq!(one::<i64>("SELECT zdm.backfill_batch('ix1', 120)"), Some(120));
        assert_eq!(shadow_indexes(), "", "still copying");
        while one::<i64>("SELECT zdm.backfill_batch('ix1', 120)").unwrap() > 0 {}
        assert_eq!(
            shadow_indexes(),
            "zdm_shadow_ix1_code_key,zdm_shadow_ix1_pkey,zdm_shadow_ix1_r_excl,zdm_shadow_ix1_v_idx positive v"
        );
        assert_eq!(
            one::<i64>("SELECT count(*) FROM public.zdm_stale_ix1"),
            Some(0),
            "all settled"
        );
        assert_eq!(
            one::<bool>("SELECT zdm.shadow_beyond_ix1(1000000)"),
            Some(false),
            "inserts probe the notes until verify"
        );
        assert_eq!(
            one::<pgrx::JsonB>("SELECT zdm.verify('ix1')").unwrap().0["matched"],
            true
        );
        // (When verify lets inserts skip the probe: pgrx-tests/tests/shadow_copy_phase.rs,
        // on a cluster where no other test's transactions run.)
        // The trigger now copies each write.
        Spi::run("UPDATE public.ix SET v = 42 WHERE id = 9").unwrap();
        assert_eq!(
            one::<String>("SELECT v::text FROM public.zdm_shadow_ix1 WHERE id = 9").unwrap(),
            "42"
        );
        Spi::run("SELECT zdm.swap_tables('ix1'); SELECT zdm.complete('ix1');").unwrap();
        assert_eq!(
            one::<String>(
                "SELECT string_agg(c.relname || coalesce(' ' || obj_description(i.indexrelid, 'pg_class'), ''), ',' ORDER BY c.relname)
                   FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = 'public.ix'::regclass"
            )
            .unwrap(),
            "ix_code_key,ix_pkey,ix_r_excl,ix_v positive v"
        );
        assert_eq!(
            one::<String>("SELECT string_agg(id || ':' || v, ',' ORDER BY id) FROM public.ix WHERE id IN (5, 6, 7, 8, 1000, 2000)").unwrap(),
            "5:-1,8:8,1000:1,2000:0.70000000000000000000"
        );
        assert_eq!(
            sqlstate("INSERT INTO public.ix VALUES (3000, 'c1', 1, NULL)").as_deref(),
            Some("23505")
        );
        assert_eq!(
            sqlstate("INSERT INTO public.ix VALUES (3000, 'z', 1, '[11,12)')").as_deref(),
            Some("23P01")
        );

        // A foreign key to itself needs the key's index from the start.
        Spi::run(
            "CREATE TABLE public.tr (id int PRIMARY KEY, up int REFERENCES public.tr (id));
             SELECT zdm.create_shadow_table('public.tr', '{}', NULL, 'tr1');",
        )
        .unwrap();
        assert_eq!(
            one::<i64>("SELECT count(*) FROM pg_index WHERE indrelid = 'public.zdm_shadow_tr1'::regclass"),
            Some(1)
        );
        Spi::run("SELECT zdm.rollback('tr1')").unwrap();

        // New types that make two keys of a unique index equal: the build
        // says so; the rows and the original are untouched; rollback is clean.
        Spi::run(
            "CREATE TABLE public.du (id int PRIMARY KEY, v numeric UNIQUE);
             INSERT INTO public.du VALUES (1, 1.1), (2, 1.2);
             SELECT zdm.create_shadow_table('public.du', ARRAY['ALTER COLUMN v TYPE integer'], NULL, 'du1');",
        )
        .unwrap();
        assert_eq!(
            one::<i64>("SELECT zdm.backfill_batch('du1')"),
            Some(2),
            "copied without the index"
        );
        let error = error_text("SELECT zdm.backfill_batch('du1')");
        assert!(
            error.starts_with("23505: pg_zdm du1: the end of the backfill failed: could not create unique index")
                && error.contains("SELECT zdm.rollback('du1')"),
            "{error}"
        );
        assert_eq!(
            one::<String>("SELECT phase FROM zdm.migrations WHERE name = 'du1'").unwrap(),
            "backfilling"
        );
        Spi::run("SELECT zdm.rollback('du1')").unwrap();
        assert_eq!(
            one::<String>("SELECT string_agg(id || ':' || v, ',' ORDER BY id) FROM public.du").unwrap(),
            "1:1.1,2:1.2"
        );
        assert_eq!(shadow_leftovers(), 0);
    }

    /// TRUNCATE fires no row trigger: the shadow (and the notes) follow it
    /// before the swap, the old table after it, so neither the swap nor a
    /// rollback brings truncated rows back. After the swap, an old table that
    /// other tables still reference cannot follow: the TRUNCATE fails and
    /// nothing changes.
    #[pg_test]
    fn shadow_follows_a_truncate() {
        let rows = |t: &str| {
            one::<String>(&format!(
                "SELECT coalesce(string_agg(id || ':' || v, ',' ORDER BY id), '') FROM {t}"
            ))
            .unwrap()
        };
        for (m, indexes_after_copy) in [("tt1", "on"), ("tt2", "off")] {
            Spi::run(&format!(
                "SET LOCAL zdm.shadow_indexes_after_copy = {indexes_after_copy};
                 DROP TABLE IF EXISTS public.tt;
                 CREATE TABLE public.tt (id int PRIMARY KEY, v int);
                 INSERT INTO public.tt SELECT g, g FROM generate_series(1, 100) g;
                 SELECT zdm.create_shadow_table('public.tt', '{{}}', NULL, '{m}');
                 SELECT zdm.backfill_batch('{m}', 50);
                 DELETE FROM public.tt WHERE id = 3;
                 TRUNCATE public.tt;"
            ))
            .unwrap();
            assert_eq!(rows(&format!("public.zdm_shadow_{m}")), "", "{m}");
            assert_eq!(
                one::<i64>(&format!("SELECT count(*) FROM public.zdm_stale_{m}")),
                Some(0),
                "{m}"
            );
            Spi::run("INSERT INTO public.tt VALUES (5, 50), (80, 800), (1000, 1)").unwrap();
            while one::<i64>(&format!("SELECT zdm.backfill_batch('{m}', 50)")).unwrap() > 0 {}
            assert_eq!(
                one::<pgrx::JsonB>(&format!("SELECT zdm.verify('{m}')")).unwrap().0["matched"],
                true,
                "{m}"
            );
            Spi::run(&format!("SELECT zdm.swap_tables('{m}')")).unwrap();
            Spi::run("INSERT INTO public.tt VALUES (2000, 2); TRUNCATE public.tt;").unwrap();
            assert_eq!(rows(&format!("public.zdm_old_{m}")), "", "{m}: the old table follows");
            Spi::run("INSERT INTO public.tt VALUES (3000, 3)").unwrap();
            Spi::run(&format!("SELECT zdm.rollback('{m}')")).unwrap();
            assert_eq!(rows("public.tt"), "3000:3", "{m}: nothing truncated comes back");
        }

        Spi::run(
            "CREATE TABLE public.tp (id int PRIMARY KEY);
             CREATE TABLE public.tc (id int PRIMARY KEY, p int REFERENCES public.tp);
             INSERT INTO public.tp SELECT generate_series(1, 10);
             INSERT INTO public.tc VALUES (1, 1);
             SELECT zdm.create_shadow_table('public.tp', '{}', NULL, 'tp1');",
        )
        .unwrap();
        while one::<i64>("SELECT zdm.backfill_batch('tp1')").unwrap() > 0 {}
        Spi::run("SELECT zdm.swap_tables('tp1')").unwrap();
        let error = error_text("TRUNCATE public.tp, public.tc");
        assert!(
            error.starts_with("0A000: pg_zdm: cannot truncate a table referenced in a foreign key constraint")
                && error.contains("finish the migration first"),
            "{error}"
        );
        assert_eq!(one::<i64>("SELECT count(*) FROM public.tp"), Some(10));
        assert_eq!(one::<i64>("SELECT count(*) FROM public.tc"), Some(1));
        Spi::run("SELECT zdm.complete('tp1'); TRUNCATE public.tp, public.tc;").unwrap();
        assert_eq!(one::<i64>("SELECT count(*) FROM public.tp"), Some(0));
        assert_eq!(shadow_leftovers(), 0);
    }

    /// The "key after the backfill's bound" function: every key of a table
    /// empty when its backfill began; none before it begins; absent for keys
    /// whose order depends on a collation (their inserts always probe).
    #[pg_test]
    fn shadow_inserts_after_the_backfill_bound() {
        // The function serves shadows whose indexes exist during the copy.
        Spi::run("SET LOCAL zdm.shadow_indexes_after_copy = off").unwrap();
        Spi::run(
            "CREATE TABLE public.eb (id bigint PRIMARY KEY, v int);
             CREATE TABLE public.tk (code text PRIMARY KEY, v int);
             INSERT INTO public.tk VALUES ('a', 1), ('b', 2);
             SELECT zdm.create_shadow_table('public.eb', '{}', NULL, 'eb1');
             SELECT zdm.create_shadow_table('public.tk', '{}', NULL, 'tk1');",
        )
        .unwrap();
        assert_eq!(one::<bool>("SELECT zdm.shadow_beyond_eb1(1)"), Some(false), "not begun");
        assert_eq!(
            one::<bool>("SELECT to_regproc('zdm.shadow_beyond_tk1') IS NULL"),
            Some(true),
            "text keys: no such function"
        );
        assert_eq!(one::<i64>("SELECT zdm.backfill_batch('eb1', 100)"), Some(0));
        assert_eq!(
            one::<String>("SELECT phase FROM zdm.migrations WHERE name = 'eb1'").unwrap(),
            "backfilled"
        );
        assert_eq!(
            one::<bool>("SELECT zdm.shadow_beyond_eb1(1)"),
            Some(true),
            "empty at begin"
        );
        Spi::run(
            "INSERT INTO public.eb SELECT g, g FROM generate_series(1, 50) g;
             DELETE FROM public.eb WHERE id = 7;
             INSERT INTO public.eb VALUES (7, 70);
             INSERT INTO public.tk VALUES ('c', 3);
             UPDATE public.tk SET v = 20 WHERE code = 'b';",
        )
        .unwrap();
        while one::<i64>("SELECT zdm.backfill_batch('tk1', 100)").unwrap() > 0 {}
        for m in ["eb1", "tk1"] {
            assert_eq!(
                one::<pgrx::JsonB>(&format!("SELECT zdm.verify('{m}')")).unwrap().0["matched"],
                true,
                "{m}"
            );
        }
        Spi::run("SELECT zdm.rollback('eb1'); SELECT zdm.rollback('tk1');").unwrap();
        assert_eq!(
            one::<bool>("SELECT to_regproc('zdm.shadow_beyond_eb1') IS NULL"),
            Some(true),
            "rollback drops it"
        );
    }

    /// The shadow trigger is SECURITY DEFINER and, for plain copies, runs
    /// without a fixed search_path: a writer whose search_path puts its own
    /// `=`, `>` and text `=` operators first must not get them run by it.
    #[pg_test]
    fn shadow_trigger_ignores_the_callers_operators() {
        Spi::run(
            "CREATE TABLE public.hp (id bigint PRIMARY KEY, v int NOT NULL, note text);
             INSERT INTO public.hp SELECT g, g, 'n' FROM generate_series(1, 100) g;
             CREATE SCHEMA evil;
             CREATE FUNCTION evil.trap(bigint, bigint) RETURNS boolean LANGUAGE plpgsql
                 AS $$ BEGIN RAISE EXCEPTION 'evil operator called'; END $$;
             CREATE FUNCTION evil.trap(text, text) RETURNS boolean LANGUAGE plpgsql
                 AS $$ BEGIN RAISE EXCEPTION 'evil operator called'; END $$;
             CREATE OPERATOR evil.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = evil.trap);
             CREATE OPERATOR evil.> (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = evil.trap);
             CREATE OPERATOR evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.trap);",
        )
        .unwrap();
        Spi::run("SELECT zdm.create_shadow_table('public.hp', ARRAY['ALTER COLUMN v TYPE bigint'], NULL, 'hp1')")
            .unwrap();
        let def = one::<String>("SELECT pg_get_functiondef('zdm.shadow_sync_hp1'::regproc)").unwrap();
        assert!(
            def.contains("SECURITY DEFINER") && !def.contains("search_path"),
            "{def}"
        );
        // The backfill has begun: inserts after its bound take the unprobed path.
        assert_eq!(one::<i64>("SELECT zdm.backfill_batch('hp1', 50)"), Some(50));
        Spi::run(
            "SET LOCAL search_path = evil, pg_catalog, public;
             INSERT INTO public.hp VALUES (500, 5, 'new'), (60, 6, 'x')
                 ON CONFLICT DO NOTHING;
             UPDATE public.hp SET v = 7 WHERE id OPERATOR(pg_catalog.=) 10;
             UPDATE public.hp SET v = 8 WHERE id OPERATOR(pg_catalog.=) 90;
             UPDATE public.hp SET id = 700 WHERE id OPERATOR(pg_catalog.=) 20;
             DELETE FROM public.hp WHERE id OPERATOR(pg_catalog.=) 30;
             SET LOCAL search_path = pg_catalog, public;",
        )
        .expect("no operator of the caller's schema runs in the trigger");
        while one::<i64>("SELECT zdm.backfill_batch('hp1', 50)").unwrap() > 0 {}
        assert_eq!(
            one::<pgrx::JsonB>("SELECT zdm.verify('hp1')").unwrap().0["matched"],
            true
        );
        Spi::run("SELECT zdm.rollback('hp1'); DROP SCHEMA evil CASCADE;").unwrap();
    }

    /// The swap locks what sessions lock first before what they lock next:
    /// views (outermost first) before their table, then the shadow, then the
    /// tables whose foreign keys it re-points; zdm.plan() lists them.
    #[pg_test]
    fn swap_locks_views_before_their_table() {
        Spi::run(
            "CREATE TABLE public.lk (id bigint PRIMARY KEY, v int);
             CREATE VIEW public.lk_v1 AS SELECT id, v FROM public.lk;
             CREATE VIEW public.lk_v2 AS SELECT id FROM public.lk_v1 WHERE v > 1;
             CREATE TABLE public.lk_ref (id int PRIMARY KEY, lk_id bigint REFERENCES public.lk);",
        )
        .unwrap();
        let plan = one::<pgrx::JsonB>(
            "SELECT zdm.plan('{\"name\": \"lk1\", \"operations\": [{\"op\": \"create_shadow_table\", \"table\": \"public.lk\"}]}')",
        )
        .unwrap()
        .0;
        let locks: Vec<String> = plan["phases"]["swap"]["locks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| format!("{} {}", l["relation"].as_str().unwrap(), l["mode"].as_str().unwrap()))
            .collect();
        assert_eq!(
            locks,
            [
                "public.lk_v2 ACCESS EXCLUSIVE",
                "public.lk_v1 ACCESS EXCLUSIVE",
                "public.lk ACCESS EXCLUSIVE",
                "public.zdm_shadow_lk1 ACCESS EXCLUSIVE",
                "public.lk_ref SHARE ROW EXCLUSIVE"
            ]
        );
    }

    #[pg_test]
    fn shadow_keeps_a_not_valid_check_not_valid() {
        Spi::run(
            "CREATE TABLE public.nv (id int PRIMARY KEY, v int);
             INSERT INTO public.nv SELECT g, g - 5 FROM generate_series(1, 100) g;
             ALTER TABLE public.nv ADD CONSTRAINT v_not_negative CHECK (v >= 0) NOT VALID;",
        )
        .unwrap();
        Spi::run("SELECT zdm.create_shadow_table('public.nv', ARRAY['ALTER COLUMN v TYPE bigint'], NULL, 'nv1')")
            .unwrap();
        // Old rows that break the check are copied; new ones are still refused.
        while one::<i64>("SELECT zdm.backfill_batch('nv1')").unwrap() > 0 {}
        assert_eq!(
            sqlstate("INSERT INTO public.nv VALUES (1000, -1)").as_deref(),
            Some("23514")
        );
        Spi::run("SELECT zdm.swap_tables('nv1'); SELECT zdm.complete('nv1');").unwrap();
        assert_eq!(
            one::<String>(
                "SELECT conname || ' ' || convalidated FROM pg_constraint WHERE conrelid = 'public.nv'::regclass AND contype = 'c'"
            )
            .unwrap(),
            "v_not_negative false"
        );
        assert_eq!(one::<i64>("SELECT count(*) FROM public.nv WHERE v < 0"), Some(4));
    }

    #[pg_test]
    fn shadow_refuses_tables_whose_dependents_cannot_follow() {
        Spi::run(
            "CREATE TABLE public.parent (id int PRIMARY KEY);
             CREATE TABLE public.child (extra int, PRIMARY KEY (id)) INHERITS (public.parent);
             CREATE TYPE public.pair AS (a int, b int);
             CREATE TABLE public.typed OF public.pair (PRIMARY KEY (a));
             CREATE TABLE public.ruled (id int PRIMARY KEY, v int);
             CREATE RULE ruled_nothing AS ON DELETE TO public.ruled DO INSTEAD NOTHING;
             CREATE TABLE public.rowtyped (id int PRIMARY KEY, v int);
             CREATE FUNCTION public.rowtyped_v(r public.rowtyped) RETURNS int LANGUAGE sql AS 'SELECT r.v';
             CREATE TABLE public.gen (id int PRIMARY KEY, g int GENERATED ALWAYS AS (id * 2) STORED);
             CREATE TABLE public.plain (id int PRIMARY KEY, v int);
             CREATE TABLE public.coded (id int PRIMARY KEY, code int NOT NULL UNIQUE, v int);
             CREATE TABLE public.coded_refs (id int PRIMARY KEY, code int REFERENCES public.coded (code));
             CREATE TABLE public.replid (id int PRIMARY KEY, code int NOT NULL, v int);
             CREATE UNIQUE INDEX replid_code ON public.replid (code);
             ALTER TABLE public.replid REPLICA IDENTITY USING INDEX replid_code;",
        )
        .unwrap();
        let cases: Vec<(&str, &str)> = vec![
            ("SELECT zdm.create_shadow_table('public.parent')", "0A000"),
            ("SELECT zdm.create_shadow_table('public.child')", "0A000"),
            ("SELECT zdm.create_shadow_table('public.typed')", "0A000"),
            ("SELECT zdm.create_shadow_table('public.ruled')", "0A000"),
            ("SELECT zdm.create_shadow_table('public.rowtyped')", "0A000"),
            (
                r#"SELECT zdm.create_shadow_table('public.gen', '{}', '{"g": "1"}')"#,
                "428C9",
            ),
            ("SELECT zdm.create_shadow_table('public.plain', ARRAY[''])", "22023"),
            (
                "SELECT zdm.create_shadow_table('public.plain', ARRAY['RENAME TO other'])",
                "0A000",
            ),
            // another table's foreign key references the dropped column
            (
                "SELECT zdm.create_shadow_table('public.coded', ARRAY['DROP COLUMN code'])",
                "2BP01",
            ),
            // the replica identity index goes with the dropped column
            (
                "SELECT zdm.create_shadow_table('public.replid', ARRAY['DROP COLUMN code'])",
                "55000",
            ),
        ];
        for (sql, want) in &cases {
            assert_eq!(sqlstate(sql).as_deref(), Some(*want), "{sql}");
            assert_eq!(shadow_leftovers(), 0, "left something behind: {sql}");
        }
        // A publication of every table would send the shadow to subscribers.
        Spi::run("CREATE PUBLICATION everything FOR ALL TABLES").unwrap();
        assert_eq!(
            sqlstate("SELECT zdm.create_shadow_table('public.plain')").as_deref(),
            Some("0A000")
        );
        Spi::run("DROP PUBLICATION everything").unwrap();
        // Event triggers could refuse or act on the swap's DDL halfway.
        Spi::run(
            "CREATE FUNCTION public.noop_evt() RETURNS event_trigger LANGUAGE plpgsql AS 'BEGIN END';
             CREATE EVENT TRIGGER noop ON ddl_command_end EXECUTE FUNCTION public.noop_evt();",
        )
        .unwrap();
        assert_eq!(
            sqlstate("SELECT zdm.create_shadow_table('public.plain')").as_deref(),
            Some("0A000")
        );
        Spi::run("DROP EVENT TRIGGER noop").unwrap();
        assert_eq!(shadow_leftovers(), 0);
        // And the same table goes through once they are gone.
        Spi::run(
            "SELECT zdm.create_shadow_table('public.plain', '{}', NULL, 'plain1'); SELECT zdm.rollback('plain1');",
        )
        .unwrap();
        // A replica identity index created after the shadow has no copy there:
        // the swap refuses it and changes nothing.
        Spi::run(
            "SELECT zdm.create_shadow_table('public.plain', '{}', NULL, 'plain2');
             SELECT zdm.backfill_batch('plain2'); SELECT zdm.backfill_batch('plain2');
             ALTER TABLE public.plain ALTER COLUMN v SET NOT NULL;
             CREATE UNIQUE INDEX plain_v ON public.plain (id, v);
             ALTER TABLE public.plain REPLICA IDENTITY USING INDEX plain_v;",
        )
        .unwrap();
        assert_eq!(sqlstate("SELECT zdm.swap_tables('plain2')").as_deref(), Some("55000"));
        assert_eq!(
            one::<String>("SELECT phase FROM zdm.migrations WHERE name = 'plain2'").unwrap(),
            "backfilled"
        );
        assert_eq!(
            one::<String>("SELECT relname::text FROM pg_class WHERE oid = 'public.plain'::regclass").unwrap(),
            "plain"
        );
    }

    /// `sql` (a PL/pgSQL body) with its comments, quoted identifiers and
    /// string literals blanked out: what PostgreSQL reads as code.
    fn code_only(sql: &str) -> String {
        let mut out = String::new();
        let mut chars = sql.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '-' if chars.peek() == Some(&'-') => {
                    // A `--` comment ends at a line break, as in PostgreSQL's scanner.
                    while chars.next_if(|&n| n != '\n' && n != '\r').is_some() {}
                }
                '"' | '\'' => {
                    // To the closing quote; a doubled quote stays inside.
                    while let Some(q) = chars.next() {
                        if q == c && chars.next_if_eq(&c).is_none() {
                            break;
                        }
                    }
                    out.push(' ');
                }
                c => out.push(c),
            }
        }
        out
    }

    /// The bodies and the definitions of the functions pg_zdm generated.
    fn generated_functions() -> (String, String) {
        let all = |what: &str| {
            one::<String>(&format!(
                "SELECT string_agg({what}, E'\\n') FROM pg_proc
                  WHERE pronamespace = 'zdm'::regnamespace AND prosrc LIKE '%-- pg_zdm migration%'"
            ))
            .unwrap()
        };
        (all("prosrc"), all("pg_get_functiondef(oid)"))
    }

    #[pg_test]
    fn names_with_newlines_stay_names_in_generated_code() {
        use crate::ident::{Ident, Literal};
        let table = format!("public.{}", Ident::new("x\nDECLARE z int := 1; --"));
        let col = "c\nDECLARE y int := 2; --";
        Spi::run(&format!(
            "CREATE TABLE {table} (id int PRIMARY KEY, {} text, n int);
             INSERT INTO {table} SELECT g, 'v' || g, g FROM generate_series(1, 100) g;",
            Ident::new(col)
        ))
        .unwrap();
        let reg = format!("{}::regclass", Literal::new(&table));
        // The name's text reaches comments escaped, and never the code around them.
        let check_generated = |what: &str| {
            let (bodies, definitions) = generated_functions();
            let code = code_only(&bodies);
            assert!(
                !code.contains("int := 1") && !code.contains("int := 2"),
                "{what}: {code}"
            );
            assert!(
                definitions.contains(r#"public."x\nDECLARE z int := 1; --""#),
                "{what}: {definitions}"
            );
        };

        // The default name is made of the table's and the column's: no newline in it.
        let m = one::<String>(&format!(
            "SELECT zdm.rename_column({reg}, {}, 'renamed')",
            Literal::new(col)
        ))
        .unwrap();
        assert!(!m.chars().any(char::is_control), "{m:?}");
        let lit = Literal::new(&m);
        check_generated("rename_column");
        Spi::run(&format!(
            "INSERT INTO {table} (id, {}) VALUES (1001, 'old app')",
            Ident::new(col)
        ))
        .unwrap();
        Spi::run(&format!("INSERT INTO {table} (id, renamed) VALUES (1002, 'new app')")).unwrap();
        while one::<i64>(&format!("SELECT zdm.backfill_batch({lit})")).unwrap() > 0 {}
        Spi::run(&format!("SELECT zdm.complete({lit})")).unwrap();
        assert_eq!(
            one::<String>(&format!(
                "SELECT string_agg(renamed, ',' ORDER BY id) FROM {table} WHERE id IN (1, 1001, 1002)"
            )),
            Some("v1,old app,new app".into())
        );

        // A migration name of its own may not hold a control character.
        let refused = error_text(&format!(
            "SELECT zdm.create_shadow_table({reg}, ARRAY['ALTER COLUMN n TYPE bigint'], NULL, E'a\\nb')"
        ));
        assert!(
            refused.starts_with("42602: migration name \"a\\nb\" contains a control character"),
            "{refused}"
        );

        Spi::run(&format!(
            "SELECT zdm.create_shadow_table({reg}, ARRAY['ALTER COLUMN n TYPE bigint'], NULL, 'nl_shadow')"
        ))
        .unwrap();
        check_generated("create_shadow_table");
        while one::<i64>("SELECT zdm.backfill_batch('nl_shadow')").unwrap() > 0 {}
        assert_eq!(
            one::<pgrx::JsonB>("SELECT zdm.verify('nl_shadow')").unwrap().0["matched"],
            true
        );
        Spi::run("SELECT zdm.rollback('nl_shadow')").unwrap();
        assert_eq!(shadow_leftovers(), 0);
    }

    #[pg_test]
    fn literal_matches_the_server() {
        for v in ["", "plain", "it's", r"a\b", "x\ny", r"\'; --", "é ü", r"''\\"] {
            let server = Spi::get_one_with_args::<String>("SELECT pg_catalog.quote_literal($1)", &[v.into()]).unwrap();
            assert_eq!(
                server.as_deref(),
                Some(crate::ident::quote_literal(v).as_str()),
                "{v:?}"
            );
            assert_eq!(crate::ident::Literal::new(v), crate::ident::Literal::pure(v), "{v:?}");
        }
    }

    #[pg_test]
    fn hints_read_back_without_standard_conforming_strings() {
        use crate::ident::Literal;
        users_table("public.scs");
        let m = r"it's a \ name";
        Spi::run(&format!(
            "SELECT zdm.rename_column('public.scs', 'name', 'full_name', {})",
            Literal::new(m)
        ))
        .unwrap();
        Spi::run("SET LOCAL standard_conforming_strings = off").unwrap();
        let quoted = r"E'it''s a \\ name'";
        let next = one::<pgrx::JsonB>(&format!("SELECT zdm.status({quoted})")).unwrap().0["next"].clone();
        assert_eq!(
            next,
            format!("CALL zdm.backfill({quoted}); (top level) or SELECT zdm.schedule_backfill({quoted});").as_str()
        );
        let hint = error_text(&format!("SELECT zdm.complete({quoted})"));
        assert!(
            hint.ends_with(&format!(
                " / Its backfill is not finished. Run: CALL zdm.backfill({quoted}); then complete it."
            )),
            "{hint}"
        );
        // What the hints show reads back as the name, the setting on or off.
        for setting in ["off", "on"] {
            Spi::run(&format!("SET LOCAL standard_conforming_strings = {setting}")).unwrap();
            assert_eq!(one::<String>(&format!("SELECT {quoted}::text")).as_deref(), Some(m));
        }
    }

    #[pg_test]
    fn long_migration_names_do_not_collide() {
        let (a, b) = ("m".repeat(47) + "a", "m".repeat(47) + "b");
        for (t, m) in [("public.long_a", &a), ("public.long_b", &b)] {
            users_table(t);
            Spi::run(&format!(
                "SELECT zdm.create_shadow_table('{t}', ARRAY['ALTER COLUMN email TYPE varchar(200)'], NULL, '{m}')"
            ))
            .unwrap();
        }
        // Each migration has objects of its own, every name within 63 bytes.
        for prefix in ["shadow_truncate", "shadow_reverse_truncate"] {
            assert_eq!(
                one::<i64>(&format!(
                    "SELECT count(DISTINCT proname) FROM pg_proc WHERE pronamespace = 'zdm'::regnamespace AND proname LIKE '{prefix}\\_mmm%'"
                )),
                Some(2),
                "{prefix}"
            );
        }
        for m in [&a, &b] {
            while one::<i64>(&format!("SELECT zdm.backfill_batch('{m}')")).unwrap() > 0 {}
            Spi::run(&format!("SELECT zdm.rollback('{m}')")).unwrap();
        }
        assert_eq!(shadow_leftovers(), 0);
    }

    /// Run `sql`; its error as "SQLSTATE: message / detail", or "" when it succeeded.
    fn error_with_detail(sql: &str) -> String {
        Spi::run(
            "CREATE OR REPLACE FUNCTION pg_temp.zdm_error_detail(stmt text) RETURNS text LANGUAGE plpgsql AS $$
             DECLARE code text; msg text; detail text;
             BEGIN
                 EXECUTE stmt;
                 RETURN '';
             EXCEPTION WHEN others THEN
                 GET STACKED DIAGNOSTICS code = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, detail = PG_EXCEPTION_DETAIL;
                 RETURN code || ': ' || msg || ' / ' || detail;
             END $$",
        )
        .unwrap();
        let lit = crate::ident::Literal::new(sql);
        one::<String>(&format!("SELECT pg_temp.zdm_error_detail({lit})")).unwrap_or_default()
    }

    #[pg_test]
    fn start_again_with_the_same_spec_returns_the_migration() {
        users_table("public.ia");
        let start = "SELECT zdm.rename_column('public.ia', 'name', 'full_name', 'ia')";
        assert_eq!(one::<String>(start).unwrap(), "ia");
        // Run again (a migration file re-run): same name, nothing changes.
        assert_eq!(one::<String>(start).unwrap(), "ia");
        assert_eq!(one::<i64>("SELECT count(*) FROM zdm.migrations"), Some(1));
        assert_eq!(
            one::<i64>("SELECT count(*) FROM zdm.events WHERE event = 'start'"),
            Some(1)
        );
        // The same spec spelled as jsonb by hand, keys in another order.
        assert_eq!(
            one::<String>(
                r#"SELECT zdm.start('{"operations": [{"new_name": "full_name", "column": "name", "table": "public.ia", "op": "rename_column"}], "name": "ia"}')"#
            )
            .unwrap(),
            "ia"
        );
        // An unnamed spec run again finds its migration by its operations.
        users_table("public.ib");
        let unnamed = "SELECT zdm.rename_column('public.ib', 'name', 'full_name')";
        let m = one::<String>(unnamed).unwrap();
        assert_eq!(one::<String>(unnamed).unwrap(), m);
        assert_eq!(one::<i64>("SELECT count(*) FROM zdm.migrations"), Some(2));
        // Same name, another spec: refused, saying what differs.
        let e = error_with_detail("SELECT zdm.rename_column('public.ia', 'name', 'nom', 'ia')");
        assert!(e.starts_with("42710: migration 'ia' already exists / "), "{e}");
        assert!(e.contains(r#"operations[0].new_name: "full_name" → "nom""#), "{e}");
        assert_eq!(one::<i64>("SELECT count(*) FROM zdm.migrations"), Some(2));
    }

    #[pg_test]
    fn a_rolled_back_name_is_free_again_and_its_history_kept() {
        users_table("public.ra");
        let start = "SELECT zdm.rename_column('public.ra', 'name', 'full_name', 'ra')";
        Spi::run(start).unwrap();
        Spi::run("SELECT zdm.rollback('ra')").unwrap();
        // Rollback again (a multi-step downgrade): a no-op.
        Spi::run("SELECT zdm.rollback('ra')").unwrap();
        assert_eq!(
            one::<i64>("SELECT count(*) FROM zdm.events WHERE event = 'rollback'"),
            Some(1)
        );
        // Up again: a new migration; the old one archived with its events.
        assert_eq!(one::<String>(start).unwrap(), "ra");
        assert_eq!(
            one::<String>("SELECT phase FROM zdm.migrations WHERE name = 'ra'").unwrap(),
            "started"
        );
        assert_eq!(
            one::<String>("SELECT phase FROM zdm.migrations WHERE name = 'ra@1'").unwrap(),
            "rolled_back"
        );
        let old_events =
            one::<String>("SELECT string_agg(event, ',' ORDER BY id) FROM zdm.events WHERE migration = 'ra@1'")
                .unwrap();
        assert_eq!(old_events, "start,expand,rollback,archived");
        assert_eq!(
            one::<String>("SELECT string_agg(event, ',' ORDER BY id) FROM zdm.events WHERE migration = 'ra'").unwrap(),
            "start,expand"
        );
        assert_eq!(
            one::<pgrx::JsonB>("SELECT zdm.status('ra@1')").unwrap().0["phase"],
            "rolled_back"
        );
        // Down and up once more: a second archive.
        Spi::run("SELECT zdm.rollback('ra')").unwrap();
        Spi::run(start).unwrap();
        assert_eq!(
            one::<i64>("SELECT count(*) FROM zdm.migrations WHERE name LIKE 'ra@%'"),
            Some(2)
        );

        // Complete twice: a no-op; rollback of a completed one still refused.
        while one::<i64>("SELECT zdm.backfill_batch('ra')").unwrap() > 0 {}
        Spi::run("SELECT zdm.complete('ra')").unwrap();
        Spi::run("SELECT zdm.complete('ra')").unwrap();
        assert_eq!(
            one::<i64>("SELECT count(*) FROM zdm.events WHERE migration = 'ra' AND event = 'complete'"),
            Some(1)
        );
        assert_eq!(sqlstate("SELECT zdm.rollback('ra')").as_deref(), Some("55000"));
        // A completed name stays taken, even with the same spec.
        Spi::run("ALTER TABLE public.ra RENAME COLUMN full_name TO name").unwrap();
        let e = error_with_detail(start);
        assert!(
            e.starts_with("42710: migration 'ra' already exists / It is completed"),
            "{e}"
        );
        // Complete of a rolled-back one: still refused.
        assert_eq!(sqlstate("SELECT zdm.complete('ra@1')").as_deref(), Some("55000"));

        // forget: rolled-back ones only, their events with them.
        Spi::run("SELECT zdm.forget('ra@1')").unwrap();
        assert_eq!(
            one::<i64>("SELECT count(*) FROM zdm.migrations WHERE name = 'ra@1'"),
            Some(0)
        );
        assert_eq!(
            one::<i64>("SELECT count(*) FROM zdm.events WHERE migration = 'ra@1'"),
            Some(0)
        );
        assert_eq!(sqlstate("SELECT zdm.forget('ra')").as_deref(), Some("55000"));
        assert_eq!(sqlstate("SELECT zdm.forget('ra@1')").as_deref(), Some("42704"));
        Spi::run("SELECT zdm.rename_column('public.ra', 'email', 'mail', 'rb')").unwrap();
        assert_eq!(sqlstate("SELECT zdm.forget('rb')").as_deref(), Some("55000"));
        assert_eq!(
            one::<String>("SELECT phase FROM zdm.migrations WHERE name = 'rb'").unwrap(),
            "started"
        );
        // The catalog's events are still append-only: only a rename moves them.
        assert_eq!(sqlstate("UPDATE zdm.events SET event = 'x'").as_deref(), Some("42501"));
    }

    #[pg_test]
    fn backfill_with_nothing_to_do_is_a_no_op() {
        users_table("public.nb");
        // No backfill at all (a check): backfill_batch and schedule_backfill do nothing.
        let ck = one::<String>("SELECT zdm.add_check('public.nb', 'nb_id', 'id > 0')").unwrap();
        assert_eq!(one::<i64>(&format!("SELECT zdm.backfill_batch('{ck}')")), Some(0));
        // No job, and no pg_cron needed to say so.
        assert_eq!(one::<i64>(&format!("SELECT zdm.schedule_backfill('{ck}')")), None);
        assert_eq!(
            one::<String>(&format!("SELECT state FROM zdm._backfill_step('{ck}', NULL, 'CALL')")).unwrap(),
            "done"
        );
        Spi::run(&format!("SELECT zdm.complete('{ck}')")).unwrap();
        // Completed: still nothing to do, no error.
        assert_eq!(one::<i64>(&format!("SELECT zdm.backfill_batch('{ck}')")), Some(0));
        assert_eq!(one::<i64>(&format!("SELECT zdm.schedule_backfill('{ck}')")), None);
        // A finished backfill.
        let m = one::<String>("SELECT zdm.rename_column('public.nb', 'name', 'full_name')").unwrap();
        while one::<i64>(&format!("SELECT zdm.backfill_batch('{m}')")).unwrap() > 0 {}
        assert_eq!(one::<i64>(&format!("SELECT zdm.backfill_batch('{m}')")), Some(0));
        assert_eq!(one::<i64>(&format!("SELECT zdm.schedule_backfill('{m}')")), None);
        // Rolled back: refused, there is nothing to backfill any more.
        Spi::run(&format!("SELECT zdm.rollback('{m}')")).unwrap();
        assert_eq!(
            sqlstate(&format!("SELECT zdm.backfill_batch('{m}')")).as_deref(),
            Some("55000")
        );
        assert_eq!(
            sqlstate(&format!("SELECT zdm.schedule_backfill('{m}')")).as_deref(),
            Some("55000")
        );
    }

    #[pg_test]
    fn complete_refuses_an_index_built_otherwise_than_planned() {
        users_table("public.wi");
        let m = one::<String>("SELECT zdm.create_index('public.wi', 'wi_email', '(email) WHERE email IS NOT NULL')")
            .unwrap();
        // The pending statement pasted and edited: the planned name, another column.
        Spi::run("CREATE INDEX wi_email ON public.wi (name) WHERE email IS NOT NULL").unwrap();
        let e = error_with_detail(&format!("SELECT zdm.complete('{m}')"));
        assert!(
            e.starts_with(&format!(
                "55000: index public.wi_email of migration '{m}' is not the index it planned / "
            )),
            "{e}"
        );
        assert!(
            e.contains("Built: CREATE INDEX wi_email ON public.wi USING btree (name) WHERE (email IS NOT NULL)."),
            "{e}"
        );
        assert!(
            e.contains("Planned: CREATE INDEX CONCURRENTLY wi_email ON public.wi (email) WHERE email IS NOT NULL."),
            "{e}"
        );
        assert_eq!(
            one::<String>(&format!("SELECT phase FROM zdm.migrations WHERE name = '{m}'")).unwrap(),
            "backfilled"
        );
        // The predicate counts too.
        Spi::run("DROP INDEX public.wi_email; CREATE INDEX wi_email ON public.wi (email)").unwrap();
        assert_eq!(
            sqlstate(&format!("SELECT zdm.complete('{m}')")).as_deref(),
            Some("55000")
        );
        // Dropped and built as planned: complete goes through.
        Spi::run("DROP INDEX public.wi_email").unwrap();
        build_pending(&m);
        Spi::run(&format!("SELECT zdm.complete('{m}')")).unwrap();
        // A unique index built without UNIQUE is not the planned one either.
        let u = one::<String>("SELECT zdm.add_unique('public.wi', 'wi_id_u', ARRAY['id'])").unwrap();
        Spi::run("CREATE INDEX wi_id_u ON public.wi (id)").unwrap();
        assert_eq!(
            sqlstate(&format!("SELECT zdm.complete('{u}')")).as_deref(),
            Some("55000")
        );
        assert_eq!(
            one::<i64>("SELECT count(*) FROM pg_class WHERE relname LIKE '\\_zdm\\_index\\_probe%'"),
            Some(0)
        );
    }
}

/// Hooks for `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}
