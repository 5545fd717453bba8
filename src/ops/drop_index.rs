//! drop_index: the old application keeps the index until complete.
//!
//! `DROP INDEX CONCURRENTLY` (SHARE UPDATE EXCLUSIVE: reads and writes go on)
//! cannot run inside a function: it is a top-level step of complete, given by
//! `zdm.pending_statements(m)` once asked for by name (see
//! `toplevel::pending_with_drops`), and complete refuses while the index is
//! still there. Start changes nothing, so a rollback has nothing to undo; once
//! the drop ran, rollback refuses (it cannot rebuild the index inside a
//! function) and gives the statement that rebuilds it.

use super::{fit_name, require_index, Operation, PlanContext};
use crate::catalog::index_facts::index_facts;
use crate::catalog::TableInfo;
use crate::error::{ZdmError, ZdmResult};
use crate::ident::{Literal, QualifiedName};
use crate::plan::{Plan, Step};
use crate::spec::DropIndexSpec;
use crate::sqlgen::refuse::{refuse_if, Refusal};
use pgrx::pg_sys::errcodes::PgSqlErrorCode;

pub struct DropIndex {
    table: QualifiedName,
    index: QualifiedName,
    /// `CREATE INDEX CONCURRENTLY ...` rebuilding it, for rollback's hint.
    rebuild: String,
    columns: Vec<String>,
}

impl DropIndex {
    pub fn new(table: &TableInfo, spec: &DropIndexSpec) -> ZdmResult<Self> {
        let info = require_index(table, &spec.index)?;
        let index = QualifiedName::new(table.name.schema.clone(), info.name.clone());
        let still_needed = |why: String, hint: &str| {
            ZdmError::new(PgSqlErrorCode::ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST, why).hint(hint.to_string())
        };
        if let Some(constraint) = &info.constraint {
            return Err(still_needed(
                format!("index {index} backs constraint {constraint} of relation {}", table.name),
                "Drop the constraint instead (operation drop_constraint): its index goes with it.",
            ));
        }
        let facts = index_facts(info.oid)?;
        if facts.replica_identity {
            return Err(still_needed(
                format!("index {index} is the replica identity of relation {}", table.name),
                "Logical replication of UPDATE and DELETE identifies rows by it: change the replica \
                 identity first (operation set_replica_identity).",
            ));
        }
        let columns = table
            .columns
            .iter()
            .filter(|c| info.attnums.contains(&c.attnum))
            .map(|c| c.name.raw().to_string())
            .collect();
        Ok(DropIndex {
            table: table.name.clone(),
            index,
            rebuild: concurrently(&facts.definition),
            columns,
        })
    }
}

/// `CREATE [UNIQUE] INDEX` made `... CONCURRENTLY`.
fn concurrently(definition: &str) -> String {
    for head in ["CREATE UNIQUE INDEX ", "CREATE INDEX "] {
        if let Some(rest) = definition.strip_prefix(head) {
            return format!("{head}CONCURRENTLY {rest}");
        }
    }
    definition.to_string()
}

impl Operation for DropIndex {
    fn claimed_columns(&self) -> Vec<String> {
        self.columns.clone()
    }

    fn default_name(&self) -> String {
        fit_name(&format!("{}_drop_{}", self.table.name.raw(), self.index.name.raw()))
    }

    fn plan(&self, ctx: &PlanContext) -> ZdmResult<Plan> {
        let (t, idx) = (self.table.to_string(), self.index.to_string());
        let m = Literal::pure(&ctx.migration);
        let exists = format!("pg_catalog.to_regclass({}) IS NOT NULL", Literal::pure(&idx));
        let still_there = Refusal {
            sqlstate: "55000",
            message: &format!("index {idx} of migration {m} is not dropped yet"),
            hint: &format!(
                "Run its DROP INDEX CONCURRENTLY at top level, then complete: \
                 SELECT statement FROM zdm.pending_statements({m}) \\gexec"
            ),
        };
        let gone = Refusal {
            sqlstate: "55000",
            message: &format!("index {idx} was already dropped by the pending statement of migration {m}"),
            hint: &format!(
                "Complete the migration (SELECT zdm.complete({m});), or rebuild the index at top level \
                 first ({};), then roll back.",
                self.rebuild
            ),
        };
        // A dropped table took the index along: nothing to refuse (abandon).
        let table_exists = format!("pg_catalog.to_regclass({}) IS NOT NULL", Literal::pure(&t));
        Ok(Plan {
            complete: vec![
                Step::top_level_drop(
                    format!(
                        "drop index {} CONCURRENTLY (top level: zdm.pending_statements({m}), \
                         when the old application no longer needs it)",
                        self.index.name.raw()
                    ),
                    format!("DROP INDEX CONCURRENTLY IF EXISTS {idx}"),
                    &t,
                    &idx,
                ),
                Step::unlocked(
                    format!("refuse while index {} is still there", self.index.name.raw()),
                    refuse_if(&exists, &still_there),
                ),
            ],
            rollback: vec![Step::unlocked(
                format!(
                    "nothing to undo; refuse if index {} was dropped already",
                    self.index.name.raw()
                ),
                refuse_if(&format!("NOT ({exists}) AND {table_exists}"), &gone),
            )],
            ..Default::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::concurrently;

    #[test]
    fn rebuild_statements_are_concurrent() {
        assert_eq!(
            concurrently("CREATE UNIQUE INDEX i ON public.t USING btree (a)"),
            "CREATE UNIQUE INDEX CONCURRENTLY i ON public.t USING btree (a)"
        );
        assert_eq!(
            concurrently("CREATE INDEX i ON public.t USING btree (a)"),
            "CREATE INDEX CONCURRENTLY i ON public.t USING btree (a)"
        );
    }
}
