//! drop_column.
//!
//! start marks the column deprecated (its comment) and, when it is NOT NULL
//! without a default, keeps inserts of the new application (which no longer
//! writes it) working: a fill trigger with `down_expr` when given, else the
//! NOT NULL is dropped. complete drops the column; rollback restores comment
//! and NOT NULL.

use super::shared::fill_trigger_steps;
use super::{fit_name, require_column, Operation, PlanContext};
use crate::catalog::{ColumnInfo, TableInfo};
use crate::error::{ZdmError, ZdmResult};
use crate::expr::{analyze, row_of, ExprRules};
use crate::ident::{Literal, QualifiedName};
use crate::plan::{LockMode, Plan, Step};
use crate::spec::DropColumnSpec;
use crate::sqlgen::fill_trigger::FillOn;

pub struct DropColumn {
    table: QualifiedName,
    column: ColumnInfo,
    /// Over NEW, cast to the column's type.
    down: Option<String>,
    /// A partitioned table's partitions (oids), for its trigger functions.
    partitions: Vec<u32>,
}

impl DropColumn {
    pub fn new(table: &TableInfo, spec: &DropColumnSpec) -> ZdmResult<Self> {
        let col = require_column(table, &spec.column)?;
        let tname = table.name.display_raw();
        if table.is_key_column(&spec.column) {
            return Err(ZdmError::not_supported(format!(
                "column \"{}\" is part of the key of relation \"{tname}\"",
                spec.column
            ))
            .hint("Change the table's key first."));
        }
        let views: Vec<String> = table
            .dependents_of(col.attnum)
            .filter(|d| d.kind == "view")
            .map(|d| d.name.clone())
            .collect();
        if !views.is_empty() {
            return Err(ZdmError::new(
                pgrx::pg_sys::errcodes::PgSqlErrorCode::ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST,
                format!(
                    "column \"{}\" of relation \"{tname}\" is used by {}",
                    spec.column,
                    views.join(", ")
                ),
            )
            .hint("Change those views first: complete could not drop the column."));
        }
        let down = match &spec.down_expr {
            Some(d) => {
                let mut row = row_of(table);
                row.retain(|(n, _)| n.raw() != spec.column);
                let e = analyze(
                    table,
                    &row,
                    d,
                    &ExprRules {
                        what: "down_expr",
                        cast_to: Some(&col.type_sql.0),
                        allow_volatile: true,
                    },
                )?;
                Some(format!("({})::{}", e.over_new, col.type_sql))
            }
            None => None,
        };
        Ok(DropColumn {
            table: table.name.clone(),
            column: col.clone(),
            down,
            partitions: table.partition_oids(),
        })
    }
}

impl Operation for DropColumn {
    fn claimed_columns(&self) -> Vec<String> {
        vec![self.column.name.raw().to_string()]
    }

    fn default_name(&self) -> String {
        fit_name(&format!("{}_drop_{}", self.table.name.raw(), self.column.name.raw()))
    }

    fn plan(&self, ctx: &PlanContext) -> ZdmResult<Plan> {
        let t = self.table.to_string();
        let c = &self.column.name;
        let aex = LockMode::AccessExclusive;
        let mut plan = Plan::default();
        let note = Literal::new(&format!(
            "DEPRECATED: dropped by pg_zdm migration {} (zdm.complete). Do not use.",
            ctx.migration
        ));
        plan.start.push(Step::unlocked(
            format!("mark {} deprecated", c.raw()),
            format!("COMMENT ON COLUMN {t}.{c} IS {note}"),
        ));
        let old_comment = self
            .column
            .comment
            .as_ref()
            .map(|l| l.to_string())
            .unwrap_or_else(|| "NULL".into());
        plan.rollback.push(Step::unlocked(
            format!("comment of {} back", c.raw()),
            format!("COMMENT ON COLUMN {t}.{c} IS {old_comment}"),
        ));
        if self.column.not_null && self.column.default_sql.is_none() {
            match &self.down {
                Some(down) => {
                    let why = format!(
                        "gives {t}.{c} (NOT NULL, being dropped) a value on rows the new application writes without it"
                    );
                    let (create, drop) = fill_trigger_steps(
                        ctx,
                        &self.table,
                        c,
                        down,
                        &why,
                        FillOn::InsertOrUpdate,
                        &self.partitions,
                    );
                    plan.start.extend(create);
                    for steps in [&mut plan.complete, &mut plan.rollback] {
                        for (i, step) in drop.iter().enumerate() {
                            steps.insert(i, step.clone());
                        }
                    }
                }
                None => {
                    plan.start.push(Step::locked(
                        format!("{} accepts NULL, so inserts without it work", c.raw()),
                        format!("ALTER TABLE {t} ALTER COLUMN {c} DROP NOT NULL"),
                        &t,
                        aex,
                    ));
                    plan.rollback.push(Step::locked(
                        format!(
                            "{} NOT NULL again: checks every row under the lock; fails if NULLs were written",
                            c.raw()
                        ),
                        format!("ALTER TABLE {t} ALTER COLUMN {c} SET NOT NULL"),
                        &t,
                        aex,
                    ));
                }
            }
        }
        plan.complete.push(Step::locked(
            format!("drop column {}", c.raw()),
            format!("ALTER TABLE {t} DROP COLUMN {c}"),
            &t,
            aex,
        ));
        Ok(plan)
    }
}
