//! pg_zdm: zero-downtime schema migrations, inside PostgreSQL.
//!
//! Where things are:
//! - `spec`        what the user asks for (JSON, parsed with serde)
//! - `catalog`     what the table looks like (introspection of pg_catalog)
//! - `ops`         one module per operation: checks and plans (pure)
//! - `sqlgen`      SQL text of triggers and batches (pure)
//! - `plan`        steps, phases and lock modes (pure data)
//! - `executor`    running steps with lock_timeout, retries and backoff
//! - `backfill`    one keyset batch at a time, checkpointed
//! - `migrations`  the catalog tables and the phase state machine
//! - `shadow`      shadow tables: probe, verify, swap
//! - `privilege`   who may act on a migration, and with whose rights statements run
//! - `lifecycle`   start, the backfill's controls, complete, rollback
//! - `report`      what a plan and a migration's status show
//! - `api`         the `zdm.*` SQL functions (thin wrappers)
//! - `lint`        zdm.lint(sql): a migration's statements judged against this database
//! - `session`     subtransactions, local settings, sleeps (server plumbing)
//! - `runner`      zdm.run(): the migrate phase in a background worker
//! - sql/          hand-written SQL: catalog tables, views, the committing procedure, the DDL guard

use pgrx::prelude::*;

pub mod abandon;
pub mod api;
pub mod backfill;
pub mod catalog;
pub mod error;
pub mod executor;
pub mod expr;
pub mod guard;
pub mod guc;
pub mod ident;
pub mod lifecycle;
pub mod lint;
pub mod migrations;
pub mod ops;
pub mod partition_backfill;
pub mod plan;
pub mod privilege;
pub mod report;
pub mod runner;
pub mod scheduler;
pub mod session;
pub mod shadow;
pub mod spec;
pub mod sqlgen;
pub mod toplevel;

mod tests;

::pgrx::pg_module_magic!(name, version);

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    // An error caught inside pg_zdm and raised again carries a Rust backtrace
    // in its DETAIL when the server's environment has RUST_BACKTRACE set: a
    // user is shown PostgreSQL's message and detail, never pg_zdm's insides.
    // (A backend is one thread; this runs before any other Rust code of ours.)
    std::env::set_var("RUST_LIB_BACKTRACE", "0");
    guc::register();
    runner::launcher::register_if_preloading();
}

extension_sql_file!("../sql/bootstrap.sql", name = "bootstrap", bootstrap);
extension_sql_file!(
    "../sql/backfill.sql",
    name = "backfill_procedure",
    requires = [
        "bootstrap",
        api::zdm::_backfill_precheck,
        api::zdm::_backfill_step,
        api::zdm::_backfill_failed,
        api::zdm::_backfill_ended
    ]
);
extension_sql_file!(
    "../sql/monitoring.sql",
    name = "monitoring_views",
    requires = ["bootstrap"]
);
extension_sql_file!(
    "../sql/guard.sql",
    name = "ddl_guard",
    requires = [
        "bootstrap",
        api::zdm::_own_ddl_in_progress,
        api::zdm::_alter_table_subcommands
    ]
);
extension_sql_file!(
    "../sql/runner.sql",
    name = "runner",
    requires = ["bootstrap", runner::api::_runner_wait_step]
);
extension_sql_file!(
    "../sql/api.sql",
    name = "api_wrappers",
    requires = ["bootstrap", api::zdm::start]
);

#[cfg(test)]
pub use tests::pg_test;
