//! Resuming runners at server start, when pg_zdm is in
//! `shared_preload_libraries`: a static worker (the launcher) lists the
//! databases, and in each one a short-lived worker (the resumer) launches
//! again the active runners whose worker is gone. Without the preload the
//! first pg_zdm call of a session in that database does the same
//! (`runner::resume_once`).
//!
//! The launcher reads `pg_database` from database `postgres`; the resumers
//! connect as the bootstrap superuser only to read `zdm.runners` and register
//! workers, each of which connects as its table's owner.

use super::launch;
use super::toplevel_exec as server;
use pgrx::bgworkers::{BackgroundWorker, BackgroundWorkerBuilder, BgWorkerStartTime};
use pgrx::pg_sys;
use pgrx::prelude::*;

/// Register the launcher (from `_PG_init`, only while preloading).
pub fn register_if_preloading() {
    if !server::preloading() {
        return;
    }
    BackgroundWorkerBuilder::new("pg_zdm launcher")
        .set_type("pg_zdm launcher")
        .set_library("pg_zdm")
        .set_function("pg_zdm_launcher_main")
        .enable_spi_access()
        .set_start_time(BgWorkerStartTime::RecoveryFinished)
        .set_restart_time(None)
        .load();
}

#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn pg_zdm_launcher_main(_arg: pg_sys::Datum) {
    server::install_signal_handlers();
    BackgroundWorker::connect_worker_to_spi(Some("postgres"), None);
    let databases = server::in_transaction(|| {
        Spi::connect(|c| {
            c.select(
                "SELECT oid FROM pg_catalog.pg_database WHERE datallowconn AND NOT datistemplate ORDER BY oid",
                None,
                &[],
            )?
            .map(|r| r.get::<pg_sys::Oid>(1).map(|o| o.unwrap_or(pg_sys::InvalidOid)))
            .collect::<Result<Vec<_>, _>>()
        })
    });
    let Ok(Ok(databases)) = databases else {
        pgrx::warning!("pg_zdm launcher: cannot list the databases");
        server::exit(0);
    };
    for db in databases {
        let worker = BackgroundWorkerBuilder::new("pg_zdm resumer")
            .set_type("pg_zdm resumer")
            .set_library("pg_zdm")
            .set_function("pg_zdm_resumer_main")
            .enable_spi_access()
            .set_restart_time(None)
            .set_extra(&u32::from(db).to_string())
            .set_notify_pid(server::my_pid())
            .load_dynamic();
        match worker {
            Ok(w) => {
                let _ = w.wait_for_startup();
                let _ = w.wait_for_shutdown();
            }
            Err(_) => pgrx::warning!(
                "pg_zdm launcher: no background worker slot to resume the runners of database {}; \
                 the first pg_zdm call there will (raise max_worker_processes)",
                u32::from(db)
            ),
        }
    }
    server::exit(0)
}

#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn pg_zdm_resumer_main(_arg: pg_sys::Datum) {
    server::install_signal_handlers();
    let Ok(db) = server::worker_extra().trim().parse::<u32>() else {
        server::exit(0);
    };
    BackgroundWorker::connect_worker_to_spi_by_oid(Some(pg_sys::Oid::from(db)), None);
    let _ = server::in_transaction(|| {
        let installed = Spi::get_one::<bool>("SELECT pg_catalog.to_regclass('zdm.runners') IS NOT NULL")
            .ok()
            .flatten()
            .unwrap_or(false);
        if installed {
            let n = crate::privilege::api_call(|| launch::relaunch_orphans(0));
            if n > 0 {
                pgrx::log!("pg_zdm: {n} runner(s) resumed in database {db}");
            }
        }
    });
    server::exit(0)
}
