//! In-server tests of the catalog-only operations: set_default,
//! drop_default, drop_not_null, set_comment, rename_constraint,
//! set_replica_identity.

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    #[allow(unused_imports)]
    use crate::tests::tests::*;
    use pgrx::prelude::*;

    /// Every column's type, NOT NULL, default and comment, the table's
    /// comment, indexes, constraints and replica identity: what these
    /// operations change, to compare before and after.
    fn schema_of(t: &str) -> String {
        let columns = one::<String>(&format!(
            "SELECT string_agg(concat_ws(' ', attname, format_type(atttypid, atttypmod), attnotnull,
                                         pg_get_expr(d.adbin, d.adrelid), col_description(attrelid, attnum)),
                               E'\n' ORDER BY attnum)
               FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
              WHERE attrelid = '{t}'::regclass AND attnum > 0 AND NOT attisdropped"
        ))
        .unwrap();
        let table = one::<String>(&format!(
            "SELECT concat_ws(' ', relreplident, obj_description(oid, 'pg_class')) FROM pg_class WHERE oid = '{t}'::regclass"
        ))
        .unwrap();
        format!("{columns}\n{table}\n{}", table_ddl(t))
    }

    #[pg_test]
    fn set_default_waits_for_complete() {
        orders_table("public.sd");
        let before = schema_of("public.sd");
        let m = one::<String>("SELECT zdm.set_default('public.sd', 'amount', '42')").unwrap();
        assert_eq!(m, "sd_amount_set_default");
        Spi::run("INSERT INTO sd (id) VALUES (9001)").unwrap();
        assert_eq!(
            one::<i32>("SELECT amount FROM sd WHERE id = 9001"),
            Some(0),
            "old default until complete"
        );
        assert_eq!(schema_of("public.sd"), before);
        Spi::run(&format!("SELECT zdm.complete('{m}')")).unwrap();
        Spi::run("INSERT INTO sd (id) VALUES (9002)").unwrap();
        assert_eq!(one::<i32>("SELECT amount FROM sd WHERE id = 9002"), Some(42));
        // Volatile defaults are allowed; a function outside pg_catalog needs its schema.
        let m = one::<String>("SELECT zdm.set_default('public.sd', 'note', 'md5(random()::text)')").unwrap();
        Spi::run(&format!("SELECT zdm.complete('{m}')")).unwrap();
        Spi::run("INSERT INTO sd (id) VALUES (9003)").unwrap();
        assert_eq!(one::<i32>("SELECT length(note) FROM sd WHERE id = 9003"), Some(32));
        assert_eq!(shadow_leftovers(), 0);
    }

    #[pg_test]
    fn set_and_drop_default_roll_back_to_the_same_schema() {
        orders_table("public.sr");
        let before = schema_of("public.sr");
        for call in [
            "zdm.set_default('public.sr', 'amount', '7')",
            "zdm.drop_default('public.sr', 'amount')",
        ] {
            let m = one::<String>(&format!("SELECT {call}")).unwrap();
            Spi::run(&format!("SELECT zdm.rollback('{m}')")).unwrap();
            assert_eq!(schema_of("public.sr"), before, "{call}");
        }
        assert_eq!(shadow_leftovers(), 0);
    }

    #[pg_test]
    fn drop_default_at_complete() {
        orders_table("public.dd");
        assert_eq!(
            one::<String>(&format!(
                "SELECT string_agg(phase || ': ' || lock_mode || ' ' || statement, E'\n') FROM zdm.plan_steps(
                   '{{\"op\": \"drop_default\", \"table\": \"public.dd\", \"column\": \"amount\"}}')"
            ))
            .as_deref(),
            Some("complete: ACCESS EXCLUSIVE ALTER TABLE public.dd ALTER COLUMN amount DROP DEFAULT")
        );
        let m = one::<String>("SELECT zdm.drop_default('public.dd', 'amount')").unwrap();
        assert_eq!(
            sqlstate("INSERT INTO dd (id) VALUES (9001)"),
            None,
            "the old default until complete"
        );
        Spi::run(&format!("SELECT zdm.complete('{m}')")).unwrap();
        assert_eq!(sqlstate("INSERT INTO dd (id) VALUES (9002)").as_deref(), Some("23502"));
    }

    #[pg_test]
    fn default_refusals() {
        orders_table("public.dq");
        Spi::run("ALTER TABLE dq ADD COLUMN n int GENERATED ALWAYS AS IDENTITY").unwrap();
        let refused = error_text("SELECT zdm.set_default('public.dq', 'nope', '1')");
        assert!(
            refused.starts_with("42703: column \"nope\" of relation \"public.dq\" does not exist"),
            "{refused}"
        );
        assert_eq!(
            sqlstate("SELECT zdm.set_default('public.dq', 'amount', 'id + 1')").as_deref(),
            Some("42703"),
            "a default reads no column"
        );
        assert_eq!(
            sqlstate("SELECT zdm.set_default('public.dq', 'amount', $$'abc'$$)").as_deref(),
            Some("22P02")
        );
        assert_eq!(
            error_text("SELECT zdm.drop_default('public.dq', 'note')"),
            "22023: column note of relation public.dq has no default / Nothing to change."
        );
        assert_eq!(
            error_text("SELECT zdm.set_default('public.dq', 'n', '1')"),
            "0A000: column n of relation public.dq is an identity column: its values come from its sequence / \
             A default applies to ordinary columns only."
        );
        assert_eq!(one::<i64>("SELECT count(*) FROM zdm.migrations"), Some(0));
    }

    #[pg_test]
    fn drop_not_null_at_start_and_its_rollback() {
        users_table("public.dn");
        let before = schema_of("public.dn");
        assert_eq!(
            one::<String>(
                "SELECT string_agg(phase || ': ' || lock_mode || ' ' || left(statement, 62), E'\n' ORDER BY phase DESC)
                   FROM zdm.plan_steps('{\"op\": \"drop_not_null\", \"table\": \"public.dn\", \"column\": \"name\"}')"
            )
            .as_deref(),
            Some(
                "start: ACCESS EXCLUSIVE ALTER TABLE public.dn ALTER COLUMN name DROP NOT NULL\n\
                 rollback: ACCESS EXCLUSIVE DO $zdm$\nBEGIN\n    ALTER TABLE public.dn ALTER COLUMN name SET"
            )
        );
        let m = one::<String>("SELECT zdm.drop_not_null('public.dn', 'name')").unwrap();
        assert_eq!(m, "dn_name_drop_not_null");
        Spi::run("INSERT INTO dn (id, name) VALUES (9001, NULL)").unwrap();
        assert_eq!(
            error_text("SELECT zdm.rollback('dn_name_drop_not_null')"),
            "23502: column name of relation public.dn has NULLs written since migration 'dn_name_drop_not_null' \
             started / Nothing was changed. Replace them (UPDATE public.dn SET name = ... WHERE name IS NULL) and \
             roll back again; or keep the NULLs: SELECT zdm.complete('dn_name_drop_not_null');"
        );
        Spi::run("UPDATE dn SET name = 'fixed' WHERE name IS NULL").unwrap();
        Spi::run("SELECT zdm.rollback('dn_name_drop_not_null')").unwrap();
        assert_eq!(schema_of("public.dn"), before);
        assert_eq!(shadow_leftovers(), 0);
        Spi::run("SELECT zdm.forget('dn_name_drop_not_null')").unwrap();
        let m = one::<String>("SELECT zdm.drop_not_null('public.dn', 'name')").unwrap();
        Spi::run("INSERT INTO dn (id, name) VALUES (9002, NULL)").unwrap();
        Spi::run(&format!("SELECT zdm.complete('{m}')")).unwrap();
        assert_eq!(attr("dn", "name", "attnotnull").as_deref(), Some("false"));
        assert_eq!(shadow_leftovers(), 0);
    }

    #[pg_test]
    fn drop_not_null_refusals() {
        users_table("public.dz");
        Spi::run(
            "ALTER TABLE dz ADD COLUMN n int GENERATED ALWAYS AS IDENTITY, ADD COLUMN r int NOT NULL DEFAULT 0;
             CREATE UNIQUE INDEX dz_r ON dz (id, r);
             ALTER TABLE dz REPLICA IDENTITY USING INDEX dz_r;",
        )
        .unwrap();
        assert_eq!(
            error_text("SELECT zdm.drop_not_null('public.dz', 'email')"),
            "22023: column email of relation public.dz is already nullable / Nothing to change."
        );
        assert_eq!(
            error_text("SELECT zdm.drop_not_null('public.dz', 'id')"),
            "42P16: column id of relation public.dz is in the primary key / Change the table's key first."
        );
        assert!(error_text("SELECT zdm.drop_not_null('public.dz', 'n')")
            .starts_with("42P16: column n of relation public.dz is an identity column"));
        assert!(error_text("SELECT zdm.drop_not_null('public.dz', 'r')")
            .starts_with("42P16: column r of relation public.dz is in index dz_r used as replica identity"));
        assert_eq!(
            sqlstate("SELECT zdm.drop_not_null('public.dz', 'nope')").as_deref(),
            Some("42703")
        );
        assert_eq!(one::<i64>("SELECT count(*) FROM zdm.migrations"), Some(0));
    }

    #[pg_test]
    fn set_comment_of_a_table_and_a_column_at_complete() {
        orders_table("public.sc");
        Spi::run("COMMENT ON TABLE sc IS 'old'; COMMENT ON COLUMN sc.note IS 'old note'").unwrap();
        let before = schema_of("public.sc");
        let m = one::<String>("SELECT zdm.set_comment('public.sc', 'new')").unwrap();
        assert_eq!(m, "sc_comment");
        let c = one::<String>(r"SELECT zdm.set_comment('public.sc', E'it''s \\ new\nline', 'note', 'c1')").unwrap();
        assert_eq!(schema_of("public.sc"), before, "nothing changes before complete");
        assert_eq!(
            one::<String>(
                "SELECT lock_mode || ' ' || statement FROM zdm.plan_steps('{\"op\": \"set_comment\", \"table\": \"public.sc\", \"column\": \"amount\", \"comment\": \"a\"}')"
            )
            .as_deref(),
            Some("SHARE UPDATE EXCLUSIVE COMMENT ON COLUMN public.sc.amount IS 'a'")
        );
        for name in [&m, &c] {
            Spi::run(&format!("SELECT zdm.rollback('{name}')")).unwrap();
        }
        assert_eq!(schema_of("public.sc"), before);
        Spi::run("SELECT zdm.set_comment('public.sc', 'new', migration => 't2')").unwrap();
        Spi::run("SELECT zdm.set_comment('public.sc', E'it''s \\\\ new\nline', 'note', 'c2')").unwrap();
        Spi::run("SELECT zdm.set_comment('public.sc', NULL, 'amount', 'c3')").unwrap();
        for name in ["t2", "c2", "c3"] {
            Spi::run(&format!("SELECT zdm.complete('{name}')")).unwrap();
        }
        assert_eq!(
            one::<String>("SELECT obj_description('sc'::regclass, 'pg_class')").as_deref(),
            Some("new")
        );
        assert_eq!(
            one::<String>("SELECT col_description('sc'::regclass, 3)").as_deref(),
            Some("it's \\ new\nline")
        );
        assert_eq!(
            sqlstate("SELECT zdm.set_comment('public.sc', 'x', 'nope')").as_deref(),
            Some("42703")
        );
        assert_eq!(shadow_leftovers(), 0);
    }

    #[pg_test]
    fn rename_constraint_at_complete_with_its_index() {
        orders_table("public.rc");
        Spi::run(
            "ALTER TABLE rc ADD CONSTRAINT rc_amount_check CHECK (amount >= 0), ADD CONSTRAINT rc_note_key UNIQUE (id, note);
             CREATE TABLE rc_taken ();",
        )
        .unwrap();
        let before = schema_of("public.rc");
        let m = one::<String>("SELECT zdm.rename_constraint('public.rc', 'rc_note_key', 'rc_id_note_key')").unwrap();
        assert_eq!(m, "rc_rename_rc_note_key_to_rc_id_note_key");
        let k = one::<String>("SELECT zdm.rename_constraint('public.rc', 'rc_amount_check', 'rc_positive')").unwrap();
        assert_eq!(schema_of("public.rc"), before);
        assert_eq!(
            sqlstate("SELECT zdm.set_not_null('public.rc', 'note')").as_deref(),
            Some("55006"),
            "its columns are claimed"
        );
        for name in [&m, &k] {
            Spi::run(&format!("SELECT zdm.rollback('{name}')")).unwrap();
        }
        assert_eq!(schema_of("public.rc"), before);
        Spi::run("SELECT zdm.rename_constraint('public.rc', 'rc_note_key', 'rc_id_note_key', 'r2')").unwrap();
        Spi::run("SELECT zdm.complete('r2')").unwrap();
        assert_eq!(
            one::<String>("SELECT pg_get_indexdef('public.rc_id_note_key'::regclass)").as_deref(),
            Some("CREATE UNIQUE INDEX rc_id_note_key ON public.rc USING btree (id, note)")
        );
        // Refusals.
        let refused = error_text("SELECT zdm.rename_constraint('public.rc', 'nope', 'x')");
        assert!(
            refused.starts_with("42704: constraint \"nope\" of relation \"public.rc\" does not exist"),
            "{refused}"
        );
        assert_eq!(
            error_text("SELECT zdm.rename_constraint('public.rc', 'rc_amount_check', 'rc_pkey')"),
            "42710: \"rc_pkey\" is already the name of a constraint of the table / Choose another name."
        );
        assert_eq!(
            sqlstate("SELECT zdm.rename_constraint('public.rc', 'rc_id_note_key', 'rc_taken')").as_deref(),
            Some("42P07")
        );
        assert_eq!(
            sqlstate("SELECT zdm.rename_constraint('public.rc', 'rc_amount_check', 'rc_taken')"),
            None,
            "a check has no index"
        );
        Spi::run("SELECT zdm.set_not_null('public.rc', 'note')").unwrap();
        let own = one::<String>("SELECT conname::text FROM pg_constraint WHERE conname LIKE 'zdm\\_%'").unwrap();
        assert!(
            error_text(&format!("SELECT zdm.rename_constraint('public.rc', '{own}', 'mine')"))
                .starts_with("55006: constraint")
        );
    }

    #[pg_test]
    fn set_replica_identity_at_complete() {
        users_table("public.ri");
        Spi::run("CREATE UNIQUE INDEX ri_name ON ri (name) INCLUDE (email)").unwrap();
        let before = schema_of("public.ri");
        let m = one::<String>("SELECT zdm.set_replica_identity('public.ri', 'index', 'ri_name')").unwrap();
        assert_eq!(m, "ri_replica_identity");
        assert_eq!(schema_of("public.ri"), before);
        assert_eq!(
            sqlstate("SELECT zdm.drop_not_null('public.ri', 'name')").as_deref(),
            Some("55006")
        );
        Spi::run("SELECT zdm.rollback('ri_replica_identity')").unwrap();
        assert_eq!(schema_of("public.ri"), before);
        Spi::run("SELECT zdm.set_replica_identity('public.ri', 'index', 'ri_name', 'r2')").unwrap();
        Spi::run("SELECT zdm.complete('r2')").unwrap();
        assert_eq!(
            one::<bool>("SELECT indisreplident FROM pg_index WHERE indexrelid = 'ri_name'::regclass"),
            Some(true)
        );
        assert_eq!(
            error_text("SELECT zdm.set_replica_identity('public.ri', 'index', 'ri_name')"),
            "22023: the replica identity of relation public.ri is already USING INDEX ri_name / Nothing to change."
        );
        Spi::run("SELECT zdm.set_replica_identity('public.ri', 'FULL', migration => 'r3')").unwrap();
        assert_eq!(
            one::<String>("SELECT lock_mode || ' ' || statement FROM zdm.plan_steps('{\"op\": \"set_replica_identity\", \"table\": \"public.ri\", \"identity\": \"nothing\"}')").as_deref(),
            Some("ACCESS EXCLUSIVE ALTER TABLE public.ri REPLICA IDENTITY NOTHING")
        );
        Spi::run("SELECT zdm.complete('r3')").unwrap();
        assert_eq!(
            one::<String>("SELECT relreplident::text FROM pg_class WHERE oid = 'ri'::regclass").as_deref(),
            Some("f")
        );
        assert_eq!(shadow_leftovers(), 0);
    }

    #[pg_test]
    fn set_replica_identity_refuses_an_index_replication_cannot_use() {
        users_table("public.rx");
        Spi::run(
            "ALTER TABLE rx ADD COLUMN code int NOT NULL DEFAULT 0;
             CREATE INDEX rx_plain ON rx (name);
             CREATE UNIQUE INDEX rx_email ON rx (email);
             CREATE UNIQUE INDEX rx_part ON rx (name) WHERE id > 0;
             CREATE UNIQUE INDEX rx_expr ON rx (lower(name));
             ALTER TABLE rx ADD CONSTRAINT rx_deferred UNIQUE (id, code) DEFERRABLE;",
        )
        .unwrap();
        let why = |index: &str| {
            error_text(&format!(
                "SELECT zdm.set_replica_identity('public.rx', 'index', '{index}')"
            ))
            .split(" / ")
            .next()
            .unwrap()
            .to_string()
        };
        let cannot = "42809: index {} cannot be the replica identity of relation public.rx: ";
        for (index, reason) in [
            ("rx_plain", "it is not unique"),
            ("rx_email", "column email is nullable"),
            ("rx_part", "it is partial"),
            ("rx_expr", "it has an expression"),
            ("rx_deferred", "it is deferrable"),
        ] {
            assert_eq!(why(index), format!("{}{reason}", cannot.replace("{}", index)));
        }
        Spi::run("CREATE UNIQUE INDEX rx_invalid ON rx (id, name)").unwrap();
        Spi::run("UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'rx_invalid'::regclass").unwrap();
        assert!(why("rx_invalid").ends_with("it is not valid (a failed or unfinished build)"));
        assert_eq!(
            sqlstate("SELECT zdm.set_replica_identity('public.rx', 'index', 'nope')").as_deref(),
            Some("42704")
        );
        assert_eq!(
            sqlstate("SELECT zdm.set_replica_identity('public.rx', 'index')").as_deref(),
            Some("22023")
        );
        assert_eq!(
            sqlstate("SELECT zdm.set_replica_identity('public.rx', 'sideways')").as_deref(),
            Some("22023")
        );
        assert_eq!(
            sqlstate("SELECT zdm.set_replica_identity('public.rx', 'default')").as_deref(),
            Some("22023")
        );
        assert_eq!(one::<i64>("SELECT count(*) FROM zdm.migrations"), Some(0));
    }
}
