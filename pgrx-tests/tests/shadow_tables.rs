//! Shadow tables under a live load: create_shadow_table → backfill → verify →
//! swap_tables → complete (or rollback, before or after the swap), with
//! clients inserting, updating (the key too, and to NULL), deleting and reading
//! the whole time, an oracle receiving the same writes in the same
//! transactions, and a prober measuring how long readers wait.

mod common;

use std::time::{Duration, Instant};
use zdm_harness::load::{oracle_diff, report_errors, Client, ClientReport, Target};
use zdm_harness::prober::Prober;

fn spawn(url: &str, t: &Target, from: u32, n: u32, epoch: Instant) -> Vec<Client> {
    (from..from + n)
        .map(|i| Client::spawn(&format!("client{i}"), url, t.clone(), i, epoch))
        .collect()
}

fn stop(clients: Vec<Client>) -> Vec<ClientReport> {
    clients.into_iter().map(|c| c.stop()).collect()
}

/// The value of a jsonb expression.
fn json(c: &mut postgres::Client, expr: &str) -> serde_json::Value {
    let sql = format!("SELECT ({expr})::text");
    let text: String = c.query_one(&sql, &[]).unwrap_or_else(|e| panic!("{sql}: {e}")).get(0);
    serde_json::from_str(&text).unwrap()
}

fn schema_dump(cluster: &zdm_harness::cluster::Cluster) -> String {
    cluster.schema_only(&["--exclude-schema", "zdm"])
}

fn assert_no_errors(reports: &[ClientReport]) {
    let statements: u64 = reports.iter().map(|r| r.statements).sum();
    let errors = report_errors(reports);
    assert_eq!(errors, 0, "{errors} failed client statements of {statements}");
    assert!(statements > 500, "the load ran: {statements} statements");
}

fn assert_equals_oracle(admin: &mut postgres::Client, value: &str, other: &str) {
    let diff = oracle_diff(
        admin,
        &format!("SELECT id, ({value})::int8, {other} FROM public.orders"),
        "SELECT id, amount::int8, note FROM public.orders_oracle",
        10,
    );
    assert!(diff.is_empty(), "table differs from the oracle:\n{}", diff.join("\n"));
}

