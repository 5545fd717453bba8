//! pg_dump / pg_restore of a database with migrations in flight: what comes
//! back can continue (backfill, verify, swap, complete) or roll back cleanly,
//! as the table's owner, with the generated objects as they were (owned by
//! the owner, not executable by PUBLIC, triggers firing ALWAYS).

mod common;

use std::process::Command;
use zdm_harness::cluster::Cluster;

fn one<T: for<'a> postgres::types::FromSql<'a>>(c: &mut postgres::Client, sql: &str) -> T {
    c.query_one(sql, &[])
        .unwrap_or_else(|e| panic!("{sql}: {:?}", e.as_db_error()))
        .get(0)
}

/// One statement, or several (in one implicit transaction: no CALL of a
/// procedure that commits).
fn run(c: &mut postgres::Client, sql: &str) {
    c.batch_execute(sql)
        .unwrap_or_else(|e| panic!("{sql}: {:?}", e.as_db_error()));
}

/// A session of the tables' owner (not a superuser) in database `db`.
fn as_owner(cluster: &Cluster, db: &str) -> postgres::Client {
    let mut c = cluster.connect_db(db);
    run(&mut c, "SET ROLE app_owner");
    c
}

/// orders (viewed by big_orders, referenced by refunds) and users, owned by
/// app_owner, with a shadow migration of orders and a rename of users.name,
/// each one batch into its backfill.
fn tables_mid_migration(cluster: &Cluster) {
    let mut su = cluster.connect();
    run(
        &mut su,
        "CREATE ROLE app_owner;
         GRANT CREATE ON SCHEMA public TO app_owner;",
    );
    let mut c = as_owner(cluster, "postgres");
    run(
        &mut c,
        "CREATE TABLE orders (id bigint PRIMARY KEY, amount int NOT NULL, note text);
         INSERT INTO orders SELECT g, g % 1000, 'n' || g FROM generate_series(1, 20000) g;
         CREATE VIEW big_orders AS SELECT * FROM orders WHERE amount > 500;
         CREATE TABLE refunds (id int PRIMARY KEY, order_id bigint NOT NULL REFERENCES orders);
         INSERT INTO refunds SELECT g, g * 10 FROM generate_series(1, 100) g;
         CREATE TABLE users (id int PRIMARY KEY, name text NOT NULL);
         INSERT INTO users SELECT g, 'u' || g FROM generate_series(1, 5000) g;
         SELECT zdm.create_shadow_table('public.orders',
                    ARRAY['ALTER COLUMN amount TYPE numeric(10,2)', 'ADD COLUMN tax numeric(10,2)'],
                    '{\"tax\": \"round(amount * 0.2, 2)\"}', 'orders_v2');
         SELECT zdm.rename_column('users', 'name', 'full_name', 'users_fn');
         SET zdm.batch_size = 1000;
         SELECT zdm.backfill_batch('orders_v2');
         SELECT zdm.backfill_batch('users_fn');",
    );
}

