//! swap_tables and its swap back under sustained load: six sessions running
//! short transactions non-stop on `orders`, on `refunds` (which references it:
//! children deleted before their parent, parents inserted before their
//! children) and through a view on `orders`; ten shadow migrations, each
//! swapped in (half of them without an earlier verify) and rolled back. Every
//! swap and swap back must succeed with default settings, no client statement
//! may wait during one longer than the worst it waited before the migrations
//! plus `zdm.lock_timeout` plus the swap's lock hold time, no client statement
//! may fail, and the tables must equal their oracles.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const ROWS: i64 = 100_000;
const CYCLES: usize = 10;

/// One statement's start (since the epoch) and duration, or its error.
#[derive(Default)]
struct Record {
    timings: Vec<(Duration, Duration)>,
    errors: Vec<String>,
}

/// A session's loop: `kind` picks its transactions. Writes go to the tables
/// and to their oracles in the same transaction.
fn session(url: String, kind: u32, epoch: Instant, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Record> {
    std::thread::spawn(move || {
        let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        let mut rec = Record::default();
        let mut i: i64 = 0;
        while !stop.load(Ordering::Relaxed) {
            i += 1;
            let id = 1 + (i * 7919 + kind as i64 * 104_729) % ROWS;
            let fresh = 10_000_000 * (kind as i64 + 1) + i;
            let sql = match kind % 3 {
                // update an order
                0 => format!(
                    "BEGIN;
                     UPDATE orders SET amount = amount + 1 WHERE id = {id};
                     UPDATE orders_oracle SET amount = amount + 1 WHERE id = {id};
                     COMMIT"
                ),
                // delete an order's refunds, then the order
                1 => format!(
                    "BEGIN;
                     DELETE FROM refunds WHERE order_id = {id}; DELETE FROM refunds_oracle WHERE order_id = {id};
                     DELETE FROM orders WHERE id = {id}; DELETE FROM orders_oracle WHERE id = {id};
                     COMMIT"
                ),
                // insert an order, then a refund of it, and read it back through the view
                _ => format!(
                    "BEGIN;
                     INSERT INTO orders VALUES ({fresh}, 900, 'new'); INSERT INTO orders_oracle VALUES ({fresh}, 900, 'new');
                     INSERT INTO refunds VALUES ({fresh}, {fresh}); INSERT INTO refunds_oracle VALUES ({fresh}, {fresh});
                     SELECT count(*) FROM big_orders WHERE id = {fresh};
                     COMMIT"
                ),
            };
            let started = Instant::now();
            let at = epoch.elapsed();
            let result = c.batch_execute(&sql);
            rec.timings.push((at, started.elapsed()));
            if let Err(e) = result {
                rec.errors.push(format!("{}: {e} -- {sql}", common::sqlstate(&e)));
                let _ = c.batch_execute("ROLLBACK");
            }
            // A reader of the view between two writes (it holds the view while
            // it waits for orders, as the readers did).
            let started = Instant::now();
            let at = epoch.elapsed();
            if let Err(e) = c.batch_execute(&format!(
                "SELECT sum(amount) FROM big_orders WHERE id BETWEEN {id} AND {id} + 50"
            )) {
                rec.errors.push(format!("{}: {e} -- view read", common::sqlstate(&e)));
            }
            rec.timings.push((at, started.elapsed()));
        }
        rec
    })
}

/// The longest a statement that overlapped one of `windows` took.
fn worst_in(records: &[Record], windows: &[(Duration, Duration)]) -> f64 {
    records
        .iter()
        .flat_map(|r| r.timings.iter())
        .filter(|(at, took)| windows.iter().any(|(from, to)| *at < *to && *at + *took > *from))
        .map(|(_, took)| took.as_secs_f64() * 1000.0)
        .fold(0.0, f64::max)
}

/// SQLSTATE, message and detail of a failed call.
fn described(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => format!("{} {} ({})", d.code().code(), d.message(), d.detail().unwrap_or("")),
        None => e.to_string(),
    }
}

