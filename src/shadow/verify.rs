//! `zdm.verify()`: is the shadow equal to the original, row for row?
//!
//! One statement (so one snapshot: a write committed by the application is in
//! both tables or in neither, the trigger writing both in its transaction)
//! computes row counts and per-column order-independent checksums of the shadow
//! against the mapped original rows, in two sequential scans. Only when they
//! differ, a second statement joins the tables by key to count the differing
//! rows and name up to five. The result is kept in `zdm.migrations.shadow`;
//! `swap_tables` swaps only after a match.
//!
//! The settle (`sqlgen::shadow_settle`) runs only after a comparison that
//! did not match (its row locks last until verify commits: taken before a
//! comparison, they made writers wait through it). Under load a delete in
//! flight during the settle may commit before the comparison and leave a late
//! copy to be seen; such a mismatch goes away with the next settle, so a
//! finished backfill's mismatch is settled and compared again (3 passes)
//! before it is reported. The swap settles once more under its lock.

use crate::catalog::introspect::spi_err;
use crate::error::{ZdmError, ZdmResult};
use crate::migrations::store::MigrationRow;
use crate::migrations::{store, Phase};
use crate::plan::ShadowPlan;
use pgrx::prelude::*;
use serde_json::{json, Value};
use std::time::Instant;

/// The shadow part of a migration's plan, or 55000 for other migrations.
pub fn shadow_plan(m: &MigrationRow) -> ZdmResult<ShadowPlan> {
    m.plan.shadow.clone().ok_or_else(|| {
        ZdmError::wrong_state(format!(
            "migration \"{}\" is a {} migration, not a shadow table",
            m.name, m.kind
        ))
        .hint("verify and swap_tables work on migrations started with zdm.create_shadow_table().")
    })
}

/// The settle to run before a comparison, if any. Once the backfill is done
/// it also copies the rows of noted keys the shadow lacks; before, batches
/// still copy those, and a shadow filled without indexes cannot be settled
/// at all (every note would scan it): the comparison then only tells how far
/// the copy is.
fn settle_call(sp: &ShadowPlan, backfill_done: bool) -> Option<String> {
    let settle = sp.settle_function.as_ref()?;
    match (backfill_done, sp.indexes_after_copy) {
        (true, _) => Some(format!("SELECT {settle}(true)")),
        (false, false) => Some(format!("SELECT {settle}(false)")),
        (false, true) => None,
    }
}

/// At the end of `CALL zdm.backfill` after a copy phase: writers that were
/// open when the copy phase ended noted keys the settle ending it could not
/// see yet. Once they have ended (a wait of at most two seconds), one more
/// settle in the procedure's next short transaction, so that verify usually
/// matches at its first comparison and needs no settle of its own.
pub fn settle_after_copy_phase(m: &MigrationRow) -> ZdmResult<()> {
    let Some(sp) = m.plan.shadow.as_ref().filter(|sp| sp.indexes_after_copy) else {
        return Ok(());
    };
    if m.phase != Phase::Backfilled {
        return Ok(());
    }
    if let Some(settle) = settle_call(sp, true) {
        super::beyond::older_transactions_ended()?;
        Spi::run(&settle).map_err(spi_err)?;
    }
    Ok(())
}

/// Comparisons before a mismatch is reported (see `verify`).
const VERIFY_PASSES: u32 = 3;

/// How many comparisons `verify` may make: one, and one after a settle when
/// there is a settle to run; up to `VERIFY_PASSES` once the backfill is done
/// (a delete in flight during a settle can leave one more late copy).
fn max_passes(m: &MigrationRow, can_settle: bool) -> u32 {
    match (can_settle, m.phase == Phase::Backfilled) {
        (false, _) => 1,
        (true, false) => 2,
        (true, true) => VERIFY_PASSES,
    }
}

/// Row counts and per-column checksums of the original and the shadow, read
/// in one statement (one snapshot).
struct Sums {
    source_rows: i64,
    shadow_rows: i64,
    source_sums: Vec<String>,
    shadow_sums: Vec<String>,
}

impl Sums {
    fn matched(&self) -> bool {
        self.source_rows == self.shadow_rows && self.source_sums == self.shadow_sums
    }
}

fn compare(sp: &ShadowPlan) -> ZdmResult<Sums> {
    Spi::connect(|c| {
        // No row limit: a limit would keep the executor from a parallel plan.
        let r = c.select(&sp.verify_sql, None, &[])?.first();
        Ok::<_, pgrx::spi::Error>(Sums {
            source_rows: r.get::<i64>(1)?.unwrap_or(0),
            shadow_rows: r.get::<i64>(2)?.unwrap_or(0),
            source_sums: r.get::<Vec<String>>(3)?.unwrap_or_default(),
            shadow_sums: r.get::<Vec<String>>(4)?.unwrap_or_default(),
        })
    })
    .map_err(spi_err)
}

