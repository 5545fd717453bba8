//! The races between the shadow trigger and the batched copy, each forced to
//! happen with real concurrent sessions (online-rebuild tools have lost rows in
//! exactly these interleavings):
//! - rows updated, deleted, re-inserted and re-keyed while the batch that
//!   copies them is open (not yet committed): the batch does not lock the
//!   original's rows, so a deleted or updated row may be copied as it was;
//!   the write noted the key and the next settle removes or refreshes the copy;
//! - an update committed after a batch's snapshot, of a row the batch then
//!   copies as it was: the batch's own settle refreshes it;
//! - rows deleted, updated or re-keyed by a transaction that commits after the
//!   batch took its snapshot;
//! - deletes and updates by REPEATABLE READ transactions whose snapshot
//!   predates the copy of their row (they cannot see it in the shadow):
//!   settled by verify, and under the swap's lock for one that commits after
//!   the verify;
//! - a write by a transaction that began before the trigger existed.
//! After each, the shadow must equal the original, row for row.
//!
//! These are the races of a shadow whose indexes exist during the copy
//! (`zdm.shadow_indexes_after_copy = off`), where writers' triggers write it;
//! those of the default copy phase are in `shadow_copy_phase.rs`.

mod common;

use std::thread::JoinHandle;
use std::time::Duration;
use zdm_harness::cluster::Cluster;

/// Shadows keep their indexes during the copy: the trigger writes them.
fn indexed_shadow_cluster() -> Cluster {
    common::cluster_with_zdm_settings(&["zdm.shadow_indexes_after_copy = off"])
}

fn table(c: &mut postgres::Client) {
    c.batch_execute(
        "CREATE TABLE public.t (id bigint PRIMARY KEY, v integer NOT NULL, note text);
         INSERT INTO public.t SELECT g, g, 'n' || g FROM generate_series(1, 10000) g;",
    )
    .unwrap();
}

/// Run `sql` in its own session on a thread (it may block).
fn session(cluster: &Cluster, sql: &'static str) -> JoinHandle<Result<(), String>> {
    let url = cluster.url("postgres");
    std::thread::spawn(move || {
        let mut c = postgres::Client::connect(&url, postgres::NoTls).map_err(|e| e.to_string())?;
        c.batch_execute(sql).map_err(|e| e.to_string())
    })
}

fn row(c: &mut postgres::Client, table: &str, id: i64) -> Option<(i64, Option<String>)> {
    c.query_opt(&format!("SELECT v::int8, note FROM {table} WHERE id = $1"), &[&id])
        .unwrap()
        .map(|r| (r.get(0), r.get(1)))
}

fn finish_and_verify(c: &mut postgres::Client, m: &str) {
    c.batch_execute(&format!("CALL zdm.backfill('{m}')")).unwrap();
    let v: String = c
        .query_one(&format!("SELECT zdm.verify('{m}')::text"), &[])
        .unwrap()
        .get(0);
    let v: serde_json::Value = serde_json::from_str(&v).unwrap();
    assert_eq!(v["matched"], true, "{v}");
}

/// Sessions that are blocked right now waiting for a lock.
fn waiting(c: &mut postgres::Client) -> i64 {
    c.query_one(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()",
        &[],
    )
    .unwrap()
    .get(0)
}

/// The shadow migration `m` of public.t, after its first batch (rows 1..1000).
fn shadow_after_first_batch(c: &mut postgres::Client) {
    c.batch_execute(
        "SELECT zdm.create_shadow_table('public.t', ARRAY['ALTER COLUMN v TYPE bigint'], NULL, 'm');
         SELECT zdm.backfill_batch('m', 1000);",
    )
    .unwrap();
}

