//! What a user says to a migration's backfill between batches: may `CALL
//! zdm.backfill()` run here (its precheck), pause, resume, per-migration
//! settings, and the loop's end. The batches themselves are `backfill`'s.

use super::access::{as_owner_of, authorized};
use crate::backfill;
use crate::error::{ZdmError, ZdmResult};
use crate::ident::Literal;
use crate::migrations::{store, Phase};
use crate::session::in_transaction_block;
use pgrx::pg_sys::errcodes::PgSqlErrorCode;
use serde_json::Value;

/// Checked first by the `zdm.backfill` procedure: it commits between batches,
/// which PostgreSQL only allows for a CALL outside a transaction block.
pub fn precheck(migration: &str, batch_size: Option<i32>) -> ZdmResult<()> {
    if in_transaction_block() {
        return Err(ZdmError::new(
            PgSqlErrorCode::ERRCODE_ACTIVE_SQL_TRANSACTION,
            format!(
                "CALL zdm.backfill({}) cannot run inside a transaction block",
                Literal::new(migration)
            ),
        )
        .detail("The backfill commits after every batch, which PostgreSQL allows only for a CALL at top level.")
        // PostgreSQL does not say which kind of transaction block this
        // is: an explicit BEGIN, or the implicit one of a query string
        // holding several statements. The hint names both.
        .hint(format!(
            "Send the CALL alone, at top level: not inside BEGIN ... COMMIT (psql: \\set AUTOCOMMIT on), \
             and not in one query string with other statements (psql -c \"CALL ...; SELECT 1\", or a driver \
             sending a whole file at once, runs them all in one implicit transaction). \
             Or schedule it with zdm.schedule_backfill({0}), or call SELECT zdm.backfill_batch({0}); \
             repeatedly from your own transactions.",
            Literal::new(migration)
        )));
    }
    backfill::check_batch_size(batch_size)?;
    // Refuses unknown and rolled-back migrations; one with nothing to do
    // gets a NOTICE, and the loop then ends at its first step.
    authorized(migration)?;
    let m = store::get_for_update(migration)?;
    backfill::work_of(&m)?;
    Ok(())
}

/// After a failed batch was rolled back: keep the error in zdm.migrations
/// (the procedure commits it, then re-raises).
pub fn failed(migration: &str, sqlstate: &str, message: &str) -> ZdmResult<()> {
    authorized(migration)?;
    store::record_error(migration, &format!("{sqlstate}: {message}"))
}

/// The loop ended on a finished or abandoned migration: a shadow's late
/// notes are settled, and its pg_cron job, if any, is not needed any more.
pub fn ended(migration: &str) -> ZdmResult<()> {
    let m = authorized(migration)?;
    if m.phase == Phase::Backfilled {
        as_owner_of(migration, || crate::shadow::verify::settle_after_copy_phase(&m))?;
    }
    crate::scheduler::after_run(migration)
}

/// `zdm.pause()`: a running CALL or cron run stops after its current batch.
pub fn pause(migration: &str) -> ZdmResult<()> {
    set_paused(
        migration,
        true,
        "its backfill is not running",
        "Only a migration in phase started or backfilling can be paused.",
    )
}

/// `zdm.resume()`: the next CALL (or cron run) continues where it stopped.
pub fn resume(migration: &str) -> ZdmResult<()> {
    set_paused(
        migration,
        false,
        "there is no backfill to resume",
        "A finished backfill needs no resume; complete the migration with zdm.complete().",
    )
}

/// Pause or resume a backfill that has rows left (55000 otherwise, saying
/// `why_not` with `hint`); logged when it changes anything.
fn set_paused(migration: &str, paused: bool, why_not: &str, hint: &str) -> ZdmResult<()> {
    authorized(migration)?;
    let m = store::get_for_update(migration)?;
    if m.phase.is_final() || m.phase.backfill_done() {
        return Err(ZdmError::wrong_state(format!("migration \"{migration}\" is {}; {why_not}", m.phase)).hint(hint));
    }
    if m.paused != paused {
        store::set_paused(migration, paused)?;
        store::log_event(migration, if paused { "pause" } else { "resume" }, None, None, None)?;
    }
    Ok(())
}

/// `zdm.set_backfill_settings()`: the given keys override the migration's
/// settings (null: back to the GUC); returns the settings in force.
pub fn set_settings(migration: &str, settings: &Value) -> ZdmResult<Value> {
    authorized(migration)?;
    let m = store::get_for_update(migration)?;
    let merged = m.settings.overridden_by(settings)?;
    store::set_settings(migration, &merged)?;
    store::log_event(
        migration,
        "settings",
        None,
        None,
        Some(serde_json::to_value(&merged).unwrap()),
    )?;
    Ok(serde_json::to_value(merged.effective()).unwrap())
}
