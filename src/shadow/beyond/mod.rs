//! After a copy phase: when inserts may skip the probe of the notes.
//!
//! The row-copy trigger inserts a new key plainly when the shadow cannot
//! hold it, and otherwise probes the notes first (a deleted row's copy may
//! still be there, see `shadow::sync`). With the shadow's indexes in
//! place from the start, keys after the backfill's bound are such keys from
//! the moment the backfill begins. After a copy phase they are not: the
//! settle that ends it copies rows inserted during the copy, keys after the
//! bound included, and a writer still open at that moment may have deleted
//! (with the copy phase's trigger, which only notes) a row a settle then
//! copies. So the bound is set later, by `zdm.verify`, and only when:
//! 1. every transaction that was running when verify began has ended (any of
//!    them may still be writing with the copy phase's trigger; none that
//!    began after can: the backfill had committed, so the trigger copied);
//! 2. then a settle has run (so every note of theirs is settled), and
//!    verify's comparison matched (before or after that settle);
//! 3. the bound is the greatest key in the original *or the shadow*, read
//!    after that settle: a row only the shadow holds sorts at or below it.
//! Until then inserts probe, which is only slower.

pub mod sql;

use crate::catalog::introspect::spi_err;
use crate::error::ZdmResult;
use crate::plan::BeyondUpper;
use crate::session::{get_optional, sleep_ms, with_local_settings};
use std::time::{Duration, Instant};

/// Longest wait for the transactions older than this call.
const WAIT_FOR_OLDER: Duration = Duration::from_secs(2);

/// Wait (at most `WAIT_FOR_OLDER`) until every transaction of this database
/// running now has ended, and no prepared transaction is left. False when
/// some still run.
pub fn older_transactions_ended() -> ZdmResult<bool> {
    // Each transaction holds the lock on its own virtual transaction id until
    // it ends; pg_stat_activity tells every role which database a backend is in.
    let running: Vec<String> = get_optional(
        "SELECT coalesce(array_agg(l.virtualxid), '{}')
           FROM pg_catalog.pg_locks l
           JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
          WHERE l.locktype = 'virtualxid' AND l.granted
            AND l.pid <> pg_catalog.pg_backend_pid()
            AND a.datname = pg_catalog.current_database()",
        &[],
    )
    .map_err(spi_err)?
    .unwrap_or_default();
    let started = Instant::now();
    loop {
        let left: i64 = get_optional(
            "SELECT (SELECT count(*) FROM pg_catalog.pg_locks
                      WHERE locktype = 'virtualxid' AND virtualxid = ANY ($1))
                  + (SELECT count(*) FROM pg_catalog.pg_prepared_xacts
                      WHERE database = pg_catalog.current_database())",
            &[running.clone().into()],
        )
        .map_err(spi_err)?
        .unwrap_or(0);
        if left == 0 {
            return Ok(true);
        }
        if started.elapsed() >= WAIT_FOR_OLDER {
            return Ok(false);
        }
        sleep_ms(10);
    }
}

/// Set the bound from the greatest key now in the original or the shadow.
pub fn set_bound_after_copy(migration: &str, b: &BeyondUpper) -> ZdmResult<()> {
    let Some(sql) = &b.set_after_copy_sql else {
        return Ok(());
    };
    // ISO text, read back the same whatever the writer's DateStyle.
    let bound: Option<Vec<String>> = with_local_settings(
        &[
            ("DateStyle", "ISO, YMD".to_string()),
            ("IntervalStyle", "postgres".to_string()),
        ],
        || get_optional(sql, &[]),
    )
    .map_err(spi_err)?;
    crate::backfill::set_beyond_bound(migration, b, bound.as_deref());
    Ok(())
}
