//! Start (expand): the plan's `start` steps in one short transaction, the
//! catalog row written with the plan in it. A start run again with the same
//! spec is a no-op, so a migration file can be run twice.

use super::access::authorized;
use super::prepare::{conflict_check, prepare, Prepared};
use crate::error::{ZdmError, ZdmResult};
use crate::executor::{run_steps, RetryPolicy};
use crate::ident::Literal;
use crate::migrations::{store, Phase};
use crate::privilege::as_table_owner;
use crate::spec::{parse_spec, MigrationSpec};
use pgrx::pg_sys::errcodes::PgSqlErrorCode;
use pgrx::prelude::*;
use serde_json::{json, Value};

/// `zdm.start()`: the migration's name.
pub fn start(raw: Value) -> ZdmResult<String> {
    let spec = parse_spec(&raw)?;
    // Before prepare: a start run again would otherwise trip over its own
    // migration (its claimed columns, the column it added).
    if let Some(name) = earlier_start(&spec)? {
        return Ok(name);
    }
    let p = prepare(&spec)?;
    serialize_starts_on(&p.table_name)?;
    match store::phase_of(&p.name)? {
        None => {}
        // Its name is free again; its history stays, under `<name>@<n>`.
        Some(phase @ (Phase::RolledBack | Phase::Abandoned)) => {
            let archived = store::archive(&p.name)?;
            pgrx::notice!(
                "pg_zdm: the {phase} migration {} is kept as {}",
                Literal::new(&p.name),
                Literal::new(&archived)
            );
        }
        // Started meanwhile by another session.
        Some(_) => {
            return Err(
                name_taken_error(&p.name).hint("Give the migration another name, or look at it with zdm.status().")
            )
        }
    }
    conflict_check(&p.table_name, &p.columns)?;
    let report = as_table_owner(&p.table_name, || {
        run_steps(&p.plan.start, &RetryPolicy::from_settings())
    })??;
    store::insert(store::NewMigration {
        name: &p.name,
        table_name: &p.table_name,
        kind: &p.kind,
        columns: p.columns.clone(),
        spec: serde_json::to_value(&spec).expect("specs serialize"),
        plan: &p.plan,
    })?;
    let m = store::get_for_update(&p.name)?;
    store::log_event(
        &p.name,
        "expand",
        None,
        None,
        Some(serde_json::to_value(&report).unwrap()),
    )?;
    announce_carried_out_as(&p);
    if p.plan.backfill.is_none() {
        // Validation (a scan under SHARE UPDATE EXCLUSIVE) waits for complete:
        // here it would run while start's ACCESS EXCLUSIVE lock is still held.
        store::move_phase(&m, Phase::Backfilled, "nothing to backfill", None)?;
    }
    Ok(p.name)
}

/// Serialize starts on one table, so two sessions cannot both pass the
/// conflict check: a transaction-level advisory lock keyed on the table's oid.
/// A named exception to "every statement goes through the executor": it
/// touches no table, and waits only for another start's short transaction.
fn serialize_starts_on(table_name: &str) -> ZdmResult<()> {
    Spi::run_with_args(
        "SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('zdm:' || pg_catalog.to_regclass($1)::oid::text))",
        &[table_name.into()],
    )
    .map_err(crate::error::spi_err)
}

/// The operations of a spec as stored and compared: what `parse_spec` makes
/// of them, serialized (not the raw JSON text, whose spelling may vary).
fn normalized_operations(spec: &MigrationSpec) -> Value {
    serde_json::to_value(&spec.operations).expect("specs serialize")
}

/// A start of a migration that already exists (a migration file run again):
/// Some(name) when it is active with the same spec (nothing to do), an error
/// when the name is taken otherwise, None to go on with the start.
fn earlier_start(spec: &MigrationSpec) -> ZdmResult<Option<String>> {
    let given = normalized_operations(spec);
    let Some(name) = &spec.name else {
        // Unnamed: the active migration started with the same operations, if any.
        let Some(name) = store::active_with_operations(&given)? else {
            return Ok(None);
        };
        return same_spec_again(&name).map(Some);
    };
    match store::phase_of(name)? {
        None | Some(Phase::RolledBack | Phase::Abandoned) => Ok(None),
        Some(Phase::Completed) => Err(name_taken_error(name)
            .detail("It is completed; a completed migration keeps its name as history.")
            .hint("Give the new migration another name.")),
        Some(_) => {
            let stored = store::spec_of(name)?;
            // Re-parsed, so a spec stored by an earlier version compares as today's.
            let existing = parse_spec(&stored)
                .map(|s| normalized_operations(&s))
                .unwrap_or_else(|_| stored["operations"].clone());
            if existing == given {
                return same_spec_again(name).map(Some);
            }
            let diff = crate::spec::differences(&json!({ "operations": existing }), &json!({ "operations": given }));
            Err(name_taken_error(name)
                .detail(format!("Its spec differs (existing → given): {}", diff.join("; ")))
                .hint(format!(
                    "Give the new migration another name, or roll this one back first: SELECT zdm.rollback({});",
                    Literal::new(name)
                )))
        }
    }
}

/// The same start again: nothing to do, said with a NOTICE (the caller must
/// still be allowed to act on the migration).
fn same_spec_again(name: &str) -> ZdmResult<String> {
    let m = authorized(name)?;
    pgrx::notice!(
        "pg_zdm: migration {} already exists with the same spec (phase {}); nothing to do",
        Literal::new(name),
        m.phase
    );
    Ok(name.to_string())
}

fn name_taken_error(name: &str) -> ZdmError {
    ZdmError::new(
        PgSqlErrorCode::ERRCODE_DUPLICATE_OBJECT,
        format!("migration {} already exists", Literal::new(name)),
    )
}

/// A start that went another way than its operation's name (a key column's
/// type through a shadow table) says so, and names the columns left behind:
/// the caller expects the phases of the operation it called.
fn announce_carried_out_as(p: &Prepared) {
    if let Some(c) = &p.plan.carried_out_as {
        pgrx::notice!(
            "pg_zdm: migration {} is carried out as {} ({}): {}",
            Literal::new(&p.name),
            c.kind,
            c.alterations.join(", "),
            c.reason
        );
    }
    for r in &p.plan.referencing_columns {
        pgrx::notice!("pg_zdm: {}", r.hint);
    }
}
