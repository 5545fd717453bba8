//! From what the rolled-back build brought back to a `ShadowShape`: where each
//! shadow column comes from (copy, `column_map` expression, default), how the
//! old table is filled back after the swap, identity sequences, foreign keys
//! and NOT VALID checks. The checks of `column_map` and of the type changes
//! are here because they need the shadow as it came out.

use super::catalog::identity_always_columns;
use super::refusals::refuse_lost_dependents;
use super::{Built, ProbeRequest};
use crate::catalog::introspect::spi_err;
use crate::catalog::TableInfo;
use crate::error::{ZdmError, ZdmResult};
use crate::expr::{self, ExprRules};
use crate::ident::Ident;
use crate::shadow::shape::{ReverseColumn, ShadowColumn, ShadowForeignKey, ShadowShape, Source};
use pgrx::pg_sys;
use pgrx::pg_sys::errcodes::PgSqlErrorCode;
use std::collections::HashMap;

/// Can a value of type `from` be stored in a column of type `to` (assignment cast)?
fn assignable(from: u32, to: u32) -> bool {
    if from == to {
        return true;
    }
    let (f, t) = (pg_sys::Oid::from(from), pg_sys::Oid::from(to));
    unsafe { pg_sys::can_coerce_type(1, &f, &t, pg_sys::CoercionContext::COERCION_ASSIGNMENT) }
}

pub(super) fn shape_of(req: &ProbeRequest, built: Built) -> ZdmResult<ShadowShape> {
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
