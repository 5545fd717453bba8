//! `create_shadow_table`: restructure a whole table through a shadow copy.
//!
//! start:    create the shadow (LIKE the original, then the alterations), its
//!           outgoing foreign keys NOT VALID, the batch function, the two row-copy
//!           functions, and the trigger that feeds the shadow from the original;
//! backfill: copy existing rows in keyset batches (`BatchWork::CopyInto`);
//! validate: VALIDATE the shadow's foreign keys;
//!
//! By default (`zdm.shadow_indexes_after_copy`) the shadow loses its indexes
//! at start and the copy is a copy phase, as pg_repack copies into a bare heap:
//! maintaining a btree for each row inserted cost as much as the insert
//! itself (`zdm-bench rebuild`: 1.2 s for 900k rows with the key's index,
//! 0.84 s without, the index build included). During it the trigger only notes
//! the keys written (`Settle::create_note_every_write_function`) and batches
//! are plain inserts; when the batches are done the validate steps build the
//! key's index, settle the noted keys (replace their rows by the original's),
//! build the other indexes under their own names (after the settle: batches copy rows from different
//! snapshots, so a unique value that moved between two rows may be in the
//! shadow twice until then), settle the keys noted meanwhile, and replace the
//! trigger's function by the one that copies each write, all in one
//! transaction. A writer still open then has noted
//! its keys with the old function: its notes are settled by verify and, at
//! the latest, under the swap's lock. A shadow with a foreign key to itself
//! keeps its indexes (the key's index must exist for the constraint).
//! then `zdm.verify()` and `zdm.swap_tables()` (see `shadow::swap`), which
//! also knows how to swap back (rollback) and what complete has left to do;
//! complete: drop the old table and the reverse trigger, give indexes and
//!           identity sequences the original names.
//! The shape of the shadow comes from `probe`, which builds it in a rolled-back
//! subtransaction; everything after that is pure and unit-tested.

use super::{require_key, Operation, PlanContext};
use crate::catalog::TableInfo;
use crate::error::{ZdmError, ZdmResult};
use crate::ident::{Ident, QualifiedName};
use crate::plan::BeyondUpper;
use crate::plan::{LockMode, Plan, ShadowPlan, Step, TruncateTriggers};
use crate::shadow::probe::ProbeRequest;
use crate::shadow::shape::{ShadowColumn, ShadowShape, Source};
use crate::spec::ShadowTableSpec;
use crate::sqlgen::backfill::{BatchWork, KeysetBatch};
use crate::sqlgen::shadow_settle::{beyond_upper_applies, beyond_upper_function, Settle, UpperBound};
use crate::sqlgen::shadow_sync::{
    create_trigger, create_truncate_trigger, truncate_function, verify_diff_sql, verify_sums_sql, Compared, NoteSql,
    RowCopy,
};
use pgrx::pg_sys::errcodes::PgSqlErrorCode;
use std::collections::BTreeMap;

pub type Probe = fn(&ProbeRequest) -> ZdmResult<ShadowShape>;

pub struct ShadowTable {
    table: TableInfo,
    alterations: Vec<String>,
    column_map: BTreeMap<String, String>,
    probe: Probe,
}

impl ShadowTable {
    /// Its names are quoted by the `PlanContext` it is planned with.
    pub fn new(table: &TableInfo, spec: &ShadowTableSpec, probe: Probe) -> ZdmResult<Self> {
        require_key(table)?;
        Ok(ShadowTable {
            table: table.clone(),
            alterations: spec.alterations.clone(),
            column_map: spec.column_map.clone().unwrap_or_default(),
            probe,
        })
    }
}

impl Operation for ShadowTable {
    fn claimed_columns(&self) -> Vec<String> {
        vec![crate::spec::WHOLE_TABLE.to_string()]
    }

    fn default_name(&self) -> String {
        super::fit_name(&format!("{}_restructure", self.table.name.name.raw()))
    }

