//! In-server tests of refusals: every bad input gets its SQLSTATE and changes nothing.

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    #[allow(unused_imports)]
    use crate::error::sqlstate_of;
    #[allow(unused_imports)]
    use crate::tests::tests::*;
    use pgrx::prelude::*;

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
            (r#"SELECT zdm.start('{"op": "rename_column", "table": "public.parted", "column": "id", "new_name": "c"}')"#, "0A000"),
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

    /// A step that fails shows PostgreSQL's own error, with no Rust
    /// backtrace in its DETAIL, whatever RUST_BACKTRACE the server has.
    #[pg_test]
    fn a_failed_step_shows_no_backtrace() {
        users_table("public.bt1");
        Spi::run(
            "SELECT zdm.rename_column('public.bt1', 'name', 'full_name', 'bt1');
             CREATE VIEW public.bt1_view AS SELECT full_name FROM public.bt1;",
        )
        .unwrap();
        assert_eq!(
            error_with_detail("SELECT zdm.rollback('bt1')"),
            "2BP01: cannot drop column full_name of table public.bt1 because other objects depend on it / \
             view public.bt1_view depends on column full_name of table public.bt1"
        );
    }
}
