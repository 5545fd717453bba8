//! Learn the shadow table's shape by building it: in a subtransaction that is
//! always rolled back, `CREATE TABLE ... (LIKE ... INCLUDING ALL)` and the
//! user's alterations run for real, and PostgreSQL tells us what came out
//! (column types, which indexes survived, identity sequences). Its errors (an
//! unknown column in an alteration, an impossible type change) reach the user
//! with their own SQLSTATE, before anything is created.
//!
//! By job: this file is the flow (`probe`: refuse, build, shape); `catalog`
//! holds the catalog reads the shape is made of; `assemble` turns what the
//! build brought back into a `ShadowShape`; `refusals` holds the refusals of
//! tables whose dependents cannot be re-pointed by the swap, checked before
//! anything is created.

mod assemble;
mod catalog;
mod refusals;

use self::assemble::shape_of;
use self::catalog::{identity_always_columns, index_builds, pair_indexes};
use self::refusals::refuse_unswappable_table;
use super::shape::{IndexBuild, ShadowShape};
use crate::catalog::introspect::{load_table, spi_err};
use crate::catalog::TableInfo;
use crate::error::{ZdmError, ZdmResult};
use crate::ident::QualifiedName;
use crate::session::{caught_message, caught_sqlstate, in_rolled_back_subtransaction, in_subtransaction, with_local_settings};
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
