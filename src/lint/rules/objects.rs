//! Renames, drops, TRUNCATE, domains and data changes: what breaks the running
//! application or holds locks for long.

use super::{Analysis, Ctx, Finding, Verdict, Work};
use crate::lint::model::*;
use serde_json::json;

pub fn objects(ctx: &Ctx, kind: &Kind) -> Analysis {
    let (lock, work, findings) = match kind {
        Kind::RenameColumn {
            table,
            column,
            new_name,
        } => {
            let f = if ctx.is_created(table) {
                Finding::ok("renaming-column", "table created earlier in this text")
            } else {
                let t = ctx.spec_table(table);
                Finding::new("renaming-column", Verdict::Danger,
                    format!("the running application still uses {column}: its queries fail the moment it is renamed"))
                    .with_safe(format!("zdm.rename_column('{t}', '{column}', '{new_name}'): both names work until zdm.complete()"),
                        Some(json!({"operations": [{"op": "rename_column", "table": t, "column": column, "new_name": new_name}]})))
            };
            (Some(LockMode::AccessExclusive), Work::CatalogOnly, vec![f])
        }
        Kind::RenameTable { table, new_name } => {
            let f = if ctx.is_created(table) {
                Finding::ok("renaming-table", "table created earlier in this text")
            } else {
                Finding::new("renaming-table", Verdict::Danger,
                    format!("the running application still uses {}: its queries fail the moment it is renamed", table.display()))
                    .with_safe(format!("rename, then CREATE VIEW {} AS SELECT * FROM {new_name} (updatable) until every application uses the new name", table.name), None)
            };
            (Some(LockMode::AccessExclusive), Work::CatalogOnly, vec![f])
        }
        Kind::RenameSchema { schema } => (
            Some(LockMode::AccessExclusive),
            Work::CatalogOnly,
            vec![Finding::new(
                "renaming-schema",
                Verdict::Danger,
                format!("every query naming schema {schema} fails once it is renamed"),
            )],
        ),
        Kind::RenameEnumValue { type_name } => (
            Some(LockMode::AccessExclusive),
            Work::CatalogOnly,
            vec![Finding::new(
                "renaming-enum-value",
                Verdict::Warning,
                format!("the running application still writes the old label of {type_name}"),
            )
            .with_safe(
                "ALTER TYPE ... ADD VALUE the new label, move the rows in batches, stop using the old one",
                None,
            )],
        ),
        Kind::DropTable { tables, cascade } => {
            let mut findings = Vec::new();
            for t in tables {
                findings.push(if ctx.is_created(t) {
                    Finding::ok(
                        "ban-drop-table",
                        format!("{} is created earlier in this text", t.display()),
                    )
                } else {
                    Finding::new(
                        "ban-drop-table",
                        Verdict::Danger,
                        format!(
                            "{} and its data are gone{}; the running application breaks",
                            ctx.describe(t),
                            if *cascade {
                                ", with every view and foreign key depending on it (CASCADE)"
                            } else {
                                ""
                            }
                        ),
                    )
                    .with_safe(
                        "stop every use of the table first, rename it aside for a release, drop it later",
                        None,
                    )
                });
            }
            (Some(LockMode::AccessExclusive), Work::CatalogOnly, findings)
        }
        Kind::DropDatabase { name } => (
            Some(LockMode::AccessExclusive),
            Work::None,
            vec![Finding::new(
                "ban-drop-database",
                Verdict::Danger,
                format!("DROP DATABASE {name} removes every table and its data"),
            )],
        ),
        Kind::Truncate { tables, cascade } => {
            let names = tables.iter().map(|t| t.display()).collect::<Vec<_>>().join(", ");
            let f = if *cascade {
                Finding::new("ban-truncate-cascade", Verdict::Danger,
                    format!("TRUNCATE {names} CASCADE also empties every table referencing it, however far the foreign keys reach"))
                    .with_safe("TRUNCATE the tables you mean, by name, without CASCADE", None)
            } else {
                Finding::ok("ban-truncate-cascade", "no CASCADE: only the tables named are emptied")
            };
            (Some(LockMode::AccessExclusive), Work::CatalogOnly, vec![f])
        }
        Kind::CreateDomain { name, has_constraint } => {
            let f = if *has_constraint {
                Finding::new("ban-create-domain-with-constraint", Verdict::Warning,
                    format!("a constraint on domain {name} is checked against every column of the type when it changes, under a lock; put CHECK constraints on the tables"))
            } else {
                Finding::ok("ban-create-domain-with-constraint", "no constraint")
            };
            (None, Work::CatalogOnly, vec![f])
        }
        Kind::AlterDomainAddConstraint { name, not_valid } => {
            let f = if *not_valid {
                Finding::ok(
                    "ban-alter-domain-with-add-constraint",
                    "NOT VALID: existing values are not checked",
                )
            } else {
                Finding::new(
                    "ban-alter-domain-with-add-constraint",
                    Verdict::Danger,
                    format!("every column of type {name} in every table is scanned while the tables are locked"),
                )
                .with_safe("ADD CONSTRAINT ... NOT VALID, then VALIDATE CONSTRAINT", None)
            };
            (Some(LockMode::Share), Work::Scan, vec![f])
        }
        Kind::DataChange { table, verb, has_where } => {
            let f = match ctx.harmless(table) {
                Some(why) => Finding::ok("backfilling-data", why),
                None => Finding::new("backfilling-data", Verdict::Warning, format!(
                    "{verb}{} in the migration's transaction: every row it touches stays locked until the end, with bloat and no resume: {}",
                    if *has_where { "" } else { " of the whole table" }, ctx.describe(table)))
                    .with_safe("batches that commit one by one: zdm.add_column / zdm.set_not_null fill_expr with CALL zdm.backfill(), or a batched loop", None),
            };
            (Some(LockMode::RowExclusive), Work::None, vec![f])
        }
        _ => {
            return Analysis {
                lock: None,
                work: Work::None,
                findings: vec![],
            }
        }
    };
    Analysis { lock, work, findings }
}
