//! Registering a runner's dynamic background worker, and launching again the
//! runners whose worker is gone (after a restart: see `mod.rs`).
//!
//! The worker is registered during the caller's transaction, not at its
//! commit: a full `max_worker_processes` is then an error the caller sees
//! (53000) while nothing has changed yet. The worker waits for the caller's
//! transaction to end and works only if its runner row was committed.

use super::record::{self, Runner};
use crate::error::{spi_err, ZdmError, ZdmResult};
use crate::ident::Literal;
use crate::migrations::store;
use crate::session::get_optional;
use pgrx::bgworkers::BackgroundWorkerBuilder;
use pgrx::pg_sys;
use pgrx::pg_sys::errcodes::PgSqlErrorCode;
use std::time::Duration;

/// `bgw_type` of every runner (`pg_stat_activity.backend_type`).
pub const WORKER_TYPE: &str = "pg_zdm runner";
/// The worker's entry point, found by name in library `pg_zdm`.
pub const WORKER_FUNCTION: &str = "pg_zdm_runner_main";
/// After its backend is terminated (or it crashed), the postmaster starts the
/// worker again after this long; it resumes from the last checkpoint.
const RESTART_AFTER: Duration = Duration::from_secs(1);

/// What a worker is told through `bgw_extra` (its only argument channel).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Assignment {
    pub database: pg_sys::Oid,
    pub role: pg_sys::Oid,
    pub runner_id: i64,
    /// The transaction that asked for it (0: none to wait for).
    pub wait_xid: u32,
}

impl Assignment {
    pub fn encode(&self) -> String {
        format!(
            "{} {} {} {}",
            u32::from(self.database),
            u32::from(self.role),
            self.runner_id,
            self.wait_xid
        )
    }

    pub fn decode(s: &str) -> Option<Assignment> {
        let mut it = s.split_whitespace();
        let database = it.next()?.parse::<u32>().ok()?;
        let role = it.next()?.parse::<u32>().ok()?;
        let runner_id = it.next()?.parse().ok()?;
        let wait_xid = it.next()?.parse().ok()?;
        Some(Assignment {
            database: pg_sys::Oid::from(database),
            role: pg_sys::Oid::from(role),
            runner_id,
            wait_xid,
        })
    }
}

/// The role the worker connects as: the table's owner, who must be able to
/// log in (PostgreSQL 15 refuses a worker session to a NOLOGIN role).
fn worker_role(migration: &str) -> ZdmResult<pg_sys::Oid> {
    let m = store::get(migration)?;
    let owner = crate::privilege::table_owner(&m.table_name)?.ok_or_else(|| {
        ZdmError::new(
            PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
            format!(
                "the table {} of migration {} is gone",
                m.table_name,
                Literal::new(migration)
            ),
        )
        .hint(format!(
            "SELECT zdm.rollback({}); abandons the migration.",
            Literal::new(migration)
        ))
    })?;
    let login: bool = get_optional(
        "SELECT rolcanlogin FROM pg_catalog.pg_roles WHERE oid OPERATOR(pg_catalog.=) $1",
        &[owner.into()],
    )
    .map_err(spi_err)?
    .unwrap_or(false);
    if !login {
        let name: String = get_optional("SELECT pg_catalog.pg_get_userbyid($1)::text", &[owner.into()])
            .map_err(spi_err)?
            .unwrap_or_default();
        return Err(ZdmError::wrong_state(format!(
            "the background worker of migration {} runs as the table's owner {name}, a role that cannot log in",
            Literal::new(migration)
        ))
        .detail("PostgreSQL 15 starts a worker's session only for a role with LOGIN (no password is used).")
        .hint(format!(
            "ALTER ROLE {} LOGIN; or run the migrate phase from a session: CALL zdm.backfill({}), then the pending statements.",
            crate::ident::Ident::new(&name),
            Literal::new(migration)
        )));
    }
    Ok(owner)
}

fn no_slot(migration: &str) -> ZdmError {
    ZdmError::new(
        PgSqlErrorCode::ERRCODE_CONFIGURATION_LIMIT_EXCEEDED,
        format!(
            "no background worker slot is free to run migration {}",
            Literal::new(migration)
        ),
    )
    .detail(
        "Every slot of max_worker_processes is taken (parallel query, replication and other extensions use them too).",
    )
    .hint(
        "Raise max_worker_processes in postgresql.conf (restart needed; one slot per running migration), \
         or run it from a session: CALL zdm.backfill(...).",
    )
}

/// Register the worker of `runner` (53000 when no slot is free).
pub fn launch(runner: &Runner, wait_xid: u32) -> ZdmResult<()> {
    let role = worker_role(&runner.migration)?;
    let assignment = Assignment {
        database: unsafe { pg_sys::MyDatabaseId },
        role,
        runner_id: runner.id,
        wait_xid,
    };
    BackgroundWorkerBuilder::new(&format!("pg_zdm runner {}", runner.id))
        .set_type(WORKER_TYPE)
        .set_library("pg_zdm")
        .set_function(WORKER_FUNCTION)
        .enable_spi_access()
        .set_restart_time(Some(RESTART_AFTER))
        .set_extra(&assignment.encode())
        .load_dynamic()
        .map(|_| ())
        .map_err(|_| no_slot(&runner.migration))
}

/// Launch again every runner of this database whose worker is gone (and
/// was not launched in the last `grace_s` seconds: it may be starting). Never
/// fails its caller: a runner that cannot be launched keeps its error in
/// `zdm.migrations.last_error` (shown by `zdm.progress`) and an event, and is
/// tried again by the next call.
pub fn relaunch_orphans(grace_s: i32) -> usize {
    let orphans = match crate::session::in_subtransaction(|| record::orphans(grace_s)) {
        Ok(Ok(o)) => o,
        _ => return 0,
    };
    let mut launched = 0;
    for (id, migration) in orphans {
        let outcome = crate::session::in_subtransaction(|| -> ZdmResult<()> {
            let Some(r) = record::by_id(id)? else { return Ok(()) };
            launch(&r, 0)?;
            record::relaunched(id)?;
            store::log_event(&migration, "runner relaunched", None, None, None)
        });
        match outcome {
            Ok(Ok(())) => launched += 1,
            Ok(Err(e)) => {
                pgrx::log!(
                    "pg_zdm: cannot launch the runner of migration {migration}: {}",
                    e.message
                );
                let _ = crate::session::in_subtransaction(|| {
                    store::record_error(
                        &migration,
                        &format!("{}: runner not launched: {}", e.sqlstate(), e.message),
                    )
                });
            }
            Err(e) => pgrx::log!(
                "pg_zdm: cannot launch the runner of migration {migration}: {}",
                crate::session::caught_message(&e)
            ),
        }
    }
    launched
}
