//! The safe DDL executor against a real blocker: an idle-in-transaction reader.
//! pg_zdm must give up after its attempts with an error naming the blocker,
//! change nothing, and never keep readers queued behind it for much longer than
//! zdm.lock_timeout.

mod common;

use std::time::{Duration, Instant};
use zdm_harness::prober::Prober;

#[test]
fn gives_up_names_the_blocker_and_never_stalls_readers() {
    let cluster = common::cluster_with_zdm();
    let mut admin = cluster.connect();
    common::users_with_oracle(&mut admin, 10_000);

    // The blocker: a transaction that read the table and went idle.
    let mut blocker = cluster.connect();
    let blocker_pid: i32 = blocker.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
    blocker
        .batch_execute("BEGIN; SELECT count(*) FROM public.users;")
        .unwrap();

    let epoch = Instant::now();
    let prober = Prober::spawn(&cluster.url("postgres"), "public.users", epoch);
    std::thread::sleep(Duration::from_millis(300));

    let mut migrator = cluster.connect();
    migrator
        .batch_execute("SET zdm.lock_timeout = '100ms'; SET zdm.lock_attempts = 4; SET zdm.retry_backoff = '150ms';")
        .unwrap();
    let started = Instant::now();
    let err = migrator
        .query_one("SELECT zdm.rename_column('public.users', 'name', 'full_name')", &[])
        .expect_err("the migration must give up");
    let took = started.elapsed();
    std::thread::sleep(Duration::from_millis(200));
    let probe = prober.stop();

    let db = err.as_db_error().expect("a database error");
    assert_eq!(db.code().code(), "55P03", "{db:?}");
    let detail = db.detail().unwrap_or_default();
    assert!(
        detail.contains(&format!("pid {blocker_pid}")),
        "detail names the blocker: {detail}"
    );
    assert!(
        detail.contains("SELECT count(*) FROM public.users"),
        "detail shows its query: {detail}"
    );
    assert!(db.message().contains("after 4 attempts"), "{}", db.message());
    assert!(db.hint().unwrap_or_default().contains("zdm.blocking_locks"));
    // 4 waits of 100 ms and 3 pauses of 75..225 ms, 300..225*3+400 ms.
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(3),
        "took {took:?}"
    );

    // Readers kept going: none waited much longer than one lock_timeout.
    let longest = probe.longest_wait_ms();
    eprintln!(
        "prober: {} reads, longest wait {longest:.1} ms, p99 {:.1} ms",
        probe.reads.count(),
        probe.reads.percentile_ms(99.0)
    );
    assert!(probe.errors.is_empty(), "{:?}", probe.errors);
    assert!(probe.reads.count() > 50);
    assert!(longest < 250.0, "a reader waited {longest} ms behind pg_zdm");

    // Nothing changed.
    let cols: i64 = admin
        .query_one("SELECT count(*) FROM pg_attribute WHERE attrelid = 'public.users'::regclass AND attnum > 0 AND NOT attisdropped", &[])
        .unwrap()
        .get(0);
    assert_eq!(cols, 3);
    let migrations: i64 = admin
        .query_one("SELECT count(*) FROM zdm.migrations", &[])
        .unwrap()
        .get(0);
    assert_eq!(migrations, 0);

    // Once the blocker is gone, the same call goes through.
    blocker.batch_execute("COMMIT").unwrap();
    let name: String = migrator
        .query_one("SELECT zdm.rename_column('public.users', 'name', 'full_name')", &[])
        .unwrap()
        .get(0);
    assert_eq!(name, "users_rename_name_to_full_name");
}

#[test]
fn statement_timeout_bounds_the_retries() {
    let cluster = common::cluster_with_zdm();
    let mut admin = cluster.connect();
    common::users_with_oracle(&mut admin, 1_000);
    let mut blocker = cluster.connect();
    blocker
        .batch_execute("BEGIN; SELECT count(*) FROM public.users;")
        .unwrap();

    let mut migrator = cluster.connect();
    migrator
        .batch_execute("SET zdm.lock_timeout = '100ms'; SET zdm.lock_attempts = 100; SET statement_timeout = '700ms';")
        .unwrap();
    let started = Instant::now();
    let err = migrator
        .query_one("SELECT zdm.rename_column('public.users', 'name', 'full_name')", &[])
        .expect_err("statement_timeout stops the retries");
    let took = started.elapsed();
    assert_eq!(common::sqlstate(&err), "57014", "{err}");
    assert!(took < Duration::from_secs(2), "took {took:?}");
    let migrations: i64 = admin
        .query_one("SELECT count(*) FROM zdm.migrations", &[])
        .unwrap()
        .get(0);
    assert_eq!(migrations, 0);
    blocker.batch_execute("COMMIT").unwrap();
}

