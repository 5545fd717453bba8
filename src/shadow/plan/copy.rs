//! How the rows reach the shadow: the keyset batches, the settle of noted
//! keys, the bound after which inserts need no probe of the notes, and, after
//! a copy phase, the index builds (see docs/shadow-tables.md, "The copy phase").

use super::columns::{copied_value, overriding};
use super::key::Key;
use super::names::Names;
use crate::ops::PlanContext;
use crate::plan::{BackfillPlan, BeyondUpper, LockMode, Step};
use crate::shadow::beyond::sql::beyond_upper_applies;
use crate::shadow::settle::Settle;
use crate::shadow::shape::{ShadowColumn, ShadowShape};
use crate::sqlgen::backfill::{BatchWork, KeysetBatch};

/// The settle of the noted keys: the shadow rows of those keys become the
/// original's rows again.
pub fn settle<'a>(migration: &'a str, names: &'a Names, key: &Key, written: &[&ShadowColumn]) -> Settle<'a> {
    Settle {
        migration,
        source: &names.table,
        target: &names.shadow,
        notes: &names.notes,
        key: key
            .info
            .columns
            .iter()
            .zip(&key.pairs)
            .map(|((o, ty), (_, s))| (o.clone(), ty.clone(), s.clone()))
            .collect(),
        refreshed: written
            .iter()
            .filter(|c| !c.identity_always && !key.pairs.iter().any(|(_, s)| *s == c.name))
            .map(|c| (c.name.clone(), copied_value(c)))
            .collect(),
        inserted: written.iter().map(|c| (c.name.clone(), copied_value(c))).collect(),
        overriding: overriding(written),
    }
}

/// Keys after the backfill's upper bound need no probe of the notes; the
/// function saying so is re-created when the backfill begins. After a copy
/// phase the settle at its end copies keys after the backfill's bound too:
/// verify sets the bound later (`shadow::beyond`).
pub fn beyond_upper(names: &Names, key: &Key, after_copy: bool, settle: &Settle) -> Option<BeyondUpper> {
    let key_types: Vec<String> = key.info.columns.iter().map(|(_, ty)| ty.to_string()).collect();
    beyond_upper_applies(&key_types).then(|| BeyondUpper {
        function: names.beyond_fn.to_string(),
        key_types,
        set_after_copy_sql: after_copy.then(|| settle.greatest_key_sql()),
    })
}

/// The batch function (its create and drop steps) and the backfill's plan:
/// batches read the original and write the shadow.
pub fn batch(
    ctx: &PlanContext,
    names: &Names,
    key: &Key,
    written: &[&ShadowColumn],
    after_copy: bool,
) -> (Step, Step, BackfillPlan) {
    let keyset = KeysetBatch {
        table: &names.table,
        key: &key.info.columns,
        work: BatchWork::CopyInto {
            target: names.shadow.to_string(),
            columns: written.iter().map(|c| c.name.to_string()).collect(),
            values: written.iter().map(|c| copied_value(c)).collect(),
            conflict_key: key.pairs.iter().map(|(_, s)| s.to_string()).collect(),
            overriding: overriding(written),
            settle: (!after_copy).then(|| names.settle_fn.to_string()),
        },
    };
    let (create, drop, mut backfill) = crate::ops::shared::batch_function(
        ctx,
        &keyset,
        key.info,
        format!(
            "copy existing rows of {} into {}",
            names.table.display_raw(),
            names.shadow.display_raw()
        ),
    );
    backfill.table = names.table.to_string();
    // A shadow's table is never partitioned (refused by ops::partitioned):
    // one batch function.
    let mut create = create;
    (create.remove(0), drop, backfill)
}

/// The end of a copy phase, when nobody else writes the shadow (writers note
/// keys until this transaction commits). The key's index comes first (the
/// batches copied each key once), then the noted rows are replaced, using
/// it, before the other indexes are built: a batch may have copied a row as
/// it was before a unique value moved to another row that a later batch
/// copied. Then again, for the notes made during the builds.
pub fn index_builds(shape: &ShadowShape, names: &Names, key: &Key) -> Vec<Step> {
    let settle_alone = Step::unlocked(
        "settle the keys written during the copy: the shadow's rows become the original's",
        format!("SELECT {}(true, true)", names.settle_fn),
    );
    let shadow = names.shadow.to_string();
    let mut steps = Vec::new();
    let (first, others): (Vec<_>, Vec<_>) = shape.indexes_to_build.iter().partition(|i| i.name == key.index.name);
    for (n, i) in first.into_iter().chain(others).enumerate() {
        if n == 1 {
            steps.push(settle_alone.clone());
        }
        let (what, mode) = if i.constraint {
            ("constraint", LockMode::AccessExclusive)
        } else {
            ("index", LockMode::Share)
        };
        for sql in &i.build {
            steps.push(Step::locked(
                format!(
                    "build {what} {} of the shadow (no writer uses the shadow yet)",
                    i.name.raw()
                ),
                sql.clone(),
                &shadow,
                mode,
            ));
        }
    }
    steps.push(settle_alone);
    steps
}