/// `pg_dump -Fc` of database postgres restored into a new database `into`.
fn dump_and_restore(cluster: &Cluster, into: &str) {
    let dump = std::env::temp_dir().join(format!("zdm-dump-{}-{into}.pgdump", cluster.port));
    let port = cluster.port.to_string();
    let conn = ["-h", "127.0.0.1", "-p", port.as_str(), "-U", "postgres"];
    let out = Command::new(cluster.tool("pg_dump"))
        .args(conn)
        .args(["-Fc", "-f", dump.to_str().unwrap(), "postgres"])
        .output()
        .expect("pg_dump runs");
    assert!(
        out.status.success(),
        "pg_dump: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    run(&mut cluster.connect(), &format!("CREATE DATABASE {into}"));
    let out = Command::new(cluster.tool("pg_restore"))
        .args(conn)
        .args(["--exit-on-error", "-d", into, dump.to_str().unwrap()])
        .output()
        .expect("pg_restore runs");
    let _ = std::fs::remove_file(&dump);
    assert!(
        out.status.success(),
        "pg_restore: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The generated objects came back as pg_zdm made them.
fn assert_generated_objects_intact(c: &mut postgres::Client) {
    let foreign: i64 = one(
        c,
        "SELECT count(*) FROM pg_proc p
          WHERE p.pronamespace = 'zdm'::regnamespace AND p.proname LIKE 'zdm\\_%'
            AND (pg_get_userbyid(p.proowner) <> 'app_owner' OR has_function_privilege('public', p.oid, 'EXECUTE'))",
    );
    assert_eq!(
        foreign, 0,
        "generated functions owned by app_owner, not executable by PUBLIC"
    );
    let not_always: i64 = one(
        c,
        "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'zdm\\_%' AND tgenabled <> 'A'",
    );
    assert_eq!(not_always, 0, "sync triggers fire ALWAYS");
}

/// Old-application writes through the restored triggers, then the migration
/// carried on to its end.
fn continue_to_complete(c: &mut postgres::Client) {
    run(
        c,
        "INSERT INTO orders (id, amount, note) VALUES (30001, 700, 'after restore');
         UPDATE orders SET amount = 900 WHERE id = 2;
         INSERT INTO users (id, name) VALUES (9001, 'restored');",
    );
    run(c, "CALL zdm.backfill('orders_v2')");
    run(c, "CALL zdm.backfill('users_fn')");
    let verify: bool = one(c, "SELECT (zdm.verify('orders_v2')->>'matched')::boolean");
    assert!(verify, "the restored shadow matches its table");
    run(
        c,
        "SELECT zdm.swap_tables('orders_v2');
         INSERT INTO refunds VALUES (1000, 30001);
         SELECT zdm.complete('orders_v2');
         SELECT zdm.complete('users_fn');",
    );
    let (rows, taxed): (i64, i64) = {
        let r = c
            .query_one(
                "SELECT count(*), count(tax) FROM orders WHERE amount = (id % 1000) OR id IN (2, 30001)",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!((rows, taxed), (20001, 20001), "every order kept, every tax filled");
    let amount: String = one(c, "SELECT amount::text FROM big_orders WHERE id = 2");
    assert_eq!(amount, "900.00", "the view reads the new table");
    let name: String = one(c, "SELECT full_name FROM users WHERE id = 9001");
    assert_eq!(name, "restored");
}

#[test]
fn a_restored_migration_continues_or_rolls_back() {
    let cluster = common::cluster_with_zdm();
    tables_mid_migration(&cluster);

    // Backfilling: restore, then carry on to the end.
    dump_and_restore(&cluster, "restored_backfilling");
    let mut c = as_owner(&cluster, "restored_backfilling");
    assert_generated_objects_intact(&mut c);
    let phases: String = one(
        &mut c,
        "SELECT string_agg(name || ' ' || phase, ', ' ORDER BY name) FROM zdm.migrations",
    );
    assert_eq!(phases, "orders_v2 backfilling, users_fn backfilling");
    continue_to_complete(&mut c);

    // Swapped: restore, then roll back (the swap back) in one copy and
    // complete in another.
    let mut src = as_owner(&cluster, "postgres");
    run(&mut src, "CALL zdm.backfill('orders_v2')");
    run(&mut src, "SELECT zdm.swap_tables('orders_v2')");
    dump_and_restore(&cluster, "restored_swapped");
    let mut c = as_owner(&cluster, "restored_swapped");
    assert_generated_objects_intact(&mut c);
    run(
        &mut c,
        "INSERT INTO orders (id, amount, note, tax) VALUES (30002, 600, 'new app', 120);
         SELECT zdm.rollback('orders_v2');
         SELECT zdm.rollback('users_fn');",
    );
    let amount_type: String = one(&mut c, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'orders'::regclass AND attname = 'amount'");
    assert_eq!(amount_type, "integer", "swapped back to the original table");
    let (rows, kept): (i64, i64) = {
        let r = c
            .query_one(
                "SELECT count(*), count(*) FILTER (WHERE id = 30002 AND amount = 600) FROM orders",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(
        (rows, kept),
        (20001, 1),
        "the new application's write survived the swap back"
    );
    let leftovers: i64 = one(
        &mut c,
        "SELECT (SELECT count(*) FROM pg_class WHERE relname LIKE 'zdm\\_%' AND relnamespace = 'public'::regnamespace)
              + (SELECT count(*) FROM pg_proc WHERE proname LIKE 'zdm\\_%' AND pronamespace = 'zdm'::regnamespace)
              + (SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'zdm\\_%')",
    );
    assert_eq!(leftovers, 0, "rollback removed every generated object");
    let columns: String = one(&mut c, "SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute WHERE attrelid = 'users'::regclass AND attnum > 0 AND NOT attisdropped");
    assert_eq!(columns, "id,name");

    dump_and_restore(&cluster, "restored_swapped_2");
    let mut c = as_owner(&cluster, "restored_swapped_2");
    run(&mut c, "SELECT zdm.complete('orders_v2')");
    run(&mut c, "CALL zdm.backfill('users_fn')");
    run(&mut c, "SELECT zdm.complete('users_fn')");
    let done: i64 = one(&mut c, "SELECT count(*) FROM zdm.migrations WHERE phase = 'completed'");
    assert_eq!(done, 2);
}
