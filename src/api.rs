//! The SQL-facing API: thin `#[pg_extern]` wrappers that parse arguments, call
//! the modules that do the work (`lifecycle`, `report`, `backfill`, `shadow`,
//! `scheduler`, `toplevel`) inside `privilege::api_call`, and raise errors as
//! PostgreSQL ERRORs. Their doc comments are the SQL reference. Convenience
//! functions with regclass arguments (`zdm.rename_column(...)`) are SQL
//! wrappers over `zdm.start()`, in sql/api.sql.

use crate::backfill;
use crate::error::OrRaise;
use crate::lifecycle::access::{as_owner_of, authorized};
use crate::lifecycle::{self, backfill_control};
use crate::migrations::store;
use crate::privilege::api_call;
use crate::report;
use pgrx::prelude::*;
use pgrx::JsonB;

/// Everything in this module is created in schema `zdm` (pgrx emits
/// `CREATE SCHEMA IF NOT EXISTS zdm` and qualifies each function).
#[pg_schema]
pub mod zdm {
    use super::*;

    /// Dry run: the ordered steps of every phase with their SQL and locks. Changes nothing.
    #[pg_extern]
    fn plan(spec: JsonB) -> JsonB {
        api_call(|| report::plan(&spec.0)).map(JsonB).or_raise()
    }

    /// `zdm.plan()` as rows, one per step, in the order they run, for psql.
    /// Changes nothing.
    #[pg_extern]
    fn plan_steps(
        spec: JsonB,
    ) -> TableIterator<
        'static,
        (
            name!(phase, String),
            name!(position, i32),
            name!(description, String),
            name!(lock_mode, Option<String>),
            name!(locked_relation, Option<String>),
            name!(top_level, bool),
            name!(statement, String),
        ),
    > {
        let rows = api_call(|| report::plan_steps(&spec.0)).or_raise();
        TableIterator::new(rows.into_iter().map(|r| {
            (
                r.phase.to_string(),
                r.position,
                r.description,
                r.lock.as_ref().map(|(m, _)| m.as_sql().to_string()),
                r.lock.map(|(_, rel)| rel),
                r.top_level,
                r.statement,
            )
        }))
    }

    /// Expand: create the new objects and sync triggers in one short transaction.
    /// With `"run": true` (or `"swap"`) in the spec, also `zdm.run()` it.
    #[pg_extern]
    fn start(spec: JsonB) -> String {
        api_call(|| crate::runner::start_and_run(spec.0)).or_raise()
    }

    /// Contract: drop what the old application needed, in one short transaction.
    #[pg_extern]
    fn complete(migration: &str) {
        api_call(|| lifecycle::complete::complete(migration)).or_raise()
    }

    /// Undo start, from any phase before complete: the table is as before start.
    #[pg_extern]
    fn rollback(migration: &str) {
        api_call(|| lifecycle::rollback::rollback(migration)).or_raise()
    }

    /// Remove a rolled-back migration and its events from the catalog (its
    /// name is free anyway; this clears the history). Other phases: 55000.
    #[pg_extern]
    fn forget(migration: &str) {
        api_call(|| lifecycle::rollback::forget(migration)).or_raise()
    }

    /// Everything about one migration: phase, spec, progress, events.
    #[pg_extern]
    fn status(migration: &str) -> JsonB {
        api_call(|| report::status(migration)).map(JsonB).or_raise()
    }

    /// Exactly one backfill batch in the caller's transaction: rows covered, 0 when finished.
    #[pg_extern]
    fn backfill_batch(migration: &str, batch_size: default!(Option<i32>, "NULL")) -> i64 {
        api_call(|| as_owner_of(migration, || backfill::run_one_batch(migration, batch_size))).or_raise()
    }

    /// One step of `CALL zdm.backfill()`'s loop: a batch, or why there is none.
    #[pg_extern]
    fn _backfill_step(
        migration: &str,
        batch_size: Option<i32>,
        via: &str,
    ) -> TableIterator<
        'static,
        (
            name!(rows, i64),
            name!(state, String),
            name!(wait_ms, i32),
            name!(reason, Option<String>),
        ),
    > {
        let step = api_call(|| as_owner_of(migration, || backfill::loop_step(migration, batch_size, via))).or_raise();
        let state = step.state().to_string();
        let row = match step {
            backfill::Step::Batch(n) => (n, state, 0, None),
            backfill::Step::Wait { reason, ms } => (0, state, ms, Some(reason)),
            backfill::Step::Gone(phase) => (0, state, 0, Some(format!("migration is {phase}"))),
            _ => (0, state, 0, None),
        };
        TableIterator::once(row)
    }

    /// Called by `zdm.backfill` after a failed batch was rolled back: keeps the
    /// error in zdm.migrations (the procedure commits it, then re-raises).
    #[pg_extern]
    fn _backfill_failed(migration: &str, sqlstate: &str, message: &str) {
        api_call(|| backfill_control::failed(migration, sqlstate, message)).or_raise()
    }

    /// Called by `zdm.backfill` when the loop ends on a finished or abandoned
    /// migration: a shadow's late notes are settled, and its pg_cron job, if
    /// any, is not needed any more.
    #[pg_extern]
    fn _backfill_ended(migration: &str) {
        api_call(|| backfill_control::ended(migration)).or_raise();
    }

    /// Called first by the `zdm.backfill` procedure: it commits between batches,
    /// which PostgreSQL only allows for a CALL outside a transaction block.
    #[pg_extern]
    fn _backfill_precheck(migration: &str, batch_size: Option<i32>) {
        api_call(|| backfill_control::precheck(migration, batch_size)).or_raise()
    }

