//! Learn the shadow table's shape by building it: in a subtransaction that is
//! always rolled back, `CREATE TABLE ... (LIKE ... INCLUDING ALL)` and the
//! user's alterations run for real, and PostgreSQL tells us what came out
//! (column types, which indexes survived, identity sequences). Its errors (an
//! unknown column in an alteration, an impossible type change) reach the user
//! with their own SQLSTATE, before anything is created.
//!
//! Also here: the refusals of tables whose dependents cannot be re-pointed by
//! the swap, checked before anything is created.

use super::shape::{IndexBuild, ReverseColumn, ShadowColumn, ShadowForeignKey, ShadowShape, Source};
use crate::catalog::introspect::{load_table, spi_err};
use crate::catalog::TableInfo;
use crate::error::{ZdmError, ZdmResult};
use crate::expr::{self, ExprRules};
use crate::ident::{Ident, QualifiedName};
use crate::session::{
    caught_message, caught_sqlstate, in_rolled_back_subtransaction, in_subtransaction, with_local_settings,
};
use pgrx::pg_sys;
use pgrx::pg_sys::errcodes::PgSqlErrorCode;
use pgrx::prelude::*;
use std::collections::{BTreeMap, HashMap};

pub struct ProbeRequest<'a> {
    pub original: &'a TableInfo,
    pub shadow: &'a QualifiedName,
    pub alterations: &'a [String],
    pub column_map: &'a BTreeMap<String, String>,
}

/// What the subtransaction brings back (owned values only).
struct Built {
    shadow: TableInfo,
    /// shadow attnum → original column name, as LIKE made them (before alterations).
    origin: HashMap<i16, String>,
    index_pairs: Vec<(String, String)>,
    /// attnums of the shadow's GENERATED ALWAYS identity columns.
    identity_always: Vec<i16>,
    create: Vec<String>,
    unlogged: bool,
    indexes_to_build: Vec<IndexBuild>,
}

/// The shadow's shape, or the reason it cannot be built.
pub fn probe(req: &ProbeRequest) -> ZdmResult<ShadowShape> {
    with_local_settings(&[("search_path", "pg_catalog".to_string())], || {
        let alterations = super::alterations::check_all(req.alterations)?;
        let req = &ProbeRequest {
            alterations: &alterations,
            ..*req
        };
        refuse_unswappable_table(req.original)?;
        let built = in_rolled_back_subtransaction(|| build(req)).map_err(|e| {
            ZdmError::new(
                caught_sqlstate(&e).unwrap_or(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR),
                format!(
                    "cannot build the shadow of {}: {}",
                    req.original.name.display_raw(),
                    caught_message(&e)
                ),
            )
        })??;
        shape_of(req, built)
    })
}

