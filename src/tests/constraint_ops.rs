//! In-server tests of drop_constraint: the old application stays protected until complete.

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    #[allow(unused_imports)]
    use crate::tests::tests::*;
    use pgrx::prelude::*;

    fn tables() {
        Spi::run("CREATE TABLE dc_parent (id bigint PRIMARY KEY); INSERT INTO dc_parent VALUES (1)").unwrap();
        orders_table("public.dc");
        Spi::run(
            "ALTER TABLE dc ADD COLUMN parent bigint REFERENCES dc_parent (id),
                           ADD CONSTRAINT dc_amount_check CHECK (amount >= 0),
                           ADD CONSTRAINT dc_note_key UNIQUE (id, note);
             CREATE TABLE dc_ref (id bigint PRIMARY KEY, dc bigint CONSTRAINT dc_ref_fk REFERENCES dc (id));",
        )
        .unwrap();
    }

    #[pg_test]
    fn drop_constraint_keeps_protecting_until_complete() {
        tables();
        let before = table_ddl("public.dc");
        let m = one::<String>("SELECT zdm.drop_constraint('public.dc', 'dc_amount_check')").unwrap();
        assert_eq!(m, "dc_drop_dc_amount_check");
        assert_eq!(
            sqlstate("INSERT INTO dc (id, amount) VALUES (9001, -1)").as_deref(),
            Some("23514")
        );
        Spi::run(&format!("SELECT zdm.rollback('{m}')")).unwrap();
        assert_eq!(table_ddl("public.dc"), before);
        for (constraint, name) in [
            ("dc_amount_check", "c1"),
            ("dc_note_key", "c2"),
            ("dc_parent_fkey", "c3"),
        ] {
            Spi::run(&format!(
                "SELECT zdm.drop_constraint('public.dc', '{constraint}', '{name}')"
            ))
            .unwrap();
        }
        assert_eq!(table_ddl("public.dc"), before);
        for name in ["c1", "c2", "c3"] {
            Spi::run(&format!("SELECT zdm.complete('{name}')")).unwrap();
        }
        assert_eq!(
            sqlstate("INSERT INTO dc (id, amount, parent) VALUES (9001, -1, 42)"),
            None
        );
        assert_eq!(
            one::<bool>("SELECT to_regclass('public.dc_note_key') IS NULL"),
            Some(true)
        );
        assert_eq!(
            one::<i64>("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'dc_parent'::regclass"),
            Some(0),
            "the foreign key's triggers went with it"
        );
        assert_eq!(shadow_leftovers(), 0);
    }

    #[pg_test]
    fn drop_constraint_of_a_foreign_key_locks_both_tables() {
        tables();
        assert_eq!(
            one::<String>(
                "SELECT string_agg(lock_mode || ' ' || locked_relation || ' ' || statement, E'\\n' ORDER BY position)
                   FROM zdm.plan_steps('{\"op\": \"drop_constraint\", \"table\": \"public.dc\", \"constraint\": \"dc_parent_fkey\"}')
                  WHERE phase = 'complete'"
            )
            .as_deref(),
            Some(
                "ACCESS EXCLUSIVE public.dc_parent SELECT 1\n\
                 ACCESS EXCLUSIVE public.dc ALTER TABLE public.dc DROP CONSTRAINT dc_parent_fkey"
            )
        );
    }

    #[pg_test]
    fn drop_constraint_refusals() {
        tables();
        Spi::run(
            "CREATE UNIQUE INDEX dc_ident ON dc (id, amount);
             ALTER TABLE dc ADD CONSTRAINT dc_ident_key UNIQUE USING INDEX dc_ident, REPLICA IDENTITY USING INDEX dc_ident_key;",
        )
        .unwrap();
        assert_eq!(
            error_text("SELECT zdm.drop_constraint('public.dc', 'dc_pkey')"),
            "2BP01: constraint dc_pkey of relation public.dc is referenced by foreign keys: dc_ref_fk on public.dc_ref / \
             Drop those foreign keys first (operation drop_constraint on their tables)."
        );
        assert!(error_text("SELECT zdm.drop_constraint('public.dc', 'dc_ident_key')")
            .starts_with("2BP01: the index of constraint dc_ident_key is the replica identity of relation public.dc"));
        assert!(
            error_text("SELECT zdm.drop_constraint('public.dc', 'nope')").starts_with(
                "42704: constraint \"nope\" of relation \"public.dc\" does not exist / Its constraints are: "
            )
        );
        Spi::run("CREATE TABLE dc_pub (id int PRIMARY KEY); CREATE PUBLICATION dc_pub FOR TABLE dc_pub").unwrap();
        assert!(
            error_text("SELECT zdm.drop_constraint('public.dc_pub', 'dc_pub_pkey')").starts_with(
                "2BP01: the index of constraint dc_pub_pkey is the replica identity of relation public.dc_pub"
            )
        );
        Spi::run("ALTER PUBLICATION dc_pub SET (publish = 'insert')").unwrap();
        assert_eq!(
            sqlstate("SELECT zdm.drop_constraint('public.dc_pub', 'dc_pub_pkey')"),
            None
        );
        Spi::run("SELECT zdm.set_not_null('public.dc', 'note')").unwrap();
        let own = one::<String>("SELECT conname::text FROM pg_constraint WHERE conname LIKE 'zdm\\_%'").unwrap();
        assert!(
            error_text(&format!("SELECT zdm.drop_constraint('public.dc', '{own}')")).starts_with("55006: constraint")
        );
        assert_eq!(
            sqlstate("SELECT zdm.drop_constraint('public.dc', 'dc_note_key')").as_deref(),
            Some("55006"),
            "its columns are claimed by the set_not_null"
        );
    }
}
