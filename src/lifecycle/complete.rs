//! Complete (contract): drop what the old application needed, in one short
//! transaction, once the top-level index builds exist as planned and (for a
//! shadow table) the swap is done.

use super::access::{already_in, as_owner_of, authorized};
use crate::error::{ZdmError, ZdmResult};
use crate::executor::{run_steps, RetryPolicy};
use crate::ident::Literal;
use crate::migrations::{store, Phase};

/// `zdm.complete()`: a completed migration is a no-op (NOTICE).
pub fn complete(migration: &str) -> ZdmResult<()> {
    // Checked before switching to the table's owner: the table of a
    // finished migration may be gone.
    if already_in(&authorized(migration)?, Phase::Completed) {
        return Ok(());
    }
    as_owner_of(migration, || complete_as_owner(migration))
}

fn complete_as_owner(name: &str) -> ZdmResult<()> {
    let m = store::get_for_update(name)?;
    // Completed by another session while this one waited for the row.
    if already_in(&m, Phase::Completed) {
        return Ok(());
    }
    if m.plan.shadow.is_some() && m.phase == Phase::Backfilled {
        return Err(
            ZdmError::wrong_state(format!("migration \"{name}\" has not swapped its shadow table in yet")).hint(
                format!(
                    "Swap first: SELECT zdm.swap_tables({0}); then complete. zdm.rollback({0}) abandons it.",
                    Literal::new(name)
                ),
            ),
        );
    }
    m.phase.check_move(Phase::Completed, name)?;
    crate::toplevel::require_built(&m)?;
    crate::toplevel::require_as_planned(&m)?;
    let policy = RetryPolicy::from_settings();
    let mut shadow_steps = Vec::new();
    if m.plan.shadow.is_some() {
        shadow_steps = crate::shadow::swap::complete_foreign_keys(&m, &policy)?;
    }
    if m.plan.backfill.is_none() && !m.plan.validate.is_empty() {
        // Without a backfill nothing validated yet: VALIDATE first (reads and
        // writes go on), then the short exclusive steps.
        let report = run_steps(&m.plan.validate, &policy)?;
        store::log_event(
            name,
            "validate",
            None,
            None,
            Some(serde_json::to_value(report).unwrap()),
        )?;
    }
    shadow_steps.extend(m.plan.complete.iter().cloned());
    let report = run_steps(&shadow_steps, &policy)?;
    // A pg_cron job left for this migration would fail every minute from now on.
    crate::scheduler::unschedule(name)?;
    store::move_phase(
        &m,
        Phase::Completed,
        "complete",
        Some(serde_json::to_value(report).unwrap()),
    )
}
