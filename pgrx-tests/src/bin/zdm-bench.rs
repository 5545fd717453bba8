//! pg_zdm benchmarks: ratios measured side by side in one run, on one cluster.
//!
//!     zdm-bench backfill [--rows N] [--memory-rows M]
//!     zdm-bench triggers [--rows N] [--seconds S]
//!     zdm-bench alter-type [--rows N] [--svg FILE]
//!     zdm-bench partitioned [--rows N]
//!
//! backfill: rows/s of `CALL zdm.backfill()` (default settings, a COMMIT after
//! every batch), and of the background runner (`zdm.run()` then `CALL
//! zdm.wait()`), against one single `UPDATE t SET new = old` doing the same work
//! through the same sync trigger, on two identical tables; then backend memory
//! after backfilling N and M rows, to show it stays flat.
//!
//! `ZDM_BENCH_CONF="a = 1;b = 2"` adds postgresql.conf lines to the benchmark's
//! cluster, e.g. `zdm.batch_delay = '100ms'` to see what a throttle changes.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use zdm_harness::cluster::{Cluster, ClusterOptions};
use zdm_harness::fixtures::{status_orders_target, status_orders_with_oracle};
use zdm_harness::load::{oracle_diff, report_errors, Client, Target};
use zdm_harness::prober::Prober;
use zdm_harness::stats::Latencies;

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
    let contexts: i64 = c
        .query_one(
            "SELECT (sum(total_bytes) / 1024)::int8 FROM pg_backend_memory_contexts",
            &[],
        )
        .unwrap()
        .get(0);
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
    // Each side on its own fresh table; three times each, alternating, so that
    // neither side always runs on a warmer cache.
    let sides = [
        ("column", "single UPDATE"),
        ("column", "zdm.backfill"),
        ("column", "zdm.run"),
        ("shadow", "single INSERT ... SELECT"),
        ("shadow", "zdm.backfill"),
        ("shadow", "zdm.run"),
    ];
    for round in 0..3 {
        for (i, (kind, side)) in sides.iter().enumerate() {
            let t = format!("bench_{i}_{round}");
            make_table(&mut c, &t, rows);
            let start = if *kind == "column" {
                format!("SELECT zdm.rename_column('{t}', 'name', 'full_name')")
            } else {
                format!("SELECT zdm.create_shadow_table('{t}', ARRAY['ALTER COLUMN name TYPE varchar(100)'])")
            };
            // The hand-written way: one statement fills a shadow that has its
            // indexes (LIKE ... INCLUDING ALL); pg_zdm builds them after its copy.
            let indexed = *side == "single INSERT ... SELECT";
            if indexed {
                c.batch_execute("SET zdm.shadow_indexes_after_copy = off").unwrap();
            }
            let m: String = c.query_one(&start, &[]).unwrap().get(0);
            c.batch_execute("RESET zdm.shadow_indexes_after_copy").unwrap();
            let shadow = format!("zdm_shadow_{m}");
            let started = Instant::now();
            match *side {
                "zdm.backfill" => c.batch_execute(&format!("CALL zdm.backfill('{m}')")).unwrap(),
                // The background runner: from the call to the end of its work.
                "zdm.run" => {
                    c.batch_execute(&format!("SELECT zdm.run('{m}')")).unwrap();
                    c.batch_execute(&format!("CALL zdm.wait('{m}')")).unwrap()
                }
                "single UPDATE" => c
                    .batch_execute(&format!(
                        "UPDATE {t} SET full_name = name WHERE full_name IS DISTINCT FROM name"
                    ))
                    .unwrap(),
                _ => c
                    .batch_execute(&format!(
                        "INSERT INTO {shadow} (id, name, email, created_at) SELECT id, name, email, created_at FROM {t}"
                    ))
                    .unwrap(),
            }
            let secs = started.elapsed().as_secs_f64();
            let batches: i64 = c
                .query_one("SELECT batches FROM zdm.migrations WHERE name = $1", &[&m])
                .unwrap()
                .get(0);
            results.push((*kind, *side, round, secs, rows as f64 / secs, batches));
            c.execute("SELECT zdm.rollback($1)", &[&m]).unwrap();
            c.batch_execute(&format!("DROP TABLE {t}")).unwrap();
        }
    }
    println!("| run | migration | method | seconds | rows/s | commits |");
    println!("|---|---|---|---:|---:|---:|");
    for (kind, side, round, secs, rate, batches) in &results {
        println!(
            "| {} | {kind} | {side} | {secs:.2} | {rate:.0} | {} |",
            round + 1,
            if side.starts_with("zdm.") { *batches } else { 1 }
        );
    }
    let avg = |k: &str, s: &str| {
        let v: Vec<f64> = results.iter().filter(|r| r.0 == k && r.1 == s).map(|r| r.4).collect();
        v.iter().sum::<f64>() / v.len() as f64
    };
    println!(
        "\nthroughput ratio, column: zdm.backfill / single UPDATE: {:.2}  (target >= 0.80)",
        avg("column", "zdm.backfill") / avg("column", "single UPDATE")
    );
    println!(
        "throughput ratio, shadow: zdm.backfill / single INSERT ... SELECT: {:.2}  (target >= 0.80)",
        avg("shadow", "zdm.backfill") / avg("shadow", "single INSERT ... SELECT")
    );
    println!(
        "throughput ratio, column: zdm.run (background worker) / single UPDATE: {:.2}, / CALL zdm.backfill: {:.2}  (target >= 0.90)",
        avg("column", "zdm.run") / avg("column", "single UPDATE"),
        avg("column", "zdm.run") / avg("column", "zdm.backfill")
    );
    println!(
        "throughput ratio, shadow: zdm.run (background worker) / single INSERT ... SELECT: {:.2}, / CALL zdm.backfill: {:.2}  (target >= 0.90)\n",
        avg("shadow", "zdm.run") / avg("shadow", "single INSERT ... SELECT"),
        avg("shadow", "zdm.run") / avg("shadow", "zdm.backfill")
    );

    // Memory: a fresh session backfills `rows`, another `memory_rows` rows.
    println!("| rows backfilled in one CALL | memory contexts after (kB) | private RSS after (kB) |");
    println!("|---:|---:|---:|");
    for n in [rows, memory_rows] {
        let mut s = cluster.connect();
        make_table(&mut s, "bench_mem", n);
        let m: String = s
            .query_one("SELECT zdm.rename_column('bench_mem', 'name', 'full_name')", &[])
            .unwrap()
            .get(0);
        s.batch_execute(&format!("CALL zdm.backfill('{m}')")).unwrap();
        let (ctx, anon) = backend_memory_kb(&mut s);
        println!("| {n} | {ctx} | {anon} |");
        s.execute("SELECT zdm.rollback($1)", &[&m]).unwrap();
        s.batch_execute("DROP TABLE bench_mem").unwrap();
    }
}

