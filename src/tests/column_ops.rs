//! In-server tests of add_column, set_not_null, drop_column, constraints and indexes.

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    #[allow(unused_imports)]
    use crate::error::sqlstate_of;
    #[allow(unused_imports)]
    use crate::tests::tests::*;
    use pgrx::prelude::*;

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
}
