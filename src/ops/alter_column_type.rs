//! alter_column_type.
//!
//! - Binary-compatible changes (varchar(n) widened or made text, numeric
//!   precision raised at the same scale, timestamp/time/interval precision
//!   raised, a binary-coercible cast to an unconstrained type): one short,
//!   lock-timeout-guarded `ALTER COLUMN ... TYPE` at start, no rewrite.
//! - Anything else: a second column `<column>_new` of the new type (see
//!   `column_copy`), kept in sync with `up_expr` (old → new, default a cast;
//!   the column's name is the old value) and `down_expr` (new → old, default
//!   a cast back; the column's name is the new value, as in pgroll). A value that cannot be
//!   converted fails the writer's statement with the cast's own error, never
//!   a silent NULL. Complete drops the old column and renames the new one.
//! - A key column (not binary compatible): through a shadow table, see `key_type`.

use super::column_copy::ColumnCopy;
use super::key_type::KeyTypeChange;
use super::shared::type_change_name;
use super::{check_new_column_name, fit_name, require_column, require_key, Operation, PlanContext};
use crate::catalog::{ColumnInfo, Lookup, TableInfo};
use crate::error::{ZdmError, ZdmResult};
use crate::expr::{analyze, analyze_mapped, analyze_type, row_of, ExprRules, RowExpr};
use crate::ident::{Ident, Literal, QualifiedName, SqlFragment};
use crate::plan::{LockMode, Plan, Step};
use crate::spec::AlterColumnTypeSpec;
use pgrx::pg_sys;

pub enum AlterColumnType {
    /// One catalog-only ALTER.
    InPlace {
        table: QualifiedName,
        column: ColumnInfo,
        new_type: SqlFragment,
    },
    Copy(ColumnCopy),
    /// A key column: a shadow table.
    Key(KeyTypeChange),
}

/// Typmod of numeric(p, s) is ((p << 16) | s) + 4.
fn numeric_precision_scale(typmod: i32) -> Option<(i32, i32)> {
    if typmod < 4 {
        return None;
    }
    let t = typmod - 4;
    Some(((t >> 16) & 0xffff, t & 0xffff))
}

/// Does PostgreSQL change this column's type without rewriting the table?
/// (Same rules as ATColumnChangeRequiresRewrite for the common types.)
pub fn binary_compatible(old_oid: u32, old_typmod: i32, new_oid: u32, new_typmod: i32, binary_cast: bool) -> bool {
    let widened = |unbounded_new: bool| unbounded_new || (old_typmod >= 0 && new_typmod >= old_typmod);
    if old_oid == new_oid {
        let oid = old_oid;
        if oid == pg_sys::VARCHAROID.to_u32() || oid == pg_sys::VARBITOID.to_u32() {
            return widened(new_typmod < 0);
        }
        if oid == pg_sys::NUMERICOID.to_u32() {
            if new_typmod < 0 {
                return true;
            }
            return match (numeric_precision_scale(old_typmod), numeric_precision_scale(new_typmod)) {
                (Some((p0, s0)), Some((p1, s1))) => s0 == s1 && p1 >= p0,
                _ => false,
            };
        }
        if [
            pg_sys::TIMESTAMPOID,
            pg_sys::TIMESTAMPTZOID,
            pg_sys::TIMEOID,
            pg_sys::TIMETZOID,
        ]
        .iter()
        .any(|o| o.to_u32() == oid)
        {
            return widened(new_typmod < 0);
        }
        return false;
    }
    // A binary-coercible cast to a type without a length limit (varchar → text).
    binary_cast && new_typmod < 0
}

impl AlterColumnType {
    pub fn new(
        table: &TableInfo,
        spec: &AlterColumnTypeSpec,
        lookup: &dyn Lookup,
        quote: fn(&str) -> Ident,
    ) -> ZdmResult<Self> {
        let col = require_column(table, &spec.column)?;
        let (new_oid, new_typmod, new_type) = analyze_type(&spec.new_type, "new_type")?;
        let tname = table.name.display_raw();
        if new_oid == col.type_oid && new_typmod == col.typmod && spec.up_expr.is_none() && spec.down_expr.is_none() {
            return Err(ZdmError::invalid_parameter(format!(
                "column \"{}\" of relation \"{tname}\" is already of type {new_type}",
                spec.column
            ))
            .hint("Nothing to change."));
        }
        if spec.up_expr.is_none() && spec.down_expr.is_none() && spec.new_column.is_none() {
            let binary_cast: bool = pgrx::Spi::get_one_with_args::<bool>(
                "SELECT EXISTS (SELECT FROM pg_catalog.pg_cast WHERE castsource = $1::int8::oid
                                   AND casttarget = $2::int8::oid AND castmethod = 'b')",
                &[(col.type_oid as i64).into(), (new_oid as i64).into()],
            )
            .map_err(crate::catalog::introspect::spi_err)?
            .unwrap_or(false);
            if binary_compatible(col.type_oid, col.typmod, new_oid, new_typmod, binary_cast) {
                return Ok(AlterColumnType::InPlace {
                    table: table.name.clone(),
                    column: col.clone(),
                    new_type,
                });
            }
        }

