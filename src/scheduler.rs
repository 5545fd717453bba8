//! pg_cron integration (optional: checked at call time, never required).
//!
//! A scheduled backfill is a pg_cron job named `zdm_backfill_<migration>` whose
//! command is a lone `CALL zdm.backfill(...)`, so the procedure runs at top level
//! and may COMMIT. Debian's pg_cron 1.4 has minute granularity: each run works
//! for at most `max_seconds` and the next minute's run carries on.

use crate::catalog::introspect::spi_err;
use crate::error::{ZdmError, ZdmResult};
use crate::ident::Literal;
use crate::migrations::{store, Phase};
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

pub fn schedule(migration: &str, schedule: &str, max_seconds: i32) -> ZdmResult<i64> {
    if max_seconds <= 0 {
        return Err(ZdmError::invalid_parameter(format!("max_seconds must be positive, got {max_seconds}"))
            .hint("pg_cron 1.4 runs jobs at most once a minute: 50 leaves room for the next run."));
    }
    let m = store::get_for_update(migration)?;
    if m.plan.backfill.is_none() {
        return Err(ZdmError::wrong_state(format!("migration \"{migration}\" has nothing to backfill"))
            .hint("Complete it with zdm.complete()."));
    }
    if m.phase.is_final() || m.phase == Phase::Backfilled {
        return Err(ZdmError::wrong_state(format!("migration \"{migration}\" is {}; there is nothing left to backfill", m.phase))
            .hint("Nothing to schedule."));
    }
    require_pg_cron()?;
    let command = format!("CALL zdm.backfill({}, NULL, {max_seconds}, 'cron')", Literal::new(migration));
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
    Ok(job)
}

/// Remove the migration's job if it has one (and pg_cron is still here).
pub fn unschedule(migration: &str) -> ZdmResult<bool> {
    let job: Option<i64> = get_optional("SELECT cron_job_id FROM zdm.migrations WHERE name = $1", &[migration.into()])
        .map_err(spi_err)?;
    let Some(job) = job else { return Ok(false) };
    if pg_cron_here()? {
        Spi::run_with_args(
            "SELECT cron.unschedule(jobid) FROM cron.job WHERE jobid = $1",
            &[job.into()],
        )
        .map_err(spi_err)?;
    }
    store::set_cron_job(migration, None)?;
    store::log_event(migration, "unscheduled", None, None, Some(serde_json::json!({"cron_job_id": job})))?;
    Ok(true)
}
