//! The background runner: `zdm.run(m)` hands a migration's whole migrate
//! phase (batches with their commits and throttling, index builds
//! CONCURRENTLY, validations, and for a shadow, when asked, verify and swap)
//! to a dynamic background worker, from inside any transaction.
//!
//! - Launch: the worker is registered during the caller's transaction, so a
//!   full `max_worker_processes` is an error the caller sees (53000) with
//!   nothing changed. The worker then waits for the caller's transaction to
//!   end and works only if that transaction committed its `zdm.runners` row:
//!   a rollback (or a savepoint rolled back) starts nothing. Launching at
//!   commit instead (a transaction callback) could not report a failure.
//! - One worker per migration: the worker holds a session advisory lock on
//!   its runner's id; a second one gives up.
//! - Restarts: a terminated worker exits FATAL and the postmaster starts it
//!   again (restart time 1 s); a server restart forgets dynamic workers, so
//!   active runners without a worker are launched again by the first pg_zdm
//!   call of any session in their database ([`resume_once`]), or at startup
//!   by the launcher when pg_zdm is in `shared_preload_libraries`
//!   (`launcher.rs`). The batches resume from the checkpoint committed with
//!   each batch.
//! - Files: `record` (zdm.runners), `launch` (registering a worker), `step`
//!   (what to do next), `worker` (the process), `toplevel_exec` (all the
//!   unsafe: transactions, top-level statements), `launcher` (preload).

pub mod api;
pub mod launch;
pub mod launcher;
pub mod record;
pub mod step;
pub mod toplevel_exec;
pub mod worker;

use crate::error::{ZdmError, ZdmResult};
use crate::ident::Literal;
use crate::lifecycle::access::authorized;
use crate::migrations::{store, Phase};
use pgrx::pg_sys;
use pgrx::pg_sys::errcodes::PgSqlErrorCode;
use record::Through;
use std::cell::Cell;

/// `zdm.run(m, through)`: what it did, in words.
pub fn run(migration: &str, through: &str) -> ZdmResult<String> {
    let through = Through::parse(through)?;
    authorized(migration)?;
    let m = store::get_for_update(migration)?;
    let q = Literal::new(migration);
    if m.phase.is_final() {
        if m.phase == Phase::Completed {
            pgrx::notice!("pg_zdm: migration {q} is completed; nothing to run");
            return Ok(format!("migration {q} is completed; nothing to run"));
        }
        return Err(
            ZdmError::wrong_state(format!("migration {q} is {}; there is nothing to run", m.phase))
                .hint("Start it again if the table still needs the change."),
        );
    }
    if let Some(r) = record::of_migration(migration)?.filter(|r| r.active()) {
        if record::worker_alive(r.id)? {
            if r.through != through {
                record::set_through(r.id, through)?;
            }
            pgrx::notice!("pg_zdm: migration {q} already has a running worker");
            return Ok(format!("migration {q} is already running in the background"));
        }
    }
    let id = record::request(migration, through)?;
    let runner = record::by_id(id)?.expect("the row just written");
    launch::launch(&runner, toplevel_exec::current_top_xid())?;
    store::log_event(
        migration,
        "run",
        None,
        None,
        Some(serde_json::json!({ "through": through.as_str() })),
    )?;
    Ok(format!(
        "migration {q} runs in the background once this transaction commits (see zdm.progress, CALL zdm.wait({q}))"
    ))
}

/// `zdm.start(spec)`, where the spec may also say `"run": true` (or
/// `"run": "swap"`): the migration is then handed to a runner in the same
/// call ([`run`]). The key is taken out before the spec is parsed and stored.
pub fn start_and_run(mut spec: serde_json::Value) -> ZdmResult<String> {
    let through = match spec.as_object_mut().and_then(|o| o.remove("run")) {
        None | Some(serde_json::Value::Bool(false)) | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::Bool(true)) => Some("backfilled".to_string()),
        Some(serde_json::Value::String(s)) => Some(Through::parse(&s)?.as_str().to_string()),
        Some(other) => {
            return Err(ZdmError::invalid_parameter(format!(
                "spec field \"run\" must be true, false, 'backfilled' or 'swap', got {other}"
            ))
            .hint("\"run\": true runs the migrate phase in a background worker once the transaction commits."))
        }
    };
    let name = crate::lifecycle::start::start(spec)?;
    if let Some(through) = through {
        run(&name, &through)?;
    }
    Ok(name)
}

/// `zdm.cancel(m)`: the worker stops before its next step (a batch, an index
/// build); false when no runner was active.
pub fn cancel(migration: &str) -> ZdmResult<bool> {
    authorized(migration)?;
    store::get_for_update(migration)?;
    let Some(r) = record::of_migration(migration)?.filter(|r| r.active()) else {
        return Ok(false);
    };
    record::ended(r.id, "cancelled", None)?;
    store::log_event(migration, "runner cancelled", None, None, None)?;
    Ok(true)
}

