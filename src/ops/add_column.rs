//! add_column.
//!
//! - A default PostgreSQL can keep in the catalog (not volatile) and no
//!   different fill: `ADD COLUMN ... DEFAULT d`, catalog only, one short step;
//!   NOT NULL then goes through a check validated by complete.
//! - Otherwise: the column is added nullable without default, then gets its
//!   default for new rows (`SET DEFAULT`: no rewrite), existing rows get
//!   `fill_expr` (or the default) from the backfill, and NOT NULL goes
//!   `CHECK (c IS NOT NULL) NOT VALID` → `VALIDATE` → `SET NOT NULL` → drop
//!   the check, with a fill trigger meanwhile so that rows written by the old
//!   application (which does not know the column) satisfy the check. A
//!   nullable column with a `fill_expr` gets the fill trigger on INSERT: rows
//!   inserted without it from start to complete get the fill too.

use super::shared::{not_null_steps, FillNulls};
use super::{check_new_column_name, fit_name, require_key, Operation, PlanContext};
use crate::catalog::{KeyInfo, TableInfo};
use crate::error::{ZdmError, ZdmResult};
use crate::expr::{analyze, analyze_type, row_of, ExprRules};
use crate::ident::{Ident, QualifiedName, SqlFragment};
use crate::plan::{LockMode, Plan, Step};
use crate::spec::AddColumnSpec;
use crate::sqlgen::fill_trigger::FillOn;

pub struct AddColumn {
    table: QualifiedName,
    column: Ident,
    col_type: SqlFragment,
    default: Option<SqlFragment>,
    default_volatile: bool,
    not_null: bool,
    /// Value for existing rows: (over bare columns, over NEW), cast to the type.
    fill: Option<(String, String)>,
    key: Option<KeyInfo>,
    /// A partitioned table's partitions (oids), for its trigger functions.
    partitions: Vec<u32>,
}

impl AddColumn {
    pub fn new(table: &TableInfo, spec: &AddColumnSpec, quote: fn(&str) -> Ident) -> ZdmResult<Self> {
        check_new_column_name(table, &spec.column)?;
        let (_, _, col_type) = analyze_type(&spec.col_type, "type")?;
        let cast = |t: &str| format!("({t})::{col_type}");
        let mut default = None;
        let mut default_volatile = false;
        if let Some(d) = &spec.default {
            // A default reads no column: analysed over an empty row.
            let e = analyze(
                table,
                &[],
                d,
                &ExprRules {
                    what: "default_expr",
                    cast_to: Some(&col_type.0),
                    allow_volatile: true,
                },
            )?;
            default_volatile = e.volatile;
            default = Some(SqlFragment(e.text));
        }
        let fill = match &spec.fill_expr {
            Some(f) => {
                let e = analyze(
                    table,
                    &row_of(table),
                    f,
                    &ExprRules {
                        what: "fill_expr",
                        cast_to: Some(&col_type.0),
                        allow_volatile: true,
                    },
                )?;
                Some((cast(&e.text), cast(&e.over_new)))
            }
            None => None,
        };
        if spec.not_null && default.is_none() && fill.is_none() {
            return Err(ZdmError::invalid_parameter(format!(
                "NOT NULL column \"{}\" needs a default or a fill_expr",
                spec.column
            ))
            .hint(
                "Existing rows, and rows the old application inserts, need a value: give default_expr or fill_expr.",
            ));
        }
        let needs_backfill = fill.is_some() || default_volatile;
        let key = if needs_backfill {
            Some(require_key(table)?.clone())
        } else {
            None
        };
        Ok(AddColumn {
            table: table.name.clone(),
            column: quote(&spec.column),
            col_type,
            default,
            default_volatile,
            not_null: spec.not_null,
            fill,
            key,
            partitions: table.partition_oids(),
        })
    }
}

