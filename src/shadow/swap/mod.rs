//! The swap: the shadow takes the table's name, and everything bound to the
//! old table's oid (views, foreign keys of other tables, sequences, grants,
//! RLS, policies, triggers, publications, replica identity, comment) is
//! re-pointed, in one short transaction under ACCESS EXCLUSIVE locks taken with
//! `lock_timeout` and retried with backoff (a lock queue never builds up behind us).
//!
//! Definitions are read *before* the renames, under `search_path = pg_catalog`,
//! so they name the table schema-qualified by its (unchanging) name: run after
//! the renames, the same text binds to the new table.
//!
//! What the swap changed is recorded (`SwapRecord`) for the two ways out:
//! - rollback swaps back: the old table was never changed except for its
//!   disabled user triggers and its sequences/publications, which are put back;
//!   the foreign keys other tables had on it were left in place (valid);
//! - complete validates the foreign keys added on the new table, drops the old
//!   ones and gives the new ones their names, then drops the old table.
//!
//! - `catalog`: what the swap reads first (lock order, views);
//! - `script`: the swap's statements, every dependent re-pointed;
//! - `back`: the swap back's statements;
//! - `record`: what the swap changed, kept for the ways out;
//! - `policy`: the call's `lock_timeout` and attempts.

mod back;
mod catalog;
mod policy;
mod record;
mod script;

pub use catalog::lock_order;
pub use policy::policy;
pub use record::{IncomingForeignKey, SwapRecord};

use super::verify::shadow_plan;
use crate::catalog::introspect::spi_err;
use crate::error::{ZdmError, ZdmResult};
use crate::executor::{run_steps, take_locks, with_lock_retry, RetryPolicy};
use crate::ident::Literal;
use crate::migrations::store::{self, MigrationRow};
use crate::migrations::Phase;
use crate::plan::{LockMode, ShadowPlan, Step};
use crate::session::with_local_settings;
use catalog::views_on;
use pgrx::prelude::*;
use serde_json::{json, Value};
use std::time::Instant;

/// `zdm.swap_tables()`.
pub fn swap(name: &str, policy: &RetryPolicy) -> ZdmResult<Value> {
    let m = store::get_for_update(name)?;
    let sp = shadow_plan(&m)?;
    if m.phase != Phase::Backfilled {
        let hint = match m.phase {
            Phase::Started | Phase::Backfilling => {
                format!("Finish the backfill first: CALL zdm.backfill({});", Literal::new(name))
            }
            Phase::Swapped => {
                "It is already swapped: complete it with zdm.complete(), or undo the swap with zdm.rollback().".into()
            }
            _ => "Start a new migration.".into(),
        };
        return Err(ZdmError::wrong_state(format!(
            "migration \"{name}\" is {}; swap_tables needs a finished backfill",
            m.phase
        ))
        .hint(hint));
    }
    require_feeding_trigger(&sp)?;
    // The last verify must have matched; without one, verify now (before any lock).
    let state = store::shadow_state(name)?;
    let verify = match state.get("verify") {
        Some(v) if v.get("backfilled") == Some(&json!(true)) => v.clone(),
        _ => verify_keeping_no_row_lock(&m)?,
    };
    if verify.get("matched") != Some(&json!(true)) {
        return Err(ZdmError::wrong_state(format!(
            "the last verify of migration \"{name}\" found differences: {} rows in {}, {} in the shadow, {} differing (keys {})",
            verify["source_rows"], sp.table, verify["shadow_rows"], verify["differing_rows"], verify["sample_keys"]
        ))
        .hint("Nothing was swapped. Look at the rows named, run SELECT zdm.verify(...) again once they are explained, or zdm.rollback() the migration."));
    }
    let locks = lock_order(&sp.table, &sp.shadow)?;
    let ((record, repointed, held_ms), report) = with_lock_retry(policy, &locks, "swap_tables", || {
        with_local_settings(
            &[("search_path", crate::privilege::FIXED_SEARCH_PATH.to_string())],
            || {
                take_locks(&locks, policy);
                let locked_at = Instant::now();
                // No writer is in flight under the lock, so every delete is committed and
                // its note visible: the last copies of deleted rows go now. The settle
                // writes the shadow (and fires its triggers): as the table's owner.
                // The statements after it change catalog entries only, some of other
                // roles' objects (views, foreign keys): with the caller's rights.
                if let Some(settle) = &sp.settle_function {
                    crate::privilege::as_table_owner(&sp.table, || Spi::run(&format!("SELECT {settle}(true)")))
                        .unwrap_or_else(|e| e.raise())
                        .expect("settle");
                }
                let (statements, record, repointed) = script::forward_statements(&m, &sp).unwrap_or_else(|e| e.raise());
                for sql in &statements {
                    Spi::run(sql).expect("swap statement");
                }
                (record, repointed, locked_at.elapsed().as_secs_f64() * 1000.0)
            },
        )
    })?;
    let result = json!({
        "migration": name,
        "attempts": report.attempts,
        "lock_wait_ms": (report.waited_ms + (report.held_ms - held_ms).max(0.0)).round(),
        "lock_held_ms": (held_ms * 10.0).round() / 10.0,
        "repointed": repointed,
        "foreign_keys_to_validate": record.foreign_keys.iter().map(|f| format!("{}.{}", f.table, f.temporary)).collect::<Vec<_>>(),
        "next": format!("SELECT zdm.complete({}); once the new table has proved itself (zdm.rollback() swaps back)", Literal::new(name)),
    });
    store::set_shadow_state(name, "swap", serde_json::to_value(&record).expect("record serializes"))?;
    store::move_phase(&m, Phase::Swapped, "swap", Some(result.clone()))?;
    Ok(result)
}

