//! What a migration will do, phase by phase: ordered steps with their SQL text
//! and the lock each one takes. Plans are pure data: built by `ops`, shown by
//! `zdm.plan()`, stored in `zdm.migrations.plan`, and run by `executor`.

use serde::{Deserialize, Serialize};
use std::fmt;

/// PostgreSQL's table lock modes, weakest first (the order matters: see [`LockMode::strongest`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LockMode {
    AccessShare,
    RowShare,
    RowExclusive,
    ShareUpdateExclusive,
    Share,
    ShareRowExclusive,
    Exclusive,
    AccessExclusive,
}

impl LockMode {
    /// As written in `LOCK TABLE ... IN <mode> MODE`.
    pub fn as_sql(self) -> &'static str {
        match self {
            LockMode::AccessShare => "ACCESS SHARE",
            LockMode::RowShare => "ROW SHARE",
            LockMode::RowExclusive => "ROW EXCLUSIVE",
            LockMode::ShareUpdateExclusive => "SHARE UPDATE EXCLUSIVE",
            LockMode::Share => "SHARE",
            LockMode::ShareRowExclusive => "SHARE ROW EXCLUSIVE",
            LockMode::Exclusive => "EXCLUSIVE",
            LockMode::AccessExclusive => "ACCESS EXCLUSIVE",
        }
    }

    /// As `pg_locks.mode` spells it (`AccessExclusiveLock`).
    pub fn pg_locks_name(self) -> &'static str {
        match self {
            LockMode::AccessShare => "AccessShareLock",
            LockMode::RowShare => "RowShareLock",
            LockMode::RowExclusive => "RowExclusiveLock",
            LockMode::ShareUpdateExclusive => "ShareUpdateExclusiveLock",
            LockMode::Share => "ShareLock",
            LockMode::ShareRowExclusive => "ShareRowExclusiveLock",
            LockMode::Exclusive => "ExclusiveLock",
            LockMode::AccessExclusive => "AccessExclusiveLock",
        }
    }

    /// The modes this one conflicts with (PostgreSQL's table-level conflict matrix).
    pub fn conflicts(self) -> &'static [LockMode] {
        use LockMode::*;
        match self {
            AccessShare => &[AccessExclusive],
            RowShare => &[Exclusive, AccessExclusive],
            RowExclusive => &[Share, ShareRowExclusive, Exclusive, AccessExclusive],
            ShareUpdateExclusive => &[
                ShareUpdateExclusive,
                Share,
                ShareRowExclusive,
                Exclusive,
                AccessExclusive,
            ],
            Share => &[
                RowExclusive,
                ShareUpdateExclusive,
                ShareRowExclusive,
                Exclusive,
                AccessExclusive,
            ],
            ShareRowExclusive => &[
                RowExclusive,
                ShareUpdateExclusive,
                Share,
                ShareRowExclusive,
                Exclusive,
                AccessExclusive,
            ],
            Exclusive => &[
                RowShare,
                RowExclusive,
                ShareUpdateExclusive,
                Share,
                ShareRowExclusive,
                Exclusive,
                AccessExclusive,
            ],
            AccessExclusive => &[
                AccessShare,
                RowShare,
                RowExclusive,
                ShareUpdateExclusive,
                Share,
                ShareRowExclusive,
                Exclusive,
                AccessExclusive,
            ],
        }
    }

    /// What a lock in this mode stops, in words, for plans read by people.
    pub fn blocks(self) -> &'static str {
        match self {
            LockMode::AccessExclusive => "blocks reads and writes",
            LockMode::Exclusive | LockMode::ShareRowExclusive | LockMode::Share => "blocks writes, not reads",
            LockMode::ShareUpdateExclusive => "blocks other DDL and VACUUM, not reads or writes",
            _ => "blocks only table-rewriting DDL",
        }
    }
}

impl fmt::Display for LockMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_sql())
    }
}

/// A lock a step takes on one relation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockTarget {
    /// Schema-qualified, quoted relation name.
    pub relation: String,
    pub mode: LockMode,
}

