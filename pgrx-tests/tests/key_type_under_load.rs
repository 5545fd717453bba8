//! An `integer` primary key becoming `bigint` with the natural call,
//! `zdm.alter_column_type('accounts', 'id', 'bigint')`, under two
//! writer clients and a prober, on a table another table references: rolled
//! back before the swap and after it (the schema as pg_dump saw it each time),
//! then started again and completed. No client statement fails, the table
//! equals the oracle, readers never wait long, and after complete a client
//! writes keys beyond the integer range.

mod common;

use std::time::{Duration, Instant};
use zdm_harness::cluster::Cluster;
use zdm_harness::load::{oracle_diff, report_errors, Client, Target};
use zdm_harness::prober::Prober;

const ROWS: i64 = 100_000;

fn target() -> Target {
    Target {
        table: "public.accounts".into(),
        key: "id".into(),
        value_col: "note".into(),
        other_col: "note2".into(),
        oracle: "public.accounts_oracle".into(),
        oracle_value_col: "note".into(),
        oracle_other_col: "note2".into(),
        initial_rows: ROWS,
        value_is_int: false,
        key_updates: false,
    }
}

fn until_verified(c: &mut postgres::Client, m: &str) {
    c.batch_execute(&format!("CALL zdm.backfill('{m}')"))
        .unwrap_or_else(|e| panic!("backfill {m}: {e}"));
    let matched: bool = c
        .query_one("SELECT (zdm.verify($1) ->> 'matched')::boolean", &[&m])
        .unwrap()
        .get(0);
    assert!(matched, "verify of {m}");
}

#[test]
fn integer_key_becomes_bigint_under_load() {
    let cluster = common::cluster_with_zdm();
    let mut c = cluster.connect();
    c.batch_execute(&format!(
        "CREATE TABLE public.accounts (id serial PRIMARY KEY, note text, note2 text);
         INSERT INTO public.accounts (note, note2) SELECT 'n' || g, 'x' FROM generate_series(1, {ROWS}) g;
         CREATE TABLE public.accounts_oracle AS SELECT id::bigint AS id, note, note2 FROM public.accounts;
         ALTER TABLE public.accounts_oracle ADD PRIMARY KEY (id);
         CREATE TABLE public.holds (id bigint PRIMARY KEY,
                                    account_id integer REFERENCES public.accounts (id) ON DELETE CASCADE);
         INSERT INTO public.holds SELECT g, g FROM generate_series(1, 1000) g;"
    ))
    .unwrap();
    c.batch_execute("VACUUM ANALYZE public.accounts").unwrap();
    let call = "SELECT zdm.alter_column_type('public.accounts', 'id', 'bigint')";
    let spec = r#"{"op": "alter_column_type", "table": "public.accounts", "column": "id", "new_type": "bigint"}"#;
    let plan: serde_json::Value = c
        .query_one("SELECT zdm.plan($1::text::jsonb)::text", &[&spec])
        .map(|r| serde_json::from_str(r.get::<_, &str>(0)).unwrap())
        .unwrap();
    assert_eq!(plan["carried_out_as"]["kind"], "create_shadow_table", "{plan}");
    assert_eq!(plan["referencing_columns"][0]["table"], "public.holds", "{plan}");

    let url = cluster.url("postgres");
    let epoch = Instant::now();
    let prober = Prober::spawn(&url, "public.accounts", epoch);
    // Clients 0 and 1 write keys around 1e9 and 2e9: within the integer range.
    let writers: Vec<Client> = (0..2)
        .map(|i| Client::spawn(&format!("w{i}"), &url, target(), i, epoch))
        .collect();
    std::thread::sleep(Duration::from_millis(300));

    let schema = |cl: &Cluster| cl.schema_only(&["--table", "public.accounts", "--table", "public.holds"]);
    let before = schema(&cluster);
    // Rolled back before the swap...
    let m: String = c.query_one(call, &[]).unwrap().get(0);
    assert_eq!(m, "accounts_id_to_bigint");
    until_verified(&mut c, &m);
    c.execute("SELECT zdm.rollback($1)", &[&m]).unwrap();
    assert_eq!(before, schema(&cluster), "rollback before the swap");
    // ...and after it.
    let m: String = c.query_one(call, &[]).unwrap().get(0);
    until_verified(&mut c, &m);
    c.query_one("SELECT zdm.swap_tables($1)", &[&m]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    c.execute("SELECT zdm.rollback($1)", &[&m]).unwrap();
    assert_eq!(before, schema(&cluster), "rollback after the swap");
    // Then for good.
    let m: String = c.query_one(call, &[]).unwrap().get(0);
    let again: String = c.query_one(call, &[]).unwrap().get(0);
    assert_eq!(again, m, "the same call again returns the migration");
    until_verified(&mut c, &m);
    c.query_one("SELECT zdm.swap_tables($1)", &[&m]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    c.execute("SELECT zdm.complete($1)", &[&m]).unwrap();
    // Client 2 writes keys from 3e9 on: beyond the integer range.
    let big = Client::spawn("w2", &url, target(), 2, epoch);
    std::thread::sleep(Duration::from_millis(500));
    let mut reports: Vec<_> = writers.into_iter().map(Client::stop).collect();
    reports.push(big.stop());
    let probe = prober.stop();

    let errors = report_errors(&reports);
    let statements: u64 = reports.iter().map(|r| r.statements).sum();
    eprintln!(
        "{statements} client statements, {errors} errors, readers waited at most {:.1} ms",
        probe.longest_wait_ms()
    );
    assert_eq!(errors, 0, "client statements failed");
    assert!(reports[2].statements > 20, "the client after complete ran");
    assert!(
        probe.longest_wait_ms() < 300.0,
        "a reader waited {:.1} ms",
        probe.longest_wait_ms()
    );
    let diff = oracle_diff(
        &mut c,
        "SELECT id::bigint, note, note2 FROM public.accounts",
        "SELECT id, note, note2 FROM public.accounts_oracle",
        10,
    );
    assert!(diff.is_empty(), "table and oracle differ:\n{}", diff.join("\n"));
    let beyond: i64 = c
        .query_one("SELECT count(*) FROM public.accounts WHERE id > 2147483647", &[])
        .unwrap()
        .get(0);
    assert!(beyond > 0, "keys beyond the integer range");
    let after = schema(&cluster);
    for want in [
        "id bigint NOT NULL",
        "ALTER COLUMN id SET DEFAULT nextval('public.accounts_id_seq'::regclass)",
        "FOREIGN KEY (account_id) REFERENCES public.accounts(id) ON DELETE CASCADE",
    ] {
        assert!(after.contains(want), "missing {want:?} in\n{after}");
    }
    assert!(!after.contains("zdm"), "nothing of pg_zdm is left:\n{after}");
    let sequence: String = c
        .query_one(
            "SELECT seqtypid::regtype::text || ' ' || seqmax FROM pg_sequence WHERE seqrelid = 'public.accounts_id_seq'::regclass",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(sequence, "bigint 9223372036854775807");
}
