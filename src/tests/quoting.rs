//! In-server tests of names and literals in generated code: quoted by PostgreSQL, whatever the name or the settings.

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    #[allow(unused_imports)]
    use crate::error::sqlstate_of;
    #[allow(unused_imports)]
    use crate::tests::tests::*;
    use pgrx::prelude::*;

    #[pg_test]
    fn hostile_names_are_quoted_everywhere() {
        Spi::run(r#"CREATE SCHEMA "My Schema";
                    CREATE TABLE "My Schema"."Order; DROP TABLE x" ("Id" int PRIMARY KEY, "select" text, "é col" text DEFAULT 'd''x');
                    INSERT INTO "My Schema"."Order; DROP TABLE x" VALUES (1, 'a', 'b'), (2, NULL, 'c');"#).unwrap();
        let m = one::<String>(r#"SELECT zdm.rename_column('"My Schema"."Order; DROP TABLE x"', 'select', 'from "quoted" é', 'weird $zdm$ name')"#).unwrap();
        assert_eq!(m, "weird $zdm$ name");
        Spi::run(r#"INSERT INTO "My Schema"."Order; DROP TABLE x" ("Id", "from ""quoted"" é") VALUES (3, 'new')"#)
            .unwrap();
        while one::<i64>("SELECT zdm.backfill_batch('weird $zdm$ name')").unwrap() > 0 {}
        Spi::run("SELECT zdm.complete('weird $zdm$ name')").unwrap();
        assert_eq!(
            one::<String>(r#"SELECT string_agg(coalesce("from ""quoted"" é", 'NULL'), ',' ORDER BY "Id") FROM "My Schema"."Order; DROP TABLE x""#).unwrap(),
            "a,NULL,new"
        );
    }

    #[pg_test]
    fn generated_functions_are_readable_and_schema_qualified() {
        users_table("public.gf");
        Spi::run("SELECT zdm.rename_column('public.gf', 'name', 'full_name', 'gf')").unwrap();
        let batch = one::<String>("SELECT pg_get_functiondef('zdm.backfill_gf'::regproc)").unwrap();
        assert!(
            batch.contains("-- pg_zdm migration gf: one keyset batch of the backfill of public.gf"),
            "{batch}"
        );
        assert!(!batch.contains(" SET search_path"), "no SET clause: {batch}");
        let sync = one::<String>("SELECT pg_get_functiondef('zdm.sync_gf'::regproc)").unwrap();
        assert!(
            sync.contains("-- pg_zdm migration gf: keeps public.gf.name (old application)"),
            "{sync}"
        );
        Spi::run("SELECT zdm.rollback('gf')").unwrap();
        assert_eq!(
            one::<i64>("SELECT count(*) FROM pg_proc WHERE proname IN ('backfill_gf', 'sync_gf')"),
            Some(0)
        );
    }

    #[pg_test]
    fn names_with_newlines_stay_names_in_generated_code() {
        use crate::ident::{Ident, Literal};
        let table = format!("public.{}", Ident::new("x\nDECLARE z int := 1; --"));
        let col = "c\nDECLARE y int := 2; --";
        Spi::run(&format!(
            "CREATE TABLE {table} (id int PRIMARY KEY, {} text, n int);
             INSERT INTO {table} SELECT g, 'v' || g, g FROM generate_series(1, 100) g;",
            Ident::new(col)
        ))
        .unwrap();
        let reg = format!("{}::regclass", Literal::new(&table));
        // The name's text reaches comments escaped, and never the code around them.
        let check_generated = |what: &str| {
            let (bodies, definitions) = generated_functions();
            let code = code_only(&bodies);
            assert!(
                !code.contains("int := 1") && !code.contains("int := 2"),
                "{what}: {code}"
            );
            assert!(
                definitions.contains(r#"public."x\nDECLARE z int := 1; --""#),
                "{what}: {definitions}"
            );
        };

        // The default name is made of the table's and the column's: no newline in it.
        let m = one::<String>(&format!(
            "SELECT zdm.rename_column({reg}, {}, 'renamed')",
            Literal::new(col)
        ))
        .unwrap();
        assert!(!m.chars().any(char::is_control), "{m:?}");
        let lit = Literal::new(&m);
        check_generated("rename_column");
        Spi::run(&format!(
            "INSERT INTO {table} (id, {}) VALUES (1001, 'old app')",
            Ident::new(col)
        ))
        .unwrap();
        Spi::run(&format!("INSERT INTO {table} (id, renamed) VALUES (1002, 'new app')")).unwrap();
        while one::<i64>(&format!("SELECT zdm.backfill_batch({lit})")).unwrap() > 0 {}
        Spi::run(&format!("SELECT zdm.complete({lit})")).unwrap();
        assert_eq!(
            one::<String>(&format!(
                "SELECT string_agg(renamed, ',' ORDER BY id) FROM {table} WHERE id IN (1, 1001, 1002)"
            )),
            Some("v1,old app,new app".into())
        );

        // A migration name of its own may not hold a control character.
        let refused = error_text(&format!(
            "SELECT zdm.create_shadow_table({reg}, ARRAY['ALTER COLUMN n TYPE bigint'], NULL, E'a\\nb')"
        ));
        assert!(
            refused.starts_with("42602: migration name \"a\\nb\" contains a control character"),
            "{refused}"
        );

        Spi::run(&format!(
            "SELECT zdm.create_shadow_table({reg}, ARRAY['ALTER COLUMN n TYPE bigint'], NULL, 'nl_shadow')"
        ))
        .unwrap();
        check_generated("create_shadow_table");
        while one::<i64>("SELECT zdm.backfill_batch('nl_shadow')").unwrap() > 0 {}
        assert_eq!(
            one::<pgrx::JsonB>("SELECT zdm.verify('nl_shadow')").unwrap().0["matched"],
            true
        );
        Spi::run("SELECT zdm.rollback('nl_shadow')").unwrap();
        assert_eq!(shadow_leftovers(), 0);
    }

    #[pg_test]
    fn literal_matches_the_server() {
        for v in ["", "plain", "it's", r"a\b", "x\ny", r"\'; --", "é ü", r"''\\"] {
            let server = Spi::get_one_with_args::<String>("SELECT pg_catalog.quote_literal($1)", &[v.into()]).unwrap();
            assert_eq!(
                server.as_deref(),
                Some(crate::ident::quote_literal(v).as_str()),
                "{v:?}"
            );
            assert_eq!(crate::ident::Literal::new(v), crate::ident::Literal::pure(v), "{v:?}");
        }
    }

    #[pg_test]
    fn hints_read_back_without_standard_conforming_strings() {
        use crate::ident::Literal;
        users_table("public.scs");
        let m = r"it's a \ name";
        Spi::run(&format!(
            "SELECT zdm.rename_column('public.scs', 'name', 'full_name', {})",
            Literal::new(m)
        ))
        .unwrap();
        Spi::run("SET LOCAL standard_conforming_strings = off").unwrap();
        let quoted = r"E'it''s a \\ name'";
        let next = one::<pgrx::JsonB>(&format!("SELECT zdm.status({quoted})")).unwrap().0["next"].clone();
        assert_eq!(
            next,
            format!("CALL zdm.backfill({quoted}); (top level) or SELECT zdm.schedule_backfill({quoted});").as_str()
        );
        let hint = error_text(&format!("SELECT zdm.complete({quoted})"));
        assert!(
            hint.ends_with(&format!(
                " / Its backfill is not finished. Run: CALL zdm.backfill({quoted}); then complete it."
            )),
            "{hint}"
        );
        // What the hints show reads back as the name, the setting on or off.
        for setting in ["off", "on"] {
            Spi::run(&format!("SET LOCAL standard_conforming_strings = {setting}")).unwrap();
            assert_eq!(one::<String>(&format!("SELECT {quoted}::text")).as_deref(), Some(m));
        }
    }

    #[pg_test]
    fn long_migration_names_do_not_collide() {
        let (a, b) = ("m".repeat(47) + "a", "m".repeat(47) + "b");
        for (t, m) in [("public.long_a", &a), ("public.long_b", &b)] {
            users_table(t);
            Spi::run(&format!(
                "SELECT zdm.create_shadow_table('{t}', ARRAY['ALTER COLUMN email TYPE varchar(200)'], NULL, '{m}')"
            ))
            .unwrap();
        }
        // Each migration has objects of its own, every name within 63 bytes.
        for prefix in ["shadow_truncate", "shadow_reverse_truncate"] {
            assert_eq!(
                one::<i64>(&format!(
                    "SELECT count(DISTINCT proname) FROM pg_proc WHERE pronamespace = 'zdm'::regnamespace AND proname LIKE '{prefix}\\_mmm%'"
                )),
                Some(2),
                "{prefix}"
            );
        }
        for m in [&a, &b] {
            while one::<i64>(&format!("SELECT zdm.backfill_batch('{m}')")).unwrap() > 0 {}
            Spi::run(&format!("SELECT zdm.rollback('{m}')")).unwrap();
        }
        assert_eq!(shadow_leftovers(), 0);
    }
}
