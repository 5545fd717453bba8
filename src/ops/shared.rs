//! Plan pieces several operations share, so that each is written once:
//! NOT NULL through a validated check, the fill trigger, the backfill's
//! batch function, and the default name of a type change (whichever way it
//! goes: `alter_column_type` or, for a key column, `key_type`).

use super::PlanContext;
use crate::catalog::{ColumnInfo, KeyInfo};
use crate::ident::{Ident, QualifiedName, SqlFragment};
use crate::plan::{BackfillPlan, LockMode, PartitionBackfill, Step};
use crate::sqlgen::backfill::{BatchWork, KeysetBatch};
use crate::sqlgen::fill_trigger::{FillOn, FillTrigger};

/// NOT NULL the way that never scans under an exclusive lock:
/// `CHECK (c IS NOT NULL) NOT VALID` at start, `VALIDATE` (SHARE UPDATE
/// EXCLUSIVE) before complete, then `SET NOT NULL` (instant: the validated
/// check proves it) and the check dropped.
pub struct NotNullSteps {
    pub start: Step,
    pub validate: Step,
    pub complete: Vec<Step>,
    pub rollback: Step,
}

/// `check_on` is the column the check is written on (during the migration);
/// `final_column` the one that gets NOT NULL at complete (they differ when a
/// type change renames the new column first).
pub fn not_null_steps(
    ctx: &PlanContext,
    table: &str,
    check_on: &Ident,
    final_column: &Ident,
    why: &str,
) -> NotNullSteps {
    let check = ctx.object_name("nn");
    let aex = LockMode::AccessExclusive;
    NotNullSteps {
        start: Step::locked(
            format!("NOT NULL on {} as a check, not validated yet ({why})", check_on.raw()),
            format!("ALTER TABLE {table} ADD CONSTRAINT {check} CHECK ({check_on} IS NOT NULL) NOT VALID"),
            table,
            aex,
        ),
        validate: Step::locked(
            format!(
                "validate the NOT NULL check of {} (reads and writes go on)",
                check_on.raw()
            ),
            format!("ALTER TABLE {table} VALIDATE CONSTRAINT {check}"),
            table,
            LockMode::ShareUpdateExclusive,
        ),
        complete: vec![
            Step::locked(
                format!(
                    "{} NOT NULL (instant: the validated check proves it)",
                    final_column.raw()
                ),
                format!("ALTER TABLE {table} ALTER COLUMN {final_column} SET NOT NULL"),
                table,
                aex,
            ),
            Step::locked(
                "drop the now redundant check",
                format!("ALTER TABLE {table} DROP CONSTRAINT {check}"),
                table,
                aex,
            ),
        ],
        rollback: Step::locked(
            "drop the check",
            format!("ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {check}"),
            table,
            aex,
        ),
    }
}

/// The fill trigger (see `sqlgen::fill_trigger`): steps to create it, and to drop it.
pub fn fill_trigger_steps(
    ctx: &PlanContext,
    table: &QualifiedName,
    column: &Ident,
    value_over_new: &str,
    why: &str,
    on: FillOn,
    partitions: &[u32],
) -> (Vec<Step>, Vec<Step>) {
    let t = table.to_string();
    let function = ctx.function_name("fill");
    let trigger = ctx.object_name("fill");
    let ft = FillTrigger {
        migration: &ctx.migration,
        table,
        function: &function,
        trigger: &trigger,
        column,
        value_over_new,
        why,
        on,
        partitions,
    };
    (
        vec![
            Step::unlocked("fill trigger function", ft.create_function()),
            Step::locked("fill trigger", ft.create_trigger(), &t, LockMode::ShareRowExclusive),
        ],
        vec![
            Step::locked(
                "drop the fill trigger",
                ft.trigger().drop_trigger(),
                &t,
                LockMode::AccessExclusive,
            ),
            Step::unlocked("drop the fill trigger function", ft.trigger().drop_function()),
        ],
    )
}

/// The migration's generated batch function: the steps creating it, the step
/// dropping it, and the backfill plan that calls it. A partitioned table's
/// (`key.partitions`) has one per leaf partition, walked one after the other.
pub fn batch_function(
    ctx: &PlanContext,
    keyset: &KeysetBatch,
    key: &KeyInfo,
    description: String,
) -> (Vec<Step>, Step, BackfillPlan) {
    let function = ctx.function_name("backfill");
    let signature = "(text[], integer, text[])";
    let mut plan = BackfillPlan {
        description: description.clone(),
        table: keyset.table.to_string(),
        key_columns: key.columns.iter().map(|(c, _)| c.raw().to_string()).collect(),
        upper_bound_sql: keyset.upper_bound_sql(),
        function: function.to_string(),
        batch_statements: keyset.explain_statements(),
        beyond_upper: None,
        partitions: Vec::new(),
    };
    if key.partitions.is_empty() {
        let create = Step::unlocked(
            "backfill batch function",
            keyset.create_batch_function(&function, &ctx.migration, &description),
        );
        let drop = Step::unlocked(
            "drop the backfill batch function",
            format!("DROP FUNCTION IF EXISTS {function}{signature}"),
        );
        return (vec![create], drop, plan);
    }
    let mut creates = Vec::new();
    for (i, leaf) in key.partitions.iter().enumerate() {
        let leaf_batch = KeysetBatch {
            table: leaf,
            key: keyset.key,
            work: keyset.work.clone(),
        };
        let function = ctx.function_name(&format!("backfill_p{i}"));
        creates.push(Step::unlocked(
            format!("backfill batch function of partition {}", leaf.display_raw()),
            leaf_batch.create_batch_function(&function, &ctx.migration, &description),
        ));
        plan.partitions.push(PartitionBackfill {
            table: leaf.to_string(),
            upper_bound_sql: leaf_batch.upper_bound_sql(),
            function: function.to_string(),
            validate: Vec::new(),
        });
    }
    // Shown by zdm.plan() as the batches of the first partition; each
    // partition's run the same statements on their own table.
    if let Some(first) = key.partitions.first() {
        let first_batch = KeysetBatch {
            table: first,
            key: keyset.key,
            work: keyset.work.clone(),
        };
        plan.batch_statements = first_batch.explain_statements();
    }
    let functions: Vec<String> = plan
        .partitions
        .iter()
        .map(|p| format!("{}{signature}", p.function))
        .collect();
    let drop = Step::unlocked(
        "drop the backfill batch functions of the partitions",
        format!("DROP FUNCTION IF EXISTS {}", functions.join(", ")),
    );
    (creates, drop, plan)
}

