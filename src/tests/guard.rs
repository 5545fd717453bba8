//! In-server tests of the DDL guard (sql/guard.sql): DDL from outside that
//! would break an active migration is refused with 55006 and changes
//! nothing; harmless DDL goes through; pg_zdm's own DDL is never refused; a
//! migration whose table is dropped is abandoned.

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
            "ALTER TABLE public.g1 ALTER COLUMN email TYPE varchar(500)",
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

    /// What pg_zdm made for migration `m` that is still there: functions,
    /// tables and triggers named after it.
    fn leftovers(m: &str) -> i64 {
        one::<i64>(&format!(
            "SELECT (SELECT count(*) FROM pg_proc WHERE pronamespace = 'zdm'::regnamespace AND proname LIKE '%\\_{m}')
                  + (SELECT count(*) FROM pg_class WHERE relname LIKE 'zdm\\_%\\_{m}')
                  + (SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'zdm\\_%\\_{m}')"
        ))
        .unwrap()
    }

    #[pg_test]
    fn dropping_a_migrations_table_abandons_the_migration() {
        // A column migration, a shadow before its swap, a shadow after it.
        users_table("public.g3");
        Spi::run("SELECT zdm.rename_column('public.g3', 'name', 'full_name', 'g3')").unwrap();
        users_table("public.g4");
        Spi::run("SELECT zdm.create_shadow_table('public.g4', ARRAY['ADD COLUMN x int'], NULL, 'g4')").unwrap();
        users_table("public.g5");
        Spi::run(
            "CREATE VIEW public.g5_view AS SELECT * FROM public.g5;
             CREATE TABLE public.g5_ref (id int PRIMARY KEY, user_id bigint REFERENCES public.g5);
             INSERT INTO public.g5_ref VALUES (1, 10);
             SELECT zdm.create_shadow_table('public.g5', ARRAY['ADD COLUMN x int'], NULL, 'g5');
             DO $$ BEGIN WHILE zdm.backfill_batch('g5') > 0 LOOP END LOOP; END $$;
             SELECT zdm.swap_tables('g5');",
        )
        .unwrap();
        assert!(leftovers("g3") > 0 && leftovers("g4") > 0 && leftovers("g5") > 0);
        // After the swap g5_ref references the new table (NOT VALID, until
        // complete) and still the old one (for a swap back): the CASCADE takes
        // the first, the abandon the second.
        Spi::run("DROP TABLE public.g3; DROP TABLE public.g4; DROP TABLE public.g5 CASCADE").unwrap();
        for m in ["g3", "g4", "g5"] {
            assert_eq!(
                one::<String>(&format!("SELECT phase FROM zdm.migrations WHERE name = '{m}'")).as_deref(),
                Some("abandoned"),
                "{m}"
            );
            assert_eq!(leftovers(m), 0, "everything of {m} removed");
            assert_eq!(sqlstate(&format!("SELECT zdm.rollback('{m}')")), None, "{m}: no-op");
        }
        // Nothing else is left to do on an abandoned migration.
        for call in [
            "SELECT zdm.complete('g4')",
            "SELECT zdm.backfill_batch('g4')",
            "SELECT zdm.verify('g4')",
        ] {
            let err = error_text(call);
            assert!(
                err.starts_with(
                    "55000: migration 'g4' is abandoned; its table public.g4 is gone / Nothing is left to do"
                ),
                "{call}: {err}"
            );
        }
        let err = error_text("SELECT zdm.schedule_backfill('g4')");
        assert!(
            err.starts_with("55000: migration 'g4' is abandoned; there is nothing to backfill"),
            "{err}"
        );
        // A live migration is not abandoned by hand.
        users_table("public.g12");
        Spi::run("SELECT zdm.rename_column('public.g12', 'name', 'full_name', 'g12')").unwrap();
        let err = error_text("SELECT zdm._abandon_dropped('g12')");
        assert!(
            err.starts_with(
                "55000: the table public.g12 of migration 'g12' still exists / Use SELECT zdm.rollback('g12');"
            ),
            "{err}"
        );
        assert_eq!(
            one::<String>("SELECT phase FROM zdm.migrations WHERE name = 'g12'").as_deref(),
            Some("started")
        );
        // Its history may be forgotten, as a rolled-back one's.
        Spi::run("SELECT zdm.forget('g4')").unwrap();
        assert_eq!(
            one::<i64>("SELECT count(*) FROM zdm.migrations WHERE name = 'g4'"),
            Some(0)
        );
        assert_eq!(
            one::<i64>(
                "SELECT count(*) FROM pg_constraint WHERE conrelid = 'public.g5_ref'::regclass AND contype = 'f'"
            ),
            Some(0),
            "as DROP TABLE g5 CASCADE does without pg_zdm"
        );
        assert_eq!(
            one::<i64>("SELECT count(*) FROM public.g5_ref"),
            Some(1),
            "the referencing rows stay"
        );
        // A new table of the same name migrates again, under the same name.
        users_table("public.g3");
        Spi::run("SELECT zdm.rename_column('public.g3', 'name', 'full_name', 'g3')").unwrap();
        assert_eq!(
            one::<String>(
                "SELECT string_agg(name || ' ' || phase, ', ' ORDER BY name) FROM zdm.migrations WHERE name LIKE 'g3%'"
            )
            .as_deref(),
            Some("g3 started, g3@1 abandoned")
        );
    }

    /// Something of the user's own depends on the old table: the DROP of
    /// the table fails (PostgreSQL's 2BP01, with pg_zdm's hint) and changes nothing.
    #[pg_test]
    fn an_abandon_that_would_drop_a_users_object_stops_the_drop() {
        users_table("public.g8");
        Spi::run(
            "SELECT zdm.create_shadow_table('public.g8', ARRAY['ADD COLUMN x int'], NULL, 'g8');
             DO $$ BEGIN WHILE zdm.backfill_batch('g8') > 0 LOOP END LOOP; END $$;
             SELECT zdm.swap_tables('g8');
             CREATE VIEW public.g8_before AS SELECT * FROM public.zdm_old_g8;",
        )
        .unwrap();
        let err = error_text("DROP TABLE public.g8");
        assert!(
            err.starts_with("2BP01: pg_zdm could not remove what it made for the dropped table: cannot drop table public.zdm_old_g8 because other objects depend on it"),
            "{err}"
        );
        assert_eq!(
            one::<String>("SELECT phase FROM zdm.migrations WHERE name = 'g8'").as_deref(),
            Some("swapped")
        );
        assert_eq!(one::<bool>("SELECT to_regclass('public.g8') IS NOT NULL"), Some(true));
    }

    /// A migration of a temporary table would outlive it (dropped at the end
    /// of its session, unseen by event triggers): refused.
    #[pg_test]
    fn a_temporary_table_is_not_migrated() {
        Spi::run("CREATE TEMP TABLE g9 (id int PRIMARY KEY, a int)").unwrap();
        let err = error_text("SELECT zdm.add_column('g9', 'b', 'int')");
        assert!(
            err.starts_with("0A000: \"pg_temp_") && err.contains(".g9\" is a temporary table / "),
            "{err}"
        );
        assert_eq!(one::<i64>("SELECT count(*) FROM zdm.migrations"), Some(0));
    }

    /// Until its build runs, a planned index's name is free: a rollback (or
    /// an abandon) drops an index of that name only if it is the table's.
    #[pg_test]
    fn a_rollback_leaves_another_tables_index_of_the_planned_name() {
        users_table("public.g11");
        Spi::run(
            "SELECT zdm.create_index('public.g11', 'g11_idx', '(email)', 'g11');
             CREATE TABLE public.g11_other (id int, e text);
             CREATE INDEX g11_idx ON public.g11_other (e);
             SELECT zdm.rollback('g11');",
        )
        .unwrap();
        assert_eq!(
            one::<String>(
                "SELECT indrelid::regclass::text FROM pg_index WHERE indexrelid = 'public.g11_idx'::regclass"
            )
            .as_deref(),
            Some("g11_other")
        );
    }

    /// Dropped with the guard disabled (a superuser's choice): rollback
    /// abandons the migration instead of failing on the missing table.
    #[pg_test]
    fn rollback_abandons_a_migration_whose_table_is_gone() {
        users_table("public.g6");
        Spi::run("SELECT zdm.create_shadow_table('public.g6', ARRAY['ADD COLUMN x int'], NULL, 'g6')").unwrap();
        Spi::run("ALTER EVENT TRIGGER zdm_guard_drop DISABLE; DROP TABLE public.g6; ALTER EVENT TRIGGER zdm_guard_drop ENABLE")
            .unwrap();
        let err = error_text("SELECT zdm.complete('g6')");
        assert!(
            err.starts_with("42P01: relation \"public.g6\" does not exist / The table of this migration was dropped: SELECT zdm.rollback('g6');"),
            "{err}"
        );
        Spi::run("SELECT zdm.rollback('g6')").unwrap();
        assert_eq!(
            one::<String>("SELECT phase FROM zdm.migrations WHERE name = 'g6'").as_deref(),
            Some("abandoned")
        );
        assert_eq!(leftovers("g6"), 0);
    }

    #[pg_test]
    fn a_shadow_cannot_be_altered_out_of_shape() {
        users_table("public.g7");
        Spi::run("SELECT zdm.create_shadow_table('public.g7', ARRAY['ADD COLUMN x int'], NULL, 'g7')").unwrap();
        for sql in [
            "ALTER TABLE public.zdm_shadow_g7 DROP COLUMN email",
            "ALTER TABLE public.zdm_shadow_g7 RENAME COLUMN x TO y",
            "ALTER TABLE public.zdm_shadow_g7 RENAME TO g7_copy",
            "ALTER SCHEMA public RENAME TO g7_schema",
        ] {
            assert_eq!(sqlstate(sql).as_deref(), Some("55006"), "{sql}");
        }
        // Anything that could make the sync's or the settle's writes do
        // nothing, and the notes table moved away.
        for sql in [
            "ALTER TABLE public.zdm_shadow_g7 ENABLE ROW LEVEL SECURITY",
            "ALTER TABLE public.zdm_shadow_g7 FORCE ROW LEVEL SECURITY",
            "CREATE RULE g7_nothing AS ON UPDATE TO public.zdm_shadow_g7 DO INSTEAD NOTHING",
            "CREATE FUNCTION pg_temp.g7_skip() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NULL; END';
             CREATE TRIGGER g7_skip BEFORE UPDATE ON public.zdm_shadow_g7 FOR EACH ROW EXECUTE FUNCTION pg_temp.g7_skip()",
            "ALTER TABLE public.zdm_stale_g7 RENAME TO g7_notes",
            // What the sync's inserts into the shadow do not expect.
            "ALTER TABLE public.zdm_shadow_g7 ALTER COLUMN email TYPE varchar(5)",
            "ALTER TABLE public.zdm_shadow_g7 ADD COLUMN z int NOT NULL DEFAULT 0",
            // The sync reads every column of the table.
            "ALTER TABLE public.g7 ALTER COLUMN email TYPE varchar(300)",
        ] {
            assert_eq!(sqlstate(sql).as_deref(), Some("55006"), "{sql}");
        }
        // What a pg_restore does to a shadow, and other harmless changes.
        for sql in [
            "ALTER TABLE public.zdm_shadow_g7 ADD CONSTRAINT g7_x CHECK (x > 0)",
            "CREATE INDEX g7_x_idx ON public.zdm_shadow_g7 (x)",
            "COMMENT ON TABLE public.zdm_shadow_g7 IS 'shadow'",
        ] {
            assert_eq!(sqlstate(sql), None, "{sql}");
        }
        // After the swap the old table is guarded the same way.
        Spi::run("DO $$ BEGIN WHILE zdm.backfill_batch('g7') > 0 LOOP END LOOP; END $$; SELECT zdm.swap_tables('g7')")
            .unwrap();
        for sql in [
            "ALTER TABLE public.zdm_old_g7 DROP COLUMN email",
            "ALTER TABLE public.zdm_old_g7 RENAME TO g7_old",
            "ALTER TABLE public.g7 DISABLE TRIGGER zdm_reverse_g7",
            "ALTER TABLE public.zdm_old_g7 ALTER COLUMN name TYPE varchar(300)",
            "ALTER TABLE public.zdm_old_g7 ADD COLUMN z int",
            "ALTER TABLE public.g7 ALTER COLUMN x TYPE bigint",
        ] {
            assert_eq!(sqlstate(sql).as_deref(), Some("55006"), "{sql}");
        }
        Spi::run("SELECT zdm.rollback('g7')").unwrap();
    }
}