fn build(req: &ProbeRequest) -> ZdmResult<Built> {
    let orig = req.original;
    let (persistence, options, tablespace, owner): (String, Vec<String>, Option<String>, String) = Spi::connect(|c| {
        let r = c
            .select(
                "SELECT c.relpersistence::text,
                        ARRAY(SELECT pg_catalog.format('%I = %L', o.option_name, o.option_value)
                                FROM pg_catalog.pg_options_to_table(c.reloptions) o
                              UNION ALL
                              SELECT pg_catalog.format('toast.%I = %L', o.option_name, o.option_value)
                                FROM pg_catalog.pg_class t, pg_catalog.pg_options_to_table(t.reloptions) o
                               WHERE t.oid = c.reltoastrelid),
                        (SELECT pg_catalog.quote_ident(spcname) FROM pg_catalog.pg_tablespace WHERE oid = c.reltablespace),
                        pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(c.relowner))
                   FROM pg_catalog.pg_class c WHERE c.oid = $1::int8::oid",
                Some(1),
                &[(orig.oid as i64).into()],
            )?
            .first();
        Ok::<_, pgrx::spi::Error>((
            r.get::<String>(1)?.unwrap_or_default(),
            r.get::<Vec<String>>(2)?.unwrap_or_default(),
            r.get::<String>(3)?,
            r.get::<String>(4)?.unwrap_or_default(),
        ))
    })
    .map_err(spi_err)?;
    let unlogged = persistence == "u";
    let mut create = vec![format!(
        "CREATE {}TABLE {} (LIKE {} INCLUDING ALL){}{}",
        if unlogged { "UNLOGGED " } else { "" },
        req.shadow,
        orig.name,
        if options.is_empty() {
            String::new()
        } else {
            format!(" WITH ({})", options.join(", "))
        },
        tablespace.map(|t| format!(" TABLESPACE {t}")).unwrap_or_default()
    )];
    create.push(format!("ALTER TABLE {} OWNER TO {owner}", req.shadow));
    // LIKE copies a NOT VALID check as a valid one, and even NOT VALID it would
    // refuse the old rows the backfill copies (new rows to the shadow). It is
    // left out of the shadow and added back, NOT VALID, by the swap.
    for check in orig.checks.iter().filter(|c| !c.validated) {
        create.push(format!("ALTER TABLE {} DROP CONSTRAINT {}", req.shadow, check.name));
    }
    for sql in &create {
        Spi::run(sql).map_err(spi_err)?;
    }
    let shadow_oid = crate::catalog::introspect::resolve_oid(&req.shadow.to_string())?;
    let origin: HashMap<i16, String> = Spi::connect(|c| {
        c.select(
            "SELECT attnum, attname::text FROM pg_catalog.pg_attribute
              WHERE attrelid = $1::int8::oid AND attnum > 0 AND NOT attisdropped",
            None,
            &[(shadow_oid as i64).into()],
        )?
        .map(|r| Ok((r.get::<i16>(1)?.unwrap_or(0), r.get::<String>(2)?.unwrap_or_default())))
        .collect::<Result<_, pgrx::spi::Error>>()
    })
    .map_err(spi_err)?;
    let index_pairs = pair_indexes(orig.oid, shadow_oid)?;
    for (i, alteration) in req.alterations.iter().enumerate() {
        let sql = format!("ALTER TABLE {} {alteration}", req.shadow);
        in_subtransaction(|| Spi::run(&sql)).map_err(|e| {
            ZdmError::new(
                caught_sqlstate(&e).unwrap_or(PgSqlErrorCode::ERRCODE_SYNTAX_ERROR),
                format!(
                    "alteration {} \"{alteration}\" cannot be applied to {}: {}",
                    i + 1,
                    orig.name.display_raw(),
                    caught_message(&e)
                ),
            )
            .hint("Alterations run in order on a copy of the table; later ones see the columns earlier ones renamed or added.")
        })?
        .map_err(spi_err)?;
    }
    let shadow = load_table(&req.shadow.to_string())?;
    let index_pairs = index_pairs
        .into_iter()
        .filter(|(s, _)| shadow.indexes.iter().any(|i| i.name.raw() == s))
        .collect();
    let identity_always = identity_always_columns(shadow.oid)?;
    let indexes_to_build = index_builds(&req.shadow.to_string(), shadow.oid)?;
    Ok(Built {
        indexes_to_build,
        shadow,
        origin,
        index_pairs,
        identity_always,
        create,
        unlogged,
    })
}

