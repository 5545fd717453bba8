//! Shared set-up of the integration tests.
#![allow(dead_code)]

use zdm_harness::cluster::{Cluster, ClusterOptions};

/// A fresh cluster with pg_zdm created in database `postgres`.
pub fn cluster_with_zdm() -> Cluster {
    cluster_with_zdm_settings(&[])
}

/// The same, with these postgresql.conf lines.
pub fn cluster_with_zdm_settings(lines: &[&str]) -> Cluster {
    let c = Cluster::start(&ClusterOptions {
        extra_conf: lines.iter().map(|l| l.to_string()).collect(),
        ..ClusterOptions::default()
    });
    c.connect()
        .batch_execute("CREATE EXTENSION pg_zdm")
        .expect("CREATE EXTENSION pg_zdm");
    c
}

/// users(id, name NOT NULL, email) with `rows` rows, and an identical oracle.
pub fn users_with_oracle(conn: &mut postgres::Client, rows: i64) {
    conn.batch_execute(&format!(
        "CREATE TABLE public.users (id bigint PRIMARY KEY, name varchar(255) NOT NULL, email text);
         INSERT INTO public.users SELECT g, 'user ' || g, CASE WHEN g % 3 = 0 THEN NULL ELSE 'u' || g || '@x' END
           FROM generate_series(1, {rows}) g;
         CREATE TABLE public.users_oracle (LIKE public.users INCLUDING ALL);
         INSERT INTO public.users_oracle SELECT * FROM public.users;"
    ))
    .expect("users table");
    // VACUUM refuses to run in the implicit block of a multi-statement query.
    conn.batch_execute("VACUUM ANALYZE public.users").unwrap();
    conn.batch_execute("VACUUM ANALYZE public.users_oracle").unwrap();
}

pub fn sqlstate(e: &postgres::Error) -> String {
    e.code().map(|c| c.code().to_string()).unwrap_or_default()
}

/// orders(id, amount integer, note, legacy) and its oracle, `rows` rows each.
pub fn orders_with_oracle(c: &mut postgres::Client, rows: i64) {
    c.batch_execute(&format!(
        "CREATE TABLE public.orders (id bigint PRIMARY KEY, amount integer NOT NULL DEFAULT 0, note text, legacy text);
         INSERT INTO public.orders SELECT g, (g * 7) % 100000, CASE WHEN g % 5 = 0 THEN NULL ELSE 'n' || g END, 'l'
           FROM generate_series(1, {rows}) g;
         -- a few large values, stored out of line (TOAST)
         UPDATE public.orders SET note = repeat(md5(id::text), 400) WHERE id % 10000 = 7;
         CREATE TABLE public.orders_oracle AS SELECT id, amount, note FROM public.orders;
         ALTER TABLE public.orders_oracle ADD PRIMARY KEY (id);"
    ))
    .unwrap();
    c.batch_execute("VACUUM ANALYZE public.orders").unwrap();
}

/// Clients of orders (amount int, `other_col`), key updates included.
pub fn orders_target(other_col: &str, rows: i64) -> zdm_harness::load::Target {
    zdm_harness::load::Target {
        table: "public.orders".into(),
        key: "id".into(),
        value_col: "amount".into(),
        other_col: other_col.into(),
        oracle: "public.orders_oracle".into(),
        oracle_value_col: "amount".into(),
        oracle_other_col: "note".into(),
        initial_rows: rows,
        value_is_int: true,
        key_updates: true,
    }
}

/// Only a crash itself may fail client statements (connection lost, shutdown).
pub fn crash_errors_only(reports: &[zdm_harness::load::ClientReport]) {
    for r in reports {
        for e in &r.errors {
            assert!(
                e.sqlstate == "connection" || e.sqlstate.starts_with("57P") || e.sqlstate.starts_with("08"),
                "[{}] unexpected client error {} {} -- {}",
                r.name,
                e.sqlstate,
                e.message,
                e.statement
            );
        }
    }
}

/// What `SELECT statement FROM zdm.pending_statements(m) \gexec` does: each at top level.
pub fn run_pending(c: &mut postgres::Client, m: &str) {
    let stmts: Vec<String> = c
        .query("SELECT statement FROM zdm.pending_statements($1)", &[&m])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    for s in stmts {
        c.batch_execute(&s).unwrap_or_else(|e| panic!("{s}: {e}"));
    }
}

/// `format_type` of a column, e.g. `numeric(10,2)`.
pub fn column_type(c: &mut postgres::Client, table: &str, column: &str) -> String {
    c.query_one(
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = $1::text::regclass AND attname = $2::text",
        &[&table, &column],
    )
    .unwrap()
    .get(0)
}
