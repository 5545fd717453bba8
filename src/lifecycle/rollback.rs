//! Rollback (undo start, from any phase before complete): a swapped shadow
//! is swapped back first, then the plan's `rollback` steps run. A migration
//! whose table is gone is abandoned instead (`abandon`). `forget` then
//! clears a rolled-back migration's history from the catalog.

use super::access::{already_in, as_owner_of, authorized};
use crate::error::{ZdmError, ZdmResult};
use crate::executor::{run_steps, RetryPolicy};
use crate::ident::Literal;
use crate::migrations::{store, Phase};

/// `zdm.rollback()`: a rolled-back or abandoned migration is a no-op (NOTICE).
pub fn rollback(migration: &str) -> ZdmResult<()> {
    let m = authorized(migration)?;
    if already_in(&m, Phase::RolledBack) || already_in(&m, Phase::Abandoned) {
        return Ok(());
    }
    if crate::privilege::table_owner(&m.table_name)?.is_none() {
        return crate::abandon::abandon_if_dropped(migration);
    }
    as_owner_of(migration, || rollback_as_owner(migration))
}

fn rollback_as_owner(name: &str) -> ZdmResult<()> {
    let m = store::get_for_update(name)?;
    if already_in(&m, Phase::RolledBack) {
        return Ok(());
    }
    m.phase.check_move(Phase::RolledBack, name)?;
    let policy = RetryPolicy::from_settings();
    if m.phase == Phase::Swapped {
        let swap_back = crate::shadow::swap::swap_back(&m, &policy)?;
        store::log_event(name, "swap back", None, None, Some(swap_back))?;
    }
    let report = run_steps(&m.plan.rollback, &policy)?;
    crate::scheduler::unschedule(name)?;
    store::move_phase(
        &m,
        Phase::RolledBack,
        "rollback",
        Some(serde_json::to_value(report).unwrap()),
    )
}

/// `zdm.forget()`: remove a rolled-back (or abandoned) migration and its
/// events. Other phases: 55000.
pub fn forget(migration: &str) -> ZdmResult<()> {
    authorized(migration)?;
    let m = store::get_for_update(migration)?;
    if !m.phase.frees_its_name() {
        return Err(ZdmError::wrong_state(format!(
            "migration {} is {}; only a rolled-back or abandoned migration can be forgotten",
            Literal::new(migration),
            m.phase
        ))
        .hint(if m.phase == Phase::Completed {
            "A completed migration's history stays in the catalog.".to_string()
        } else {
            format!("Roll it back first: SELECT zdm.rollback({});", Literal::new(migration))
        }));
    }
    store::delete(migration)
}
