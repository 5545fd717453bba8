//! A constraint of the table named by the user, for the operations that act
//! on one (rename_constraint, drop_constraint): what it is, its columns, and
//! the refusals they share (42704 unknown; 55006 pg_zdm's own).

use crate::catalog::{ForeignKeyInfo, IndexInfo, TableInfo};
use crate::error::{ZdmError, ZdmResult};
use pgrx::pg_sys::errcodes::PgSqlErrorCode;

pub struct NamedConstraint<'t> {
    /// Columns of the table it reads (a check's, a foreign key's, an index's).
    pub attnums: Vec<i16>,
    /// The index of a UNIQUE, PRIMARY KEY or EXCLUDE constraint.
    pub index: Option<&'t IndexInfo>,
    pub foreign_key: Option<&'t ForeignKeyInfo>,
}

impl<'t> NamedConstraint<'t> {
    pub fn find(table: &'t TableInfo, name: &str) -> ZdmResult<Self> {
        if !table.constraint_names.iter().any(|c| c == name) {
            return Err(ZdmError::new(
                PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
                format!(
                    "constraint \"{name}\" of relation \"{}\" does not exist",
                    table.name.display_raw()
                ),
            )
            .hint(format!("Its constraints are: {}.", table.constraint_names.join(", "))));
        }
        if name.starts_with("zdm_") {
            return Err(ZdmError::new(
                PgSqlErrorCode::ERRCODE_OBJECT_IN_USE,
                format!(
                    "constraint \"{name}\" of relation \"{}\" is pg_zdm's own",
                    table.name.display_raw()
                ),
            )
            .hint("A migration in progress made it and knows it by name: complete or roll it back instead."));
        }
        let index = table
            .indexes
            .iter()
            .find(|i| i.constraint.as_ref().is_some_and(|c| c.raw() == name));
        let foreign_key = table.foreign_keys.iter().find(|f| f.name.raw() == name);
        let check = table.checks.iter().find(|c| c.name.raw() == name);
        let attnums = index
            .map(|i| i.attnums.clone())
            .or_else(|| foreign_key.map(|f| f.attnums.clone()))
            .or_else(|| check.map(|c| c.attnums.clone()))
            .unwrap_or_default();
        Ok(NamedConstraint {
            attnums,
            index,
            foreign_key,
        })
    }

    /// The names of the table's columns it reads.
    pub fn columns(&self, table: &TableInfo) -> Vec<String> {
        table
            .columns
            .iter()
            .filter(|c| self.attnums.contains(&c.attnum))
            .map(|c| c.name.raw().to_string())
            .collect()
    }
}
