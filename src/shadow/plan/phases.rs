//! The steps of a shadow plan that create and drop its objects: the shadow
//! itself, its foreign keys, the notes and the settle (start), and what
//! complete and rollback drop or rename.

use super::names::Names;
use crate::ident::{Ident, QualifiedName};
use crate::plan::{BeyondUpper, LockMode, Step};
use crate::shadow::beyond::sql::{beyond_upper_function, UpperBound};
use crate::shadow::settle::Settle;
use crate::shadow::shape::ShadowShape;

/// The shadow like the original, the alterations, and (for a copy phase)
/// its indexes dropped until the rows are copied.
pub fn create_shadow(shape: &ShadowShape, names: &Names, after_copy: bool) -> Vec<Step> {
    let mut start = Vec::new();
    for sql in &shape.create {
        start.push(names.on_table(
            "create the shadow table like the original",
            sql.clone(),
            LockMode::AccessShare,
        ));
    }
    for a in &shape.alterations {
        start.push(Step::unlocked(
            format!("alter the shadow: {a}"),
            format!("ALTER TABLE {} {a}", names.shadow),
        ));
    }
    if after_copy {
        for i in &shape.indexes_to_build {
            start.push(Step::unlocked(
                format!("no index {} on the shadow until the rows are copied", i.name.raw()),
                i.drop.clone(),
            ));
        }
    }
    start
}

/// The shadow's outgoing foreign keys: added NOT VALID by start, validated
/// after the backfill. Returns (start steps, validate steps).
pub fn foreign_keys(shape: &ShadowShape, names: &Names) -> (Vec<Step>, Vec<Step>) {
    let shadow = names.shadow.to_string();
    let (mut start, mut validate) = (Vec::new(), Vec::new());
    for fk in &shape.foreign_keys {
        let cols: Vec<String> = fk.columns.iter().map(|c| c.to_string()).collect();
        let rcols: Vec<String> = fk.referenced_columns.iter().map(|c| c.to_string()).collect();
        let description = format!("foreign key {} on the shadow, NOT VALID", fk.name.raw());
        let sql = format!(
            "ALTER TABLE {shadow} ADD CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {} ({}) {}{} NOT VALID",
            fk.name,
            cols.join(", "),
            fk.referenced,
            rcols.join(", "),
            fk.actions,
            fk.deferrable
        );
        // Locks are taken before the group's statements run: a self-reference
        // points at the shadow, which does not exist yet at that moment.
        start.push(if fk.referenced == shadow {
            Step::unlocked(description, sql)
        } else {
            Step::locked(description, sql, &fk.referenced, LockMode::ShareRowExclusive)
        });
        validate.push(Step::locked(
            format!(
                "validate foreign key {} of the shadow (reads and writes go on)",
                fk.name.raw()
            ),
            format!("ALTER TABLE {shadow} VALIDATE CONSTRAINT {}", fk.name),
            &shadow,
            LockMode::ShareUpdateExclusive,
        ));
    }
    (start, validate)
}

/// The table of noted keys, the settle function, and the function telling
/// the keys after the backfill's bound.
pub fn notes_and_settle(settle: &Settle, names: &Names, beyond: Option<&BeyondUpper>) -> Vec<Step> {
    let mut start = vec![
        Step::unlocked(
            "table of the keys whose shadow row may be stale (see the settle function)",
            settle.create_notes_table(),
        ),
        Step::unlocked(
            "index of the table of noted keys (probed by the trigger on inserts)",
            settle.index_notes_table(),
        ),
        Step::unlocked("comment on the table of noted keys", settle.comment_notes_table()),
        Step::unlocked(
            "function settling the noted keys (shadow rows a batch copied before a delete or an update)",
            settle.create_function(&names.settle_fn),
        ),
    ];
    if let Some(b) = beyond {
        start.push(Step::unlocked(
            "function telling the keys after the backfill's upper bound (none until it begins)",
            beyond_upper_function(&b.function, &b.key_types, UpperBound::NotYet),
        ));
    }
    start
}

/// The generated objects, dropped at either end of the migration.
pub fn drop_generated(names: &Names, drop_batch: Step, beyond: Option<&BeyondUpper>) -> Vec<Step> {
    let Names {
        forward_fn,
        reverse_fn,
        truncate_fn,
        reverse_truncate_fn,
        settle_fn,
        notes,
        ..
    } = names;
    let mut steps = vec![
        Step::unlocked(
            "drop the sync functions",
            format!("DROP FUNCTION IF EXISTS {forward_fn}(), {reverse_fn}(), {truncate_fn}(), {reverse_truncate_fn}()"),
        ),
        drop_batch,
        Step::unlocked(
            "drop the settle function",
            format!("DROP FUNCTION IF EXISTS {settle_fn}(boolean, boolean)"),
        ),
        Step::unlocked("drop the table of noted keys", format!("DROP TABLE IF EXISTS {notes}")),
    ];
    if let Some(b) = beyond {
        steps.push(Step::unlocked(
            "drop the function telling the keys after the upper bound",
            format!("DROP FUNCTION IF EXISTS {}({})", b.function, b.key_types.join(", ")),
        ));
    }
    steps
}

/// Drops, each under ACCESS EXCLUSIVE: two triggers of the table, then a table.
fn drop_triggers_then(
    names: &Names,
    triggers: [(&str, &Ident); 2],
    (what, table): (&str, &QualifiedName),
) -> Vec<Step> {
    let mut steps: Vec<Step> = triggers
        .into_iter()
        .map(|(what, trigger)| {
            names.on_table(
                what,
                format!("DROP TRIGGER IF EXISTS {trigger} ON {}", names.table),
                LockMode::AccessExclusive,
            )
        })
        .collect();
    steps.push(Step::locked(
        what,
        format!("DROP TABLE IF EXISTS {table}"),
        &table.to_string(),
        LockMode::AccessExclusive,
    ));
    steps
}

/// Complete: the reverse triggers and the old table go, then the generated
/// objects; indexes and identity sequences take the original's names.
pub fn complete(shape: &ShadowShape, names: &Names, drop_generated: Vec<Step>) -> Vec<Step> {
    let mut complete = drop_triggers_then(
        names,
        [
            ("drop the reverse sync trigger", &names.reverse_trigger),
            ("drop the reverse truncate trigger", &names.reverse_truncate_trigger),
        ],
        ("drop the old table", &names.old),
    );
    complete.extend(drop_generated);
    for (s, o) in &shape.index_names {
        if s != o {
            complete.push(Step::unlocked(
                format!("give index {} its original name {}", s.raw(), o.raw()),
                format!("ALTER INDEX {}.{s} RENAME TO {o}", names.table.schema),
            ));
        }
    }
    for (s, o) in &shape.identity_sequences {
        complete.push(Step::unlocked(
            format!("give the identity sequence {s} its original name"),
            format!("ALTER SEQUENCE {s} RENAME TO {o}"),
        ));
    }
    complete
}

/// Rollback (before the swap, or after the swap back): the feeding triggers
/// and the shadow go, then the generated objects.
pub fn rollback(names: &Names, drop_generated: Vec<Step>) -> Vec<Step> {
    let mut rollback = drop_triggers_then(
        names,
        [
            ("drop the trigger feeding the shadow", &names.forward_trigger),
            (
                "drop the trigger following a TRUNCATE of the original",
                &names.truncate_trigger,
            ),
        ],
        ("drop the shadow table", &names.shadow),
    );
    rollback.extend(drop_generated);
    rollback
}
