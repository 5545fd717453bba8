//! Least privilege with real sessions and real roles: the owner of the tables,
//! who is not a superuser, runs the users/orders case study from start to
//! complete (CALL zdm.backfill at top level, CREATE INDEX CONCURRENTLY from
//! zdm.pending_statements, verify, swap, complete) while an application role
//! writes; a third role gets 42501 from every call on those migrations.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use zdm_harness::cluster::Cluster;

fn connect_as(cluster: &Cluster, role: &str) -> postgres::Client {
    let url = format!("host=127.0.0.1 port={} user={role} dbname=postgres", cluster.port);
    postgres::Client::connect(&url, postgres::NoTls).unwrap_or_else(|e| panic!("connect as {role}: {e}"))
}

/// The application: inserts and updates through the table names it knows, as
/// a role with only those rights, until told to stop. Returns its errors.
fn app_writer(cluster: &Cluster, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Vec<String>> {
    let mut c = connect_as(cluster, "app_writer");
    std::thread::spawn(move || {
        let mut errors = Vec::new();
        let mut i: i64 = 0;
        while !stop.load(Ordering::Relaxed) {
            i += 1;
            let sql = format!(
                "INSERT INTO app.orders (id, amount, note) VALUES ({}, {i} % 1000, 'app');
                 UPDATE app.orders SET amount = amount + 1 WHERE id = {};
                 UPDATE app.users SET email = 'e{i}' WHERE id = {}",
                1_000_000 + i,
                1 + i % 20_000,
                1 + i % 5_000
            );
            if let Err(e) = c.batch_execute(&sql) {
                errors.push(format!("{}: {e}", common::sqlstate(&e)));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        errors
    })
}

#[test]
fn a_table_owner_runs_the_case_study_and_an_intruder_gets_42501() {
    let cluster = common::cluster_with_zdm();
    let mut admin = cluster.connect();
    admin
        .batch_execute(
            "CREATE ROLE app_owner LOGIN; CREATE ROLE app_writer LOGIN; CREATE ROLE intruder LOGIN;
             CREATE SCHEMA app AUTHORIZATION app_owner;
             GRANT USAGE ON SCHEMA app TO app_writer, intruder;",
        )
        .unwrap();
    let mut owner = connect_as(&cluster, "app_owner");
    owner
        .batch_execute(
            "CREATE TABLE app.users (id bigint PRIMARY KEY, name text NOT NULL, email text);
             INSERT INTO app.users SELECT g, 'user ' || g, NULL FROM generate_series(1, 5000) g;
             CREATE TABLE app.orders (id bigint PRIMARY KEY, amount integer NOT NULL, note text);
             INSERT INTO app.orders SELECT g, g % 1000, 'n' FROM generate_series(1, 20000) g;
             CREATE TABLE app.refunds (id bigint PRIMARY KEY, order_id bigint NOT NULL REFERENCES app.orders);
             INSERT INTO app.refunds SELECT g, g FROM generate_series(1, 100) g;
             CREATE VIEW app.open_orders AS SELECT id, amount FROM app.orders WHERE amount > 500;
             GRANT SELECT, INSERT, UPDATE ON app.users, app.orders TO app_writer;
             GRANT SELECT ON app.users, app.orders TO intruder;",
        )
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = app_writer(&cluster, stop.clone());

    // Expand: both migrations and an index, started by the owner, each in its
    // own transaction (one transaction would hold the first one's locks on
    // users while the second waits for orders, which a writer holds while it
    // waits for users: pg_zdm would give up after zdm.lock_attempts).
    for start in [
        "SELECT zdm.rename_column('app.users', 'name', 'full_name', 'users_full_name')",
        "SELECT zdm.create_shadow_table('app.orders', ARRAY['ALTER COLUMN amount TYPE bigint'], NULL, 'orders_v2')",
        "SELECT zdm.create_index('app.users', 'users_email', '(email)', 'users_email_idx')",
    ] {
        owner.batch_execute(start).unwrap_or_else(|e| panic!("{start}: {e}"));
    }

    // The intruder: 42501 on every call, and nothing changes.
    let mut intruder = connect_as(&cluster, "intruder");
    let calls = [
        "CALL zdm.backfill('users_full_name')",
        "SELECT zdm.backfill_batch('orders_v2')",
        "SELECT zdm.verify('orders_v2')",
        "SELECT zdm.swap_tables('orders_v2')",
        "SELECT zdm.complete('users_full_name')",
        "SELECT zdm.rollback('orders_v2')",
        "SELECT zdm.pause('orders_v2')",
        "SELECT zdm.resume('orders_v2')",
        "SELECT zdm.set_backfill_settings('orders_v2', '{\"batch_size\": 1}')",
        "SELECT zdm.schedule_backfill('orders_v2')",
        "SELECT zdm.unschedule_backfill('orders_v2')",
        "SELECT * FROM zdm.pending_statements('users_email_idx')",
        "SELECT zdm.drop_column('app.orders', 'note')",
        "SET zdm.catalog_write = on; UPDATE zdm.migrations SET plan = '{}'",
        "DELETE FROM zdm.events",
    ];
    for call in calls {
        let err = intruder.batch_execute(call).expect_err(call);
        assert_eq!(common::sqlstate(&err), "42501", "{call}: {err}");
        intruder.batch_execute("RESET zdm.catalog_write").unwrap();
    }
    let pending: i64 = common::one(&mut intruder, "SELECT count(*) FROM zdm.pending_statements()");
    assert_eq!(pending, 0, "the intruder sees no statement to run");
    let phases: String = common::one(
        &mut admin,
        "SELECT string_agg(name || '=' || phase, ',' ORDER BY name) FROM zdm.migrations",
    );
    assert_eq!(
        phases,
        "orders_v2=started,users_email_idx=backfilled,users_full_name=started"
    );

    // Migrate, as the owner, at top level.
    owner.batch_execute("CALL zdm.backfill('users_full_name')").unwrap();
    owner.batch_execute("CALL zdm.backfill('orders_v2')").unwrap();
    let statements: Vec<String> = owner
        .query("SELECT statement FROM zdm.pending_statements()", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(statements.len(), 1, "{statements:?}");
    for s in &statements {
        owner.batch_execute(s).unwrap();
    }
    let verify: String = common::one(&mut owner, "SELECT zdm.verify('orders_v2')::text");
    assert!(verify.contains("\"matched\": true"), "{verify}");
    owner.batch_execute("SELECT zdm.swap_tables('orders_v2')").unwrap();
    std::thread::sleep(Duration::from_millis(300));

    // Contract.
    for m in ["users_full_name", "orders_v2", "users_email_idx"] {
        owner.batch_execute(&format!("SELECT zdm.complete('{m}')")).unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let errors = writer.join().unwrap();
    assert!(errors.is_empty(), "the application failed: {errors:?}");

    let amount_type: String = common::one(
        &mut admin,
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'app.orders'::regclass AND attname = 'amount'",
    );
    assert_eq!(amount_type, "bigint");
    let owners: String = common::one(
        &mut admin,
        "SELECT string_agg(DISTINCT pg_get_userbyid(relowner)::text, ',') FROM pg_class
          WHERE relnamespace = 'app'::regnamespace AND relkind IN ('r', 'v')",
    );
    assert_eq!(owners, "app_owner");
    let left: i64 = common::one(
        &mut admin,
        "SELECT count(*) FROM pg_proc WHERE pronamespace = 'zdm'::regnamespace
            AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.objid = pg_proc.oid AND d.deptype = 'e')",
    );
    assert_eq!(left, 0, "complete dropped every generated function");
    let unfilled: i64 = common::one(&mut admin, "SELECT count(*) FROM app.users WHERE full_name IS NULL");
    assert_eq!(unfilled, 0);
    let refunds_fk: i64 = common::one(
        &mut admin,
        "SELECT count(*) FROM pg_constraint WHERE conrelid = 'app.refunds'::regclass AND confrelid = 'app.orders'::regclass AND convalidated",
    );
    assert_eq!(refunds_fk, 1, "the foreign key follows the new table");
    let superuser_events: i64 = common::one(
        &mut admin,
        "SELECT count(*) FROM zdm.events WHERE by_user <> 'app_owner'",
    );
    assert_eq!(superuser_events, 0, "every event names the owner");
}

/// A superuser schedules the backfill of an owner's table (the job is the
/// superuser's); the owner rolls the migration back: the job goes with it.
#[test]
fn the_owner_removes_a_job_a_superuser_scheduled() {
    let cluster = Cluster::start(&zdm_harness::cluster::ClusterOptions {
        pg_cron: true,
        ..Default::default()
    });
    let mut admin = cluster.connect();
    admin
        .batch_execute(
            "CREATE EXTENSION pg_cron; CREATE EXTENSION pg_zdm;
             CREATE ROLE app_owner LOGIN;
             CREATE TABLE public.t (id int PRIMARY KEY, a text);
             INSERT INTO public.t SELECT g, 'x' FROM generate_series(1, 1000) g;
             ALTER TABLE public.t OWNER TO app_owner;",
        )
        .unwrap();
    let mut owner = connect_as(&cluster, "app_owner");
    owner
        .batch_execute("SELECT zdm.rename_column('public.t', 'a', 'b', 'm')")
        .unwrap();
    let job: i64 = common::one(&mut admin, "SELECT zdm.schedule_backfill('m', '0 0 31 2 *', 50)");
    let username: String = common::one(
        &mut admin,
        &format!("SELECT username::text FROM cron.job WHERE jobid = {job}"),
    );
    assert_eq!(username, "postgres");
    owner.batch_execute("SELECT zdm.rollback('m')").unwrap();
    let left: i64 = common::one(
        &mut admin,
        &format!("SELECT count(*) FROM cron.job WHERE jobid = {job}"),
    );
    assert_eq!(left, 0, "rollback removed the superuser's job");
}
