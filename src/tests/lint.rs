//! In-server tests of zdm.lint: the corpus of real-world statements
//! (src/lint/corpus/corpus.sql), the same statement judged differently as
//! the database changes, parse errors, lint_check, convert → plan, privileges.

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    #[allow(unused_imports)]
    use crate::tests::tests::*;
    use pgrx::prelude::*;
    use pgrx::JsonB;
    use serde_json::{json, Value};

    const CORPUS: &str = include_str!("../lint/corpus/corpus.sql");

    fn fixture() {
        Spi::run(
            "CREATE TABLE users (id bigint PRIMARY KEY, email varchar(20), name text, age int, created_at timestamp,
                                 status text, CONSTRAINT users_name_not_null CHECK (name IS NOT NULL));
             INSERT INTO users SELECT g, 'u' || g, 'n' || g, g, now(), 'a' FROM generate_series(1, 500) g;
             CREATE UNIQUE INDEX users_email_uidx ON users (email);
             CREATE TABLE orders (id bigint PRIMARY KEY, user_id bigint NOT NULL, amount numeric(10,2), note varchar(50));
             INSERT INTO orders SELECT g, g, g, 'x' FROM generate_series(1, 500) g;
             CREATE INDEX orders_user_idx ON orders (user_id);
             CREATE TABLE empty_t (id int, a text);
             ANALYZE users; ANALYZE orders;",
        )
        .unwrap();
    }

    fn lint(sql: &str, tx: bool) -> Value {
        Spi::get_one_with_args::<JsonB>("SELECT zdm.lint_json($1, $2)", &[sql.into(), tx.into()])
            .unwrap()
            .unwrap()
            .0
    }

    /// Every finding of a lint as (rule, verdict).
    fn findings(report: &Value) -> Vec<(String, String)> {
        report
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| s["findings"].as_array().unwrap().clone())
            .map(|f| {
                (
                    f["rule"].as_str().unwrap().to_string(),
                    f["verdict"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    fn rank(v: &str) -> u8 {
        match v {
            "ok" => 0,
            "warning" => 1,
            _ => 2,
        }
    }

    /// The verdict a rule gives to `sql` (the worst, when it fires more than once).
    fn verdict_of(sql: &str, rule: &str) -> String {
        findings(&lint(sql, false))
            .into_iter()
            .filter(|(r, _)| r == rule)
            .map(|(_, v)| v)
            .max_by_key(|v| rank(v))
            .unwrap_or_else(|| "none".into())
    }

    struct Case {
        verdict: String,
        rule: String,
        tx: bool,
        sql: String,
    }

    fn corpus() -> Vec<Case> {
        let mut cases: Vec<Case> = Vec::new();
        for line in CORPUS.lines() {
            if let Some(head) = line.strip_prefix("-- case: ") {
                let w: Vec<&str> = head.split_whitespace().collect();
                cases.push(Case {
                    verdict: w[0].into(),
                    rule: w[1].into(),
                    tx: w.get(2) == Some(&"tx"),
                    sql: String::new(),
                });
            } else if let Some(c) = cases.last_mut() {
                c.sql.push_str(line);
                c.sql.push('\n');
            }
        }
        cases
    }

    #[pg_test]
    fn corpus_of_real_migrations() {
        fixture();
        let cases = corpus();
        assert!(cases.len() >= 60, "corpus has {} cases", cases.len());
        let mut failures = Vec::new();
        for c in &cases {
            let got = findings(&lint(&c.sql, c.tx));
            let worst = got
                .iter()
                .filter(|(r, _)| r != "require-lock-timeout" || c.rule == "require-lock-timeout")
                .map(|(_, v)| rank(v))
                .max()
                .unwrap_or(0);
            let rule_ok = c.rule == "-" || got.iter().any(|(r, v)| r == &c.rule && v == &c.verdict);
            if !rule_ok || worst != rank(&c.verdict) {
                failures.push(format!("{} {}:\n{}  got {:?}", c.verdict, c.rule, c.sql, got));
            }
        }
        assert!(
            failures.is_empty(),
            "{} of {} corpus cases fail:\n{}",
            failures.len(),
            cases.len(),
            failures.join("\n")
        );
    }

    #[pg_test]
    fn the_catalog_changes_the_verdict() {
        Spi::run("CREATE TABLE t (id bigint, c varchar(20), n text)").unwrap();
        let set_not_null = "ALTER TABLE t ALTER COLUMN n SET NOT NULL";
        let index = "CREATE INDEX t_c ON t (c)";
        let widen = "ALTER TABLE t ALTER COLUMN c TYPE text";
        assert_eq!(
            verdict_of(set_not_null, "adding-not-nullable-field"),
            "ok",
            "empty table"
        );
        assert_eq!(
            verdict_of(index, "require-concurrent-index-creation"),
            "ok",
            "empty table"
        );
        Spi::run("INSERT INTO t SELECT g, 'x', 'y' FROM generate_series(1, 100) g").unwrap();
        assert_eq!(
            verdict_of(set_not_null, "adding-not-nullable-field"),
            "danger",
            "rows to scan"
        );
        assert_eq!(
            verdict_of(index, "require-concurrent-index-creation"),
            "danger",
            "rows to index"
        );
        assert_eq!(
            verdict_of(widen, "changing-column-type"),
            "ok",
            "varchar → text is binary coercible"
        );
        Spi::run("ALTER TABLE t ADD CONSTRAINT n_nn CHECK (n IS NOT NULL) NOT VALID").unwrap();
        assert_eq!(
            verdict_of(set_not_null, "adding-not-nullable-field"),
            "danger",
            "a check not validated proves nothing"
        );
        Spi::run("ALTER TABLE t VALIDATE CONSTRAINT n_nn").unwrap();
        assert_eq!(
            verdict_of(set_not_null, "adding-not-nullable-field"),
            "ok",
            "a validated check proves it"
        );
        Spi::run("ALTER TABLE t ALTER COLUMN c TYPE int USING 1").unwrap();
        assert_eq!(
            verdict_of(widen, "changing-column-type"),
            "danger",
            "int → text rewrites"
        );

        // The same default, volatile or not depending on the function it calls.
        let add = "ALTER TABLE t ADD COLUMN k int DEFAULT pick()";
        Spi::run("CREATE FUNCTION pick() RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT 1'").unwrap();
        assert_eq!(verdict_of(add, "adding-field-with-default"), "ok");
        Spi::run("CREATE OR REPLACE FUNCTION pick() RETURNS int LANGUAGE sql VOLATILE AS 'SELECT 1'").unwrap();
        assert_eq!(verdict_of(add, "adding-field-with-default"), "danger");

        // A unique constraint over an index: valid, or not there yet.
        let attach = "ALTER TABLE t ADD CONSTRAINT t_id_key UNIQUE USING INDEX t_id_uidx";
        assert_eq!(verdict_of(attach, "disallowed-unique-constraint"), "danger");
        Spi::run("CREATE UNIQUE INDEX t_id_uidx ON t (id)").unwrap();
        assert_eq!(verdict_of(attach, "disallowed-unique-constraint"), "ok");
    }

    #[pg_test]
    fn report_rows_name_line_lock_work_and_size() {
        fixture();
        let sql = "SET lock_timeout = '1s';\n\n-- add the index\nCREATE INDEX o_note ON orders (note);";
        let r = Spi::get_one_with_args::<JsonB>(
            "SELECT pg_catalog.to_jsonb(l) FROM zdm.lint($1) l WHERE statement_no = 2",
            &[sql.into()],
        )
        .unwrap()
        .unwrap()
        .0;
        assert_eq!(r["line"], json!(4));
        assert_eq!(r["statement"], json!("CREATE INDEX o_note ON orders (note)"));
        assert_eq!(r["lock_mode"], json!("SHARE"));
        assert_eq!(r["table_work"], json!("index build"));
        assert_eq!(r["table_name"], json!("public.orders"));
        assert_eq!(r["table_rows"], json!(500));
        assert!(r["table_bytes"].as_i64().unwrap() > 0);
        assert_eq!(r["verdict"], json!("danger"));
        assert_eq!(r["spec"]["operations"][0]["op"], json!("create_index"));
        assert_eq!(r["spec"]["operations"][0]["definition"], json!("(note)"));
        // A name that needs quoting is found, and named as a spec names it.
        Spi::run("CREATE SCHEMA \"S.1\"; CREATE TABLE \"S.1\".\"Odd \"\"T\"\"\" (a int); INSERT INTO \"S.1\".\"Odd \"\"T\"\"\" VALUES (1)").unwrap();
        let r = lint("CREATE INDEX odd_a ON \"S.1\".\"Odd \"\"T\"\"\" (a)", false);
        assert_eq!(r[0]["table"]["name"], json!("\"S.1\".\"Odd \"\"T\"\"\""));
        assert_eq!(r[0]["verdict"], json!("danger"));
        // A statement with nothing to say is one ok row.
        assert_eq!(one::<String>("SELECT verdict FROM zdm.lint('SELECT 1')").unwrap(), "ok");
    }

    #[pg_test]
    fn a_syntax_error_names_its_line() {
        let e = error_text("SELECT zdm.lint(E'SELECT 1;\\n\\nALTER TABLE x ADD COLUMN ;')");
        assert!(e.starts_with("42601: cannot lint line 3: syntax error"), "{e}");
    }

    #[pg_test]
    fn lint_check_raises_on_danger_only() {
        fixture();
        let e = error_with_detail(
            "SELECT zdm.lint_check('SET lock_timeout = ''1s''; ALTER TABLE users RENAME COLUMN name TO full_name;')",
        );
        assert!(
            e.starts_with("P0001: migration has 1 dangerous statement(s) / line 1: renaming-column"),
            "{e}"
        );
        assert_eq!(
            one::<String>("SELECT zdm.lint_check('ALTER TABLE users ADD COLUMN x text')").unwrap(),
            "1 statements, no danger, 1 warnings"
        );
    }

    #[pg_test]
    fn convert_gives_specs_that_plan_accepts() {
        fixture();
        let sql = "ALTER TABLE users RENAME COLUMN name TO full_name;
                   ALTER TABLE orders ALTER COLUMN amount TYPE numeric(8,2);
                   ALTER TABLE users ALTER COLUMN email SET NOT NULL;
                   ALTER TABLE orders ADD CONSTRAINT amount_positive CHECK (amount > 0);
                   ALTER TABLE orders ADD CONSTRAINT fk_user FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE;
                   ALTER TABLE users ADD CONSTRAINT users_age_key UNIQUE (age);
                   CREATE INDEX orders_note ON orders USING btree (note) WHERE note IS NOT NULL;
                   ALTER TABLE users ADD COLUMN token uuid DEFAULT gen_random_uuid();
                   ALTER TABLE orders DROP COLUMN note;
                   DROP TABLE users;";
        let out = Spi::get_one_with_args::<JsonB>("SELECT zdm.convert($1)", &[sql.into()])
            .unwrap()
            .unwrap()
            .0;
        let migrations = out["migrations"].as_array().unwrap();
        let ops: Vec<&str> = migrations
            .iter()
            .map(|m| m["spec"]["operations"][0]["op"].as_str().unwrap())
            .collect();
        assert_eq!(
            ops,
            [
                "rename_column",
                "alter_column_type",
                "set_not_null",
                "add_check",
                "add_foreign_key",
                "add_unique",
                "create_index",
                "add_column",
                "drop_column"
            ]
        );
        for m in migrations {
            let plan = Spi::get_one_with_args::<JsonB>("SELECT zdm.plan($1)", &[JsonB(m["spec"].clone()).into()]);
            assert!(matches!(plan, Ok(Some(_))), "zdm.plan refused {}", m["spec"]);
        }
        assert_eq!(out["not_converted"][0]["rule"], json!("ban-drop-table"));
    }

    #[pg_test]
    fn lint_sees_only_what_the_caller_may_see() {
        Spi::run(
            "CREATE SCHEMA hidden; CREATE TABLE hidden.secret (a int); INSERT INTO hidden.secret VALUES (1);
             CREATE ROLE lint_nobody; SET LOCAL ROLE lint_nobody;",
        )
        .unwrap();
        let r = lint("CREATE INDEX ON hidden.secret (a)", false);
        assert_eq!(
            r[0]["table"],
            Value::Null,
            "no USAGE on the schema: nothing about its table"
        );
        assert!(r[0]["findings"][0]["reason"].as_str().unwrap().contains("not found"));
        Spi::run("RESET ROLE").unwrap();
        let r = lint("CREATE INDEX ON hidden.secret (a)", false);
        assert_eq!(r[0]["table"]["name"], json!("hidden.secret"));
    }

    #[pg_test]
    fn a_long_transaction_open_now_is_named() {
        use crate::lint::facts::{Facts, LongTransaction};
        fixture();
        let statements = crate::lint::parse::parse("ALTER TABLE users ADD COLUMN z text").unwrap();
        let mut facts = crate::lint::facts::gather(&statements, "1 minute").unwrap();
        assert!(facts.long_transactions.is_empty());
        let users = facts.tables["users"].oid;
        facts.long_transactions = vec![LongTransaction {
            pid: 4242,
            seconds: 600.0,
            relations: vec![users],
        }];
        let reports = crate::lint::judge(&statements, &facts, false);
        let f = reports[0]
            .findings
            .iter()
            .find(|f| f.rule == "long-running-transaction")
            .expect("finding");
        assert_eq!(f.verdict, crate::lint::rules::Verdict::Danger);
        assert!(
            f.reason
                .contains("pid 4242 open for 600 s, holding a lock on the table"),
            "{}",
            f.reason
        );
        let _ = Facts::default();
    }
}
