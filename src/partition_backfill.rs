//! The backfill of a partitioned table: its leaf partitions one after the
//! other, each by its own keyset (its copy of the key index) through its own
//! batch function. `zdm.migrations.backfill_partitions` holds each leaf's
//! state (pending, backfilling, done, gone) and rows done, in walk order;
//! `backfill_upper` / `backfill_last` are the current leaf's, so a crash
//! resumes in that leaf right after its last committed batch.
//!
//! As each leaf is done its checks are validated, in the same transaction
//! (`ops::partitioned::validate_per_partition`).
//!
//! A leaf created during the migration is not walked: it was empty when
//! created and every row it got went through the sync triggers cloned from
//! the parent. A leaf detached or dropped during the migration is skipped
//! ('gone'); its rows left the table with it. Attaching a table that has
//! rows is refused by the DDL guard while the migration runs (its rows
//! never went through the triggers).

use crate::backfill::{finish, run_batch, Step, Target};
use crate::error::{spi_err, ZdmResult};
use crate::migrations::store::{self, MigrationRow};
use crate::migrations::Phase;
use crate::plan::BackfillPlan;
use crate::session::get_optional;
use pgrx::prelude::*;
use serde_json::{json, Value};

/// One batch in the current leaf; leaves with nothing (left) to do are passed
/// over in the same call, so a call covers rows until every leaf is done.
pub fn batch(m: &MigrationRow, plan: &BackfillPlan, size_override: Option<i32>, runner: &str) -> ZdmResult<Step> {
    if m.phase == Phase::Started {
        begin(m, plan)?;
    }
    let mut continuing = m.phase == Phase::Backfilling;
    loop {
        let Some((index, upper, resumed)) = current(m, plan, continuing)? else {
            finish(&store::get_for_update(&m.name)?)?;
            return Ok(Step::Done);
        };
        let leaf = &plan.partitions[index];
        let target = Target {
            table: &leaf.table,
            function: &leaf.function,
            upper,
            // Where the last batch stopped, in the leaf it stopped in only:
            // another leaf (the next one, that one being done or gone) starts
            // at its beginning.
            last: if resumed { m.backfill_last.clone() } else { None },
            partition: Some(index as i32),
        };
        match run_batch(m, &target, size_override, runner)? {
            0 => {
                // Its checks, now that its rows are right (see ops::partitioned).
                let what = format!("the validation of partition {}", leaf.table);
                crate::backfill::validate(m, &leaf.validate, &what)?;
                store::set_partition_state(&m.name, index as i32, "done", None)?
            }
            scanned => return Ok(Step::Batch(scanned)),
        }
        continuing = false;
    }
}

/// The first batch: every leaf pending, the estimate their sum.
fn begin(m: &MigrationRow, plan: &BackfillPlan) -> ZdmResult<()> {
    let mut entries = Vec::new();
    let mut total = 0i64;
    for leaf in &plan.partitions {
        let estimate: i64 = Spi::get_one_with_args::<f32>(
            "SELECT greatest(reltuples, 0) FROM pg_catalog.pg_class WHERE oid = pg_catalog.to_regclass($1)",
            &[leaf.table.as_str().into()],
        )
        .map_err(spi_err)?
        .unwrap_or(0.0) as i64;
        total += estimate;
        entries.push(json!({"partition": leaf.table, "state": "pending", "rows_done": 0, "rows_estimated": estimate}));
    }
    store::begin_partitions(&m.name, Value::Array(entries), total)?;
    store::move_phase(
        m,
        Phase::Backfilling,
        "backfill started",
        Some(json!({"partitions": plan.partitions.len()})),
    )
}

/// The leaf to run the next batch in, its upper bound, and whether it is the
/// leaf the last batch ran in (resumed after `m.backfill_last`), starting the
/// next pending one when needed; None when every leaf is done or gone.
/// `continuing`: `m` was read in the middle of the walk (its bound and last
/// key are those of the leaf marked backfilling).
fn current(m: &MigrationRow, plan: &BackfillPlan, continuing: bool) -> ZdmResult<Option<(usize, Vec<String>, bool)>> {
    let states = store::partition_states(&m.name)?;
    for (index, leaf) in plan.partitions.iter().enumerate() {
        let state = states
            .get(index)
            .and_then(|s| s.get("state"))
            .and_then(Value::as_str)
            .unwrap_or("pending");
        if state == "done" || state == "gone" {
            continue;
        }
        if !still_a_leaf_of(&plan.table, &leaf.table)? {
            store::set_partition_state(&m.name, index as i32, "gone", None)?;
            continue;
        }
        if state == "backfilling" && continuing {
            if let Some(upper) = m.backfill_upper.clone() {
                return Ok(Some((index, upper, true)));
            }
        }
        // Its last row now: later rows are kept right by the sync trigger.
        let upper: Option<Vec<String>> = get_optional(&leaf.upper_bound_sql, &[]).map_err(spi_err)?;
        match upper {
            None => store::set_partition_state(&m.name, index as i32, "done", None)?,
            Some(upper) => {
                store::set_partition_state(&m.name, index as i32, "backfilling", Some(&upper))?;
                return Ok(Some((index, upper, false)));
            }
        }
    }
    Ok(None)
}

/// Is `leaf` still a leaf partition somewhere under `table`?
fn still_a_leaf_of(table: &str, leaf: &str) -> ZdmResult<bool> {
    Ok(get_optional::<bool>(
        "SELECT EXISTS (SELECT FROM pg_catalog.pg_partition_tree(pg_catalog.to_regclass($1)) t
                         WHERE t.relid OPERATOR(pg_catalog.=) pg_catalog.to_regclass($2) AND t.isleaf)",
        &[table.into(), leaf.into()],
    )
    .map_err(spi_err)?
    .unwrap_or(false))
}
