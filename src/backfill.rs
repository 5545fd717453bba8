//! The backfill engine, server side: one keyset batch per call.
//!
//! Each batch runs the migration's generated batch function (`\sf
//! zdm.backfill_<migration>`) and checkpoints the position in `zdm.migrations`
//! in the same transaction, so a crash loses at most the uncommitted batch and
//! the next call starts right after the last committed one. The committing
//! loop is the PL/pgSQL procedure `zdm.backfill()` (sql/backfill.sql): pgrx code
//! cannot COMMIT. Throttling decisions (pause, replication lag, batch size) are
//! made here, per batch; the loop only sleeps when told to, after its COMMIT.

use crate::error::{spi_err, ZdmError, ZdmResult};
use crate::executor::{run_steps, with_lock_retry, RetryPolicy};
use crate::ident::Literal;
use crate::migrations::store::{self, BatchCheckpoint, MigrationRow};
use crate::migrations::Phase;
use crate::plan::{BackfillPlan, BeyondUpper, LockMode};
use crate::session::{
    caught_detail, caught_message, caught_sqlstate, get_optional, in_subtransaction, with_local_settings,
};
use crate::sqlgen::shadow_settle::{beyond_upper_function, UpperBound};
use pgrx::pg_sys::errcodes::PgSqlErrorCode;
use pgrx::prelude::*;
use std::time::Instant;

/// Next batch size: scaled toward the target duration, at most halved or
/// doubled at a time so one odd batch cannot swing it, within [10, 1 000 000].
pub fn adapt_batch_size(size: i32, took_ms: f64, target_ms: i32) -> i32 {
    if target_ms <= 0 {
        return size;
    }
    let ratio = (target_ms as f64 / took_ms.max(0.1)).clamp(0.5, 2.0);
    ((size as f64 * ratio).round() as i64).clamp(10, 1_000_000) as i32
}

/// What one call of the loop's step did.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// A batch ran: rows covered.
    Batch(i64),
    /// Every row is done (the migration is backfilled).
    Done,
    /// Paused by zdm.pause(): the loop stops.
    Paused,
    /// Completed or rolled back meanwhile: the loop stops.
    Gone(Phase),
    /// Throttled: no batch ran; sleep this long and ask again.
    Wait { reason: String, ms: i32 },
}

impl Step {
    pub fn state(&self) -> &'static str {
        match self {
            Step::Batch(_) => "batch",
            Step::Done => "done",
            Step::Paused => "paused",
            Step::Gone(_) => "gone",
            Step::Wait { .. } => "wait",
        }
    }
}

/// 22023 for a batch size given that is not positive (NULL: the migration's own).
pub fn check_batch_size(size: Option<i32>) -> ZdmResult<()> {
    match size {
        Some(s) if s <= 0 => Err(
            ZdmError::invalid_parameter(format!("batch size must be positive, got {s}"))
                .hint("Leave it NULL to use the migration's setting or zdm.batch_size."),
        ),
        _ => Ok(()),
    }
}

/// What a backfill call (`CALL zdm.backfill`, `backfill_batch`,
/// `schedule_backfill`) finds to do.
#[derive(Debug)]
pub enum Work {
    /// Rows are left to backfill.
    Rows(BackfillPlan),
    /// No rows, but index builds are pending (a scheduled run starts them).
    IndexBuilds,
    /// Nothing: no backfill, or it is done (or the migration completed).
    Nothing,
}