/// Statements per second of `sql` (with $1 a random key, $2 a text) from two
/// clients for `seconds`.
fn throughput(cluster: &Cluster, sql: &str, rows: i64, seconds: u64, key_base: i64) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();
    for t in 0..2u64 {
        let (stop, count, url, sql) = (stop.clone(), count.clone(), cluster.url("postgres"), sql.to_string());
        handles.push(std::thread::spawn(move || {
            let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
            let stmt = c.prepare(&sql).unwrap();
            let mut i: i64 = 0;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                // Updates spread over the table; inserts take fresh keys per client.
                let key = if sql.starts_with("INSERT") {
                    key_base + (t as i64) * 100_000_000 + i
                } else {
                    (i * 7919 + t as i64 * 104_729) % rows + 1
                };
                c.execute(&stmt, &[&key, &format!("v{i}")]).unwrap();
                count.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::SeqCst);
    for h in handles {
        h.join().unwrap();
    }
    count.load(Ordering::SeqCst) as f64 / seconds as f64
}

/// Write overhead of sync triggers: single-row UPDATE and INSERT throughput
/// with no trigger, with pg_zdm's sync triggers, and with the hand-written
/// triggers a DBA would write for the same job, on the same table, runs interleaved.
fn triggers(cluster: &Cluster, rows: i64, seconds: u64) {
    let mut c = cluster.connect();
    make_table(&mut c, "bench_t", rows);
    c.batch_execute("ALTER TABLE bench_t ADD COLUMN full_name text")
        .unwrap();
    // A hand-written column sync trigger: fill whichever side is missing.
    c.batch_execute(
        "CREATE FUNCTION sync_full_name() RETURNS TRIGGER AS $$
         BEGIN
             IF NEW.full_name IS NULL AND NEW.name IS NOT NULL THEN NEW.full_name := NEW.name; END IF;
             IF NEW.name IS NULL AND NEW.full_name IS NOT NULL THEN NEW.name := NEW.full_name; END IF;
             RETURN NEW;
         END; $$ LANGUAGE plpgsql;",
    )
    .unwrap();
    // A hand-written shadow-table trigger, on this table's columns.
    c.batch_execute(
        "CREATE FUNCTION sync_to_bench_t_new() RETURNS TRIGGER AS $$
         BEGIN
             IF TG_OP = 'INSERT' THEN
                 INSERT INTO bench_t_new (id, name, email, created_at, full_name)
                 VALUES (NEW.id, NEW.name, NEW.email, NEW.created_at, NEW.full_name);
             ELSIF TG_OP = 'UPDATE' THEN
                 UPDATE bench_t_new SET name = NEW.name, email = NEW.email, created_at = NEW.created_at,
                        full_name = NEW.full_name
                  WHERE id = NEW.id;
             ELSIF TG_OP = 'DELETE' THEN
                 DELETE FROM bench_t_new WHERE id = OLD.id;
             END IF;
             RETURN NEW;
         END; $$ LANGUAGE plpgsql;",
    )
    .unwrap();
    // PostgreSQL's floor for any BEFORE UPDATE row trigger: the executor locks
    // the row before it even evaluates the trigger's WHEN clause.
    c.batch_execute("CREATE FUNCTION noop_trigger() RETURNS TRIGGER AS $$ BEGIN RETURN NEW; END; $$ LANGUAGE plpgsql;")
        .unwrap();
    let variants = [
        "no trigger",
        "empty BEFORE trigger, WHEN (false)",
        "pg_zdm column sync",
        "hand-written trigger",
        "pg_zdm shadow sync",
        "hand-written shadow trigger",
    ];
    let set_variant = |c: &mut postgres::Client, v: &str| {
        c.batch_execute(
            "DROP TRIGGER IF EXISTS seed_sync ON bench_t; DROP TRIGGER IF EXISTS seed_shadow ON bench_t;
             DROP TRIGGER IF EXISTS noop ON bench_t;
             DROP TABLE IF EXISTS bench_t_new;",
        )
        .unwrap();
        let m: Option<String> = c
            .query_opt(
                "SELECT name FROM zdm.migrations WHERE phase NOT IN ('completed', 'rolled_back')",
                &[],
            )
            .unwrap()
            .map(|r| r.get(0));
        if let Some(m) = m {
            c.execute("SELECT zdm.rollback($1)", &[&m]).unwrap();
        }
        match v {
            "pg_zdm column sync" => {
                c.batch_execute("ALTER TABLE bench_t DROP COLUMN full_name").unwrap();
                let m: String = c
                    .query_one("SELECT zdm.rename_column('bench_t', 'name', 'full_name')", &[])
                    .unwrap()
                    .get(0);
                // Measured after the backfill, as most of a migration's window is.
                c.batch_execute(&format!("CALL zdm.backfill('{m}')")).unwrap();
            }
            "empty BEFORE trigger, WHEN (false)" => {
                c.batch_execute("CREATE TRIGGER noop BEFORE INSERT OR UPDATE ON bench_t FOR EACH ROW WHEN (false) EXECUTE FUNCTION noop_trigger()").unwrap();
            }
            "hand-written trigger" => {
                c.batch_execute("CREATE TRIGGER seed_sync BEFORE INSERT OR UPDATE ON bench_t FOR EACH ROW EXECUTE FUNCTION sync_full_name()").unwrap();
            }
            _ => {}
        }
        if v != "pg_zdm column sync" {
            // The same table shape and content for every variant: full_name = name.
            if c.query_one("SELECT count(*) FROM pg_attribute WHERE attrelid = 'bench_t'::regclass AND attname = 'full_name' AND NOT attisdropped", &[]).unwrap().get::<_, i64>(0) == 0 {
                c.batch_execute("ALTER TABLE bench_t ADD COLUMN full_name text").unwrap();
            }
            c.batch_execute("UPDATE bench_t SET full_name = name WHERE full_name IS DISTINCT FROM name")
                .unwrap();
        }
        // Shadows last: they copy the table in the shape every variant shares.
        match v {
            "pg_zdm shadow sync" => {
                let m: String = c
                    .query_one("SELECT zdm.create_shadow_table('bench_t')", &[])
                    .unwrap()
                    .get(0);
                // verify, as before a swap: it also lets inserts of new keys
                // skip the notes probe once the copy phase is settled.
                c.batch_execute(&format!("CALL zdm.backfill('{m}')")).unwrap();
                c.batch_execute(&format!("SELECT zdm.verify('{m}')")).unwrap();
            }
            "hand-written shadow trigger" => {
                c.batch_execute(
                    "CREATE TABLE bench_t_new (LIKE bench_t INCLUDING ALL);
                     INSERT INTO bench_t_new SELECT * FROM bench_t;
                     CREATE TRIGGER seed_shadow AFTER INSERT OR UPDATE OR DELETE ON bench_t
                         FOR EACH ROW EXECUTE FUNCTION sync_to_bench_t_new();",
                )
                .unwrap();
            }
            _ => {}
        }
        // The same physical table for every variant: setting a variant up
        // rewrites every row (a backfill, or the UPDATE filling full_name),
        // and a table bloated to twice its size by earlier variants no longer
        // fits in shared_buffers, which costs more than any trigger.
        c.batch_execute("VACUUM FULL bench_t").unwrap();
        c.batch_execute("VACUUM ANALYZE bench_t").unwrap();
        c.batch_execute("CHECKPOINT").unwrap();
    };
    let mut results: Vec<(String, &str, f64)> = Vec::new();
    let mut key_base = 10_000_000i64;
    for round in 0..2 {
        for v in variants {
            set_variant(&mut c, v);
            let upd = throughput(cluster, "UPDATE bench_t SET name = $2 WHERE id = $1", rows, seconds, 0);
            let other = throughput(cluster, "UPDATE bench_t SET email = $2 WHERE id = $1", rows, seconds, 0);
            key_base += 1_000_000_000;
            let ins = throughput(
                cluster,
                "INSERT INTO bench_t (id, name) VALUES ($1, $2)",
                rows,
                seconds,
                key_base,
            );
            eprintln!(
                "round {} {v}: {upd:.0} updates/s, {other:.0} unrelated updates/s, {ins:.0} inserts/s",
                round + 1
            );
            results.push((v.to_string(), "UPDATE", upd));
            results.push((v.to_string(), "OTHER", other));
            results.push((v.to_string(), "INSERT", ins));
        }
    }
    let avg = |v: &str, k: &str| {
        let x: Vec<f64> = results.iter().filter(|r| r.0 == v && r.1 == k).map(|r| r.2).collect();
        x.iter().sum::<f64>() / x.len() as f64
    };
    println!("write overhead of sync triggers: {rows} rows, 2 clients, {seconds} s per run, 2 rounds interleaved\n");
    println!("| trigger | UPDATE of the column /s | ratio | UPDATE of another column /s | ratio | INSERT/s | ratio |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for v in variants {
        let r = |k: &str| (avg(v, k), avg(v, k) / avg("no trigger", k));
        let ((u, ur), (o, or), (i, ir)) = (r("UPDATE"), r("OTHER"), r("INSERT"));
        println!("| {v} | {u:.0} | {ur:.2} | {o:.0} | {or:.2} | {i:.0} | {ir:.2} |");
    }
    println!("\n(targets: pg_zdm column sync >= 0.95x no trigger; pg_zdm shadow sync >= 0.75x no trigger and not below the hand-written shadow trigger)");
}

/// One method of changing orders.amount from integer to numeric(12,2) under
/// load; returns (timeline of worst client latency per 100 ms from the
/// migration's start, reader worst wait, writer worst, p99 before, p99 during, total s, errors).
fn alter_run(
    cluster: &Cluster,
    table: &str,
    rows: i64,
    method: AlterMethod,
) -> (Vec<f64>, f64, f64, f64, f64, f64, usize) {
    let mut c = cluster.connect();
    let target = status_orders_with_oracle(&mut c, table, rows, "");
    let url = cluster.url("postgres");
    let epoch = Instant::now();
    let prober = Prober::spawn(&url, table, epoch);
    let clients: Vec<Client> = (0..2)
        .map(|i| Client::spawn(&format!("c{i}"), &url, target.clone(), i, epoch))
        .collect();
    std::thread::sleep(Duration::from_secs(3));
    let start = epoch.elapsed();
    match method {
        AlterMethod::Column => {
            let m: String = c
                .query_one(
                    &format!("SELECT zdm.alter_column_type('{table}', 'amount', 'numeric(12,2)')"),
                    &[],
                )
                .unwrap()
                .get(0);
            c.batch_execute(&format!("CALL zdm.backfill('{m}')")).unwrap();
            c.execute("SELECT zdm.complete($1)", &[&m]).unwrap();
        }
        AlterMethod::Shadow => {
            let m: String = c
                .query_one(
                    &format!(
                        "SELECT zdm.create_shadow_table('{table}', ARRAY['ALTER COLUMN amount TYPE numeric(12,2)'])"
                    ),
                    &[],
                )
                .unwrap()
                .get(0);
            c.batch_execute(&format!("CALL zdm.backfill('{m}')")).unwrap();
            let v: String = c.query_one("SELECT zdm.verify($1)::text", &[&m]).unwrap().get(0);
            assert!(v.contains("\"matched\": true"), "{v}");
            c.execute("SELECT zdm.swap_tables($1)", &[&m]).unwrap();
            c.execute("SELECT zdm.complete($1)", &[&m]).unwrap();
        }
        AlterMethod::Naive => {
            c.batch_execute(&format!("ALTER TABLE {table} ALTER COLUMN amount TYPE numeric(12,2)"))
                .unwrap();
        }
    }
    let end = epoch.elapsed();
    std::thread::sleep(Duration::from_secs(3));
    let reports: Vec<_> = clients.into_iter().map(Client::stop).collect();
    let probe = prober.stop();
    let errors = report_errors(&reports);
    let mut all = Latencies::default();
    for r in &reports {
        all.merge(&r.latencies);
    }
    all.merge(&probe.reads);
    let before = all.window(Duration::ZERO, start).percentile_ms(99.0);
    let during = all.window(start, end).percentile_ms(99.0);
    let writers_max = reports.iter().map(|r| r.latencies.max_ms()).fold(0.0, f64::max);
    // Timeline from 2 s before the migration to 3 s after it.
    let from = start.saturating_sub(Duration::from_secs(2));
    let shifted = Latencies {
        samples: all
            .window(from, end + Duration::from_secs(3))
            .samples
            .iter()
            .map(|(at, l)| (at - from.as_micros() as u64, *l))
            .collect(),
    };
    (
        shifted.timeline_ms(Duration::from_millis(100)),
        probe.longest_wait_ms(),
        writers_max,
        before,
        during,
        (end - start).as_secs_f64(),
        errors,
    )
}

/// An SVG chart of worst latency per 100 ms for each series.
fn svg_chart(title: &str, series: &[(&str, &str, &[f64])], path: &str) {
    let (w, h, left, bottom) = (900.0, 320.0, 60.0, 40.0);
    let n = series.iter().map(|s| s.2.len()).max().unwrap_or(1).max(1) as f64;
    let ymax = series.iter().flat_map(|s| s.2.iter().copied()).fold(10.0f64, f64::max);
    let x = |i: f64| left + i / n * (w - left - 20.0);
    let y = |v: f64| (h - bottom) - v / ymax * (h - bottom - 30.0);
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"{left}\" y=\"18\" font-size=\"14\">{title}</text>\n"
    );
    out.push_str(&format!(
        "<line x1=\"{left}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>\n",
        h - bottom,
        w - 20.0,
        h - bottom
    ));
    out.push_str(&format!(
        "<line x1=\"{left}\" y1=\"30\" x2=\"{left}\" y2=\"{}\" stroke=\"black\"/>\n",
        h - bottom
    ));
    for k in 0..=4 {
        let v = ymax * k as f64 / 4.0;
        out.push_str(&format!("<text x=\"5\" y=\"{:.0}\">{v:.0} ms</text>\n", y(v) + 4.0));
    }
    out.push_str(&format!(
        "<text x=\"{:.0}\" y=\"{}\">time (100 ms buckets; the migration starts 2 s in)</text>\n",
        left,
        h - 10.0
    ));
    for (i, (name, color, data)) in series.iter().enumerate() {
        let points: Vec<String> = data
            .iter()
            .enumerate()
            .map(|(k, v)| format!("{:.1},{:.1}", x(k as f64), y(*v)))
            .collect();
        out.push_str(&format!(
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"1.5\" points=\"{}\"/>\n",
            points.join(" ")
        ));
        out.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" fill=\"{color}\">{name}</text>\n",
            w - 260.0,
            40.0 + 16.0 * i as f64
        ));
    }
    out.push_str("</svg>\n");
    std::fs::write(path, out).unwrap();
}

