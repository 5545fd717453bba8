//! add_column (seed document, technique 1).
//!
//! - A default PostgreSQL can keep in the catalog (not volatile) and no
//!   different fill: `ADD COLUMN ... DEFAULT d`, catalog only, one short step;
//!   NOT NULL then goes through a check validated by complete.
//! - Otherwise: the column is added nullable without default, then gets its
//!   default for new rows (`SET DEFAULT`: no rewrite), existing rows get
//!   `fill_expr` (or the default) from the backfill, and NOT NULL goes
//!   `CHECK (c IS NOT NULL) NOT VALID` → `VALIDATE` → `SET NOT NULL` → drop
//!   the check, with a fill trigger meanwhile so that rows written by the old
//!   application (which does not know the column) satisfy the check.

use super::{check_new_column_name, fit_name, require_key, Operation, PlanContext};
use crate::catalog::{KeyInfo, TableInfo};
use crate::error::{ZdmError, ZdmResult};
use crate::expr::{analyze, analyze_type, row_of, ExprRules};
use crate::ident::{Ident, QualifiedName, SqlFragment};
use crate::plan::{BackfillPlan, LockMode, Plan, Step};
use crate::spec::AddColumnSpec;
use crate::sqlgen::backfill::KeysetUpdate;
use crate::sqlgen::fill_trigger::FillTrigger;

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
            let e = analyze(table, &[], d, &ExprRules { what: "default_expr", cast_to: Some(&col_type.0), allow_volatile: true })?;
            default_volatile = e.volatile;
            default = Some(SqlFragment(e.text));
        }
        let fill = match &spec.fill_expr {
            Some(f) => {
                let e = analyze(table, &row_of(table), f, &ExprRules { what: "fill_expr", cast_to: Some(&col_type.0), allow_volatile: true })?;
                Some((cast(&e.text), cast(&e.over_new)))
            }
            None => None,
        };
        if spec.not_null && default.is_none() && fill.is_none() {
            return Err(ZdmError::invalid_parameter(format!(
                "NOT NULL column \"{}\" needs a default or a fill_expr",
                spec.column
            ))
            .hint("Existing rows, and rows the old application inserts, need a value: give default_expr or fill_expr."));
        }
        let needs_backfill = fill.is_some() || default_volatile;
        let key = if needs_backfill { Some(require_key(table)?.clone()) } else { None };
        Ok(AddColumn {
            table: table.name.clone(),
            column: quote(&spec.column),
            col_type,
            default,
            default_volatile,
            not_null: spec.not_null,
            fill,
            key,
        })
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
        let check = ctx.object_name("nn");
        let mut plan = Plan::default();

        let catalog_default = self.default.is_some() && !self.default_volatile && self.fill.is_none();
        if catalog_default || self.key.is_none() {
            let default = self.default.as_ref().map(|d| format!(" DEFAULT {d}")).unwrap_or_default();
            plan.start.push(Step::locked(
                format!("add column {} ({ty}){}: catalog only, no rewrite", c.raw(), if default.is_empty() { "" } else { " with its default" }),
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
        if self.not_null {
            plan.start.push(Step::locked(
                format!("NOT NULL on {} as a check, not validated yet (new rows are checked)", c.raw()),
                format!("ALTER TABLE {t} ADD CONSTRAINT {check} CHECK ({c} IS NOT NULL) NOT VALID"),
                &t,
                aex,
            ));
        }
        let mut drop_fill = Vec::new();
        if let (Some(key), true) = (&self.key, !catalog_default) {
            let (fill_bare, fill_new) = match &self.fill {
                Some(f) => f.clone(),
                None => {
                    let d = self.default.as_ref().expect("a backfill without fill has a volatile default");
                    (format!("({d})::{ty}"), format!("({d})::{ty}"))
                }
            };
            if self.not_null {
                let function = ctx.function_name("fill");
                let trigger = ctx.object_name("fill");
                let ft = FillTrigger {
                    migration: &ctx.migration,
                    table: &self.table,
                    function: &function,
                    trigger: &trigger,
                    column: c,
                    value_over_new: &fill_new,
                    why: &format!("gives {}.{} a value on rows written before the backfill reached them", t, c),
                };
                plan.start.push(Step::unlocked("fill trigger function", ft.create_function()));
                plan.start.push(Step::locked("fill trigger", ft.create_trigger(), &t, LockMode::ShareRowExclusive));
                drop_fill.push(Step::locked("drop the fill trigger", ft.drop_trigger(), &t, aex));
                drop_fill.push(Step::unlocked("drop the fill trigger function", ft.drop_function()));
            }
            let keyset = KeysetUpdate {
                table: &self.table,
                key: &key.columns,
                assignments: vec![format!("{c} = {fill_bare}")],
                needs_work: format!("{c} IS NULL"),
            };
            let function = ctx.function_name("backfill");
            let description = format!("fill {} for existing rows", c.raw());
            plan.start.push(Step::unlocked(
                "backfill batch function",
                keyset.create_batch_function(&function, &ctx.migration, &description),
            ));
            drop_fill.push(Step::unlocked(
                "drop the backfill batch function",
                format!("DROP FUNCTION IF EXISTS {function}(text[], integer, text[])"),
            ));
            plan.backfill = Some(BackfillPlan {
                description,
                table: t.clone(),
                key_columns: key.columns.iter().map(|(k, _)| k.raw().to_string()).collect(),
                upper_bound_sql: keyset.upper_bound_sql(),
                function: function.to_string(),
                next_batch_sql: keyset.next_batch_sql(),
            });
        }
        if self.not_null {
            plan.validate.push(Step::locked(
                format!("validate NOT NULL check of {} (reads and writes go on)", c.raw()),
                format!("ALTER TABLE {t} VALIDATE CONSTRAINT {check}"),
                &t,
                LockMode::ShareUpdateExclusive,
            ));
        }
        plan.complete.extend(drop_fill.iter().cloned());
        if self.not_null {
            plan.complete.push(Step::locked(
                format!("{} NOT NULL (instant: the validated check proves it)", c.raw()),
                format!("ALTER TABLE {t} ALTER COLUMN {c} SET NOT NULL"),
                &t,
                aex,
            ));
            plan.complete.push(Step::locked(
                "drop the now redundant check",
                format!("ALTER TABLE {t} DROP CONSTRAINT {check}"),
                &t,
                aex,
            ));
        }
        plan.rollback.extend(drop_fill);
        plan.rollback.push(Step::locked(
            format!("drop the new column {}", c.raw()),
            format!("ALTER TABLE {t} DROP COLUMN IF EXISTS {c}"),
            &t,
            aex,
        ));
        Ok(plan)
    }
}
