//! Everything unsafe of the runner, in one place: the worker's signals, its
//! transactions, waiting for another transaction, and running a statement
//! at top level as a client's simple query would.
//!
//! A background worker is not inside a function call: it starts and commits
//! its own transactions. That is what lets it COMMIT between batches and run
//! `CREATE INDEX CONCURRENTLY`, which refuses to run under SPI ("cannot be
//! executed from a function"). [`run_top_level`] follows what pg_cron's
//! background-worker mode does (`ExecuteSqlString` in citusdata/pg_cron:
//! parse, analyze, plan, then a portal run with `isTopLevel = true`), for one
//! statement, in a transaction of its own that the statement may commit
//! inside (CONCURRENTLY does, twice).

use pgrx::pg_sys;
use pgrx::pg_sys::panic::CaughtError;
use pgrx::prelude::*;
use std::ffi::CString;
use std::panic::AssertUnwindSafe;

/// SIGTERM (`pg_terminate_backend`, shutdown) as in a regular backend: the
/// next interrupt check ends the process with FATAL, which the postmaster
/// answers by starting the worker again (it has a restart time). SIGHUP
/// reloads the configuration.
pub fn install_signal_handlers() {
    unsafe {
        pg_sys::pqsignal(pg_sys::SIGTERM as i32, Some(postgres_die));
        pg_sys::pqsignal(pg_sys::SIGHUP as i32, Some(postgres_reload));
        pg_sys::BackgroundWorkerUnblockSignals();
    }
}

// PostgreSQL's own handlers, by their C symbols: pg_sys wraps its functions
// in Rust guards, which have no place in a signal handler.
extern "C-unwind" {
    #[link_name = "die"]
    fn postgres_die(signal: std::ffi::c_int);
    #[link_name = "SignalHandlerForConfigReload"]
    fn postgres_reload(signal: std::ffi::c_int);
}

/// Reload postgresql.conf if a SIGHUP came in.
pub fn reload_config_if_asked() {
    unsafe {
        if pg_sys::ConfigReloadPending != 0 {
            pg_sys::ConfigReloadPending = 0;
            pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP);
        }
    }
}

/// Run `f` in a transaction of its own with a snapshot, committed when `f`
/// returns, rolled back (and the error handed back) when it raises.
pub fn in_transaction<R>(f: impl FnOnce() -> R) -> Result<R, CaughtError> {
    unsafe {
        pg_sys::SetCurrentStatementStartTimestamp();
        pg_sys::StartTransactionCommand();
        pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot());
    }
    guarded(move || {
        let r = f();
        unsafe {
            pg_sys::PopActiveSnapshot();
            pg_sys::CommitTransactionCommand();
        }
        r
    })
}

/// `f` with any error caught: the open transaction is aborted and the error
/// handed back; the worker goes on in a clean state.
fn guarded<R>(f: impl FnOnce() -> R) -> Result<R, CaughtError> {
    PgTryBuilder::new(AssertUnwindSafe(move || Ok(f())))
        .catch_others(|error| {
            unsafe {
                pg_sys::AbortCurrentTransaction();
                pg_sys::MemoryContextSwitchTo(pg_sys::TopMemoryContext);
            }
            Err(error)
        })
        .execute()
}

/// Wait until transaction `xid` (the caller of `zdm.run`) has ended, committed
/// or not, without a snapshot: waiting must not hold back anyone's
/// `CREATE INDEX CONCURRENTLY`. A subtransaction's xid waits for its top.
pub fn wait_for_transaction(xid: u32) -> Result<(), CaughtError> {
    if xid == 0 {
        return Ok(());
    }
    unsafe {
        pg_sys::SetCurrentStatementStartTimestamp();
        pg_sys::StartTransactionCommand();
    }
    guarded(move || unsafe {
        pg_sys::XactLockTableWait(
            pg_sys::TransactionId::from(xid),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            pg_sys::XLTW_Oper::XLTW_None,
        );
        pg_sys::CommitTransactionCommand();
    })
}

/// The top-level transaction id of the caller, assigned if it had none.
pub fn current_top_xid() -> u32 {
    unsafe { u32::from(pg_sys::GetTopTransactionId()) }
}

/// What `pg_stat_activity.query` shows for the worker.
pub fn report_activity(what: &str) {
    let text = CString::new(what.replace('\0', " ")).unwrap_or_default();
    unsafe { pg_sys::pgstat_report_activity(pg_sys::BackendState::STATE_RUNNING, text.as_ptr()) };
}

