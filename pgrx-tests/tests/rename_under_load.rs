//! rename_column end to end under a live writer load: old-app clients from
//! before start until just before complete, new-app clients from start on, a
//! backfill by `CALL zdm.backfill()`, a prober reading every 10 ms. No client
//! statement may fail, the table must equal the oracle, and no step may block
//! readers for much longer than zdm.lock_timeout.

mod common;

use std::time::{Duration, Instant};
use zdm_harness::load::{oracle_diff, report_errors, Client, Target};
use zdm_harness::prober::Prober;

const ROWS: i64 = 1_000_000;

fn target(value_col: &str) -> Target {
    Target {
        table: "public.users".into(),
        key: "id".into(),
        value_col: value_col.into(),
        other_col: "email".into(),
        oracle: "public.users_oracle".into(),
        oracle_value_col: "name".into(),
        oracle_other_col: "email".into(),
        initial_rows: ROWS,
        value_is_int: false,
        key_updates: false,
    }
}

#[test]
fn rename_with_old_and_new_apps_writing() {
    let cluster = common::cluster_with_zdm();
    let mut admin = cluster.connect();
    common::users_with_oracle(&mut admin, ROWS);
    let url = cluster.url("postgres");
    let epoch = Instant::now();

    let prober = Prober::spawn(&url, "public.users", epoch);
    let old_apps: Vec<Client> = (0..2)
        .map(|i| Client::spawn(&format!("old{i}"), &url, target("name"), i, epoch))
        .collect();
    std::thread::sleep(Duration::from_millis(500));

    let t_start = epoch.elapsed();
    let m: String = admin
        .query_one("SELECT zdm.rename_column('public.users', 'name', 'full_name')", &[])
        .unwrap()
        .get(0);
    let new_apps: Vec<Client> = (2..4)
        .map(|i| Client::spawn(&format!("new{i}"), &url, target("full_name"), i, epoch))
        .collect();

    // The committing loop, as a DBA would run it from psql: a lone CALL.
    admin.batch_execute("SET zdm.batch_size = 5000").unwrap();
    admin
        .batch_execute(&format!("CALL zdm.backfill('{m}')"))
        .expect("backfill");
    let phase: String = admin
        .query_one("SELECT phase FROM zdm.migrations WHERE name = $1", &[&m])
        .unwrap()
        .get(0);
    assert_eq!(phase, "backfilled");
    std::thread::sleep(Duration::from_millis(500));

    // Before complete, both columns agree on every row.
    let disagree: i64 = admin
        .query_one(
            "SELECT count(*) FROM public.users WHERE name IS DISTINCT FROM full_name",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(disagree, 0);

    // The old application is retired, then the contract phase.
    let mut reports: Vec<_> = old_apps.into_iter().map(Client::stop).collect();
    let t_complete = epoch.elapsed();
    admin.execute("SELECT zdm.complete($1)", &[&m]).expect("complete");
    std::thread::sleep(Duration::from_millis(500));
    reports.extend(new_apps.into_iter().map(Client::stop));
    let probe = prober.stop();

    let errors = report_errors(&reports);
    let statements: u64 = reports.iter().map(|r| r.statements).sum();
    let mut all = zdm_harness::stats::Latencies::default();
    for r in &reports {
        all.merge(&r.latencies);
    }
    eprintln!(
        "rename under load: {statements} client statements, {errors} errors; client p50 {:.2} ms p99 {:.2} ms max {:.1} ms; \
         prober longest wait {:.1} ms; start at {:?}, complete at {:?}",
        all.percentile_ms(50.0),
        all.percentile_ms(99.0),
        all.max_ms(),
        probe.longest_wait_ms(),
        t_start,
        t_complete
    );
    assert_eq!(errors, 0, "client statements failed");
    assert!(statements > 1000, "the load ran ({statements} statements)");
    assert!(probe.errors.is_empty(), "{:?}", probe.errors);
    assert!(
        probe.longest_wait_ms() < 300.0,
        "a reader waited {:.1} ms",
        probe.longest_wait_ms()
    );
    assert!(all.max_ms() < 1000.0, "a writer waited {:.1} ms", all.max_ms());

    let diff = oracle_diff(
        &mut admin,
        "SELECT id, full_name::text, email FROM public.users",
        "SELECT id, name::text, email FROM public.users_oracle",
        10,
    );
    assert!(diff.is_empty(), "table and oracle differ:\n{}", diff.join("\n"));
    let rows: i64 = admin
        .query_one("SELECT count(*) FROM public.users", &[])
        .unwrap()
        .get(0);
    assert!(rows >= ROWS / 2);
}