/// Run the comparison, record it, and return it.
/// `for_swap`: called by `swap_tables` right before it drops the trigger,
/// so the inserts' bound (below) is not worth waiting for.
pub fn verify(name: &str, for_swap: bool) -> ZdmResult<Value> {
    let m = store::get_for_update(name)?;
    let sp = shadow_plan(&m)?;
    if m.phase.is_final() || m.phase == Phase::Swapped {
        return Err(ZdmError::wrong_state(format!(
            "migration \"{name}\" is {}; there is no shadow to verify any more",
            m.phase
        ))
        .hint("verify compares the shadow with the original before the swap."));
    }
    let started = Instant::now();
    // After a copy phase, inserts skip the probe of the notes only once no
    // writer of the copy phase is left and its notes are settled (`beyond`).
    let beyond = (m.phase == Phase::Backfilled && !for_swap)
        .then(|| m.plan.backfill.as_ref().and_then(|p| p.beyond_upper.as_ref()))
        .flatten()
        .filter(|b| b.set_after_copy_sql.is_some());
    let copy_writers_gone = match beyond {
        Some(_) => super::beyond::older_transactions_ended()?,
        None => false,
    };
    // Compare first, settle only on a mismatch: the settle's row locks on the
    // shadow last until verify commits, and writers of those rows would wait
    // through every comparison that follows it (seconds on a large table).
    // Copies of rows deleted while a batch copied them are not differences,
    // only late (see `sqlgen::shadow_settle`), and a delete in flight during
    // a settle may leave one more: a mismatch is settled and compared again.
    let settle = settle_call(&sp, m.phase.backfill_done());
    let mut passes = 1;
    let mut sums = compare(&sp)?;
    while !sums.matched() && passes < max_passes(&m, settle.is_some()) {
        if passes > 1 {
            crate::session::sleep_ms(200);
        }
        Spi::run(settle.as_deref().expect("max_passes allows a second pass only with a settle")).map_err(spi_err)?;
        passes += 1;
        sums = compare(&sp)?;
    }
    let sums_match = sums.matched();
    if let Some(b) = beyond.filter(|_| sums_match) {
        if copy_writers_gone {
            // The bound is read after a settle that followed the wait for the
            // copy phase's writers (see `beyond`): the loop's, or one now.
            if let Some(settle) = settle.as_deref().filter(|_| passes == 1) {
                Spi::run(settle).map_err(spi_err)?;
            }
            super::beyond::set_bound_after_copy(name, b)?;
        } else {
            pgrx::notice!(
                "pg_zdm {name}: transactions older than this verify are still running; \
                 inserts keep probing the notes until a verify finds none"
            );
        }
    }
    let Sums { source_rows, shadow_rows, source_sums, shadow_sums } = sums;
    // Only on a mismatch: which rows (a join of both tables, in a second look).
    let (differing, sample) = if sums_match {
        (0, Vec::new())
    } else {
        Spi::connect(|c| {
            let r = c.select(&sp.verify_diff_sql, Some(1), &[])?.first();
            Ok::<_, pgrx::spi::Error>((
                r.get::<i64>(1)?.unwrap_or(0),
                r.get::<Vec<String>>(2)?.unwrap_or_default(),
            ))
        })
        .map_err(spi_err)?
    };
    let columns: Vec<Value> = sp
        .compared_columns
        .iter()
        .zip(source_sums.iter().zip(&shadow_sums))
        .map(|(c, (s, d))| json!({"column": c, "matched": s == d, "source": s, "shadow": d}))
        .collect();
    let matched = sums_match;
    let mut result = json!({
        "migration": name,
        "matched": matched,
        "source_rows": source_rows,
        "shadow_rows": shadow_rows,
        "differing_rows": differing,
        "sample_keys": sample,
        "columns": columns,
        "not_compared": sp.not_compared,
        "took_ms": (started.elapsed().as_secs_f64() * 1000.0).round(),
        "passes": passes,
        "backfilled": m.phase == Phase::Backfilled,
    });
    if m.phase != Phase::Backfilled {
        result["note"] = json!("the backfill is not finished: rows it has not copied yet count as differences");
    }
    let at: Option<String> = Spi::get_one("SELECT pg_catalog.clock_timestamp()::text").map_err(spi_err)?;
    result["at"] = json!(at);
    store::set_shadow_state(name, "verify", result.clone())?;
    store::log_event(name, "verify", None, None, Some(result.clone()))?;
    Ok(result)
}