/// Run one SQL statement at top level, as the only statement of a simple
/// query, in a transaction of its own (which the statement may commit and
/// restart inside, as CONCURRENTLY does). Nothing is returned but errors.
pub fn run_top_level(sql: &str) -> Result<(), CaughtError> {
    let text = CString::new(sql).expect("statements hold no NUL");
    report_activity(sql);
    unsafe {
        pg_sys::SetCurrentStatementStartTimestamp();
        pg_sys::StartTransactionCommand();
    }
    // Parse trees, plans and the text must outlive the transaction the
    // statement commits inside: a context of their own, under TopMemoryContext.
    let context = unsafe {
        pg_sys::AllocSetContextCreateExtended(
            pg_sys::TopMemoryContext,
            c"pg_zdm top-level statement".as_ptr(),
            pg_sys::ALLOCSET_DEFAULT_MINSIZE as usize,
            pg_sys::ALLOCSET_DEFAULT_INITSIZE as usize,
            pg_sys::ALLOCSET_DEFAULT_MAXSIZE as usize,
        )
    };
    let outcome = guarded(move || unsafe {
        execute_in(context, text.as_ptr());
        pg_sys::CommitTransactionCommand();
    });
    unsafe { pg_sys::MemoryContextDelete(context) };
    report_activity("idle");
    outcome
}

/// Parse, analyze, plan and run `sql` (one statement) in the open transaction.
unsafe fn execute_in(context: pg_sys::MemoryContext, sql: *const std::ffi::c_char) {
    let old = pg_sys::MemoryContextSwitchTo(context);
    let sql = pg_sys::pstrdup(sql);
    let parsed = pg_sys::pg_parse_query(sql);
    pg_sys::MemoryContextSwitchTo(old);
    let raw_list = pgrx::list::old_list::PgList::<pg_sys::RawStmt>::from_pg(parsed);
    assert_eq!(raw_list.len(), 1, "one statement at a time");
    let raw = raw_list.get_ptr(0).expect("a statement");
    let tag = pg_sys::CreateCommandTag((*raw).stmt);
    let snapshot_set = pg_sys::analyze_requires_snapshot(raw);
    if snapshot_set {
        pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot());
    }
    let old = pg_sys::MemoryContextSwitchTo(context);
    let queries = pg_sys::pg_analyze_and_rewrite_fixedparams(raw, sql, std::ptr::null(), 0, std::ptr::null_mut());
    let plans = pg_sys::pg_plan_queries(queries, sql, 0, std::ptr::null_mut());
    if snapshot_set {
        pg_sys::PopActiveSnapshot();
    }
    pg_sys::check_for_interrupts!();
    let portal = pg_sys::CreatePortal(c"".as_ptr(), true, true);
    (*portal).visible = false;
    pg_sys::PortalDefineQuery(portal, std::ptr::null(), sql, tag, plans, std::ptr::null_mut());
    pg_sys::PortalStart(portal, std::ptr::null_mut(), 0, std::ptr::null_mut());
    let receiver = pg_sys::CreateDestReceiver(pg_sys::CommandDest::DestNone);
    pg_sys::MemoryContextSwitchTo(old);
    let mut completion = pg_sys::QueryCompletion::default();
    pg_sys::PortalRun(
        portal,
        std::ffi::c_long::MAX,
        true,
        true,
        receiver,
        receiver,
        &mut completion,
    );
    if let Some(destroy) = (*receiver).rDestroy {
        destroy(receiver);
    }
    pg_sys::PortalDrop(portal, false);
    pg_sys::CommandCounterIncrement();
}

/// Leave the process: 0 = done for good (the postmaster forgets the worker),
/// 1 = start me again after the restart time.
pub fn exit(code: i32) -> ! {
    unsafe { pg_sys::proc_exit(code) }
}

pub fn my_pid() -> i32 {
    unsafe { pg_sys::MyProcPid }
}

pub fn my_database() -> pg_sys::Oid {
    unsafe { pg_sys::MyDatabaseId }
}

/// True while the library is being preloaded (shared_preload_libraries).
pub fn preloading() -> bool {
    unsafe { pg_sys::process_shared_preload_libraries_in_progress }
}

/// The worker's `bgw_extra`.
pub fn worker_extra() -> String {
    pgrx::bgworkers::BackgroundWorker::get_extra().to_string()
}
