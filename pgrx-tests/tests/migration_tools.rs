//! The README's recipes for migration tools, run by the real tools: sqitch 1.3
//! (Debian's `sqitch` with `libdbd-pg-perl`) and Alembic 1.20 (PyPI, with
//! psycopg2, in the virtualenv scripts/setup.sh creates). Their project files
//! are in `tests/migration_tools/`. Each project holds a rename_column
//! migration (its column's index rebuilt through `zdm.pending_statements()`),
//! a shadow restructure swapped in, and the two contract steps (the second
//! also builds an index from the pending statements). Both migrations go
//! up, down, up, down, up and complete with no manual step; every down must
//! give back the tables exactly as they were.
//!
//! A missing tool fails the test, saying how to install it: skipping would
//! hide that the recipes are untested.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use zdm_harness::cluster::Cluster;

const ROWS: i64 = 200;

fn recipes_dir(tool: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/migration_tools")
        .join(tool)
}

/// A copy of a tool's project in a fresh directory (the tools write caches
/// and bytecode next to their files).
fn project_copy(tool: &str, cluster: &Cluster) -> PathBuf {
    let dst = cluster.dir.join(format!("{tool}-project"));
    copy_dir(&recipes_dir(tool), &dst);
    dst
}

fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        let to = dst.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            if entry.file_name() != "__pycache__" {
                copy_dir(&entry.path(), &to);
            }
        } else {
            std::fs::copy(entry.path(), &to).unwrap();
        }
    }
}

