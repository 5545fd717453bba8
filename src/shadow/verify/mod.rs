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
//! No settle (`shadow::settle`) runs before a comparison: its row
//! locks on the shadow last until verify commits, and writers of those rows
//! waited through the comparison (seconds on a large table). On a mismatch
//! the comparison is made again without the rows of noted keys, whose copies
//! may be late by design until a settle; a finished backfill's mismatch gets
//! three tries (a delete in flight may note one more key). After a match of a
//! finished backfill the settle runs, its locks held only until commit; the
//! swap settles once more under its lock.

pub mod sql;

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

/// The settle of a finished backfill: it also copies the rows of noted keys
/// the shadow lacks (before, batches still copy those).
fn settle_call(sp: &ShadowPlan) -> Option<String> {
    sp.settle_function
        .as_ref()
        .map(|settle| format!("SELECT {settle}(true)"))
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
    if let Some(settle) = settle_call(sp) {
        super::beyond::older_transactions_ended()?;
        Spi::run(&settle).map_err(spi_err)?;
    }
    Ok(())
}

/// Comparisons before a mismatch is reported (see `verify`).
const VERIFY_PASSES: u32 = 3;

/// How many keys are noted now (left out of a comparison by `verify_pending_sql`).
fn noted_keys(sp: &ShadowPlan) -> ZdmResult<i64> {
    let Some(notes) = &sp.notes else { return Ok(0) };
    Spi::get_one::<i64>(&format!("SELECT pg_catalog.count(*) FROM {notes}"))
        .map_err(spi_err)
        .map(|n| n.unwrap_or(0))
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

fn compare(sql: &str) -> ZdmResult<Sums> {
    Spi::connect(|c| {
        // No row limit: a limit would keep the executor from a parallel plan.
        let r = c.select(sql, None, &[])?.first();
        Ok::<_, pgrx::spi::Error>(Sums {
            source_rows: r.get::<i64>(1)?.unwrap_or(0),
            shadow_rows: r.get::<i64>(2)?.unwrap_or(0),
            source_sums: r.get::<Vec<String>>(3)?.unwrap_or_default(),
            shadow_sums: r.get::<Vec<String>>(4)?.unwrap_or_default(),
        })
    })
    .map_err(spi_err)
}

/// The comparison, made again without the rows of noted keys after a
/// mismatch. Never a settle before a comparison: its row locks on the shadow
/// last until verify commits, and writers of those rows would wait through
/// the comparison (seconds on a large table). The rows of noted keys may be
/// late by design until a settle (see `shadow::settle`); a delete in flight
/// may note one more key, so a finished backfill's mismatch gets a few
/// tries. Returns the sums, the passes, and the noted keys left out.
fn compare_with_tries(m: &MigrationRow, sp: &ShadowPlan) -> ZdmResult<(Sums, u32, Option<i64>)> {
    let mut passes = 1;
    let mut sums = compare(&sp.verify_sql)?;
    let mut left_out = None;
    if let Some(pending_sql) = sp.verify_pending_sql.as_deref().filter(|_| !sums.matched()) {
        loop {
            sums = compare(pending_sql)?;
            passes += 1;
            if sums.matched() || passes >= VERIFY_PASSES || m.phase != Phase::Backfilled {
                break;
            }
            crate::session::sleep_ms(200);
        }
        if sums.matched() {
            left_out = Some(noted_keys(sp)?);
        }
    }
    Ok((sums, passes, left_out))
}

/// Only on a mismatch: which rows (a join of both tables, in a second look).
fn differing_rows(sp: &ShadowPlan) -> ZdmResult<(i64, Vec<String>)> {
    Spi::connect(|c| {
        let r = c.select(&sp.verify_diff_sql, Some(1), &[])?.first();
        Ok::<_, pgrx::spi::Error>((
            r.get::<i64>(1)?.unwrap_or(0),
            r.get::<Vec<String>>(2)?.unwrap_or_default(),
        ))
    })
    .map_err(spi_err)
}

/// What verify found, as recorded and returned.
struct Outcome {
    sums: Sums,
    passes: u32,
    left_out: Option<i64>,
    differing: (i64, Vec<String>),
    started: Instant,
}

fn report(name: &str, m: &MigrationRow, sp: &ShadowPlan, o: Outcome) -> ZdmResult<Value> {
    let matched = o.sums.matched();
    let Sums {
        source_rows,
        shadow_rows,
        source_sums,
        shadow_sums,
    } = o.sums;
    let columns: Vec<Value> = sp
        .compared_columns
        .iter()
        .zip(source_sums.iter().zip(&shadow_sums))
        .map(|(c, (s, d))| json!({"column": c, "matched": s == d, "source": s, "shadow": d}))
        .collect();
    let mut result = json!({
        "migration": name,
        "matched": matched,
        "source_rows": source_rows,
        "shadow_rows": shadow_rows,
        "differing_rows": o.differing.0,
        "sample_keys": o.differing.1,
        "columns": columns,
        "not_compared": sp.not_compared,
        "took_ms": (o.started.elapsed().as_secs_f64() * 1000.0).round(),
        "passes": o.passes,
        // Compared without the rows of these keys: copies the next settle
        // (at the latest the swap's, under its lock) makes the original's.
        "noted_keys_left_out": o.left_out,
        "backfilled": m.phase == Phase::Backfilled,
    });
    if m.phase != Phase::Backfilled {
        result["note"] = json!("the backfill is not finished: rows it has not copied yet count as differences");
    }
    let at: Option<String> = Spi::get_one("SELECT pg_catalog.clock_timestamp()::text").map_err(spi_err)?;
    result["at"] = json!(at);
    Ok(result)
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
    let (sums, passes, left_out) = compare_with_tries(&m, &sp)?;
    let sums_match = sums.matched();
    // The settle, once the comparison is done: its locks last only until
    // commit. Not for the swap: it runs this in a subtransaction it rolls
    // back, and settles under its own lock.
    if let Some(settle) = settle_call(&sp).filter(|_| sums_match && m.phase == Phase::Backfilled && !for_swap) {
        Spi::run(&settle).map_err(spi_err)?;
    }
    if let Some(b) = beyond.filter(|_| sums_match) {
        if copy_writers_gone {
            // Read after a settle that followed the wait for the copy phase's writers.
            super::beyond::set_bound_after_copy(name, b)?;
        } else {
            pgrx::notice!(
                "pg_zdm {name}: transactions older than this verify are still running; \
                 inserts keep probing the notes until a verify finds none"
            );
        }
    }
    let differing = if sums_match {
        (0, Vec::new())
    } else {
        differing_rows(&sp)?
    };
    let outcome = Outcome {
        sums,
        passes,
        left_out,
        differing,
        started,
    };
    let result = report(name, &m, &sp, outcome)?;
    store::set_shadow_state(name, "verify", result.clone())?;
    store::log_event(name, "verify", None, None, Some(result.clone()))?;
    Ok(result)
}
