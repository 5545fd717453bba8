//! CREATE INDEX, DROP INDEX, REINDEX: blocking unless CONCURRENTLY, and
//! CONCURRENTLY only outside a transaction block (checked in transaction.rs).

use super::{Analysis, Ctx, Finding, Verdict, Work};
use crate::lint::model::*;
use serde_json::json;

pub fn index(ctx: &Ctx, kind: &Kind) -> Analysis {
    match kind {
        Kind::CreateIndex {
            table,
            index,
            concurrent,
            unique,
            definition,
            ..
        } => {
            let rule = "require-concurrent-index-creation";
            if *concurrent {
                return analysis(
                    LockMode::ShareUpdateExclusive,
                    Work::IndexBuild,
                    Finding::ok(rule, "CONCURRENTLY: reads and writes go on during the build"),
                );
            }
            let f = match ctx.harmless(table) {
                Some(why) => Finding::ok(rule, why),
                None => {
                    let t = ctx.spec_table(table);
                    let what = if *unique { "CREATE UNIQUE INDEX" } else { "CREATE INDEX" };
                    let f = Finding::new(
                        rule,
                        Verdict::Danger,
                        format!(
                            "{what} blocks every write (SHARE lock) for the whole build: {}",
                            ctx.describe(table)
                        ),
                    );
                    match (index, definition, unique) {
                        (Some(i), Some(d), false) => f.with_safe(
                            format!("zdm.create_index('{t}', '{i}', '{d}'): built CONCURRENTLY at top level (zdm.pending_statements())"),
                            Some(json!({"operations": [{"op": "create_index", "table": t, "index": i, "definition": d}]}))),
                        _ => f.with_safe(format!("{what} CONCURRENTLY, outside a transaction block"), None),
                    }
                }
            };
            analysis(LockMode::Share, Work::IndexBuild, f)
        }
        Kind::DropIndex {
            indexes, concurrent, ..
        } => {
            let rule = "require-concurrent-index-deletion";
            if *concurrent {
                return analysis(
                    LockMode::ShareUpdateExclusive,
                    Work::CatalogOnly,
                    Finding::ok(
                        rule,
                        "CONCURRENTLY: waits for queries using the index without blocking them",
                    ),
                );
            }
            let empty = indexes
                .iter()
                .all(|i| ctx.facts.index(i).is_some_and(|f| f.table_size == 0));
            let f = if empty {
                Finding::ok(
                    rule,
                    "the index's table is empty: the ACCESS EXCLUSIVE lock is held for an instant",
                )
            } else {
                let on = indexes
                    .iter()
                    .map(|i| ctx.facts.index(i).map_or(i.display(), |f| f.table.clone()))
                    .collect::<Vec<_>>();
                Finding::new(rule, Verdict::Danger,
                    format!("DROP INDEX takes ACCESS EXCLUSIVE on {}: it waits behind every running query, and everything queues behind it", on.join(", ")))
                    .with_safe("DROP INDEX CONCURRENTLY, outside a transaction block", None)
            };
            analysis(LockMode::AccessExclusive, Work::CatalogOnly, f)
        }
        Kind::Reindex { concurrent, target } => {
            let rule = "require-concurrent-reindex";
            if *concurrent {
                return analysis(
                    LockMode::ShareUpdateExclusive,
                    Work::IndexBuild,
                    Finding::ok(rule, "CONCURRENTLY"),
                );
            }
            let f = match target.as_ref().and_then(|t| ctx.harmless(t)) {
                Some(why) => Finding::ok(rule, why),
                None => Finding::new(
                    rule,
                    Verdict::Danger,
                    "REINDEX blocks writes to the table (and reads that use the index) for the whole build",
                )
                .with_safe("REINDEX ... CONCURRENTLY", None),
            };
            analysis(LockMode::Share, Work::IndexBuild, f)
        }
        _ => Analysis {
            lock: None,
            work: Work::None,
            findings: vec![],
        },
    }
}

fn analysis(lock: LockMode, work: Work, f: Finding) -> Analysis {
    Analysis {
        lock: Some(lock),
        work,
        findings: vec![f],
    }
}