/// One SQL statement of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub description: String,
    pub sql: String,
    /// The lock the statement takes, when it takes one on a table.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lock: Option<LockTarget>,
    /// Statements that cannot run inside a transaction block or a function
    /// (CREATE INDEX CONCURRENTLY): run by `zdm.pending_statements()` / pg_cron.
    #[serde(default)]
    pub top_level: bool,
    /// The index a top-level step builds (schema-qualified, quoted): done once it is valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub builds_index: Option<String>,
    /// The index a top-level step of `complete` drops (`DROP INDEX
    /// CONCURRENTLY`, schema-qualified, quoted): done once it is gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drops_index: Option<String>,
    /// Changes another role's object (a referencing table's foreign key): run
    /// with the caller's rights, not the table owner's (see `privilege`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub caller_rights: bool,
    /// A top-level step on one partition (its lock's relation) of this
    /// partitioned table: skipped once the partition has left the table's
    /// tree (detached or dropped during the migration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_of: Option<String>,
    /// `ALTER INDEX parent ATTACH PARTITION index`: (parent index, index),
    /// schema-qualified and quoted; done once the index hangs from the parent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attaches_index: Option<(String, String)>,
}

impl Step {
    pub fn locked(description: impl Into<String>, sql: String, relation: &str, mode: LockMode) -> Step {
        Step {
            description: description.into(),
            sql,
            lock: Some(LockTarget {
                relation: relation.to_string(),
                mode,
            }),
            top_level: false,
            builds_index: None,
            drops_index: None,
            caller_rights: false,
            partition_of: None,
            attaches_index: None,
        }
    }

    /// A statement that takes no table lock of its own (CREATE FUNCTION, COMMENT...).
    pub fn unlocked(description: impl Into<String>, sql: String) -> Step {
        Step {
            description: description.into(),
            sql,
            lock: None,
            top_level: false,
            builds_index: None,
            drops_index: None,
            caller_rights: false,
            partition_of: None,
            attaches_index: None,
        }
    }

    /// The same step, run with the caller's rights (see `caller_rights`).
    pub fn with_caller_rights(mut self) -> Step {
        self.caller_rights = true;
        self
    }

    /// `CREATE INDEX CONCURRENTLY`: cannot run in a function or a transaction
    /// block; run by the user (`zdm.pending_statements()` with psql's \gexec).
    pub fn top_level_index(description: impl Into<String>, sql: String, relation: &str, index: &str) -> Step {
        Step {
            description: description.into(),
            sql,
            lock: Some(LockTarget {
                relation: relation.to_string(),
                mode: LockMode::ShareUpdateExclusive,
            }),
            top_level: true,
            builds_index: Some(index.to_string()),
            drops_index: None,
            caller_rights: false,
            partition_of: None,
            attaches_index: None,
        }
    }

    /// `DROP INDEX CONCURRENTLY`: top level too, run by the user when the
    /// migration is about to complete (see `toplevel::pending_with_drops`).
    pub fn top_level_drop(description: impl Into<String>, sql: String, relation: &str, index: &str) -> Step {
        Step {
            drops_index: Some(index.to_string()),
            builds_index: None,
            ..Step::top_level_index(description, sql, relation, index)
        }
    }

    /// The same step, for one partition of `table` only (see `partition_of`).
    pub fn on_partition_of(mut self, table: &str) -> Step {
        self.partition_of = Some(table.to_string());
        self
    }
}

/// The batched work that brings existing rows up to date.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackfillPlan {
    pub description: String,
    /// Schema-qualified, quoted table.
    pub table: String,
    /// Key columns the batches walk, in index order (raw names).
    pub key_columns: Vec<String>,
    /// Returns the key of the last existing row, as text[]; NULL when the table is empty.
    pub upper_bound_sql: String,
    /// The generated batch function (created by start): `(upper_bound text[],
    /// batch_size int, last_key text[]) RETURNS TABLE (rows_scanned, rows_changed, last_key)`.
    pub function: String,
    /// The statements of a batch after the first (as in the function), for
    /// EXPLAIN: its end, its work, the rows it covered. $1 upper bound, $2
    /// batch size, $3 last key done, $4 the batch's end (all text[] but $2).
    #[serde(default)]
    pub batch_statements: Vec<String>,
    /// A shadow's "key beyond the backfill" function, re-created once the
    /// upper bound is known (see `shadow::beyond::sql::beyond_upper_function`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub beyond_upper: Option<BeyondUpper>,
    /// A partitioned table's leaf partitions, walked one after the other,
    /// each with its own batch function (the fields above then describe the
    /// first). Empty for a plain table.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partitions: Vec<PartitionBackfill>,
}

