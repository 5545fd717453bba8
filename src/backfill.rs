//! The backfill engine, server side: one keyset batch per call.
//!
//! `zdm.backfill_batch()` runs exactly one batch in the caller's transaction and
//! checkpoints the position in `zdm.migrations` in that same transaction, so a
//! crash loses at most the uncommitted batch and the next call starts right
//! after the last committed one. The committing loop is the PL/pgSQL procedure
//! `zdm.backfill()` (sql/backfill.sql): pgrx code cannot COMMIT.

use crate::catalog::introspect::spi_err;
use crate::error::{ZdmError, ZdmResult};
use crate::executor::{run_steps, with_lock_retry, RetryPolicy};
use crate::guc;
use crate::migrations::store::{self, BatchCheckpoint, MigrationRow};
use crate::migrations::Phase;
use crate::plan::{BackfillPlan, LockMode};
use crate::session::with_local_settings;
use pgrx::prelude::*;
use std::time::Instant;

/// Run one batch; returns the rows it covered, 0 once the backfill is finished.
pub fn run_batch(name: &str, batch_size: Option<i32>) -> ZdmResult<i64> {
    let size = batch_size.unwrap_or_else(|| guc::BATCH_SIZE.get());
    if size <= 0 {
        return Err(ZdmError::invalid_parameter(format!("batch size must be positive, got {size}"))
            .hint("Leave it NULL to use zdm.batch_size."));
    }
    let m = store::get_for_update(name)?;
    let Some(plan) = m.plan.backfill.clone() else {
        return Err(ZdmError::wrong_state(format!("migration \"{name}\" has nothing to backfill"))
            .hint("Complete it with zdm.complete()."));
    };
    match m.phase {
        Phase::Backfilled => return Ok(0),
        Phase::Completed | Phase::RolledBack => {
            return Err(ZdmError::wrong_state(format!(
                "migration \"{name}\" is {}; there is nothing left to backfill",
                m.phase
            ))
            .hint("Start a new migration if the table needs another change."))
        }
        Phase::Started | Phase::Backfilling => {}
    }
    // ISO dates, so key positions saved as text read back the same in any session.
    with_local_settings(&[("DateStyle", "ISO, YMD".to_string()), ("IntervalStyle", "postgres".to_string())], || {
        let upper = match (&m.phase, &m.backfill_upper) {
            (Phase::Backfilling, Some(u)) => u.clone(),
            _ => match begin(&m, &plan)? {
                Some(u) => u,
                None => {
                    finish(&m)?;
                    return Ok(0);
                }
            },
        };
        let policy = RetryPolicy::from_settings();
        let locks = [(plan.table.clone(), LockMode::RowExclusive)];
        let started = Instant::now();
        let ((scanned, changed, last), _) =
            with_lock_retry(&policy, &locks, "backfill batch", || batch(&plan, &upper, size, m.backfill_last.as_deref()))?;
        if scanned == 0 {
            let m = store::get_for_update(name)?;
            finish(&m)?;
            return Ok(0);
        }
        store::checkpoint_batch(
            name,
            &BatchCheckpoint {
                last_key: &last.unwrap_or_default(),
                rows_scanned: scanned,
                rows_changed: changed,
                batch_size: size,
                batch_ms: started.elapsed().as_secs_f64() * 1000.0,
            },
        )?;
        Ok(scanned)
    })
}

/// First batch: fix the upper bound (the last row that exists now; later rows
/// are kept right by the sync trigger) and the estimate. None: empty table.
fn begin(m: &MigrationRow, plan: &BackfillPlan) -> ZdmResult<Option<Vec<String>>> {
    let upper: Option<Vec<String>> = Spi::get_one(&plan.upper_bound_sql).map_err(spi_err)?;
    let Some(upper) = upper else { return Ok(None) };
    let estimate: i64 = Spi::get_one_with_args::<f32>(
        "SELECT reltuples FROM pg_catalog.pg_class WHERE oid = to_regclass($1)",
        &[plan.table.as_str().into()],
    )
    .map_err(spi_err)?
    .map(|r| r.max(0.0) as i64)
    .unwrap_or(0);
    store::begin_backfill(&m.name, &upper, estimate)?;
    store::move_phase(m, Phase::Backfilling, "backfill started", Some(serde_json::json!({"upper_bound": upper})))?;
    Ok(Some(upper))
}

fn batch(plan: &BackfillPlan, upper: &[String], size: i32, last: Option<&[String]>) -> (i64, i64, Option<Vec<String>>) {
    Spi::connect_mut(|client| {
        let upper = upper.to_vec();
        let table = match last {
            None => client.update(&plan.first_batch_sql, None, &[upper.into(), size.into()])?,
            Some(l) => client.update(&plan.next_batch_sql, None, &[upper.into(), size.into(), l.to_vec().into()])?,
        };
        let row = table.first();
        Ok::<_, pgrx::spi::Error>((
            row.get::<i64>(1)?.unwrap_or(0),
            row.get::<i64>(2)?.unwrap_or(0),
            row.get::<Vec<String>>(3)?,
        ))
    })
    .expect("backfill batch")
}

/// Every row is done: run the validation steps and mark the migration backfilled.
fn finish(m: &MigrationRow) -> ZdmResult<()> {
    let report = run_steps(&m.plan.validate, &RetryPolicy::from_settings())?;
    let m = store::get_for_update(&m.name)?;
    store::move_phase(&m, Phase::Backfilled, "backfill finished", Some(serde_json::to_value(report).unwrap()))
}