/// The next batch (1001..2000) in its own session, once it is seen waiting
/// for a writer that holds one of its rows; a generous lock_timeout keeps it
/// waiting rather than retrying.
fn next_batch_waiting(cluster: &Cluster, why: &str) -> JoinHandle<Result<(), String>> {
    let batch = session(
        cluster,
        "SET zdm.lock_timeout = '10s'; SELECT zdm.backfill_batch('m', 1000);",
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(!batch.is_finished(), "the batch waits for {why}");
    batch
}

/// An open transaction holding an uncommitted shadow row in the second
/// batch's range (1001..2000): row 1500 deleted and inserted again, which the
/// trigger copies (updates are not copied ahead of the batches).
const HOLD_1500: &str =
    "BEGIN; DELETE FROM public.t WHERE id = 1500; INSERT INTO public.t VALUES (1500, 1500, 'n1500');";

/// Public.t with its shadow migration after the first batch, and the second
/// batch held after its snapshot (by `HOLD_1500`) while `meanwhile` runs;
/// then the holder gives up and the batch completes with its old snapshot.
fn with_a_batch_held_after_its_snapshot(
    cluster: &Cluster,
    admin: &mut postgres::Client,
    meanwhile: impl FnOnce(&mut postgres::Client),
) {
    table(admin);
    shadow_after_first_batch(admin);
    let mut holder = cluster.connect();
    holder.batch_execute(HOLD_1500).unwrap();
    let batch = next_batch_waiting(cluster, "the holder");
    meanwhile(admin);
    holder.batch_execute("ROLLBACK").unwrap();
    batch.join().unwrap().expect("the batch completes");
    assert_eq!(
        row(admin, "public.zdm_shadow_m", 1500),
        Some((1500, Some("n1500".into())))
    );
}

/// Keys noted by deletes and updates, not settled yet.
fn noted(c: &mut postgres::Client) -> Vec<i64> {
    c.query("SELECT id FROM public.zdm_stale_m ORDER BY id", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[test]
fn writes_to_rows_of_an_open_batch() {
    let cluster = indexed_shadow_cluster();
    let mut admin = cluster.connect();
    table(&mut admin);
    admin
        .batch_execute("SELECT zdm.create_shadow_table('public.t', ARRAY['ALTER COLUMN v TYPE bigint'], NULL, 'm')")
        .unwrap();
    // The batch copies rows 1..1000 and stays open.
    let mut batch = cluster.connect();
    batch
        .batch_execute("BEGIN; SELECT zdm.backfill_batch('m', 1000);")
        .unwrap();
    let update = session(&cluster, "UPDATE public.t SET v = -10, note = NULL WHERE id = 10");
    let delete = session(&cluster, "DELETE FROM public.t WHERE id = 20");
    let rekey = session(&cluster, "UPDATE public.t SET id = 900000 WHERE id = 30");
    let reinsert = session(
        &cluster,
        "BEGIN; DELETE FROM public.t WHERE id = 40; INSERT INTO public.t VALUES (40, 4040, 're-inserted'); COMMIT",
    );
    // Updates and deletes do not wait for the batch: they find no committed
    // copy and note the key. An insert of a copied key waits for the batch
    // to commit (the shadow's unique index).
    update.join().unwrap().expect("the update does not wait");
    delete.join().unwrap().expect("the delete does not wait");
    rekey.join().unwrap().expect("the re-key does not wait");
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !reinsert.is_finished(),
        "the insert of a copied key waits for the open batch"
    );
    assert_eq!(waiting(&mut admin), 1);
    batch.batch_execute("COMMIT").unwrap();
    reinsert
        .join()
        .unwrap()
        .expect("the writer succeeds once the batch commits");
    let s = "public.zdm_shadow_m";
    // The batch copied row 10 as it read it; the update noted the key.
    assert_eq!(row(&mut admin, s, 10), Some((10, Some("n10".into()))));
    assert_eq!(
        row(&mut admin, s, 40),
        Some((4040, Some("re-inserted".into()))),
        "the re-insert replaced the batch's copy"
    );
    assert_eq!(
        row(&mut admin, s, 900000),
        Some((30, Some("n30".into()))),
        "new key there"
    );
    // The batch copied rows 20 and 30 as it read them; their deletes noted them.
    assert_eq!(row(&mut admin, s, 20), Some((20, Some("n20".into()))));
    assert_eq!(noted(&mut admin), vec![10, 20, 30, 40]);
    // The next batch settles the notes: copies of deleted keys go, the
    // re-inserted key stays, the updated row takes its new values.
    admin.batch_execute("SELECT zdm.backfill_batch('m', 1000)").unwrap();
    assert_eq!(row(&mut admin, s, 10), Some((-10, None)), "the update wins");
    assert_eq!(row(&mut admin, s, 20), None, "deleted row not resurrected");
    assert_eq!(row(&mut admin, s, 30), None, "old key gone");
    assert_eq!(row(&mut admin, s, 40), Some((4040, Some("re-inserted".into()))));
    assert_eq!(noted(&mut admin), Vec::<i64>::new());
    finish_and_verify(&mut admin, "m");
}

/// A delete that finds the shadow row (a writer's trigger copied it after the
/// batch's snapshot: a delete and insert again of the key) and commits before
/// the batch reaches the row: the batch copies the deleted row all the same.
/// The delete noted the key anyway, and the batch's own settle removes the copy.
#[test]
fn a_row_copied_by_a_writer_then_deleted_behind_a_batch() {
    let cluster = indexed_shadow_cluster();
    let mut admin = cluster.connect();
    // While the batch waits, row 1700 is copied by a writer's trigger
    // (deleted and inserted again), then deleted (the delete finds that copy),
    // all committed. The batch's old snapshot still has the row: it copies it.
    with_a_batch_held_after_its_snapshot(&cluster, &mut admin, |admin| {
        admin
            .batch_execute(
                "DELETE FROM public.t WHERE id = 1700;
                 INSERT INTO public.t VALUES (1700, -1700, 'again');
                 DELETE FROM public.t WHERE id = 1700;",
            )
            .unwrap();
    });
    let s = "public.zdm_shadow_m";
    assert_eq!(row(&mut admin, s, 1700), None, "the deleted row is not brought back");
    assert_eq!(noted(&mut admin), Vec::<i64>::new(), "settled by the batch");
    finish_and_verify(&mut admin, "m");
}

/// An update committed after the batch took its snapshot, of a row the batch
/// has not copied: the trigger finds no shadow row and only notes the key; the
/// batch copies the row as its snapshot saw it; the batch's own settle (a
/// later statement) refreshes the copy from the original.
#[test]
fn an_update_behind_a_batch_snapshot_is_refreshed_by_its_settle() {
    let cluster = indexed_shadow_cluster();
    let mut admin = cluster.connect();
    with_a_batch_held_after_its_snapshot(&cluster, &mut admin, |admin| {
        // Keys after the upper bound (10000) are inserted without a probe of
        // the notes: no batch copies them.
        let beyond: (bool, bool) = admin
            .query_one("SELECT zdm.shadow_beyond_m(10000), zdm.shadow_beyond_m(10001)", &[])
            .map(|r| (r.get(0), r.get(1)))
            .unwrap();
        assert_eq!(beyond, (false, true));
        // Row 1600 is not copied yet: the update waits for nothing.
        admin
            .batch_execute("UPDATE public.t SET v = -1600, note = NULL WHERE id = 1600")
            .unwrap();
        assert_eq!(noted(admin), vec![1600], "the holder's note is not committed");
        assert_eq!(row(admin, "public.zdm_shadow_m", 1600), None, "not copied ahead");
    });
    let s = "public.zdm_shadow_m";
    assert_eq!(row(&mut admin, s, 1600), Some((-1600, None)), "refreshed by the settle");
    assert_eq!(noted(&mut admin), Vec::<i64>::new(), "settled by the batch");
    finish_and_verify(&mut admin, "m");
}

/// The settle never waits for a writer: a late copy whose key a writer is
/// inserting again right now is left, with its note, for the next settle,
/// which then keeps the writer's row. Without a writer the late copy goes.
#[test]
fn settle_skips_rows_a_writer_holds_and_keeps_keys_inserted_again() {
    let cluster = indexed_shadow_cluster();
    let mut admin = cluster.connect();
    table(&mut admin);
    shadow_after_first_batch(&mut admin);
    let s = "public.zdm_shadow_m";
    // Rows 20 and 30 deleted (noted), then late copies of both put back, as a
    // batch that read them before the deletes would have.
    admin
        .batch_execute(
            "DELETE FROM public.t WHERE id IN (20, 30);
             INSERT INTO public.zdm_shadow_m (id, v, note) VALUES (20, 20, 'n20'), (30, 30, 'n30');",
        )
        .unwrap();
    assert_eq!(noted(&mut admin), vec![20, 30]);
    // A writer inserts key 20 again and holds the shadow row (its upsert).
    let mut writer = cluster.connect();
    writer
        .batch_execute("BEGIN; INSERT INTO public.t VALUES (20, 2020, 'again');")
        .unwrap();
    // A settle that waited for the writer would fail here instead of hanging.
    admin.batch_execute("SET statement_timeout = '2s'").unwrap();
    let started = std::time::Instant::now();
    let removed: i64 = admin.query_one("SELECT zdm.shadow_settle_m()", &[]).unwrap().get(0);
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "the settle did not wait"
    );
    assert_eq!(removed, 1, "the late copy of 30 goes");
    assert_eq!(row(&mut admin, s, 30), None);
    assert_eq!(noted(&mut admin), vec![20], "the held row's note stays");
    writer.batch_execute("COMMIT").unwrap();
    let removed: i64 = admin.query_one("SELECT zdm.shadow_settle_m()", &[]).unwrap().get(0);
    assert_eq!(removed, 0, "key 20 is in the table again: its row stays");
    assert_eq!(row(&mut admin, s, 20), Some((2020, Some("again".into()))));
    assert_eq!(noted(&mut admin), Vec::<i64>::new());
    finish_and_verify(&mut admin, "m");
}

#[test]
fn repeatable_read_deletes_older_than_the_copy() {
    let cluster = indexed_shadow_cluster();
    let mut admin = cluster.connect();
    table(&mut admin);
    admin
        .batch_execute("SELECT zdm.create_shadow_table('public.t', ARRAY['ALTER COLUMN v TYPE bigint'], NULL, 'm')")
        .unwrap();
    // Two transactions whose snapshots predate the whole copy.
    let mut before_verify = cluster.connect();
    let mut after_verify = cluster.connect();
    for c in [&mut before_verify, &mut after_verify] {
        c.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM public.t;")
            .unwrap();
    }
    admin.batch_execute("CALL zdm.backfill('m')").unwrap();
    // With the backfill over, a delete that finds its copy notes nothing.
    admin.batch_execute("DELETE FROM public.t WHERE id = 700").unwrap();
    assert_eq!(noted(&mut admin), Vec::<i64>::new());
    // Their deletes and updates cannot see the copies: they note the keys
    // (an upsert there would fail with 40001, the copy being invisible to
    // them).
    before_verify
        .batch_execute(
            "DELETE FROM public.t WHERE id = 600;
             UPDATE public.t SET v = -650 WHERE id = 650;
             COMMIT;",
        )
        .unwrap();
    let s = "public.zdm_shadow_m";
    assert_eq!(row(&mut admin, s, 600), Some((600, Some("n600".into()))));
    assert_eq!(row(&mut admin, s, 650), Some((650, Some("n650".into()))));
    // verify settles first: the copy is gone and the tables match.
    let v: String = admin.query_one("SELECT zdm.verify('m')::text", &[]).unwrap().get(0);
    assert!(v.contains("\"matched\": true"), "{v}");
    assert_eq!(row(&mut admin, s, 600), None);
    assert_eq!(row(&mut admin, s, 650), Some((-650, Some("n650".into()))));
    // One more after the verify: the swap settles it under its lock.
    after_verify
        .batch_execute("DELETE FROM public.t WHERE id = 500; COMMIT;")
        .unwrap();
    admin.batch_execute("SELECT zdm.swap_tables('m')").unwrap();
    assert_eq!(
        row(&mut admin, "public.t", 500),
        None,
        "the swapped table lacks the deleted row"
    );
    assert_eq!(row(&mut admin, "public.t", 600), None);
    let counts: (i64, i64) = admin
        .query_one(
            "SELECT (SELECT count(*) FROM public.t), (SELECT count(*) FROM public.zdm_old_m)",
            &[],
        )
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!(counts, (9997, 9997));
    assert_eq!(noted(&mut admin), Vec::<i64>::new());
    admin.batch_execute("SELECT zdm.complete('m')").unwrap();
    let gone: Option<String> = admin
        .query_one("SELECT to_regclass('public.zdm_stale_m')::text", &[])
        .unwrap()
        .get(0);
    assert_eq!(gone, None, "complete drops the notes table");
    let gone: Option<String> = admin
        .query_one("SELECT to_regprocedure('zdm.shadow_beyond_m(bigint)')::text", &[])
        .unwrap()
        .get(0);
    assert_eq!(gone, None, "complete drops the generated functions");
}

#[test]
fn writes_committed_after_the_batch_snapshot() {
    let cluster = indexed_shadow_cluster();
    let mut admin = cluster.connect();
    table(&mut admin);
    shadow_after_first_batch(&mut admin);
    // A writer holds uncommitted changes to rows of the next batch (1001..2000).
    let mut writer = cluster.connect();
    writer
        .batch_execute(
            "BEGIN;
             DELETE FROM public.t WHERE id = 1500;
             UPDATE public.t SET v = -1600, note = NULL WHERE id = 1600;
             UPDATE public.t SET id = 800000 WHERE id = 1700;
             DELETE FROM public.t WHERE id = 1800;
             INSERT INTO public.t VALUES (1800, -1800, 'again');",
        )
        .unwrap();
    // The batch takes its snapshot (the rows still look untouched) and meets
    // the writer's uncommitted copy of row 1800 in the shadow's unique index.
    let batch = next_batch_waiting(&cluster, "the writer");
    writer.batch_execute("COMMIT").unwrap();
    batch.join().unwrap().expect("the batch completes");
    let s = "public.zdm_shadow_m";
    assert_eq!(
        row(&mut admin, s, 1500),
        None,
        "a row deleted after the snapshot is not copied"
    );
    assert_eq!(
        row(&mut admin, s, 1600),
        Some((-1600, None)),
        "the update, NULL included, wins"
    );
    assert_eq!(
        row(&mut admin, s, 1700),
        None,
        "re-keyed row not copied under its old key"
    );
    assert_eq!(row(&mut admin, s, 800000), Some((1700, Some("n1700".into()))));
    assert_eq!(row(&mut admin, s, 1800), Some((-1800, Some("again".into()))));
    let last: Vec<String> = admin
        .query_one("SELECT backfill_last FROM zdm.migrations WHERE name = 'm'", &[])
        .unwrap()
        .get(0);
    // The batch met the writer's copy of row 1800 (unique violation) and ran
    // again on a fresh snapshot, where 1500 and 1700 are gone: it scanned
    // 1000 keys up to 2002. Either way the checkpoint follows the scan, not the
    // re-keyed row's new key.
    let last: i64 = last[0].parse().unwrap();
    assert!((2000..=2002).contains(&last), "checkpoint {last}");
    finish_and_verify(&mut admin, "m");
}

#[test]
fn a_transaction_that_began_before_the_trigger() {
    let cluster = indexed_shadow_cluster();
    let mut admin = cluster.connect();
    table(&mut admin);
    // An open writer: CREATE TRIGGER must wait for it (the executor retries
    // with short lock timeouts, never queueing for long).
    let mut early = cluster.connect();
    early
        .batch_execute("BEGIN; UPDATE public.t SET v = 777 WHERE id = 5000;")
        .unwrap();
    // A reader whose snapshot predates the shadow, writing only later.
    let mut reader = cluster.connect();
    reader
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM public.t;")
        .unwrap();
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(600));
        early.batch_execute("COMMIT").unwrap();
    });
    admin
        .batch_execute(
            "SET zdm.lock_attempts = 30;
             SELECT zdm.create_shadow_table('public.t', ARRAY['ALTER COLUMN v TYPE bigint'], NULL, 'm');",
        )
        .unwrap();
    release.join().unwrap();
    reader
        .batch_execute("UPDATE public.t SET v = 888 WHERE id = 6000; COMMIT;")
        .unwrap();
    let s = "public.zdm_shadow_m";
    assert_eq!(
        noted(&mut admin),
        vec![6000],
        "the trigger fired for the old snapshot's write (and noted the row it could not update)"
    );
    assert_eq!(row(&mut admin, s, 6000), None, "nothing is copied ahead of the batches");
    finish_and_verify(&mut admin, "m");
    assert_eq!(row(&mut admin, s, 6000), Some((888, Some("n6000".into()))));
    assert_eq!(row(&mut admin, s, 5000), Some((777, Some("n5000".into()))));
}