/// The backfill of one leaf partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionBackfill {
    /// Schema-qualified, quoted.
    pub table: String,
    pub upper_bound_sql: String,
    /// Same signature as `BackfillPlan::function`.
    pub function: String,
    /// The plan's checks validated on this partition as soon as its backfill
    /// is done (see `ops::partitioned::validate_per_partition`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub validate: Vec<Step>,
}

/// `function(key...) RETURNS boolean`, over keys of these types (in key order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BeyondUpper {
    pub function: String,
    pub key_types: Vec<String>,
    /// After a copy phase the bound is not set when the backfill begins but
    /// by `zdm.verify` (see `shadow::beyond`), from this query: the greatest
    /// key in the table or the shadow, as text[].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_after_copy_sql: Option<String>,
}

/// Every phase of one migration.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Plan {
    /// Expand: runs in `zdm.start()`, one short transaction.
    pub start: Vec<Step>,
    /// Migrate: existing rows, in committed batches.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backfill: Option<BackfillPlan>,
    /// Runs right after the last batch (VALIDATE CONSTRAINT: no exclusive lock).
    #[serde(default)]
    pub validate: Vec<Step>,
    /// Contract: runs in `zdm.complete()`, one short transaction.
    pub complete: Vec<Step>,
    /// Undo of start, from any phase before complete.
    pub rollback: Vec<Step>,
    /// Shadow-table migrations: what the swap, verify and the clean-up need.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow: Option<ShadowPlan>,
    /// An operation carried out another way than its own (`alter_column_type`
    /// of a key column: through a shadow table), and why; shown by `zdm.plan()`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carried_out_as: Option<CarriedOutAs>,
    /// Columns of other tables that reference a column the migration changes
    /// and are left as they are (an integer foreign key to a key that becomes
    /// bigint), each with how to change it too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub referencing_columns: Vec<ReferencingColumn>,
    /// A partitioned table's partitions when the migration started
    /// (schema-qualified, quoted): the DDL guard tells them from one attached
    /// since.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partitions: Vec<String>,
}

/// The operation a migration became, e.g. `create_shadow_table` with these
/// alterations for an `alter_column_type` of a key column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CarriedOutAs {
    pub kind: String,
    pub alterations: Vec<String>,
    pub reason: String,
}

/// A foreign key column of another table (or of the table itself) that keeps
/// its type while the column it references changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReferencingColumn {
    /// Schema-qualified, quoted.
    pub table: String,
    /// Raw name.
    pub column: String,
    pub column_type: String,
    pub foreign_key: String,
    pub hint: String,
}

