//! set_not_null.
//!
//! start: `CHECK (c IS NOT NULL) NOT VALID` (new writes of NULL are refused
//! from now on), plus with a `fill_expr` a fill trigger and a backfill that
//! replaces NULLs; then `VALIDATE` (no exclusive lock), `SET NOT NULL`
//! (instant, the validated check proves it) and the check is dropped.
//! Without fill_expr, complete validates: it fails, changing nothing, while
//! NULLs remain (fix them, or roll back).

use super::shared::{not_null_steps, FillNulls};
use super::{fit_name, require_column, require_key, Operation, PlanContext};
use crate::catalog::{KeyInfo, TableInfo};
use crate::error::{ZdmError, ZdmResult};
use crate::expr::{analyze, row_of, ExprRules};
use crate::ident::{Ident, QualifiedName};
use crate::plan::Plan;
use crate::spec::SetNotNullSpec;
use crate::sqlgen::fill_trigger::FillOn;

pub struct SetNotNull {
    table: QualifiedName,
    column: Ident,
    fill: Option<(String, String)>,
    key: Option<KeyInfo>,
    /// A partitioned table's partitions (oids), for its trigger functions.
    partitions: Vec<u32>,
}

impl SetNotNull {
    pub fn new(table: &TableInfo, spec: &SetNotNullSpec) -> ZdmResult<Self> {
        let col = require_column(table, &spec.column)?;
        if col.not_null {
            return Err(ZdmError::invalid_parameter(format!(
                "column \"{}\" of relation \"{}\" is already NOT NULL",
                spec.column,
                table.name.display_raw()
            ))
            .hint("Nothing to change."));
        }
        let fill = match &spec.fill_expr {
            Some(f) => {
                let e = analyze(
                    table,
                    &row_of(table),
                    f,
                    &ExprRules {
                        what: "fill_expr",
                        cast_to: Some(&col.type_sql.0),
                        allow_volatile: true,
                    },
                )?;
                let ty = &col.type_sql;
                Some((format!("({})::{ty}", e.text), format!("({})::{ty}", e.over_new)))
            }
            None => None,
        };
        let key = if fill.is_some() {
            Some(require_key(table)?.clone())
        } else {
            None
        };
        Ok(SetNotNull {
            table: table.name.clone(),
            column: col.name.clone(),
            fill,
            key,
            partitions: table.partition_oids(),
        })
    }
}

impl Operation for SetNotNull {
    fn claimed_columns(&self) -> Vec<String> {
        vec![self.column.raw().to_string()]
    }

    fn default_name(&self) -> String {
        fit_name(&format!("{}_{}_not_null", self.table.name.raw(), self.column.raw()))
    }

    fn plan(&self, ctx: &PlanContext) -> ZdmResult<Plan> {
        let t = self.table.to_string();
        let c = &self.column;
        let nn = not_null_steps(ctx, &t, c, c, "new NULLs are refused from now on");
        let mut plan = Plan {
            start: vec![nn.start],
            ..Default::default()
        };
        let mut cleanup = Vec::new();
        if let (Some((fill_bare, fill_new)), Some(key)) = (&self.fill, &self.key) {
            let (start, drop, backfill) = FillNulls {
                table: &self.table,
                key,
                column: c,
                fill: (fill_bare, fill_new),
                trigger: Some((
                    FillOn::InsertOrUpdate,
                    format!("replaces NULL in {t}.{c} on rows written before the backfill reached them"),
                )),
                description: format!("replace NULL in {}", c.raw()),
                partitions: &self.partitions,
            }
            .steps(ctx);
            plan.start.extend(start);
            cleanup.extend(drop);
            plan.backfill = Some(backfill);
        }
        plan.validate.push(nn.validate);
        plan.complete.extend(cleanup.iter().cloned());
        plan.complete.extend(nn.complete);
        plan.rollback.extend(cleanup);
        plan.rollback.push(nn.rollback);
        Ok(plan)
    }
}
