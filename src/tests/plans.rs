//! In-server tests of zdm.plan() and zdm.plan_steps(): dry runs that show every step.

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    #[allow(unused_imports)]
    use crate::error::sqlstate_of;
    #[allow(unused_imports)]
    use crate::tests::tests::*;
    use pgrx::prelude::*;

    #[pg_test]
    fn plan_is_a_dry_run() {
        users_table("public.p");
        let plan = one::<pgrx::JsonB>(r#"SELECT zdm.plan('{"op": "rename_column", "table": "public.p", "column": "name", "new_name": "full_name"}')"#).unwrap().0;
        assert_eq!(plan["migration"], "p_rename_name_to_full_name");
        assert_eq!(plan["phases"]["start"][0]["lock"]["mode"], "ACCESS EXCLUSIVE");
        assert_eq!(
            plan["phases"]["start"][0]["sql"],
            "ALTER TABLE public.p ADD COLUMN full_name character varying(255)"
        );
        assert!(plan["phases"]["complete"].as_array().unwrap().len() >= 4);
        assert_eq!(one::<i64>("SELECT count(*) FROM zdm.migrations"), Some(0));
        assert_eq!(
            one::<i64>(
                "SELECT count(*) FROM pg_attribute WHERE attrelid = 'public.p'::regclass AND attname = 'full_name'"
            ),
            Some(0)
        );
    }

    /// zdm.plan_steps(): the same plan as zdm.plan(), one row per step, in
    /// the order the steps run; the same ownership check; nothing changed.
    #[pg_test]
    fn plan_steps_lists_every_step_as_a_row() {
        users_table("public.ps");
        Spi::run("CREATE INDEX ps_name ON public.ps (name)").unwrap();
        let spec = r#"'{"op": "rename_column", "table": "public.ps", "column": "name", "new_name": "full_name"}'"#;
        assert_eq!(
            one::<String>(&format!(
                "SELECT concat_ws(' | ', phase, position, lock_mode, locked_relation, top_level, statement)
                   FROM zdm.plan_steps({spec}) LIMIT 1"
            ))
            .as_deref(),
            Some("start | 1 | ACCESS EXCLUSIVE | public.ps | f | ALTER TABLE public.ps ADD COLUMN full_name character varying(255)")
        );
        // Phases in the order they run, positions counted within each.
        assert_eq!(
            one::<String>(&format!(
                "SELECT string_agg(phase || position, ',' ORDER BY n) FROM zdm.plan_steps({spec}) WITH ORDINALITY s(phase, position, d, m, r, t, st, n)
                  WHERE position = 1"
            ))
            .as_deref(),
            Some("start1,backfill1,validate1,complete1,rollback1")
        );
        // Every step of zdm.plan(), with its statement.
        assert_eq!(
            one::<bool>(&format!(
                "SELECT array_agg(statement ORDER BY n) = (SELECT array_agg(x->>'sql' ORDER BY ph, i)
                    FROM zdm.plan({spec}) p,
                         LATERAL (VALUES (1, 'start'), (3, 'validate'), (4, 'complete'), (5, 'rollback')) v(ph, name),
                         LATERAL jsonb_array_elements(p->'phases'->v.name) WITH ORDINALITY e(x, i))
                   FROM zdm.plan_steps({spec}) WITH ORDINALITY s(phase, position, d, m, r, t, statement, n)
                  WHERE phase <> 'backfill'"
            )),
            Some(true)
        );
        assert_eq!(
            one::<String>(&format!("SELECT statement FROM zdm.plan_steps({spec}) WHERE top_level")).as_deref(),
            Some("CREATE INDEX CONCURRENTLY zdm_ix0_ps_rename_name_to_full_name ON public.ps USING btree (full_name)")
        );
        assert_eq!(
            one::<String>(&format!(
                "SELECT DISTINCT lock_mode || ' ' || locked_relation FROM zdm.plan_steps({spec}) WHERE phase = 'backfill'"
            ))
            .as_deref(),
            Some("ROW EXCLUSIVE public.ps")
        );
        assert_eq!(one::<i64>("SELECT count(*) FROM zdm.migrations"), Some(0));
        Spi::run("CREATE ROLE zdm_ps_outsider; GRANT USAGE ON SCHEMA zdm TO zdm_ps_outsider").unwrap();
        assert_eq!(
            sqlstate(&format!(
                "SET ROLE zdm_ps_outsider; SELECT * FROM zdm.plan_steps({spec}); RESET ROLE"
            ))
            .as_deref(),
            Some("42501")
        );
    }
}
