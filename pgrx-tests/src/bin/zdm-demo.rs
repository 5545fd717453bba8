//! The pg_zdm demo: a throwaway cluster and the users/orders case study
//! under a live load, each act ending with a report: a zero-downtime rename of
//! `users.name` to `full_name` with both application versions writing, then
//! `orders` restructured through a shadow table and `swap_tables()`.
//!
//!     zdm-demo [--rows N] [--keep]

use std::time::{Duration, Instant};
use zdm_harness::cluster::{Cluster, ClusterOptions};
use zdm_harness::load::{oracle_diff, report_errors, Client, Target};
use zdm_harness::prober::Prober;
use zdm_harness::stats::Latencies;

fn arg_value(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn target(value_col: &str, rows: i64) -> Target {
    Target {
        table: "public.users".into(),
        key: "id".into(),
        value_col: value_col.into(),
        other_col: "email".into(),
        oracle: "public.users_oracle".into(),
        oracle_value_col: "name".into(),
        oracle_other_col: "email".into(),
        initial_rows: rows,
        value_is_int: false,
        key_updates: false,
    }
}

fn step(epoch: Instant, what: &str) {
    println!("[{:>7.2} s] {what}", epoch.elapsed().as_secs_f64());
}

/// Act 2, shadow tables: `orders` restructured while
/// clients insert, update (the key too), delete and read it, before, during
/// and after the swap: amount integer -> numeric(10,2) (same name, so running
/// statements stay valid), new `currency` and `tax_amount` columns.
fn act_two(cluster: &Cluster, admin: &mut postgres::Client, rows: i64, epoch: Instant) -> bool {
    let url = cluster.url("postgres");
    admin
        .batch_execute(
            "CREATE TABLE public.orders_oracle AS SELECT id, amount::numeric AS amount, note FROM public.orders;
             ALTER TABLE public.orders_oracle ADD PRIMARY KEY (id);",
        )
        .unwrap();
    let target = Target {
        table: "public.orders".into(),
        key: "id".into(),
        value_col: "amount".into(),
        other_col: "note".into(),
        oracle: "public.orders_oracle".into(),
        oracle_value_col: "amount".into(),
        oracle_other_col: "note".into(),
        initial_rows: rows,
        value_is_int: true,
        key_updates: true,
    };
    println!();
    let prober = Prober::spawn(&url, "public.orders", epoch);
    step(
        epoch,
        "act 2: 3 clients inserting, updating (keys too), deleting and reading orders",
    );
    let writers: Vec<Client> = (10..13)
        .map(|i| Client::spawn(&format!("orders-{i}"), &url, target.clone(), i, epoch))
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    let create = "SELECT zdm.create_shadow_table('orders',
        ARRAY['ALTER COLUMN amount TYPE numeric(10,2)',
              'ADD COLUMN currency varchar(3) NOT NULL DEFAULT ''EUR''',
              'ADD COLUMN tax_amount numeric(10,2)'],
        '{\"tax_amount\": \"round(amount * 0.2, 2)\"}', 'orders_v2')";
    step(
        epoch,
        &format!("EXPAND: {}", create.split_whitespace().collect::<Vec<_>>().join(" ")),
    );
    admin.batch_execute(create).expect("create_shadow_table");
    step(
        epoch,
        "MIGRATE: CALL zdm.backfill('orders_v2') -- copies existing rows, commits every batch",
    );
    let t0 = Instant::now();
    admin.batch_execute("CALL zdm.backfill('orders_v2')").expect("backfill");
    let backfill_s = t0.elapsed().as_secs_f64();
    step(
        epoch,
        "VERIFY: SELECT zdm.verify('orders_v2') -- one snapshot, writers still running",
    );
    let verify: serde_json::Value = admin
        .query_one("SELECT zdm.verify('orders_v2')::text", &[])
        .map(|r| serde_json::from_str(&r.get::<_, String>(0)).unwrap())
        .expect("verify");
    step(epoch, "SWAP: SELECT zdm.swap_tables('orders_v2')");
    let swap: serde_json::Value = admin
        .query_one("SELECT zdm.swap_tables('orders_v2')::text", &[])
        .map(|r| serde_json::from_str(&r.get::<_, String>(0)).unwrap())
        .expect("swap");
    std::thread::sleep(Duration::from_secs(2));
    step(
        epoch,
        "CONTRACT: SELECT zdm.complete('orders_v2') -- drops the old table",
    );
    admin
        .batch_execute("SELECT zdm.complete('orders_v2')")
        .expect("complete");
    std::thread::sleep(Duration::from_secs(1));
    let reports: Vec<_> = writers.into_iter().map(Client::stop).collect();
    let probe = prober.stop();
    let errors = report_errors(&reports);
    let statements: u64 = reports.iter().map(|r| r.statements).sum();
    let diff = oracle_diff(
        admin,
        "SELECT id, amount::numeric, note FROM public.orders",
        "SELECT id, amount, note FROM public.orders_oracle",
        10,
    );
    let shape: String = admin
        .query_one(
            "SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod), ', ' ORDER BY attnum)
               FROM pg_attribute WHERE attrelid = 'public.orders'::regclass AND attnum > 0 AND NOT attisdropped",
            &[],
        )
        .unwrap()
        .get(0);
    let indexes: String = admin
        .query_one(
            "SELECT string_agg(indexname, ', ' ORDER BY indexname) FROM pg_indexes WHERE tablename = 'orders'",
            &[],
        )
        .unwrap()
        .get(0);
    println!("\n== act 2 report: orders restructured through a shadow table under load ==");
    println!("  client statements          {statements}");
    println!("  client errors              {errors}");
    println!("  worst reader wait (prober) {:.1} ms", probe.longest_wait_ms());
    println!("  backfill                   {backfill_s:.1} s");
    println!(
        "  verify                     matched={} over {} rows ({} ms, {} columns compared)",
        verify["matched"],
        verify["source_rows"],
        verify["took_ms"],
        verify["columns"].as_array().map(|c| c.len()).unwrap_or(0)
    );
    println!(
        "  swap                       ACCESS EXCLUSIVE held {} ms, {} attempt(s), lock wait {} ms",
        swap["lock_held_ms"], swap["attempts"], swap["lock_wait_ms"]
    );
    println!("  re-pointed                 {}", swap["repointed"]);
    println!("  orders is now              {shape}");
    println!("  indexes                    {indexes}");
    println!(
        "  rows verified vs oracle    {}",
        if diff.is_empty() {
            "identical".to_string()
        } else {
            diff.join("; ")
        }
    );
    let ok = errors == 0 && diff.is_empty() && verify["matched"] == true && shape.contains("amount numeric(10,2)");
    println!(
        "  verdict                    {}",
        if ok { "ZERO DOWNTIME" } else { "FAILED" }
    );
    ok
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rows: i64 = arg_value(&args, "--rows")
        .map(|v| v.parse().expect("--rows N"))
        .unwrap_or(200_000);
    if args.iter().any(|a| a == "--keep") {
        std::env::set_var("ZDM_KEEP_CLUSTER", "1");
    }
    let epoch = Instant::now();
    step(epoch, "starting a throwaway PostgreSQL 15 cluster (pg_cron preloaded)");
    let cluster = Cluster::start(&ClusterOptions {
        pg_cron: true,
        ..Default::default()
    });
    let url = cluster.url("postgres");
    let mut admin = cluster.connect();
    admin
        .batch_execute("CREATE EXTENSION pg_cron; CREATE EXTENSION pg_zdm;")
        .expect("extensions");

    step(
        epoch,
        &format!("creating users and orders ({rows} rows each), and an oracle twin of users"),
    );
    zdm_harness::fixtures::case_study(&mut admin, rows);

    let prober = Prober::spawn(&url, "public.users", epoch);
    step(epoch, "old application: 2 clients writing users.name");
    let old_apps: Vec<Client> = (0..2)
        .map(|i| Client::spawn(&format!("old-app-{i}"), &url, target("name", rows), i, epoch))
        .collect();
    std::thread::sleep(Duration::from_secs(2));

    let plan: serde_json::Value = admin
        .query_one(
            r#"SELECT zdm.plan('{"op": "rename_column", "table": "public.users", "column": "name", "new_name": "full_name"}')::text"#,
            &[],
        )
        .map(|r| serde_json::from_str(&r.get::<_, String>(0)).unwrap())
        .expect("plan");
    println!("\n  zdm.plan() (dry run) of the rename:");
    for phase in ["start", "validate", "complete"] {
        for s in plan["phases"][phase].as_array().unwrap() {
            let lock = s["lock"]["mode"].as_str().unwrap_or("-");
            println!("    {phase:<9} {lock:<24} {}", s["description"].as_str().unwrap_or(""));
        }
    }
    println!(
        "    backfill  {:<24} {}\n",
        "ROW EXCLUSIVE",
        plan["phases"]["backfill"]["description"].as_str().unwrap_or("")
    );

    step(epoch, "EXPAND: SELECT zdm.rename_column('users', 'name', 'full_name')");
    let t0 = Instant::now();
    let m: String = admin
        .query_one("SELECT zdm.rename_column('users', 'name', 'full_name')", &[])
        .unwrap()
        .get(0);
    let start_ms = t0.elapsed().as_secs_f64() * 1000.0;
    step(
        epoch,
        "new application: 2 clients writing users.full_name, beside the old ones",
    );
    let new_apps: Vec<Client> = (2..4)
        .map(|i| Client::spawn(&format!("new-app-{i}"), &url, target("full_name", rows), i, epoch))
        .collect();
    std::thread::sleep(Duration::from_secs(1));

    step(
        epoch,
        &format!("MIGRATE: CALL zdm.backfill('{m}') -- commits every batch"),
    );
    let t0 = Instant::now();
    admin
        .batch_execute(&format!("CALL zdm.backfill('{m}')"))
        .expect("backfill");
    let backfill_s = t0.elapsed().as_secs_f64();
    let progress = admin
        .query_one(
            "SELECT rows_done, batches, rows_per_second::text FROM zdm.progress WHERE migration = $1",
            &[&m],
        )
        .unwrap();
    let (done, batches, rate): (i64, i64, Option<String>) = (progress.get(0), progress.get(1), progress.get(2));
    step(
        epoch,
        &format!(
            "backfill done: {done} rows in {batches} batches, {backfill_s:.1} s ({} rows/s)",
            rate.unwrap_or_default()
        ),
    );
    std::thread::sleep(Duration::from_secs(1));

    step(epoch, "old application retired");
    let mut reports: Vec<_> = old_apps.into_iter().map(Client::stop).collect();
    step(epoch, &format!("CONTRACT: SELECT zdm.complete('{m}')"));
    let t0 = Instant::now();
    admin.execute("SELECT zdm.complete($1)", &[&m]).expect("complete");
    let complete_ms = t0.elapsed().as_secs_f64() * 1000.0;
    std::thread::sleep(Duration::from_secs(2));
    reports.extend(new_apps.into_iter().map(Client::stop));
    let probe = prober.stop();

    // The report.
    let errors = report_errors(&reports);
    let mut all = Latencies::default();
    for r in &reports {
        all.merge(&r.latencies);
    }
    let held: Vec<(String, f64)> = admin
        .query(
            "SELECT event, (detail->>'held_ms')::float8 FROM zdm.events
              WHERE migration = $1 AND detail ? 'held_ms' ORDER BY id",
            &[&m],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let diff = oracle_diff(
        &mut admin,
        "SELECT id, full_name::text, email::text FROM public.users",
        "SELECT id, name::text, email::text FROM public.users_oracle",
        10,
    );
    let verified: i64 = admin
        .query_one("SELECT count(*) FROM public.users", &[])
        .unwrap()
        .get(0);
    let statements: u64 = reports.iter().map(|r| r.statements).sum();

    println!("\n== pg_zdm demo report: rename users.name -> full_name under load ==");
    println!("  client statements          {statements}");
    println!("  client errors              {errors}");
    println!(
        "  client latency p50 / p99   {:.2} ms / {:.2} ms",
        all.percentile_ms(50.0),
        all.percentile_ms(99.0)
    );
    println!("  worst client statement     {:.1} ms", all.max_ms());
    println!(
        "  worst reader wait (prober) {:.1} ms at {:.2} s, over {} reads every 10 ms",
        probe.longest_wait_ms(),
        probe.reads.max_at().as_secs_f64(),
        probe.reads.count()
    );
    println!("  worst client statement at  {:.2} s", all.max_at().as_secs_f64());
    println!("  zdm.rename_column() call   {start_ms:.1} ms");
    println!("  zdm.complete() call        {complete_ms:.1} ms");
    for (event, ms) in &held {
        let what = match event.as_str() {
            "expand" => "start, ACCESS EXCLUSIVE held",
            "complete" => "complete, ACCESS EXCLUSIVE held",
            "backfill finished" => "VALIDATE, reads/writes go on",
            other => other,
        };
        println!("  {what:<31} {ms:.1} ms");
    }
    println!(
        "  rows verified vs oracle    {verified} ({})",
        if diff.is_empty() {
            "identical".to_string()
        } else {
            format!("{} differences", diff.len())
        }
    );
    for d in &diff {
        println!("    {d}");
    }
    let ok1 = errors == 0 && diff.is_empty() && probe.errors.is_empty();
    println!(
        "  verdict                    {}",
        if ok1 {
            "ZERO DOWNTIME: no failed statement, table equals oracle"
        } else {
            "FAILED"
        }
    );
    let ok2 = act_two(&cluster, &mut admin, rows, epoch);
    let ok = ok1 && ok2;
    drop(cluster);
    if !ok {
        std::process::exit(1);
    }
}
