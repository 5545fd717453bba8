//! create_index and add_unique: indexes are always built with `CREATE INDEX
//! CONCURRENTLY`, which cannot run inside a function or a transaction block.
//! Those steps are "top-level": start records them, the user runs them
//! (`SELECT statement FROM zdm.pending_statements() \gexec`), and complete is
//! refused until the index exists and is valid (see `toplevel`). add_unique
//! then turns the index into the constraint (`ADD CONSTRAINT ... UNIQUE USING
//! INDEX`, a short lock).

use super::{fit_name, require_column, Operation, PlanContext};
use crate::catalog::{Lookup, TableInfo};
use crate::error::{ZdmError, ZdmResult};
use crate::ident::{Ident, QualifiedName};
use crate::plan::{LockMode, Plan, Step};
use crate::spec::{AddUniqueSpec, CreateIndexSpec};
use pgrx::pg_sys;
use pgrx::pg_sys::errcodes::PgSqlErrorCode;
use std::ffi::CString;

fn check_index_name(table: &TableInfo, name: &str, lookup: &dyn Lookup) -> ZdmResult<()> {
    if name.is_empty() || name.len() > 63 {
        return Err(ZdmError::new(
            PgSqlErrorCode::ERRCODE_INVALID_NAME,
            format!("index name \"{name}\" must be 1 to 63 bytes long"),
        ));
    }
    if lookup.relation_exists(table.name.schema.raw(), name)? {
        return Err(ZdmError::new(
            PgSqlErrorCode::ERRCODE_DUPLICATE_TABLE,
            format!("relation \"{}.{name}\" already exists", table.name.schema.raw()),
        )
        .hint("Indexes share the schema's namespace with tables: choose another name."));
    }
    Ok(())
}

/// The whole statement must parse as exactly one CREATE INDEX (no second
/// statement hidden in the definition).
fn check_single_index_statement(sql: &str) -> ZdmResult<()> {
    let ok = crate::session::in_subtransaction(|| unsafe {
        let c = CString::new(sql).unwrap();
        let list = pg_sys::raw_parser(c.as_ptr(), pg_sys::RawParseMode::RAW_PARSE_DEFAULT);
        if list.is_null() || (*list).length != 1 {
            return false;
        }
        let raw = (*(*list).elements).ptr_value as *mut pg_sys::RawStmt;
        (*(*raw).stmt).type_ == pg_sys::NodeTag::T_IndexStmt
    });
    match ok {
        Ok(true) => Ok(()),
        Ok(false) => Err(ZdmError::new(
            PgSqlErrorCode::ERRCODE_SYNTAX_ERROR,
            "the index definition is not a single CREATE INDEX",
        )
        .hint("Give what follows ON table, e.g. USING btree (email) WHERE deleted_at IS NULL.")),
        Err(e) => Err(ZdmError::new(
            crate::session::caught_sqlstate(&e).unwrap_or(PgSqlErrorCode::ERRCODE_SYNTAX_ERROR),
            format!("index definition: {}", crate::session::caught_message(&e)),
        )
        .hint("Give what follows ON table, e.g. USING btree (email) WHERE deleted_at IS NULL.")),
    }
}

pub struct CreateIndex {
    table: QualifiedName,
    index: QualifiedName,
    sql: String,
    unique_constraint: bool,
    columns: Vec<String>,
}

impl CreateIndex {
    pub fn new(
        table: &TableInfo,
        spec: &CreateIndexSpec,
        lookup: &dyn Lookup,
        quote: fn(&str) -> Ident,
    ) -> ZdmResult<Self> {
        check_index_name(table, &spec.index, lookup)?;
        let index = QualifiedName::new(table.name.schema.clone(), quote(&spec.index));
        let sql = format!(
            "CREATE INDEX CONCURRENTLY {} ON {} {}",
            index.name,
            table.name,
            spec.definition.trim()
        );
        check_single_index_statement(&sql)?;
        Ok(CreateIndex {
            table: table.name.clone(),
            index,
            sql,
            unique_constraint: false,
            columns: vec![],
        })
    }

    pub fn unique(
        table: &TableInfo,
        spec: &AddUniqueSpec,
        lookup: &dyn Lookup,
        quote: fn(&str) -> Ident,
    ) -> ZdmResult<Self> {
        check_index_name(table, &spec.constraint, lookup)?;
        if table.constraint_names.iter().any(|c| c == &spec.constraint) {
            return Err(ZdmError::new(
                PgSqlErrorCode::ERRCODE_DUPLICATE_OBJECT,
                format!(
                    "constraint \"{}\" for relation \"{}\" already exists",
                    spec.constraint,
                    table.name.display_raw()
                ),
            ));
        }
        if spec.columns.is_empty() {
            return Err(ZdmError::invalid_parameter("add_unique needs at least one column"));
        }
        let cols = spec
            .columns
            .iter()
            .map(|c| require_column(table, c).map(|c| c.name.clone()))
            .collect::<ZdmResult<Vec<_>>>()?;
        let index = QualifiedName::new(table.name.schema.clone(), quote(&spec.constraint));
        let list = cols.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(", ");
        let sql = format!(
            "CREATE UNIQUE INDEX CONCURRENTLY {} ON {} ({list})",
            index.name, table.name
        );
        Ok(CreateIndex {
            table: table.name.clone(),
            index,
            sql,
            unique_constraint: true,
            columns: cols.iter().map(|c| c.raw().to_string()).collect(),
        })
    }
}

impl Operation for CreateIndex {
    fn claimed_columns(&self) -> Vec<String> {
        self.columns.clone()
    }

    fn default_name(&self) -> String {
        fit_name(&format!("{}_add_{}", self.table.name.raw(), self.index.name.raw()))
    }

    fn plan(&self, _ctx: &PlanContext) -> ZdmResult<Plan> {
        let t = self.table.to_string();
        let idx = self.index.to_string();
        let mut plan = Plan {
            start: vec![Step::top_level_index(
                format!(
                    "build index {} CONCURRENTLY (top level: zdm.pending_statements)",
                    self.index.name.raw()
                ),
                self.sql.clone(),
                &t,
                &idx,
            )],
            rollback: vec![Step::locked(
                format!("drop index {}", self.index.name.raw()),
                format!("DROP INDEX IF EXISTS {idx}"),
                &t,
                LockMode::AccessExclusive,
            )],
            ..Default::default()
        };
        if self.unique_constraint {
            let n = &self.index.name;
            plan.complete.push(Step::locked(
                format!("constraint {} from its unique index (catalog only)", n.raw()),
                format!("ALTER TABLE {t} ADD CONSTRAINT {n} UNIQUE USING INDEX {n}"),
                &t,
                LockMode::AccessExclusive,
            ));
        }
        Ok(plan)
    }
}