/// Run a tool's command; panic with everything it printed when it fails.
fn run(what: &str, cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot start {cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{what} failed ({}):\n{text}", out.status);
    text
}

/// The application's tables before any migration: users.name has an index,
/// which the rename carries over to full_name with CREATE INDEX CONCURRENTLY.
fn app_tables(conn: &mut postgres::Client) {
    conn.batch_execute(&format!(
        "CREATE TABLE public.users (id bigint PRIMARY KEY, name text NOT NULL, email text);
         CREATE INDEX users_name_idx ON public.users (name);
         INSERT INTO public.users SELECT g, 'user ' || g, 'u' || g || '@x' FROM generate_series(1, {ROWS}) g;
         CREATE TABLE public.orders (id bigint PRIMARY KEY, amount integer NOT NULL, note text);
         INSERT INTO public.orders SELECT g, g * 7, 'n' || g FROM generate_series(1, {ROWS}) g;"
    ))
    .unwrap();
}

/// Schema and rows of both tables, to compare after every down.
fn snapshot(c: &Cluster, conn: &mut postgres::Client) -> (String, String) {
    let schema = c.schema_only(&["--table", "public.users", "--table", "public.orders"]);
    let rows: String = conn
        .query_one(
            "SELECT (SELECT string_agg(concat_ws('|', id, name, email), ',' ORDER BY id) FROM public.users)
                 || '/' || (SELECT string_agg(concat_ws('|', id, amount, note), ',' ORDER BY id) FROM public.orders)",
            &[],
        )
        .unwrap()
        .get(0);
    (schema, rows)
}

fn phases(conn: &mut postgres::Client) -> Vec<(String, String)> {
    conn.query("SELECT name, phase FROM zdm.migrations ORDER BY name", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

/// After an up: the rename backfilled with its index valid, the shadow swapped in.
fn check_up(conn: &mut postgres::Client, round: usize) {
    let active: Vec<(String, String)> = phases(conn).into_iter().filter(|(n, _)| !n.contains('@')).collect();
    assert_eq!(
        active,
        pairs(&[("orders_v2", "swapped"), ("users_full_name", "backfilled")]),
        "after up #{round}"
    );
    let state: String = conn
        .query_one(
            "SELECT state FROM zdm.progress WHERE migration = 'users_full_name'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(state, "ready to complete", "every index built after up #{round}");
    let unfilled: i64 = conn
        .query_one(
            "SELECT count(*) FROM public.users WHERE full_name IS DISTINCT FROM name",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(unfilled, 0, "full_name backfilled after up #{round}");
}

/// The end state: both tables in their new shape, every row kept, the
/// migrations completed and the two rolled-back runs of each archived.
fn check_completed(conn: &mut postgres::Client) {
    let columns = |conn: &mut postgres::Client, t: &str| -> Vec<String> {
        conn.query(
            "SELECT attname || ' ' || format_type(atttypid, atttypmod) || CASE WHEN attnotnull THEN ' not null' ELSE '' END
               FROM pg_attribute WHERE attrelid = $1::text::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            &[&t],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
    };
    assert_eq!(
        columns(conn, "public.users"),
        ["id bigint not null", "email text", "full_name text not null"]
    );
    assert_eq!(
        columns(conn, "public.orders"),
        [
            "id bigint not null",
            "amount numeric(10,2) not null",
            "note text",
            "currency character varying(3) not null"
        ]
    );
    let wrong_users: i64 = conn
        .query_one(
            "SELECT count(*) FROM public.users WHERE full_name <> 'user ' || id OR email <> 'u' || id || '@x'",
            &[],
        )
        .unwrap()
        .get(0);
    let wrong_orders: i64 = conn
        .query_one(
            "SELECT count(*) FROM public.orders WHERE amount <> id * 7 OR note <> 'n' || id OR currency <> 'EUR'",
            &[],
        )
        .unwrap()
        .get(0);
    let counts: (i64, i64) = {
        let r = conn
            .query_one(
                "SELECT (SELECT count(*) FROM public.users), (SELECT count(*) FROM public.orders)",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!((wrong_users, wrong_orders, counts), (0, 0, (ROWS, ROWS)));
    let indexes: Vec<String> = conn
        .query(
            "SELECT c.relname || ' ' || i.indisvalid || ' ' || pg_get_indexdef(i.indexrelid)
               FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
              WHERE i.indrelid IN ('public.users'::regclass, 'public.orders'::regclass) ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        indexes,
        [
            "orders_currency_idx true CREATE INDEX orders_currency_idx ON public.orders USING btree (currency)",
            "orders_pkey true CREATE UNIQUE INDEX orders_pkey ON public.orders USING btree (id)",
            "users_name_idx true CREATE INDEX users_name_idx ON public.users USING btree (full_name)",
            "users_pkey true CREATE UNIQUE INDEX users_pkey ON public.users USING btree (id)",
        ]
    );
    assert_eq!(
        phases(conn),
        pairs(&[
            ("orders_currency_idx", "completed"),
            ("orders_v2", "completed"),
            ("orders_v2@1", "rolled_back"),
            ("orders_v2@2", "rolled_back"),
            ("users_full_name", "completed"),
            ("users_full_name@1", "rolled_back"),
            ("users_full_name@2", "rolled_back"),
        ])
    );
    // Nothing of the migrations is left behind: no shadow, no trigger.
    let leftovers: i64 = conn
        .query_one(
            "SELECT (SELECT count(*) FROM pg_class WHERE relname LIKE 'zdm\\_%' AND relkind = 'r')
                  + (SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal
                      AND tgrelid IN ('public.users'::regclass, 'public.orders'::regclass))",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(leftovers, 0, "shadow tables or triggers left behind");
}

/// up, down, up, down, up, complete: `up`/`down`/`complete` drive the tool.
fn cycle(c: &Cluster, up: &dyn Fn(), down: &dyn Fn(), complete: &dyn Fn()) {
    let mut conn = c.connect();
    app_tables(&mut conn);
    let before = snapshot(c, &mut conn);
    for round in 1..=3 {
        up();
        check_up(&mut conn, round);
        if round < 3 {
            down();
            let after = snapshot(c, &mut conn);
            assert_eq!(after.0, before.0, "schema after down #{round}");
            assert_eq!(after.1, before.1, "rows after down #{round}");
        }
    }
    complete();
    check_completed(&mut conn);
}

fn sqitch_bin() -> PathBuf {
    let bin = std::env::var_os("ZDM_SQITCH")
        .map(PathBuf::from)
        .unwrap_or_else(|| "sqitch".into());
    let ok = Command::new(&bin).arg("--version").output().map(|o| o.status.success());
    assert!(
        matches!(ok, Ok(true)),
        "sqitch not found ({}): run scripts/setup.sh, or apt-get install sqitch libdbd-pg-perl (or set ZDM_SQITCH)",
        bin.display()
    );
    let dbd = Command::new("perl")
        .args(["-MDBD::Pg", "-e1"])
        .output()
        .map(|o| o.status.success());
    assert!(
        matches!(dbd, Ok(true)),
        "sqitch's pg engine needs DBD::Pg: run scripts/setup.sh, or apt-get install libdbd-pg-perl"
    );
    bin
}

/// The alembic of the virtualenv scripts/setup.sh creates ($ZDM_VENV, default
/// $HOME/.cache/pg_zdm/venv), unless ZDM_ALEMBIC names another one.
fn alembic_bin() -> PathBuf {
    let venv = std::env::var_os("ZDM_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/pg_zdm/venv"));
    let bin = std::env::var_os("ZDM_ALEMBIC")
        .map(PathBuf::from)
        .unwrap_or_else(|| venv.join("bin/alembic"));
    let ok = Command::new(&bin).arg("--version").output().map(|o| o.status.success());
    assert!(
        matches!(ok, Ok(true)),
        "alembic not found at {}: run scripts/setup.sh (it creates the virtualenv $ZDM_VENV, default \
         $HOME/.cache/pg_zdm/venv, with alembic and psycopg2-binary), or set ZDM_ALEMBIC to an alembic whose Python has a PostgreSQL driver",
        bin.display()
    );
    bin
}

#[test]
fn sqitch_recipe_down_up_down_up_complete() {
    let sqitch = sqitch_bin();
    let c = common::cluster_with_zdm();
    let dir = project_copy("sqitch", &c);
    let target = format!("db:pg://postgres@127.0.0.1:{}/postgres", c.port);
    let psql = c.tool("psql");
    let sqitch_cmd = |args: &[&str]| {
        let mut cmd = Command::new(&sqitch);
        cmd.current_dir(&dir)
            .args(args)
            .arg("--db-client")
            .arg(&psql)
            .arg(&target)
            .env("SQITCH_FULLNAME", "pg_zdm test")
            .env("SQITCH_EMAIL", "zdm@example.com")
            .env("PGOPTIONS", "-c client_min_messages=warning");
        cmd
    };
    cycle(
        &c,
        &|| {
            run(
                "sqitch deploy --to orders_v2",
                &mut sqitch_cmd(&["deploy", "--to", "orders_v2"]),
            );
        },
        &|| {
            run("sqitch revert -y", &mut sqitch_cmd(&["revert", "-y"]));
        },
        &|| {
            run("sqitch deploy", &mut sqitch_cmd(&["deploy"]));
        },
    );
    let status = run("sqitch status", &mut sqitch_cmd(&["status"]));
    assert!(status.contains("Nothing to deploy (up-to-date)"), "{status}");
}

#[test]
fn alembic_recipe_down_up_down_up_complete() {
    let alembic = alembic_bin();
    let c = common::cluster_with_zdm();
    let dir = project_copy("alembic", &c);
    let url = format!("postgresql+psycopg2://postgres@127.0.0.1:{}/postgres", c.port);
    let alembic_cmd = |args: &[&str]| {
        let mut cmd = Command::new(&alembic);
        cmd.current_dir(&dir)
            .arg("-c")
            .arg(dir.join("alembic.ini"))
            .args(args)
            .env("ZDM_DATABASE_URL", &url)
            .env("PYTHONDONTWRITEBYTECODE", "1");
        cmd
    };
    cycle(
        &c,
        &|| {
            run(
                "alembic upgrade 0002_orders_v2",
                &mut alembic_cmd(&["upgrade", "0002_orders_v2"]),
            );
        },
        &|| {
            run("alembic downgrade base", &mut alembic_cmd(&["downgrade", "base"]));
        },
        &|| {
            run("alembic upgrade head", &mut alembic_cmd(&["upgrade", "head"]));
        },
    );
    let version: String = c
        .connect()
        .query_one("SELECT version_num FROM alembic_version", &[])
        .unwrap()
        .get(0);
    assert_eq!(version, "0004_orders_v2_contract");
}

/// What the recipes rely on besides the tools: `psql -c "CALL zdm.backfill(...);
/// SELECT 1"` is one query string, one implicit transaction, and the 25001 hint
/// says so (not only "outside BEGIN"); a lone CALL works through the extended
/// protocol (JDBC, so Flyway); `zdm.plan_steps()` shows, before the start, the
/// exact index statement `zdm.pending_statements()` gives after it.
#[test]
fn top_level_steps_as_the_recipes_use_them() {
    let c = common::cluster_with_zdm();
    let mut conn = c.connect();
    app_tables(&mut conn);
    conn.batch_execute("SELECT zdm.rename_column('public.users', 'name', 'full_name', 'ms')")
        .unwrap();
    let out = Command::new(c.tool("psql"))
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &c.port.to_string(),
            "-U",
            "postgres",
            "-d",
            "postgres",
        ])
        .args(["-c", "CALL zdm.backfill('ms'); SELECT 1"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("cannot run inside a transaction block"), "{err}");
    assert!(
        err.contains("HINT:") && err.contains("not in one query string with other statements"),
        "{err}"
    );
    // Alone, the same CALL runs, through the extended query protocol too
    // (JDBC, so Flyway, sends every statement that way).
    conn.execute("CALL zdm.backfill('ms', 100)", &[]).unwrap();
    let phase: String = conn
        .query_one("SELECT phase FROM zdm.migrations WHERE name = 'ms'", &[])
        .unwrap()
        .get(0);
    assert_eq!(phase, "backfilled");
    // The index statement zdm.plan_steps() shows before the start is the one
    // zdm.pending_statements() gives after it (tools without \gexec write it out).
    let planned: Vec<String> = conn
        .query(
            "SELECT statement || ';' FROM zdm.plan_steps('{\"name\": \"ms2\", \"operations\": [{\"op\": \"rename_column\",
                    \"table\": \"public.users\", \"column\": \"email\", \"new_name\": \"mail\"}]}') WHERE top_level",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    conn.batch_execute("CREATE INDEX users_email_idx ON public.users (email)")
        .unwrap();
    let planned_with_index: Vec<String> = conn
        .query(
            "SELECT statement || ';' FROM zdm.plan_steps('{\"name\": \"ms2\", \"operations\": [{\"op\": \"rename_column\",
                    \"table\": \"public.users\", \"column\": \"email\", \"new_name\": \"mail\"}]}') WHERE top_level",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(planned.is_empty(), "{planned:?}");
    conn.batch_execute("SELECT zdm.rename_column('public.users', 'email', 'mail', 'ms2')")
        .unwrap();
    let pending: Vec<String> = conn
        .query("SELECT statement FROM zdm.pending_statements('ms2')", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(planned_with_index.len(), 1);
    assert_eq!(pending, planned_with_index);
}
