//! The copy phase of a shadow migration (the default,
//! `zdm.shadow_indexes_after_copy = on`): the shadow has no index while the
//! batches copy the rows, the trigger only notes the keys written, and when
//! the batches are done the indexes are built, the trigger starts copying
//! each write, and the noted keys are settled. Each race is forced with real
//! concurrent sessions:
//! - writes committed after a batch's snapshot, of rows the batch then copies
//!   as they were (updated, deleted, re-keyed, deleted and inserted again),
//!   and new keys after the backfill's bound that no batch copies;
//! - a writer whose transaction is still open when the copy ends (its notes
//!   become visible after the settle that ends the backfill);
//! - writers while the index build waits for its lock: they must not wait.
//! After each, the shadow must equal the original, row for row.

mod common;

use std::time::{Duration, Instant};

fn table(c: &mut postgres::Client) {
    c.batch_execute(
        "CREATE TABLE public.t (id bigint PRIMARY KEY, v integer NOT NULL, note text);
         CREATE INDEX t_v ON public.t (v);
         INSERT INTO public.t SELECT g, g, 'n' || g FROM generate_series(1, 10000) g;
         SELECT zdm.create_shadow_table('public.t', ARRAY['ALTER COLUMN v TYPE bigint'], NULL, 'm');",
    )
    .unwrap();
}

fn shadow_indexes(c: &mut postgres::Client) -> i64 {
    c.query_one(
        "SELECT count(*) FROM pg_index WHERE indrelid = 'public.zdm_shadow_m'::regclass",
        &[],
    )
    .unwrap()
    .get(0)
}

/// Rows that differ between the original and the shadow, both ways.
fn differences(c: &mut postgres::Client) -> Vec<String> {
    c.query(
        "(SELECT 'only in t: ' || id || ' ' || v || ' ' || coalesce(note, '-') FROM
           (SELECT id, v::bigint, note FROM public.t EXCEPT SELECT id, v, note FROM public.zdm_shadow_m) d)
         UNION ALL
         (SELECT 'only in shadow: ' || id || ' ' || v || ' ' || coalesce(note, '-') FROM
           (SELECT id, v, note FROM public.zdm_shadow_m EXCEPT SELECT id, v::bigint, note FROM public.t) d)
         ORDER BY 1",
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

fn verify_matches(c: &mut postgres::Client) {
    let v: String = c.query_one("SELECT zdm.verify('m')::text", &[]).unwrap().get(0);
    let v: serde_json::Value = serde_json::from_str(&v).unwrap();
    assert_eq!(v["matched"], true, "{v}");
}

/// One batch of `size` rows whose snapshot is older than `writes` (REPEATABLE
/// READ keeps the snapshot taken before them): it copies rows as they were.
fn batch_behind(cluster: &zdm_harness::cluster::Cluster, table: &str, writes: &str, size: i32) {
    let mut batch = cluster.connect();
    batch
        .batch_execute(&format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM {table};"
        ))
        .unwrap();
    cluster.connect().batch_execute(writes).unwrap();
    batch
        .batch_execute(&format!("SELECT zdm.backfill_batch('m', {size}); COMMIT;"))
        .unwrap();
}

fn noted(c: &mut postgres::Client) -> i64 {
    c.query_one("SELECT count(*) FROM public.zdm_stale_m", &[])
        .unwrap()
        .get(0)
}

const WRITES: &str = "UPDATE public.t SET v = -1 WHERE id = 1500;
     UPDATE public.t SET note = NULL WHERE id = 1550;
     DELETE FROM public.t WHERE id = 1600;
     UPDATE public.t SET id = 20000 WHERE id = 1700;
     DELETE FROM public.t WHERE id = 1800; INSERT INTO public.t VALUES (1800, 18, 'again');
     INSERT INTO public.t VALUES (30000, 3, 'new');";

#[test]
fn writes_behind_a_batch_snapshot_are_settled_once_the_indexes_exist() {
    let cluster = common::cluster_with_zdm();
    let mut admin = cluster.connect();
    table(&mut admin);
    assert_eq!(shadow_indexes(&mut admin), 0, "no index during the copy");
    batch_behind(&cluster, "public.t", WRITES, 5000);
    let stale: Vec<(i64, i64)> = admin
        .query(
            "SELECT id, v FROM public.zdm_shadow_m WHERE id IN (1500, 1600, 1700, 1800) ORDER BY id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        stale,
        vec![(1500, 1500), (1600, 1600), (1700, 1700), (1800, 1800)],
        "the batch copied the rows as its snapshot saw them"
    );
    assert!(noted(&mut admin) >= 7, "every write noted its keys");
    admin.batch_execute("CALL zdm.backfill('m')").unwrap();
    assert_eq!(shadow_indexes(&mut admin), 2, "indexes built after the copy");
    assert_eq!(differences(&mut admin), Vec::<String>::new());
    assert_eq!(noted(&mut admin), 0);
    verify_matches(&mut admin);
}

