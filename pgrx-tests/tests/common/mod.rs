//! Shared set-up of the integration tests.
#![allow(dead_code)]

use zdm_harness::cluster::{Cluster, ClusterOptions};
#[allow(unused_imports)]
pub use zdm_harness::fixtures::{orders_target, orders_with_oracle, users_with_oracle};

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

pub fn sqlstate(e: &postgres::Error) -> String {
    e.code().map(|c| c.code().to_string()).unwrap_or_default()
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

/// What `SELECT statement FROM zdm.pending_statements(m) \gexec` does: each
/// at top level. Named (`contract`), it also gives drop_index's `DROP INDEX
/// CONCURRENTLY`, which belongs just before complete; otherwise the builds only.
pub fn run_pending(c: &mut postgres::Client, m: &str, contract: bool) {
    let sql = if contract {
        "SELECT statement FROM zdm.pending_statements($1)"
    } else {
        "SELECT statement FROM zdm.pending_statements() WHERE migration = $1"
    };
    let stmts: Vec<String> = c.query(sql, &[&m]).unwrap().iter().map(|r| r.get(0)).collect();
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

/// The first column of the one row `sql` returns.
pub fn one<T: for<'a> postgres::types::FromSql<'a>>(c: &mut postgres::Client, sql: &str) -> T {
    c.query_one(sql, &[]).unwrap_or_else(|e| panic!("{sql}: {e}")).get(0)
}
