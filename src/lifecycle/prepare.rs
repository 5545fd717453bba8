//! A spec turned into a named plan, checked against the live catalog: the
//! part of a start that changes nothing, shared by `zdm.start()` and the dry
//! runs (`zdm.plan()`, `zdm.plan_steps()`).

use crate::catalog::introspect::load_table;
use crate::catalog::TableInfo;
use crate::error::{ZdmError, ZdmResult};
use crate::ident::{Ident, Literal};
use crate::migrations::store;
use crate::ops::{self, check_migration_name, Operation, PlanContext};
use crate::plan::Plan;
use crate::privilege::{as_table_owner, require_table_owner};
use crate::spec::MigrationSpec;
use pgrx::pg_sys::errcodes::PgSqlErrorCode;

/// A spec turned into a named plan, checked against the live catalog.
pub struct Prepared {
    pub name: String,
    pub table_name: String,
    pub kind: String,
    pub columns: Vec<String>,
    pub plan: Plan,
}

fn quote(s: &str) -> Ident {
    Ident::new(s)
}

/// Check `spec` against the live catalog and plan it; nothing is changed.
pub fn prepare(spec: &MigrationSpec) -> ZdmResult<Prepared> {
    let (table, built) = build_operations(spec)?;
    let name = match &spec.name {
        Some(n) => n.clone(),
        None => default_name(&built)?,
    };
    check_migration_name(&name)?;
    let ctx = PlanContext {
        migration: name.clone(),
        quote,
    };
    let mut plan = Plan::default();
    let mut columns = Vec::new();
    for op in &built {
        plan.merge(op.plan(&ctx)?)
            .map_err(|e| ZdmError::not_supported(e).hint("Split the migration in two."))?;
        columns.extend(op.claimed_columns());
    }
    if let Some(tree) = &table.partitions {
        plan.partitions = tree.members.iter().map(|p| p.name.to_string()).collect();
        crate::ops::partitioned::validate_per_partition(&mut plan);
    }
    let kind = if spec.operations.len() == 1 {
        spec.operations[0].kind().to_string()
    } else {
        "multi".to_string()
    };
    Ok(Prepared {
        name,
        table_name: table.name.to_string(),
        kind,
        columns,
        plan,
    })
}

/// Every operation of `spec` built (every check made) against its table,
/// as the table's owner, after the caller's right and other migrations'
/// claims are checked. All operations change one table.
fn build_operations(spec: &MigrationSpec) -> ZdmResult<(TableInfo, Vec<Box<dyn Operation>>)> {
    let first_table = spec.operations[0].table().to_string();
    if spec.operations.len() > 1
        && spec
            .operations
            .iter()
            .any(|o| matches!(o, crate::spec::OperationSpec::CreateShadowTable(_)))
    {
        return Err(
            ZdmError::not_supported("a shadow table migration has exactly one operation")
                .hint("Put every change of the table in the shadow's alterations and column_map."),
        );
    }
    let mut table: Option<TableInfo> = None;
    let mut built = Vec::new();
    for op in &spec.operations {
        let t = load_table(op.table())?;
        let table_name = t.name.to_string();
        require_table_owner(&table_name, None)?;
        // A column another migration is changing carries that migration's
        // triggers: say so first, rather than refusing because of them.
        conflict_check(&t.name.to_string(), &op.named_columns())?;
        if let Some(first) = &table {
            if first.oid != t.oid {
                return Err(ZdmError::not_supported(format!(
                    "a migration changes one table; \"{}\" and \"{}\" differ",
                    first_table,
                    op.table()
                ))
                .hint("Write one migration per table."));
            }
        }
        // The shadow's probe creates (and rolls back) tables: as the owner would.
        built.push(as_table_owner(&table_name, || {
            ops::build(op, &t, &crate::catalog::introspect::ServerLookup, quote)
        })??);
        table = Some(t);
    }
    Ok((table.expect("at least one operation"), built))
}

/// The name of an unnamed migration: its operations' default names, made
/// printable, cut to fit, and suffixed if an earlier migration has it.
fn default_name(built: &[Box<dyn Operation>]) -> ZdmResult<String> {
    let names: Vec<String> = built.iter().map(|o| o.default_name()).collect();
    // Made of table and column names, which may hold control
    // characters that a migration name may not (see check_migration_name).
    let printable: String = names
        .join("_and_")
        .chars()
        .map(|c| if crate::ident::is_control(c) { '_' } else { c })
        .collect();
    unused_name(&ops::fit_name(&printable))
}

/// A generated name already used by an earlier migration (names stay in the
/// catalog as history) gets a suffix: `users_rename_name_to_full_name_2`. A
/// rolled-back migration's name is free (start archives it).
fn unused_name(base: &str) -> ZdmResult<String> {
    if !store::name_taken(base)? {
        return Ok(base.to_string());
    }
    for n in 2..1000 {
        let suffix = format!("_{n}");
        let candidate = format!("{}{suffix}", ops::fit_name_with_room(base, suffix.len()));
        if !store::name_taken(&candidate)? {
            return Ok(candidate);
        }
    }
    Err(ZdmError::new(
        PgSqlErrorCode::ERRCODE_DUPLICATE_OBJECT,
        format!("no free migration name like \"{base}\""),
    )
    .hint("Give the migration a name of your own."))
}

/// 55006 when an active migration of the table claims any of `columns`.
pub fn conflict_check(table_name: &str, columns: &[String]) -> ZdmResult<()> {
    if let Some((other, cols)) = store::conflicting_migration(table_name, columns)? {
        let what = if cols.iter().any(|c| c == crate::spec::WHOLE_TABLE) {
            format!("{table_name} is being restructured (or changed) by migration \"{other}\"")
        } else {
            format!(
                "column(s) {} of {} are already being migrated by migration \"{other}\"",
                cols.join(", "),
                table_name
            )
        };
        return Err(ZdmError::new(PgSqlErrorCode::ERRCODE_OBJECT_IN_USE, what).hint(format!(
            "Complete or roll back \"{other}\" first: SELECT zdm.complete({0}); or SELECT zdm.rollback({0});",
            Literal::new(&other)
        )));
    }
    Ok(())
}
