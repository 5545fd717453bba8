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
use crate::ident::{Ident, Literal, QualifiedName};
use crate::plan::{LockMode, Plan, Step};
use crate::session::with_local_settings;
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
/// statement hidden in the definition), whether the session that runs it
/// later (anyone's, through `zdm.pending_statements()`) has
/// `standard_conforming_strings` on or off: a backslash before a quote ends a
/// literal in one mode and not in the other, which could otherwise turn the
/// tail of a definition into a statement of its own. A TABLESPACE clause
/// needs the table owner's right to create there (whoever runs it later).
fn check_single_index_statement(sql: &str) -> ZdmResult<()> {
    for conforming in ["on", "off"] {
        let parsed = with_local_settings(&[("standard_conforming_strings", conforming.to_string())], || {
            crate::session::in_subtransaction(|| parse_one_index_statement(sql))
        });
        match parsed {
            Ok(Some(tablespace)) => check_tablespace(tablespace.as_deref())?,
            Ok(None) => {
                return Err(ZdmError::new(
                    PgSqlErrorCode::ERRCODE_SYNTAX_ERROR,
                    "the index definition is not a single CREATE INDEX",
                )
                .detail(format!("With standard_conforming_strings = {conforming}."))
                .hint("Give what follows ON table, e.g. USING btree (email) WHERE deleted_at IS NULL."))
            }
            Err(e) => {
                return Err(ZdmError::new(
                    crate::session::caught_sqlstate(&e).unwrap_or(PgSqlErrorCode::ERRCODE_SYNTAX_ERROR),
                    format!("index definition: {}", crate::session::caught_message(&e)),
                )
                .detail(format!("With standard_conforming_strings = {conforming}."))
                .hint(
                    "Give what follows ON table, e.g. USING btree (email) WHERE deleted_at IS NULL; \
                       write a backslash in a literal as E'\\\\' so that it means the same in every session.",
                ))
            }
        }
    }
    Ok(())
}

/// The tablespace of the one CREATE INDEX `sql` is, or None when it is not one.
fn parse_one_index_statement(sql: &str) -> Option<Option<String>> {
    unsafe {
        let c = CString::new(sql).ok()?;
        let list = pg_sys::raw_parser(c.as_ptr(), pg_sys::RawParseMode::RAW_PARSE_DEFAULT);
        if list.is_null() || (*list).length != 1 {
            return None;
        }
        let raw = (*(*list).elements).ptr_value as *mut pg_sys::RawStmt;
        if (*(*raw).stmt).type_ != pg_sys::NodeTag::T_IndexStmt {
            return None;
        }
        let index = (*raw).stmt as *mut pg_sys::IndexStmt;
        let tablespace = (*index).tableSpace;
        Some((!tablespace.is_null()).then(|| std::ffi::CStr::from_ptr(tablespace).to_string_lossy().into_owned()))
    }
}

/// 42501 unless the current user (the table's owner, see `privilege`) may
/// create in `tablespace`: PostgreSQL checks the role that runs the build,
/// which may be a superuser's session.
fn check_tablespace(tablespace: Option<&str>) -> ZdmResult<()> {
    let Some(tablespace) = tablespace else { return Ok(()) };
    let allowed = pgrx::Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT FROM pg_catalog.pg_tablespace t
                         WHERE t.spcname OPERATOR(pg_catalog.=) $1
                           AND (pg_catalog.has_tablespace_privilege(t.oid, 'CREATE')
                                OR t.oid OPERATOR(pg_catalog.=) (SELECT d.dattablespace FROM pg_catalog.pg_database d
                                                                  WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database())))",
        &[tablespace.into()],
    )
    .map_err(crate::catalog::introspect::spi_err)?
    .unwrap_or(false);
    if allowed {
        return Ok(());
    }
    Err(ZdmError::new(
        PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
        format!("permission denied for tablespace {tablespace}"),
    )
    .hint("The table's owner must have CREATE on the tablespace an index of it goes to."))
}

pub struct CreateIndex {
    table: QualifiedName,
    index: QualifiedName,
    sql: String,
    /// A partitioned table's tree and the definition (what follows `ON
    /// table`): the index is built partition by partition.
    partitioned: Option<(crate::catalog::PartitionTree, String)>,
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
            partitioned: table
                .partitions
                .clone()
                .map(|tree| (tree, spec.definition.trim().to_string())),
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
            partitioned: table.partitions.clone().map(|tree| (tree, format!("({list})"))),
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

    fn plan(&self, ctx: &PlanContext) -> ZdmResult<Plan> {
        let t = self.table.to_string();
        let idx = self.index.to_string();
        if let (Some((tree, columns)), true) = (&self.partitioned, self.unique_constraint) {
            return Ok(super::partitioned::unique_constraint_plan(
                ctx,
                &self.table,
                tree,
                &self.index.name,
                columns,
            ));
        }
        if let Some((tree, definition)) = &self.partitioned {
            let steps = super::partitioned::PartitionedIndex {
                table: &self.table,
                tree,
                index: &self.index,
                unique: false,
                definition,
                tag: "ix",
            }
            .steps(ctx);
            return Ok(Plan {
                start: steps.start,
                rollback: steps.rollback,
                ..Default::default()
            });
        }
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
                format!("drop index {} (if it is the table's)", self.index.name.raw()),
                drop_index_of_table(&idx, &t),
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

/// Drop `index` only if it is an index of `table`: until the pending build
/// runs, the name is free, and another role's index (or any relation) of
/// that name must survive a rollback. A missing table fails with 42P01
/// (a migration being abandoned skips the step).
fn drop_index_of_table(index: &str, table: &str) -> String {
    drop_index_of(index, &format!("{}::pg_catalog.regclass", Literal::pure(table)))
}

/// The same for a partition's index: nothing when the partition is gone
/// (detached and dropped during the migration).
pub(super) fn drop_index_of_partition(index: &str, partition: &str) -> String {
    drop_index_of(index, &format!("pg_catalog.to_regclass({})", Literal::pure(partition)))
}

/// `DROP INDEX index` if it is an index of the table `table_oid` gives.
fn drop_index_of(index: &str, table_oid: &str) -> String {
    let index_lit = Literal::pure(index);
    let body = format!(
        "BEGIN
    IF EXISTS (SELECT FROM pg_catalog.pg_index
                WHERE indexrelid OPERATOR(pg_catalog.=) pg_catalog.to_regclass({index_lit})
                  AND indrelid OPERATOR(pg_catalog.=) {table_oid}) THEN
        DROP INDEX {index};
    END IF;
END;
"
    );
    format!("DO {}", crate::sqlgen::dollar_quote(&body))
}

#[cfg(test)]
mod drop_tests {
    use super::drop_index_of_table;

    #[test]
    fn a_rollback_drops_only_an_index_of_its_table() {
        assert_eq!(
            drop_index_of_table("public.\"w$zdm$idx\"", "public.w"),
            "DO $zdm1$
BEGIN
    IF EXISTS (SELECT FROM pg_catalog.pg_index
                WHERE indexrelid OPERATOR(pg_catalog.=) pg_catalog.to_regclass('public.\"w$zdm$idx\"')
                  AND indrelid OPERATOR(pg_catalog.=) 'public.w'::pg_catalog.regclass) THEN
        DROP INDEX public.\"w$zdm$idx\";
    END IF;
END;
$zdm1$"
        );
    }
}
