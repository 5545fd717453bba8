//! ALTER TABLE: each subcommand's work (catalog only, scan, index build,
//! rewrite) decided from the catalog, and the rules that fire on it.

use super::{types, Analysis, Ctx, Finding, TableState, Verdict, Work};
use crate::lint::model::*;
use serde_json::json;

pub fn alter_table(ctx: &Ctx, table: &RelName, cmds: &[AlterCmd], lock: LockMode) -> Analysis {
    let mut work = Work::CatalogOnly;
    let mut findings = Vec::new();
    for c in cmds {
        let (w, f) = cmd(ctx, table, c);
        work = work.max(w);
        findings.extend(f);
    }
    Analysis {
        lock: Some(lock),
        work,
        findings,
    }
}

/// The finding of a rule whose danger is work on the table's rows: `ok` when
/// the table is new or empty.
fn on_rows(ctx: &Ctx, table: &RelName, rule: &'static str, danger: String) -> Finding {
    match ctx.harmless(table) {
        Some(why) => Finding::ok(rule, why),
        None => Finding::new(rule, Verdict::Danger, format!("{danger}: {}", ctx.describe(table))),
    }
}

fn spec(op: serde_json::Value) -> Option<serde_json::Value> {
    Some(json!({ "operations": [op] }))
}

fn cmd(ctx: &Ctx, table: &RelName, c: &AlterCmd) -> (Work, Vec<Finding>) {
    let t = ctx.spec_table(table);
    match c {
        AlterCmd::AddColumn(col) => add_column(ctx, table, col),
        AlterCmd::DropColumn { column } => {
            let f = if ctx.is_created(table) {
                Finding::ok("ban-drop-column", format!("{} is created earlier in this text", table.display()))
            } else {
                Finding::new("ban-drop-column", Verdict::Danger,
                    format!("the running application may still read or write {column}: its queries fail the moment the column is gone"))
                    .with_safe(format!("zdm.drop_column('{t}', '{column}'): deprecated now, dropped by zdm.complete() once no application uses it"),
                        spec(json!({"op": "drop_column", "table": t, "column": column})))
            };
            (Work::CatalogOnly, vec![f])
        }
        AlterCmd::AlterType { column, new_type, using } => alter_type(ctx, table, column, new_type, using.as_deref()),
        AlterCmd::SetNotNull { column } => set_not_null(ctx, table, column),
        AlterCmd::DropNotNull { column } => (Work::CatalogOnly, vec![Finding::new("ban-drop-not-null", Verdict::Warning,
            format!("an application that relies on {column} never being NULL breaks when old and new versions run side by side"))]),
        AlterCmd::AddConstraint(k) => add_constraint(ctx, table, k, None),
        AlterCmd::ValidateConstraint { .. } => (Work::Scan, vec![Finding::ok("constraint-missing-not-valid",
            "VALIDATE CONSTRAINT scans under SHARE UPDATE EXCLUSIVE: reads and writes go on")]),
        _ => (Work::CatalogOnly, vec![]),
    }
}

fn add_column(ctx: &Ctx, table: &RelName, col: &ColumnSpec) -> (Work, Vec<Finding>) {
    let t = ctx.spec_table(table);
    let mut findings = types::column_type(col);
    let mut work = Work::CatalogOnly;
    let serial = types::is_serial(&col.type_ref);
    let add_spec = |default: Option<&str>| {
        spec(json!({"op": "add_column", "table": t, "column": col.name,
                    "type": col.type_ref.resolved.as_ref().map_or(col.type_ref.written.clone(), |r| r.sql.clone()),
                    "default": default, "not_null": col.not_null}))
    };
    if col.generated_stored {
        work = Work::Rewrite;
        findings.push(on_rows(ctx, table, "adding-stored-generated-column",
            "a stored generated column rewrites the whole table under ACCESS EXCLUSIVE".into())
            .with_safe("add a plain column, fill it in batches (zdm.add_column + CALL zdm.backfill), keep it current with a trigger", None));
    }
    if serial || col.identity {
        work = Work::Rewrite;
        let pk = col
            .constraints
            .iter()
            .any(|k| matches!(k.kind, ConstraintKind::PrimaryKey { .. }));
        let rule = if pk {
            "adding-serial-primary-key-field"
        } else {
            "adding-auto-incrementing-column"
        };
        findings.push(
            on_rows(
                ctx,
                table,
                rule,
                "an auto-incrementing column fills every existing row: a rewrite under ACCESS EXCLUSIVE".into(),
            )
            .with_safe(
                "zdm.create_shadow_table with the new column: copied in batches, swapped in",
                None,
            ),
        );
    }
    match &col.default {
        Some(d) if !serial && !col.identity => match d.volatile {
            Some(true) => {
                work = Work::Rewrite;
                findings.push(on_rows(ctx, table, "adding-field-with-default",
                    format!("the default {} is volatile: every row is rewritten under ACCESS EXCLUSIVE", d.text.as_deref().unwrap_or("?")))
                    .with_safe(format!("zdm.add_column('{t}', '{}', ...): added without a rewrite, existing rows filled in batches", col.name),
                        add_spec(d.text.as_deref())));
            }
            Some(false) => findings.push(Finding::ok("adding-field-with-default",
                format!("the default {} is not volatile: stored in the catalog, no rewrite (PostgreSQL 11+)", d.text.as_deref().unwrap_or("")))),
            None => findings.push(Finding::new("adding-field-with-default", Verdict::Warning,
                "the default could not be analysed here (an object created in this text?): a volatile default rewrites the table")),
        },
        None if col.not_null && !serial && !col.identity && !col.generated_stored => {
            findings.push(match ctx.harmless(table) {
                Some(why) => Finding::ok("adding-required-field", why),
                None => Finding::new("adding-required-field", Verdict::Danger,
                    format!("NOT NULL without a default fails on a table with rows: {}", ctx.describe(table)))
                    .with_safe(format!("zdm.add_column('{t}', '{}', ..., not_null => true, fill_expr => <value for existing rows>)", col.name), None),
            });
        }
        _ => {}
    }
    for k in &col.constraints {
        let (w, f) = add_constraint(ctx, table, k, Some(col));
        work = work.max(w);
        findings.extend(f);
    }
    (work, findings)
}