/// Fill a column where it is NULL: a backfill `c = fill` over rows where `c IS
/// NULL`, and (with `trigger`: when it fires, why) the fill trigger for rows
/// written meanwhile.
/// Returns the start steps, the clean-up steps (for complete and rollback)
/// and the backfill.
pub struct FillNulls<'a> {
    pub table: &'a QualifiedName,
    pub key: &'a KeyInfo,
    pub column: &'a Ident,
    /// The value over the table's bare columns, and over NEW.
    pub fill: (&'a str, &'a str),
    pub trigger: Option<(FillOn, String)>,
    pub description: String,
    /// A partitioned table's partitions (oids; empty for a plain table).
    pub partitions: &'a [u32],
}

impl FillNulls<'_> {
    pub fn steps(self, ctx: &PlanContext) -> (Vec<Step>, Vec<Step>, BackfillPlan) {
        let c = self.column;
        let (mut start, mut cleanup) = (Vec::new(), Vec::new());
        if let Some((on, why)) = &self.trigger {
            let (create, drop) = fill_trigger_steps(ctx, self.table, c, self.fill.1, why, *on, self.partitions);
            start.extend(create);
            cleanup.extend(drop);
        }
        let keyset = KeysetBatch {
            table: self.table,
            key: &self.key.columns,
            work: BatchWork::Update {
                assignments: vec![format!("{c} = {}", self.fill.0)],
                needs_work: format!("{c} IS NULL"),
            },
        };
        let (create, drop, backfill) = batch_function(ctx, &keyset, self.key, self.description);
        start.extend(create);
        cleanup.push(drop);
        (start, cleanup, backfill)
    }
}

/// The default migration name of a type change, `<table>_<column>_to_<type>`
/// (before fitting), whichever way it goes.
pub fn type_change_name(table: &QualifiedName, column: &ColumnInfo, new_type: &SqlFragment) -> String {
    let ty: String = new_type
        .0
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("{}_{}_to_{}", table.name.raw(), column.name.raw(), ty.trim_matches('_'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partitioned_table_has_a_batch_function_per_leaf() {
        let q = |s: &str, t: &str| QualifiedName::new(Ident::test(s), Ident::test(t));
        let key = KeyInfo {
            index_name: "ev_pkey".into(),
            is_primary: true,
            columns: vec![(Ident::test("id"), SqlFragment("bigint".into()))],
            partitions: vec![q("public", "ev_a"), q("public", "ev_b")],
        };
        let table = q("public", "ev");
        let keyset = KeysetBatch {
            table: &table,
            key: &key.columns,
            work: BatchWork::Update {
                assignments: vec!["n = o".into()],
                needs_work: "n IS NULL".into(),
            },
        };
        let ctx = PlanContext {
            migration: "m".into(),
            quote: Ident::test,
        };
        let (create, drop, plan) = batch_function(&ctx, &keyset, &key, "fill n".into());
        assert_eq!(create.len(), 2);
        assert!(
            create[0]
                .sql
                .starts_with("CREATE FUNCTION zdm.backfill_p0_m(upper_bound text[]"),
            "{}",
            create[0].sql
        );
        assert!(
            create[1].sql.contains("UPDATE ONLY public.ev_b AS zdm_row"),
            "{}",
            create[1].sql
        );
        assert!(!create[1].sql.contains("public.ev_a"), "{}", create[1].sql);
        assert_eq!(
            drop.sql,
            "DROP FUNCTION IF EXISTS zdm.backfill_p0_m(text[], integer, text[]), zdm.backfill_p1_m(text[], integer, text[])"
        );
        assert_eq!(plan.table, "public.ev");
        let leaves: Vec<(&str, &str, &str)> = plan
            .partitions
            .iter()
            .map(|p| (p.table.as_str(), p.function.as_str(), p.upper_bound_sql.as_str()))
            .collect();
        assert_eq!(
            leaves,
            [
                (
                    "public.ev_a",
                    "zdm.backfill_p0_m",
                    "SELECT ARRAY[id::text] FROM ONLY public.ev_a ORDER BY id DESC LIMIT 1"
                ),
                (
                    "public.ev_b",
                    "zdm.backfill_p1_m",
                    "SELECT ARRAY[id::text] FROM ONLY public.ev_b ORDER BY id DESC LIMIT 1"
                ),
            ]
        );
    }
}