    fn plan(&self, ctx: &PlanContext) -> ZdmResult<Plan> {
        let schema = &self.table.name.schema;
        let shadow_name = QualifiedName::new(schema.clone(), ctx.object_name("shadow"));
        let old_name = QualifiedName::new(schema.clone(), ctx.object_name("old"));
        let shape = (self.probe)(&ProbeRequest {
            original: &self.table,
            shadow: &shadow_name,
            alterations: &self.alterations,
            column_map: &self.column_map,
        })?;
        plan_from_shape(ctx, &shape, &old_name, crate::guc::SHADOW_INDEXES_AFTER_COPY.get())
    }
}

fn refusal(code: PgSqlErrorCode, message: String, hint: &str) -> ZdmError {
    ZdmError::new(code, message).hint(hint.to_string())
}

/// Everything after the probe: pure. `indexes_after_copy`: copy the rows
/// into the shadow without its indexes and build them after the copy (see
/// the module's documentation); not done for a shadow with a foreign key to
/// itself, which needs the referenced key's index to exist.
pub fn plan_from_shape(
    ctx: &PlanContext,
    shape: &ShadowShape,
    old_name: &QualifiedName,
    indexes_after_copy: bool,
) -> ZdmResult<Plan> {
    let orig = &shape.original;
    let table = &orig.name;
    let shadow = shape.shadow_name();
    let tname = table.display_raw();
    let key = require_key(orig)?;

    // Rows are matched by the original's key, copied as is into the shadow,
    // where a unique index must make it the ON CONFLICT arbiter.
    let mut key_pairs = Vec::new();
    for (k, _) in &key.columns {
        let Some(s) = shape.copied_into(k.raw()) else {
            return Err(refusal(
                PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!("the shadow of {tname} does not keep key column {} as a copy", k.raw()),
                "The shadow is kept in sync row by row through the table's key: keep its columns (renaming or widening them is fine) and leave them out of column_map.",
            ));
        };
        key_pairs.push((k.clone(), s.name.clone()));
    }
    let shadow_attnums: Vec<i16> = key_pairs
        .iter()
        .filter_map(|(_, s)| shape.shadow.column(s.raw()).map(|c| c.attnum))
        .collect();
    // The shadow's unique index on the key (built first after a copy phase).
    let key_index = shape.shadow.indexes.iter().find(|i| {
        i.unique
            && i.predicate.is_none()
            && i.key_count == shadow_attnums.len()
            && i.elements[..i.key_count]
                .iter()
                .all(|(a, _, _)| *a != 0 && shadow_attnums.contains(a))
    });
    let Some(key_index) = key_index else {
        return Err(refusal(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!(
                "the shadow of {tname} has no unique index on its key ({})",
                key.index_name
            ),
            "Do not drop the primary key (or the unique index pg_zdm walks) in the alterations.",
        ));
    };
    for c in &shape.columns {
        if matches!(c.source, Source::Default) && c.not_null && !c.has_default && !c.generated {
            return Err(refusal(
                PgSqlErrorCode::ERRCODE_NOT_NULL_VIOLATION,
                format!(
                    "column {} of the shadow of {tname} is NOT NULL, has no default, and nothing fills it",
                    c.name.raw()
                ),
                "Give it a default in the alteration (ADD COLUMN ... DEFAULT ...), or an expression in column_map.",
            ));
        }
    }
    for r in &shape.reverse {
        if r.source.is_none() && r.not_null && !r.has_default && !r.generated {
            return Err(refusal(
                PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                format!(
                    "column {} of {tname} is NOT NULL without a default, and the new structure cannot fill it back",
                    r.name.raw()
                ),
                "After the swap the old table is kept current from the new one so that the swap can be undone; \
                 this column would have no value. Make it nullable or give it a default first (both catalog-only), \
                 or keep it in the shadow.",
            ));
        }
    }

    let after_copy = indexes_after_copy
        && !shape.indexes_to_build.is_empty()
        && !shape.foreign_keys.iter().any(|fk| fk.referenced == shadow.to_string());
    let forward_fn = ctx.function_name("shadow_sync");
    let settle_fn = ctx.function_name("shadow_settle");
    let notes = QualifiedName::new(table.schema.clone(), ctx.object_name("stale"));
    let reverse_fn = ctx.function_name("shadow_reverse");
    let forward_trigger = ctx.object_name("sync");
    let reverse_trigger = ctx.object_name("reverse");
    let truncate_fn = ctx.function_name("shadow_truncate");
    let reverse_truncate_fn = ctx.function_name("shadow_reverse_truncate");
    let truncate_trigger = ctx.object_name("truncate");
    let reverse_truncate_trigger = ctx.object_name("reverse_truncate");
    let srce = SqlRel::new(table);
    // The shadow columns the copy, the trigger and the settle write.
    let written: Vec<_> = shape
        .columns
        .iter()
        .filter(|c| !c.generated && !matches!(c.source, Source::Default))
        .collect();
    // Each one's value over the original row's bare column names.
    let copied_value = |c: &&ShadowColumn| match &c.source {
        Source::Copy(o) => o.to_string(),
        Source::Map { text, .. } => format!("({text})"),
        Source::Default => unreachable!("filtered"),
    };
    let settle = Settle {
        migration: &ctx.migration,
        source: table,
        target: shadow,
        notes: &notes,
        key: key
            .columns
            .iter()
            .zip(&key_pairs)
            .map(|((o, ty), (_, s))| (o.clone(), ty.clone(), s.clone()))
            .collect(),
        refreshed: written
            .iter()
            .filter(|c| !c.identity_always && !key_pairs.iter().any(|(_, s)| *s == c.name))
            .map(|c| (c.name.clone(), copied_value(c)))
            .collect(),
        inserted: written.iter().map(|c| (c.name.clone(), copied_value(c))).collect(),
        overriding: written.iter().any(|c| c.identity_always),
    };
    // Keys after the backfill's upper bound need no probe of the notes; the
    // function saying so is re-created when the backfill begins.
    let source_key_types: Vec<String> = key.columns.iter().map(|(_, ty)| ty.to_string()).collect();
    // After a copy phase the settle at its end copies keys after the
    // backfill's bound too: verify sets the bound later (`shadow::beyond`).
    let beyond_upper = beyond_upper_applies(&source_key_types).then(|| BeyondUpper {
        function: ctx.function_name("shadow_beyond").to_string(),
        key_types: source_key_types,
        set_after_copy_sql: after_copy.then(|| settle.greatest_key_sql()),
    });
    let note_sql = |every_delete| NoteSql {
        note_old: settle.note_key("OLD"),
        note_new: settle.note_key("NEW"),
        new_is_noted: settle.key_is_noted("NEW"),
        new_is_beyond: beyond_upper.as_ref().map(|b| {
            let args: Vec<String> = key.columns.iter().map(|(c, _)| format!("NEW.{c}")).collect();
            format!("{}({})", b.function, args.join(", "))
        }),
        every_delete,
    };

    // The sync functions run under a fixed search_path only when they must:
    // with user expressions in the values, or a key type whose equality is
    // not PostgreSQL's own (type names come schema-qualified, but for the
    // keyword-spelled ones such as `integer`: see `introspect::type_name`).
    let builtin = |t: &str| t.starts_with("pg_catalog.") || (!t.contains('.') && !t.contains('"'));
    let keys_builtin = key.columns.iter().all(|(_, ty)| builtin(&ty.to_string()))
        && key_pairs.iter().all(|(_, s)| {
            shape
                .shadow
                .column(s.raw())
                .is_some_and(|c| builtin(&c.type_sql.to_string()))
        });
    let plain_copies = written.iter().all(|c| matches!(c.source, Source::Copy(_)));

    // Forward: the original feeds the shadow.
    let forward = RowCopy {
        migration: &ctx.migration,
        source: table,
        target: shadow,
        key: key_pairs.clone(),
        values: written
            .iter()
            .map(|c| {
                let v = match &c.source {
                    Source::Copy(o) => format!("NEW.{o}"),
                    Source::Map { over_new, .. } => over_new.clone(),
                    Source::Default => unreachable!("filtered"),
                };
                (c.name.clone(), v)
            })
            .collect(),
        not_updatable: written
            .iter()
            .filter(|c| c.identity_always)
            .map(|c| c.name.clone())
            .collect(),
        overriding: written.iter().any(|c| c.identity_always),
        purpose: "shadow",
        set_search_path: !(keys_builtin && plain_copies),
        notes: Some(note_sql(true)),
    };
    // Reverse: after the swap, the new table (with the original's name) feeds the old one.
    let back: Vec<_> = shape
        .reverse
        .iter()
        .filter(|r| !r.generated && r.source.is_some())
        .collect();
    let reverse = RowCopy {
        migration: &ctx.migration,
        source: table,
        target: old_name,
        key: key_pairs.iter().map(|(o, s)| (s.clone(), o.clone())).collect(),
        values: back
            .iter()
            .map(|r| (r.name.clone(), format!("NEW.{}", r.source.as_ref().expect("filtered"))))
            .collect(),
        not_updatable: back
            .iter()
            .filter(|r| r.identity_always)
            .map(|r| r.name.clone())
            .collect(),
        overriding: back.iter().any(|r| r.identity_always),
        purpose: "reverse",
        set_search_path: !keys_builtin,
        // No backfill races the reverse direction: the old table has every row.
        notes: None,
    };

    let keyset = KeysetBatch {
        table,
        key: &key.columns,
        work: BatchWork::CopyInto {
            target: shadow.to_string(),
            columns: written.iter().map(|c| c.name.to_string()).collect(),
            values: written.iter().map(copied_value).collect(),
            conflict_key: key_pairs.iter().map(|(_, s)| s.to_string()).collect(),
            overriding: written.iter().any(|c| c.identity_always),
            settle: (!after_copy).then(|| settle_fn.to_string()),
        },
    };
    let (create_batch, drop_batch, mut backfill) = super::shared::batch_function(
        ctx,
        &keyset,
        key,
        format!("copy existing rows of {tname} into {}", shadow.display_raw()),
    );
    // The batch reads the original and writes the shadow.
    backfill.table = table.to_string();
    backfill.beyond_upper = beyond_upper.clone();

    let mut start = Vec::new();
    for sql in &shape.create {
        start.push(srce.step(
            "create the shadow table like the original",
            sql.clone(),
            LockMode::AccessShare,
        ));
    }
    for a in &shape.alterations {
        start.push(Step::unlocked(
            format!("alter the shadow: {a}"),
            format!("ALTER TABLE {shadow} {a}"),
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
    let forward_sql = forward.create_function(&forward_fn);
    // Once the last batch has committed no batch can copy a deleted row any
    // more: from then on only deletes that find no copy are noted.
    let forward_after_backfill = RowCopy {
        notes: Some(note_sql(false)),
        ..forward
    }
    .create_or_replace_function(&forward_fn);
    let mut validate = Vec::new();
    // At the end of a copy phase nobody else writes the shadow (writers note
    // keys until this transaction commits). The key's index comes first (the
    // batches copied each key once), then the noted rows are replaced, using
    // it, before the other indexes are built: a batch may have copied a row
    // as it was before a unique value moved to another row that a later batch
    // copied. Then again, for the notes made during the builds.
    let settle_alone = Step::unlocked(
        "settle the keys written during the copy: the shadow's rows become the original's",
        format!("SELECT {settle_fn}(true, true)"),
    );
    if after_copy {
        let (first, others): (Vec<_>, Vec<_>) = shape.indexes_to_build.iter().partition(|i| i.name == key_index.name);
        for (n, i) in first.into_iter().chain(others).enumerate() {
            if n == 1 {
                validate.push(settle_alone.clone());
            }
            let (what, mode) = if i.constraint {
                ("constraint", LockMode::AccessExclusive)
            } else {
                ("index", LockMode::Share)
            };
            for sql in &i.build {
                validate.push(Step::locked(
                    format!(
                        "build {what} {} of the shadow (no writer uses the shadow yet)",
                        i.name.raw()
                    ),
                    sql.clone(),
                    &shadow.to_string(),
                    mode,
                ));
            }
        }
        validate.push(settle_alone);
    }
    validate.push(Step::unlocked(
        if after_copy {
            "the sync trigger copies every write into the shadow (it only noted keys during the copy)"
        } else {
            "the sync trigger notes only the deletes that find no copy (no batch copies rows any more)"
        },
        forward_after_backfill,
    ));
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
        start.push(if fk.referenced == shadow.to_string() {
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
            &shadow.to_string(),
            LockMode::ShareUpdateExclusive,
        ));
    }
    start.push(Step::unlocked(
        "table of the keys whose shadow row may be stale (see the settle function)",
        settle.create_notes_table(),
    ));
    start.push(Step::unlocked(
        "index of the table of noted keys (probed by the trigger on inserts)",
        settle.index_notes_table(),
    ));
    start.push(Step::unlocked(
        "comment on the table of noted keys",
        settle.comment_notes_table(),
    ));
    start.push(Step::unlocked(
        "function settling the noted keys (shadow rows a batch copied before a delete or an update)",
        settle.create_function(&settle_fn),
    ));
    if let Some(b) = &beyond_upper {
        start.push(Step::unlocked(
            "function telling the keys after the backfill's upper bound (none until it begins)",
            beyond_upper_function(&b.function, &b.key_types, UpperBound::NotYet),
        ));
    }
    start.push(create_batch);
    start.push(if after_copy {
        Step::unlocked(
            "function noting the key of each row change of the original (the shadow has no index to copy it through yet)",
            settle.create_note_every_write_function(&forward_fn),
        )
    } else {
        Step::unlocked(
            "function copying each row change of the original into the shadow",
            forward_sql,
        )
    });
    start.push(Step::unlocked(
        "function copying each row change back into the old table after the swap",
        reverse.create_function(&reverse_fn),
    ));
    start.push(Step::unlocked(
        "function emptying the shadow (and the notes) when the original is truncated",
        truncate_function(&truncate_fn, &ctx.migration, table, &[shadow, &notes], "shadow sync"),
    ));
    start.push(Step::unlocked(
        "function emptying the old table when the new one is truncated after the swap",
        truncate_function(&reverse_truncate_fn, &ctx.migration, table, &[old_name], "reverse sync"),
    ));
    start.push(srce.step(
        "trigger feeding the shadow from the original (waits for writers in flight, then every write is copied)",
        create_trigger(&forward_trigger, table, &forward_fn),
        LockMode::ShareRowExclusive,
    ));
    start.push(srce.step(
        "trigger following a TRUNCATE of the original (TRUNCATE fires no row trigger)",
        create_truncate_trigger(&truncate_trigger, table, &truncate_fn),
        LockMode::ShareRowExclusive,
    ));

    // The generated objects, dropped at either end of the migration.
    let mut drop_generated = vec![
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
    if let Some(b) = &beyond_upper {
        drop_generated.push(Step::unlocked(
            "drop the function telling the keys after the upper bound",
            format!("DROP FUNCTION IF EXISTS {}({})", b.function, b.key_types.join(", ")),
        ));
    }
    let mut complete = vec![
        srce.step(
            "drop the reverse sync trigger",
            format!("DROP TRIGGER IF EXISTS {reverse_trigger} ON {table}"),
            LockMode::AccessExclusive,
        ),
        srce.step(
            "drop the reverse truncate trigger",
            format!("DROP TRIGGER IF EXISTS {reverse_truncate_trigger} ON {table}"),
            LockMode::AccessExclusive,
        ),
        Step::locked(
            "drop the old table",
            format!("DROP TABLE IF EXISTS {old_name}"),
            &old_name.to_string(),
            LockMode::AccessExclusive,
        ),
    ];
    complete.extend(drop_generated.clone());
    for (s, o) in &shape.index_names {
        if s != o {
            complete.push(Step::unlocked(
                format!("give index {} its original name {}", s.raw(), o.raw()),
                format!("ALTER INDEX {}.{s} RENAME TO {o}", table.schema),
            ));
        }
    }
    for (s, o) in &shape.identity_sequences {
        complete.push(Step::unlocked(
            format!("give the identity sequence {s} its original name"),
            format!("ALTER SEQUENCE {s} RENAME TO {o}"),
        ));
    }
    let mut rollback = vec![
        srce.step(
            "drop the trigger feeding the shadow",
            format!("DROP TRIGGER IF EXISTS {forward_trigger} ON {table}"),
            LockMode::AccessExclusive,
        ),
        srce.step(
            "drop the trigger following a TRUNCATE of the original",
            format!("DROP TRIGGER IF EXISTS {truncate_trigger} ON {table}"),
            LockMode::AccessExclusive,
        ),
        Step::locked(
            "drop the shadow table",
            format!("DROP TABLE IF EXISTS {shadow}"),
            &shadow.to_string(),
            LockMode::AccessExclusive,
        ),
    ];
    rollback.extend(drop_generated);

    let compared: Vec<Compared> = written
        .iter()
        .map(|c| Compared {
            column: c.name.clone(),
            source_value: match &c.source {
                Source::Copy(o) => o.to_string(),
                Source::Map { text, .. } => text.clone(),
                Source::Default => unreachable!("filtered"),
            },
            type_sql: c.type_sql.to_string(),
        })
        .collect();
    let key_types: Vec<(Ident, Ident, String)> = key_pairs
        .iter()
        .map(|(o, s)| {
            let ty = shape
                .shadow
                .column(s.raw())
                .map(|c| c.type_sql.to_string())
                .unwrap_or_default();
            (o.clone(), s.clone(), ty)
        })
        .collect();
    let shadow_plan = ShadowPlan {
        table: table.to_string(),
        schema: table.schema.to_string(),
        table_relname: table.name.raw().to_string(),
        shadow: shadow.to_string(),
        shadow_relname: shadow.name.raw().to_string(),
        old: old_name.to_string(),
        old_relname: old_name.name.raw().to_string(),
        forward_trigger: forward_trigger.to_string(),
        reverse_trigger: reverse_trigger.to_string(),
        reverse_function: reverse_fn.to_string(),
        truncate_triggers: Some(TruncateTriggers {
            forward: truncate_trigger.to_string(),
            reverse: reverse_truncate_trigger.to_string(),
            reverse_function: reverse_truncate_fn.to_string(),
        }),
        verify_sql: verify_sums_sql(table, shadow, &key_types, &compared, None),
        verify_pending_sql: Some(verify_sums_sql(table, shadow, &key_types, &compared, Some(&notes))),
        notes: Some(notes.to_string()),
        verify_diff_sql: verify_diff_sql(table, shadow, &key_types, &compared),
        compared_columns: compared.iter().map(|c| c.column.raw().to_string()).collect(),
        not_compared: shape
            .columns
            .iter()
            .filter(|c| matches!(c.source, Source::Default))
            .map(|c| c.name.raw().to_string())
            .collect(),
        column_pairs: shape
            .columns
            .iter()
            .filter_map(|c| match &c.source {
                Source::Copy(o) => Some((o.raw().to_string(), c.name.raw().to_string())),
                _ => None,
            })
            .collect(),
        index_names: shape
            .index_names
            .iter()
            .map(|(s, o)| (s.raw().to_string(), o.raw().to_string()))
            .collect(),
        not_valid_checks: shape.not_valid_checks.clone(),
        settle_function: Some(settle_fn.to_string()),
        indexes_after_copy: after_copy,
    };
    Ok(Plan {
        start,
        backfill: Some(backfill),
        validate,
        complete,
        rollback,
        shadow: Some(shadow_plan),
        ..Default::default()
    })
}

/// Steps that lock one relation, named once.
struct SqlRel(String);

impl SqlRel {
    fn new(name: &QualifiedName) -> Self {
        SqlRel(name.to_string())
    }

    fn step(&self, description: &str, sql: String, mode: LockMode) -> Step {
        Step::locked(description, sql, &self.0, mode)
    }
}