#[test]
fn ten_swaps_and_swap_backs_succeed_under_six_writers() {
    let cluster = common::cluster_with_zdm();
    let mut admin = cluster.connect();
    admin
        .batch_execute(&format!(
            "CREATE TABLE orders (id bigint PRIMARY KEY, amount integer NOT NULL, note text);
             INSERT INTO orders SELECT g, g % 1000, 'n' FROM generate_series(1, {ROWS}) g;
             CREATE TABLE refunds (id bigint PRIMARY KEY, order_id bigint NOT NULL REFERENCES orders);
             INSERT INTO refunds SELECT g, g FROM generate_series(1, {ROWS}, 3) g;
             CREATE INDEX ON refunds (order_id);
             CREATE VIEW big_orders AS SELECT id, amount FROM orders WHERE amount > 500;
             CREATE TABLE orders_oracle AS SELECT * FROM orders;
             ALTER TABLE orders_oracle ADD PRIMARY KEY (id);
             CREATE TABLE refunds_oracle AS SELECT * FROM refunds;
             CREATE INDEX ON refunds_oracle (order_id);"
        ))
        .unwrap();
    admin.batch_execute("VACUUM ANALYZE orders, refunds").unwrap();
    admin.batch_execute("LOAD 'pg_zdm'").unwrap();
    let lock_timeout_ms: f64 = common::one::<String>(&mut admin, "SELECT current_setting('zdm.lock_timeout')")
        .trim_end_matches("ms")
        .parse()
        .unwrap_or(500.0);
    let url = cluster.url("postgres");
    let epoch = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let sessions: Vec<_> = (0..6).map(|k| session(url.clone(), k, epoch, stop.clone())).collect();
    // The baseline: how long statements wait with no migration at all.
    std::thread::sleep(Duration::from_secs(5));
    let before = (Duration::ZERO, epoch.elapsed());

    let mut swaps = Vec::new();
    let mut attempts = Vec::new();
    for cycle in 0..CYCLES {
        let m = format!("orders_v{cycle}");
        admin
            .batch_execute(&format!(
                "SELECT zdm.create_shadow_table('orders', ARRAY['ALTER COLUMN amount TYPE bigint'], NULL, '{m}')"
            ))
            .unwrap();
        admin.batch_execute(&format!("CALL zdm.backfill('{m}')")).unwrap();
        if cycle % 2 == 1 {
            let v: String = common::one(&mut admin, &format!("SELECT zdm.verify('{m}')::text"));
            assert!(v.contains("\"matched\": true"), "{v}");
        }
        let from = epoch.elapsed();
        let swap: String = admin
            .query_one(&format!("SELECT zdm.swap_tables('{m}')::text"), &[])
            .unwrap_or_else(|e| panic!("swap {cycle}: {}", described(&e)))
            .get(0);
        swaps.push((from, epoch.elapsed()));
        let swap: serde_json::Value = serde_json::from_str(&swap).unwrap();
        attempts.push(swap["attempts"].as_i64().unwrap());
        eprintln!("swap {cycle}: {swap}");
        std::thread::sleep(Duration::from_millis(300));
        let from = epoch.elapsed();
        admin
            .batch_execute(&format!("SELECT zdm.rollback('{m}')"))
            .unwrap_or_else(|e| panic!("swap back {cycle}: {}", described(&e)));
        swaps.push((from, epoch.elapsed()));
        std::thread::sleep(Duration::from_millis(300));
    }
    stop.store(true, Ordering::Relaxed);
    let records: Vec<Record> = sessions.into_iter().map(|s| s.join().unwrap()).collect();

    let errors: Vec<&String> = records.iter().flat_map(|r| r.errors.iter()).collect();
    assert!(
        errors.is_empty(),
        "{} client errors, first: {:?}",
        errors.len(),
        &errors[..errors.len().min(5)]
    );
    let statements: usize = records.iter().map(|r| r.timings.len()).sum();
    let worst_before = worst_in(&records, &[before]);
    let worst_during = worst_in(&records, &swaps);
    // A statement that comes while the swap waits for its locks queues behind
    // it for at most zdm.lock_timeout; one that comes while the swap holds
    // them waits for the swap's commit: the bound is their sum.
    let held: f64 = common::one(
        &mut admin,
        "SELECT max((detail->>'lock_held_ms')::float8) FROM zdm.events WHERE event IN ('swap', 'swap back')",
    );
    let allowed = worst_before + lock_timeout_ms + held;
    eprintln!(
        "{statements} client statements; swap attempts {attempts:?}; worst wait before the migrations {worst_before:.1} ms, \
         during the swaps and swap backs {worst_during:.1} ms (allowed {allowed:.1} ms: that + zdm.lock_timeout \
         {lock_timeout_ms} ms + the longest lock hold {held:.1} ms)"
    );
    assert!(
        worst_during <= allowed,
        "a client waited {worst_during:.1} ms during a swap, {worst_before:.1} ms at worst before"
    );
    for (t, o) in [("orders", "orders_oracle"), ("refunds", "refunds_oracle")] {
        let diff: i64 = common::one(
            &mut admin,
            &format!("SELECT count(*) FROM ((TABLE {t} EXCEPT TABLE {o}) UNION ALL (TABLE {o} EXCEPT TABLE {t})) d"),
        );
        assert_eq!(diff, 0, "{t} differs from its oracle");
    }
}