fn alter_type(
    ctx: &Ctx,
    table: &RelName,
    column: &str,
    new_type: &TypeRef,
    using: Option<&str>,
) -> (Work, Vec<Finding>) {
    let rule = "changing-column-type";
    if let Some(why) = ctx.harmless(table) {
        return (Work::Rewrite, vec![Finding::ok(rule, why)]);
    }
    let rewrites = ctx
        .facts
        .type_changes
        .get(&(table.display(), column.to_string()))
        .copied()
        .flatten();
    let target = new_type
        .resolved
        .as_ref()
        .map_or(new_type.written.clone(), |r| r.sql.clone());
    if using.is_none() && rewrites == Some(false) {
        return (Work::CatalogOnly, vec![Finding::ok(rule,
            format!("{column} → {target} is binary coercible: PostgreSQL changes the catalog only, no rewrite or index rebuild"))]);
    }
    let why = match (using, rewrites) {
        (Some(_), _) => {
            "a USING expression computes every row again: the table and its indexes are rewritten".to_string()
        }
        (None, Some(true)) => {
            format!("{column} → {target} is not binary coercible: the table and its indexes are rewritten")
        }
        _ => "the column or the type is not known here: assuming a rewrite".to_string(),
    };
    let t = ctx.spec_table(table);
    let mut op = json!({"op": "alter_column_type", "table": t, "column": column, "new_type": target});
    if let Some(u) = using {
        op["up_expr"] = json!(u);
    }
    let f = Finding::new(
        rule,
        Verdict::Danger,
        format!("{why} under ACCESS EXCLUSIVE: {}", ctx.describe(table)),
    )
    .with_safe(
        format!(
            "zdm.alter_column_type('{t}', '{column}', '{target}'): a second column kept in sync, backfilled in batches"
        ),
        Some(json!({ "operations": [op] })),
    );
    (Work::Rewrite, vec![f])
}

fn set_not_null(ctx: &Ctx, table: &RelName, column: &str) -> (Work, Vec<Finding>) {
    let rule = "adding-not-nullable-field";
    if let Some(why) = ctx.harmless(table) {
        return (Work::Scan, vec![Finding::ok(rule, why)]);
    }
    if let TableState::Existing(t) = ctx.state(table) {
        if t.columns.iter().any(|c| c.name == column && c.not_null) {
            return (
                Work::CatalogOnly,
                vec![Finding::ok(rule, format!("{column} is already NOT NULL"))],
            );
        }
        if t.not_null_checks.iter().any(|c| c == column) {
            return (
                Work::CatalogOnly,
                vec![Finding::ok(
                    rule,
                    format!("a validated CHECK ({column} IS NOT NULL) proves it: PostgreSQL skips the scan"),
                )],
            );
        }
    }
    let t = ctx.spec_table(table);
    let f = Finding::new(rule, Verdict::Danger,
        format!("SET NOT NULL scans the whole table under ACCESS EXCLUSIVE: {}", ctx.describe(table)))
        .with_safe(format!("zdm.set_not_null('{t}', '{column}'): CHECK NOT VALID, VALIDATE without blocking, then SET NOT NULL without a scan"),
            spec(json!({"op": "set_not_null", "table": t, "column": column})));
    (Work::Scan, vec![f])
}

