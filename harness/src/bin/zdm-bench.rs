//! pg_zdm benchmarks: ratios measured side by side in one run, on one cluster.
//!
//!     zdm-bench backfill [--rows N] [--memory-rows M]
//!
//! backfill: rows/s of `CALL zdm.backfill()` (default settings, a COMMIT after
//! every batch) against one single `UPDATE t SET new = old` doing the same work
//! through the same sync trigger, on two identical tables; then backend memory
//! after backfilling N and M rows, to show it stays flat.

use std::time::Instant;
use zdm_harness::cluster::{Cluster, ClusterOptions};

fn arg(args: &[String], name: &str, default: i64) -> i64 {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().expect("a number"))
        .unwrap_or(default)
}

fn make_table(c: &mut postgres::Client, name: &str, rows: i64) {
    c.batch_execute(&format!(
        "DROP TABLE IF EXISTS {name};
         CREATE TABLE {name} (id bigint PRIMARY KEY, name text NOT NULL, email text, created_at timestamptz DEFAULT now());
         INSERT INTO {name} (id, name, email) SELECT g, 'user ' || g, 'u' || g || '@example.com' FROM generate_series(1, {rows}) g;"
    ))
    .unwrap();
    c.batch_execute(&format!("VACUUM ANALYZE {name}")).unwrap();
    c.batch_execute("CHECKPOINT").unwrap();
}

/// Backend memory of this session: PostgreSQL's memory contexts and the
/// process's private (anonymous) resident memory, in kB.
fn backend_memory_kb(c: &mut postgres::Client) -> (i64, i64) {
    let contexts: i64 = c.query_one("SELECT (sum(total_bytes) / 1024)::int8 FROM pg_backend_memory_contexts", &[]).unwrap().get(0);
    let pid: i32 = c.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let anon = status
        .lines()
        .find(|l| l.starts_with("RssAnon:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(-1);
    (contexts, anon)
}

fn backfill(cluster: &Cluster, rows: i64, memory_rows: i64) {
    let mut c = cluster.connect();
    println!("backfill benchmark: {rows} rows, PostgreSQL 15, pg_zdm default settings\n");
    let mut results = Vec::new();
    // Twice each, alternating, so that neither side always runs on a warmer cache.
    for round in 0..2 {
        for side in ["single UPDATE", "zdm.backfill"] {
            let t = format!("bench_{}_{round}", if side == "zdm.backfill" { "zdm" } else { "single" });
            make_table(&mut c, &t, rows);
            let m: String = c.query_one(&format!("SELECT zdm.rename_column('{t}', 'name', 'full_name')"), &[]).unwrap().get(0);
            let started = Instant::now();
            if side == "zdm.backfill" {
                c.batch_execute(&format!("CALL zdm.backfill('{m}')")).unwrap();
            } else {
                c.batch_execute(&format!("UPDATE {t} SET full_name = name WHERE full_name IS DISTINCT FROM name")).unwrap();
            }
            let secs = started.elapsed().as_secs_f64();
            let batches: i64 = c.query_one("SELECT batches FROM zdm.migrations WHERE name = $1", &[&m]).unwrap().get(0);
            results.push((side, round, secs, rows as f64 / secs, batches));
            c.execute("SELECT zdm.rollback($1)", &[&m]).unwrap();
            c.batch_execute(&format!("DROP TABLE {t}")).unwrap();
        }
    }
    println!("| run | method | seconds | rows/s | commits |");
    println!("|---|---|---:|---:|---:|");
    for (side, round, secs, rate, batches) in &results {
        println!("| {} | {side} | {secs:.2} | {rate:.0} | {} |", round + 1, if *side == "zdm.backfill" { *batches } else { 1 });
    }
    let avg = |s: &str| {
        let v: Vec<f64> = results.iter().filter(|r| r.0 == s).map(|r| r.3).collect();
        v.iter().sum::<f64>() / v.len() as f64
    };
    let ratio = avg("zdm.backfill") / avg("single UPDATE");
    println!("\nthroughput ratio zdm.backfill / single UPDATE: {ratio:.2}  (target >= 0.80)\n");

    // Memory: a fresh session backfills `rows`, another `memory_rows` rows.
    println!("| rows backfilled in one CALL | memory contexts after (kB) | private RSS after (kB) |");
    println!("|---:|---:|---:|");
    for n in [rows, memory_rows] {
        let mut s = cluster.connect();
        make_table(&mut s, "bench_mem", n);
        let m: String = s.query_one("SELECT zdm.rename_column('bench_mem', 'name', 'full_name')", &[]).unwrap().get(0);
        s.batch_execute(&format!("CALL zdm.backfill('{m}')")).unwrap();
        let (ctx, anon) = backend_memory_kb(&mut s);
        println!("| {n} | {ctx} | {anon} |");
        s.execute("SELECT zdm.rollback($1)", &[&m]).unwrap();
        s.batch_execute("DROP TABLE bench_mem").unwrap();
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let what = args.get(1).map(String::as_str).unwrap_or("backfill");
    let rows = arg(&args, "--rows", 1_000_000);
    let memory_rows = arg(&args, "--memory-rows", 4 * rows);
    let cluster = Cluster::start(&ClusterOptions::default());
    cluster.connect().batch_execute("CREATE EXTENSION pg_zdm").unwrap();
    match what {
        "backfill" => backfill(&cluster, rows, memory_rows),
        other => {
            eprintln!("unknown benchmark {other}; known: backfill");
            std::process::exit(2);
        }
    }
}
