//! Faults during a shadow migration, with writers running, on 1,000,000 rows:
//! the server stopped with `pg_ctl stop -m immediate` in the middle of a
//! backfill batch, then again in the middle of the swap's transaction. The
//! backfill resumes where its last committed batch ended; the aborted swap
//! leaves the original intact and the migration ready to swap again.

mod common;

use std::time::{Duration, Instant};
use zdm_harness::load::{oracle_diff, Client, ClientReport};

const ROWS: i64 = 1_000_000;

fn writers(url: &str, from: u32) -> Vec<Client> {
    let epoch = Instant::now();
    (from..from + 2)
        .map(|i| Client::spawn(&format!("w{i}"), url, common::orders_target("note", ROWS), i, epoch))
        .collect()
}

#[test]
fn crash_mid_backfill_and_mid_swap_with_writers_running() {
    let cluster = common::cluster_with_zdm();
    let mut c = cluster.connect();
    common::orders_with_oracle(&mut c, ROWS);
    let url = cluster.url("postgres");
    c.batch_execute(
        r#"SELECT zdm.create_shadow_table('public.orders', ARRAY['ALTER COLUMN amount TYPE numeric(10,2)'], NULL, 'm');
           SELECT zdm.set_backfill_settings('m', '{"batch_size": 50000, "target_batch_ms": 0}');"#,
    )
    .unwrap();
    let w = writers(&url, 0);

    // 1. Crash in the middle of a batch.
    let backfiller = std::thread::spawn({
        let url = url.clone();
        move || {
            let mut b = postgres::Client::connect(&url, postgres::NoTls).unwrap();
            let _ = b.batch_execute("CALL zdm.backfill('m')");
        }
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    while common::one::<i64>(&mut c, "SELECT rows_done FROM zdm.migrations WHERE name = 'm'") < 200_000 {
        assert!(Instant::now() < deadline, "the backfill did not progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(100));
    cluster.crash();
    backfiller.join().unwrap();
    let mut reports: Vec<ClientReport> = w.into_iter().map(Client::stop).collect();
    cluster.start_server();
    let mut c = cluster.connect();
    let last: Vec<String> = common::one(&mut c, "SELECT backfill_last FROM zdm.migrations WHERE name = 'm'");
    let last_key: i64 = last[0].parse().unwrap();
    // Checkpoint and shadow agree: every original row up to the last key is
    // in the shadow, none of the original rows after it (only trigger copies).
    let missing: i64 = common::one(
        &mut c,
        &format!(
            "SELECT count(*) FROM public.orders o WHERE o.id <= {last_key}
                AND NOT EXISTS (SELECT FROM public.zdm_shadow_m s WHERE s.id = o.id)"
        ),
    );
    assert_eq!(missing, 0, "rows at or before the checkpoint missing from the shadow");
    eprintln!("checkpoint after the crash: last key {last_key}");

    // 2. Writers again; the backfill resumes to the end; verify under load.
    let w = writers(&url, 10);
    c.batch_execute("CALL zdm.backfill('m')").expect("the backfill resumes");
    let v: String = common::one(&mut c, "SELECT zdm.verify('m')::text");
    assert!(v.contains("\"matched\": true"), "{v}");

    // 3. Crash with the swap's transaction open (renames done, not committed).
    let mut swapper = cluster.connect();
    swapper.batch_execute("BEGIN; SELECT zdm.swap_tables('m');").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    cluster.crash();
    reports.extend(w.into_iter().map(Client::stop));
    cluster.start_server();
    let mut c = cluster.connect();
    let phase: String = common::one(&mut c, "SELECT phase FROM zdm.migrations WHERE name = 'm'");
    assert_eq!(phase, "backfilled", "the swap never happened");
    let ty = common::column_type(&mut c, "public.orders", "amount");
    assert_eq!(ty, "integer", "the original is still in place");

    // 4. Writers again: the same swap goes through, then complete.
    let w = writers(&url, 20);
    std::thread::sleep(Duration::from_millis(500));
    c.batch_execute("SELECT zdm.swap_tables('m')")
        .expect("swap after the crash");
    std::thread::sleep(Duration::from_millis(500));
    c.batch_execute("SELECT zdm.complete('m')").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    reports.extend(w.into_iter().map(Client::stop));
    common::crash_errors_only(&reports);
    let diff = oracle_diff(
        &mut c,
        "SELECT id, amount::int8, note FROM public.orders",
        "SELECT id, amount::int8, note FROM public.orders_oracle",
        10,
    );
    assert!(diff.is_empty(), "table and oracle differ:\n{}", diff.join("\n"));
}
