//! What a shadow refuses: tables the swap cannot handle (temporary, partitions,
//! event triggers, publications, dependents that cannot be re-pointed), checked
//! before anything is built, and dependents the shadow's renames or drops would
//! lose, checked once the shape is known. Each refusal names the object and
//! says what to do in its hint.

use super::catalog::{incoming_foreign_keys, replica_identity_index};
use crate::catalog::introspect::spi_err;
use crate::catalog::TableInfo;
use crate::error::{ZdmError, ZdmResult};
use crate::shadow::shape::ShadowShape;
use pgrx::pg_sys::errcodes::PgSqlErrorCode;

fn refuse(message: String, hint: &str) -> ZdmError {
    ZdmError::not_supported(message).hint(hint.to_string())
}

/// Tables the swap cannot handle, refused before anything is created.
pub(super) fn refuse_unswappable_table(t: &TableInfo) -> ZdmResult<()> {
    let name = t.name.display_raw();
    refuse_if_found(t, KIND_SQL, KIND_HINT, |why| {
        format!("{name} is {why}; pg_zdm cannot swap it with a shadow table")
    })?;
    refuse_if_found(t, EVENT_TRIGGERS_SQL, EVENT_TRIGGERS_HINT, |ev| {
        format!("event triggers are enabled in this database ({ev}); pg_zdm does not swap {name} under them")
    })?;
    refuse_if_found(t, PUBLICATIONS_SQL, PUBLICATIONS_HINT, |p| {
        format!(
            "publication(s) {p} would publish the shadow of {name}, or publish {name} with a row filter or column list"
        )
    })?;
    refuse_if_found(t, DEPENDENTS_SQL, DEPENDENTS_HINT, |objs| {
        format!("{name} has dependents the swap cannot re-point: {objs}")
    })?;
    refuse_if_found(t, ROW_TYPE_USERS_SQL, ROW_TYPE_USERS_HINT, |objs| {
        format!("the row type of {name} is used by: {objs}")
    })?;
    refuse_if_found(t, VIEWS_SQL, VIEWS_HINT, |objs| {
        format!("{name} is used by {objs}, which the swap cannot recreate")
    })?;
    Ok(())
}

/// Runs `sql` with the table's oid as `$1`: a non-null text is what refuses
/// the table, and goes into the message.
fn refuse_if_found(t: &TableInfo, sql: &str, hint: &str, message: impl FnOnce(String) -> String) -> ZdmResult<()> {
    let oid = t.oid as i64;
    match crate::session::get_optional::<String>(sql, &[oid.into()]).map_err(spi_err)? {
        Some(found) => Err(refuse(message(found), hint)),
        None => Ok(()),
    }
}

/// What kind of table it is, when the swap cannot handle that kind.
const KIND_SQL: &str = "SELECT CASE WHEN c.relpersistence = 't' THEN 'a temporary table'
                                    WHEN c.relispartition THEN 'a partition'
                                    WHEN c.reloftype <> 0 THEN 'a typed table (OF type)'
                                    WHEN EXISTS (SELECT FROM pg_catalog.pg_inherits WHERE inhrelid = c.oid) THEN 'an inheritance child'
                                    WHEN EXISTS (SELECT FROM pg_catalog.pg_inherits WHERE inhparent = c.oid) THEN 'an inheritance parent'
                                    WHEN EXISTS (SELECT FROM pg_catalog.pg_rewrite WHERE ev_class = c.oid) THEN 'a table with rules'
                               END
                          FROM pg_catalog.pg_class c WHERE c.oid = $1::oid";
const KIND_HINT: &str =
    "The swap renames the table and re-points its dependents; this kind of table would not come out the same. \
             Use column operations (zdm.alter_column_type, zdm.add_column...) instead.";

/// The enabled event triggers. pg_zdm's own (its DDL guard, an extension
/// member) lets its DDL through.
const EVENT_TRIGGERS_SQL: &str = "SELECT string_agg(pg_catalog.quote_ident(e.evtname), ', ') FROM pg_catalog.pg_event_trigger e
          WHERE e.evtenabled <> 'D' AND $1::oid IS NOT NULL
            AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend d
                             WHERE d.classid = 'pg_catalog.pg_event_trigger'::pg_catalog.regclass
                               AND d.objid = e.oid AND d.deptype = 'e'
                               AND d.refobjid = (SELECT x.oid FROM pg_catalog.pg_extension x WHERE x.extname = 'pg_zdm'))";
const EVENT_TRIGGERS_HINT: &str =
    "The swap runs DDL (DROP/CREATE VIEW, RENAME, CREATE TRIGGER) that event triggers may refuse or act on halfway. \
             Disable them for the migration: ALTER EVENT TRIGGER ... DISABLE;";

