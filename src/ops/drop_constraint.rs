//! drop_constraint: the old application stays protected until complete,
//! which drops the constraint (ACCESS EXCLUSIVE, catalog only; a foreign
//! key's referenced table is locked the same way, its triggers go too; a
//! UNIQUE, PRIMARY KEY or EXCLUDE constraint takes its index along). Start
//! changes nothing, so a rollback has nothing to undo. Refused: a constraint
//! other tables' foreign keys rely on, or whose index is the replica identity
//! (a primary key is, by default, for a table a publication replicates).

use super::named_constraint::NamedConstraint;
use super::{fit_name, Operation, PlanContext};
use crate::catalog::index_facts::{index_facts, published_by_primary_key, referencing_foreign_keys};
use crate::catalog::TableInfo;
use crate::error::{ZdmError, ZdmResult};
use crate::ident::{Ident, QualifiedName};
use crate::plan::{LockMode, Plan, Step};
use crate::spec::DropConstraintSpec;
use pgrx::pg_sys::errcodes::PgSqlErrorCode;

pub struct DropConstraint {
    table: QualifiedName,
    constraint: Ident,
    /// A foreign key's referenced table (quoted), locked too.
    referenced: Option<String>,
    columns: Vec<String>,
}

impl DropConstraint {
    pub fn new(table: &TableInfo, spec: &DropConstraintSpec, quote: fn(&str) -> Ident) -> ZdmResult<Self> {
        let found = NamedConstraint::find(table, &spec.constraint)?;
        let name = quote(&spec.constraint);
        if let Some(index) = found.index {
            let still_needed = |why: String, hint: String| {
                ZdmError::new(PgSqlErrorCode::ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST, why).hint(hint)
            };
            let foreign_keys = referencing_foreign_keys(index.oid)?;
            if !foreign_keys.is_empty() {
                return Err(still_needed(
                    format!(
                        "constraint {name} of relation {} is referenced by foreign keys: {}",
                        table.name,
                        foreign_keys.join(", ")
                    ),
                    "Drop those foreign keys first (operation drop_constraint on their tables).".into(),
                ));
            }
            if index_facts(index.oid)?.replica_identity || (index.primary && published_by_primary_key(table.oid)?) {
                return Err(still_needed(
                    format!(
                        "the index of constraint {name} is the replica identity of relation {}",
                        table.name
                    ),
                    "Change the replica identity first (operation set_replica_identity).".into(),
                ));
            }
        }
        Ok(DropConstraint {
            table: table.name.clone(),
            referenced: found.foreign_key.map(|f| f.referenced.clone()),
            columns: found.columns(table),
            constraint: name,
        })
    }
}

impl Operation for DropConstraint {
    fn claimed_columns(&self) -> Vec<String> {
        self.columns.clone()
    }

    fn default_name(&self) -> String {
        fit_name(&format!("{}_drop_{}", self.table.name.raw(), self.constraint.raw()))
    }

    fn plan(&self, _ctx: &PlanContext) -> ZdmResult<Plan> {
        let t = self.table.to_string();
        let aex = LockMode::AccessExclusive;
        let mut complete = Vec::new();
        if let Some(r) = &self.referenced {
            // Its triggers on the referenced table go too: locked up front, same timeout.
            complete.push(Step::locked(
                format!("lock {r} (the foreign key's triggers on it go)"),
                "SELECT 1".into(),
                r,
                aex,
            ));
        }
        complete.push(Step::locked(
            format!("drop constraint {}: catalog only", self.constraint.raw()),
            format!("ALTER TABLE {t} DROP CONSTRAINT {}", self.constraint),
            &t,
            aex,
        ));
        Ok(Plan {
            complete,
            ..Default::default()
        })
    }
}
