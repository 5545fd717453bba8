//! In-server tests of `zdm.verify`: it compares before any settle, and a
//! difference on a noted key (a copy the settle refreshes) is no mismatch,
//! while one on any other key is.

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use crate::tests::tests::{one, users_table};
    use pgrx::prelude::*;
    use pgrx::JsonB;

    fn verify(m: &str) -> serde_json::Value {
        one::<JsonB>(&format!("SELECT zdm.verify('{m}')")).unwrap().0
    }

    /// A backfilled shadow of `table` with one stale copy (key 7), made by hand.
    fn backfilled_with_a_stale_copy(table: &str, m: &str) {
        users_table(&format!("public.{table}"));
        Spi::run(&format!(
            "SELECT zdm.create_shadow_table('public.{table}', '{{}}', NULL, '{m}');
             DO $$ BEGIN WHILE zdm.backfill_batch('{m}') > 0 LOOP END LOOP; END $$;
             UPDATE public.zdm_shadow_{m} SET name = 'stale' WHERE id = 7;"
        ))
        .unwrap();
    }

    #[pg_test]
    fn a_late_copy_of_a_noted_key_is_left_to_the_settle() {
        backfilled_with_a_stale_copy("v1", "v1");
        Spi::run("INSERT INTO public.zdm_stale_v1 (id) VALUES (7)").unwrap();
        let r = verify("v1");
        assert_eq!(r["matched"], true, "{r}");
        assert_eq!(r["passes"], 2, "compared again without the noted key: {r}");
        assert_eq!(r["noted_keys_left_out"], 1, "{r}");
        // The settle after the comparison made the copy the original's.
        assert_eq!(
            one::<String>("SELECT name FROM public.zdm_shadow_v1 WHERE id = 7").as_deref(),
            Some("user 7")
        );
        assert_eq!(one::<i64>("SELECT count(*) FROM public.zdm_stale_v1"), Some(0));
    }

    #[pg_test]
    fn a_stale_copy_of_a_key_nobody_noted_is_a_mismatch() {
        backfilled_with_a_stale_copy("v2", "v2");
        let r = verify("v2");
        assert_eq!(r["matched"], false, "{r}");
        assert_eq!(r["differing_rows"], 1, "{r}");
        assert_eq!(r["sample_keys"], serde_json::json!(["(7)"]), "{r}");
        assert_eq!(
            one::<String>("SELECT name FROM public.zdm_shadow_v2 WHERE id = 7").as_deref(),
            Some("stale"),
            "nothing settled, nothing hidden"
        );
    }
}