        let key = require_key(table)?;
        if table.is_key_column(&spec.column) {
            return Ok(AlterColumnType::Key(KeyTypeChange::new(
                table,
                col,
                spec,
                (new_oid, &new_type),
                lookup,
                crate::shadow::probe::probe,
            )?));
        }
        let new_name = spec
            .new_column
            .clone()
            .unwrap_or_else(|| format!("{}_new", spec.column));
        check_new_column_name(table, &new_name)?;
        let new_ident = quote(&new_name);
        let carry = super::carry::carry_over(table, col, &new_ident, "alter_column_type", crate::expr::replace_column)?;
        let row = row_of(table);
        let up = analyze_up(table, &row, col, spec, &new_type)?;
        let down = analyze_down(table, &row, col, spec, &new_ident, &new_type)?;
        // The old default must make sense for the new type: checked now, set by complete.
        let final_default = match &col.default_sql {
            None => None,
            Some(d) => {
                analyze(
                    table,
                    &row,
                    &d.0,
                    &ExprRules {
                        what: "the column's default",
                        cast_to: Some(&new_type.0),
                        allow_volatile: true,
                    },
                )
                .map_err(|e| {
                    e.hint(format!(
                        "The default of \"{}\" cannot become a {new_type}; drop or change it first.",
                        spec.column
                    ))
                })?;
                Some(SqlFragment(format!("({d})::{new_type}")))
            }
        };
        let cast = |text: &str, ty: &SqlFragment| format!("({text})::{ty}");
        Ok(AlterColumnType::Copy(ColumnCopy {
            table: table.name.clone(),
            old: col.clone(),
            new_name: new_ident,
            new_type: new_type.clone(),
            up: Some((cast(&up.text, &new_type), cast(&up.over_new, &new_type))),
            down: Some(cast(&down.over_new, &col.type_sql)),
            takes_old_name: true,
            carry,
            key: key.clone(),
            partitions: table.partitions.clone(),
            final_default,
        }))
    }

    fn table(&self) -> &QualifiedName {
        match self {
            AlterColumnType::InPlace { table, .. } => table,
            AlterColumnType::Copy(c) => &c.table,
            AlterColumnType::Key(k) => k.table(),
        }
    }

    fn column(&self) -> &ColumnInfo {
        match self {
            AlterColumnType::InPlace { column, .. } => column,
            AlterColumnType::Copy(c) => &c.old,
            AlterColumnType::Key(k) => k.column(),
        }
    }

    fn new_type(&self) -> &SqlFragment {
        match self {
            AlterColumnType::InPlace { new_type, .. } => new_type,
            AlterColumnType::Copy(c) => &c.new_type,
            AlterColumnType::Key(k) => k.new_type(),
        }
    }
}

/// `up_expr`: the new value from the row, where the column's name is its old
/// value. One that does not read the column would leave the new column
/// blind to every write of the old application.
fn analyze_up(
    table: &TableInfo,
    row: &[(Ident, SqlFragment)],
    col: &ColumnInfo,
    spec: &AlterColumnTypeSpec,
    new_type: &SqlFragment,
) -> ZdmResult<RowExpr> {
    let text = spec.up_expr.clone().unwrap_or_else(|| col.name.to_string());
    let rules = ExprRules {
        what: "up_expr",
        cast_to: Some(&new_type.0),
        allow_volatile: false,
    };
    let up = analyze(table, row, &text, &rules)?;
    if !up.columns.iter().any(|c| c == col.name.raw()) {
        return Err(ZdmError::invalid_parameter(format!(
            "up_expr {} does not read column {}",
            Literal::new(&up.text),
            Literal::new(col.name.raw())
        ))
        .hint(format!(
            "up_expr gives the new value ({new_type}) from the old one: in it, {} is the old value ({}), e.g. {}::{new_type}.",
            col.name, col.type_sql, col.name
        )));
    }
    Ok(up)
}

