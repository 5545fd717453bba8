//! In-server tests of the backfill: progress, batches, the committing procedure, pause and resume, monitoring.

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    #[allow(unused_imports)]
    use crate::error::sqlstate_of;
    #[allow(unused_imports)]
    use crate::tests::tests::*;
    use pgrx::prelude::*;

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
}
