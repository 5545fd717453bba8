//! set_replica_identity: `DEFAULT`, `FULL`, `NOTHING` or `USING INDEX`, at
//! complete (logical replication keeps the identity its subscribers know
//! until then). ACCESS EXCLUSIVE, catalog only; start changes nothing, so a
//! rollback has nothing to undo. An index must be one PostgreSQL accepts,
//! checked before start: unique, valid, immediate, not partial, on plain
//! NOT NULL columns; its columns are claimed, so that no drop_not_null or
//! drop_index on them runs meanwhile.

use super::{fit_name, require_index, Operation, PlanContext};
use crate::catalog::index_facts::{index_facts, replica_identity};
use crate::catalog::{IndexInfo, TableInfo};
use crate::error::{ZdmError, ZdmResult};
use crate::ident::QualifiedName;
use crate::plan::{LockMode, Plan, Step};
use crate::spec::SetReplicaIdentitySpec;
use pgrx::pg_sys::errcodes::PgSqlErrorCode;

pub struct SetReplicaIdentity {
    table: QualifiedName,
    /// `DEFAULT`, `FULL`, `NOTHING` or `USING INDEX <name>`.
    identity: String,
    columns: Vec<String>,
}

const KINDS: [&str; 4] = ["default", "full", "nothing", "index"];

impl SetReplicaIdentity {
    pub fn new(table: &TableInfo, spec: &SetReplicaIdentitySpec) -> ZdmResult<Self> {
        let kind = spec.identity.trim().to_ascii_lowercase();
        let current = replica_identity(table.oid)?;
        let (identity, columns, unchanged) = match (kind.as_str(), &spec.index) {
            ("index", Some(name)) => {
                let index = require_index(table, name)?;
                let (columns, is_current) = usable_index(table, index)?;
                (format!("USING INDEX {}", index.name), columns, is_current)
            }
            (k, None) if KINDS[..3].contains(&k) => {
                // relreplident is the kind's initial: d, f, n (i for an index).
                (k.to_ascii_uppercase(), vec![], k.starts_with(current))
            }
            _ => {
                return Err(ZdmError::invalid_parameter(format!(
                    "identity \"{}\" with{} index is not a replica identity",
                    spec.identity,
                    if spec.index.is_some() { "" } else { "out an" }
                ))
                .hint("One of: default, full, nothing; or index with \"index\": the index's name."))
            }
        };
        if unchanged {
            return Err(ZdmError::invalid_parameter(format!(
                "the replica identity of relation {} is already {identity}",
                table.name
            ))
            .hint("Nothing to change."));
        }
        Ok(SetReplicaIdentity {
            table: table.name.clone(),
            identity,
            columns,
        })
    }
}

/// The index's columns and whether it is the identity already, or 42809 with
/// the reason PostgreSQL would refuse it for.
fn usable_index(table: &TableInfo, index: &IndexInfo) -> ZdmResult<(Vec<String>, bool)> {
    let facts = index_facts(index.oid)?;
    // Key columns only: PostgreSQL checks neither INCLUDE columns nor their NULLs.
    let columns: Vec<_> = index.elements[..index.key_count]
        .iter()
        .map(|(attnum, _, _)| *attnum)
        .collect();
    let nullable = table
        .columns
        .iter()
        .find(|c| columns.contains(&c.attnum) && !c.not_null);
    let reason = if !index.unique {
        Some("it is not unique".to_string())
    } else if !facts.valid {
        Some("it is not valid (a failed or unfinished build)".into())
    } else if !facts.immediate {
        Some("it is deferrable".into())
    } else if index.predicate.is_some() {
        Some("it is partial".into())
    } else if columns.contains(&0) {
        Some("it has an expression".into())
    } else {
        nullable.map(|c| format!("column {} is nullable", c.name))
    };
    if let Some(reason) = reason {
        return Err(ZdmError::new(
            PgSqlErrorCode::ERRCODE_WRONG_OBJECT_TYPE,
            format!(
                "index {} cannot be the replica identity of relation {}: {reason}",
                index.name, table.name
            ),
        )
        .hint("A replica identity index is unique, valid, not deferrable, not partial, on NOT NULL columns only."));
    }
    let names = table
        .columns
        .iter()
        .filter(|c| columns.contains(&c.attnum))
        .map(|c| c.name.raw().to_string())
        .collect();
    Ok((names, facts.replica_identity))
}

impl Operation for SetReplicaIdentity {
    fn claimed_columns(&self) -> Vec<String> {
        self.columns.clone()
    }

    fn default_name(&self) -> String {
        fit_name(&format!("{}_replica_identity", self.table.name.raw()))
    }

    fn plan(&self, _ctx: &PlanContext) -> ZdmResult<Plan> {
        let t = self.table.to_string();
        Ok(Plan {
            complete: vec![Step::locked(
                "replica identity: catalog only",
                format!("ALTER TABLE {t} REPLICA IDENTITY {}", self.identity),
                &t,
                LockMode::AccessExclusive,
            )],
            ..Default::default()
        })
    }
}