/// Publications that would publish the shadow (FOR ALL TABLES, FOR TABLES IN
/// SCHEMA), or publish the table with a row filter or column list.
const PUBLICATIONS_SQL: &str =
    "SELECT string_agg(pg_catalog.quote_ident(p.pubname), ', ') FROM pg_catalog.pg_publication p
                          WHERE p.puballtables
                             OR EXISTS (SELECT FROM pg_catalog.pg_publication_namespace pn JOIN pg_catalog.pg_class c
                                          ON c.relnamespace = pn.pnnspid WHERE pn.pnpubid = p.oid AND c.oid = $1::oid)
                             OR EXISTS (SELECT FROM pg_catalog.pg_publication_rel pr
                                         WHERE pr.prpubid = p.oid AND pr.prrelid = $1::oid
                                           AND (pr.prqual IS NOT NULL OR pr.prattrs IS NOT NULL))";
const PUBLICATIONS_HINT: &str =
    "A FOR ALL TABLES or FOR TABLES IN SCHEMA publication would send the shadow table to subscribers that lack it. \
             Publish the table by name (ALTER PUBLICATION ... ADD TABLE) for the migration.";

/// Dependents other than those the swap re-points or rebuilds: views,
/// constraints, the table's own triggers, policies and defaults, its indexes,
/// sequences and TOAST table, statistics objects, publications, types.
const DEPENDENTS_SQL: &str = "SELECT string_agg(DISTINCT pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid), '; ')
                             FROM pg_catalog.pg_depend d
                            WHERE d.refclassid = 'pg_catalog.pg_class'::regclass AND d.refobjid = $1::oid
                              AND d.deptype IN ('n', 'a')
                              AND NOT (d.classid = 'pg_catalog.pg_rewrite'::regclass
                                       AND (SELECT c.relkind FROM pg_catalog.pg_rewrite r JOIN pg_catalog.pg_class c ON c.oid = r.ev_class
                                             WHERE r.oid = d.objid) = 'v')
                              AND NOT (d.classid = 'pg_catalog.pg_constraint'::regclass)
                              AND NOT (d.classid = 'pg_catalog.pg_trigger'::regclass
                                       AND (SELECT tgrelid FROM pg_catalog.pg_trigger WHERE oid = d.objid) = $1::oid)
                              AND NOT (d.classid = 'pg_catalog.pg_policy'::regclass
                                       AND (SELECT polrelid FROM pg_catalog.pg_policy WHERE oid = d.objid) = $1::oid)
                              AND NOT (d.classid = 'pg_catalog.pg_class'::regclass
                                       AND (SELECT relkind FROM pg_catalog.pg_class WHERE oid = d.objid) IN ('i', 'I', 'S', 't'))
                              AND NOT (d.classid = 'pg_catalog.pg_attrdef'::regclass
                                       AND (SELECT adrelid FROM pg_catalog.pg_attrdef WHERE oid = d.objid) = $1::oid)
                              AND d.classid NOT IN ('pg_catalog.pg_statistic_ext'::regclass, 'pg_catalog.pg_publication_rel'::regclass,
                                                    'pg_catalog.pg_type'::regclass)";
const DEPENDENTS_HINT: &str = "Materialized views, rules, functions with SQL-standard bodies and policies of other tables stay bound to the old table. \
             Drop them for the migration and create them again after complete.";

/// Users of the table's row type (or its array type).
const ROW_TYPE_USERS_SQL: &str =
    "SELECT string_agg(DISTINCT pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid), '; ')
                             FROM pg_catalog.pg_class c
                             JOIN pg_catalog.pg_type t ON t.oid = c.reltype
                             JOIN pg_catalog.pg_depend d ON d.refclassid = 'pg_catalog.pg_type'::regclass
                                                        AND d.refobjid IN (t.oid, t.typarray) AND d.deptype = 'n'
                            WHERE c.oid = $1::oid";
const ROW_TYPE_USERS_HINT: &str =
    "Functions and columns of the table's row type stay bound to the old table's type. Drop or change them first.";

