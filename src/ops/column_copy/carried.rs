//! The old column's indexes, checks and foreign keys, carried to the new
//! column: each new object goes with the new column on rollback, and takes
//! the old object's name at complete (the old one goes with the old column).

use super::{refuse_partitioned_constraint_index, ColumnCopy};
use crate::error::ZdmResult;
use crate::ident::{Ident, QualifiedName};
use crate::ops::PlanContext;
use crate::plan::{LockMode, Step};

/// The steps that carry them, by phase.
pub(super) struct CarriedSteps {
    /// Locks of referenced tables, taken before anything else at start.
    pub lock_first: Vec<Step>,
    pub start: Vec<Step>,
    pub validate: Vec<Step>,
    /// The new objects take the old ones' names.
    pub complete: Vec<Step>,
    /// A partitioned table's rebuilt indexes not yet attached (the attached
    /// ones go with the new column).
    pub rollback: Vec<Step>,
}

impl ColumnCopy {
    pub(super) fn carried_steps(&self, ctx: &PlanContext, t: &str, new: &Ident) -> ZdmResult<CarriedSteps> {
        let aex = LockMode::AccessExclusive;
        let old = &self.old.name;
        let mut validate = Vec::new();
        let mut complete = Vec::new();
        // A partitioned table's rebuilt indexes: the partitions' ones not yet
        // attached go on rollback (the attached ones go with the new column).
        let mut rollback: Vec<Step> = Vec::new();
        let mut start: Vec<Step> = Vec::new();
        let mut lock_first: Vec<Step> = Vec::new();
        let schema = &self.table.schema;
        for (i, ix) in self.carry.indexes.iter().enumerate() {
            let name = ctx.object_name(&format!("ix{i}"));
            let qualified = format!("{schema}.{name}");
            let mut definition = format!("USING {} ({})", ix.old.access_method, ix.key.join(", "));
            if !ix.include.is_empty() {
                definition.push_str(&format!(" INCLUDE ({})", ix.include.join(", ")));
            }
            if let Some(o) = &ix.old.options {
                definition.push_str(&format!(" WITH ({o})"));
            }
            if let Some(p) = &ix.predicate {
                definition.push_str(&format!(" WHERE {p}"));
            }
            if let Some(tree) = &self.partitions {
                refuse_partitioned_constraint_index(&self.table, ix)?;
                let index = QualifiedName::new(schema.clone(), name.clone());
                let steps = crate::ops::partitioned::PartitionedIndex {
                    table: &self.table,
                    tree,
                    index: &index,
                    unique: ix.old.unique,
                    definition: &definition,
                    tag: &format!("ix{i}"),
                }
                .steps(ctx);
                start.extend(steps.start);
                rollback.extend(steps.rollback);
            } else {
                start.push(Step::top_level_index(
                    format!(
                        "index {} rebuilt on {} CONCURRENTLY (top level: zdm.pending_statements)",
                        ix.old.name.raw(),
                        new.raw()
                    ),
                    format!(
                        "CREATE {}INDEX CONCURRENTLY {name} ON {t} {definition}",
                        if ix.old.unique { "UNIQUE " } else { "" }
                    ),
                    t,
                    &qualified,
                ));
            }
            complete.push(match &ix.old.constraint {
                Some(c) => Step::locked(
                    format!("constraint {} again, from the rebuilt index", c.raw()),
                    format!("ALTER TABLE {t} ADD CONSTRAINT {c} UNIQUE USING INDEX {name}"),
                    t,
                    aex,
                ),
                None => Step::locked(
                    format!("rebuilt index takes the name {}", ix.old.name.raw()),
                    format!("ALTER INDEX {qualified} RENAME TO {}", ix.old.name),
                    t,
                    aex,
                ),
            });
        }
        for (i, ck) in self.carry.checks.iter().enumerate() {
            let name = ctx.object_name(&format!("ck{i}"));
            start.push(Step::locked(
                format!("check {} on {}, NOT VALID", ck.old.name.raw(), new.raw()),
                format!("ALTER TABLE {t} ADD CONSTRAINT {name} CHECK ({}) NOT VALID", ck.expr),
                t,
                aex,
            ));
            if ck.old.validated {
                validate.push(Step::locked(
                    format!("validate check {} on {}", ck.old.name.raw(), new.raw()),
                    format!("ALTER TABLE {t} VALIDATE CONSTRAINT {name}"),
                    t,
                    LockMode::ShareUpdateExclusive,
                ));
            }
            complete.push(Step::locked(
                format!("check takes the name {}", ck.old.name.raw()),
                format!("ALTER TABLE {t} RENAME CONSTRAINT {name} TO {}", ck.old.name),
                t,
                aex,
            ));
        }
        if self.partitions.is_some() && !self.carry.foreign_keys.is_empty() {
            return Err(crate::error::ZdmError::not_supported(format!(
                "column \"{}\" of partitioned relation \"{}\" has a foreign key; PostgreSQL 15 cannot add it NOT VALID to the new column",
                old.raw(),
                self.table.display_raw()
            ))
            .hint("Drop the foreign key around the migration (and add it again partition by partition, NOT VALID then VALIDATE), or change the column with plain DDL."));
        }
        for (i, fk) in self.carry.foreign_keys.iter().enumerate() {
            let name = ctx.object_name(&format!("fk{i}"));
            let cols = fk.columns.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(", ");
            let refcols = fk
                .old
                .referenced_columns
                .iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            lock_first.insert(
                0,
                Step::locked(
                    format!("lock {}", fk.old.referenced),
                    "SELECT 1".into(),
                    &fk.old.referenced,
                    LockMode::ShareRowExclusive,
                ),
            );
            start.push(Step::locked(
                format!("foreign key {} on {}, NOT VALID", fk.old.name.raw(), new.raw()),
                format!(
                    "ALTER TABLE {t} ADD CONSTRAINT {name} FOREIGN KEY ({cols}) REFERENCES {} ({refcols}) {}{} NOT VALID",
                    fk.old.referenced, fk.old.actions, fk.old.deferrable
                ),
                t,
                LockMode::ShareRowExclusive,
            ));
            validate.push(Step::locked(
                format!("validate foreign key {} on {}", fk.old.name.raw(), new.raw()),
                format!("ALTER TABLE {t} VALIDATE CONSTRAINT {name}"),
                t,
                LockMode::ShareUpdateExclusive,
            ));
            complete.push(Step::locked(
                format!("foreign key takes the name {}", fk.old.name.raw()),
                format!("ALTER TABLE {t} RENAME CONSTRAINT {name} TO {}", fk.old.name),
                t,
                aex,
            ));
        }

        Ok(CarriedSteps {
            lock_first,
            start,
            validate,
            complete,
            rollback,
        })
    }
}
