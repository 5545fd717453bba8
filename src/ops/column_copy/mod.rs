//! The expand/migrate/contract skeleton shared by rename_column and
//! alter_column_type: a second column beside the old one, kept consistent both
//! ways by a sync trigger while both application versions run, filled for
//! existing rows by the backfill, and swapped in by complete.
//!
//! - start: add the new column (no default yet: "not given" must read as NULL
//!   to the trigger), a `CHECK (new IS NOT NULL) NOT VALID` when the old column
//!   is NOT NULL, the sync trigger and the batch function.
//! - backfill: `new = up(old)` for rows whose new column is still NULL, in
//!   keyset batches.
//! - validate: `VALIDATE CONSTRAINT` of the NOT NULL check (no exclusive lock).
//! - complete: drop the trigger and the old column; the new column takes the
//!   old one's name (type change), default, NOT NULL (instant: the validated
//!   check proves it), owned sequence and comment.
//! - rollback: drop the trigger and the new column; the old one was never touched.

mod carried;

use super::carry::CarryOver;
use super::shared::{batch_function, not_null_steps};
use super::PlanContext;
use crate::catalog::{ColumnInfo, KeyInfo};
use crate::error::ZdmResult;
use crate::ident::{Ident, QualifiedName, SqlFragment};
use crate::plan::{LockMode, Plan, Step};
use crate::sqlgen::backfill::{BatchWork, KeysetBatch};
use crate::sqlgen::column_sync::ColumnSync;

pub struct ColumnCopy {
    pub table: QualifiedName,
    pub old: ColumnInfo,
    /// The second column during the migration.
    pub new_name: Ident,
    pub new_type: SqlFragment,
    /// New value from the row: `(text over bare columns, text over NEW)`; None copies.
    pub up: Option<(String, String)>,
    /// Old value from the row, over NEW (only the trigger needs it); None copies.
    pub down: Option<String>,
    /// After complete the new column is renamed to the old one's name.
    pub takes_old_name: bool,
    /// Indexes and constraints moved to the new column.
    pub carry: CarryOver,
    pub key: KeyInfo,
    /// Default for the new column at complete (the old one's, cast if needed).
    pub final_default: Option<SqlFragment>,
    /// A partitioned table's tree: carried indexes are built partition by partition.
    pub partitions: Option<crate::catalog::PartitionTree>,
}

/// A UNIQUE or PRIMARY KEY constraint comes back from its index with ADD
/// CONSTRAINT … USING INDEX, which PostgreSQL 15 has not for partitioned tables.
fn refuse_partitioned_constraint_index(table: &QualifiedName, ix: &super::carry::CarriedIndex) -> ZdmResult<()> {
    match &ix.old.constraint {
        None => Ok(()),
        Some(c) => Err(crate::error::ZdmError::not_supported(format!(
            "constraint \"{}\" of partitioned relation \"{}\" cannot be carried to the new column: PostgreSQL 15 has no ADD CONSTRAINT ... USING INDEX for partitioned tables",
            c.raw(),
            table.display_raw()
        ))
        .hint("Drop the constraint around the migration, or change the column with plain DDL.")),
    }
}

