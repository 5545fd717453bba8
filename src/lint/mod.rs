//! `zdm.lint(sql)`: a migration linter that reads the text with PostgreSQL's
//! own parser and judges each statement against the database it will run in.
//! Nothing is executed; the catalog is read as the caller.
//!
//! - `parse.rs`    raw_parser → `model.rs` (all pg_sys walking lives there;
//!                 `span.rs` finds where clauses end, `resolve.rs` asks the
//!                 server what a type or default means)
//! - `facts.rs`    catalog reads for the objects named
//! - `rules/`      pure rules: (statement, facts, what came before) → findings
//! - `convert.rs`  the `zdm.start()` specs that replace dangerous statements
//! - `api.rs`      the SQL functions
//!
//! Rules are named after squawk's where squawk has them, so that a team can
//! move between the two; see the README's table.

pub mod api;
pub mod convert;
pub mod facts;
pub mod model;
pub mod parse;
pub mod resolve;
pub mod rules;
pub mod span;

use crate::error::ZdmResult;
use facts::{Facts, TableFacts};
use model::*;
use rules::{Ctx, Finding, Work};

/// One statement with what the linter found.
#[derive(Debug, Clone)]
pub struct Report {
    pub statement: Statement,
    pub objects: Vec<String>,
    pub lock: Option<LockMode>,
    pub work: Work,
    pub table: Option<TableFacts>,
    pub findings: Vec<Finding>,
}

/// Lint `text`: parse, read the catalog, judge.
pub fn lint(text: &str, in_transaction: bool, long_transaction: &str) -> ZdmResult<Vec<Report>> {
    let statements = crate::privilege::with_caller_search_path(|| parse::parse(text))?;
    let facts = facts::gather(&statements, long_transaction)?;
    Ok(judge(&statements, &facts, in_transaction))
}

/// The rules over parsed statements and their facts (pure).
pub fn judge(statements: &[Statement], facts: &Facts, in_transaction: bool) -> Vec<Report> {
    let mut state = rules::transaction::TextState::new(in_transaction);
    let mut out: Vec<Report> = Vec::new();
    for s in statements {
        let created = state.created.clone();
        let ctx = Ctx {
            facts,
            created: &created,
        };
        let mut a = rules::statement(&ctx, s);
        let across = state.step(&ctx, s, &a);
        a.findings.extend(across);
        let tables = facts::tables_named(&s.kind);
        out.push(Report {
            objects: objects_of(&s.kind),
            lock: a.lock,
            work: a.work,
            table: tables
                .first()
                .filter(|t| !ctx.is_created(t))
                .and_then(|t| facts.table(t))
                .cloned(),
            findings: a.findings,
            statement: s.clone(),
        });
    }
    if let Some(last) = out.last_mut() {
        last.findings.extend(state.finish());
    }
    out
}

/// The objects a statement touches, as written.
fn objects_of(kind: &Kind) -> Vec<String> {
    let mut v: Vec<String> = facts::tables_named(kind).iter().map(RelName::display).collect();
    match kind {
        Kind::CreateTable { table, .. } => v.push(table.display()),
        Kind::CreateIndex { index: Some(i), .. } => v.push(i.clone()),
        Kind::DropIndex { indexes, .. } => v.extend(indexes.iter().map(RelName::display)),
        Kind::DropDatabase { name } | Kind::RenameSchema { schema: name } => v.push(name.clone()),
        Kind::CreateDomain { name, .. } | Kind::AlterDomainAddConstraint { name, .. } => v.push(name.clone()),
        Kind::RenameEnumValue { type_name } => v.push(type_name.clone()),
        _ => {}
    }
    v
}