/// How `alter_run` changes the column's type.
#[derive(Clone, Copy)]
enum AlterMethod {
    Naive,
    /// `zdm.alter_column_type`: a new column filled in place, then renamed.
    Column,
    /// `zdm.create_shadow_table` with the type change, then the swap.
    Shadow,
}

fn alter_type(cluster: &Cluster, rows: i64, svg: &str) {
    let naive = alter_run(cluster, "orders_naive", rows, AlterMethod::Naive);
    let zdm = alter_run(cluster, "orders_zdm", rows, AlterMethod::Column);
    let shadow = alter_run(cluster, "orders_shadow", rows, AlterMethod::Shadow);
    println!(
        "change orders.amount integer -> numeric(12,2), {rows} rows, 2 writer clients + a prober reading every 10 ms\n"
    );
    println!("| method | total s | readers' worst wait ms | writers' worst ms | p99 before ms | p99 during ms | client errors |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (name, r) in [
        ("naive ALTER TABLE ... TYPE", &naive),
        ("pg_zdm alter_column_type", &zdm),
        ("pg_zdm create_shadow_table", &shadow),
    ] {
        println!(
            "| {name} | {:.2} | {:.1} | {:.1} | {:.2} | {:.2} | {} |",
            r.5, r.1, r.2, r.3, r.4, r.6
        );
    }
    svg_chart(
        &format!("Worst client latency per 100 ms while orders.amount becomes numeric(12,2) ({rows} rows)"),
        &[
            ("naive ALTER TABLE", "#c0392b", &naive.0),
            ("pg_zdm alter_column_type", "#2471a3", &zdm.0),
            ("pg_zdm create_shadow_table", "#1e8449", &shadow.0),
        ],
        svg,
    );
    println!("\nchart: {svg}");
}

