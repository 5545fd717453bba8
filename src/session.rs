//! Server-side plumbing the executor stands on: subtransactions that can be
//! rolled back without aborting the caller, and transaction-local settings that
//! are put back afterwards.

use pgrx::pg_sys;
use pgrx::pg_sys::panic::CaughtError;
use pgrx::prelude::*;
use std::panic::AssertUnwindSafe;

/// Run `f` in an internal subtransaction. On any error the subtransaction is
/// rolled back (its locks released, its catalog changes undone) and the error
/// is handed back to the caller, who decides whether to retry or rethrow.
/// The same dance as PL/pgSQL's `BEGIN ... EXCEPTION` block.
pub fn in_subtransaction<R>(f: impl FnOnce() -> R) -> Result<R, CaughtError> {
    subtransaction(f, true)
}

/// Run `f` in an internal subtransaction that is always rolled back, even on
/// success: a probe that creates objects to see what PostgreSQL makes of them
/// (the shadow table's shape) and leaves nothing behind. Results must be owned
/// Rust values: memory of the subtransaction is gone afterwards.
pub fn in_rolled_back_subtransaction<R>(f: impl FnOnce() -> R) -> Result<R, CaughtError> {
    subtransaction(f, false)
}

/// `f` in a subtransaction, released (kept) on success when `keep`, rolled back otherwise.
fn subtransaction<R>(f: impl FnOnce() -> R, keep: bool) -> Result<R, CaughtError> {
    unsafe {
        let old_context = pg_sys::CurrentMemoryContext;
        let old_owner = pg_sys::CurrentResourceOwner;
        pg_sys::BeginInternalSubTransaction(std::ptr::null());
        pg_sys::MemoryContextSwitchTo(old_context);
        PgTryBuilder::new(AssertUnwindSafe(move || {
            let result = f();
            if keep {
                pg_sys::ReleaseCurrentSubTransaction();
            } else {
                pg_sys::RollbackAndReleaseCurrentSubTransaction();
            }
            pg_sys::MemoryContextSwitchTo(old_context);
            pg_sys::CurrentResourceOwner = old_owner;
            Ok(result)
        }))
        .catch_others(move |error| {
            pg_sys::RollbackAndReleaseCurrentSubTransaction();
            pg_sys::MemoryContextSwitchTo(old_context);
            pg_sys::CurrentResourceOwner = old_owner;
            Err(error)
        })
        .execute()
    }
}

/// The SQLSTATE of a caught error, or None for a Rust panic without one.
pub fn caught_sqlstate(e: &CaughtError) -> Option<pg_sys::errcodes::PgSqlErrorCode> {
    match e {
        CaughtError::PostgresError(r) | CaughtError::ErrorReport(r) => Some(r.sql_error_code()),
        CaughtError::RustPanic { .. } => None,
    }
}

pub fn caught_message(e: &CaughtError) -> String {
    match e {
        CaughtError::PostgresError(r) | CaughtError::ErrorReport(r) | CaughtError::RustPanic { ereport: r, .. } => {
            r.message().to_string()
        }
    }
}

/// The DETAIL of a caught error, if it has one.
pub fn caught_detail(e: &CaughtError) -> Option<String> {
    match e {
        CaughtError::PostgresError(r) | CaughtError::ErrorReport(r) | CaughtError::RustPanic { ereport: r, .. } => {
            r.detail().map(|d| d.to_string())
        }
    }
}

/// Set transaction-local settings for the duration of `f`, then put the previous
/// values back (so nothing leaks into the caller's transaction). If `f` errors
/// inside a subtransaction, PostgreSQL's own rollback restores them.
pub fn with_local_settings<R>(settings: &[(&str, String)], f: impl FnOnce() -> R) -> R {
    let mut previous = Vec::with_capacity(settings.len());
    for (name, value) in settings {
        let old: Option<String> =
            Spi::get_one_with_args("SELECT pg_catalog.current_setting($1, true)", &[(*name).into()]).unwrap_or(None);
        set_local(name, value);
        previous.push((*name, old.unwrap_or_default()));
    }
    let result = f();
    for (name, old) in previous.into_iter().rev() {
        set_local(name, &old);
    }
    result
}

/// `SET LOCAL name = value`, undone at the end of the (sub)transaction.
pub fn set_local(name: &str, value: &str) {
    Spi::run_with_args(
        "SELECT pg_catalog.set_config($1, $2, true)",
        &[name.into(), value.into()],
    )
    .expect("set_config");
}

/// Sleep `ms` milliseconds, waking for query cancel and server shutdown.
pub fn sleep_ms(ms: u64) {
    if ms == 0 {
        return;
    }
    unsafe {
        pg_sys::WaitLatch(
            pg_sys::MyLatch,
            (pg_sys::WL_LATCH_SET | pg_sys::WL_TIMEOUT | pg_sys::WL_EXIT_ON_PM_DEATH) as i32,
            ms as std::os::raw::c_long,
            pg_sys::PG_WAIT_EXTENSION,
        );
        pg_sys::ResetLatch(pg_sys::MyLatch);
        pg_sys::check_for_interrupts!();
    }
}

/// True inside an explicit BEGIN ... COMMIT block.
pub fn in_transaction_block() -> bool {
    unsafe { pg_sys::IsTransactionBlock() }
}

/// One value of a query that may return no row (pgrx reports that as an error).
pub fn get_optional<T: IntoDatum + FromDatum>(
    sql: &str,
    args: &[pgrx::datum::DatumWithOid],
) -> Result<Option<T>, pgrx::spi::Error> {
    match Spi::get_one_with_args::<T>(sql, args) {
        Err(pgrx::spi::Error::InvalidPosition) => Ok(None),
        other => other,
    }
}