/// The names and SQL a shadow migration's swap, verify and complete work with.
/// Quoted names are ready for SQL; `*_relname` are raw, for `RENAME TO`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShadowPlan {
    /// The live table, schema-qualified and quoted (its name never changes).
    pub table: String,
    pub schema: String,
    pub table_relname: String,
    /// The shadow while it is one (before the swap, and again after a swap back).
    pub shadow: String,
    pub shadow_relname: String,
    /// The original table after the swap.
    pub old: String,
    pub old_relname: String,
    /// Trigger of the original that feeds the shadow (dropped by the swap).
    pub forward_trigger: String,
    /// Trigger of the new table that feeds the old one after the swap, and its function.
    pub reverse_trigger: String,
    pub reverse_function: String,
    /// The AFTER TRUNCATE trigger feeding the shadow (dropped at the swap) and
    /// the one created on the new table at the swap, with its function.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncate_triggers: Option<TruncateTriggers>,
    /// The verify queries (see `shadow::verify::sql`): checksums, and the
    /// differing keys when they do not match; and what they compare.
    pub verify_sql: String,
    /// The same comparison without the rows of noted keys (see
    /// `shadow::verify::sql::verify_sums_sql`): verify's fallback after a
    /// mismatch, so that it never settles before comparing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_pending_sql: Option<String>,
    /// The table of noted keys (`zdm_stale_<migration>`), schema-qualified, quoted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    pub verify_diff_sql: String,
    pub compared_columns: Vec<String>,
    /// Shadow columns filled by their default, not compared.
    pub not_compared: Vec<String>,
    /// (original column, shadow column) for every copied column (raw names).
    pub column_pairs: Vec<(String, String)>,
    /// (shadow index, original index) (raw names).
    pub index_names: Vec<(String, String)>,
    /// `ADD CONSTRAINT ... NOT VALID` actions for the original's NOT VALID
    /// checks, run on the shadow by the swap.
    #[serde(default)]
    pub not_valid_checks: Vec<String>,
    /// `zdm.shadow_settle_<migration>`: removes copies of rows deleted while a
    /// batch copied them (see `shadow::settle`); run by verify and the swap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settle_function: Option<String>,
    /// The shadow had no indexes during the copy (built when the backfill
    /// finished): before that, nothing may probe it by key (no settle).
    #[serde(default)]
    pub indexes_after_copy: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TruncateTriggers {
    pub forward: String,
    pub reverse: String,
    pub reverse_function: String,
}

impl Plan {
    /// Append another operation's plan (a migration with several operations).
    /// Rollback runs in reverse order of start, so later operations are undone first.
    pub fn merge(&mut self, other: Plan) -> Result<(), &'static str> {
        // A shadow replaces the whole table: nothing else can share its
        // migration (an alter_column_type of a key column becomes one).
        if !self.start.is_empty() && (self.shadow.is_some() || other.shadow.is_some()) {
            return Err("a shadow table migration (create_shadow_table, or alter_column_type of a key column) has exactly one operation");
        }
        if self.backfill.is_some() && other.backfill.is_some() {
            return Err("two operations of one migration both need a backfill");
        }
        self.start.extend(other.start);
        if other.backfill.is_some() {
            self.backfill = other.backfill;
        }
        if other.shadow.is_some() {
            self.shadow = other.shadow;
        }
        if other.carried_out_as.is_some() {
            self.carried_out_as = other.carried_out_as;
        }
        self.referencing_columns.extend(other.referencing_columns);
        self.validate.extend(other.validate);
        self.complete.extend(other.complete);
        let mut rollback = other.rollback;
        rollback.extend(std::mem::take(&mut self.rollback));
        self.rollback = rollback;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflict_matrix_is_symmetric() {
        use LockMode::*;
        let all = [
            AccessShare,
            RowShare,
            RowExclusive,
            ShareUpdateExclusive,
            Share,
            ShareRowExclusive,
            Exclusive,
            AccessExclusive,
        ];
        for a in all {
            for b in all {
                assert_eq!(a.conflicts().contains(&b), b.conflicts().contains(&a), "{a} vs {b}");
            }
        }
        assert!(!AccessShare.conflicts().contains(&RowExclusive));
        assert!(ShareUpdateExclusive.conflicts().contains(&ShareUpdateExclusive));
    }

    #[test]
    fn modes_order_weakest_first() {
        assert_eq!(
            [
                LockMode::ShareUpdateExclusive,
                LockMode::AccessExclusive,
                LockMode::RowShare
            ]
            .into_iter()
            .max(),
            Some(LockMode::AccessExclusive)
        );
    }

    #[test]
    fn merge_undoes_later_operations_first() {
        let s = |n: &str| Step::unlocked(n, n.to_string());
        let mut a = Plan {
            start: vec![s("a")],
            rollback: vec![s("undo a")],
            ..Default::default()
        };
        let b = Plan {
            start: vec![s("b")],
            rollback: vec![s("undo b")],
            ..Default::default()
        };
        a.merge(b).unwrap();
        assert_eq!(a.start.iter().map(|x| x.sql.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(
            a.rollback.iter().map(|x| x.sql.as_str()).collect::<Vec<_>>(),
            ["undo b", "undo a"]
        );
    }
}
