//! In-server tests of rename_column from start to complete, rollback from every phase, what moves with a column.

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    #[allow(unused_imports)]
    use crate::error::sqlstate_of;
    #[allow(unused_imports)]
    use crate::tests::tests::*;
    use pgrx::prelude::*;

    #[pg_test]
    fn catalog_starts_empty() {
        assert_eq!(one::<i64>("SELECT count(*) FROM zdm.migrations"), Some(0));
    }

    #[pg_test]
    fn rename_column_whole_lifecycle() {
        users_table("public.users");
        let before = fingerprint("public.users", "id, name, email");
        let m = one::<String>("SELECT zdm.rename_column('public.users', 'name', 'full_name')").unwrap();
        assert_eq!(m, "users_rename_name_to_full_name");
        assert_eq!(one::<String>("SELECT phase FROM zdm.migrations").unwrap(), "started");

        // Old app and new app both write between start and complete.
        Spi::run("INSERT INTO users (id, name) VALUES (2001, 'old app')").unwrap();
        Spi::run("INSERT INTO users (id, full_name) VALUES (2002, 'new app')").unwrap();
        Spi::run("UPDATE users SET name = 'old upd' WHERE id = 1").unwrap();
        Spi::run("UPDATE users SET full_name = 'new upd' WHERE id = 2").unwrap();
        Spi::run("UPDATE users SET email = 'unrelated' WHERE id = 4").unwrap();
        assert_eq!(
            one::<String>("SELECT full_name FROM users WHERE id = 2001").unwrap(),
            "old app"
        );
        assert_eq!(
            one::<String>("SELECT name FROM users WHERE id = 2002").unwrap(),
            "new app"
        );
        assert_eq!(
            one::<String>("SELECT full_name FROM users WHERE id = 1").unwrap(),
            "old upd"
        );
        assert_eq!(one::<String>("SELECT name FROM users WHERE id = 2").unwrap(), "new upd");
        // The NOT NULL check is already enforced for new rows.
        assert_eq!(
            sqlstate("INSERT INTO users (id) VALUES (3000)").as_deref(),
            Some("23502")
        );

        // Complete before backfill is refused with the way out in the hint.
        assert_eq!(
            sqlstate("SELECT zdm.complete('users_rename_name_to_full_name')").as_deref(),
            Some("55000")
        );

        let mut batches = 0;
        while one::<i64>("SELECT zdm.backfill_batch('users_rename_name_to_full_name', 300)").unwrap() > 0 {
            batches += 1;
        }
        assert_eq!(batches, 4, "1002 rows in batches of 300");
        assert_eq!(one::<String>("SELECT phase FROM zdm.migrations").unwrap(), "backfilled");
        assert_eq!(
            one::<i64>("SELECT count(*) FROM users WHERE full_name IS DISTINCT FROM name"),
            Some(0)
        );
        assert_eq!(
            one::<bool>(
                "SELECT convalidated FROM pg_constraint WHERE conname = 'zdm_nn_users_rename_name_to_full_name'"
            ),
            Some(true)
        );

        Spi::run("SELECT zdm.complete('users_rename_name_to_full_name')").unwrap();
        assert_eq!(one::<String>("SELECT phase FROM zdm.migrations").unwrap(), "completed");
        assert_eq!(one::<i64>("SELECT count(*) FROM pg_attribute WHERE attrelid = 'users'::regclass AND attname = 'name' AND NOT attisdropped"), Some(0));
        assert_eq!(
            one::<bool>(
                "SELECT attnotnull FROM pg_attribute WHERE attrelid = 'users'::regclass AND attname = 'full_name'"
            ),
            Some(true)
        );
        assert_eq!(
            one::<i64>("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'users'::regclass"),
            Some(0)
        );
        assert_eq!(
            one::<i64>("SELECT count(*) FROM pg_constraint WHERE conrelid = 'users'::regclass AND contype = 'c'"),
            Some(0)
        );
        assert_eq!(
            one::<i64>("SELECT count(*) FROM pg_proc WHERE proname LIKE 'sync_users_rename%'"),
            Some(0)
        );
        // Values: the original rows (with the app writes above) kept exactly.
        let after = fingerprint("public.users", "id, full_name, email");
        assert_eq!(after.split(',').count(), before.split(',').count() + 2);
        assert_eq!(
            one::<String>("SELECT full_name FROM users WHERE id = 999").unwrap(),
            "user 999"
        );
        // Rollback after complete is refused.
        assert_eq!(
            sqlstate("SELECT zdm.rollback('users_rename_name_to_full_name')").as_deref(),
            Some("55000")
        );
        // The same change again later gets a fresh generated name.
        Spi::run("ALTER TABLE users RENAME COLUMN full_name TO name").unwrap();
        assert_eq!(
            one::<String>("SELECT zdm.rename_column('public.users', 'name', 'full_name')").unwrap(),
            "users_rename_name_to_full_name_2"
        );
        Spi::run("SELECT zdm.rollback('users_rename_name_to_full_name_2')").unwrap();
        let events =
            one::<i64>("SELECT count(*) FROM zdm.events WHERE migration = 'users_rename_name_to_full_name'").unwrap();
        assert!(events >= 5, "{events} events");
    }

    #[pg_test]
    fn rollback_from_each_phase_restores_the_table() {
        for (i, phase) in ["started", "backfilling", "backfilled"].iter().enumerate() {
            let t = format!("public.r{i}");
            users_table(&t);
            let before = fingerprint(&t, "id, name, email");
            let m = format!("r{i}");
            Spi::run(&format!("SELECT zdm.rename_column('{t}', 'name', 'full_name', '{m}')")).unwrap();
            if *phase != "started" {
                Spi::run(&format!("SELECT zdm.backfill_batch('{m}', 100)")).unwrap();
            }
            if *phase == "backfilled" {
                while one::<i64>(&format!("SELECT zdm.backfill_batch('{m}', 600)")).unwrap() > 0 {}
            }
            assert_eq!(
                one::<String>(&format!("SELECT phase FROM zdm.migrations WHERE name = '{m}'")).unwrap(),
                *phase
            );
            Spi::run(&format!("SELECT zdm.rollback('{m}')")).unwrap();
            assert_eq!(fingerprint(&t, "id, name, email"), before);
            assert_eq!(one::<i64>(&format!("SELECT count(*) FROM pg_attribute WHERE attrelid = '{t}'::regclass AND attnum > 0 AND NOT attisdropped")), Some(3));
            assert_eq!(
                one::<i64>(&format!(
                    "SELECT count(*) FROM pg_trigger WHERE tgrelid = '{t}'::regclass"
                )),
                Some(0)
            );
            assert_eq!(
                one::<i64>(&format!(
                    "SELECT count(*) FROM pg_constraint WHERE conrelid = '{t}'::regclass AND contype = 'c'"
                )),
                Some(0)
            );
            assert_eq!(
                one::<String>(&format!("SELECT phase FROM zdm.migrations WHERE name = '{m}'")).unwrap(),
                "rolled_back"
            );
        }
    }

    #[pg_test]
    fn defaults_sequences_and_comments_move_to_the_new_column() {
        Spi::run(
            "CREATE TABLE public.s (id int PRIMARY KEY, n serial, c text DEFAULT 'x');
                  COMMENT ON COLUMN public.s.n IS 'a counter';
                  INSERT INTO public.s (id) SELECT generate_series(1, 10);",
        )
        .unwrap();
        Spi::run("SELECT zdm.rename_column('public.s', 'n', 'counter', 'm_seq')").unwrap();
        Spi::run("INSERT INTO public.s (id) VALUES (11)").unwrap();
        while one::<i64>("SELECT zdm.backfill_batch('m_seq')").unwrap() > 0 {}
        Spi::run("SELECT zdm.complete('m_seq')").unwrap();
        Spi::run("INSERT INTO public.s (id) VALUES (12)").unwrap();
        assert_eq!(one::<i32>("SELECT counter FROM public.s WHERE id = 12"), Some(12));
        assert_eq!(one::<String>("SELECT col_description('public.s'::regclass, (SELECT attnum FROM pg_attribute WHERE attrelid = 'public.s'::regclass AND attname = 'counter'))").unwrap(), "a counter");
        assert!(one::<String>("SELECT pg_get_serial_sequence('public.s', 'counter')").is_some());
    }

    #[pg_test]
    fn rename_carries_indexes_and_constraints_over() {
        Spi::run("CREATE TABLE public.ref (code text PRIMARY KEY); INSERT INTO public.ref VALUES ('a'), ('b');
                  CREATE TABLE public.cv (id int PRIMARY KEY, code text NOT NULL, other int);
                  INSERT INTO public.cv SELECT g, CASE WHEN g % 2 = 0 THEN 'a' ELSE 'b' END, g FROM generate_series(1, 200) g;
                  CREATE INDEX cv_code ON public.cv (code DESC NULLS LAST, other) INCLUDE (id);
                  CREATE INDEX cv_lower ON public.cv (lower(code)) WHERE code <> 'z';
                  CREATE UNIQUE INDEX cv_code_other ON public.cv (code, other);
                  ALTER TABLE public.cv ADD CONSTRAINT cv_code_len CHECK (length(code) < 5);
                  ALTER TABLE public.cv ADD CONSTRAINT cv_code_other_u UNIQUE (other, code);
                  ALTER TABLE public.cv ADD CONSTRAINT cv_code_fk FOREIGN KEY (code) REFERENCES public.ref (code) ON DELETE CASCADE;").unwrap();
        let before = table_ddl("public.cv");
        let m = one::<String>("SELECT zdm.rename_column('public.cv', 'code', 'kind')").unwrap();
        assert_eq!(
            one::<i64>(&format!("SELECT count(*) FROM zdm.pending_statements('{m}')")),
            Some(4)
        );
        assert_eq!(
            sqlstate("INSERT INTO cv (id, code, other) VALUES (1000, 'zzzzzz', 1)").as_deref(),
            Some("23514")
        );
        assert_eq!(
            sqlstate("INSERT INTO cv (id, kind, other) VALUES (1000, 'c', 1)").as_deref(),
            Some("23503")
        );
        while one::<i64>(&format!("SELECT zdm.backfill_batch('{m}')")).unwrap() > 0 {}
        assert_eq!(
            sqlstate(&format!("SELECT zdm.complete('{m}')")).as_deref(),
            Some("55000")
        );
        build_pending(&m);
        Spi::run(&format!("SELECT zdm.complete('{m}')")).unwrap();
        let after = table_ddl("public.cv");
        // Everything as before (names, order, opclasses, predicates, validity), on the renamed column.
        assert_eq!(before.matches("code").count(), 15, "{before}");
        assert_eq!(
            after,
            "CREATE INDEX cv_code ON public.cv USING btree (kind DESC NULLS LAST, other) INCLUDE (id)
CREATE INDEX cv_lower ON public.cv USING btree (lower(kind)) WHERE (kind <> 'z'::text)
CREATE UNIQUE INDEX cv_code_other ON public.cv USING btree (kind, other)
CREATE UNIQUE INDEX cv_code_other_u ON public.cv USING btree (other, kind)
CREATE UNIQUE INDEX cv_pkey ON public.cv USING btree (id)
cv_code_fk FOREIGN KEY (kind) REFERENCES ref(code) ON DELETE CASCADE valid=true
cv_code_len CHECK ((length(kind) < 5)) valid=true
cv_code_other_u UNIQUE (other, kind) valid=true
cv_pkey PRIMARY KEY (id) valid=true",
            "\nbefore:\n{before}"
        );
        Spi::run("DELETE FROM public.ref WHERE code = 'a'").unwrap();
        assert_eq!(
            one::<i64>("SELECT count(*) FROM cv"),
            Some(100),
            "ON DELETE CASCADE carried over"
        );
    }
}
