//! The backfill engine on real clusters: EXPLAIN of the batches on a large
//! table, resuming after a killed backend and after a crash with writers
//! running, waiting for a lagging standby, and a pg_cron-driven backfill.

mod common;

use std::time::{Duration, Instant};
use zdm_harness::cluster::{Cluster, ClusterOptions};
use zdm_harness::load::{oracle_diff, Client, ClientReport};

const ROWS: i64 = 1_000_000;

/// EXPLAIN the statements of the migration's batches (its end, its work, the
/// rows it covered) for a few positions, with custom and generic plans: every
/// scan of the table (and of the shadow) is an index range scan bounded below
/// by the last key done.
fn assert_batches_are_range_scans(c: &mut postgres::Client, migration: &str) {
    let statements: Vec<String> = c
        .query(
            "SELECT jsonb_array_elements_text(plan->'backfill'->'batch_statements') FROM zdm.migrations WHERE name = $1",
            &[&migration],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(statements.len(), 3, "{statements:?}");
    for sql in &statements {
        c.batch_execute(&format!(
            "DEALLOCATE ALL; PREPARE batch(text[], integer, text[], text[]) AS {sql}"
        ))
        .unwrap();
        for mode in ["force_custom_plan", "force_generic_plan"] {
            c.batch_execute(&format!("SET plan_cache_mode = {mode}")).unwrap();
            for (size, after) in [(1_000, 990_000), (100_000, 500_000), (1_000, 10)] {
                let end = (after + size).min(ROWS);
                let plan: Vec<String> = c
                    .query(
                        &format!("EXPLAIN EXECUTE batch('{{{ROWS}}}', {size}, '{{{after}}}', '{{{end}}}')"),
                        &[],
                    )
                    .unwrap()
                    .iter()
                    .map(|r| r.get::<_, String>(0))
                    .collect();
                let text = plan.join("\n");
                assert!(
                    !text.contains("Seq Scan") && !text.contains("Merge Join") && !text.contains("Hash Join"),
                    "{mode}, batch {size} after {after}:\n{sql}\n{text}"
                );
                let conds: Vec<&String> = plan.iter().filter(|l| l.contains("Index Cond:")).collect();
                assert!(!conds.is_empty(), "{mode}:\n{text}");
                for cond in conds {
                    assert!(
                        cond.contains("(id > ") || cond.contains(".id > "),
                        "{mode}, batch {size} after {after}: a scan not bounded below: {cond}\n{text}"
                    );
                }
            }
        }
    }
}

#[test]
fn every_batch_is_an_index_range_scan() {
    let cluster = common::cluster_with_zdm();
    let mut c = cluster.connect();
    common::users_with_oracle(&mut c, ROWS);
    c.execute(
        "SELECT zdm.rename_column('public.users', 'name', 'full_name', 'm')",
        &[],
    )
    .unwrap();
    assert_batches_are_range_scans(&mut c, "m");
    c.execute("SELECT zdm.rollback('m')", &[]).unwrap();
    // A shadow's batch: the anti-join with the shadow is bounded on both sides.
    c.execute(
        "SELECT zdm.create_shadow_table('public.users', ARRAY['ALTER COLUMN name TYPE varchar(200)'], NULL, 's')",
        &[],
    )
    .unwrap();
    // Part of the table copied (a one-second CALL), so the shadow has rows.
    c.batch_execute("CALL zdm.backfill('s', 1000, 1)").unwrap();
    c.batch_execute("ANALYZE public.zdm_shadow_s").unwrap();
    assert_batches_are_range_scans(&mut c, "s");
}

#[test]
fn resumes_after_a_killed_backend_and_a_crash_with_writers_running() {
    let cluster = common::cluster_with_zdm();
    let mut c = cluster.connect();
    common::users_with_oracle(&mut c, ROWS);
    let url = cluster.url("postgres");
    let epoch = Instant::now();
    c.execute(
        "SELECT zdm.rename_column('public.users', 'name', 'full_name', 'm')",
        &[],
    )
    .unwrap();
    // Big, slow batches, so that the faults land in the middle of one.
    c.execute(
        r#"SELECT zdm.set_backfill_settings('m', '{"batch_size": 40000, "target_batch_ms": 0}')"#,
        &[],
    )
    .unwrap();
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

    // 1. The backend running the CALL is terminated.
    let backfiller = std::thread::spawn({
        let url = url.clone();
        move || {
            let mut b = postgres::Client::connect(&url, postgres::NoTls).unwrap();
            b.batch_execute("CALL zdm.backfill('m')")
                .map_err(|e| e.code().map(|c| c.code().to_string()))
        }
    });
    wait_for_rows(&mut c, 100_000);
    let killed: bool = common::one(
        &mut c,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'CALL zdm.backfill%'",
    );
    assert!(killed);
    let outcome = backfiller.join().unwrap();
    assert!(outcome.is_err(), "the CALL was terminated");
    let done_at_kill: i64 = common::one(&mut c, "SELECT rows_done FROM zdm.migrations WHERE name = 'm'");
    assert!(done_at_kill >= 100_000 && done_at_kill < ROWS, "{done_at_kill}");

    // 2. The server stops with -m immediate in the middle of a batch.
    let backfiller = std::thread::spawn({
        let url = url.clone();
        move || {
            let mut b = postgres::Client::connect(&url, postgres::NoTls).unwrap();
            let _ = b.batch_execute("CALL zdm.backfill('m')");
        }
    });
    wait_for_rows(&mut c, done_at_kill + 120_000);
    std::thread::sleep(Duration::from_millis(150));
    cluster.crash();
    backfiller.join().unwrap();
    let mut reports: Vec<ClientReport> = writers.into_iter().map(Client::stop).collect();
    cluster.start_server();
    let mut c = cluster.connect();
    let done_at_crash: i64 = common::one(&mut c, "SELECT rows_done FROM zdm.migrations WHERE name = 'm'");
    let last: Vec<String> = common::one(&mut c, "SELECT backfill_last FROM zdm.migrations WHERE name = 'm'");
    eprintln!("checkpoint after the crash: {done_at_crash} rows, last key {last:?}");
    // The checkpoint and the rows agree: every row up to the last key is done, none after it.
    let last_key: i64 = last[0].parse().unwrap();
    let behind: i64 = common::one(
        &mut c,
        &format!("SELECT count(*) FROM public.users WHERE id <= {last_key} AND full_name IS DISTINCT FROM name"),
    );
    assert_eq!(behind, 0, "rows at or before the checkpoint that were not done");

    // 3. Writers again, and the same CALL carries on to the end.
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
    c.batch_execute("CALL zdm.backfill('m')").expect("the backfill resumes");
    std::thread::sleep(Duration::from_millis(300));
    reports.extend(writers.into_iter().map(Client::stop));
    common::crash_errors_only(&reports);
    let phase: String = common::one(&mut c, "SELECT phase FROM zdm.migrations WHERE name = 'm'");
    assert_eq!(phase, "backfilled");
    let behind: i64 = common::one(
        &mut c,
        "SELECT count(*) FROM public.users WHERE full_name IS DISTINCT FROM name",
    );
    assert_eq!(behind, 0);
    let diff = oracle_diff(
        &mut c,
        "SELECT id, name::text, email FROM public.users",
        "SELECT id, name::text, email FROM public.users_oracle",
        10,
    );
    assert!(diff.is_empty(), "table and oracle differ:\n{}", diff.join("\n"));
    let done: i64 = common::one(&mut c, "SELECT rows_done FROM zdm.migrations WHERE name = 'm'");
    // rows_done counts the rows each committed batch covered: the original rows
    // (less those deleted before their batch) and writer rows below the bound
    // fixed by the first batch. A batch counted twice would push it over.
    let below_bound: i64 = common::one(&mut c, "SELECT count(*) FROM public.users WHERE id <= (SELECT backfill_upper[1]::int8 FROM zdm.migrations WHERE name = 'm')");
    let deleted_originals: i64 =
        ROWS - common::one::<i64>(&mut c, &format!("SELECT count(*) FROM public.users WHERE id <= {ROWS}"));
    assert!(
        done >= below_bound && done <= below_bound + deleted_originals + 1_000,
        "rows_done {done}, rows below the bound {below_bound}"
    );
    c.execute("SELECT zdm.complete('m')", &[]).unwrap();
}

fn wait_for_rows(c: &mut postgres::Client, rows: i64) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let done: i64 = common::one(c, "SELECT rows_done FROM zdm.migrations WHERE name = 'm'");
        if done >= rows {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the backfill did not reach {rows} rows ({done})"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn waits_while_a_standby_lags_and_goes_on_when_it_catches_up() {
    let primary = common::cluster_with_zdm();
    let mut c = primary.connect();
    common::users_with_oracle(&mut c, 100_000);
    let standby = primary.standby(&["recovery_min_apply_delay = '3s'"]);
    c.execute(
        "SELECT zdm.rename_column('public.users', 'name', 'full_name', 'm')",
        &[],
    )
    .unwrap();
    c.batch_execute("SET zdm.max_replication_lag = '500ms'").unwrap();
    // Writes reach the standby 3 s late: replay_lag climbs above 500 ms.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        c.batch_execute("UPDATE public.users SET email = email WHERE id = 1")
            .unwrap();
        let lagging: bool = common::one(
            &mut c,
            "SELECT coalesce(max(replay_lag) > interval '1s', false) FROM zdm.replication_lag",
        );
        if lagging {
            break;
        }
        assert!(Instant::now() < deadline, "the standby never lagged");
        std::thread::sleep(Duration::from_millis(200));
    }
    // The loop waits instead of adding WAL, and says why.
    c.batch_execute("CALL zdm.backfill('m', NULL, 3)").unwrap();
    let (done, reason): (i64, Option<String>) = {
        let r = c
            .query_one(
                "SELECT rows_done, waiting_reason FROM zdm.progress WHERE migration = 'm'",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(done, 0, "no batch while the standby lags");
    let reason = reason.expect("waiting_reason is set");
    assert!(
        reason.contains("replay lag") && reason.contains("zdm.max_replication_lag"),
        "{reason}"
    );
    let state: String = common::one(&mut c, "SELECT state FROM zdm.progress WHERE migration = 'm'");
    assert_eq!(state, "waiting");

    // The standby catches up: the backfill goes on to the end.
    standby.set_conf("recovery_min_apply_delay = 0");
    let caught_up = Instant::now();
    c.batch_execute("CALL zdm.backfill('m')").unwrap();
    eprintln!(
        "backfill finished {:.1} s after the standby was told to catch up",
        caught_up.elapsed().as_secs_f64()
    );
    let phase: String = common::one(&mut c, "SELECT phase FROM zdm.migrations WHERE name = 'm'");
    assert_eq!(phase, "backfilled");
    let reason: Option<String> = common::one(&mut c, "SELECT waiting_reason FROM zdm.progress WHERE migration = 'm'");
    assert_eq!(reason, None);
}

/// Run by the table's owner, who is not a superuser: the job is theirs, and
/// so are its runs (pg_cron runs a job as the role that scheduled it).
#[test]
fn pg_cron_runs_the_backfill_to_the_end_and_stops_itself() {
    let cluster = Cluster::start(&ClusterOptions {
        pg_cron: true,
        ..Default::default()
    });
    let mut admin = cluster.connect();
    admin
        .batch_execute("CREATE EXTENSION pg_cron; CREATE EXTENSION pg_zdm;")
        .unwrap();
    common::users_with_oracle(&mut admin, 50_000);
    // What the owner needs from a DBA: its table, and the use of pg_cron's schema.
    admin
        .batch_execute(
            "CREATE ROLE app_owner LOGIN; ALTER TABLE public.users OWNER TO app_owner;
             GRANT USAGE ON SCHEMA cron TO app_owner;",
        )
        .unwrap();
    let mut c = postgres::Client::connect(
        &format!("host=127.0.0.1 port={} user=app_owner dbname=postgres", cluster.port),
        postgres::NoTls,
    )
    .unwrap();
    c.execute(
        "SELECT zdm.rename_column('public.users', 'name', 'full_name', 'm')",
        &[],
    )
    .unwrap();
    let job: i64 = common::one(&mut c, "SELECT zdm.schedule_backfill('m', '* * * * *', 50)");
    let command: String = common::one(&mut c, &format!("SELECT command FROM cron.job WHERE jobid = {job}"));
    assert_eq!(command, "CALL zdm.backfill('m', NULL, 50, 'cron')");
    let name: String = common::one(&mut c, &format!("SELECT jobname FROM cron.job WHERE jobid = {job}"));
    assert_eq!(name, "zdm_backfill_m");
    let username: String = common::one(
        &mut c,
        &format!("SELECT username::text FROM cron.job WHERE jobid = {job}"),
    );
    assert_eq!(username, "app_owner");
    // pg_cron 1.4 fires at the top of each minute.
    let deadline = Instant::now() + Duration::from_secs(150);
    loop {
        let phase: String = common::one(&mut c, "SELECT phase FROM zdm.migrations WHERE name = 'm'");
        if phase == "backfilled" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the cron job did not finish the backfill (phase {phase})"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // Its last run parks the job (a schedule that never fires) rather than
    // removing it during its own run, which pg_cron would report as cancelled.
    let deadline = Instant::now() + Duration::from_secs(20);
    while common::one::<String>(&mut c, &format!("SELECT schedule FROM cron.job WHERE jobid = {job}")) != "0 0 31 2 *" {
        assert!(Instant::now() < deadline, "the job did not stop itself");
        std::thread::sleep(Duration::from_millis(200));
    }
    let runner: String = common::one(&mut c, "SELECT runner FROM zdm.progress WHERE migration = 'm'");
    assert!(runner.starts_with(&format!("cron job {job} (pid ")), "{runner}");
    let failed: i64 = common::one(
        &mut c,
        &format!("SELECT count(*) FROM cron.job_run_details WHERE jobid = {job} AND status <> 'succeeded'"),
    );
    assert_eq!(failed, 0);
    c.execute("SELECT zdm.complete('m')", &[]).unwrap();
    // complete removes the job for good.
    assert_eq!(
        common::one::<i64>(&mut c, &format!("SELECT count(*) FROM cron.job WHERE jobid = {job}")),
        0
    );
    let cron_job: Option<i64> = common::one(&mut c, "SELECT cron_job_id FROM zdm.progress WHERE migration = 'm'");
    assert_eq!(cron_job, None);
    let events: Vec<String> = c
        .query("SELECT event FROM zdm.events WHERE migration = 'm' ORDER BY id", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    for e in ["scheduled", "scheduled work done", "unscheduled"] {
        assert!(events.contains(&e.to_string()), "{e}: {events:?}");
    }
}

#[test]
fn call_inside_a_transaction_block_is_refused_and_notices_are_sent() {
    let cluster = common::cluster_with_zdm();
    let mut c = cluster.connect();
    common::users_with_oracle(&mut c, 20_000);
    c.execute(
        "SELECT zdm.rename_column('public.users', 'name', 'full_name', 'm')",
        &[],
    )
    .unwrap();
    let err = c
        .batch_execute("BEGIN; CALL zdm.backfill('m');")
        .expect_err("refused in a block");
    assert_eq!(common::sqlstate(&err), "25001", "{err}");
    let hint = err.as_db_error().unwrap().hint().unwrap_or_default().to_string();
    assert!(
        hint.contains("zdm.schedule_backfill") && hint.contains("zdm.backfill_batch"),
        "{hint}"
    );
    c.batch_execute("ROLLBACK").unwrap();
    for (sql, state) in [
        ("CALL zdm.backfill('nope')", "42704"),
        ("CALL zdm.backfill('m', 0)", "22023"),
        ("CALL zdm.backfill('m', -5)", "22023"),
    ] {
        let e = c.batch_execute(sql).expect_err(sql);
        assert_eq!(common::sqlstate(&e), state, "{sql}: {e}");
    }

    // NOTICEs arrive at a steady interval, not every batch.
    let notices = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let sink = notices.clone();
    let mut config: postgres::Config = cluster.url("postgres").parse().unwrap();
    config.notice_callback(move |n| sink.lock().unwrap().push(n.message().to_string()));
    let mut n = config.connect(postgres::NoTls).unwrap();
    n.batch_execute("SET zdm.progress_interval = '1s'").unwrap();
    n.execute(
        r#"SELECT zdm.set_backfill_settings('m', '{"batch_size": 500, "target_batch_ms": 0, "batch_delay_ms": 50}')"#,
        &[],
    )
    .unwrap();
    let started = Instant::now();
    n.batch_execute("CALL zdm.backfill('m')").unwrap();
    let took = started.elapsed().as_secs_f64();
    let got = notices.lock().unwrap().clone();
    let progress: Vec<&String> = got.iter().filter(|m| m.contains("rows/s")).collect();
    eprintln!("{took:.1} s, {} notices: {got:?}", got.len());
    assert!(!progress.is_empty(), "{got:?}");
    assert!(
        (progress.len() as f64) <= took + 1.0,
        "{} progress notices in {took:.1} s",
        progress.len()
    );
    assert!(got.last().unwrap().contains("backfilled"), "{got:?}");
    // In a second session meanwhile: rows_done grows monotonically (checked by phase here).
    let phase: String = common::one(&mut c, "SELECT phase FROM zdm.migrations WHERE name = 'm'");
    assert_eq!(phase, "backfilled");
}

#[test]
fn pg_cron_also_builds_the_indexes_then_cleans_up() {
    let cluster = Cluster::start(&ClusterOptions {
        pg_cron: true,
        ..Default::default()
    });
    let mut c = cluster.connect();
    c.batch_execute("CREATE EXTENSION pg_cron; CREATE EXTENSION pg_zdm;")
        .unwrap();
    common::users_with_oracle(&mut c, 50_000);
    c.batch_execute("CREATE INDEX users_name ON public.users (name)")
        .unwrap();
    // A rename whose column has an index: a backfill and a CONCURRENTLY rebuild.
    c.execute(
        "SELECT zdm.rename_column('public.users', 'name', 'full_name', 'm')",
        &[],
    )
    .unwrap();
    // An index-only migration: nothing to backfill, one build.
    c.execute(
        "SELECT zdm.create_index('public.users', 'users_email', 'USING btree (email)', 'ix')",
        &[],
    )
    .unwrap();
    c.query_one("SELECT zdm.schedule_backfill('m')", &[]).unwrap();
    c.query_one("SELECT zdm.schedule_backfill('ix')", &[]).unwrap();
    // One minute per pg_cron tick: backfill, build one index, build the other (one per table at a time), park.
    let deadline = Instant::now() + Duration::from_secs(540);
    loop {
        let pending: i64 = common::one(&mut c, "SELECT count(*) FROM zdm.pending_statements()");
        let running: i64 = common::one(&mut c, "SELECT count(*) FROM cron.job WHERE schedule <> '0 0 31 2 *'");
        let phase: String = common::one(&mut c, "SELECT phase FROM zdm.migrations WHERE name = 'm'");
        if pending == 0 && running == 0 && phase == "backfilled" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "pg_cron did not finish: {pending} pending, {running} jobs, phase {phase}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let failed: Vec<String> = c
        .query("SELECT command || ': ' || coalesce(return_message, '') FROM cron.job_run_details WHERE status <> 'succeeded'", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(failed.is_empty(), "{failed:?}");
    c.execute("SELECT zdm.complete('m')", &[]).unwrap();
    c.execute("SELECT zdm.complete('ix')", &[]).unwrap();
    assert_eq!(
        common::one::<i64>(&mut c, "SELECT count(*) FROM cron.job"),
        0,
        "complete removed the parked jobs"
    );
    let defs: Vec<String> = c
        .query(
            "SELECT indexdef FROM pg_indexes WHERE tablename = 'users' ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        defs,
        [
            "CREATE INDEX users_email ON public.users USING btree (email)",
            "CREATE INDEX users_name ON public.users USING btree (full_name)",
            "CREATE UNIQUE INDEX users_pkey ON public.users USING btree (id)"
        ]
    );
}