/// `down_expr`: the old column's value from the row, where the column's own
/// name is the NEW value (as in pgroll and Reshape; the new column's name is
/// accepted too), other columns the row. One that does not read the new value
/// would leave the old column stale on every write of the new application.
fn analyze_down(
    table: &TableInfo,
    row: &[(Ident, SqlFragment)],
    col: &ColumnInfo,
    spec: &AlterColumnTypeSpec,
    new_column: &Ident,
    new_type: &SqlFragment,
) -> ZdmResult<RowExpr> {
    let text = spec.down_expr.clone().unwrap_or_else(|| col.name.to_string());
    let mut down_row: Vec<(Ident, SqlFragment)> = row
        .iter()
        .map(|(n, t)| (n.clone(), if *n == col.name { new_type.clone() } else { t.clone() }))
        .collect();
    down_row.push((new_column.clone(), new_type.clone()));
    let rules = ExprRules {
        what: "down_expr",
        cast_to: Some(&col.type_sql.0),
        allow_volatile: false,
    };
    let write_as = [(col.name.clone(), new_column.clone())];
    let down = analyze_mapped(table, &down_row, &text, &rules, &write_as)?;
    if !down
        .columns
        .iter()
        .any(|c| c == col.name.raw() || c == new_column.raw())
    {
        return Err(ZdmError::invalid_parameter(format!(
            "down_expr {} does not read the new value of column {}",
            Literal::new(&down.text),
            Literal::new(col.name.raw())
        ))
        .hint(format!(
            "down_expr gives the old column's value ({}) from the new one: in it, {} is the new value ({new_type}), e.g. {}::{}.",
            col.type_sql, col.name, col.name, col.type_sql
        )));
    }
    Ok(down)
}

impl Operation for AlterColumnType {
    fn claimed_columns(&self) -> Vec<String> {
        match self {
            AlterColumnType::InPlace { column, .. } => vec![column.name.raw().to_string()],
            AlterColumnType::Copy(c) => vec![c.old.name.raw().to_string(), c.new_name.raw().to_string()],
            AlterColumnType::Key(k) => k.claimed_columns(),
        }
    }

    fn default_name(&self) -> String {
        fit_name(&type_change_name(self.table(), self.column(), self.new_type()))
    }

    fn plan(&self, ctx: &PlanContext) -> ZdmResult<Plan> {
        match self {
            AlterColumnType::InPlace {
                table,
                column,
                new_type,
            } => {
                let t = table.to_string();
                let c = &column.name;
                Ok(Plan {
                    start: vec![Step::locked(
                        format!(
                            "{} becomes {new_type}: binary compatible, catalog only, no rewrite",
                            c.raw()
                        ),
                        format!("ALTER TABLE {t} ALTER COLUMN {c} TYPE {new_type}"),
                        &t,
                        LockMode::AccessExclusive,
                    )],
                    rollback: vec![Step::locked(
                        format!(
                            "{} back to {}: checks every row under the lock (not catalog only)",
                            c.raw(),
                            column.type_sql
                        ),
                        format!("ALTER TABLE {t} ALTER COLUMN {c} TYPE {}", column.type_sql),
                        &t,
                        LockMode::AccessExclusive,
                    )],
                    ..Default::default()
                })
            }
            AlterColumnType::Copy(copy) => {
                let what = format!(
                    "compute {} ({}) from {}",
                    copy.new_name.raw(),
                    copy.new_type,
                    copy.old.name.raw()
                );
                copy.plan(ctx, &what)
            }
            AlterColumnType::Key(k) => k.plan(ctx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric(p: i32, s: i32) -> i32 {
        ((p << 16) | s) + 4
    }

    #[test]
    fn binary_compatible_changes() {
        let varchar = pg_sys::VARCHAROID.to_u32();
        let numeric_oid = pg_sys::NUMERICOID.to_u32();
        let ts = pg_sys::TIMESTAMPTZOID.to_u32();
        let int4 = pg_sys::INT4OID.to_u32();
        let int8 = pg_sys::INT8OID.to_u32();
        let text = pg_sys::TEXTOID.to_u32();
        assert!(binary_compatible(varchar, 54, varchar, 104, false)); // varchar(50) -> (100)
        assert!(!binary_compatible(varchar, 104, varchar, 54, false)); // narrowing
        assert!(binary_compatible(varchar, 54, varchar, -1, false)); // -> varchar
        assert!(!binary_compatible(varchar, -1, varchar, 54, false));
        assert!(binary_compatible(varchar, 54, text, -1, true)); // -> text
        assert!(binary_compatible(
            numeric_oid,
            numeric(10, 2),
            numeric_oid,
            numeric(12, 2),
            false
        ));
        assert!(!binary_compatible(
            numeric_oid,
            numeric(10, 2),
            numeric_oid,
            numeric(12, 3),
            false
        ));
        assert!(binary_compatible(numeric_oid, numeric(10, 2), numeric_oid, -1, false));
        assert!(binary_compatible(ts, 3 + 0, ts, 6, false));
        assert!(!binary_compatible(int4, -1, int8, -1, false)); // int -> bigint rewrites
        assert!(!binary_compatible(int4, -1, numeric_oid, numeric(10, 2), false));
    }
}
