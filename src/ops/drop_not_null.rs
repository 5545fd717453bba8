//! drop_not_null: at start (the new application may write NULLs at once; the
//! old one never does), `DROP NOT NULL` is catalog only. Complete has nothing
//! left to do.
//!
//! Rollback puts NOT NULL back. Whatever the steps, one transaction cannot do
//! it without scanning the column under ACCESS EXCLUSIVE: a CHECK proves NOT
//! NULL only once validated, and a CHECK added in the same transaction keeps
//! its exclusive lock through the VALIDATE. So rollback is one scan (`SET NOT
//! NULL`), refused with the way out when NULLs were written meanwhile; for a
//! large table the hint points at completing and a later set_not_null, whose
//! VALIDATE runs without the exclusive lock.

use super::{fit_name, require_column, Operation, PlanContext};
use crate::catalog::index_facts::index_facts;
use crate::catalog::TableInfo;
use crate::error::{ZdmError, ZdmResult};
use crate::ident::{Ident, Literal, QualifiedName};
use crate::plan::{LockMode, Plan, Step};
use crate::spec::DropNotNullSpec;
use pgrx::pg_sys::errcodes::PgSqlErrorCode;

pub struct DropNotNull {
    table: QualifiedName,
    column: Ident,
}

impl DropNotNull {
    pub fn new(table: &TableInfo, spec: &DropNotNullSpec) -> ZdmResult<Self> {
        let col = require_column(table, &spec.column)?;
        let (t, c) = (&table.name, &col.name);
        if !col.not_null {
            return Err(
                ZdmError::invalid_parameter(format!("column {c} of relation {t} is already nullable"))
                    .hint("Nothing to change."),
            );
        }
        let must_stay = |why: &str| {
            ZdmError::new(
                PgSqlErrorCode::ERRCODE_INVALID_TABLE_DEFINITION,
                format!("column {c} of relation {t} {why}"),
            )
        };
        if col.identity {
            return Err(must_stay("is an identity column").hint("An identity column is always NOT NULL."));
        }
        for index in table.indexes.iter().filter(|i| i.attnums.contains(&col.attnum)) {
            if index.primary {
                return Err(must_stay("is in the primary key").hint("Change the table's key first."));
            }
            if index_facts(index.oid)?.replica_identity {
                return Err(
                    must_stay(&format!("is in index {} used as replica identity", index.name))
                        .hint("Change the replica identity first (operation set_replica_identity)."),
                );
            }
        }
        Ok(DropNotNull {
            table: table.name.clone(),
            column: col.name.clone(),
        })
    }
}

impl Operation for DropNotNull {
    fn claimed_columns(&self) -> Vec<String> {
        vec![self.column.raw().to_string()]
    }

    fn default_name(&self) -> String {
        fit_name(&format!(
            "{}_{}_drop_not_null",
            self.table.name.raw(),
            self.column.raw()
        ))
    }

    fn plan(&self, ctx: &PlanContext) -> ZdmResult<Plan> {
        let (t, c) = (self.table.to_string(), &self.column);
        let aex = LockMode::AccessExclusive;
        Ok(Plan {
            start: vec![Step::locked(
                format!("{} accepts NULL: catalog only", c.raw()),
                format!("ALTER TABLE {t} ALTER COLUMN {c} DROP NOT NULL"),
                &t,
                aex,
            )],
            rollback: vec![Step::locked(
                format!(
                    "{} NOT NULL again: scans the column under the lock; refused if NULLs were written",
                    c.raw()
                ),
                set_not_null_or_refuse(&t, c, &ctx.migration),
                &t,
                aex,
            )],
            ..Default::default()
        })
    }
}

/// `SET NOT NULL`, its failure turned into a refusal that says what to do.
fn set_not_null_or_refuse(table: &str, column: &Ident, migration: &str) -> String {
    let m = Literal::pure(migration);
    let message = Literal::pure(&format!(
        "column {column} of relation {table} has NULLs written since migration {m} started"
    ));
    let hint = Literal::pure(&format!(
        "Nothing was changed. Replace them (UPDATE {table} SET {column} = ... WHERE {column} IS NULL) and roll \
         back again; or keep the NULLs: SELECT zdm.complete({m});"
    ));
    let body = format!(
        "BEGIN
    ALTER TABLE {table} ALTER COLUMN {column} SET NOT NULL;
EXCEPTION WHEN not_null_violation THEN
    RAISE EXCEPTION USING ERRCODE = 'not_null_violation', MESSAGE = {message}, HINT = {hint};
END;
"
    );
    format!("DO {}", crate::sqlgen::dollar_quote(&body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollback_refuses_with_the_way_out() {
        assert_eq!(
            set_not_null_or_refuse("public.t", &Ident::test("e"), "m"),
            "DO $zdm$
BEGIN
    ALTER TABLE public.t ALTER COLUMN e SET NOT NULL;
EXCEPTION WHEN not_null_violation THEN
    RAISE EXCEPTION USING ERRCODE = 'not_null_violation', MESSAGE = 'column e of relation public.t has NULLs \
written since migration ''m'' started', HINT = 'Nothing was changed. Replace them (UPDATE public.t SET e = ... \
WHERE e IS NULL) and roll back again; or keep the NULLs: SELECT zdm.complete(''m'');';
END;
$zdm$"
        );
    }
}
