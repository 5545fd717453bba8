//! Pause and resume from another session while a `CALL zdm.backfill()` runs:
//! the loop notices within one batch, stops, and the next CALL goes on from
//! where it stopped. Also: a migration with nothing to backfill is a no-op.

mod common;

use std::time::{Duration, Instant};

#[test]
fn pause_stops_a_running_call_within_a_batch_and_resume_goes_on() {
    let cluster = common::cluster_with_zdm();
    let mut c = cluster.connect();
    common::users_with_oracle(&mut c, 100_000);
    c.execute(
        "SELECT zdm.rename_column('public.users', 'name', 'full_name', 'm')",
        &[],
    )
    .unwrap();
    // Small batches with a pause between them: the CALL runs for a while.
    c.execute(
        r#"SELECT zdm.set_backfill_settings('m', '{"batch_size": 500, "target_batch_ms": 0, "batch_delay_ms": 20}')"#,
        &[],
    )
    .unwrap();
    let url = cluster.url("postgres");
    let call = std::thread::spawn(move || {
        let mut b = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        let t = Instant::now();
        b.batch_execute("CALL zdm.backfill('m')").map(|_| t.elapsed())
    });
    while common::one::<i64>(&mut c, "SELECT rows_done FROM zdm.migrations WHERE name = 'm'") < 5_000 {
        std::thread::sleep(Duration::from_millis(20));
    }
    let paused_at = Instant::now();
    c.execute("SELECT zdm.pause('m')", &[]).unwrap();
    let took = call.join().unwrap().expect("the CALL ends normally when paused");
    let stopped_after = paused_at.elapsed();
    assert!(
        stopped_after < Duration::from_secs(2),
        "the loop took {stopped_after:?} to notice"
    );
    let done: i64 = common::one(&mut c, "SELECT rows_done FROM zdm.migrations WHERE name = 'm'");
    assert!(done < 100_000, "stopped early ({done} rows, CALL ran {took:?})");
    let state: String = common::one(&mut c, "SELECT state FROM zdm.progress WHERE migration = 'm'");
    assert_eq!(state, "paused");
    // A paused migration does not move, even when called again.
    c.batch_execute("CALL zdm.backfill('m')").unwrap();
    assert_eq!(
        common::one::<i64>(&mut c, "SELECT rows_done FROM zdm.migrations WHERE name = 'm'"),
        done
    );
    c.execute("SELECT zdm.resume('m')", &[]).unwrap();
    c.execute(r#"SELECT zdm.set_backfill_settings('m', '{"batch_size": null, "target_batch_ms": null, "batch_delay_ms": null}')"#, &[]).unwrap();
    c.batch_execute("CALL zdm.backfill('m')").unwrap();
    let phase: String = common::one(&mut c, "SELECT phase FROM zdm.migrations WHERE name = 'm'");
    assert_eq!(phase, "backfilled");
    assert_eq!(
        common::one::<i64>(
            &mut c,
            "SELECT count(*) FROM public.users WHERE full_name IS DISTINCT FROM name"
        ),
        0
    );

    // Rolled back from another session while a CALL runs: the loop stops by itself.
    c.execute("SELECT zdm.rename_column('public.users', 'email', 'mail', 'm2')", &[])
        .unwrap();
    c.execute(
        r#"SELECT zdm.set_backfill_settings('m2', '{"batch_size": 500, "target_batch_ms": 0, "batch_delay_ms": 20}')"#,
        &[],
    )
    .unwrap();
    let url = cluster.url("postgres");
    let call = std::thread::spawn(move || {
        let mut b = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        b.batch_execute("CALL zdm.backfill('m2')")
    });
    while common::one::<i64>(&mut c, "SELECT rows_done FROM zdm.migrations WHERE name = 'm2'") < 2_000 {
        std::thread::sleep(Duration::from_millis(20));
    }
    c.execute("SELECT zdm.rollback('m2')", &[]).unwrap();
    call.join()
        .unwrap()
        .expect("the CALL ends normally when its migration is rolled back");
    let phase: String = common::one(&mut c, "SELECT phase FROM zdm.migrations WHERE name = 'm2'");
    assert_eq!(phase, "rolled_back");

    // Nothing to backfill: a no-op (NOTICE), so a generic "start, backfill,
    // complete" file runs for every operation.
    c.execute(
        "SELECT zdm.add_check('public.users', 'id_positive', 'id > 0', 'ck')",
        &[],
    )
    .unwrap();
    c.batch_execute("CALL zdm.backfill('ck')")
        .expect("nothing to backfill: no error");
    let rows: i64 = common::one(&mut c, "SELECT zdm.backfill_batch('ck')");
    assert_eq!(rows, 0);
    // Rolled back: refused.
    c.execute("SELECT zdm.rollback('ck')", &[]).unwrap();
    let e = c.batch_execute("CALL zdm.backfill('ck')").expect_err("rolled back");
    assert_eq!(common::sqlstate(&e), "55000", "{e}");
}

#[test]
fn a_failing_batch_is_reported_and_changes_nothing() {
    let cluster = common::cluster_with_zdm();
    let mut c = cluster.connect();
    c.batch_execute(
        "CREATE TABLE public.orders (id bigint PRIMARY KEY, amount integer NOT NULL);
         INSERT INTO public.orders SELECT g, g FROM generate_series(1, 20000) g;",
    )
    .unwrap();
    // Row 5000 cannot be converted: 100 / (5000 - 5000).
    c.execute(
        "SELECT zdm.alter_column_type('public.orders', 'amount', 'numeric(12,4)', '100.0 / (amount - 5000)', 'amount_new::int', 'm')",
        &[],
    )
    .unwrap();
    let e = c
        .batch_execute("CALL zdm.backfill('m', 1000)")
        .expect_err("the batch with row 5000 fails");
    assert_eq!(common::sqlstate(&e), "22012", "{e}");
    // The error is kept (committed after the failed batch rolled back) and shown.
    let (last_error, done, phase): (Option<String>, i64, String) = {
        let r = c
            .query_one(
                "SELECT last_error, rows_done, phase FROM zdm.progress WHERE migration = 'm'",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1), r.get(2))
    };
    let last_error = last_error.expect("last_error is set");
    assert!(last_error.starts_with("22012: division by zero"), "{last_error}");
    assert_eq!(done, 4000, "the batches before the failing one are kept");
    assert_eq!(phase, "backfilling");
    // A writer meets the same conversion error on that row: never a silent NULL.
    let e = c
        .batch_execute("UPDATE public.orders SET amount = 5000 WHERE id = 1")
        .expect_err("no value for amount_new");
    assert_eq!(common::sqlstate(&e), "22012");
    // Rolled back: the table is as before.
    c.execute("SELECT zdm.rollback('m')", &[]).unwrap();
    let cols: i64 = common::one(&mut c, "SELECT count(*) FROM pg_attribute WHERE attrelid = 'public.orders'::regclass AND attnum > 0 AND NOT attisdropped");
    assert_eq!(cols, 2);
    assert_eq!(
        common::one::<i64>(&mut c, "SELECT sum(amount)::int8 FROM public.orders"),
        20000 * 20001 / 2
    );
}
