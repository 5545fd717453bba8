//! CREATE / DROP / pg_dump + pg_restore of the extension on real clusters.

mod common;

use std::process::Command;
use zdm_harness::cluster::{Cluster, ClusterOptions};

fn count(conn: &mut postgres::Client, sql: &str) -> i64 {
    conn.query_one(sql, &[]).unwrap().get(0)
}

#[test]
fn create_and_drop_with_and_without_pg_cron() {
    for with_cron in [false, true] {
        let cluster = Cluster::start(&ClusterOptions {
            pg_cron: with_cron,
            ..Default::default()
        });
        let mut c = cluster.connect();
        if with_cron {
            c.batch_execute("CREATE EXTENSION pg_cron")
                .expect("pg_cron is preloaded");
        }
        c.batch_execute("CREATE EXTENSION pg_zdm")
            .expect("CREATE EXTENSION pg_zdm");
        assert_eq!(count(&mut c, "SELECT count(*) FROM zdm.migrations"), 0);
        let members = count(&mut c, "SELECT count(*) FROM pg_depend WHERE refclassid = 'pg_extension'::regclass AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pg_zdm')");
        assert!(members > 10, "{members} extension members");

        // A live migration keeps its trigger function in schema zdm: DROP EXTENSION
        // refuses rather than silently removing a running migration's trigger.
        c.batch_execute("CREATE TABLE t (id int PRIMARY KEY, a text); INSERT INTO t VALUES (1, 'x');")
            .unwrap();
        c.execute("SELECT zdm.rename_column('t', 'a', 'b', 'live')", &[])
            .unwrap();
        let err = c
            .batch_execute("DROP EXTENSION pg_zdm")
            .expect_err("a live migration blocks DROP EXTENSION");
        assert_eq!(common::sqlstate(&err), "2BP01", "{err}");
        c.execute("SELECT zdm.rollback('live')", &[]).unwrap();

        c.batch_execute("DROP EXTENSION pg_zdm").expect("DROP EXTENSION pg_zdm");
        assert_eq!(
            count(&mut c, "SELECT count(*) FROM pg_namespace WHERE nspname = 'zdm'"),
            0
        );
        assert_eq!(
            count(
                &mut c,
                "SELECT count(*) FROM pg_proc WHERE proname LIKE '%zdm%' OR pronamespace::regnamespace::text = 'zdm'"
            ),
            0
        );
        assert_eq!(
            count(
                &mut c,
                "SELECT count(*) FROM pg_class WHERE relname IN ('migrations', 'events', 'progress')"
            ),
            0
        );
        // The user's table is back to what it was.
        assert_eq!(
            count(
                &mut c,
                "SELECT count(*) FROM pg_attribute WHERE attrelid = 't'::regclass AND attnum > 0 AND NOT attisdropped"
            ),
            2
        );
        // And it can come back.
        c.batch_execute("CREATE EXTENSION pg_zdm")
            .expect("CREATE EXTENSION again");
    }
}

#[test]
fn catalog_survives_pg_dump_and_pg_restore() {
    let cluster = common::cluster_with_zdm();
    let mut c = cluster.connect();
    c.batch_execute(
        "CREATE TABLE public.users (id bigint PRIMARY KEY, name text NOT NULL);
         INSERT INTO public.users SELECT g, 'n' || g FROM generate_series(1, 5000) g;",
    )
    .unwrap();
    c.execute(
        "SELECT zdm.rename_column('public.users', 'name', 'full_name', 'dumped')",
        &[],
    )
    .unwrap();
    c.execute("SELECT zdm.backfill_batch('dumped', 1000)", &[]).unwrap();
    let events: i64 = count(&mut c, "SELECT count(*) FROM zdm.events");

    let dump = cluster.dir.join("db.dump");
    let port = cluster.port.to_string();
    let out = Command::new(cluster.tool("pg_dump"))
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            "postgres",
            "-Fc",
            "-f",
            dump.to_str().unwrap(),
            "postgres",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pg_dump: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    c.batch_execute("CREATE DATABASE restored").unwrap();
    let out = Command::new(cluster.tool("pg_restore"))
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            "postgres",
            "-d",
            "restored",
            "--exit-on-error",
            dump.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pg_restore: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut r = cluster.connect_db("restored");
    let phase: String = r
        .query_one("SELECT phase FROM zdm.migrations WHERE name = 'dumped'", &[])
        .unwrap()
        .get(0);
    assert_eq!(phase, "backfilling");
    assert_eq!(count(&mut r, "SELECT count(*) FROM zdm.events"), events);
    assert_eq!(count(&mut r, "SELECT rows_done FROM zdm.migrations"), 1000);
    // The restored migration carries on where it was: trigger, backfill, complete.
    r.batch_execute("INSERT INTO public.users (id, name) VALUES (9001, 'after restore')")
        .unwrap();
    r.batch_execute("CALL zdm.backfill('dumped')").unwrap();
    r.execute("SELECT zdm.complete('dumped')", &[]).unwrap();
    assert_eq!(
        count(&mut r, "SELECT count(*) FROM public.users WHERE full_name IS NULL"),
        0
    );
    let v: String = r
        .query_one("SELECT full_name FROM public.users WHERE id = 9001", &[])
        .unwrap()
        .get(0);
    assert_eq!(v, "after restore");
    // New events get fresh ids (the sequence came back too).
    r.execute(
        "SELECT zdm.rename_column('public.users', 'full_name', 'display_name', 'again')",
        &[],
    )
    .unwrap();
}