    /// Stop the backfill: a running CALL or cron run stops after its current batch.
    #[pg_extern]
    fn pause(migration: &str) {
        api_call(|| backfill_control::pause(migration)).or_raise()
    }

    /// Let the backfill go on: the next CALL (or cron run) continues where it stopped.
    #[pg_extern]
    fn resume(migration: &str) {
        api_call(|| backfill_control::resume(migration)).or_raise()
    }

    /// Per-migration backfill settings (overriding the zdm.* GUCs); returns the
    /// settings in force. Keys: batch_size, batch_delay_ms, target_batch_ms,
    /// max_replication_lag_ms; a null value goes back to the GUC.
    #[pg_extern]
    fn set_backfill_settings(migration: &str, settings: JsonB) -> JsonB {
        api_call(|| backfill_control::set_settings(migration, &settings.0))
            .map(JsonB)
            .or_raise()
    }

    /// Run the backfill from pg_cron: a job named after the migration runs a
    /// lone `CALL zdm.backfill(...)` for up to `max_seconds` each time, and
    /// unschedules itself once the backfill is done. Returns the job id (with nothing to
    /// schedule: a NOTICE, and the job it already has or NULL).
    #[pg_extern]
    fn schedule_backfill(
        migration: &str,
        schedule: default!(&str, "'* * * * *'"),
        max_seconds: default!(i32, 50),
    ) -> Option<i64> {
        api_call(|| {
            authorized(migration)?;
            crate::scheduler::schedule(migration, schedule, max_seconds)
        })
        .or_raise()
    }

    /// Statements a migration still needs run at top level (CREATE INDEX
    /// CONCURRENTLY; for a migration named, its DROP INDEX CONCURRENTLY once
    /// the builds are done), in order: `SELECT statement FROM zdm.pending_statements() \gexec`.
    #[pg_extern]
    fn pending_statements(
        migration: default!(Option<&str>, "NULL"),
    ) -> TableIterator<'static, (name!(migration, String), name!(statement, String))> {
        TableIterator::new(api_call(|| crate::toplevel::pending_with_drops(migration)).or_raise())
    }

    /// Compare a shadow table with its original in one snapshot: row counts,
    /// per-column checksums, up to five differing keys. Recorded for swap_tables.
    #[pg_extern]
    fn verify(migration: &str) -> JsonB {
        JsonB(api_call(|| as_owner_of(migration, || crate::shadow::verify::verify(migration, false))).or_raise())
    }

    /// Swap a verified shadow table in: one short transaction under ACCESS
    /// EXCLUSIVE locks taken with lock_timeout and retried; re-points every
    /// dependent. Returns a report (attempts, lock wait and hold times, what moved).
    #[pg_extern]
    fn swap_tables(
        migration: &str,
        lock_timeout: default!(Option<&str>, "NULL"),
        max_attempts: default!(Option<i32>, "NULL"),
    ) -> JsonB {
        api_call(|| {
            let policy = crate::shadow::swap::policy(lock_timeout, max_attempts)?;
            authorized(migration)?;
            crate::shadow::swap::swap(migration, &policy)
        })
        .map(JsonB)
        .or_raise()
    }

    /// Remove the migration's pg_cron job; false when it had none.
    #[pg_extern]
    fn unschedule_backfill(migration: &str) -> bool {
        api_call(|| {
            authorized(migration)?;
            store::get_for_update(migration)?;
            crate::scheduler::unschedule(migration)
        })
        .or_raise()
    }

    /// Called by the DDL guard (sql/guard.sql) when the table of an active
    /// migration is dropped: the migration is abandoned in the same transaction.
    /// Does nothing to a migration whose table still exists (55000).
    #[pg_extern]
    fn _abandon_dropped(migration: &str) {
        api_call(|| crate::abandon::abandon_if_dropped(migration)).or_raise()
    }

    /// Read by the DDL guard (sql/guard.sql): true only inside a pg_zdm call.
    #[pg_extern]
    fn _own_ddl_in_progress() -> bool {
        crate::privilege::own_ddl_in_progress()
    }

    /// Read by the DDL guard (sql/guard.sql): what each subcommand of an
    /// `ALTER TABLE` did, and to which column. Its argument comes only from
    /// `pg_event_trigger_ddl_commands()` (no value of the type can be typed in).
    #[pg_extern(sql = "
        CREATE FUNCTION zdm.\"_alter_table_subcommands\"(command pg_catalog.pg_ddl_command)
        RETURNS TABLE (relation oid, subcommand text, column_name text)
        STRICT
        LANGUAGE c /* Rust */
        AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';
    ")]
    fn _alter_table_subcommands(
        command: pgrx::Internal,
    ) -> TableIterator<
        'static,
        (
            name!(relation, pg_sys::Oid),
            name!(subcommand, String),
            name!(column_name, Option<String>),
        ),
    > {
        let command = command.unwrap().map(|d| d.cast_mut_ptr::<pg_sys::CollectedCommand>());
        // SAFETY: the pointer is the CollectedCommand of the event trigger running now.
        let subcommands = unsafe { crate::guard::alter_table_subcommands(command.unwrap_or(std::ptr::null_mut())) };
        TableIterator::new(
            subcommands
                .into_iter()
                .map(|s| (s.relation, s.kind.to_string(), s.column)),
        )
    }

    /// Read by the catalog's guard trigger: true only while pg_zdm itself
    /// writes its catalog (a session cannot set it).
    #[pg_extern]
    fn _catalog_write_in_progress() -> bool {
        crate::privilege::catalog_write_in_progress()
    }
}
