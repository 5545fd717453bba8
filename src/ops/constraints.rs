//! add_check and add_foreign_key: the
//! constraint is added `NOT VALID` at start (a short lock; new rows are checked
//! from then on) and validated by complete (`VALIDATE CONSTRAINT` takes only
//! SHARE UPDATE EXCLUSIVE: reads and writes go on during the scan).

use super::{fit_name, require_column, Operation, PlanContext};
use crate::catalog::{Lookup, TableInfo};
use crate::error::{ZdmError, ZdmResult};
use crate::expr::{analyze, row_of, ExprRules};
use crate::ident::{Ident, QualifiedName};
use crate::plan::{LockMode, Plan, Step};
use crate::spec::{AddCheckSpec, AddForeignKeySpec};
use pgrx::pg_sys::errcodes::PgSqlErrorCode;

fn check_constraint_name(table: &TableInfo, name: &str) -> ZdmResult<()> {
    if name.is_empty() || name.len() > 63 {
        return Err(ZdmError::new(
            PgSqlErrorCode::ERRCODE_INVALID_NAME,
            format!("constraint name \"{name}\" must be 1 to 63 bytes long"),
        ));
    }
    if table.constraint_names.iter().any(|c| c == name) {
        return Err(ZdmError::new(
            PgSqlErrorCode::ERRCODE_DUPLICATE_OBJECT,
            format!(
                "constraint \"{name}\" for relation \"{}\" already exists",
                table.name.display_raw()
            ),
        )
        .hint("Choose another name."));
    }
    Ok(())
}

pub struct AddCheck {
    table: QualifiedName,
    name: Ident,
    expr: String,
    columns: Vec<String>,
}

impl AddCheck {
    pub fn new(table: &TableInfo, spec: &AddCheckSpec, quote: fn(&str) -> Ident) -> ZdmResult<Self> {
        check_constraint_name(table, &spec.constraint)?;
        let e = analyze(
            table,
            &row_of(table),
            &spec.check,
            &ExprRules {
                what: "check_expr",
                cast_to: None,
                allow_volatile: false,
            },
        )?;
        if e.result_type != pgrx::pg_sys::BOOLOID.to_u32() {
            return Err(ZdmError::new(
                PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH,
                format!("check_expr \"{}\" is not a boolean expression", e.text),
            )
            .hint("A CHECK constraint is a condition, e.g. amount >= 0."));
        }
        Ok(AddCheck {
            table: table.name.clone(),
            name: quote(&spec.constraint),
            expr: e.text,
            columns: e.columns,
        })
    }
}

impl Operation for AddCheck {
    fn claimed_columns(&self) -> Vec<String> {
        self.columns.clone()
    }

    fn default_name(&self) -> String {
        fit_name(&format!("{}_add_{}", self.table.name.raw(), self.name.raw()))
    }

    fn plan(&self, _ctx: &PlanContext) -> ZdmResult<Plan> {
        let t = self.table.to_string();
        let n = &self.name;
        Ok(Plan {
            start: vec![Step::locked(
                format!(
                    "check {} added NOT VALID: new rows are checked, existing ones not yet",
                    n.raw()
                ),
                format!("ALTER TABLE {t} ADD CONSTRAINT {n} CHECK ({}) NOT VALID", self.expr),
                &t,
                LockMode::AccessExclusive,
            )],
            validate: vec![Step::locked(
                format!("validate {} (reads and writes go on)", n.raw()),
                format!("ALTER TABLE {t} VALIDATE CONSTRAINT {n}"),
                &t,
                LockMode::ShareUpdateExclusive,
            )],
            rollback: vec![Step::locked(
                format!("drop {}", n.raw()),
                format!("ALTER TABLE {t} DROP CONSTRAINT IF EXISTS {n}"),
                &t,
                LockMode::AccessExclusive,
            )],
            ..Default::default()
        })
    }
}

pub struct AddForeignKey {
    table: QualifiedName,
    name: Ident,
    columns: Vec<Ident>,
    referenced: QualifiedName,
    referenced_columns: Vec<Ident>,
    on_delete: &'static str,
}