/// The one check of the three backfill calls, so they agree: a migration with
/// nothing to backfill (none needed, done, completed) is a no-op with a NOTICE,
/// so a generic "start, backfill, complete" file runs for every operation and
/// runs again. A rolled-back or abandoned migration is refused (55000).
pub fn work_of(m: &MigrationRow) -> ZdmResult<Work> {
    let q = Literal::new(&m.name);
    if m.phase.frees_its_name() {
        return Err(
            ZdmError::wrong_state(format!("migration {q} is {}; there is nothing to backfill", m.phase))
                .hint("Start it again if the table still needs the change."),
        );
    }
    if m.phase != Phase::Completed {
        if let Some(plan) = m.plan.backfill.as_ref().filter(|_| !m.phase.backfill_done()) {
            return Ok(Work::Rows(plan.clone()));
        }
        if crate::toplevel::require_built(m).is_err() {
            return Ok(Work::IndexBuilds);
        }
    }
    let why = match (m.phase, &m.plan.backfill) {
        (Phase::Completed, _) => format!("migration {q} is completed"),
        (_, None) => format!("migration {q} needs no backfill"),
        _ => format!("the backfill of migration {q} is done"),
    };
    pgrx::notice!("pg_zdm: {why}; nothing to backfill");
    Ok(Work::Nothing)
}

/// `zdm.backfill_batch()`: exactly one batch, whatever the throttles say (it
/// is the manual tool), but not while paused. Rows covered, 0 when finished.
pub fn run_one_batch(name: &str, batch_size: Option<i32>) -> ZdmResult<i64> {
    check_batch_size(batch_size)?;
    let m = store::get_for_update(name)?;
    let plan = match work_of(&m)? {
        Work::Rows(plan) => plan,
        Work::IndexBuilds => {
            pgrx::notice!(
                "pg_zdm: migration {} has no rows to backfill; its index builds are pending: \
                 SELECT statement FROM zdm.pending_statements({}) \\gexec",
                Literal::new(name),
                Literal::new(name)
            );
            return Ok(0);
        }
        Work::Nothing => return Ok(0),
    };
    if m.paused {
        return Err(ZdmError::wrong_state(format!("migration \"{name}\" is paused"))
            .hint(format!("Resume it first: SELECT zdm.resume({});", Literal::new(name))));
    }
    match batch(&m, &plan, batch_size, "backfill_batch")? {
        Step::Batch(n) => Ok(n),
        _ => Ok(0),
    }
}

/// One step of the committing loop: honours pause, phase changes made by other
/// sessions, and the replication lag limit, then runs one batch.
pub fn loop_step(name: &str, batch_size: Option<i32>, runner: &str) -> ZdmResult<Step> {
    check_batch_size(batch_size)?;
    let m = store::get_for_update(name)?;
    if m.phase.is_final() {
        return Ok(Step::Gone(m.phase));
    }
    // A migration scheduled only for its index builds has no batches to run.
    let Some(plan) = m.plan.backfill.clone() else {
        return Ok(Step::Done);
    };
    if m.phase.backfill_done() {
        return Ok(Step::Done);
    }
    if m.paused {
        store::set_waiting(name, None)?;
        return Ok(Step::Paused);
    }
    let settings = m.settings.effective();
    if let Some(reason) = replication_lag_reason(settings.max_replication_lag_ms)? {
        store::set_waiting(name, Some(&reason))?;
        return Ok(Step::Wait { reason, ms: 1000 });
    }
    if m.waiting_reason.is_some() {
        store::set_waiting(name, None)?;
    }
    batch(&m, &plan, batch_size, runner)
}

/// Why the backfill should not add WAL now, if a standby lags too much.
fn replication_lag_reason(max_lag_ms: i32) -> ZdmResult<Option<String>> {
    if max_lag_ms <= 0 {
        return Ok(None);
    }
    let row: Option<String> = get_optional(
        "SELECT pg_catalog.format('standby %s replay lag %s > zdm.max_replication_lag %s',
                                  coalesce(application_name, client_addr::text, pid::text),
                                  pg_catalog.date_trunc('milliseconds', replay_lag),
                                  pg_catalog.make_interval(secs => $1 / 1000.0))
           FROM pg_catalog.pg_stat_replication
          WHERE replay_lag > pg_catalog.make_interval(secs => $1 / 1000.0)
            -- replay_lag keeps its last sample while no new WAL flows: a standby
            -- that has replayed all it was sent is not behind, whatever it says.
            AND replay_lsn < sent_lsn
          ORDER BY replay_lag DESC LIMIT 1",
        &[max_lag_ms.into()],
    )
    .map_err(spi_err)?;
    Ok(row)
}

