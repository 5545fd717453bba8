//! rename_constraint: at complete (the old application may know the
//! constraint by its name, in error handling), `RENAME CONSTRAINT`: ACCESS
//! EXCLUSIVE, catalog only; a UNIQUE, PRIMARY KEY or EXCLUDE constraint's
//! index is renamed with it. Start changes nothing, so a rollback has nothing
//! to undo. The constraint's columns are claimed, so that no migration that
//! carries or rebuilds it (which know it by name) runs at the same time; a
//! constraint pg_zdm made for a migration (`zdm_...`) is refused.

use super::named_constraint::NamedConstraint;
use super::{fit_name, Operation, PlanContext};
use crate::catalog::{Lookup, TableInfo};
use crate::error::{ZdmError, ZdmResult};
use crate::ident::{Ident, QualifiedName};
use crate::plan::{LockMode, Plan, Step};
use crate::spec::RenameConstraintSpec;
use pgrx::pg_sys::errcodes::PgSqlErrorCode;

pub struct RenameConstraint {
    table: QualifiedName,
    constraint: Ident,
    new_name: Ident,
    columns: Vec<String>,
}

impl RenameConstraint {
    pub fn new(
        table: &TableInfo,
        spec: &RenameConstraintSpec,
        lookup: &dyn Lookup,
        quote: fn(&str) -> Ident,
    ) -> ZdmResult<Self> {
        let constraint = NamedConstraint::find(table, &spec.constraint)?;
        check_new_name(table, spec, constraint.index.is_some(), lookup)?;
        Ok(RenameConstraint {
            table: table.name.clone(),
            constraint: quote(&spec.constraint),
            new_name: quote(&spec.new_name),
            columns: constraint.columns(table),
        })
    }
}

/// 1 to 63 bytes, free among the table's constraints and, when an index is
/// renamed along, among the relations of its schema.
fn check_new_name(
    table: &TableInfo,
    spec: &RenameConstraintSpec,
    has_index: bool,
    lookup: &dyn Lookup,
) -> ZdmResult<()> {
    let new = &spec.new_name;
    if new.is_empty() || new.len() > 63 {
        return Err(ZdmError::new(
            PgSqlErrorCode::ERRCODE_INVALID_NAME,
            format!("constraint name \"{new}\" must be 1 to 63 bytes long"),
        ));
    }
    let schema = table.name.schema.raw();
    let taken = if table.constraint_names.iter().any(|c| c == new) {
        Some((PgSqlErrorCode::ERRCODE_DUPLICATE_OBJECT, "a constraint of the table"))
    } else if has_index && lookup.relation_exists(schema, new)? {
        Some((
            PgSqlErrorCode::ERRCODE_DUPLICATE_TABLE,
            "a relation of its schema (its index is renamed too)",
        ))
    } else {
        None
    };
    match taken {
        Some((code, what)) => {
            Err(ZdmError::new(code, format!("\"{new}\" is already the name of {what}")).hint("Choose another name."))
        }
        None => Ok(()),
    }
}

impl Operation for RenameConstraint {
    fn claimed_columns(&self) -> Vec<String> {
        self.columns.clone()
    }

    fn default_name(&self) -> String {
        fit_name(&format!(
            "{}_rename_{}_to_{}",
            self.table.name.raw(),
            self.constraint.raw(),
            self.new_name.raw()
        ))
    }

    fn plan(&self, _ctx: &PlanContext) -> ZdmResult<Plan> {
        let t = self.table.to_string();
        Ok(Plan {
            complete: vec![Step::locked(
                format!(
                    "rename constraint {} to {}: catalog only",
                    self.constraint.raw(),
                    self.new_name.raw()
                ),
                format!(
                    "ALTER TABLE {t} RENAME CONSTRAINT {} TO {}",
                    self.constraint, self.new_name
                ),
                &t,
                LockMode::AccessExclusive,
            )],
            ..Default::default()
        })
    }
}
