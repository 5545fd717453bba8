//! The runner's SQL functions (thin wrappers, like `crate::api`); the
//! `zdm.wait` procedure that polls `_runner_wait_step` is in sql/runner.sql.

use crate::error::OrRaise;
use crate::privilege::api_call;
use pgrx::prelude::*;

/// Run the migrate phase of a migration in a background worker, as its
/// table's owner, once the calling transaction commits (never if it rolls
/// back): batches, index builds CONCURRENTLY, validations; a shadow stops
/// before verify and swap unless `through => 'swap'`.
#[pg_extern(schema = "zdm")]
fn run(migration: &str, through: default!(&str, "'backfilled'")) -> String {
    api_call(|| crate::runner::run(migration, through)).or_raise()
}

/// Stop the migration's background worker before its next step; false when
/// none was running.
#[pg_extern(schema = "zdm")]
fn cancel(migration: &str) -> bool {
    api_call(|| crate::runner::cancel(migration)).or_raise()
}

/// One look of `CALL zdm.wait()`: true once the runner is done.
#[pg_extern(schema = "zdm")]
fn _runner_wait_step(
    migration: &str,
    began: pgrx::datum::TimestampWithTimeZone,
    timeout: Option<pgrx::datum::Interval>,
) -> bool {
    let timeout_s = timeout.map(|i| {
        let micros = i.as_micros();
        micros as f64 / 1_000_000.0
    });
    api_call(|| crate::runner::wait_step(migration, began, timeout_s)).or_raise()
}