/// Run one batch of `m` (phase started or backfilling, not paused).
fn batch(m: &MigrationRow, plan: &BackfillPlan, size_override: Option<i32>, runner: &str) -> ZdmResult<Step> {
    // ISO dates, so key positions saved as text read back the same in any session.
    with_local_settings(
        &[
            ("DateStyle", "ISO, YMD".to_string()),
            ("IntervalStyle", "postgres".to_string()),
        ],
        || {
            if !plan.partitions.is_empty() {
                return crate::partition_backfill::batch(m, plan, size_override, runner);
            }
            let upper = match (&m.phase, &m.backfill_upper) {
                (Phase::Backfilling, Some(u)) => u.clone(),
                _ => match begin(m, plan)? {
                    Some(u) => u,
                    None => {
                        finish(m)?;
                        return Ok(Step::Done);
                    }
                },
            };
            let target = Target {
                table: &plan.table,
                function: &plan.function,
                upper,
                last: m.backfill_last.clone(),
                partition: None,
            };
            match run_batch(m, &target, size_override, runner)? {
                0 => {
                    finish(&store::get_for_update(&m.name)?)?;
                    Ok(Step::Done)
                }
                scanned => Ok(Step::Batch(scanned)),
            }
        },
    )
}

/// Where a batch runs: the table (or one leaf partition of it), its batch
/// function, the upper bound and the last key done there.
pub struct Target<'a> {
    pub table: &'a str,
    pub function: &'a str,
    pub upper: Vec<String>,
    pub last: Option<Vec<String>>,
    /// The leaf partition's position in the plan, for a partitioned table.
    pub partition: Option<i32>,
}

/// One batch on `target`, checkpointed in the same transaction: the rows it
/// covered (0: none were left there, and nothing is checkpointed).
pub fn run_batch(m: &MigrationRow, target: &Target, size_override: Option<i32>, runner: &str) -> ZdmResult<i64> {
    let settings = m.settings.effective();
    let size = size_override.or(m.current_batch_size).unwrap_or(settings.batch_size);
    let policy = RetryPolicy::from_settings();
    let locks = [(target.table.to_string(), LockMode::RowExclusive)];
    let sql = format!(
        "SELECT zdm_rows_scanned, zdm_rows_changed, zdm_last_key FROM {}($1, $2, $3)",
        target.function
    );
    let (upper, last) = (target.upper.clone(), target.last.clone());
    let started = Instant::now();
    let ((scanned, changed, last_key), _) = with_lock_retry(&policy, &locks, "backfill batch", || {
        Spi::connect_mut(|client| {
            let row = client
                .update(&sql, Some(1), &[upper.clone().into(), size.into(), last.clone().into()])?
                .first();
            Ok::<_, pgrx::spi::Error>((
                row.get::<i64>(1)?.unwrap_or(0),
                row.get::<i64>(2)?.unwrap_or(0),
                row.get::<Vec<String>>(3)?,
            ))
        })
        .expect("backfill batch")
    })?;
    let took_ms = started.elapsed().as_secs_f64() * 1000.0;
    if scanned == 0 {
        return Ok(0);
    }
    let next_size = if size_override.is_some() {
        m.current_batch_size
    } else {
        Some(adapt_batch_size(size, took_ms, settings.target_batch_ms))
    };
    store::checkpoint_batch(
        &m.name,
        &BatchCheckpoint {
            last_key: &last_key.unwrap_or_default(),
            rows_scanned: scanned,
            rows_changed: changed,
            batch_size: size,
            batch_ms: took_ms,
            next_batch_size: next_size,
            runner,
            partition: target.partition,
        },
    )?;
    Ok(scanned)
}

