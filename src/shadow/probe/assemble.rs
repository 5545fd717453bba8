//! From what the rolled-back build brought back to a `ShadowShape`: where each
//! shadow column comes from (copy, `column_map` expression, default), how the
//! old table is filled back after the swap, identity sequences, foreign keys
//! and NOT VALID checks. The checks of `column_map` and of the type changes
//! are here because they need the shadow as it came out.

use super::catalog::{bare_relation_name, identity_always_columns};
use super::refusals::refuse_lost_dependents;
use super::{Built, ProbeRequest};
use crate::catalog::{ColumnInfo, TableInfo};
use crate::error::{ZdmError, ZdmResult};
use crate::expr::{self, ExprRules};
use crate::ident::{Ident, SqlFragment};
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
    check_column_map(req, &built.shadow)?;
    let orig_identity_always = identity_always_columns(orig.oid)?;
    let columns = shadow_columns(req, &built)?;
    let reverse = reverse_columns(orig, &built, &orig_identity_always);
    let identity_sequences = identity_sequences(orig, &built)?;
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
    shape.not_valid_checks = not_valid_checks(&shape);
    refuse_lost_dependents(&shape)?;
    Ok(shape)
}

/// Every column `column_map` names must be a column of the shadow, and not a
/// generated one.
fn check_column_map(req: &ProbeRequest, shadow: &TableInfo) -> ZdmResult<()> {
    let table = req.original.name.display_raw();
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
    Ok(())
}

/// The shadow's columns, each with where its value comes from.
fn shadow_columns(req: &ProbeRequest, built: &Built) -> ZdmResult<Vec<ShadowColumn>> {
    let shadow = &built.shadow;
    let defaults_of = |t: &TableInfo, name: &str| t.column(name).map(|c| c.default_sql.is_some()).unwrap_or(false);
    let row = expr::row_of(req.original);
    let mut columns = Vec::new();
    for c in &shadow.columns {
        let source = source_of(req, built, &row, c)?;
        columns.push(ShadowColumn {
            name: c.name.clone(),
            type_sql: c.type_sql.clone(),
            not_null: c.not_null,
            has_default: defaults_of(shadow, c.name.raw()) || c.identity,
            generated: c.generated,
            identity_always: built.identity_always.contains(&c.attnum),
            source,
        });
    }
    Ok(columns)
}

/// Where shadow column `c` gets its value: the `column_map` expression, the
/// original column LIKE copied it from, or its default.
fn source_of(req: &ProbeRequest, built: &Built, row: &[(Ident, SqlFragment)], c: &ColumnInfo) -> ZdmResult<Source> {
    let orig = req.original;
    if let Some(text) = req.column_map.get(c.name.raw()) {
        mapped_source(orig, row, text, c)
    } else if c.generated {
        Ok(Source::Default)
    } else if let Some(o) = built.origin.get(&c.attnum).and_then(|n| orig.column(n)) {
        copied_source(orig, o, c)
    } else {
        Ok(Source::Default)
    }
}

/// A `column_map` expression over the original's row, whose type must be
/// assignable to the column's.
fn mapped_source(orig: &TableInfo, row: &[(Ident, SqlFragment)], text: &str, c: &ColumnInfo) -> ZdmResult<Source> {
    let e = expr::analyze(
        orig,
        row,
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
    Ok(Source::Map {
        text: e.text,
        over_new: e.over_new,
    })
}

/// Original column `o` copied into shadow column `c`, whose type must accept
/// `o`'s values by assignment.
fn copied_source(orig: &TableInfo, o: &ColumnInfo, c: &ColumnInfo) -> ZdmResult<Source> {
    let table = orig.name.display_raw();
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
    Ok(Source::Copy(o.name.clone()))
}

/// After the swap the old table is filled back from the new one: each
/// original column from the shadow column LIKE made of it, when its type allows.
fn reverse_columns(orig: &TableInfo, built: &Built, orig_identity_always: &[i16]) -> Vec<ReverseColumn> {
    let by_origin: HashMap<&str, &ColumnInfo> = built
        .shadow
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
    reverse
}

/// The shadow's identity sequences, each with the bare name of the original's
/// sequence it takes at the swap (RENAME TO takes the bare name).
fn identity_sequences(orig: &TableInfo, built: &Built) -> ZdmResult<Vec<(SqlFragment, SqlFragment)>> {
    let mut identity_sequences = Vec::new();
    for c in built.shadow.columns.iter().filter(|c| c.identity) {
        let Some(o) = built.origin.get(&c.attnum).and_then(|n| orig.column(n)) else {
            continue;
        };
        let (Some(s), Some(os)) = (&c.owned_sequence, &o.owned_sequence) else {
            continue;
        };
        if let Some(bare) = bare_relation_name(os.0.as_str())? {
            identity_sequences.push((s.clone(), SqlFragment(bare)));
        }
    }
    Ok(identity_sequences)
}

/// NOT VALID checks come back at the swap, when they read only columns the
/// shadow keeps under the same name (a renamed column's check is not carried).
fn not_valid_checks(shape: &ShadowShape) -> Vec<String> {
    let orig = &shape.original;
    orig.checks
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
        .collect()
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