/// Materialized views, and views with triggers or rules, on the table
/// directly or through other views.
const VIEWS_SQL: &str = "WITH RECURSIVE v(oid) AS (
                               SELECT DISTINCT r.ev_class FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_rewrite r ON r.oid = d.objid
                                WHERE d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.refclassid = 'pg_catalog.pg_class'::regclass
                                  AND d.refobjid = $1::oid AND r.ev_class <> $1::oid
                               UNION
                               SELECT r.ev_class FROM v JOIN pg_catalog.pg_depend d ON d.refclassid = 'pg_catalog.pg_class'::regclass
                                      AND d.refobjid = v.oid AND d.classid = 'pg_catalog.pg_rewrite'::regclass
                                 JOIN pg_catalog.pg_rewrite r ON r.oid = d.objid AND r.ev_class <> v.oid)
                           SELECT string_agg(pg_catalog.format('%s (%s)', c.oid::regclass,
                                     CASE WHEN c.relkind = 'm' THEN 'a materialized view'
                                          WHEN EXISTS (SELECT FROM pg_catalog.pg_trigger WHERE tgrelid = c.oid) THEN 'a view with triggers'
                                          ELSE 'a view with rules' END), ', ')
                             FROM v JOIN pg_catalog.pg_class c ON c.oid = v.oid
                            WHERE c.relkind = 'm'
                               OR EXISTS (SELECT FROM pg_catalog.pg_trigger WHERE tgrelid = c.oid)
                               OR EXISTS (SELECT FROM pg_catalog.pg_rewrite WHERE ev_class = c.oid AND rulename <> '_RETURN')";
const VIEWS_HINT: &str = "Views are dropped and recreated on the new table during the swap; materialized views, and views with triggers or rules, are not. \
             Drop them for the migration and create them again after complete.";

/// Dependents the shadow's renames or drops would lose, refused once the
/// shape is known.
pub(super) fn refuse_lost_dependents(shape: &ShadowShape) -> ZdmResult<()> {
    refuse_lost_column_users(shape)?;
    refuse_unkept_referenced_keys(shape)?;
    refuse_lost_replica_identity(shape)
}

/// Views, triggers and policies that use a column the shadow renames or drops
/// would not survive the swap: their text names the old column.
fn refuse_lost_column_users(shape: &ShadowShape) -> ZdmResult<()> {
    let orig = &shape.original;
    for c in &orig.columns {
        let kept = shape
            .copied_into(c.name.raw())
            .is_some_and(|s| s.name.raw() == c.name.raw());
        if kept {
            continue;
        }
        if let Some(d) = orig
            .dependents_of(c.attnum)
            .find(|d| matches!(d.kind.as_str(), "view" | "trigger" | "policy"))
        {
            return Err(ZdmError::new(
                PgSqlErrorCode::ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST,
                format!(
                    "column {} of {} is renamed or dropped by the shadow, but {} uses it",
                    c.name.raw(),
                    orig.name.display_raw(),
                    d.name
                ),
            )
            .hint("The swap recreates views, triggers and policies from their definitions, which name the old column. Change or drop them first."));
        }
    }
    Ok(())
}

/// Foreign keys of other tables need the referenced columns, unique, in the shadow.
fn refuse_unkept_referenced_keys(shape: &ShadowShape) -> ZdmResult<()> {
    let orig = &shape.original;
    for (fk, cols) in incoming_foreign_keys(orig.oid)? {
        if !kept_unique(shape, &cols) {
            return Err(ZdmError::new(
                PgSqlErrorCode::ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST,
                format!(
                    "foreign key {fk} references {} ({}), which the shadow drops, renames or no longer keeps unique",
                    orig.name.display_raw(),
                    cols.join(", ")
                ),
            )
            .hint("Keep the referenced columns and their unique index in the shadow, or drop the foreign key first."));
        }
    }
    Ok(())
}

/// Does the shadow keep these columns of the original, under the same names,
/// as the keys of a unique index without a predicate?
fn kept_unique(shape: &ShadowShape, cols: &[String]) -> bool {
    let mapped: Option<Vec<i16>> = cols
        .iter()
        .map(|c| {
            // Re-created from its definition, which names the column: same name only.
            let s = shape.copied_into(c).filter(|s| s.name.raw() == c)?;
            shape.shadow.column(s.name.raw()).map(|x| x.attnum)
        })
        .collect();
    mapped.as_ref().is_some_and(|m| {
        shape.shadow.indexes.iter().any(|i| {
            i.unique
                && i.predicate.is_none()
                && i.key_count == m.len()
                && m.iter()
                    .all(|a| i.elements[..i.key_count].iter().any(|(x, _, _)| x == a))
        })
    })
}

/// A replica identity on an index needs that index's copy in the shadow.
fn refuse_lost_replica_identity(shape: &ShadowShape) -> ZdmResult<()> {
    let orig = &shape.original;
    if let Some(idx) = replica_identity_index(orig.oid)? {
        if !shape.index_names.iter().any(|(_, o)| o.raw() == idx) {
            return Err(ZdmError::wrong_state(format!(
                "the replica identity of {} is index {idx}, which the shadow does not keep",
                orig.name.display_raw()
            ))
            .hint("Keep the index's columns in the shadow, or change the replica identity first (ALTER TABLE ... REPLICA IDENTITY DEFAULT)."));
        }
    }
    Ok(())
}