/// Re-create the "key after the bound" function of a shadow with `bound`
/// (None: the table was empty, every key is after it).
pub fn set_beyond_bound(migration: &str, b: &BeyondUpper, bound: Option<&[String]>) {
    let literals: Vec<Literal> = bound.iter().copied().flatten().map(|v| Literal::new(v)).collect();
    let bound = match bound {
        None => UpperBound::Empty,
        Some(_) => UpperBound::Key(&literals),
    };
    let sql = beyond_upper_function(&b.function, &b.key_types, bound);
    // If it cannot be replaced the trigger keeps probing, which is only slower.
    if in_subtransaction(|| crate::executor::run_statement(&sql)).is_err() {
        pgrx::notice!(
            "pg_zdm {migration}: {} could not be replaced; inserts keep probing the notes",
            b.function
        );
    }
}

/// First batch: fix the upper bound (the last row that exists now; later rows
/// are kept right by the sync trigger) and the estimate. None: empty table.
fn begin(m: &MigrationRow, plan: &BackfillPlan) -> ZdmResult<Option<Vec<String>>> {
    let upper: Option<Vec<String>> = get_optional(&plan.upper_bound_sql, &[]).map_err(spi_err)?;
    // A shadow's trigger inserts keys after the bound without probing its
    // notes, from the commit of this transaction on (until then it probes).
    // (After a copy phase, verify sets it: see `shadow::beyond`.)
    if let Some(b) = plan.beyond_upper.as_ref().filter(|b| b.set_after_copy_sql.is_none()) {
        set_beyond_bound(&m.name, b, upper.as_deref());
    }
    let Some(upper) = upper else { return Ok(None) };
    let estimate: i64 = Spi::get_one_with_args::<f32>(
        "SELECT reltuples FROM pg_catalog.pg_class WHERE oid = to_regclass($1)",
        &[plan.table.as_str().into()],
    )
    .map_err(spi_err)?
    .map(|r| r.max(0.0) as i64)
    .unwrap_or(0);
    store::begin_backfill(&m.name, &upper, estimate)?;
    store::move_phase(
        m,
        Phase::Backfilling,
        "backfill started",
        Some(serde_json::json!({"upper_bound": upper})),
    )?;
    Ok(Some(upper))
}

/// Every row is done: run the validation steps and mark the migration backfilled.
pub fn finish(m: &MigrationRow) -> ZdmResult<()> {
    let report = validate(m, &m.plan.validate, "the end of the backfill")?;
    let m = store::get_for_update(&m.name)?;
    store::set_waiting(&m.name, None)?;
    store::move_phase(
        &m,
        Phase::Backfilled,
        "backfill finished",
        Some(serde_json::to_value(report).unwrap()),
    )
}

/// Run validation steps (`what`: when, for the message). A statement that
/// fails here (an index the new structure cannot build, a foreign key the
/// rows break) is named with its migration and what to do next; the whole
/// step is rolled back, the copied rows stay.
pub fn validate(m: &MigrationRow, steps: &[crate::plan::Step], what: &str) -> ZdmResult<crate::executor::ExecReport> {
    in_subtransaction(|| run_steps(steps, &RetryPolicy::from_settings())).map_err(|e| {
        let mut error = ZdmError::new(
            caught_sqlstate(&e).unwrap_or(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR),
            format!("pg_zdm {}: {what} failed: {}", m.name, caught_message(&e)),
        )
        .hint(format!(
            "Nothing of this step was kept; the rows copied so far stay. Fix the rows (or the migration's \
             alterations, after SELECT zdm.rollback({})) and CALL zdm.backfill() again.",
            Literal::new(&m.name)
        ));
        if let Some(d) = caught_detail(&e) {
            error = error.detail(d);
        }
        error
    })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_size_moves_toward_the_target_at_most_twice_per_step() {
        assert_eq!(adapt_batch_size(1000, 50.0, 100), 2000);
        assert_eq!(adapt_batch_size(1000, 10.0, 100), 2000);
        assert_eq!(adapt_batch_size(1000, 400.0, 100), 500);
        assert_eq!(adapt_batch_size(1000, 125.0, 100), 800);
        assert_eq!(adapt_batch_size(1000, 5.0, 0), 1000);
        assert_eq!(adapt_batch_size(12, 1000.0, 100), 10);
        assert_eq!(adapt_batch_size(900_000, 1.0, 100), 1_000_000);
    }
}
