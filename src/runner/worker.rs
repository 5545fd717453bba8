//! The runner's background worker: one process per migration, connected to
//! the migration's database as its table's owner, doing one step per
//! transaction (`step.rs`) until the migrate phase is over.
//!
//! Its life: take the runner's advisory lock (a second worker of the same
//! runner gives up here), wait for the transaction that asked for it to end,
//! work only if that transaction committed its runner row, then loop. An
//! error ends the runner as `failed` (kept in `zdm.runners.last_error` and
//! `zdm.migrations.last_error`), except transient ones (deadlock,
//! serialization, lock not available), retried a few times. A terminated
//! backend exits with FATAL and is started again by the postmaster.

use super::launch::Assignment;
use super::record;
use super::step::{self, Action, Progress};
use super::toplevel_exec as server;
use crate::error::{sqlstate_of, OrRaise};
use crate::migrations::store;
use crate::privilege::api_call;
use crate::session::{caught_message, caught_sqlstate, get_optional, sleep_ms};
use pgrx::bgworkers::BackgroundWorker;
use pgrx::pg_sys;
use pgrx::pg_sys::panic::CaughtError;
use pgrx::prelude::*;
use std::time::Instant;

/// Entry point of the dynamic background worker (found by name in `pg_zdm`).
#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn pg_zdm_runner_main(_arg: pg_sys::Datum) {
    server::install_signal_handlers();
    let Some(a) = Assignment::decode(&server::worker_extra()) else {
        pgrx::warning!("pg_zdm runner: unreadable assignment {:?}", server::worker_extra());
        server::exit(0);
    };
    BackgroundWorker::connect_worker_to_spi_by_oid(Some(a.database), Some(a.role));
    run(a)
}

/// How many times in a row a transient error is retried before the runner fails.
const TRANSIENT_RETRIES: u32 = 5;
/// Failed top-level statements in a row before the runner fails.
const MAX_TOP_LEVEL_FAILURES: u32 = 3;

fn run(a: Assignment) -> ! {
    let id = a.runner_id;
    let locked = transaction(|| {
        // Session settings: the worker's own statements are pg_zdm's, read
        // under the fixed path whatever the owner's role settings say.
        Spi::run(
            "SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', false),
                    pg_catalog.set_config('application_name', 'pg_zdm runner', false)",
        )
        .expect("session settings");
        Spi::get_one_with_args::<bool>(
            "SELECT pg_catalog.pg_try_advisory_lock($1, $2)",
            &[record::LOCK_KEY.into(), (id as i32).into()],
        )
        .ok()
        .flatten()
        .unwrap_or(false)
    });
    if !matches!(locked, Ok(true)) {
        // Another worker of this runner is at work (or we could not tell).
        server::exit(0);
    }
    if let Err(e) = server::wait_for_transaction(a.wait_xid) {
        pgrx::warning!("pg_zdm runner {id}: {}", caught_message(&e));
        server::exit(1);
    }
    let migration = match transaction(|| api_call(|| begin(id).or_raise())) {
        Ok(Some(m)) => m,
        Ok(None) => server::exit(0),
        Err(e) => fail(id, None, &e),
    };
    pgrx::log!("pg_zdm {migration}: runner started (pid {})", server::my_pid());
    work(id, &migration)
}

/// Claim the runner, if its request was committed and is still active.
fn begin(id: i64) -> crate::error::ZdmResult<Option<String>> {
    let Some(r) = record::by_id(id)? else { return Ok(None) };
    if !r.active() {
        return Ok(None);
    }
    record::running(id, server::my_pid())?;
    store::log_event(
        &r.migration,
        "runner started",
        None,
        None,
        Some(serde_json::json!({ "pid": server::my_pid(), "through": r.through.as_str() })),
    )?;
    Ok(Some(r.migration))
}