#[test]
fn a_write_still_open_when_the_copy_ends_is_settled_by_verify() {
    let cluster = common::cluster_with_zdm();
    let mut admin = cluster.connect();
    table(&mut admin);
    admin.batch_execute("SELECT zdm.backfill_batch('m', 3000)").unwrap();
    // A writer with the copy phase's trigger, still open when the copy ends:
    // its notes become visible only after the settle that ends the backfill.
    let mut writer = cluster.connect();
    writer.batch_execute("BEGIN;").unwrap();
    writer.batch_execute(WRITES).unwrap();
    let started = Instant::now();
    admin.batch_execute("CALL zdm.backfill('m')").unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the end of the copy does not wait for writers"
    );
    writer.batch_execute("COMMIT").unwrap();
    assert!(
        !differences(&mut admin).is_empty(),
        "the writer's rows are not settled yet"
    );
    verify_matches(&mut admin);
    assert_eq!(differences(&mut admin), Vec::<String>::new());
    // From now on the trigger copies each write.
    admin
        .batch_execute("UPDATE public.t SET v = 7 WHERE id = 9; DELETE FROM public.t WHERE id = 30000;")
        .unwrap();
    assert_eq!(differences(&mut admin), Vec::<String>::new());
    admin
        .batch_execute("SELECT zdm.swap_tables('m'); SELECT zdm.complete('m');")
        .unwrap();
    let (rows, sum): (i64, i64) = {
        let r = admin
            .query_one("SELECT count(*), sum(v)::int8 FROM public.t", &[])
            .unwrap();
        (r.get(0), r.get(1))
    };
    // 10000 rows: 1600 deleted, 1700 moved to 20000, 30000 inserted then deleted.
    assert_eq!(rows, 9999);
    assert_eq!(sum, 50_005_000 - 1500 - 1 - 1600 - 1800 + 18 - 9 + 7);
}

#[test]
fn writers_do_not_wait_for_the_index_build() {
    let cluster = common::cluster_with_zdm();
    let mut admin = cluster.connect();
    table(&mut admin);
    admin.batch_execute("SELECT zdm.backfill_batch('m', 20000)").unwrap();
    // A reader of the shadow makes the primary key's build (ACCESS
    // EXCLUSIVE on the shadow) wait.
    let mut reader = cluster.connect();
    reader
        .batch_execute("BEGIN; SELECT count(*) FROM public.zdm_shadow_m;")
        .unwrap();
    let url = cluster.url("postgres");
    let finish = std::thread::spawn(move || {
        let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        c.batch_execute("SET zdm.lock_timeout = '20s'; SELECT zdm.backfill_batch('m');")
            .map_err(|e| e.to_string())
    });
    std::thread::sleep(Duration::from_millis(500));
    assert!(!finish.is_finished(), "the build waits for the reader");
    let mut writer = cluster.connect();
    writer.batch_execute("SET statement_timeout = '2s'").unwrap();
    writer
        .batch_execute(WRITES)
        .expect("writers go on while the build waits");
    reader.batch_execute("COMMIT").unwrap();
    finish.join().unwrap().expect("the build completes");
    assert_eq!(shadow_indexes(&mut admin), 2);
    assert_eq!(differences(&mut admin), Vec::<String>::new());
    verify_matches(&mut admin);
}

/// After a copy phase, inserts of keys after the greatest one skip the probe
/// of the notes only once verify has seen every transaction older than
/// itself end (any of them may still write with the copy phase's trigger).
#[test]
fn inserts_skip_the_probe_once_no_copy_phase_writer_is_left() {
    let cluster = common::cluster_with_zdm();
    let mut admin = cluster.connect();
    table(&mut admin);
    admin.batch_execute(WRITES).unwrap();
    admin.batch_execute("CALL zdm.backfill('m')").unwrap();
    let beyond = |c: &mut postgres::Client, key: i64| -> bool {
        c.query_one("SELECT zdm.shadow_beyond_m($1)", &[&key]).unwrap().get(0)
    };
    assert!(!beyond(&mut admin, 1_000_000), "inserts probe after the copy");
    let mut old = cluster.connect();
    old.batch_execute("BEGIN; SELECT 1;").unwrap();
    let started = Instant::now();
    verify_matches(&mut admin);
    assert!(started.elapsed() >= Duration::from_secs(2), "verify waited for it");
    assert!(
        !beyond(&mut admin, 1_000_000),
        "a transaction older than verify was open"
    );
    old.batch_execute("COMMIT").unwrap();
    verify_matches(&mut admin);
    // 30000, inserted during the copy, is the greatest key.
    assert!(!beyond(&mut admin, 30000));
    assert!(beyond(&mut admin, 30001));
    admin
        .batch_execute("INSERT INTO public.t VALUES (30001, 1, 'a'), (40000, 2, 'b'), (1600, 3, 'c')")
        .unwrap();
    assert_eq!(differences(&mut admin), Vec::<String>::new());
    verify_matches(&mut admin);
}

/// A unique value that moves from one row to another during the copy: a
/// batch copied the first row before the move, a later batch the second
/// after it. The shadow holds the value twice until the settle; its unique
/// index is built after the settle, so the copy phase ends without a 23505.
#[test]
fn a_unique_value_moved_between_rows_during_the_copy() {
    let cluster = common::cluster_with_zdm();
    let mut admin = cluster.connect();
    admin
        .batch_execute(
            "CREATE TABLE public.u (id bigint PRIMARY KEY, code text NOT NULL UNIQUE);
             INSERT INTO public.u SELECT g, 'c' || g FROM generate_series(1, 10000) g;
             SELECT zdm.create_shadow_table('public.u', '{}', NULL, 'm');",
        )
        .unwrap();
    batch_behind(
        &cluster,
        "public.u",
        "UPDATE public.u SET code = 'moved' WHERE id = 1500;
         UPDATE public.u SET code = 'c1500' WHERE id = 4000;",
        2000,
    );
    admin
        .batch_execute("CALL zdm.backfill('m')")
        .expect("the copy phase ends");
    verify_matches(&mut admin);
    let codes: Vec<(i64, String)> = admin
        .query(
            "SELECT id, code FROM public.zdm_shadow_m WHERE id IN (1500, 4000) ORDER BY id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(codes, vec![(1500, "moved".to_string()), (4000, "c1500".to_string())]);
}
