//! set_not_null (seed document, technique 6).
//!
//! start: `CHECK (c IS NOT NULL) NOT VALID` (new writes of NULL are refused
//! from now on), plus with a `fill_expr` a fill trigger and a backfill that
//! replaces NULLs; then `VALIDATE` (no exclusive lock), `SET NOT NULL`
//! (instant, the validated check proves it) and the check is dropped.
//! Without fill_expr, complete validates: it fails, changing nothing, while
//! NULLs remain (fix them, or roll back).

use super::{fit_name, require_column, require_key, Operation, PlanContext};
use crate::catalog::{KeyInfo, TableInfo};
use crate::error::{ZdmError, ZdmResult};
use crate::expr::{analyze, row_of, ExprRules};
use crate::ident::{Ident, QualifiedName};
use crate::plan::{BackfillPlan, LockMode, Plan, Step};
use crate::spec::SetNotNullSpec;
use crate::sqlgen::backfill::KeysetUpdate;
use crate::sqlgen::fill_trigger::FillTrigger;

pub struct SetNotNull {
    table: QualifiedName,
    column: Ident,
    fill: Option<(String, String)>,
    key: Option<KeyInfo>,
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
                let e = analyze(table, &row_of(table), f, &ExprRules { what: "fill_expr", cast_to: Some(&col.type_sql.0), allow_volatile: true })?;
                let ty = &col.type_sql;
                Some((format!("({})::{ty}", e.text), format!("({})::{ty}", e.over_new)))
            }
            None => None,
        };
        let key = if fill.is_some() { Some(require_key(table)?.clone()) } else { None };
        Ok(SetNotNull { table: table.name.clone(), column: col.name.clone(), fill, key })
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
        let aex = LockMode::AccessExclusive;
        let check = ctx.object_name("nn");
        let mut plan = Plan::default();
        plan.start.push(Step::locked(
            format!("NOT NULL on {} as a check, not validated yet (new NULLs are refused from now on)", c.raw()),
            format!("ALTER TABLE {t} ADD CONSTRAINT {check} CHECK ({c} IS NOT NULL) NOT VALID"),
            &t,
            aex,
        ));
        let mut cleanup = Vec::new();
        if let (Some((fill_bare, fill_new)), Some(key)) = (&self.fill, &self.key) {
            let function = ctx.function_name("fill");
            let trigger = ctx.object_name("fill");
            let ft = FillTrigger {
                migration: &ctx.migration,
                table: &self.table,
                function: &function,
                trigger: &trigger,
                column: c,
                value_over_new: fill_new,
                why: &format!("replaces NULL in {}.{} on rows written before the backfill reached them", t, c),
            };
            plan.start.push(Step::unlocked("fill trigger function", ft.create_function()));
            plan.start.push(Step::locked("fill trigger", ft.create_trigger(), &t, LockMode::ShareRowExclusive));
            cleanup.push(Step::locked("drop the fill trigger", ft.drop_trigger(), &t, aex));
            cleanup.push(Step::unlocked("drop the fill trigger function", ft.drop_function()));
            let keyset = KeysetUpdate {
                table: &self.table,
                key: &key.columns,
                assignments: vec![format!("{c} = {fill_bare}")],
                needs_work: format!("{c} IS NULL"),
            };
            let bf = ctx.function_name("backfill");
            let description = format!("replace NULL in {}", c.raw());
            plan.start.push(Step::unlocked("backfill batch function", keyset.create_batch_function(&bf, &ctx.migration, &description)));
            cleanup.push(Step::unlocked("drop the backfill batch function", format!("DROP FUNCTION IF EXISTS {bf}(text[], integer, text[])")));
            plan.backfill = Some(BackfillPlan {
                description,
                table: t.clone(),
                key_columns: key.columns.iter().map(|(k, _)| k.raw().to_string()).collect(),
                upper_bound_sql: keyset.upper_bound_sql(),
                function: bf.to_string(),
                next_batch_sql: keyset.next_batch_sql(),
            });
        }
        plan.validate.push(Step::locked(
            format!("validate the NOT NULL check of {} (reads and writes go on)", c.raw()),
            format!("ALTER TABLE {t} VALIDATE CONSTRAINT {check}"),
            &t,
            LockMode::ShareUpdateExclusive,
        ));
        plan.complete.extend(cleanup.iter().cloned());
        plan.complete.push(Step::locked(
            format!("{} NOT NULL (instant: the validated check proves it)", c.raw()),
            format!("ALTER TABLE {t} ALTER COLUMN {c} SET NOT NULL"),
            &t,
            aex,
        ));
        plan.complete.push(Step::locked("drop the now redundant check", format!("ALTER TABLE {t} DROP CONSTRAINT {check}"), &t, aex));
        plan.rollback.extend(cleanup);
        plan.rollback.push(Step::locked("drop the check", format!("ALTER TABLE {t} DROP CONSTRAINT IF EXISTS {check}"), &t, aex));
        Ok(plan)
    }
}