/// One look of `CALL zdm.wait()`: true when the runner is done; raises the
/// runner's error when it failed, and 57014 once `timeout` has passed.
pub fn wait_step(
    migration: &str,
    began: pgrx::datum::TimestampWithTimeZone,
    timeout_s: Option<f64>,
) -> ZdmResult<bool> {
    if crate::session::in_transaction_block() {
        return Err(ZdmError::new(
            PgSqlErrorCode::ERRCODE_ACTIVE_SQL_TRANSACTION,
            format!(
                "CALL zdm.wait({}) cannot run inside a transaction block",
                Literal::new(migration)
            ),
        )
        .detail("It commits between two looks, so as to hold no snapshot the worker's index builds would wait for.")
        .hint("CALL it alone, at top level; inside a transaction, read zdm.progress instead."));
    }
    authorized(migration)?;
    let q = Literal::new(migration);
    let Some(r) = record::of_migration(migration)? else {
        return Err(ZdmError::wrong_state(format!("migration {q} has no background runner"))
            .hint(format!("Start one: SELECT zdm.run({q});")));
    };
    match r.state.as_str() {
        "done" => return Ok(true),
        "failed" => {
            let error = r.last_error.unwrap_or_default();
            let (code, message) = error.split_once(": ").unwrap_or(("XX000", &error));
            return Err(ZdmError::new(
                sqlstate_code(code),
                format!("the runner of migration {q} failed: {message}"),
            )
            .hint(format!(
                "Fix the cause, then SELECT zdm.run({q}); to go on from where it stopped."
            )));
        }
        "cancelled" => {
            return Err(ZdmError::new(
                PgSqlErrorCode::ERRCODE_QUERY_CANCELED,
                format!("the runner of migration {q} was cancelled"),
            )
            .hint(format!("SELECT zdm.run({q}); starts it again.")))
        }
        _ => {}
    }
    if let Some(limit) = timeout_s {
        let waited: f64 = pgrx::Spi::get_one_with_args(
            "SELECT pg_catalog.date_part('epoch', pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) $1)",
            &[began.into()],
        )
        .ok()
        .flatten()
        .unwrap_or(0.0);
        if waited >= limit {
            return Err(ZdmError::new(
                PgSqlErrorCode::ERRCODE_QUERY_CANCELED,
                format!("migration {q} is still running after {limit} s"),
            )
            .hint("The worker goes on; CALL zdm.wait() again or watch zdm.progress."));
        }
    }
    Ok(false)
}

/// A SQLSTATE's code from its five characters (XX000 if unreadable).
fn sqlstate_code(s: &str) -> PgSqlErrorCode {
    let b = s.as_bytes();
    if b.len() != 5 {
        return PgSqlErrorCode::ERRCODE_INTERNAL_ERROR;
    }
    let packed = b
        .iter()
        .rev()
        .fold(0i32, |acc, c| (acc << 6) | ((c.wrapping_sub(b'0')) as i32 & 0x3F));
    PgSqlErrorCode::from(packed as isize)
}

thread_local! {
    static RESUME_CHECKED: Cell<bool> = const { Cell::new(false) };
}

/// Once per session, at its first pg_zdm call: launch again the runners of
/// this database whose worker is gone (a server restart forgets them).
/// Only in a regular backend of a primary; never fails the call.
pub fn resume_once() {
    if RESUME_CHECKED.with(|c| c.replace(true)) {
        return;
    }
    let regular = unsafe { pg_sys::MyBackendType == pg_sys::BackendType::B_BACKEND };
    if !regular || unsafe { pg_sys::RecoveryInProgress() } {
        return;
    }
    let present = pgrx::Spi::get_one::<bool>("SELECT pg_catalog.to_regclass('zdm.runners') IS NOT NULL")
        .ok()
        .flatten()
        .unwrap_or(false);
    if present {
        launch::relaunch_orphans(5);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_read_back() {
        assert_eq!(
            sqlstate_code("55000"),
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE
        );
        assert_eq!(sqlstate_code("23505"), PgSqlErrorCode::ERRCODE_UNIQUE_VIOLATION);
        assert_eq!(sqlstate_code("bad"), PgSqlErrorCode::ERRCODE_INTERNAL_ERROR);
    }

    #[test]
    fn assignments_round_trip() {
        let a = launch::Assignment {
            database: pg_sys::Oid::from(5),
            role: pg_sys::Oid::from(16384),
            runner_id: 42,
            wait_xid: 731,
        };
        assert_eq!(launch::Assignment::decode(&a.encode()), Some(a));
        assert_eq!(launch::Assignment::decode("1 2"), None);
    }
}