fn work(id: i64, migration: &str) -> ! {
    let mut progress = Progress::default();
    let mut transient = 0;
    let mut top_level_failures = 0;
    let mut last_report = Instant::now();
    loop {
        server::reload_config_if_asked();
        pg_sys::check_for_interrupts!();
        server::report_activity(&format!("pg_zdm runner: {migration}"));
        let action = match transaction(|| api_call(|| step::next(id, &mut progress).or_raise())) {
            Ok(a) => {
                transient = 0;
                a
            }
            Err(e) if is_transient(&e) && transient < TRANSIENT_RETRIES => {
                transient += 1;
                pgrx::log!("pg_zdm {migration}: retrying after {}", caught_message(&e));
                sleep_ms(500 * u64::from(transient));
                continue;
            }
            Err(e) => fail(id, Some(migration), &e),
        };
        if last_report.elapsed().as_secs() >= crate::guc::PROGRESS_INTERVAL_S.get().max(1) as u64 {
            report_progress(migration);
            last_report = Instant::now();
        }
        match action {
            Action::Continue { delay_ms } => sleep_ms(delay_ms),
            Action::Sleep { ms, .. } => sleep_ms(ms),
            Action::TopLevel(statement) => {
                pgrx::log!("pg_zdm {migration}: {statement}");
                match server::run_top_level(&statement) {
                    Ok(()) => top_level_failures = 0,
                    // The next step sees the index missing or INVALID and
                    // plans its rebuild (toplevel::pending counts the
                    // retries); a statement refused before it built anything
                    // (a right missing) fails the runner the third time.
                    Err(e) if top_level_failures < MAX_TOP_LEVEL_FAILURES => {
                        top_level_failures += 1;
                        pgrx::warning!("pg_zdm {migration}: {statement} failed: {}", caught_message(&e));
                        let message = described(&e);
                        let _ = transaction(|| api_call(|| store::record_error(migration, &message).or_raise()));
                        sleep_ms(1000);
                    }
                    Err(e) => fail(id, Some(migration), &e),
                }
            }
            Action::Stop { state, why } => {
                let _ = transaction(|| {
                    api_call(|| {
                        record::ended(id, state, None).or_raise();
                        store::log_event(
                            migration,
                            "runner ended",
                            None,
                            None,
                            Some(serde_json::json!({ "state": state, "why": why })),
                        )
                        .or_raise();
                    })
                });
                pgrx::log!("pg_zdm {migration}: runner {state}: {why}");
                server::exit(0);
            }
        }
    }
}

fn transaction<R>(f: impl FnOnce() -> R) -> Result<R, CaughtError> {
    server::in_transaction(f)
}

fn is_transient(e: &CaughtError) -> bool {
    use pgrx::pg_sys::errcodes::PgSqlErrorCode::*;
    matches!(
        caught_sqlstate(e),
        Some(ERRCODE_T_R_DEADLOCK_DETECTED | ERRCODE_T_R_SERIALIZATION_FAILURE | ERRCODE_LOCK_NOT_AVAILABLE)
    )
}

fn described(e: &CaughtError) -> String {
    let state = caught_sqlstate(e).map(sqlstate_of).unwrap_or_else(|| "XX000".into());
    format!("{state}: {}", caught_message(e))
}

/// The runner stops on an error: kept where zdm.progress, zdm.runners and
/// zdm.wait() show it, and in the server log. Exit 0: not started again.
fn fail(id: i64, migration: Option<&str>, e: &CaughtError) -> ! {
    let message = described(e);
    pgrx::warning!(
        "pg_zdm {}: runner failed: {message}",
        migration.unwrap_or("(unknown migration)")
    );
    let _ = transaction(|| {
        api_call(|| {
            record::ended(id, "failed", Some(&message)).or_raise();
            if let Some(m) = migration {
                store::record_error(m, &message).or_raise();
            }
        })
    });
    server::exit(0)
}

/// A progress line in the server log, as `CALL zdm.backfill` sends NOTICEs.
fn report_progress(migration: &str) {
    let line = transaction(|| {
        get_optional::<String>(
            "SELECT pg_catalog.format('pg_zdm %s: %s, %s of ~%s rows (%s%%), %s rows/s, batch of %s rows',
                                      migration, state, rows_done, rows_estimated, coalesce(percent::text, '?'),
                                      coalesce(current_rows_per_second::text, '?'), coalesce(last_batch_size::text, '?'))
               FROM zdm.progress WHERE migration OPERATOR(pg_catalog.=) $1",
            &[migration.into()],
        )
        .ok()
        .flatten()
    });
    if let Ok(Some(line)) = line {
        pgrx::log!("{line}");
    }
}