/// The orders restructuring (amount to numeric, currency and tax added), on 1,000,000 rows, start to complete.
#[test]
fn orders_restructure_under_load_start_to_complete() {
    const ROWS: i64 = 1_000_000;
    let cluster = common::cluster_with_zdm();
    let mut admin = cluster.connect();
    common::orders_with_oracle(&mut admin, ROWS);
    let url = cluster.url("postgres");
    let epoch = Instant::now();
    let prober = Prober::spawn(&url, "public.orders", epoch);
    let t = common::orders_target("note", ROWS);
    let clients = spawn(&url, &t, 0, 4, epoch);
    std::thread::sleep(Duration::from_secs(1));

    let m: String = admin
        .query_one(
            "SELECT zdm.create_shadow_table('public.orders',
                 ARRAY['ALTER COLUMN amount TYPE numeric(10,2)',
                       'ADD COLUMN currency varchar(3) NOT NULL DEFAULT ''EUR''',
                       'ADD COLUMN tax_amount numeric(10,2)'],
                 '{\"tax_amount\": \"round(amount * 0.2, 2)\"}', 'orders_v2')",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(m, "orders_v2");
    let mut runner = cluster.connect();
    runner.batch_execute("CALL zdm.backfill('orders_v2')").unwrap();
    std::thread::sleep(Duration::from_secs(1));

    // Verify under load: one snapshot, so concurrent writes do not show as differences.
    let v = json(&mut admin, "zdm.verify('orders_v2')");
    assert_eq!(v["matched"], true, "{v}");
    assert!(v["source_rows"].as_i64().unwrap() > ROWS / 2, "{v}");
    assert_eq!(v["not_compared"], serde_json::json!(["currency"]), "{v}");

    let swap = json(&mut admin, "zdm.swap_tables('orders_v2')");
    eprintln!("swap: {swap}");
    let held = swap["lock_held_ms"].as_f64().unwrap();
    assert!(held <= 50.0, "ACCESS EXCLUSIVE held {held} ms: {swap}");
    std::thread::sleep(Duration::from_secs(2));

    // After the swap the table is the new one: writes keep flowing through the same statements.
    let ty = common::column_type(&mut admin, "public.orders", "amount");
    assert_eq!(ty, "numeric(10,2)");
    admin.batch_execute("SELECT zdm.complete('orders_v2')").unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let reports = stop(clients);
    let probe = prober.stop();

    assert_no_errors(&reports);
    assert_equals_oracle(&mut admin, "amount", "note");
    // tax_amount = round(amount * 0.2, 2) was checked on every row by verify
    // (it compares column_map columns); the default filled currency everywhere.
    assert!(v["columns"].to_string().contains("tax_amount"), "{v}");
    let no_currency: i64 = admin
        .query_one(
            "SELECT count(*) FROM public.orders WHERE currency IS DISTINCT FROM 'EUR'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(no_currency, 0);
    let names: Vec<String> = admin
        .query(
            "SELECT relname::text FROM pg_class WHERE relname LIKE 'zdm%' OR relname LIKE 'orders%' ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        names,
        ["orders", "orders_oracle", "orders_oracle_pkey", "orders_pkey"],
        "{names:?}"
    );
    let longest = probe.longest_wait_ms();
    eprintln!("prober longest wait {longest:.1} ms; swap held {held} ms");
    assert!(longest < 150.0, "readers waited {longest} ms");
}

/// A shadow that renames and drops columns: old-structure clients stop before
/// the swap, new-structure ones start after it. Then a rollback after the swap:
/// the original is back, with every write made after the swap.
#[test]
fn rename_and_drop_then_rollback_after_the_swap() {
    const ROWS: i64 = 100_000;
    let cluster = common::cluster_with_zdm();
    let mut admin = cluster.connect();
    common::orders_with_oracle(&mut admin, ROWS);
    // Dependents the swap back must put back on the original.
    admin
        .batch_execute(
            "CREATE VIEW public.v_amounts AS SELECT id, amount FROM public.orders;
             CREATE PUBLICATION pub_orders FOR TABLE public.orders;
             CREATE TABLE public.refs (id int PRIMARY KEY, order_id bigint REFERENCES public.orders (id));",
        )
        .unwrap();
    let before = schema_dump(&cluster);
    let url = cluster.url("postgres");
    let epoch = Instant::now();
    let old_clients = spawn(&url, &common::orders_target("note", ROWS), 0, 3, epoch);
    std::thread::sleep(Duration::from_millis(500));
    admin
        .batch_execute(
            "SELECT zdm.create_shadow_table('public.orders',
                 ARRAY['RENAME COLUMN note TO remark', 'DROP COLUMN legacy'], NULL, 'orders_v3');",
        )
        .unwrap();
    let mut runner = cluster.connect();
    runner.batch_execute("CALL zdm.backfill('orders_v3', 2000)").unwrap();
    let v = json(&mut admin, "zdm.verify('orders_v3')");
    assert_eq!(v["matched"], true, "{v}");
    let mut reports = stop(old_clients);
    admin.batch_execute("SELECT zdm.swap_tables('orders_v3')").unwrap();
    let new_clients = spawn(&url, &common::orders_target("remark", ROWS), 10, 3, epoch);
    std::thread::sleep(Duration::from_secs(2));
    reports.extend(stop(new_clients));
    assert_no_errors(&reports);
    assert_equals_oracle(&mut admin, "amount", "remark");

    // Undo the swap: the old table comes back with every write made since.
    admin.batch_execute("SELECT zdm.rollback('orders_v3')").unwrap();
    assert_equals_oracle(&mut admin, "amount", "note");
    assert_eq!(schema_dump(&cluster), before, "schema after rollback");
    let phase: String = admin
        .query_one("SELECT phase FROM zdm.migrations WHERE name = 'orders_v3'", &[])
        .unwrap()
        .get(0);
    assert_eq!(phase, "rolled_back");
}

/// Rollback before the swap, mid-backfill, under load: as if nothing happened.
#[test]
fn rollback_before_the_swap_under_load() {
    const ROWS: i64 = 100_000;
    let cluster = common::cluster_with_zdm();
    let mut admin = cluster.connect();
    common::orders_with_oracle(&mut admin, ROWS);
    let before = schema_dump(&cluster);
    let url = cluster.url("postgres");
    let epoch = Instant::now();
    let clients = spawn(&url, &common::orders_target("note", ROWS), 0, 3, epoch);
    admin
        .batch_execute(
            "SELECT zdm.create_shadow_table('public.orders', ARRAY['ALTER COLUMN amount TYPE bigint'], NULL, 'widen')",
        )
        .unwrap();
    for _ in 0..5 {
        admin.batch_execute("SELECT zdm.backfill_batch('widen', 5000)").unwrap();
    }
    std::thread::sleep(Duration::from_millis(500));
    admin.batch_execute("SELECT zdm.rollback('widen')").unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let reports = stop(clients);
    assert_no_errors(&reports);
    assert_equals_oracle(&mut admin, "amount", "note");
    assert_eq!(schema_dump(&cluster), before);
}

