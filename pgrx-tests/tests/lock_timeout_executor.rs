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
