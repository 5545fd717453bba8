//! zdm.lint against what only a live database shows: a transaction open right
//! now that the migration's first lock would queue behind, and the CI recipe
//! of the README (a schema-only copy, psql's exit status from lint_check).

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn names_a_long_transaction_and_fails_ci_on_danger() {
    let cluster = common::cluster_with_zdm();
    let mut admin = cluster.connect();
    admin
        .batch_execute(
            "CREATE TABLE orders (id bigint PRIMARY KEY, note text);
             INSERT INTO orders SELECT g, 'x' FROM generate_series(1, 1000) g; ANALYZE orders;",
        )
        .unwrap();

    // A reader that went idle inside its transaction, holding ACCESS SHARE.
    let mut reader = cluster.connect();
    let pid: i32 = reader.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
    reader.batch_execute("BEGIN; SELECT count(*) FROM orders;").unwrap();
    std::thread::sleep(Duration::from_millis(1200));

    let mut finding = |sql: &str| -> (String, String) {
        let r = admin
            .query_one(
                "SELECT verdict, reason FROM zdm.lint($1, long_transaction => '1 second')
                  WHERE rule = 'long-running-transaction'",
                &[&sql],
            )
            .unwrap();
        (r.get(0), r.get(1))
    };
    let (verdict, reason) = finding("ALTER TABLE orders ADD COLUMN z text");
    assert_eq!(verdict, "danger");
    assert!(reason.contains(&format!("pid {pid} open for")), "{reason}");
    assert!(reason.contains("holding a lock on the table"), "{reason}");
    let (verdict, _) = finding("SET lock_timeout = '1s'; ALTER TABLE orders ADD COLUMN z text");
    assert_eq!(verdict, "warning", "with lock_timeout the wait is bounded");
    reader.batch_execute("COMMIT").unwrap();
    let none: i64 = admin
        .query_one(
            "SELECT count(*) FROM zdm.lint('ALTER TABLE orders ADD COLUMN z text', long_transaction => '1 second')
              WHERE rule = 'long-running-transaction'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(none, 0, "nothing open any more");

    // CI: lint against a schema-only copy; psql exits non-zero on danger.
    let schema = cluster.schema_only(&[]);
    admin.batch_execute("CREATE DATABASE ci").unwrap();
    cluster.connect_db("ci").batch_execute(&schema).unwrap();
    // As the README shows: the query on psql's standard input (-c does not
    // substitute variables), the text in a variable.
    let psql = |sql: &str| {
        let mut child = Command::new(cluster.tool("psql"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &cluster.port.to_string(),
                "-U",
                "postgres",
                "-d",
                "ci",
            ])
            .args(["-X", "-v", "ON_ERROR_STOP=1", "-v", &format!("sql={sql}")])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("psql runs");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"SELECT zdm.lint_check(:'sql');\n")
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let bad = psql("SET lock_timeout = '1s';\nALTER TABLE orders RENAME COLUMN note TO remark;");
    assert!(!bad.status.success(), "danger fails the job");
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("migration has 1 dangerous statement(s)") && err.contains("line 2: renaming-column"),
        "{err}"
    );
    let good = psql("SET lock_timeout = '1s';\nALTER TABLE orders ADD COLUMN remark text;");
    assert!(good.status.success(), "{}", String::from_utf8_lossy(&good.stderr));
}