/// Views on views, foreign keys from two tables, an identity column, grants to
/// two roles, an RLS policy, a user trigger, a publication and a replica
/// identity index: all work after the swap and after complete, and ids
/// continue above every id handed out before.
#[test]
fn dependents_follow_the_swap() {
    let cluster = common::cluster_with_zdm();
    let mut admin = cluster.connect();
    admin
        .batch_execute(
            "CREATE ROLE app_rw; CREATE ROLE app_ro;
             CREATE TABLE public.orders (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                                         customer_id int NOT NULL, amount integer NOT NULL, tenant text NOT NULL DEFAULT 'a');
             CREATE INDEX orders_by_customer ON public.orders (customer_id);
             COMMENT ON TABLE public.orders IS 'the orders';
             CREATE TABLE public.audit (id serial PRIMARY KEY, order_id bigint, op text);
             CREATE FUNCTION public.audit_fn() RETURNS trigger LANGUAGE plpgsql AS
               $$ BEGIN INSERT INTO public.audit (order_id, op) VALUES (NEW.id, TG_OP); RETURN NEW; END $$;
             CREATE TRIGGER orders_audit AFTER INSERT ON public.orders FOR EACH ROW EXECUTE FUNCTION public.audit_fn();
             CREATE TABLE public.lines (id serial PRIMARY KEY, order_id bigint NOT NULL REFERENCES public.orders (id) ON DELETE CASCADE);
             CREATE TABLE public.refunds (id serial PRIMARY KEY, order_id bigint REFERENCES public.orders (id));
             GRANT SELECT, INSERT, UPDATE, DELETE ON public.orders TO app_rw;
             GRANT ALL ON public.lines, public.lines_id_seq, public.audit, public.audit_id_seq TO app_rw;
             GRANT SELECT ON public.orders TO app_ro;
             ALTER TABLE public.orders ENABLE ROW LEVEL SECURITY;
             CREATE POLICY tenant_a ON public.orders FOR ALL TO app_rw USING (tenant = 'a');
             INSERT INTO public.orders (customer_id, amount, tenant) SELECT g % 10, g, CASE WHEN g % 4 = 0 THEN 'b' ELSE 'a' END
               FROM generate_series(1, 5000) g;
             INSERT INTO public.lines (order_id) SELECT id FROM public.orders WHERE id <= 100;
             INSERT INTO public.refunds (order_id) VALUES (5);
             CREATE VIEW public.v_orders AS SELECT id, amount, tenant FROM public.orders;
             CREATE VIEW public.v_big WITH (security_barrier) AS SELECT id FROM public.v_orders WHERE amount > 10;
             GRANT SELECT ON public.v_big TO app_ro;
             CREATE PUBLICATION pub_orders FOR TABLE public.orders;
             ALTER TABLE public.orders REPLICA IDENTITY USING INDEX orders_pkey;",
        )
        .unwrap();
    let before = schema_dump(&cluster);
    let max_before: i64 = admin
        .query_one("SELECT max(id) FROM public.orders", &[])
        .unwrap()
        .get(0);
    admin
        .batch_execute(
            "SELECT zdm.create_shadow_table('public.orders', ARRAY['ALTER COLUMN amount TYPE numeric(12,2)'], NULL, 'deps');
             SELECT zdm.backfill_batch('deps', 100000); SELECT zdm.backfill_batch('deps');",
        )
        .unwrap();
    let swap = json(&mut admin, "zdm.swap_tables('deps')");
    let repointed = swap["repointed"].to_string();
    for what in [
        "trigger orders_audit",
        "identity sequence",
        "app_rw",
        "app_ro",
        "row level security",
        "policy tenant_a",
        "view public.v_orders",
        "view public.v_big",
        "lines_order_id_fkey",
        "refunds_order_id_fkey",
        "publication pub_orders",
        "replica identity",
    ] {
        assert!(repointed.contains(what), "{what} not in {repointed}");
    }

    let check = |admin: &mut postgres::Client, stage: &str| {
        // Roles keep their rights, RLS still filters for app_rw.
        admin.batch_execute("SET ROLE app_rw").unwrap();
        let visible: i64 = admin
            .query_one("SELECT count(*) FROM public.orders", &[])
            .unwrap()
            .get(0);
        let id: i64 = admin
            .query_one(
                "INSERT INTO public.orders (customer_id, amount) VALUES (1, 5) RETURNING id",
                &[],
            )
            .unwrap()
            .get(0);
        admin
            .execute("INSERT INTO public.lines (order_id) VALUES ($1)", &[&id])
            .unwrap();
        admin.batch_execute("RESET ROLE; SET ROLE app_ro").unwrap();
        let big: i64 = admin
            .query_one("SELECT count(*) FROM public.v_big", &[])
            .unwrap()
            .get(0);
        admin.batch_execute("RESET ROLE").unwrap();
        let total: i64 = admin
            .query_one("SELECT count(*) FROM public.orders", &[])
            .unwrap()
            .get(0);
        assert!(
            visible < total,
            "{stage}: the policy still filters ({visible} of {total})"
        );
        assert!(big > 0, "{stage}: views answer");
        assert!(id > max_before, "{stage}: id {id} above {max_before}");
        // The user trigger fired once for that insert, and a refund still needs its order.
        let audited: i64 = admin
            .query_one("SELECT count(*) FROM public.audit WHERE order_id = $1", &[&id])
            .unwrap()
            .get(0);
        assert_eq!(audited, 1, "{stage}: audit trigger fired once");
        let e = admin
            .batch_execute("INSERT INTO public.refunds (order_id) VALUES (999999999)")
            .expect_err("FK holds");
        assert_eq!(common::sqlstate(&e), "23503", "{stage}");
        // Deleting an order cascades to its lines through the re-pointed FK.
        admin
            .execute("DELETE FROM public.orders WHERE id = $1", &[&id])
            .unwrap();
        let lines: i64 = admin
            .query_one("SELECT count(*) FROM public.lines WHERE order_id = $1", &[&id])
            .unwrap()
            .get(0);
        assert_eq!(lines, 0, "{stage}: cascade");
        id
    };
    let after_swap = check(&mut admin, "after swap");
    admin.batch_execute("SELECT zdm.complete('deps')").unwrap();
    let after_complete = check(&mut admin, "after complete");
    assert!(after_complete > after_swap);

    // Names and everything else as before; only the column type (and what a
    // view's text says about it) changed.
    let after = schema_dump(&cluster);
    let changed: Vec<(&str, &str)> = before.lines().zip(after.lines()).filter(|(a, b)| a != b).collect();
    assert_eq!(before.lines().count(), after.lines().count(), "{after}");
    for (a, b) in &changed {
        assert!(
            a.contains("amount") && b.contains("amount"),
            "unexpected schema change:\n- {a}\n+ {b}"
        );
    }
}

