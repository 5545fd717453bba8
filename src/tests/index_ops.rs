//! In-server tests of drop_index: kept until complete, dropped by a top-level statement.

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    #[allow(unused_imports)]
    use crate::tests::tests::*;
    use pgrx::prelude::*;

    fn email_index(t: &str) {
        users_table(&format!("public.{t}"));
        Spi::run(&format!("CREATE INDEX {t}_email ON {t} (email)")).unwrap();
    }

    #[pg_test]
    fn drop_index_waits_for_its_top_level_drop() {
        email_index("di");
        let before = table_ddl("public.di");
        let m = one::<String>("SELECT zdm.drop_index('public.di', 'di_email')").unwrap();
        assert_eq!(m, "di_drop_di_email");
        assert_eq!(table_ddl("public.di"), before, "the old application keeps the index");
        assert_eq!(
            error_text("SELECT zdm.complete('di_drop_di_email')"),
            "55000: index public.di_email of migration 'di_drop_di_email' is not dropped yet / \
             Run its DROP INDEX CONCURRENTLY at top level, then complete: \
             SELECT statement FROM zdm.pending_statements('di_drop_di_email') \\gexec"
        );
        // Only asked for by name: a \gexec of every migration's builds keeps it.
        assert_eq!(one::<i64>("SELECT count(*) FROM zdm.pending_statements()"), Some(0));
        assert_eq!(
            one::<String>("SELECT statement FROM zdm.pending_statements('di_drop_di_email')").as_deref(),
            Some("DROP INDEX CONCURRENTLY IF EXISTS public.di_email;")
        );
        build_pending(&m);
        let refused = error_text("SELECT zdm.rollback('di_drop_di_email')");
        assert!(
            refused.starts_with("55000: index public.di_email was already dropped"),
            "{refused}"
        );
        assert!(
            refused.contains("CREATE INDEX CONCURRENTLY di_email ON public.di USING btree (email);"),
            "{refused}"
        );
        Spi::run("SELECT zdm.complete('di_drop_di_email')").unwrap();
        assert_eq!(one::<bool>("SELECT to_regclass('public.di_email') IS NULL"), Some(true));
        assert_eq!(shadow_leftovers(), 0);
    }

    #[pg_test]
    fn drop_index_rolled_back_before_its_drop_changes_nothing() {
        email_index("dr");
        let before = table_ddl("public.dr");
        let m = one::<String>("SELECT zdm.drop_index('public.dr', 'dr_email')").unwrap();
        Spi::run(&format!("SELECT zdm.rollback('{m}')")).unwrap();
        assert_eq!(table_ddl("public.dr"), before);
        assert_eq!(shadow_leftovers(), 0);
    }

    #[pg_test]
    fn drop_index_plan_shows_its_lock() {
        email_index("dp");
        let spec = r#"'{"op": "drop_index", "table": "public.dp", "index": "dp_email"}'"#;
        assert_eq!(
            one::<String>(&format!(
                "SELECT lock_mode || ' ' || locked_relation || ' ' || statement FROM zdm.plan_steps({spec})
                  WHERE phase = 'complete' AND top_level"
            ))
            .as_deref(),
            Some("SHARE UPDATE EXCLUSIVE public.dp DROP INDEX CONCURRENTLY IF EXISTS public.dp_email")
        );
        assert_eq!(
            one::<i64>(&format!(
                "SELECT count(*) FROM zdm.plan_steps({spec}) WHERE phase = 'start'"
            )),
            Some(0)
        );
    }

    #[pg_test]
    fn drop_index_refuses_an_index_something_relies_on() {
        email_index("dx");
        Spi::run(
            "ALTER TABLE dx ADD CONSTRAINT dx_name_key UNIQUE (name);
             CREATE UNIQUE INDEX dx_id_email ON dx (id, email);
             CREATE UNIQUE INDEX dx_id ON dx (id);
             ALTER TABLE dx REPLICA IDENTITY USING INDEX dx_id;",
        )
        .unwrap();
        let refused = error_text("SELECT zdm.drop_index('public.dx', 'nope')");
        assert!(
            refused.starts_with("42704: index \"nope\" of relation \"public.dx\" does not exist"),
            "{refused}"
        );
        assert!(error_text("SELECT zdm.drop_index('public.dx', 'dx_pkey')")
            .starts_with("2BP01: index public.dx_pkey backs constraint dx_pkey"));
        assert_eq!(
            error_text("SELECT zdm.drop_index('public.dx', 'dx_name_key')"),
            "2BP01: index public.dx_name_key backs constraint dx_name_key of relation public.dx / \
             Drop the constraint instead (operation drop_constraint): its index goes with it."
        );
        assert!(error_text("SELECT zdm.drop_index('public.dx', 'dx_id')")
            .starts_with("2BP01: index public.dx_id is the replica identity"));
        assert_eq!(one::<i64>("SELECT count(*) FROM zdm.migrations"), Some(0));
        assert_eq!(error_text("SELECT zdm.drop_index('public.dx', 'dx_id_email')"), "");
    }
}
