//! Every single-table operation, one after the other on the same table, under a
//! live writer load: each is started, backfilled (top-level statements run as
//! psql's \gexec would), rolled back — the schema must come back exactly as
//! pg_dump saw it — then started again and completed. Writers never fail,
//! their writes all land (oracle), and readers never wait long (prober).

mod common;

use std::time::{Duration, Instant};
use zdm_harness::cluster::Cluster;
use zdm_harness::load::{oracle_diff, report_errors, Client, Target};
use zdm_harness::prober::Prober;

const ROWS: i64 = 100_000;

fn schema_of(cluster: &Cluster, table: &str) -> String {
    cluster.schema_only(&["--table", table])
}

fn drive(c: &mut postgres::Client, m: &str, contract: bool) {
    common::run_pending(c, m, contract);
    let has_backfill: bool = c
        .query_one("SELECT plan ? 'backfill' FROM zdm.migrations WHERE name = $1", &[&m])
        .unwrap()
        .get(0);
    if has_backfill {
        c.batch_execute(&format!("CALL zdm.backfill('{m}')"))
            .unwrap_or_else(|e| panic!("backfill {m}: {e}"));
    }
    // A shadow migration (a key column's type) is swapped before complete,
    // and so also before its rollback, which swaps back.
    let shadow: bool = c
        .query_one("SELECT plan ? 'shadow' FROM zdm.migrations WHERE name = $1", &[&m])
        .unwrap()
        .get(0);
    if shadow {
        c.query_one("SELECT zdm.verify($1)", &[&m])
            .unwrap_or_else(|e| panic!("verify {m}: {e}"));
        c.query_one("SELECT zdm.swap_tables($1)", &[&m])
            .unwrap_or_else(|e| panic!("swap {m}: {e}"));
    }
}

