//! The background runner with real sessions: one transactional file
//! (start, start, zdm.run, COMMIT) and nothing else takes a table of
//! 1,000,000 rows under writers to "ready to complete"; the same file rolled
//! back starts nothing; a worker killed mid-batch and a server stopped with
//! `-m immediate` mid-batch resume by themselves; pause, resume, settings and
//! cancel reach the running worker; a full max_worker_processes is 53400;
//! `"run": true` in a spec.

mod common;

use std::time::{Duration, Instant};
use zdm_harness::cluster::Cluster;
use zdm_harness::load::{oracle_diff, Client, ClientReport};

/// The table's owner: a role that is not a superuser, with CREATE on the
/// schema (PostgreSQL 15 wants it of whoever creates an index there).
fn owned_by_app_owner(cluster: &Cluster, admin: &mut postgres::Client) -> postgres::Client {
    admin
        .batch_execute(
            "CREATE ROLE app_owner LOGIN; GRANT CREATE ON SCHEMA public TO app_owner;
             ALTER TABLE public.users OWNER TO app_owner;",
        )
        .unwrap();
    let url = format!("host=127.0.0.1 port={} user=app_owner dbname=postgres", cluster.port);
    postgres::Client::connect(&url, postgres::NoTls).unwrap()
}

/// Poll (plain reads, no zdm call) until `sql` returns true.
fn until(c: &mut postgres::Client, sql: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    while !common::one::<bool>(c, sql) {
        if Instant::now() > deadline {
            let state: String = common::one(
                c,
                "SELECT coalesce(string_agg(format('%s %s %s %s rows %s', migration, phase, state, rows_done, last_error), '; '), '')
                   FROM zdm.progress",
            );
            panic!("timed out waiting for: {sql}\nprogress: {state}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn rows_done(c: &mut postgres::Client, m: &str) -> i64 {
    common::one(c, &format!("SELECT rows_done FROM zdm.migrations WHERE name = '{m}'"))
}

fn worker_pid(c: &mut postgres::Client) -> Option<i32> {
    c.query_opt(
        "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_zdm runner' LIMIT 1",
        &[],
    )
    .unwrap()
    .map(|r| r.get(0))
}

fn table_equals_oracle(c: &mut postgres::Client) {
    let diff = oracle_diff(
        c,
        "SELECT id, name::text, email FROM public.users",
        "SELECT id, name::text, email FROM public.users_oracle",
        10,
    );
    assert!(diff.is_empty(), "table and oracle differ:\n{}", diff.join("\n"));
    let behind: i64 = common::one(
        c,
        "SELECT count(*) FROM public.users WHERE full_name IS DISTINCT FROM name",
    );
    assert_eq!(behind, 0, "rows whose new column was not filled");
}

#[test]
fn one_transactional_file_reaches_ready_to_complete_under_load_and_a_rollback_starts_nothing() {
    const ROWS: i64 = 1_000_000;
    let cluster = common::cluster_with_zdm();
    let mut admin = cluster.connect();
    common::users_with_oracle(&mut admin, ROWS);
    let mut owner = owned_by_app_owner(&cluster, &mut admin);
    let url = cluster.url("postgres");
    let epoch = Instant::now();
    let writers: Vec<Client> = (0..2)
        .map(|i| {
            Client::spawn(
                &format!("w{i}"),
                &url,
                zdm_harness::fixtures::users_target(ROWS),
                i,
                epoch,
            )
        })
        .collect();

    // The migration tool's file that is rolled back: nothing starts.
    owner
        .batch_execute(
            "BEGIN;
             SELECT zdm.rename_column('public.users', 'email', 'mail', 'r');
             SELECT zdm.run('r');
             ROLLBACK;",
        )
        .unwrap();
    // The file of the migration itself, and nothing after it.
    owner
        .batch_execute(
            "BEGIN;
             SELECT zdm.rename_column('public.users', 'name', 'full_name', 'm');
             SELECT zdm.create_index('public.users', 'users_email_idx', 'USING btree (email)', 'ix');
             SELECT zdm.run('m');
             SELECT zdm.run('ix');
             COMMIT;",
        )
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!common::one::<bool>(
        &mut admin,
        "SELECT EXISTS (SELECT FROM zdm.migrations WHERE name = 'r')"
    ));
    assert!(!common::one::<bool>(
        &mut admin,
        "SELECT EXISTS (SELECT FROM zdm.runners WHERE migration = 'r')"
    ));
    let who: String = common::one(
        &mut admin,
        "SELECT coalesce(runner, '') FROM zdm.progress WHERE migration = 'm'",
    );
    assert!(who.starts_with("worker (pid "), "progress names the worker: {who:?}");
    let worker_role: String = common::one(
        &mut admin,
        "SELECT string_agg(DISTINCT usename, ',') FROM pg_stat_activity WHERE backend_type = 'pg_zdm runner'",
    );
    assert_eq!(worker_role, "app_owner", "the workers run as the table's owner");

    until(
        &mut admin,
        "SELECT count(*) = 2 FROM zdm.progress WHERE migration IN ('m', 'ix') AND state = 'ready to complete'",
        Duration::from_secs(150),
    );
    eprintln!("ready to complete after {:?}", epoch.elapsed());
    until(
        &mut admin,
        "SELECT bool_and(state = 'done') FROM zdm.runners",
        Duration::from_secs(10),
    );
    std::thread::sleep(Duration::from_millis(300));
    let reports: Vec<ClientReport> = writers.into_iter().map(Client::stop).collect();
    assert_eq!(zdm_harness::load::report_errors(&reports), 0, "writers saw errors");
    assert!(common::one::<bool>(
        &mut admin,
        "SELECT indisvalid FROM pg_index WHERE indexrelid = 'public.users_email_idx'::regclass"
    ));
    assert!(!common::one::<bool>(
        &mut admin,
        "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE backend_type = 'pg_zdm runner')"
    ));
    table_equals_oracle(&mut admin);
    owner
        .batch_execute("SELECT zdm.complete('m'); SELECT zdm.complete('ix');")
        .unwrap();
}

#[test]
fn killed_worker_and_crashed_server_resume_by_themselves() {
    const ROWS: i64 = 400_000;
    let cluster = common::cluster_with_zdm_settings(&["shared_preload_libraries = 'pg_zdm'"]);
    let mut admin = cluster.connect();
    common::users_with_oracle(&mut admin, ROWS);
    let mut owner = owned_by_app_owner(&cluster, &mut admin);
    let url = cluster.url("postgres");
    let epoch = Instant::now();
    let writers: Vec<Client> = (0..2)
        .map(|i| {
            Client::spawn(
                &format!("w{i}"),
                &url,
                zdm_harness::fixtures::users_target(ROWS),
                i,
                epoch,
            )
        })
        .collect();
    // Big batches with a pause between them, so that the faults land in one.
    owner
        .batch_execute(
            r#"BEGIN;
               SELECT zdm.rename_column('public.users', 'name', 'full_name', 'm');
               SELECT zdm.set_backfill_settings('m', '{"batch_size": 20000, "target_batch_ms": 0, "batch_delay_ms": 100}');
               SELECT zdm.run('m');
               COMMIT;"#,
        )
        .unwrap();
    until(
        &mut admin,
        "SELECT rows_done >= 60000 FROM zdm.migrations WHERE name = 'm'",
        Duration::from_secs(60),
    );

    // 1. The worker's backend is terminated: the postmaster starts it again.
    let first = worker_pid(&mut admin).expect("a worker runs");
    assert!(common::one::<bool>(
        &mut admin,
        &format!("SELECT pg_terminate_backend({first})")
    ));
    let at_kill = rows_done(&mut admin, "m");
    until(
        &mut admin,
        &format!(
            "SELECT rows_done > {at_kill} + 40000 AND runner NOT LIKE '%{first}%' FROM zdm.migrations WHERE name = 'm'"
        ),
        Duration::from_secs(60),
    );

    // 2. The server stops with -m immediate; nobody calls anything after the start.
    let at_crash = rows_done(&mut admin, "m");
    assert!(at_crash < ROWS, "still backfilling when the server stops ({at_crash})");
    drop(admin);
    cluster.crash();
    let mut reports: Vec<ClientReport> = writers.into_iter().map(Client::stop).collect();
    common::crash_errors_only(&reports);
    cluster.start_server();
    let mut admin = cluster.connect();
    let epoch2 = Instant::now();
    let writers: Vec<Client> = (10..12)
        .map(|i| {
            Client::spawn(
                &format!("w{i}"),
                &url,
                zdm_harness::fixtures::users_target(ROWS),
                i,
                epoch2,
            )
        })
        .collect();
    until(
        &mut admin,
        "SELECT phase = 'backfilled' FROM zdm.migrations WHERE name = 'm'",
        Duration::from_secs(120),
    );
    std::thread::sleep(Duration::from_millis(300));
    reports = writers.into_iter().map(Client::stop).collect();
    assert_eq!(zdm_harness::load::report_errors(&reports), 0, "writers saw errors");
    let launches: i32 = common::one(&mut admin, "SELECT launches FROM zdm.runners WHERE migration = 'm'");
    assert_eq!(
        launches, 2,
        "launched by zdm.run, then by the launcher after the restart"
    );
    table_equals_oracle(&mut admin);
    // rows_done counts each committed batch once: never more than the rows below the bound.
    let below: i64 = common::one(
        &mut admin,
        "SELECT count(*) FROM public.users WHERE id <= (SELECT backfill_upper[1]::int8 FROM zdm.migrations WHERE name = 'm')",
    );
    let deleted: i64 = ROWS
        - common::one::<i64>(
            &mut admin,
            &format!("SELECT count(*) FROM public.users WHERE id <= {ROWS}"),
        );
    let done = rows_done(&mut admin, "m");
    assert!(
        done >= below && done <= below + deleted + 1000,
        "rows_done {done}, below the bound {below}"
    );
}

#[test]
fn pause_settings_cancel_act_on_the_worker_and_a_full_server_says_53400() {
    const ROWS: i64 = 100_000;
    // One slot for runners: the logical replication launcher takes the other.
    let cluster = common::cluster_with_zdm_settings(&["max_worker_processes = 2", "max_parallel_workers = 0"]);
    let mut admin = cluster.connect();
    common::users_with_oracle(&mut admin, ROWS);
    let mut owner = owned_by_app_owner(&cluster, &mut admin);
    owner
        .batch_execute(
            r#"SELECT zdm.rename_column('public.users', 'name', 'full_name', 'm');
               SELECT zdm.set_backfill_settings('m', '{"batch_size": 500, "target_batch_ms": 0, "batch_delay_ms": 20}');
               SELECT zdm.run('m');"#,
        )
        .unwrap();
    until(
        &mut admin,
        "SELECT rows_done >= 5000 FROM zdm.migrations WHERE name = 'm'",
        Duration::from_secs(30),
    );

    // Pause: the worker stops within a batch, and stays.
    owner.batch_execute("SELECT zdm.pause('m')").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let paused = rows_done(&mut admin, "m");
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(rows_done(&mut admin, "m"), paused, "no batch while paused");
    assert_eq!(
        common::one::<String>(&mut admin, "SELECT state FROM zdm.progress WHERE migration = 'm'"),
        "paused"
    );
    assert!(worker_pid(&mut admin).is_some(), "the paused worker waits");

    // No slot left for a second runner: 53400 with a hint, nothing changed.
    owner
        .batch_execute("SELECT zdm.rename_column('public.users', 'email', 'mail', 'm2')")
        .unwrap();
    let err = owner.batch_execute("SELECT zdm.run('m2')").expect_err("no worker slot");
    assert_eq!(common::sqlstate(&err), "53400", "{err}");
    let db = err.as_db_error().unwrap();
    assert!(
        db.hint().unwrap_or("").contains("max_worker_processes"),
        "{:?}",
        db.hint()
    );
    assert!(!common::one::<bool>(
        &mut admin,
        "SELECT EXISTS (SELECT FROM zdm.runners WHERE migration = 'm2')"
    ));
    owner.batch_execute("SELECT zdm.rollback('m2')").unwrap();

    // New settings and resume: the next batch has the new size.
    owner
        .batch_execute(r#"SELECT zdm.set_backfill_settings('m', '{"batch_size": 3000}'); SELECT zdm.resume('m');"#)
        .unwrap();
    until(
        &mut admin,
        &format!("SELECT rows_done > {paused} FROM zdm.migrations WHERE name = 'm'"),
        Duration::from_secs(5),
    );
    assert_eq!(
        common::one::<i32>(
            &mut admin,
            "SELECT last_batch_size FROM zdm.migrations WHERE name = 'm'"
        ),
        3000
    );

    // Cancel: the worker ends before its next step; zdm.wait says so.
    assert!(common::one::<bool>(&mut owner, "SELECT zdm.cancel('m')"));
    until(
        &mut admin,
        "SELECT NOT EXISTS (SELECT FROM pg_stat_activity WHERE backend_type = 'pg_zdm runner')",
        Duration::from_secs(5),
    );
    let err = owner.batch_execute("CALL zdm.wait('m')").expect_err("cancelled");
    assert_eq!(common::sqlstate(&err), "57014", "{err}");
    let err = owner
        .batch_execute("BEGIN; CALL zdm.wait('m')")
        .expect_err("not in a block");
    assert_eq!(common::sqlstate(&err), "25001", "{err}");
    owner.batch_execute("ROLLBACK").unwrap();

    // Without the preload, a server restart leaves the runner waiting for
    // the first pg_zdm call in its database.
    owner.batch_execute("SELECT zdm.run('m')").unwrap();
    until(
        &mut admin,
        "SELECT state = 'running' FROM zdm.runners WHERE migration = 'm'",
        Duration::from_secs(5),
    );
    drop((admin, owner));
    cluster.crash();
    cluster.start_server();
    let mut admin = cluster.connect();
    std::thread::sleep(Duration::from_millis(500));
    assert!(worker_pid(&mut admin).is_none());
    let mut owner = cluster_client(&cluster, "app_owner");
    owner.batch_execute("CALL zdm.wait('m', '60 s')").unwrap();
    assert_eq!(
        common::one::<String>(&mut admin, "SELECT phase FROM zdm.migrations WHERE name = 'm'"),
        "backfilled"
    );
    table_equals_oracle(&mut admin);

    // "run": true in a spec: started and handed to a worker in one call.
    owner
        .batch_execute(
            r#"SELECT zdm.complete('m');
               SELECT zdm.start('{"name": "s", "run": true, "operations":
                   [{"op": "rename_column", "table": "public.users", "column": "email", "new_name": "mail"}]}');"#,
        )
        .unwrap();
    owner.batch_execute("CALL zdm.wait('s', '60 s')").unwrap();
    assert_eq!(
        common::one::<String>(&mut admin, "SELECT phase FROM zdm.migrations WHERE name = 's'"),
        "backfilled"
    );

    // A start function's result handed straight to zdm.run.
    owner
        .batch_execute(
            "SELECT zdm.complete('s'); SELECT zdm.run(zdm.rename_column('public.users', 'mail', 'mail2', 'n'));",
        )
        .unwrap();
    owner.batch_execute("CALL zdm.wait('n', '60 s')").unwrap();
    assert_eq!(
        common::one::<String>(&mut admin, "SELECT phase FROM zdm.migrations WHERE name = 'n'"),
        "backfilled"
    );
    owner.batch_execute("SELECT zdm.rollback('n')").unwrap();

    // A migration rolled back while its worker runs: the worker stops at its
    // next step, cleanly (no error), and the rollback is complete.
    owner
        .batch_execute(
            r#"SELECT zdm.rename_column('public.users', 'full_name', 'fn2', 'r');
               SELECT zdm.set_backfill_settings('r', '{"batch_size": 500, "target_batch_ms": 0, "batch_delay_ms": 50}');
               SELECT zdm.run('r');"#,
        )
        .unwrap();
    until(
        &mut admin,
        "SELECT rows_done >= 1000 FROM zdm.migrations WHERE name = 'r'",
        Duration::from_secs(30),
    );
    owner.batch_execute("SELECT zdm.rollback('r')").unwrap();
    until(
        &mut admin,
        "SELECT NOT EXISTS (SELECT FROM pg_stat_activity WHERE backend_type = 'pg_zdm runner')",
        Duration::from_secs(5),
    );
    let (state, error): (String, Option<String>) = {
        let row = admin
            .query_one("SELECT state, last_error FROM zdm.runners WHERE migration = 'r'", &[])
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert_eq!(
        (state.as_str(), error),
        ("cancelled", None),
        "the worker stopped without an error"
    );
    assert!(!common::one::<bool>(
        &mut admin,
        "SELECT EXISTS (SELECT FROM pg_attribute WHERE attrelid = 'public.users'::regclass AND attname = 'fn2' AND NOT attisdropped)"
    ));

    // A table owner that cannot log in cannot have a worker (PostgreSQL 15).
    admin.batch_execute("ALTER ROLE app_owner NOLOGIN").unwrap();
    admin
        .batch_execute("SELECT zdm.rename_column('public.users', 'full_name', 'fname', 'm3')")
        .unwrap();
    let err = admin.batch_execute("SELECT zdm.run('m3')").expect_err("NOLOGIN owner");
    assert_eq!(common::sqlstate(&err), "55000", "{err}");
}

fn cluster_client(cluster: &Cluster, role: &str) -> postgres::Client {
    let url = format!("host=127.0.0.1 port={} user={role} dbname=postgres", cluster.port);
    postgres::Client::connect(&url, postgres::NoTls).unwrap()
}
