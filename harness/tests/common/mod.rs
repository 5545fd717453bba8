//! Shared set-up of the integration tests.
#![allow(dead_code)]

use zdm_harness::cluster::{Cluster, ClusterOptions};

/// A fresh cluster with pg_zdm created in database `postgres`.
pub fn cluster_with_zdm() -> Cluster {
    let c = Cluster::start(&ClusterOptions::default());
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
