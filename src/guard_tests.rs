//! In-server tests of the DDL guard (sql/guard.sql): DDL from outside that
//! would break an active migration is refused with 55006 and changes
//! nothing; harmless DDL goes through; pg_zdm's own DDL is never refused.

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use crate::tests::tests::{error_text, one, sqlstate, users_table};
    use pgrx::prelude::*;

    #[pg_test]
    fn ddl_that_breaks_a_migration_is_refused() {
        users_table("public.g1");
        Spi::run("SELECT zdm.rename_column('public.g1', 'name', 'full_name', 'g1')").unwrap();
        for sql in [
            "DROP TRIGGER zdm_sync_g1 ON public.g1",
            "ALTER TABLE public.g1 DISABLE TRIGGER zdm_sync_g1",
            "ALTER TABLE public.g1 ENABLE TRIGGER zdm_sync_ins_g1",
            "ALTER TABLE public.g1 DROP COLUMN full_name CASCADE",
            "ALTER TABLE public.g1 RENAME COLUMN name TO nm",
            "ALTER TABLE public.g1 RENAME TO g1b",
            "DROP TABLE public.g1",
            "DROP FUNCTION zdm.sync_g1() CASCADE",
        ] {
            assert_eq!(sqlstate(sql).as_deref(), Some("55006"), "{sql}");
        }
        let err = error_text("DROP TRIGGER zdm_sync_g1 ON public.g1");
        assert!(
            err.contains("belongs to the active migration 'g1'") && err.contains("SELECT zdm.rollback('g1');"),
            "{err}"
        );
        for sql in [
            "CREATE INDEX g1_email ON public.g1 (email)",
            "COMMENT ON TABLE public.g1 IS 'users'",
            "ALTER TABLE public.g1 ADD COLUMN other int",
            "ALTER TABLE public.g1 DROP COLUMN other",
            "DROP INDEX public.g1_email",
        ] {
            assert_eq!(sqlstate(sql), None, "{sql}");
        }
        // pg_zdm's own DDL goes through: the whole lifecycle.
        Spi::run("DO $$ BEGIN WHILE zdm.backfill_batch('g1') > 0 LOOP END LOOP; END $$; SELECT zdm.complete('g1')")
            .unwrap();
        assert_eq!(
            one::<String>("SELECT phase FROM zdm.migrations WHERE name = 'g1'").as_deref(),
            Some("completed")
        );
        assert_eq!(
            sqlstate("ALTER TABLE public.g1 RENAME TO g1c"),
            None,
            "no active migration any more"
        );
    }

    #[pg_test]
    fn a_shadow_and_its_notes_cannot_be_dropped_from_outside() {
        users_table("public.g2");
        Spi::run("SELECT zdm.create_shadow_table('public.g2', '{}', NULL, 'g2')").unwrap();
        for sql in [
            "DROP TABLE public.zdm_shadow_g2",
            "DROP TABLE public.zdm_stale_g2",
            "DROP FUNCTION zdm.shadow_settle_g2(boolean, boolean)",
            "ALTER TABLE public.g2 DROP COLUMN email",
        ] {
            assert_eq!(sqlstate(sql).as_deref(), Some("55006"), "{sql}");
        }
        Spi::run("SELECT zdm.rollback('g2')").unwrap();
        assert_eq!(
            one::<bool>("SELECT to_regclass('public.zdm_shadow_g2') IS NULL"),
            Some(true)
        );
    }
}