/// Rebuild a 1M-row table under load, three ways, on the same cluster:
/// pg_zdm (create_shadow_table without alterations → backfill → verify →
/// swap → complete), pg_repack, and VACUUM FULL. Two writer clients and a
/// prober run throughout; then the swap alone, with and without load.
fn rebuild(cluster: &Cluster, rows: i64) {
    let mut c = cluster.connect();
    c.batch_execute("CREATE EXTENSION pg_repack").unwrap();
    let url = cluster.url("postgres");
    let mut lines = Vec::new();
    let mut swaps = Vec::new();
    for round in 0..2 {
        for method in ["pg_zdm shadow rebuild", "pg_repack", "VACUUM FULL"] {
            let table = "public.rb";
            // some dead space for the rebuild to reclaim
            let target =
                status_orders_with_oracle(&mut c, table, rows, &format!("DELETE FROM {table} WHERE id % 10 = 0;"));
            let epoch = Instant::now();
            let prober = Prober::spawn(&url, table, epoch);
            let clients: Vec<Client> = (0..2)
                .map(|i| Client::spawn(&format!("c{i}"), &url, target.clone(), i, epoch))
                .collect();
            std::thread::sleep(Duration::from_secs(2));
            let t0 = Instant::now();
            let mut held = String::from("-");
            // pg_zdm's phases, each with when it ended (from the clients' epoch).
            let mut phase_ends: Vec<(&str, Duration)> = Vec::new();
            match method {
                "pg_zdm shadow rebuild" => {
                    phase_ends.push(("before pg_zdm began", epoch.elapsed()));
                    let m = format!("rebuild_{round}");
                    c.batch_execute(&format!(
                        "SELECT zdm.create_shadow_table('public.rb', '{{}}', NULL, '{m}')"
                    ))
                    .unwrap();
                    phase_ends.push(("start", epoch.elapsed()));
                    let started = t0.elapsed().as_secs_f64();
                    c.batch_execute(&format!("CALL zdm.backfill('{m}')")).unwrap();
                    phase_ends.push(("backfill", epoch.elapsed()));
                    let backfilled = t0.elapsed().as_secs_f64();
                    c.batch_execute(&format!("SELECT zdm.verify('{m}')")).unwrap();
                    phase_ends.push(("verify", epoch.elapsed()));
                    let verified = t0.elapsed().as_secs_f64();
                    let swap: String = c
                        .query_one(&format!("SELECT zdm.swap_tables('{m}')::text"), &[])
                        .unwrap()
                        .get(0);
                    phase_ends.push(("swap", epoch.elapsed()));
                    let swap: serde_json::Value = serde_json::from_str(&swap).unwrap();
                    held = format!("{}", swap["lock_held_ms"]);
                    c.batch_execute(&format!("SELECT zdm.complete('{m}')")).unwrap();
                    phase_ends.push(("complete", epoch.elapsed()));
                    let done = t0.elapsed().as_secs_f64();
                    eprintln!(
                        "round {} pg_zdm phases: start {started:.2} s, backfill {:.2} s, verify {:.2} s, swap + complete {:.2} s; swap: {} attempt(s), lock held {} ms, waited {} ms",
                        round + 1,
                        backfilled - started,
                        verified - backfilled,
                        done - verified,
                        swap["attempts"],
                        swap["lock_held_ms"],
                        swap["lock_wait_ms"]
                    );
                }
                "pg_repack" => {
                    let out = std::process::Command::new(cluster.tool("pg_repack"))
                        .args(["-h", "127.0.0.1", "-p", &cluster.port.to_string(), "-U", "postgres"])
                        .args(["--no-superuser-check", "--table", table, "postgres"])
                        .output()
                        .expect("pg_repack runs");
                    assert!(
                        out.status.success(),
                        "pg_repack: {}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
                _ => c.batch_execute(&format!("VACUUM FULL {table}")).unwrap(),
            }
            let total = t0.elapsed().as_secs_f64();
            std::thread::sleep(Duration::from_secs(1));
            let reports: Vec<_> = clients.into_iter().map(Client::stop).collect();
            let probe = prober.stop();
            let errors = report_errors(&reports);
            let writers_max = reports.iter().map(|r| r.latencies.max_ms()).fold(0.0, f64::max);
            if let Some(worst) = reports
                .iter()
                .max_by(|a, b| a.latencies.max_ms().total_cmp(&b.latencies.max_ms()))
            {
                let at = worst.latencies.max_at();
                let during = phase_ends.iter().find(|(_, end)| at < *end).map_or("-", |(p, _)| *p);
                eprintln!(
                    "round {} {method}: writers' worst wait began {:.2} s into the load (pg_zdm phase: {during})",
                    round + 1,
                    at.as_secs_f64()
                );
            }
            let diff = oracle_diff(
                &mut c,
                &format!("SELECT id, amount, status FROM {table}"),
                &format!("SELECT id, amount, status FROM {table}_oracle"),
                5,
            );
            eprintln!(
                "round {} {method}: {total:.2} s, readers' worst {:.1} ms, writers' worst {writers_max:.1} ms, {errors} errors, AEL {held} ms, oracle {}",
                round + 1,
                probe.longest_wait_ms(),
                if diff.is_empty() { "equal" } else { "DIFFERS" }
            );
            lines.push((
                method,
                total,
                probe.longest_wait_ms(),
                writers_max,
                errors,
                held,
                diff.is_empty(),
            ));
        }
        // The swap alone: ACCESS EXCLUSIVE held and readers' worst wait, idle and under load.
        for loaded in [false, true] {
            let name = format!("swap_{round}_{loaded}");
            let target = status_orders_with_oracle(&mut c, "public.sw", rows, "");
            c.batch_execute(&format!(
                "SELECT zdm.create_shadow_table('public.sw', ARRAY['ALTER COLUMN amount TYPE bigint'], NULL, '{name}')"
            ))
            .unwrap();
            c.batch_execute(&format!("CALL zdm.backfill('{name}')")).unwrap();
            c.batch_execute(&format!("SELECT zdm.verify('{name}')")).unwrap();
            let epoch = Instant::now();
            let prober = Prober::spawn(&url, "public.sw", epoch);
            let clients: Vec<Client> = if loaded {
                (0..2)
                    .map(|i| Client::spawn(&format!("s{i}"), &url, target.clone(), i, epoch))
                    .collect()
            } else {
                Vec::new()
            };
            std::thread::sleep(Duration::from_secs(1));
            let swap: String = c
                .query_one(&format!("SELECT zdm.swap_tables('{name}')::text"), &[])
                .unwrap()
                .get(0);
            let swap: serde_json::Value = serde_json::from_str(&swap).unwrap();
            std::thread::sleep(Duration::from_secs(1));
            let reports: Vec<_> = clients.into_iter().map(Client::stop).collect();
            let probe = prober.stop();
            let errors = report_errors(&reports);
            swaps.push((
                loaded,
                swap["lock_held_ms"].as_f64().unwrap_or(-1.0),
                probe.longest_wait_ms(),
                errors,
            ));
            c.batch_execute(&format!("SELECT zdm.complete('{name}')")).unwrap();
        }
    }
    println!("rebuild a table under load: {rows} rows (10% deleted), 2 writer clients + a prober, 2 rounds\n");
    println!("| method | round | total s | readers' worst wait ms | writers' worst ms | client errors | ACCESS EXCLUSIVE held ms | table = oracle |");
    println!("|---|---:|---:|---:|---:|---:|---:|---|");
    for (i, (m, total, r, w, e, held, ok)) in lines.iter().enumerate() {
        println!(
            "| {m} | {} | {total:.2} | {r:.1} | {w:.1} | {e} | {held} | {} |",
            i / 3 + 1,
            if *ok { "yes" } else { "NO" }
        );
    }
    let avg = |m: &str| {
        let x: Vec<f64> = lines.iter().filter(|l| l.0 == m).map(|l| l.1).collect();
        x.iter().sum::<f64>() / x.len() as f64
    };
    println!(
        "\npg_zdm total time / pg_repack's: {:.2} (target <= 1.5)",
        avg("pg_zdm shadow rebuild") / avg("pg_repack")
    );
    println!("\nswap_tables alone ({rows} rows):\n");
    println!("| load | ACCESS EXCLUSIVE held ms | readers' worst wait ms | client errors |");
    println!("|---|---:|---:|---:|");
    for (loaded, held, r, e) in &swaps {
        println!(
            "| {} | {held:.1} | {r:.1} | {e} |",
            if *loaded { "2 writers" } else { "idle" }
        );
    }
}

/// A table of `rows` rows range-partitioned by month over 16 partitions and
/// a default one, with a keyed oracle; its writer clients' target.
fn partitioned_orders(c: &mut postgres::Client, table: &str, rows: i64) -> Target {
    let mut sql = format!(
        "DROP TABLE IF EXISTS {table}; DROP TABLE IF EXISTS {table}_oracle;
         CREATE TABLE {table} (id bigint NOT NULL, day date NOT NULL DEFAULT '2023-06-15', amount integer NOT NULL DEFAULT 0,
                               status text, PRIMARY KEY (id, day)) PARTITION BY RANGE (day);
         CREATE TABLE {table}_def PARTITION OF {table} DEFAULT;"
    );
    for m in 0..16 {
        sql.push_str(&format!(
            "CREATE TABLE {table}_m{m:02} PARTITION OF {table}
               FOR VALUES FROM (DATE '2023-01-01' + INTERVAL '{m} month') TO (DATE '2023-01-01' + INTERVAL '{} month');",
            m + 1
        ));
    }
    sql.push_str(&format!(
        "INSERT INTO {table} SELECT g, DATE '2023-01-01' + (g % 510)::int, g % 100000, 'new' FROM generate_series(1, {rows}) g;
         CREATE TABLE {table}_oracle AS SELECT id, amount, status FROM {table};
         ALTER TABLE {table}_oracle ADD PRIMARY KEY (id);"
    ));
    c.batch_execute(&sql).unwrap();
    c.batch_execute(&format!("VACUUM ANALYZE {table}")).unwrap();
    c.batch_execute("CHECKPOINT").unwrap();
    status_orders_target(table, rows)
}

/// One change of a partitioned table under two writers and a prober: the
/// naive statement, or pg_zdm's migration (its top-level statements run as
/// \gexec would). (total s, readers' worst wait ms, writers' worst ms, errors).
fn partitioned_run(cluster: &Cluster, table: &str, rows: i64, sql: &str, zdm: bool) -> (f64, f64, f64, usize) {
    let mut c = cluster.connect();
    let target = partitioned_orders(&mut c, table, rows);
    let url = cluster.url("postgres");
    let epoch = Instant::now();
    let prober = Prober::spawn(&url, table, epoch);
    let clients: Vec<Client> = (0..2)
        .map(|i| Client::spawn(&format!("c{i}"), &url, target.clone(), i, epoch))
        .collect();
    std::thread::sleep(Duration::from_secs(2));
    let start = Instant::now();
    if zdm {
        let m: String = c.query_one(sql, &[]).unwrap().get(0);
        c.batch_execute(&format!("CALL zdm.backfill('{m}')")).unwrap();
        let pending: Vec<String> = c
            .query("SELECT statement FROM zdm.pending_statements($1)", &[&m])
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        for s in pending {
            c.batch_execute(&s).unwrap();
        }
        c.execute("SELECT zdm.complete($1)", &[&m]).unwrap();
    } else {
        c.batch_execute(sql).unwrap();
    }
    let total = start.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_secs(2));
    let reports: Vec<_> = clients.into_iter().map(Client::stop).collect();
    let probe = prober.stop();
    let errors = report_errors(&reports);
    let writers_max = reports.iter().map(|r| r.latencies.max_ms()).fold(0.0, f64::max);
    let diff = oracle_diff(
        &mut c,
        &format!("SELECT id, amount::int8, status FROM {table}"),
        &format!("SELECT id, amount::int8, status FROM {table}_oracle"),
        5,
    );
    assert!(diff.is_empty(), "{table}: {}", diff.join("\n"));
    (total, probe.longest_wait_ms(), writers_max, errors)
}

/// A partitioned table's column type change and index build: the naive
/// statement beside pg_zdm's migration, on identical tables.
fn partitioned(cluster: &Cluster, rows: i64) {
    let t = "porders";
    let cases = [
        (
            "ALTER TABLE porders ALTER COLUMN amount TYPE numeric(12,2)",
            false,
            "naive ALTER TABLE ... TYPE",
        ),
        (
            "SELECT zdm.alter_column_type('porders', 'amount', 'numeric(12,2)')",
            true,
            "pg_zdm alter_column_type",
        ),
        (
            "CREATE INDEX porders_status ON porders (status)",
            false,
            "naive CREATE INDEX",
        ),
        (
            "SELECT zdm.create_index('porders', 'porders_status', 'USING btree (status)')",
            true,
            "pg_zdm create_index",
        ),
    ];
    println!("partitioned table of {rows} rows (16 monthly partitions + default), 2 writer clients + a prober reading every 10 ms\n");
    println!("| change | total s | readers' worst wait ms | writers' worst ms | client errors |");
    println!("|---|---:|---:|---:|---:|");
    for (sql, zdm, name) in cases {
        let (total, readers, writers, errors) = partitioned_run(cluster, t, rows, sql, zdm);
        println!("| {name} | {total:.2} | {readers:.1} | {writers:.1} | {errors} |");
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let what = args.get(1).map(String::as_str).unwrap_or("backfill");
    let rows = arg(&args, "--rows", 1_000_000);
    let memory_rows = arg(&args, "--memory-rows", 4 * rows);
    let cluster = Cluster::start(&ClusterOptions {
        extra_conf: std::env::var("ZDM_BENCH_CONF")
            .map(|v| v.split(";").map(String::from).collect())
            .unwrap_or_default(),
        ..Default::default()
    });
    cluster.connect().batch_execute("CREATE EXTENSION pg_zdm").unwrap();
    let seconds = arg(&args, "--seconds", 10) as u64;
    let svg = args
        .iter()
        .position(|a| a == "--svg")
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| "bench-alter-type.svg".into());
    match what {
        "backfill" => backfill(&cluster, rows, memory_rows),
        "triggers" => triggers(&cluster, rows, seconds),
        "alter-type" => alter_type(&cluster, rows, &svg),
        "rebuild" => rebuild(&cluster, rows),
        "partitioned" => partitioned(&cluster, rows),
        other => {
            eprintln!("unknown benchmark {other}; known: backfill, triggers, alter-type, rebuild, partitioned");
            std::process::exit(2);
        }
    }
}