/// ADD CONSTRAINT, or a constraint written inline in ADD COLUMN (`col`).
fn add_constraint(ctx: &Ctx, table: &RelName, k: &ConstraintSpec, col: Option<&ColumnSpec>) -> (Work, Vec<Finding>) {
    let t = ctx.spec_table(table);
    let name = k.name.clone().unwrap_or_else(|| default_name(table, k));
    match &k.kind {
        ConstraintKind::Check { expr } => {
            if k.not_valid {
                return (
                    Work::CatalogOnly,
                    vec![Finding::ok(
                        "constraint-missing-not-valid",
                        "NOT VALID: existing rows are not scanned",
                    )],
                );
            }
            let mut f = on_rows(
                ctx,
                table,
                "constraint-missing-not-valid",
                "ADD CHECK scans every row under ACCESS EXCLUSIVE".into(),
            );
            if f.verdict == Verdict::Danger {
                let spec_v = expr.as_ref().map(|e| {
                    json!({"operations": [
                    {"op": "add_check", "table": t, "constraint": name, "check": e}]})
                });
                f = f.with_safe(
                    format!("zdm.add_check('{t}', '{name}', ...): NOT VALID now, VALIDATE without blocking writes"),
                    spec_v,
                );
            }
            (Work::Scan, vec![f])
        }
        ConstraintKind::ForeignKey {
            columns,
            references,
            referenced_columns,
            on_delete,
        } => {
            if k.not_valid {
                return (
                    Work::CatalogOnly,
                    vec![Finding::ok(
                        "adding-foreign-key-constraint",
                        "NOT VALID: SHARE ROW EXCLUSIVE on both tables, no scan",
                    )],
                );
            }
            let mut f = on_rows(
                ctx,
                table,
                "adding-foreign-key-constraint",
                format!(
                    "the foreign key is checked row by row while writes to both {} and {} are blocked",
                    table.display(),
                    references.display()
                ),
            );
            if f.verdict == Verdict::Danger && col.is_none() && !referenced_columns.is_empty() {
                f = f.with_safe(format!("zdm.add_foreign_key('{t}', '{name}', ...): NOT VALID now, VALIDATE without blocking writes"),
                    spec(json!({"op": "add_foreign_key", "table": t, "constraint": name, "columns": columns,
                                "references": ctx.spec_table(references), "referenced_columns": referenced_columns, "on_delete": on_delete})));
            } else if f.verdict == Verdict::Danger {
                f = f.with_safe("add the column first, then the foreign key NOT VALID, then VALIDATE CONSTRAINT (zdm.add_foreign_key)", None);
            }
            (Work::Scan, vec![f])
        }
        ConstraintKind::Unique { columns, using_index } | ConstraintKind::PrimaryKey { columns, using_index } => {
            let pk = matches!(k.kind, ConstraintKind::PrimaryKey { .. });
            let rule = if pk {
                "adding-primary-key-constraint"
            } else {
                "disallowed-unique-constraint"
            };
            if let Some(i) = using_index {
                return match ctx.facts.indexes.get(i) {
                    Some(ix) if ix.valid && ix.unique => (
                        Work::CatalogOnly,
                        vec![Finding::ok(
                            rule,
                            format!(
                                "USING INDEX {}: a valid unique index exists, the constraint is catalog only",
                                ix.qualified
                            ),
                        )],
                    ),
                    _ if ctx.is_created(table) => (
                        Work::CatalogOnly,
                        vec![Finding::ok(rule, "table created earlier in this text")],
                    ),
                    _ => (
                        Work::CatalogOnly,
                        vec![Finding::new(
                            rule,
                            Verdict::Danger,
                            format!("USING INDEX {i}: no valid unique index of that name here: the statement fails"),
                        )],
                    ),
                };
            }
            let mut f = on_rows(
                ctx,
                table,
                rule,
                "the unique index is built under ACCESS EXCLUSIVE: reads and writes wait".into(),
            );
            if f.verdict == Verdict::Danger {
                f = if pk || col.is_some() {
                    f.with_safe(
                        format!(
                            "CREATE UNIQUE INDEX CONCURRENTLY, then ALTER TABLE {t} ADD {} USING INDEX",
                            if pk { "PRIMARY KEY" } else { "UNIQUE" }
                        ),
                        None,
                    )
                } else {
                    f.with_safe(format!("zdm.add_unique('{t}', '{name}', ...): index built CONCURRENTLY, attached by zdm.complete()"),
                        spec(json!({"op": "add_unique", "table": t, "constraint": name, "columns": columns})))
                };
            }
            (Work::IndexBuild, vec![f])
        }
        ConstraintKind::Exclusion => (
            Work::IndexBuild,
            vec![on_rows(
                ctx,
                table,
                "adding-exclusion-constraint",
                "the exclusion constraint's index is built and every row checked under ACCESS EXCLUSIVE".into(),
            )],
        ),
        ConstraintKind::NotNull | ConstraintKind::Other => (Work::CatalogOnly, vec![]),
    }
}

/// The name PostgreSQL would choose (ChooseConstraintName's pattern), for a spec.
fn default_name(table: &RelName, k: &ConstraintSpec) -> String {
    match &k.kind {
        ConstraintKind::ForeignKey { columns, .. } => format!("{}_{}_fkey", table.name, columns.join("_")),
        ConstraintKind::Unique { columns, .. } => format!("{}_{}_key", table.name, columns.join("_")),
        ConstraintKind::PrimaryKey { .. } => format!("{}_pkey", table.name),
        _ => format!("{}_check", table.name),
    }
}