impl ColumnCopy {
    pub fn plan(&self, ctx: &PlanContext, what: &str) -> ZdmResult<Plan> {
        let t = self.table.to_string();
        let (old, new) = (&self.old.name, &self.new_name);
        let function = ctx.function_name("sync");
        let trigger = ctx.object_name("sync");
        let insert_trigger = ctx.object_name("sync_ins");
        let aex = LockMode::AccessExclusive;
        let final_name = if self.takes_old_name { old } else { new };
        let not_null = self
            .old
            .not_null
            .then(|| not_null_steps(ctx, &t, new, final_name, "new rows are checked"));
        let partition_oids: Vec<u32> = self
            .partitions
            .iter()
            .flat_map(|t| t.members.iter().map(|p| p.oid))
            .collect();
        let sync = ColumnSync {
            migration: &ctx.migration,
            table: &self.table,
            function: &function,
            trigger: &trigger,
            insert_trigger: &insert_trigger,
            old,
            new,
            up: self.up.as_ref().map(|(_, n)| n.as_str()),
            down: self.down.as_deref(),
            partitions: &partition_oids,
        };
        // Collation carries over only when the type stays the same.
        let collation = if self.new_type == self.old.type_sql {
            self.old
                .collation_sql
                .as_ref()
                .map(|c| format!(" {c}"))
                .unwrap_or_default()
        } else {
            String::new()
        };

        let mut start = vec![Step::locked(
            format!("add column {} ({}) beside {}", new.raw(), self.new_type, old.raw()),
            format!("ALTER TABLE {t} ADD COLUMN {new} {}{collation}", self.new_type),
            &t,
            aex,
        )];
        if let Some(nn) = &not_null {
            start.push(nn.start.clone());
        }
        start.push(Step::unlocked("sync trigger function", sync.create_function()));
        for sql in sync.create_triggers() {
            start.push(Step::locked(
                format!("sync trigger between {} and {}", old.raw(), new.raw()),
                sql,
                &t,
                LockMode::ShareRowExclusive,
            ));
        }
        let drop_sync: Vec<Step> = sync
            .drop_triggers()
            .into_iter()
            .map(|sql| Step::locked("drop a sync trigger", sql, &t, aex))
            .chain(std::iter::once(Step::unlocked(
                "drop the sync trigger function",
                sync.drop_function(),
            )))
            .collect();

        let up_bare = self
            .up
            .as_ref()
            .map(|(b, _)| b.clone())
            .unwrap_or_else(|| old.to_string());
        let keyset = KeysetBatch {
            table: &self.table,
            key: &self.key.columns,
            work: BatchWork::Update {
                assignments: vec![format!("{new} = {up_bare}")],
                // Only rows no writer has touched since start: their new column is
                // still NULL. A row the trigger already filled is never recomputed,
                // so a value the new application wrote (which the down conversion
                // may have rounded into the old column) is never overwritten.
                needs_work: format!("{new} IS NULL AND ({up_bare}) IS NOT NULL"),
            },
        };
        let (create_batch_function, drop_batch_function, backfill) =
            batch_function(ctx, &keyset, &self.key, format!("{what} for existing rows"));
        start.extend(create_batch_function);

        // Indexes, checks and foreign keys of the old column, on the new one.
        let carried = self.carried_steps(ctx, &t, new)?;
        start.splice(0..0, carried.lock_first);
        start.extend(carried.start);
        let (validate_carried, rename_carried, partition_index_drops) =
            (carried.validate, carried.complete, carried.rollback);

        let mut validate = validate_carried;
        if let Some(nn) = &not_null {
            validate.push(nn.validate.clone());
        }

        let mut complete = drop_sync.clone();
        complete.push(drop_batch_function.clone());
        if let Some(seq) = &self.old.owned_sequence {
            complete.push(Step::unlocked(
                format!("sequence {seq} now belongs to {}", new.raw()),
                format!("ALTER SEQUENCE {seq} OWNED BY {t}.{new}"),
            ));
        }
        complete.push(Step::locked(
            format!("drop the old column {}", old.raw()),
            format!("ALTER TABLE {t} DROP COLUMN {old}"),
            &t,
            aex,
        ));
        complete.extend(rename_carried);
        if self.takes_old_name {
            complete.push(Step::locked(
                format!("{} takes the name {}", new.raw(), old.raw()),
                format!("ALTER TABLE {t} RENAME COLUMN {new} TO {old}"),
                &t,
                aex,
            ));
        }
        if let Some(default) = &self.final_default {
            complete.push(Step::locked(
                format!("default of {}", final_name.raw()),
                format!("ALTER TABLE {t} ALTER COLUMN {final_name} SET DEFAULT {default}"),
                &t,
                aex,
            ));
        }
        if let Some(nn) = not_null {
            complete.extend(nn.complete);
        }
        if let Some(comment) = &self.old.comment {
            complete.push(Step::unlocked(
                format!("comment of {}", final_name.raw()),
                format!("COMMENT ON COLUMN {t}.{final_name} IS {comment}"),
            ));
        }

        let mut rollback = drop_sync;
        rollback.extend(partition_index_drops);
        rollback.extend([
            drop_batch_function,
            Step::locked(
                format!("drop the new column {}", new.raw()),
                format!("ALTER TABLE {t} DROP COLUMN IF EXISTS {new}"),
                &t,
                aex,
            ),
        ]);

        Ok(Plan {
            start,
            backfill: Some(backfill),
            validate,
            complete,
            rollback,
            shadow: None,
            ..Default::default()
        })
    }
}