/// The verify a swap runs when none was run before: in a subtransaction rolled
/// back at once (its result is recorded again after), so that the row locks
/// its settle takes on the shadow are gone before the swap waits for its
/// table locks. Kept, they made writers that need those rows wait for the
/// swap while the swap waited for them, on every attempt until it gave up.
/// The settle under the swap's locks does that work again.
fn verify_keeping_no_row_lock(m: &MigrationRow) -> ZdmResult<Value> {
    let outcome = crate::session::in_rolled_back_subtransaction(|| {
        crate::privilege::as_table_owner(&m.table_name, || super::verify::verify(&m.name, true))
    });
    let result = match outcome {
        Ok(result) => result??,
        Err(e) => e.rethrow(),
    };
    store::set_shadow_state(&m.name, "verify", result.clone())?;
    store::log_event(&m.name, "verify", None, None, Some(result.clone()))?;
    Ok(result)
}

/// 55000 unless the trigger feeding the shadow is there and fires for every
/// write (`ENABLE ALWAYS`): writes it missed never reached the shadow, and a
/// swap would lose them.
fn require_feeding_trigger(sp: &ShadowPlan) -> ZdmResult<()> {
    let enabled: Option<String> = crate::session::get_optional(
        "SELECT t.tgenabled::text FROM pg_catalog.pg_trigger t
          WHERE t.tgrelid OPERATOR(pg_catalog.=) pg_catalog.to_regclass($1)
            AND t.tgname OPERATOR(pg_catalog.=) $2",
        &[sp.table.as_str().into(), catalog::unquoted(&sp.forward_trigger).into()],
    )
    .map_err(spi_err)?;
    let problem = match enabled.as_deref() {
        Some("A") => return Ok(()),
        None => "is missing",
        Some("D") => "is disabled",
        Some(_) => "does not fire for every write (it is not ENABLE ALWAYS)",
    };
    Err(ZdmError::wrong_state(format!(
        "the trigger {} feeding the shadow {} of {} {problem}",
        sp.forward_trigger, sp.shadow, sp.table
    ))
    .detail("Writes it did not see never reached the shadow; swapping it in would lose them.")
    .hint(format!(
        "Nothing was swapped. Roll the migration back and start it again, or, if the trigger is there: \
         ALTER TABLE {} ENABLE ALWAYS TRIGGER {}; then run zdm.verify() again before the swap.",
        sp.table, sp.forward_trigger
    )))
}

/// Rollback after the swap: the old table takes its name back, with its
/// triggers, sequences, publications and views; the new table is the shadow
/// again (the plan's rollback steps then drop it).
pub fn swap_back(m: &MigrationRow, policy: &RetryPolicy) -> ZdmResult<Value> {
    let sp = shadow_plan(m)?;
    let record: SwapRecord = serde_json::from_value(store::shadow_state(&m.name)?["swap"].clone()).unwrap_or_default();
    let t = sp.table.clone();
    let locks = lock_order(&t, &sp.old)?;
    // Catalog changes only, some of other roles' objects: with the caller's rights.
    let (held_ms, report) = crate::privilege::as_role(crate::privilege::caller(), || {
        with_lock_retry(policy, &locks, "swap back", || {
            with_local_settings(
                &[("search_path", crate::privilege::FIXED_SEARCH_PATH.to_string())],
                || {
                    take_locks(&locks, policy);
                    let locked_at = Instant::now();
                    let views = views_on(&t).unwrap_or_else(|e| e.raise());
                    for s in back::statements(&sp, &record, &views) {
                        Spi::run(&s).expect("swap back statement");
                    }
                    locked_at.elapsed().as_secs_f64() * 1000.0
                },
            )
        })
    })?;
    Ok(json!({"attempts": report.attempts, "lock_held_ms": (held_ms * 10.0).round() / 10.0}))
}

/// Complete after the swap, before the plan's own complete steps: the foreign
/// keys of other tables are validated on the new table (no exclusive lock),
/// then the old ones dropped and the new ones renamed (short, locked).
pub fn complete_foreign_keys(m: &MigrationRow, policy: &RetryPolicy) -> ZdmResult<Vec<Step>> {
    let record: SwapRecord = serde_json::from_value(store::shadow_state(&m.name)?["swap"].clone()).unwrap_or_default();
    for f in record.foreign_keys.iter().filter(|f| f.validated) {
        run_steps(
            &[Step::locked(
                format!("validate foreign key {} of {} on the new table", f.temporary, f.table),
                format!("ALTER TABLE {} VALIDATE CONSTRAINT {}", f.table, f.temporary),
                &f.table,
                LockMode::ShareUpdateExclusive,
            )
            .with_caller_rights()],
            policy,
        )?;
    }
    let mut steps = Vec::new();
    for f in &record.foreign_keys {
        steps.push(
            Step::locked(
                format!(
                    "drop foreign key {} of {} (it references the old table)",
                    f.name, f.table
                ),
                format!("ALTER TABLE {} DROP CONSTRAINT {}", f.table, f.name),
                &f.table,
                LockMode::AccessExclusive,
            )
            .with_caller_rights(),
        );
        steps.push(
            Step::locked(
                format!("give foreign key {} its name {}", f.temporary, f.name),
                format!(
                    "ALTER TABLE {} RENAME CONSTRAINT {} TO {}",
                    f.table, f.temporary, f.name
                ),
                &f.table,
                LockMode::AccessExclusive,
            )
            .with_caller_rights(),
        );
    }
    Ok(steps)
}
