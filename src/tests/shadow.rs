//! In-server tests of shadow tables: refusals, lifecycle, copy phase, truncate, the swap.

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    #[allow(unused_imports)]
    use crate::error::sqlstate_of;
    #[allow(unused_imports)]
    use crate::tests::tests::*;
    use pgrx::prelude::*;

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
}
