//! In-server tests of calls that are safe to repeat: start, rollback, backfill, complete.

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    #[allow(unused_imports)]
    use crate::error::sqlstate_of;
    #[allow(unused_imports)]
    use crate::tests::tests::*;
    use pgrx::prelude::*;

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