/// An idle-in-transaction reader holds the table: swap_tables gives up after
/// its attempts naming it, changes nothing, and readers never queue for long.
#[test]
fn swap_gives_up_behind_an_idle_reader() {
    let cluster = common::cluster_with_zdm();
    let mut admin = cluster.connect();
    common::orders_with_oracle(&mut admin, 20_000);
    admin
        .batch_execute(
            "SELECT zdm.create_shadow_table('public.orders', ARRAY['ALTER COLUMN amount TYPE bigint'], NULL, 'blocked');
             SELECT zdm.backfill_batch('blocked', 100000); SELECT zdm.backfill_batch('blocked');",
        )
        .unwrap();
    let mut blocker = cluster.connect();
    let pid: i32 = blocker.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
    blocker
        .batch_execute("BEGIN; SELECT count(*) FROM public.orders;")
        .unwrap();
    let epoch = Instant::now();
    let prober = Prober::spawn(&cluster.url("postgres"), "public.orders", epoch);
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let e = admin
        .batch_execute("SELECT zdm.swap_tables('blocked', '100ms', 3)")
        .expect_err("gives up");
    let took = started.elapsed();
    std::thread::sleep(Duration::from_millis(200));
    let probe = prober.stop();
    let db = e.as_db_error().unwrap();
    assert_eq!(db.code().code(), "55P03", "{db:?}");
    assert!(db.message().contains("after 3 attempts"), "{}", db.message());
    assert!(
        db.detail().unwrap_or_default().contains(&format!("pid {pid}")),
        "{db:?}"
    );
    assert!(took < Duration::from_secs(3), "{took:?}");
    let phase: String = admin
        .query_one("SELECT phase FROM zdm.migrations WHERE name = 'blocked'", &[])
        .unwrap()
        .get(0);
    assert_eq!(phase, "backfilled", "nothing changed");
    let ty = common::column_type(&mut admin, "public.orders", "amount");
    assert_eq!(ty, "integer");
    let longest = probe.longest_wait_ms();
    assert!(
        longest < 250.0,
        "readers waited {longest} ms behind a 100 ms lock_timeout"
    );
    // Once the reader is gone, the same call succeeds.
    blocker.batch_execute("COMMIT").unwrap();
    let swap = json(&mut admin, "zdm.swap_tables('blocked', '100ms', 3)");
    assert_eq!(swap["attempts"], 1, "{swap}");
}
