//! rename_constraint: at complete (the old application may know the
//! constraint by its name, in error handling), `RENAME CONSTRAINT`: ACCESS
//! EXCLUSIVE, catalog only; a UNIQUE, PRIMARY KEY or EXCLUDE constraint's
//! index is renamed with it. Start changes nothing, so a rollback has nothing
//! to undo. The constraint's columns are claimed, so that no migration that
//! carries or rebuilds it (which know it by name) runs at the same time; a
//! constraint pg_zdm made for a migration (`zdm_...`) is refused.

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
        let (attnums, has_index) = constraint_of(table, &spec.constraint)?;
        let t = &table.name;
        if spec.constraint.starts_with("zdm_") {
            return Err(ZdmError::new(
                PgSqlErrorCode::ERRCODE_OBJECT_IN_USE,
                format!("constraint {} of relation {t} is pg_zdm's own", quote(&spec.constraint)),
            )
            .hint("A migration in progress made it and knows it by name: complete or roll it back instead."));
        }
        check_new_name(table, spec, has_index, lookup)?;
        Ok(RenameConstraint {
            table: t.clone(),
            constraint: quote(&spec.constraint),
            new_name: quote(&spec.new_name),
            columns: table
                .columns
                .iter()
                .filter(|c| attnums.contains(&c.attnum))
                .map(|c| c.name.raw().to_string())
                .collect(),
        })
    }
}

/// The columns of a constraint of the table, and whether an index backs it; 42704 when there is none.
fn constraint_of(table: &TableInfo, name: &str) -> ZdmResult<(Vec<i16>, bool)> {
    if let Some(i) = table.indexes.iter().find(|i| i.constraint.as_ref().is_some_and(|c| c.raw() == name)) {
        return Ok((i.attnums.clone(), true));
    }
    let check = table.checks.iter().find(|c| c.name.raw() == name).map(|c| c.attnums.clone());
    let fk = || table.foreign_keys.iter().find(|f| f.name.raw() == name).map(|f| f.attnums.clone());
    match check.or_else(fk) {
        Some(attnums) => Ok((attnums, false)),
        None if table.constraint_names.iter().any(|c| c == name) => Ok((vec![], false)),
        None => Err(ZdmError::new(
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            format!("constraint \"{name}\" of relation \"{}\" does not exist", table.name.display_raw()),
        )
        .hint(format!("Its constraints are: {}.", table.constraint_names.join(", ")))),
    }
}

/// 1 to 63 bytes, free among the table's constraints and, when an index is
/// renamed along, among the relations of its schema.
fn check_new_name(table: &TableInfo, spec: &RenameConstraintSpec, has_index: bool, lookup: &dyn Lookup) -> ZdmResult<()> {
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
        Some((PgSqlErrorCode::ERRCODE_DUPLICATE_TABLE, "a relation of its schema (its index is renamed too)"))
    } else {
        None
    };
    match taken {
        Some((code, what)) => Err(ZdmError::new(code, format!("\"{new}\" is already the name of {what}"))
            .hint("Choose another name.")),
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
                format!("rename constraint {} to {}: catalog only", self.constraint.raw(), self.new_name.raw()),
                format!("ALTER TABLE {t} RENAME CONSTRAINT {} TO {}", self.constraint, self.new_name),
                &t,
                LockMode::AccessExclusive,
            )],
            ..Default::default()
        })
    }
}
