//! alter_column_type (integer → numeric(12,2)) on a 1,000,000-row table under a
//! live load: old-app clients write `amount` from before start until just
//! before complete, new-app clients write `amount_new` from start until just
//! before complete, final-version clients write `amount` (now numeric) after it. No
//! client statement may fail, the table must equal the oracle, and no step may
//! block readers for much longer than zdm.lock_timeout — side by side with the
//! naive `ALTER TABLE ... TYPE`, which blocks them for its whole rewrite.

mod common;

use std::time::{Duration, Instant};
use zdm_harness::fixtures::status_orders_with_oracle;
use zdm_harness::load::{oracle_diff, report_errors, Client, Target};
use zdm_harness::prober::Prober;
use zdm_harness::stats::Latencies;

const ROWS: i64 = 1_000_000;

fn target(value_col: &str) -> Target {
    Target {
        table: "public.orders".into(),
        key: "id".into(),
        value_col: value_col.into(),
        other_col: "status".into(),
        oracle: "public.orders_oracle".into(),
        oracle_value_col: "amount".into(),
        oracle_other_col: "status".into(),
        initial_rows: ROWS,
        value_is_int: true,
        key_updates: false,
    }
}

#[test]
fn alter_type_with_both_apps_writing_vs_the_naive_alter() {
    let cluster = common::cluster_with_zdm();
    let mut admin = cluster.connect();
    status_orders_with_oracle(&mut admin, "public.orders", ROWS, "");
    status_orders_with_oracle(&mut admin, "public.orders_naive", ROWS, "");
    let url = cluster.url("postgres");

    // The naive ALTER, with the same prober watching.
    let epoch = Instant::now();
    let prober = Prober::spawn(&url, "public.orders_naive", epoch);
    std::thread::sleep(Duration::from_millis(300));
    let t0 = Instant::now();
    admin
        .batch_execute("ALTER TABLE public.orders_naive ALTER COLUMN amount TYPE numeric(12,2)")
        .unwrap();
    let naive_total = t0.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(300));
    let naive = prober.stop();

    // pg_zdm, under load.
    let epoch = Instant::now();
    let prober = Prober::spawn(&url, "public.orders", epoch);
    let old_apps: Vec<Client> = (0..2)
        .map(|i| Client::spawn(&format!("old{i}"), &url, target("amount"), i, epoch))
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let t0 = Instant::now();
    let m: String = admin
        .query_one(
            "SELECT zdm.alter_column_type('public.orders', 'amount', 'numeric(12,2)')",
            &[],
        )
        .unwrap()
        .get(0);
    let new_apps: Vec<Client> = (2..4)
        .map(|i| Client::spawn(&format!("new{i}"), &url, target("amount_new"), i, epoch))
        .collect();
    admin
        .batch_execute(&format!("CALL zdm.backfill('{m}')"))
        .expect("backfill");
    std::thread::sleep(Duration::from_millis(300));
    // Both versions retire before complete: complete drops `amount` (integer)
    // and renames `amount_new` to `amount`, so the transitional name is gone
    // and clients of the final version take over.
    let mut reports: Vec<_> = old_apps.into_iter().map(Client::stop).collect();
    reports.extend(new_apps.into_iter().map(Client::stop));
    admin.execute("SELECT zdm.complete($1)", &[&m]).expect("complete");
    let zdm_total = t0.elapsed().as_secs_f64();
    let after: Vec<Client> = (4..6)
        .map(|i| Client::spawn(&format!("after{i}"), &url, target("amount"), i, epoch))
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    reports.extend(after.into_iter().map(Client::stop));
    let probe = prober.stop();

    let errors = report_errors(&reports);
    let statements: u64 = reports.iter().map(|r| r.statements).sum();
    let mut all = Latencies::default();
    for r in &reports {
        all.merge(&r.latencies);
    }
    eprintln!(
        "naive ALTER: {naive_total:.2} s, readers blocked up to {:.0} ms | pg_zdm: {zdm_total:.2} s, readers waited at most {:.1} ms, \
         {statements} client statements, {errors} errors, writers p99 {:.2} ms max {:.1} ms",
        naive.longest_wait_ms(),
        probe.longest_wait_ms(),
        all.percentile_ms(99.0),
        all.max_ms()
    );
    assert_eq!(errors, 0, "client statements failed");
    assert!(statements > 1000);
    assert!(
        probe.longest_wait_ms() < 300.0,
        "a reader waited {:.1} ms",
        probe.longest_wait_ms()
    );
    // The prober does see a real stall: the naive rewrite blocks it for most of its duration.
    assert!(
        naive.longest_wait_ms() > 3.0 * probe.longest_wait_ms().max(50.0),
        "naive {:.1} ms",
        naive.longest_wait_ms()
    );

    let ty: String = admin
        .query_one("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'public.orders'::regclass AND attname = 'amount'", &[])
        .unwrap()
        .get(0);
    assert_eq!(ty, "numeric(12,2)");
    let diff = oracle_diff(
        &mut admin,
        "SELECT id, amount::numeric, status FROM public.orders",
        "SELECT id, amount::numeric, status FROM public.orders_oracle",
        10,
    );
    assert!(diff.is_empty(), "table and oracle differ:\n{}", diff.join("\n"));
}