const ON_DELETE: [&str; 5] = ["NO ACTION", "RESTRICT", "CASCADE", "SET NULL", "SET DEFAULT"];

impl AddForeignKey {
    pub fn new(
        table: &TableInfo,
        spec: &AddForeignKeySpec,
        lookup: &dyn Lookup,
        quote: fn(&str) -> Ident,
    ) -> ZdmResult<Self> {
        check_constraint_name(table, &spec.constraint)?;
        let on_delete = ON_DELETE
            .iter()
            .find(|a| a.eq_ignore_ascii_case(spec.on_delete.trim()))
            .ok_or_else(|| {
                ZdmError::invalid_parameter(format!("on_delete \"{}\" is not a foreign key action", spec.on_delete))
                    .hint(format!("One of: {}.", ON_DELETE.join(", ")))
            })?;
        if spec.columns.is_empty() || spec.columns.len() != spec.referenced_columns.len() {
            return Err(ZdmError::new(
                PgSqlErrorCode::ERRCODE_INVALID_FOREIGN_KEY,
                format!(
                    "a foreign key needs as many referenced columns ({}) as columns ({})",
                    spec.referenced_columns.len(),
                    spec.columns.len()
                ),
            )
            .hint("List the columns in the same order on both sides."));
        }
        let columns = spec
            .columns
            .iter()
            .map(|c| require_column(table, c).map(|c| c.name.clone()))
            .collect::<ZdmResult<Vec<_>>>()?;
        let referenced = lookup.table(&spec.references)?;
        let referenced_columns = spec
            .referenced_columns
            .iter()
            .map(|c| require_column(&referenced, c).map(|c| c.name.clone()))
            .collect::<ZdmResult<Vec<_>>>()?;
        Ok(AddForeignKey {
            table: table.name.clone(),
            name: quote(&spec.constraint),
            columns,
            referenced: referenced.name.clone(),
            referenced_columns,
            on_delete,
        })
    }
}

impl Operation for AddForeignKey {
    fn claimed_columns(&self) -> Vec<String> {
        self.columns.iter().map(|c| c.raw().to_string()).collect()
    }

    fn default_name(&self) -> String {
        fit_name(&format!("{}_add_{}", self.table.name.raw(), self.name.raw()))
    }

    fn plan(&self, _ctx: &PlanContext) -> ZdmResult<Plan> {
        let t = self.table.to_string();
        let r = self.referenced.to_string();
        let n = &self.name;
        let list = |v: &[Ident]| v.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(", ");
        let mut start = Step::locked(
            format!(
                "foreign key {} added NOT VALID: new rows are checked, existing ones not yet",
                n.raw()
            ),
            format!(
                "ALTER TABLE {t} ADD CONSTRAINT {n} FOREIGN KEY ({}) REFERENCES {r} ({}) ON DELETE {} NOT VALID",
                list(&self.columns),
                list(&self.referenced_columns),
                self.on_delete
            ),
            &t,
            LockMode::ShareRowExclusive,
        );
        // The referenced table is locked too (SHARE ROW EXCLUSIVE): taken up front with the same timeout.
        let lock_ref = Step::locked(
            format!("lock {}", self.referenced.display_raw()),
            "SELECT 1".into(),
            &r,
            LockMode::ShareRowExclusive,
        );
        start
            .description
            .push_str(&format!(" (also locks {})", self.referenced.display_raw()));
        Ok(Plan {
            start: vec![lock_ref.clone(), start],
            validate: vec![Step::locked(
                format!("validate {} (reads and writes go on)", n.raw()),
                format!("ALTER TABLE {t} VALIDATE CONSTRAINT {n}"),
                &t,
                LockMode::ShareUpdateExclusive,
            )],
            rollback: vec![
                Step::locked(
                    format!("lock {}", self.referenced.display_raw()),
                    "SELECT 1".into(),
                    &r,
                    LockMode::AccessExclusive,
                ),
                Step::locked(
                    format!("drop {}", n.raw()),
                    format!("ALTER TABLE {t} DROP CONSTRAINT IF EXISTS {n}"),
                    &t,
                    LockMode::AccessExclusive,
                ),
            ],
            ..Default::default()
        })
    }
}