impl AddColumn {
    /// The fill trigger, when rows written during the migration need it: a
    /// NOT NULL column on every write (its check holds for every new row
    /// version); a nullable one with a `fill_expr` on INSERT, so that rows the
    /// old application inserts after the backfill are not the only unfilled
    /// ones. (A default, applied before triggers, wins for rows without the column.)
    fn fill_trigger(&self, t: &str) -> Option<(FillOn, String)> {
        let c = &self.column;
        if self.not_null {
            Some((
                FillOn::InsertOrUpdate,
                format!("gives {t}.{c} a value on rows written before the backfill reached them"),
            ))
        } else if self.fill.is_some() {
            Some((
                FillOn::Insert,
                format!("gives {t}.{c} its fill_expr on rows inserted without it until the migration completes"),
            ))
        } else {
            None
        }
    }
}

impl Operation for AddColumn {
    fn claimed_columns(&self) -> Vec<String> {
        vec![self.column.raw().to_string()]
    }

    fn default_name(&self) -> String {
        fit_name(&format!("{}_add_{}", self.table.name.raw(), self.column.raw()))
    }

    fn plan(&self, ctx: &PlanContext) -> ZdmResult<Plan> {
        let t = self.table.to_string();
        let c = &self.column;
        let ty = &self.col_type;
        let aex = LockMode::AccessExclusive;
        let mut plan = Plan::default();

        let catalog_default = self.default.is_some() && !self.default_volatile && self.fill.is_none();
        if catalog_default || self.key.is_none() {
            let default = self
                .default
                .as_ref()
                .map(|d| format!(" DEFAULT {d}"))
                .unwrap_or_default();
            plan.start.push(Step::locked(
                format!(
                    "add column {} ({ty}){}: catalog only, no rewrite",
                    c.raw(),
                    if default.is_empty() { "" } else { " with its default" }
                ),
                format!("ALTER TABLE {t} ADD COLUMN {c} {ty}{default}"),
                &t,
                aex,
            ));
        } else {
            plan.start.push(Step::locked(
                format!("add column {} ({ty}), nullable, no default yet: catalog only", c.raw()),
                format!("ALTER TABLE {t} ADD COLUMN {c} {ty}"),
                &t,
                aex,
            ));
            if let Some(d) = &self.default {
                plan.start.push(Step::locked(
                    format!("default of {} for new rows (existing rows are not rewritten)", c.raw()),
                    format!("ALTER TABLE {t} ALTER COLUMN {c} SET DEFAULT {d}"),
                    &t,
                    aex,
                ));
            }
        }
        let not_null = self
            .not_null
            .then(|| not_null_steps(ctx, &t, c, c, "new rows are checked"));
        if let Some(nn) = &not_null {
            plan.start.push(nn.start.clone());
        }
        let mut cleanup = Vec::new();
        if let (Some(key), false) = (&self.key, catalog_default) {
            let (fill_bare, fill_new) = match &self.fill {
                Some(f) => f.clone(),
                None => {
                    let d = self
                        .default
                        .as_ref()
                        .expect("a backfill without fill has a volatile default");
                    (format!("({d})::{ty}"), format!("({d})::{ty}"))
                }
            };
            let (start, drop, backfill) = FillNulls {
                table: &self.table,
                key,
                column: c,
                fill: (&fill_bare, &fill_new),
                trigger: self.fill_trigger(&t),
                description: format!("fill {} for existing rows", c.raw()),
                partitions: &self.partitions,
            }
            .steps(ctx);
            plan.start.extend(start);
            cleanup.extend(drop);
            plan.backfill = Some(backfill);
        }
        plan.complete.extend(cleanup.iter().cloned());
        if let Some(nn) = not_null {
            plan.validate.push(nn.validate);
            plan.complete.extend(nn.complete);
        }
        plan.rollback.extend(cleanup);
        plan.rollback.push(Step::locked(
            format!("drop the new column {}", c.raw()),
            format!("ALTER TABLE {t} DROP COLUMN IF EXISTS {c}"),
            &t,
            aex,
        ));
        Ok(plan)
    }
}