#[test]
fn every_operation_rolls_back_exactly_and_completes_under_load() {
    let cluster = common::cluster_with_zdm();
    let mut c = cluster.connect();
    c.batch_execute(&format!(
        "CREATE TABLE public.parent (id bigint PRIMARY KEY);
         INSERT INTO public.parent SELECT generate_series(1, {ROWS});
         CREATE TABLE public.items (
             id integer PRIMARY KEY,
             name text NOT NULL DEFAULT 'anonymous',
             email text DEFAULT 'none',
             amount integer NOT NULL DEFAULT 0,
             parent_id bigint,
             note text,
             note2 text);
         INSERT INTO public.items SELECT g, 'n' || g, CASE WHEN g % 5 = 0 THEN NULL ELSE 'e' || g END, g % 1000, g, 'x', 'y'
           FROM generate_series(1, {ROWS}) g;
         CREATE TABLE public.items_oracle AS SELECT id, note, note2 FROM public.items;
         ALTER TABLE public.items_oracle ADD PRIMARY KEY (id);"
    ))
    .unwrap();
    c.batch_execute("VACUUM ANALYZE public.items").unwrap();
    let url = cluster.url("postgres");
    let epoch = Instant::now();
    let target = Target {
        table: "public.items".into(),
        key: "id".into(),
        value_col: "note".into(),
        other_col: "note2".into(),
        oracle: "public.items_oracle".into(),
        oracle_value_col: "note".into(),
        oracle_other_col: "note2".into(),
        initial_rows: ROWS,
        value_is_int: false,
        key_updates: false,
    };
    let prober = Prober::spawn(&url, "public.items", epoch);
    // Inserts by these writers give only id, note, note2: every NOT NULL column
    // gets its value from a default, or from a fill trigger while a migration runs.
    let writers: Vec<Client> = (0..2)
        .map(|i| Client::spawn(&format!("w{i}"), &url, target.clone(), i, epoch))
        .collect();

    let ops = [
        // The key's type: through a shadow table, by itself.
        "SELECT zdm.alter_column_type('public.items', 'id', 'bigint')",
        // Before add_check: a column a constraint uses is not carried over by a type change (yet).
        "SELECT zdm.alter_column_type('public.items', 'amount', 'bigint')",
        "SELECT zdm.add_column('public.items', 'status', 'text', $$'active'$$, true)",
        "SELECT zdm.add_column('public.items', 'handle', 'text', $$'h' || gen_random_uuid()$$, true, $$'h' || id$$)",
        "SELECT zdm.set_not_null('public.items', 'email', $$'none'$$)",
        "SELECT zdm.add_check('public.items', 'amount_positive', 'amount >= 0')",
        "SELECT zdm.rename_constraint('public.items', 'amount_positive', 'items_amount_positive')",
        "SELECT zdm.add_foreign_key('public.items', 'items_parent', ARRAY['parent_id'], 'public.parent', ARRAY['id'])",
        "SELECT zdm.drop_constraint('public.items', 'items_parent')",
        "SELECT zdm.create_index('public.items', 'items_email', 'USING btree (email)')",
        "SELECT zdm.drop_index('public.items', 'items_email')",
        "SELECT zdm.set_default('public.items', 'amount', '7')",
        "SELECT zdm.set_comment('public.items', 'items, as the new application sees them')",
        "SELECT zdm.set_comment('public.items', 'the amount', 'amount')",
        "SELECT zdm.add_unique('public.items', 'items_handle', ARRAY['handle'])",
        "SELECT zdm.rename_column('public.items', 'name', 'full_name')",
        // A column with a unique constraint and a default: both carried over, the index rebuilt CONCURRENTLY.
        "SELECT zdm.rename_column('public.items', 'handle', 'user_handle')",
        "SELECT zdm.drop_column('public.items', 'email')",
        "SELECT zdm.drop_not_null('public.items', 'full_name')",
        "SELECT zdm.set_replica_identity('public.items', 'index', 'items_handle')",
    ];
    for op in ops {
        let before = schema_of(&cluster, "public.items");
        let m: String = c.query_one(op, &[]).unwrap_or_else(|e| panic!("{op}: {e:?}")).get(0);
        drive(&mut c, &m, false);
        c.execute("SELECT zdm.rollback($1)", &[&m])
            .unwrap_or_else(|e| panic!("rollback {m}: {e}"));
        let after = schema_of(&cluster, "public.items");
        assert_eq!(before, after, "{op}: rollback did not restore the schema");
        let m: String = c.query_one(op, &[]).unwrap().get(0);
        drive(&mut c, &m, true);
        c.execute("SELECT zdm.complete($1)", &[&m])
            .unwrap_or_else(|e| panic!("complete {m}: {e}"));
        eprintln!("{m}: rolled back exactly, then completed");
    }
    std::thread::sleep(Duration::from_millis(300));
    let reports: Vec<_> = writers.into_iter().map(Client::stop).collect();
    let probe = prober.stop();
    let errors = report_errors(&reports);
    let statements: u64 = reports.iter().map(|r| r.statements).sum();
    eprintln!(
        "{statements} client statements, {errors} errors, readers waited at most {:.1} ms",
        probe.longest_wait_ms()
    );
    assert_eq!(errors, 0);
    assert!(
        probe.longest_wait_ms() < 300.0,
        "a reader waited {:.1} ms",
        probe.longest_wait_ms()
    );
    let diff = oracle_diff(
        &mut c,
        "SELECT id, note, note2 FROM public.items",
        "SELECT id, note, note2 FROM public.items_oracle",
        10,
    );
    assert!(diff.is_empty(), "{}", diff.join("\n"));

    // The final table is what the operations asked for.
    let final_schema = schema_of(&cluster, "public.items");
    for want in [
        "status text DEFAULT 'active'::text NOT NULL",
        "user_handle text DEFAULT ('h'::text || gen_random_uuid()) NOT NULL",
        "amount bigint DEFAULT 7 NOT NULL",
        "id bigint NOT NULL",
        "full_name text DEFAULT 'anonymous'::text,",
        "CONSTRAINT items_amount_positive CHECK ((amount >= 0))",
        "CONSTRAINT items_handle UNIQUE (user_handle)",
        "ALTER TABLE ONLY public.items REPLICA IDENTITY USING INDEX items_handle;",
        "COMMENT ON TABLE public.items IS 'items, as the new application sees them';",
        "COMMENT ON COLUMN public.items.amount IS 'the amount';",
    ] {
        assert!(final_schema.contains(want), "missing {want:?} in\n{final_schema}");
    }
    assert!(!final_schema.contains(" email "), "email was dropped:\n{final_schema}");
    assert!(
        !final_schema.contains("REFERENCES"),
        "the foreign key was dropped:\n{final_schema}"
    );
    assert!(
        !final_schema.contains("items_email"),
        "its index went with it:\n{final_schema}"
    );
    assert!(
        !final_schema.contains("zdm"),
        "nothing of pg_zdm is left on the table:\n{final_schema}"
    );
}
