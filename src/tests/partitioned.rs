//! In-server tests of column operations on partitioned tables: range (two
//! levels: a range partition split by hash, and a default partition), list
//! (with a default) and hash; every operation started, backfilled and
//! completed, and rolled back from every phase to the catalog as before.

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    #[allow(unused_imports)]
    use crate::tests::tests::*;
    use pgrx::prelude::*;

    const KINDS: [&str; 3] = ["range", "list", "hash"];

    /// A partitioned table `t` of 1200 rows: columns id, k (the partition
    /// key), name NOT NULL, email (NULL on every third row), amount.
    fn tree(t: &str, kind: &str) {
        let (k_type, by, parts) = match kind {
            "range" => (
                "date",
                "RANGE (k)",
                format!(
                    "CREATE TABLE {t}_2024 PARTITION OF {t} FOR VALUES FROM ('2024-01-01') TO ('2025-01-01') PARTITION BY HASH (id);
                     CREATE TABLE {t}_2024_h0 PARTITION OF {t}_2024 FOR VALUES WITH (MODULUS 2, REMAINDER 0);
                     CREATE TABLE {t}_2024_h1 PARTITION OF {t}_2024 FOR VALUES WITH (MODULUS 2, REMAINDER 1);
                     CREATE TABLE {t}_2025 PARTITION OF {t} FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
                     CREATE TABLE {t}_default PARTITION OF {t} DEFAULT;"
                ),
            ),
            "list" => (
                "text",
                "LIST (k)",
                format!(
                    "CREATE TABLE {t}_eu PARTITION OF {t} FOR VALUES IN ('eu');
                     CREATE TABLE {t}_us PARTITION OF {t} FOR VALUES IN ('us');
                     CREATE TABLE {t}_default PARTITION OF {t} DEFAULT;"
                ),
            ),
            _ => (
                "bigint",
                "HASH (k)",
                (0..3)
                    .map(|r| format!("CREATE TABLE {t}_h{r} PARTITION OF {t} FOR VALUES WITH (MODULUS 3, REMAINDER {r});"))
                    .collect::<String>(),
            ),
        };
        Spi::run(&format!(
            "CREATE TABLE {t} (id bigint, k {k_type} NOT NULL, name text NOT NULL, email text, amount integer NOT NULL,
                               PRIMARY KEY (id, k)) PARTITION BY {by};
             {parts}
             INSERT INTO {t} SELECT g, {}, 'user ' || g, CASE WHEN g % 3 = 0 THEN NULL ELSE 'u' || g || '@x' END, g
               FROM generate_series(1, 1200) g;",
            key_value(kind, "g")
        ))
        .unwrap();
    }

    /// The partition key's value for row `id` (an SQL expression over it).
    fn key_value(kind: &str, id: &str) -> String {
        match kind {
            "range" => format!("DATE '2024-01-01' + ({id} % 900)::int"),
            "list" => format!("(ARRAY['eu', 'us', 'apac'])[{id} % 3 + 1]"),
            _ => id.to_string(),
        }
    }

    /// Columns, constraints, indexes and triggers of every table of the tree
    /// and pg_zdm's generated functions: equal before start and after rollback.
    fn snapshot(t: &str) -> String {
        one::<String>(&format!(
            "WITH tree AS (SELECT relid FROM pg_partition_tree('{t}'))
             SELECT string_agg(d, E'\\n' ORDER BY d) FROM (
               SELECT a.attrelid::regclass || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
                      || ' notnull=' || a.attnotnull || ' default=' || coalesce(pg_get_expr(ad.adbin, ad.adrelid), '')
                      || ' comment=' || coalesce(col_description(a.attrelid, a.attnum), '') AS d
                 FROM pg_attribute a JOIN tree ON tree.relid = a.attrelid
                 LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
                WHERE a.attnum > 0 AND NOT a.attisdropped
               UNION ALL SELECT conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(c.oid) || ' valid=' || convalidated
                 FROM pg_constraint c JOIN tree ON tree.relid = c.conrelid
               UNION ALL SELECT pg_get_indexdef(indexrelid) || ' valid=' || indisvalid
                 FROM pg_index i JOIN tree ON tree.relid = i.indrelid
               UNION ALL SELECT tgrelid::regclass || ' trigger ' || tgname FROM pg_trigger g JOIN tree ON tree.relid = g.tgrelid
                WHERE NOT tgisinternal
               UNION ALL SELECT 'function ' || oid::regprocedure FROM pg_proc
                WHERE pronamespace = 'zdm'::regnamespace AND prosrc LIKE '%-- pg_zdm migration%') s"
        ))
        .unwrap_or_default()
    }

    #[derive(Clone, Copy, PartialEq, PartialOrd, Debug)]
    enum Stop {
        Started,
        Backfilling,
        Backfilled,
        Completed,
    }

    /// Start `op` (SQL with `{t}` for the table), write through the parent,
    /// go to `stop`; roll back there (the catalog as before) or complete and
    /// run `check`.
    fn exercise(kind: &str, label: &str, op: &str, stop: Stop, check: &dyn Fn(&str)) {
        let t = format!("public.{label}_{kind}_{}", stop as u8);
        tree(&t, kind);
        let before = snapshot(&t);
        let m = one::<String>(&op.replace("{t}", &t).replace("{n}", &t["public.".len()..])).unwrap();
        // The old application writes meanwhile, through the parent.
        Spi::run(&format!(
            "INSERT INTO {t} (id, k, name, email, amount) VALUES (5000, {}, 'new row', 'n@x', 5);
             UPDATE {t} SET amount = amount + 1 WHERE id IN (7, 8, 9);",
            key_value(kind, "5000")
        ))
        .unwrap();
        if stop >= Stop::Backfilling {
            one::<i64>(&format!("SELECT zdm.backfill_batch('{m}', 100)"));
        }
        if stop >= Stop::Backfilled {
            while one::<i64>(&format!("SELECT zdm.backfill_batch('{m}', 250)")).unwrap_or(0) > 0 {}
            build_pending(&m);
        }
        if stop == Stop::Completed {
            Spi::run(&format!("SELECT zdm.complete('{m}')")).unwrap();
            check(&t);
            assert_eq!(
                one::<i64>(&format!(
                    "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'zdm%' AND tgrelid IN (SELECT relid FROM pg_partition_tree('{t}'))"
                )),
                Some(0),
                "{label} {kind}: no trigger left"
            );
        } else {
            Spi::run(&format!("SELECT zdm.rollback('{m}')")).unwrap();
            assert_eq!(snapshot(&t), before, "{label} {kind} rolled back at {stop:?}");
        }
    }

    fn every_kind_and_stop(label: &str, op: &str, check: &dyn Fn(&str)) {
        for kind in KINDS {
            for stop in [Stop::Started, Stop::Backfilling, Stop::Backfilled, Stop::Completed] {
                exercise(kind, label, op, stop, check);
            }
        }
    }

    #[pg_test]
    fn rename_column_on_partitioned_tables() {
        every_kind_and_stop("rn", "SELECT zdm.rename_column('{t}', 'name', 'full_name')", &|t| {
            assert_eq!(attr(t, "name", "attnum"), None);
            assert_eq!(
                one::<i64>(&format!("SELECT count(*) FROM {t} WHERE full_name IS NULL OR full_name NOT LIKE '%row' AND full_name <> 'user ' || id")),
                Some(0)
            );
            assert_eq!(attr(t, "full_name", "attnotnull").as_deref(), Some("true"));
        });
    }

    #[pg_test]
    fn alter_column_type_on_partitioned_tables() {
        every_kind_and_stop("ty", "SELECT zdm.alter_column_type('{t}', 'amount', 'bigint')", &|t| {
            assert_eq!(attr(t, "amount", "atttypid::regtype").as_deref(), Some("bigint"));
            assert_eq!(
                one::<i64>(&format!("SELECT count(*) FROM {t} WHERE amount <> id + CASE WHEN id IN (7, 8, 9) THEN 1 ELSE 0 END AND id <> 5000")),
                Some(0)
            );
        });
    }

    #[pg_test]
    fn set_not_null_on_partitioned_tables() {
        every_kind_and_stop("nn", "SELECT zdm.set_not_null('{t}', 'email', $$'none'$$)", &|t| {
            assert_eq!(attr(t, "email", "attnotnull").as_deref(), Some("true"));
            assert_eq!(
                one::<i64>(&format!("SELECT count(*) FROM {t} WHERE email = 'none'")),
                Some(400)
            );
        });
    }

    #[pg_test]
    fn add_and_drop_column_on_partitioned_tables() {
        every_kind_and_stop(
            "ac",
            "SELECT zdm.add_column('{t}', 'handle', 'text', NULL, true, $$'h' || id$$)",
            &|t| {
                assert_eq!(
                    one::<i64>(&format!("SELECT count(*) FROM {t} WHERE handle <> 'h' || id")),
                    Some(0)
                );
                assert_eq!(attr(t, "handle", "attnotnull").as_deref(), Some("true"));
            },
        );
        every_kind_and_stop("dc", "SELECT zdm.drop_column('{t}', 'email')", &|t| {
            assert_eq!(attr(t, "email", "attnum"), None);
        });
    }

    #[pg_test]
    fn add_check_on_partitioned_tables() {
        every_kind_and_stop(
            "ck",
            "SELECT zdm.add_check('{t}', 'amount_positive', 'amount > 0')",
            &|t| {
                assert_eq!(
                    one::<i64>(&format!(
                        "SELECT count(*) FROM pg_constraint WHERE conname = 'amount_positive' AND convalidated
                        AND conrelid IN (SELECT relid FROM pg_partition_tree('{t}'))"
                    )),
                    one::<i64>(&format!("SELECT count(*) FROM pg_partition_tree('{t}')"))
                );
            },
        );
    }

    #[pg_test]
    fn create_index_on_partitioned_tables() {
        every_kind_and_stop(
            "ix",
            "SELECT zdm.create_index('{t}', '{n}_email', 'USING btree (email)')",
            &|t| {
                let index = format!("{t}_email");
                assert_eq!(
                    one::<bool>(&format!(
                        "SELECT indisvalid FROM pg_index WHERE indexrelid = '{index}'::regclass"
                    )),
                    Some(true)
                );
                // Every partitioned and leaf table has its index, attached below it.
                assert_eq!(
                    one::<i64>(&format!("SELECT count(*) FROM pg_partition_tree('{index}')")),
                    one::<i64>(&format!("SELECT count(*) FROM pg_partition_tree('{t}')"))
                );
            },
        );
    }

    #[pg_test]
    fn add_unique_on_partitioned_tables() {
        every_kind_and_stop(
            "uq",
            "SELECT zdm.add_unique('{t}', '{n}_u', ARRAY['id', 'k', 'email'])",
            &|t| {
                let n = &t["public.".len()..];
                assert_eq!(
                one::<String>(&format!(
                    "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = '{n}_u' AND conrelid = '{t}'::regclass"
                ))
                .as_deref(),
                Some("UNIQUE (id, k, email)")
            );
                // Every partition's constraint hangs from the table's, its index valid.
                assert_eq!(
                one::<i64>(&format!(
                    "SELECT count(*) FROM pg_constraint c JOIN pg_index i ON i.indexrelid = c.conindid
                      WHERE c.contype = 'u' AND i.indisvalid AND c.conrelid IN (SELECT relid FROM pg_partition_tree('{t}'))"
                )),
                one::<i64>(&format!("SELECT count(*) FROM pg_partition_tree('{t}')"))
            );
            },
        );
    }

    #[pg_test]
    fn carried_index_and_check_follow_a_renamed_column() {
        tree("public.carry", "range");
        Spi::run(
            "CREATE INDEX carry_name_idx ON public.carry (name);
             ALTER TABLE public.carry ADD CONSTRAINT name_long CHECK (length(name) > 2);",
        )
        .unwrap();
        let m = one::<String>("SELECT zdm.rename_column('public.carry', 'name', 'full_name')").unwrap();
        while one::<i64>(&format!("SELECT zdm.backfill_batch('{m}', 500)")).unwrap_or(0) > 0 {}
        assert!(
            sqlstate(&format!("SELECT zdm.complete('{m}')")).is_some(),
            "index builds pending"
        );
        build_pending(&m);
        Spi::run(&format!("SELECT zdm.complete('{m}')")).unwrap();
        assert_eq!(
            one::<String>("SELECT pg_get_indexdef('public.carry_name_idx'::regclass)").unwrap(),
            "CREATE INDEX carry_name_idx ON ONLY public.carry USING btree (full_name)"
        );
        assert_eq!(
            one::<bool>("SELECT indisvalid FROM pg_index WHERE indexrelid = 'public.carry_name_idx'::regclass"),
            Some(true)
        );
        assert_eq!(
            one::<String>("SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'name_long' AND conrelid = 'public.carry'::regclass").unwrap(),
            "CHECK ((length(full_name) > 2))"
        );
    }

    #[pg_test]
    fn sync_triggers_fire_always_on_every_partition_present_and_future() {
        tree("public.trg", "range");
        let m = one::<String>("SELECT zdm.rename_column('public.trg', 'name', 'full_name')").unwrap();
        Spi::run(
            "CREATE TABLE public.trg_2030 PARTITION OF public.trg FOR VALUES FROM ('2030-01-01') TO ('2031-01-01')",
        )
        .unwrap();
        assert_eq!(
            one::<i64>(
                "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'zdm%' AND tgenabled <> 'A'
                    AND tgrelid IN (SELECT relid FROM pg_partition_tree('public.trg'))"
            ),
            Some(0)
        );
        assert_eq!(
            one::<i64>(
                "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'zdm%' AND tgrelid = 'public.trg_2030'::regclass"
            ),
            Some(2)
        );
        Spi::run("INSERT INTO public.trg (id, k, name, amount) VALUES (9000, '2030-07-01', 'late', 1)").unwrap();
        assert_eq!(
            one::<String>("SELECT full_name FROM public.trg_2030 WHERE id = 9000").as_deref(),
            Some("late")
        );
        // Turning a partition's copy off is refused like the parent's.
        assert_eq!(
            sqlstate("ALTER TABLE public.trg_2025 DISABLE TRIGGER zdm_sync_trg_rename_name_to_full_name").as_deref(),
            Some("55006")
        );
        Spi::run(&format!("SELECT zdm.rollback('{m}')")).unwrap();
    }

    #[pg_test]
    fn partitions_created_and_detached_during_the_backfill() {
        tree("public.win", "range");
        let m = one::<String>("SELECT zdm.rename_column('public.win', 'name', 'full_name')").unwrap();
        one::<i64>(&format!("SELECT zdm.backfill_batch('{m}', 100)"));
        // (Detached first: in one transaction, a partition created and filled
        // before an ALTER TABLE of the tree looks attached with rows to the guard.)
        Spi::run(
            "ALTER TABLE public.win DETACH PARTITION public.win_2025;
             CREATE TABLE public.win_2027 PARTITION OF public.win FOR VALUES FROM ('2027-01-01') TO ('2028-01-01');
             INSERT INTO public.win (id, k, name, amount) VALUES (8000, '2027-02-01', 'in new partition', 1);",
        )
        .unwrap();
        while one::<i64>(&format!("SELECT zdm.backfill_batch('{m}', 100)")).unwrap_or(0) > 0 {}
        assert_eq!(
            one::<i64>("SELECT count(*) FROM public.win WHERE full_name IS DISTINCT FROM name"),
            Some(0)
        );
        assert_eq!(
            one::<String>(&format!(
                "SELECT string_agg(partition || ' ' || state || ' ' || rows_done, ', ' ORDER BY position)
                   FROM zdm.partition_progress WHERE migration = '{m}'"
            ))
            .unwrap(),
            "public.win_2025 gone 100, public.win_default done 267, public.win_2024_h0 done 179, public.win_2024_h1 done 187"
                .replace("179", &one::<i64>("SELECT count(*) FROM public.win_2024_h0").unwrap().to_string())
                .replace("187", &one::<i64>("SELECT count(*) FROM public.win_2024_h1").unwrap().to_string())
                .replace("267", &one::<i64>("SELECT count(*) FROM public.win_default").unwrap().to_string())
        );
        Spi::run(&format!("SELECT zdm.complete('{m}')")).unwrap();
        assert_eq!(
            one::<String>("SELECT full_name FROM public.win WHERE id = 8000").as_deref(),
            Some("in new partition")
        );
    }

    /// The leaf a batch stopped in is detached: the next leaf starts at its
    /// own beginning, not after the detached one's last key (hash partitions
    /// interleave the keys: a carried-over position would skip rows).
    #[pg_test]
    fn the_next_partition_starts_at_its_beginning() {
        tree("public.hop", "hash");
        let m = one::<String>("SELECT zdm.set_not_null('public.hop', 'email', $$'none'$$)").unwrap();
        one::<i64>(&format!("SELECT zdm.backfill_batch('{m}', 100)"));
        let first = one::<String>(&format!(
            "SELECT partition FROM zdm.partition_progress WHERE migration = '{m}' AND state = 'backfilling'"
        ))
        .unwrap();
        Spi::run(&format!("ALTER TABLE public.hop DETACH PARTITION {first}")).unwrap();
        while one::<i64>(&format!("SELECT zdm.backfill_batch('{m}', 100)")).unwrap_or(0) > 0 {}
        assert_eq!(
            one::<i64>("SELECT count(*) FROM public.hop WHERE email IS NULL"),
            Some(0)
        );
        Spi::run(&format!("SELECT zdm.complete('{m}')")).unwrap();
        assert_eq!(attr("public.hop", "email", "attnotnull").as_deref(), Some("true"));
    }

    /// zdm.progress waits for every partition's index build and attach, but
    /// not for a partition detached before its build.
    #[pg_test]
    fn progress_waits_for_each_partition_index_but_not_a_detached_one() {
        tree("public.pix", "range");
        let m = one::<String>("SELECT zdm.create_index('public.pix', 'pix_email', 'USING btree (email)')").unwrap();
        let state = || one::<String>(&format!("SELECT state FROM zdm.progress WHERE migration = '{m}'")).unwrap();
        assert_eq!(state(), "index builds pending: run zdm.pending_statements()");
        Spi::run("ALTER TABLE public.pix DETACH PARTITION public.pix_2025").unwrap();
        let pending = one::<i64>(&format!("SELECT count(*) FROM zdm.pending_statements('{m}')")).unwrap();
        assert_eq!(pending, 6, "3 leaves left: a build and an attach each");
        build_pending(&m);
        assert_eq!(state(), "ready to complete");
        Spi::run(&format!("SELECT zdm.complete('{m}')")).unwrap();
        assert_eq!(
            one::<bool>("SELECT indisvalid FROM pg_index WHERE indexrelid = 'public.pix_email'::regclass"),
            Some(true)
        );
    }

    /// Each leaf's checks are validated as soon as its backfill is done, in
    /// that transaction; the parent's at the end.
    #[pg_test]
    fn checks_are_validated_partition_by_partition() {
        tree("public.val", "list");
        let per_partition = format!(
            "SELECT count(*) FROM zdm.plan_steps('{{\"op\": \"set_not_null\", \"table\": \"public.val\", \"column\": \"email\", \"fill_expr\": \"1\"}}')
              WHERE phase = 'backfill' AND statement LIKE 'ALTER TABLE public.val_% VALIDATE CONSTRAINT%' AND lock_mode = 'SHARE UPDATE EXCLUSIVE'"
        );
        assert_eq!(one::<i64>(&per_partition), Some(3), "one per leaf, shown by the plan");
        let m = one::<String>("SELECT zdm.set_not_null('public.val', 'email', $$'none'$$)").unwrap();
        let validated = || {
            one::<String>(&format!(
                "SELECT string_agg(conrelid::regclass || '=' || convalidated, ' ' ORDER BY conrelid::regclass::text)
                   FROM pg_constraint WHERE conname = 'zdm_nn_{m}'"
            ))
            .unwrap()
        };
        assert_eq!(validated(), "val=false val_default=false val_eu=false val_us=false");
        // The walk's first leaf (val_default, 400 rows) in two batches; the
        // third call finds it done, validates it, and runs a batch in val_eu.
        for _ in 0..3 {
            one::<i64>(&format!("SELECT zdm.backfill_batch('{m}', 300)"));
        }
        assert_eq!(validated(), "val=false val_default=true val_eu=false val_us=false");
        assert_eq!(
            one::<i64>(&format!(
                "SELECT count(*) FROM zdm.plan_steps('{{\"op\": \"add_check\", \"table\": \"public.val\", \"constraint\": \"pos\", \"check\": \"amount > 0\"}}')
                  WHERE statement LIKE 'ALTER TABLE public.val_% VALIDATE%'"
            )),
            Some(0),
            "no backfill, no validation by partition"
        );
        while one::<i64>(&format!("SELECT zdm.backfill_batch('{m}', 300)")).unwrap_or(0) > 0 {}
        assert_eq!(validated(), "val=true val_default=true val_eu=true val_us=true");
        Spi::run(&format!("SELECT zdm.complete('{m}')")).unwrap();
    }

    #[pg_test]
    fn a_partition_with_rows_cannot_join_during_a_migration() {
        tree("public.att", "list");
        let m = one::<String>("SELECT zdm.rename_column('public.att', 'name', 'full_name')").unwrap();
        Spi::run(
            "CREATE TABLE public.att_apac (LIKE public.att INCLUDING ALL);
             INSERT INTO public.att_apac (id, k, name, full_name, amount) VALUES (1, 'apac2', 'x', 'x', 1);
             CREATE TABLE public.att_latam (LIKE public.att INCLUDING ALL);",
        )
        .unwrap();
        let e = error_text("ALTER TABLE public.att ATTACH PARTITION public.att_apac FOR VALUES IN ('apac2')");
        assert!(
            e.starts_with("55006: pg_zdm: partition public.att_apac of table public.att has rows"),
            "{e}"
        );
        assert!(e.contains("CREATE TABLE ... PARTITION OF"), "{e}");
        // An empty one may: whatever it gets goes through the triggers.
        assert_eq!(
            sqlstate("ALTER TABLE public.att ATTACH PARTITION public.att_latam FOR VALUES IN ('latam')"),
            None
        );
        Spi::run(&format!("SELECT zdm.rollback('{m}')")).unwrap();
    }

    #[pg_test]
    fn what_partitioned_tables_cannot_do_is_refused() {
        tree("public.rf", "range");
        tree("public.rfh", "hash");
        Spi::run("CREATE TABLE public.rf_ref (id bigint PRIMARY KEY)").unwrap();
        let cases = [
            (
                "SELECT zdm.alter_column_type('public.rf', 'k', 'timestamp')",
                "partition key",
            ),
            ("SELECT zdm.drop_column('public.rf', 'k')", "partition key"),
            (
                "SELECT zdm.rename_column('public.rf', 'k', 'day')",
                "RENAME COLUMN k TO day",
            ),
            (
                "SELECT zdm.alter_column_type('public.rfh', 'k', 'numeric')",
                "partition key",
            ),
            (
                "SELECT zdm.alter_column_type('public.rf', 'id', 'numeric')",
                "partition key",
            ),
            (
                "SELECT zdm.alter_column_type('public.rfh', 'id', 'numeric')",
                "key of partitioned relation",
            ),
            (
                "SELECT zdm.add_foreign_key('public.rf', 'fk', ARRAY['amount'], 'public.rf_ref', ARRAY['id'])",
                "NOT VALID",
            ),
            (
                "SELECT zdm.add_unique('public.rf', 'u', ARRAY['k', 'name'])",
                "must include its partition key: id missing",
            ),
            (
                "SELECT zdm.create_shadow_table('public.rf', ARRAY['ALTER COLUMN amount TYPE bigint'])",
                "Column operations work",
            ),
            (
                "SELECT zdm.rename_column('public.rf_2025', 'name', 'n')",
                "partition of public.rf",
            ),
        ];
        for (sql, says) in cases {
            let e = error_text(sql);
            assert!(e.starts_with("0A000"), "{sql}: {e}");
            assert!(e.contains(says), "{sql}: {e}");
        }
        assert_eq!(one::<i64>("SELECT count(*) FROM zdm.migrations"), Some(0));
    }

    #[pg_test]
    fn plan_lists_every_partition() {
        tree("public.pl", "range");
        let rows = |spec: &str, what: &str| {
            one::<i64>(&format!("SELECT count(*) FROM zdm.plan_steps({spec}) WHERE {what}")).unwrap()
        };
        let index = "'{\"op\": \"create_index\", \"table\": \"public.pl\", \"index\": \"pl_email\", \"definition\": \"(email)\"}'";
        // 4 leaves: a build and an attach each; 1 partitioned partition: ON ONLY and attach.
        assert_eq!(rows(index, "top_level"), 8);
        assert_eq!(rows(index, "statement LIKE '%ON ONLY public.pl_2024 %'"), 1);
        let rename =
            "'{\"op\": \"rename_column\", \"table\": \"public.pl\", \"column\": \"name\", \"new_name\": \"n\"}'";
        // Per leaf: its batches, then its NOT NULL check validated.
        assert_eq!(
            rows(
                rename,
                "phase = 'backfill' AND statement LIKE 'SELECT * FROM zdm.backfill_p%'"
            ),
            4
        );
        assert_eq!(
            rows(
                rename,
                "phase = 'backfill' AND statement LIKE '% VALIDATE CONSTRAINT %'"
            ),
            4
        );
        assert_eq!(
            rows(rename, "phase = 'backfill' AND locked_relation = 'public.pl_default'"),
            2
        );
    }
}