/// An autovacuum of the table outlasting every attempt: PostgreSQL would
/// cancel it after `deadlock_timeout`, which our short lock waits never reach,
/// so the executor cancels it (never an anti-wraparound one) and goes on.
#[test]
fn a_blocking_autovacuum_is_cancelled_as_postgresql_would() {
    let cluster = common::cluster_with_zdm();
    cluster.set_conf("autovacuum_naptime = 1");
    let mut c = cluster.connect();
    // A vacuum that sleeps 100 ms every page: it would hold its lock for minutes.
    c.batch_execute(
        "CREATE TABLE public.av (id bigint PRIMARY KEY, v integer NOT NULL)
           WITH (autovacuum_vacuum_cost_delay = 100, autovacuum_vacuum_cost_limit = 1,
                 autovacuum_vacuum_threshold = 0, autovacuum_vacuum_scale_factor = 0,
                 autovacuum_analyze_threshold = 1000000000);
         INSERT INTO public.av SELECT g, g FROM generate_series(1, 200000) g;
         DELETE FROM public.av WHERE id % 2 = 0;",
    )
    .unwrap();
    let worker = || -> Option<i32> {
        cluster
            .connect()
            .query_opt(
                "SELECT pid FROM pg_stat_activity WHERE backend_type = 'autovacuum worker' AND query LIKE '%public.av%'",
                &[],
            )
            .unwrap()
            .map(|r| r.get(0))
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let pid = loop {
        if let Some(pid) = worker() {
            break pid;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no autovacuum of public.av started"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    // Start a migration: its DDL needs a lock the vacuum's conflicts with.
    let started = std::time::Instant::now();
    c.batch_execute("SELECT zdm.rename_column('public.av', 'v', 'w')")
        .expect("the migration starts: the autovacuum was cancelled");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let cancelled: i64 = c
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND query LIKE '%public.av%'",
            &[&pid],
        )
        .unwrap()
        .get(0);
    assert_eq!(cancelled, 0, "the vacuum of public.av is gone");
}

/// A swap locks the table, the shadow, then each referencing table: two of
/// those held by short transactions, each released within one lock_timeout,
/// the second only after the two waits add up to more than one. All the locks
/// of an attempt fit in one `zdm.lock_timeout`, so readers queued behind the
/// table's lock wait at most that long (plus the swap's hold), not once per
/// relation.
#[test]
fn all_the_locks_of_an_attempt_fit_in_one_lock_timeout() {
    let cluster = common::cluster_with_zdm();
    let mut admin = cluster.connect();
    admin
        .batch_execute(
            "CREATE TABLE public.t (id bigint PRIMARY KEY, v int);
             INSERT INTO public.t SELECT g, g FROM generate_series(1, 1000) g;
             CREATE TABLE public.c1 (id bigint PRIMARY KEY, t_id bigint REFERENCES public.t);
             CREATE TABLE public.c2 (id bigint PRIMARY KEY, t_id bigint REFERENCES public.t);
             SELECT zdm.create_shadow_table('public.t', ARRAY['ADD COLUMN w int'], NULL, 'lb');",
        )
        .unwrap();
    admin.batch_execute("CALL zdm.backfill('lb')").unwrap();
    admin.batch_execute("SELECT zdm.verify('lb')").unwrap();

    // Each holder locks its table now and commits `after` from now.
    let holder = |table: &'static str, after: u64| {
        let mut c = cluster.connect();
        c.batch_execute(&format!("BEGIN; LOCK TABLE public.{table} IN ROW EXCLUSIVE MODE;"))
            .unwrap();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(after));
            c.batch_execute("COMMIT").unwrap();
        })
    };
    let epoch = Instant::now();
    let prober = Prober::spawn(&cluster.url("postgres"), "public.t", epoch);
    std::thread::sleep(Duration::from_millis(200));
    let h1 = holder("c1", 450);
    let h2 = holder("c2", 1400);
    let mut migrator = cluster.connect();
    let swap: String = migrator
        .query_one(
            "SELECT zdm.swap_tables('lb', lock_timeout => '500ms', max_attempts => 20)::text",
            &[],
        )
        .unwrap()
        .get(0);
    let swap: serde_json::Value = serde_json::from_str(&swap).unwrap();
    h1.join().unwrap();
    h2.join().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let longest = prober.stop().longest_wait_ms();
    let held = swap["lock_held_ms"].as_f64().unwrap();
    println!("swap {swap}; readers' longest wait {longest:.0} ms");
    assert!(
        swap["attempts"].as_u64().unwrap() >= 2,
        "the first attempt cannot have fit: {swap}"
    );
    // One lock_timeout (500 ms) and the hold, plus scheduling slack; a
    // timeout per lock would have kept them about 950 ms.
    assert!(longest < 500.0 + held + 200.0, "readers waited {longest:.0} ms");
}