/// How to drop each index of the shadow and build it again as it is now
/// (definitions read under search_path = pg_catalog: every name qualified).
fn index_builds(shadow: &str, oid: u32) -> ZdmResult<Vec<IndexBuild>> {
    Spi::connect(|c| {
        c.select(
            "SELECT ic.relname::text,
                    con.oid IS NOT NULL,
                    CASE WHEN con.oid IS NOT NULL
                         THEN pg_catalog.format('ALTER TABLE %s DROP CONSTRAINT %I', $2, con.conname)
                         ELSE pg_catalog.format('DROP INDEX %I.%I', n.nspname, ic.relname) END,
                    CASE WHEN con.oid IS NOT NULL
                         THEN pg_catalog.format('ALTER TABLE %s ADD CONSTRAINT %I %s', $2, con.conname,
                                                pg_catalog.pg_get_constraintdef(con.oid))
                         ELSE pg_catalog.pg_get_indexdef(i.indexrelid) END,
                    CASE WHEN con.oid IS NOT NULL
                         THEN pg_catalog.format('COMMENT ON CONSTRAINT %I ON %s IS %L', con.conname, $2,
                                                pg_catalog.obj_description(con.oid, 'pg_constraint'))
                         ELSE pg_catalog.format('COMMENT ON INDEX %I.%I IS %L', n.nspname, ic.relname,
                                                pg_catalog.obj_description(i.indexrelid, 'pg_class')) END,
                    coalesce(pg_catalog.obj_description(con.oid, 'pg_constraint'),
                             pg_catalog.obj_description(i.indexrelid, 'pg_class')) IS NOT NULL
               FROM pg_catalog.pg_index i
               JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
               JOIN pg_catalog.pg_namespace n ON n.oid = ic.relnamespace
               LEFT JOIN pg_catalog.pg_constraint con
                      ON con.conindid = i.indexrelid AND con.conrelid = i.indrelid
                     AND con.contype IN ('p', 'u', 'x')
              WHERE i.indrelid = $1::int8::oid
              ORDER BY i.indexrelid",
            None,
            &[(oid as i64).into(), shadow.into()],
        )?
        .map(|r| {
            let mut build = vec![r.get::<String>(4)?.unwrap_or_default()];
            if r.get::<bool>(6)?.unwrap_or(false) {
                build.push(r.get::<String>(5)?.unwrap_or_default());
            }
            Ok(IndexBuild {
                name: Ident::new(r.get::<String>(1)?.unwrap_or_default().as_str()),
                constraint: r.get::<bool>(2)?.unwrap_or(false),
                drop: r.get::<String>(3)?.unwrap_or_default(),
                build,
            })
        })
        .collect::<Result<_, pgrx::spi::Error>>()
    })
    .map_err(spi_err)
}

/// LIKE ... INCLUDING INDEXES builds the copies in the order of the original's
/// index list (by oid), so the n-th new index copies the n-th old one. Checked
/// column by column, so a mismatch is an internal error, never a wrong name.
fn pair_indexes(orig: u32, shadow: u32) -> ZdmResult<Vec<(String, String)>> {
    let list = |oid: u32| -> ZdmResult<Vec<(String, String)>> {
        Spi::connect(|c| {
            c.select(
                "SELECT ic.relname::text, i.indkey::text || '/' || i.indisunique || '/' || i.indisprimary || '/' || ic.relam
                   FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
                  WHERE i.indrelid = $1::int8::oid ORDER BY i.indexrelid",
                None,
                &[(oid as i64).into()],
            )?
            .map(|r| Ok((r.get::<String>(1)?.unwrap_or_default(), r.get::<String>(2)?.unwrap_or_default())))
            .collect::<Result<_, pgrx::spi::Error>>()
        })
        .map_err(spi_err)
    };
    let (o, s) = (list(orig)?, list(shadow)?);
    if o.len() != s.len() || o.iter().zip(&s).any(|(a, b)| a.1 != b.1) {
        return Err(ZdmError::new(
            PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            "the shadow table's indexes do not match the original's one for one",
        ));
    }
    Ok(s.into_iter().zip(o).map(|(s, o)| (s.0, o.0)).collect())
}

/// Can a value of type `from` be stored in a column of type `to` (assignment cast)?
fn assignable(from: u32, to: u32) -> bool {
    if from == to {
        return true;
    }
    let (f, t) = (pg_sys::Oid::from(from), pg_sys::Oid::from(to));
    unsafe { pg_sys::can_coerce_type(1, &f, &t, pg_sys::CoercionContext::COERCION_ASSIGNMENT) }
}

