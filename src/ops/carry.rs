//! What a two-column migration (rename_column, alter_column_type) carries from
//! the old column to its new twin: indexes (rebuilt CONCURRENTLY on the new
//! column, as top-level steps), CHECK constraints and foreign keys from the
//! table (added NOT VALID at start, validated before complete). At complete the
//! old objects go with the old column and the new ones take their names, so
//! the table ends up exactly as before but for the column.
//!
//! Objects that cannot be carried over are refused before anything is created:
//! views, triggers and policies that name the column, exclusion constraints,
//! the primary key, foreign keys of other tables that reference the column.

use crate::catalog::{CheckInfo, ColumnInfo, ForeignKeyInfo, IndexInfo, TableInfo};
use crate::error::{ZdmError, ZdmResult};
use crate::expr::row_of;
use crate::ident::{Ident, SqlFragment};

#[derive(Debug, Clone)]
pub struct CarriedIndex {
    pub old: IndexInfo,
    /// Key elements (with collation, operator class, ordering), on the new column.
    pub key: Vec<String>,
    pub include: Vec<String>,
    pub predicate: Option<String>,
}

#[derive(Debug, Clone)]
pub struct CarriedCheck {
    pub old: CheckInfo,
    pub expr: String,
}

#[derive(Debug, Clone)]
pub struct CarriedForeignKey {
    pub old: ForeignKeyInfo,
    pub columns: Vec<Ident>,
}

#[derive(Debug, Clone, Default)]
pub struct CarryOver {
    pub indexes: Vec<CarriedIndex>,
    pub checks: Vec<CarriedCheck>,
    pub foreign_keys: Vec<CarriedForeignKey>,
}

/// Rewrites an expression of `row` so that column `attnum` reads `to`
/// (`crate::expr::replace_column` in the server; a stand-in in unit tests).
pub type Rewrite = fn(&[(Ident, SqlFragment)], &str, i16, &Ident, &str) -> ZdmResult<String>;

pub fn carry_over(
    table: &TableInfo,
    col: &ColumnInfo,
    new: &Ident,
    op: &str,
    rewrite: Rewrite,
) -> ZdmResult<CarryOver> {
    let tname = table.name.display_raw();
    let column = col.name.raw();
    if col.identity || col.generated {
        return Err(ZdmError::not_supported(format!(
            "column \"{column}\" of relation \"{tname}\" is an identity or generated column; {op} cannot keep two copies of it"
        ))
        .hint("Rebuild the table with a shadow table instead."));
    }
    // Callers route key columns elsewhere (alter_column_type: a shadow table;
    // rename_column: a refusal saying what works); kept as the last guard.
    if table.is_key_column(column) {
        return Err(ZdmError::not_supported(format!(
            "column \"{column}\" is part of the key of relation \"{tname}\"; {op} does not change key columns"
        ))
        .hint("Rebuild the table with a shadow table instead."));
    }
    let row = row_of(table);
    let rename = |text: &str, what: &str| rewrite(&row, text, col.attnum, new, what);
    let mut carry = CarryOver::default();
    let mut carried_oids: Vec<u32> = Vec::new();
    for ix in table.indexes.iter().filter(|i| i.attnums.contains(&col.attnum)) {
        if ix.primary || ix.exclusion {
            continue; // left as a blocker below
        }
        let mut key = Vec::new();
        let mut include = Vec::new();
        for (n, (attnum, text, suffix)) in ix.elements.iter().enumerate() {
            let element = if *attnum == col.attnum {
                new.to_string()
            } else if *attnum == 0 {
                rename(text, "index expression")?
            } else {
                text.clone()
            };
            if n < ix.key_count {
                key.push(format!("{element}{suffix}"));
            } else {
                include.push(element);
            }
        }
        let predicate = ix
            .predicate
            .as_deref()
            .map(|p| rename(p, "index predicate"))
            .transpose()?;
        carried_oids.push(ix.oid);
        carried_oids.extend(ix.constraint_oid);
        carry.indexes.push(CarriedIndex {
            old: ix.clone(),
            key,
            include,
            predicate,
        });
    }
    for ck in table.checks.iter().filter(|c| c.attnums.contains(&col.attnum)) {
        carried_oids.push(ck.oid);
        carry.checks.push(CarriedCheck {
            old: ck.clone(),
            expr: rename(&ck.expr, "check constraint")?,
        });
    }
    for fk in table.foreign_keys.iter().filter(|f| f.attnums.contains(&col.attnum)) {
        carried_oids.push(fk.oid);
        let columns = fk
            .attnums
            .iter()
            .map(|a| {
                if *a == col.attnum {
                    Ok(new.clone())
                } else {
                    table
                        .columns
                        .iter()
                        .find(|c| c.attnum == *a)
                        .map(|c| c.name.clone())
                        .ok_or_else(|| {
                            ZdmError::new(
                                pgrx::pg_sys::errcodes::PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
                                "foreign key column not found",
                            )
                        })
                }
            })
            .collect::<ZdmResult<Vec<_>>>()?;
        carry.foreign_keys.push(CarriedForeignKey {
            old: fk.clone(),
            columns,
        });
    }
    let blockers: Vec<String> = table
        .dependents_of(col.attnum)
        .filter(|d| !carried_oids.contains(&d.oid))
        .map(|d| format!("{} ({})", d.name, d.kind))
        .collect();
    if !blockers.is_empty() {
        return Err(ZdmError::not_supported(format!(
            "column \"{column}\" of relation \"{tname}\" is used by objects that {op} cannot carry over: {}",
            blockers.join(", ")
        ))
        .hint("Views, triggers, policies, exclusion constraints and foreign keys of other tables naming the column must be dropped or changed around the migration, or the table rebuilt with a shadow table."));
    }
    Ok(carry)
}
