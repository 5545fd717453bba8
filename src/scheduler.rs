//! pg_cron integration (optional: checked at call time, never required).
//!
//! A scheduled backfill is a pg_cron job named `zdm_backfill_<migration>` whose
//! command is a lone `CALL zdm.backfill(...)`, so the procedure runs at top level
//! and may COMMIT. Debian's pg_cron 1.4 has minute granularity: each run works
//! for at most `max_seconds` and the next minute's run carries on.
//!
//! Index builds (`CREATE INDEX CONCURRENTLY`) cannot run inside that CALL: when
//! a run finds one pending, it points a second job, `zdm_build_<migration>`,
//! at the next pending statement (pg_cron runs a lone statement at top level).
//! The following runs see the index valid and move that job to the next
//! statement. Once nothing is left both jobs park themselves (a schedule that
//! never fires: a job removed during its own run gets that run cancelled by
//! pg_cron); complete and rollback remove them.

use crate::error::{spi_err, ZdmError, ZdmResult};
use crate::ident::Literal;
use crate::migrations::store;
use crate::session::get_optional;
use pgrx::prelude::*;

fn job_name(migration: &str) -> String {
    format!("zdm_backfill_{migration}")
}

/// Is pg_cron installed in this database?
fn pg_cron_here() -> ZdmResult<bool> {
    Spi::get_one::<bool>("SELECT EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'pg_cron')")
        .map(|b| b.unwrap_or(false))
        .map_err(spi_err)
}

fn require_pg_cron() -> ZdmResult<()> {
    if pg_cron_here()? {
        return Ok(());
    }
    let cron_db: Option<String> =
        get_optional("SELECT pg_catalog.current_setting('cron.database_name', true)", &[]).map_err(spi_err)?;
    let hint = match cron_db.filter(|d| !d.is_empty()) {
        Some(db) => format!(
            "pg_cron is loaded but lives in database \"{db}\". Schedule from there: \
             SELECT cron.schedule_in_database('<job>', '* * * * *', 'CALL zdm.backfill(''<migration>'', NULL, 50)', current_database()); \
             or run CALL zdm.backfill() from psql."
        ),
        None => "Add pg_cron to shared_preload_libraries, restart PostgreSQL, set cron.database_name to this database \
                 and run CREATE EXTENSION pg_cron; or run CALL zdm.backfill() from psql instead."
            .to_string(),
    };
    Err(ZdmError::wrong_state("pg_cron is not installed in this database").hint(hint))
}

/// Schedule the migration's backfill (and index builds); with nothing to do,
/// a no-op (NOTICE) returning the job it has, if any.
pub fn schedule(migration: &str, schedule: &str, max_seconds: i32) -> ZdmResult<Option<i64>> {
    if max_seconds <= 0 {
        return Err(
            ZdmError::invalid_parameter(format!("max_seconds must be positive, got {max_seconds}"))
                .hint("pg_cron 1.4 runs jobs at most once a minute: 50 leaves room for the next run."),
        );
    }
    let m = store::get_for_update(migration)?;
    if matches!(crate::backfill::work_of(&m)?, crate::backfill::Work::Nothing) {
        return Ok(m.cron_job_id);
    }
    require_pg_cron()?;
    let command = format!(
        "CALL zdm.backfill({}, NULL, {max_seconds}, 'cron')",
        Literal::new(migration)
    );
    // cron.schedule with an existing job name updates that job.
    let job: i64 = Spi::get_one_with_args::<i64>(
        "SELECT cron.schedule($1, $2, $3)",
        &[job_name(migration).into(), schedule.into(), command.as_str().into()],
    )
    .map_err(spi_err)?
    .unwrap_or_default();
    store::set_cron_job(migration, Some(job))?;
    store::log_event(
        migration,
        "scheduled",
        None,
        None,
        Some(serde_json::json!({"cron_job_id": job, "schedule": schedule, "command": command})),
    )?;
    Ok(Some(job))
}

fn build_job_name(migration: &str) -> String {
    format!("zdm_build_{migration}")
}