fn shape_of(req: &ProbeRequest, built: Built) -> ZdmResult<ShadowShape> {
    let orig = req.original;
    let shadow = &built.shadow;
    let table = orig.name.display_raw();
    for key in req.column_map.keys() {
        let Some(col) = shadow.column(key) else {
            return Err(ZdmError::new(
                PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN,
                format!("column_map names column \"{key}\", which the shadow of {table} does not have"),
            )
            .hint(format!(
                "The shadow's columns are: {}. Add a column with an alteration first: 'ADD COLUMN {key} <type>'.",
                shadow
                    .columns
                    .iter()
                    .map(|c| c.name.raw())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        };
        if col.generated {
            return Err(ZdmError::new(
                PgSqlErrorCode::ERRCODE_GENERATED_ALWAYS,
                format!("column_map names \"{key}\", a generated column of the shadow of {table}"),
            )
            .hint("Generated columns are computed by PostgreSQL; leave them out of column_map."));
        }
    }
    let defaults_of = |t: &TableInfo, name: &str| t.column(name).map(|c| c.default_sql.is_some()).unwrap_or(false);
    let identity_always = &built.identity_always;
    let orig_identity_always = identity_always_columns(orig.oid)?;
    let row = expr::row_of(orig);
    let mut columns = Vec::new();
    for c in &shadow.columns {
        let source = if let Some(text) = req.column_map.get(c.name.raw()) {
            let e = expr::analyze(
                orig,
                &row,
                text,
                &ExprRules {
                    what: &format!("column_map.{}", c.name.raw()),
                    cast_to: None,
                    allow_volatile: false,
                },
            )?;
            if !assignable(e.result_type, c.type_oid) {
                return Err(ZdmError::new(
                    PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH,
                    format!(
                        "column_map.{} \"{}\" cannot be stored in column {} of type {}",
                        c.name.raw(),
                        e.text,
                        c.name.raw(),
                        c.type_sql
                    ),
                )
                .hint(format!("Cast it explicitly: ({})::{}", e.text, c.type_sql)));
            }
            Source::Map {
                text: e.text,
                over_new: e.over_new,
            }
        } else if c.generated {
            Source::Default
        } else if let Some(o) = built.origin.get(&c.attnum).and_then(|n| orig.column(n)) {
            if !assignable(o.type_oid, c.type_oid) {
                return Err(ZdmError::new(
                    PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH,
                    format!(
                        "column {} of the shadow of {table} is {}, and {} values of {} cannot be assigned to it",
                        c.name.raw(),
                        c.type_sql,
                        o.type_sql,
                        o.name.raw()
                    ),
                )
                .hint(format!(
                    "Give the conversion in column_map: {{\"{}\": \"{}::{}\"}}",
                    c.name.raw(),
                    o.name.raw(),
                    c.type_sql
                )));
            }
            Source::Copy(o.name.clone())
        } else {
            Source::Default
        };
        columns.push(ShadowColumn {
            name: c.name.clone(),
            type_sql: c.type_sql.clone(),
            not_null: c.not_null,
            has_default: defaults_of(shadow, c.name.raw()) || c.identity,
            generated: c.generated,
            identity_always: identity_always.contains(&c.attnum),
            source,
        });
    }
    // After the swap the old table is filled back from the new one.
    let by_origin: HashMap<&str, &crate::catalog::ColumnInfo> = shadow
        .columns
        .iter()
        .filter_map(|c| built.origin.get(&c.attnum).map(|o| (o.as_str(), c)))
        .collect();
    let mut reverse = Vec::new();
    for o in &orig.columns {
        let source = by_origin
            .get(o.name.raw())
            .filter(|s| !s.generated || o.generated)
            .filter(|s| assignable(s.type_oid, o.type_oid))
            .map(|s| s.name.clone());
        reverse.push(ReverseColumn {
            name: o.name.clone(),
            not_null: o.not_null,
            has_default: o.default_sql.is_some() || o.identity,
            generated: o.generated,
            identity_always: orig_identity_always.contains(&o.attnum),
            source,
        });
    }
    let mut identity_sequences = Vec::new();
    for c in shadow.columns.iter().filter(|c| c.identity) {
        let Some(o) = built.origin.get(&c.attnum).and_then(|n| orig.column(n)) else {
            continue;
        };
        let (Some(s), Some(os)) = (&c.owned_sequence, &o.owned_sequence) else {
            continue;
        };
        // RENAME TO takes the bare name.
        let bare: Option<String> = crate::session::get_optional(
            "SELECT pg_catalog.quote_ident(relname::text) FROM pg_catalog.pg_class WHERE oid = $1::regclass",
            &[os.0.as_str().into()],
        )
        .map_err(spi_err)?;
        if let Some(bare) = bare {
            identity_sequences.push((s.clone(), crate::ident::SqlFragment(bare)));
        }
    }
    let mut shape = ShadowShape {
        original: orig.clone(),
        shadow: built.shadow.clone(),
        columns,
        reverse,
        index_names: built
            .index_pairs
            .iter()
            .map(|(s, o)| (Ident::new(s.as_str()), Ident::new(o.as_str())))
            .collect(),
        identity_sequences,
        foreign_keys: Vec::new(),
        not_valid_checks: Vec::new(),
        create: built.create,
        alterations: req.alterations.to_vec(),
        unlogged: built.unlogged,
        indexes_to_build: built.indexes_to_build,
    };
    shape.foreign_keys = outgoing_foreign_keys(&shape)?;
    // NOT VALID checks come back at the swap, when they read only columns the
    // shadow keeps under the same name (a renamed column's check is not carried).
    shape.not_valid_checks = orig
        .checks
        .iter()
        .filter(|c| !c.validated)
        .filter(|c| {
            c.attnums.iter().all(|a| {
                orig.columns
                    .iter()
                    .find(|col| col.attnum == *a)
                    .and_then(|col| {
                        shape
                            .copied_into(col.name.raw())
                            .map(|s| s.name.raw() == col.name.raw())
                    })
                    .unwrap_or(false)
            })
        })
        .map(|c| format!("ADD CONSTRAINT {} CHECK ({}) NOT VALID", c.name, c.expr))
        .collect();
    refuse_lost_dependents(&shape)?;
    Ok(shape)
}

fn identity_always_columns(oid: u32) -> ZdmResult<Vec<i16>> {
    Spi::connect(|c| {
        c.select(
            "SELECT attnum FROM pg_catalog.pg_attribute WHERE attrelid = $1::int8::oid AND attidentity = 'a'",
            None,
            &[(oid as i64).into()],
        )?
        .map(|r| Ok(r.get::<i16>(1)?.unwrap_or(0)))
        .collect::<Result<_, pgrx::spi::Error>>()
    })
    .map_err(spi_err)
}

/// The original's foreign keys, as the shadow gets them (columns renamed with
/// it; a self-reference points at the shadow). Keys on a dropped column are left behind.
fn outgoing_foreign_keys(shape: &ShadowShape) -> ZdmResult<Vec<ShadowForeignKey>> {
    let orig = &shape.original;
    let mut out = Vec::new();
    for fk in &orig.foreign_keys {
        let cols: Option<Vec<Ident>> = fk
            .attnums
            .iter()
            .map(|a| {
                let c = orig.columns.iter().find(|c| c.attnum == *a)?;
                Some(shape.copied_into(c.name.raw())?.name.clone())
            })
            .collect();
        let Some(columns) = cols else { continue };
        let self_reference = crate::catalog::introspect::resolve_oid(&fk.referenced)? == orig.oid;
        let (referenced, referenced_columns) = if self_reference {
            let rc: Option<Vec<Ident>> = fk
                .referenced_columns
                .iter()
                .map(|c| shape.copied_into(c.raw()).map(|s| s.name.clone()))
                .collect();
            let Some(rc) = rc else { continue };
            (shape.shadow.name.to_string(), rc)
        } else {
            (fk.referenced.clone(), fk.referenced_columns.clone())
        };
        out.push(ShadowForeignKey {
            name: fk.name.clone(),
            columns,
            referenced,
            referenced_columns,
            actions: fk.actions.clone(),
            deferrable: fk.deferrable.clone(),
        });
    }
    Ok(out)
}

fn refuse(message: String, hint: &str) -> ZdmError {
    ZdmError::not_supported(message).hint(hint.to_string())
}

/// Tables the swap cannot handle, refused before anything is created.
fn refuse_unswappable_table(t: &TableInfo) -> ZdmResult<()> {
    let name = t.name.display_raw();
    let oid = t.oid as i64;
    let q = |sql: &str| -> ZdmResult<Option<String>> {
        crate::session::get_optional::<String>(sql, &[oid.into()]).map_err(spi_err)
    };
    if let Some(why) = q("SELECT CASE WHEN c.relpersistence = 't' THEN 'a temporary table'
                                    WHEN c.relispartition THEN 'a partition'
                                    WHEN c.reloftype <> 0 THEN 'a typed table (OF type)'
                                    WHEN EXISTS (SELECT FROM pg_catalog.pg_inherits WHERE inhrelid = c.oid) THEN 'an inheritance child'
                                    WHEN EXISTS (SELECT FROM pg_catalog.pg_inherits WHERE inhparent = c.oid) THEN 'an inheritance parent'
                                    WHEN EXISTS (SELECT FROM pg_catalog.pg_rewrite WHERE ev_class = c.oid) THEN 'a table with rules'
                               END
                          FROM pg_catalog.pg_class c WHERE c.oid = $1::oid")?
    {
        return Err(refuse(
            format!("{name} is {why}; pg_zdm cannot swap it with a shadow table"),
            "The swap renames the table and re-points its dependents; this kind of table would not come out the same. \
             Use column operations (zdm.alter_column_type, zdm.add_column...) instead.",
        ));
    }
    if let Some(ev) = q(
        // pg_zdm's own (its DDL guard, an extension member) lets its DDL through.
        "SELECT string_agg(pg_catalog.quote_ident(e.evtname), ', ') FROM pg_catalog.pg_event_trigger e
          WHERE e.evtenabled <> 'D' AND $1::oid IS NOT NULL
            AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend d
                             WHERE d.classid = 'pg_catalog.pg_event_trigger'::pg_catalog.regclass
                               AND d.objid = e.oid AND d.deptype = 'e'
                               AND d.refobjid = (SELECT x.oid FROM pg_catalog.pg_extension x WHERE x.extname = 'pg_zdm'))",
    )? {
        return Err(refuse(
            format!("event triggers are enabled in this database ({ev}); pg_zdm does not swap {name} under them"),
            "The swap runs DDL (DROP/CREATE VIEW, RENAME, CREATE TRIGGER) that event triggers may refuse or act on halfway. \
             Disable them for the migration: ALTER EVENT TRIGGER ... DISABLE;",
        ));
    }
    if let Some(p) = q(
        "SELECT string_agg(pg_catalog.quote_ident(p.pubname), ', ') FROM pg_catalog.pg_publication p
                          WHERE p.puballtables
                             OR EXISTS (SELECT FROM pg_catalog.pg_publication_namespace pn JOIN pg_catalog.pg_class c
                                          ON c.relnamespace = pn.pnnspid WHERE pn.pnpubid = p.oid AND c.oid = $1::oid)
                             OR EXISTS (SELECT FROM pg_catalog.pg_publication_rel pr
                                         WHERE pr.prpubid = p.oid AND pr.prrelid = $1::oid
                                           AND (pr.prqual IS NOT NULL OR pr.prattrs IS NOT NULL))",
    )? {
        return Err(refuse(
            format!("publication(s) {p} would publish the shadow of {name}, or publish {name} with a row filter or column list"),
            "A FOR ALL TABLES or FOR TABLES IN SCHEMA publication would send the shadow table to subscribers that lack it. \
             Publish the table by name (ALTER PUBLICATION ... ADD TABLE) for the migration.",
        ));
    }
    if let Some(objs) = q("SELECT string_agg(DISTINCT pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid), '; ')
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
                                                    'pg_catalog.pg_type'::regclass)")?
    {
        return Err(refuse(
            format!("{name} has dependents the swap cannot re-point: {objs}"),
            "Materialized views, rules, functions with SQL-standard bodies and policies of other tables stay bound to the old table. \
             Drop them for the migration and create them again after complete.",
        ));
    }
    if let Some(objs) = q(
        "SELECT string_agg(DISTINCT pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid), '; ')
                             FROM pg_catalog.pg_class c
                             JOIN pg_catalog.pg_type t ON t.oid = c.reltype
                             JOIN pg_catalog.pg_depend d ON d.refclassid = 'pg_catalog.pg_type'::regclass
                                                        AND d.refobjid IN (t.oid, t.typarray) AND d.deptype = 'n'
                            WHERE c.oid = $1::oid",
    )? {
        return Err(refuse(
            format!("the row type of {name} is used by: {objs}"),
            "Functions and columns of the table's row type stay bound to the old table's type. Drop or change them first.",
        ));
    }
    if let Some(objs) = q("WITH RECURSIVE v(oid) AS (
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
                               OR EXISTS (SELECT FROM pg_catalog.pg_rewrite WHERE ev_class = c.oid AND rulename <> '_RETURN')")?
    {
        return Err(refuse(
            format!("{name} is used by {objs}, which the swap cannot recreate"),
            "Views are dropped and recreated on the new table during the swap; materialized views, and views with triggers or rules, are not. \
             Drop them for the migration and create them again after complete.",
        ));
    }
    Ok(())
}

/// Views, triggers and policies that use a column the shadow renames or drops
/// would not survive the swap: their text names the old column.
fn refuse_lost_dependents(shape: &ShadowShape) -> ZdmResult<()> {
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
    // Foreign keys of other tables need the referenced columns, unique, in the shadow.
    let incoming: Vec<(String, Vec<String>)> = Spi::connect(|c| {
        c.select(
            "SELECT pg_catalog.format('%s on %s', pg_catalog.quote_ident(con.conname), con.conrelid::regclass),
                    ARRAY(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY k(n, o)
                            JOIN pg_catalog.pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n ORDER BY k.o)
               FROM pg_catalog.pg_constraint con
              WHERE con.contype = 'f' AND con.confrelid = $1::int8::oid AND con.conrelid <> con.confrelid",
            None,
            &[(orig.oid as i64).into()],
        )?
        .map(|r| Ok((r.get::<String>(1)?.unwrap_or_default(), r.get::<Vec<String>>(2)?.unwrap_or_default())))
        .collect::<Result<_, pgrx::spi::Error>>()
    })
    .map_err(spi_err)?;
    for (fk, cols) in incoming {
        let mapped: Option<Vec<i16>> = cols
            .iter()
            .map(|c| {
                // Re-created from its definition, which names the column: same name only.
                let s = shape.copied_into(c).filter(|s| s.name.raw() == c)?;
                shape.shadow.column(s.name.raw()).map(|x| x.attnum)
            })
            .collect();
        let unique = mapped.as_ref().is_some_and(|m| {
            shape.shadow.indexes.iter().any(|i| {
                i.unique
                    && i.predicate.is_none()
                    && i.key_count == m.len()
                    && m.iter()
                        .all(|a| i.elements[..i.key_count].iter().any(|(x, _, _)| x == a))
            })
        });
        if !unique {
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
    // A replica identity on an index needs that index's copy in the shadow.
    let replident: Option<String> = crate::session::get_optional(
        "SELECT ic.relname::text FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
          WHERE i.indrelid = $1::int8::oid AND i.indisreplident",
        &[(orig.oid as i64).into()],
    )
    .map_err(spi_err)?;
    if let Some(idx) = replident {
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
