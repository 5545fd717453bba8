//! Learn the shadow table's shape by building it: in a subtransaction that is
//! always rolled back, `CREATE TABLE ... (LIKE ... INCLUDING ALL)` and the
//! user's alterations run for real, and PostgreSQL tells us what came out
//! (column types, which indexes survived, identity sequences). Its errors (an
//! unknown column in an alteration, an impossible type change) reach the user
//! with their own SQLSTATE, before anything is created.
//!
//! By job: this file is the flow (`probe`: refuse, build in the rolled-back
//! subtransaction, shape); `catalog` holds the catalog reads the shape is made
//! of; `assemble` turns what the build brought back into a `ShadowShape`;
//! `refusals` holds what a shadow refuses (tables the swap cannot handle,
//! checked before anything is created, and dependents the shadow's renames
//! or drops would lose).

mod assemble;
mod catalog;
mod refusals;

use self::assemble::shape_of;
use self::catalog::{
    column_names, identity_always_columns, index_builds, pair_indexes, storage_settings, StorageSettings,
};
use self::refusals::refuse_unswappable_table;
use super::shape::{IndexBuild, ShadowShape};
use crate::catalog::introspect::{load_table, spi_err};
use crate::catalog::TableInfo;
use crate::error::{ZdmError, ZdmResult};
use crate::ident::QualifiedName;
use crate::session::{
    caught_message, caught_sqlstate, in_rolled_back_subtransaction, in_subtransaction, with_local_settings,
};
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
    let settings = storage_settings(orig.oid)?;
    let unlogged = settings.persistence == "u";
    let create = create_statements(req, &settings, unlogged);
    for sql in &create {
        Spi::run(sql).map_err(spi_err)?;
    }
    let shadow_oid = crate::catalog::introspect::resolve_oid(&req.shadow.to_string())?;
    let origin = column_names(shadow_oid)?;
    let index_pairs = pair_indexes(orig.oid, shadow_oid)?;
    apply_alterations(req)?;
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

/// The statements that create the shadow as a copy of the original: same
/// persistence, storage options, tablespace and owner.
fn create_statements(req: &ProbeRequest, settings: &StorageSettings, unlogged: bool) -> Vec<String> {
    let orig = req.original;
    let mut create = vec![format!(
        "CREATE {}TABLE {} (LIKE {} INCLUDING ALL){}{}",
        if unlogged { "UNLOGGED " } else { "" },
        req.shadow,
        orig.name,
        if settings.options.is_empty() {
            String::new()
        } else {
            format!(" WITH ({})", settings.options.join(", "))
        },
        settings
            .tablespace
            .as_ref()
            .map(|t| format!(" TABLESPACE {t}"))
            .unwrap_or_default()
    )];
    create.push(format!("ALTER TABLE {} OWNER TO {}", req.shadow, settings.owner));
    // LIKE copies a NOT VALID check as a valid one, and even NOT VALID it would
    // refuse the old rows the backfill copies (new rows to the shadow). It is
    // left out of the shadow and added back, NOT VALID, by the swap.
    for check in orig.checks.iter().filter(|c| !c.validated) {
        create.push(format!("ALTER TABLE {} DROP CONSTRAINT {}", req.shadow, check.name));
    }
    create
}

/// The user's alterations, in order, on the shadow; the first that fails
/// names itself, with PostgreSQL's SQLSTATE and message.
fn apply_alterations(req: &ProbeRequest) -> ZdmResult<()> {
    let orig = req.original;
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
    Ok(())
}