/// After a scheduled run ended on a finished (or abandoned) backfill: point the
/// build job at the next pending top-level statement, or, with nothing left,
/// remove both jobs.
pub fn after_run(migration: &str) -> ZdmResult<()> {
    let job: Option<i64> = get_optional(
        "SELECT cron_job_id FROM zdm.migrations WHERE name = $1",
        &[migration.into()],
    )
    .map_err(spi_err)?;
    if job.is_none() || !pg_cron_here()? {
        return Ok(());
    }
    let m = store::get_for_update(migration)?;
    let next = if m.phase.is_final() {
        None
    } else {
        crate::toplevel::pending(Some(migration))?
            .into_iter()
            .next()
            .map(|(_, s)| s)
    };
    // One index build per table at a time: two CREATE INDEX CONCURRENTLY on the
    // same table wait for each other's transaction and one dies in a deadlock.
    let other_build: bool = Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT FROM cron.job j JOIN zdm.migrations o ON j.jobname = 'zdm_build_' || o.name
                         WHERE o.name <> $1 AND o.table_name = $2 AND j.schedule <> $3)",
        &[migration.into(), m.table_name.as_str().into(), NEVER.into()],
    )
    .map_err(spi_err)?
    .unwrap_or(false);
    match next {
        Some(_) if other_build => Ok(()),
        Some(statement) => {
            // Re-running a build that already succeeded must be harmless.
            let statement = if statement.starts_with("CREATE ") {
                statement.replacen(" INDEX CONCURRENTLY ", " INDEX CONCURRENTLY IF NOT EXISTS ", 1)
            } else {
                statement
            };
            let build: i64 = Spi::get_one_with_args::<i64>(
                "SELECT cron.schedule($1, '* * * * *', $2)",
                &[build_job_name(migration).into(), statement.as_str().into()],
            )
            .map_err(spi_err)?
            .unwrap_or_default();
            store::log_event(
                migration,
                "build scheduled",
                None,
                None,
                Some(serde_json::json!({"cron_job_id": build, "command": statement})),
            )?;
            Ok(())
        }
        None => {
            // Still building (the index exists but is not valid yet): keep both
            // jobs; removing a job while it runs makes pg_cron cancel the run.
            if !m.phase.is_final() && crate::toplevel::require_built(&m).is_err() {
                return Ok(());
            }
            // Nothing left: both jobs stop. They are parked (their schedule set
            // to a date that never comes), not removed: pg_cron cancels a run
            // whose job disappears under it, and this is that job's run.
            // complete and rollback remove them for good.
            park(&build_job_name(migration))?;
            park(&job_name(migration))?;
            store::log_event(migration, "scheduled work done", None, None, None)
        }
    }
}

/// A schedule that never fires (February 31st).
pub const NEVER: &str = "0 0 31 2 *";

/// Park a job of the current user: `cron.schedule` under an existing name
/// updates that job (pg_cron revokes `cron.alter_job` from PUBLIC, so a
/// table owner who is not a superuser could not use it).
fn park(job: &str) -> ZdmResult<()> {
    Spi::run_with_args(
        "SELECT cron.schedule(jobname, $2, command) FROM cron.job
          WHERE jobname = $1 AND username = current_user AND schedule <> $2",
        &[job.into(), NEVER.into()],
    )
    .map_err(spi_err)
}

fn drop_build_job(migration: &str) -> ZdmResult<()> {
    Spi::run_with_args(
        "SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname = $1",
        &[build_job_name(migration).into()],
    )
    .map_err(spi_err)
}

/// Run `f` as the role that owns pg_cron job `job` (pg_cron lets only a
/// job's owner or a superuser change it, and shows a role only its own jobs):
/// a migration's jobs, scheduled by whoever called schedule_backfill, are
/// removed by whoever completes or rolls it back (its table's owner, see
/// `privilege`). The job id comes from pg_zdm's own catalog.
fn as_job_owner<R>(job: i64, f: impl FnOnce() -> R) -> ZdmResult<R> {
    // Read as the extension's owner (a superuser): cron.job shows a role its own jobs only.
    let owner: Option<pgrx::pg_sys::Oid> = crate::privilege::as_role(crate::privilege::catalog_owner(), || {
        get_optional(
            "SELECT r.oid FROM cron.job j JOIN pg_catalog.pg_roles r ON r.rolname OPERATOR(pg_catalog.=) j.username
              WHERE j.jobid OPERATOR(pg_catalog.=) $1",
            &[job.into()],
        )
    })
    .map_err(spi_err)?;
    Ok(match owner {
        Some(owner) => crate::privilege::as_role(owner, f),
        None => f(),
    })
}

/// Remove the migration's job if it has one (and pg_cron is still here).
pub fn unschedule(migration: &str) -> ZdmResult<bool> {
    let job: Option<i64> = get_optional(
        "SELECT cron_job_id FROM zdm.migrations WHERE name = $1",
        &[migration.into()],
    )
    .map_err(spi_err)?;
    let Some(job) = job else { return Ok(false) };
    if pg_cron_here()? {
        as_job_owner(job, || {
            Spi::run_with_args(
                "SELECT cron.unschedule(jobid) FROM cron.job WHERE jobid = $1",
                &[job.into()],
            )
            .map_err(spi_err)?;
            drop_build_job(migration)
        })??;
    }
    store::set_cron_job(migration, None)?;
    store::log_event(
        migration,
        "unscheduled",
        None,
        None,
        Some(serde_json::json!({"cron_job_id": job})),
    )?;
    Ok(true)
}
