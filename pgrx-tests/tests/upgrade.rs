//! ALTER EXTENSION pg_zdm UPDATE from every released version must give exactly
//! what a fresh CREATE EXTENSION gives, object by object.

mod common;

use zdm_harness::cluster::{Cluster, ClusterOptions};

/// Every member of the extension with its full definition, one line each.
const FINGERPRINT: &str = "
WITH ext AS (SELECT oid FROM pg_extension WHERE extname = 'pg_zdm'),
members AS (
  SELECT d.classid, d.objid FROM pg_depend d, ext
   WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid AND d.deptype = 'e'
)
SELECT string_agg(line, E'\\n' ORDER BY line) FROM (
  SELECT pg_describe_object(m.classid, m.objid, 0) || ': ' || coalesce(
           CASE m.classid
             WHEN 'pg_proc'::regclass THEN pg_get_functiondef(m.objid)
                  || ' comment=' || coalesce(obj_description(m.objid, 'pg_proc'), '')
             WHEN 'pg_class'::regclass THEN (
               SELECT c.relkind::text || ' ' || CASE WHEN c.relkind = 'v' THEN pg_get_viewdef(c.oid) ELSE '' END || ' '
                      || coalesce((SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
                                                     || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
                                                     || coalesce(' default ' || pg_get_expr(ad.adbin, ad.adrelid), ''),
                                                     ', ' ORDER BY a.attnum)
                                     FROM pg_attribute a
                                     LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
                                    WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '')
                      || ' comment=' || coalesce(obj_description(c.oid, 'pg_class'), '')
                 FROM pg_class c WHERE c.oid = m.objid)
             ELSE ''
           END, '') AS line
    FROM members m
  UNION ALL
  SELECT 'trigger ' || pg_get_triggerdef(t.oid) FROM pg_trigger t JOIN members m ON m.classid = 'pg_class'::regclass AND t.tgrelid = m.objid WHERE NOT t.tgisinternal
  UNION ALL
  SELECT 'constraint ' || conname || ' ' || pg_get_constraintdef(co.oid) FROM pg_constraint co JOIN members m ON m.classid = 'pg_class'::regclass AND co.conrelid = m.objid
  UNION ALL
  SELECT 'index ' || pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN members m ON m.classid = 'pg_class'::regclass AND i.indrelid = m.objid
  UNION ALL
  SELECT 'config dump ' || array_to_string(extconfig::regclass[]::text[], ',') FROM pg_extension WHERE extname = 'pg_zdm'
) lines";

fn released_versions(conn: &mut postgres::Client) -> Vec<String> {
    conn.query(
        "SELECT version FROM pg_available_extension_versions WHERE name = 'pg_zdm'
          AND version <> (SELECT default_version FROM pg_available_extensions WHERE name = 'pg_zdm')
          ORDER BY version",
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

#[test]
fn update_from_every_released_version_equals_a_fresh_install() {
    let cluster = Cluster::start(&ClusterOptions::default());
    let mut c = cluster.connect();
    let versions = released_versions(&mut c);
    assert!(
        versions.contains(&"0.1.0".to_string()),
        "release 0.1.0 installable (scripts/test.sh copies sql/released/): {versions:?}"
    );

    c.batch_execute("CREATE EXTENSION pg_zdm").unwrap();
    let fresh: String = c.query_one(FINGERPRINT, &[]).unwrap().get(0);
    c.batch_execute("DROP EXTENSION pg_zdm").unwrap();

    for v in versions {
        c.batch_execute(&format!("CREATE EXTENSION pg_zdm VERSION '{v}'"))
            .unwrap();
        // A migration in flight across the update, as that version left it: a
        // generated function owned by the superuser who started it, executable
        // by PUBLIC, and its trigger firing for origin writes only. (Made by
        // hand: this version's library cannot start one on the old catalog.)
        c.batch_execute(
            "CREATE ROLE inflight_owner;
             CREATE TABLE inflight (id int PRIMARY KEY, a text); ALTER TABLE inflight OWNER TO inflight_owner;
             CREATE FUNCTION zdm.sync_inflight() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
             CREATE TRIGGER zdm_sync_inflight BEFORE INSERT ON inflight FOR EACH ROW EXECUTE FUNCTION zdm.sync_inflight();
             SET zdm.catalog_write = on;
             INSERT INTO zdm.migrations (name, table_name, kind, phase, columns, spec, plan)
             VALUES ('inflight', 'public.inflight', 'rename_column', 'started', '{a}', '{}',
                     '{\"start\": [{\"description\": \"f\", \"sql\": \"CREATE FUNCTION zdm.sync_inflight() RETURNS trigger\"}],
                       \"validate\": [], \"complete\": [], \"rollback\": []}');
             RESET zdm.catalog_write;",
        )
        .unwrap();
        c.batch_execute("ALTER EXTENSION pg_zdm UPDATE").unwrap();
        let r = c
            .query_one(
                "SELECT pg_get_userbyid(p.proowner)::text, has_function_privilege('public', p.oid, 'EXECUTE'),
                        (SELECT tgenabled::text FROM pg_trigger WHERE tgname = 'zdm_sync_inflight')
                   FROM pg_proc p WHERE p.oid = 'zdm.sync_inflight()'::regprocedure",
                &[],
            )
            .unwrap();
        let (owner, public_execute, enabled): (String, bool, String) = (r.get(0), r.get(1), r.get(2));
        assert_eq!(
            owner, "inflight_owner",
            "update from {v}: a generated function goes to its table's owner"
        );
        assert!(!public_execute, "update from {v}: PUBLIC may not execute it");
        assert_eq!(enabled, "A", "update from {v}: its trigger fires ALWAYS");
        c.batch_execute(
            "SELECT zdm.rollback('inflight'); DROP TABLE inflight; DROP FUNCTION zdm.sync_inflight(); DROP ROLE inflight_owner;",
        )
        .unwrap();
        let updated: String = c.query_one(FINGERPRINT, &[]).unwrap().get(0);
        if updated != fresh {
            let f: Vec<&str> = fresh.lines().collect();
            let u: Vec<&str> = updated.lines().collect();
            let missing: Vec<&&str> = f.iter().filter(|l| !u.contains(l)).collect();
            let extra: Vec<&&str> = u.iter().filter(|l| !f.contains(l)).collect();
            panic!(
                "ALTER EXTENSION UPDATE from {v} differs from a fresh install.\nonly in fresh install:\n{}\nonly after update:\n{}\n\
                 Add the difference to sql/pg_zdm--{v}--<current>.sql.",
                missing.iter().map(|l| format!("  {l}")).collect::<Vec<_>>().join("\n"),
                extra.iter().map(|l| format!("  {l}")).collect::<Vec<_>>().join("\n")
            );
        }
        // And the updated extension works.
        c.batch_execute("CREATE TABLE IF NOT EXISTS t (id int PRIMARY KEY, a text); INSERT INTO t VALUES (1, 'x') ON CONFLICT DO NOTHING;").unwrap();
        c.execute("SELECT zdm.rename_column('t', 'a', 'b', 'after_update')", &[])
            .unwrap();
        c.execute("SELECT zdm.rollback('after_update')", &[]).unwrap();
        c.batch_execute("DROP EXTENSION pg_zdm").unwrap();
    }
}
