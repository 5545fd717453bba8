//! In-server tests of the catalog-only operations: set_default, drop_default.

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
        assert_eq!(one::<i32>("SELECT amount FROM sd WHERE id = 9001"), Some(0), "old default until complete");
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
        assert_eq!(sqlstate("INSERT INTO dd (id) VALUES (9001)"), None, "the old default until complete");
        Spi::run(&format!("SELECT zdm.complete('{m}')")).unwrap();
        assert_eq!(sqlstate("INSERT INTO dd (id) VALUES (9002)").as_deref(), Some("23502"));
    }

    #[pg_test]
    fn default_refusals() {
        orders_table("public.dq");
        Spi::run("ALTER TABLE dq ADD COLUMN n int GENERATED ALWAYS AS IDENTITY").unwrap();
        let refused = error_text("SELECT zdm.set_default('public.dq', 'nope', '1')");
        assert!(refused.starts_with("42703: column \"nope\" of relation \"public.dq\" does not exist"), "{refused}");
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
}
