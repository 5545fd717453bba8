//! set_default and drop_default: catalog only (ACCESS EXCLUSIVE, instant),
//! at complete. Until then the old application may insert rows without the
//! column and rely on the default it knows; start changes nothing, so a
//! rollback has nothing to undo. The new default goes through `expr` over an
//! empty row (a default reads no column), volatile allowed, with every name
//! outside pg_catalog schema-qualified.

use super::{fit_name, require_column, Operation, PlanContext};
use crate::catalog::{ColumnInfo, TableInfo};
use crate::error::{ZdmError, ZdmResult};
use crate::expr::{analyze, ExprRules};
use crate::ident::{Ident, QualifiedName};
use crate::plan::{LockMode, Plan, Step};
use crate::spec::{DropDefaultSpec, SetDefaultSpec};

pub struct ColumnDefault {
    table: QualifiedName,
    column: Ident,
    /// The new default (SQL), or None to drop it.
    default: Option<String>,
}

impl ColumnDefault {
    pub fn set(table: &TableInfo, spec: &SetDefaultSpec) -> ZdmResult<Self> {
        let col = default_column(table, &spec.column)?;
        let e = analyze(
            table,
            &[],
            &spec.default,
            &ExprRules {
                what: "default_expr",
                cast_to: Some(&col.type_sql.0),
                allow_volatile: true,
            },
        )?;
        Ok(ColumnDefault {
            table: table.name.clone(),
            column: col.name.clone(),
            default: Some(e.text),
        })
    }

    pub fn drop(table: &TableInfo, spec: &DropDefaultSpec) -> ZdmResult<Self> {
        let col = default_column(table, &spec.column)?;
        if col.default_sql.is_none() {
            return Err(ZdmError::invalid_parameter(format!(
                "column {} of relation {} has no default",
                col.name, table.name
            ))
            .hint("Nothing to change."));
        }
        Ok(ColumnDefault {
            table: table.name.clone(),
            column: col.name.clone(),
            default: None,
        })
    }
}

/// The column, unless its values come from elsewhere than a default.
fn default_column<'t>(table: &'t TableInfo, column: &str) -> ZdmResult<&'t ColumnInfo> {
    let col = require_column(table, column)?;
    let source = match (col.identity, col.generated) {
        (true, _) => "an identity column: its values come from its sequence",
        (_, true) => "a generated column: its values come from its expression",
        _ => return Ok(col),
    };
    Err(
        ZdmError::not_supported(format!("column {} of relation {} is {source}", col.name, table.name))
            .hint("A default applies to ordinary columns only."),
    )
}

impl Operation for ColumnDefault {
    fn claimed_columns(&self) -> Vec<String> {
        vec![self.column.raw().to_string()]
    }

    fn default_name(&self) -> String {
        let what = if self.default.is_some() { "set" } else { "drop" };
        fit_name(&format!(
            "{}_{}_{what}_default",
            self.table.name.raw(),
            self.column.raw()
        ))
    }

    fn plan(&self, _ctx: &PlanContext) -> ZdmResult<Plan> {
        let (t, c) = (self.table.to_string(), &self.column);
        let (description, action) = match &self.default {
            Some(d) => (
                format!("new default of {}: catalog only", c.raw()),
                format!("SET DEFAULT {d}"),
            ),
            None => (
                format!("drop the default of {}: catalog only", c.raw()),
                "DROP DEFAULT".into(),
            ),
        };
        Ok(Plan {
            complete: vec![Step::locked(
                description,
                format!("ALTER TABLE {t} ALTER COLUMN {c} {action}"),
                &t,
                LockMode::AccessExclusive,
            )],
            ..Default::default()
        })
    }
}
