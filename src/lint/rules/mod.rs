//! The rules: pure functions of a statement, the catalog facts and what the
//! text did before it, each returning findings under a stable rule name
//! (squawk's name where squawk has the rule, else strong_migrations' operation
//! in the same style). A rule that the catalog proves harmless still reports,
//! with verdict `ok` and the proof as its reason.
//!
//! - `index.rs`       CREATE/DROP INDEX, REINDEX
//! - `alter.rs`       ALTER TABLE subcommands (columns, constraints)
//! - `objects.rs`     renames, drops, truncate, domains, data changes
//! - `types.rs`       column types worth avoiding
//! - `transaction.rs` what holds across statements: BEGIN/COMMIT, lock_timeout,
//!                    locks held together, a long transaction open now

pub mod alter;
pub mod index;
pub mod objects;
pub mod transaction;
pub mod types;

use super::facts::{Facts, TableFacts};
use super::model::*;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    Ok,
    Warning,
    Danger,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Warning => "warning",
            Verdict::Danger => "danger",
        }
    }
}

/// The way to make the same change without downtime.
#[derive(Debug, Clone, PartialEq)]
pub struct SafeWay {
    pub text: String,
    /// A `zdm.start()` spec, when pg_zdm has the operation.
    pub spec: Option<Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub rule: &'static str,
    pub verdict: Verdict,
    pub reason: String,
    pub safe: Option<SafeWay>,
}

impl Finding {
    pub fn new(rule: &'static str, verdict: Verdict, reason: impl Into<String>) -> Self {
        Finding {
            rule,
            verdict,
            reason: reason.into(),
            safe: None,
        }
    }
    pub fn ok(rule: &'static str, reason: impl Into<String>) -> Self {
        Self::new(rule, Verdict::Ok, reason)
    }
    pub fn with_safe(mut self, text: impl Into<String>, spec: Option<Value>) -> Self {
        self.safe = Some(SafeWay {
            text: text.into(),
            spec,
        });
        self
    }
}

/// What a statement does to its table's data, worst first in `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Work {
    None,
    CatalogOnly,
    Scan,
    IndexBuild,
    Rewrite,
}

impl Work {
    pub fn as_str(self) -> &'static str {
        match self {
            Work::None => "none",
            Work::CatalogOnly => "catalog only",
            Work::Scan => "scan",
            Work::IndexBuild => "index build",
            Work::Rewrite => "rewrite",
        }
    }
}

/// The rules' view of one statement.
#[derive(Debug, Clone)]
pub struct Analysis {
    pub lock: Option<LockMode>,
    pub work: Work,
    pub findings: Vec<Finding>,
}

/// What the rules can ask: the catalog, and the tables the text created before.
pub struct Ctx<'a> {
    pub facts: &'a Facts,
    pub created: &'a [RelName],
}

/// The table a statement acts on, as far as the linter can tell.
pub enum TableState<'a> {
    /// Created earlier in the same text: nobody else uses it yet.
    New,
    Existing(&'a TableFacts),
    /// Not in this database (or not visible to the caller): assume the worst.
    Unknown,
}

impl Ctx<'_> {
    pub fn is_created(&self, r: &RelName) -> bool {
        self.created
            .iter()
            .any(|c| c.name == r.name && (c.schema.is_none() || r.schema.is_none() || c.schema == r.schema))
    }

    pub fn state(&self, r: &RelName) -> TableState<'_> {
        if self.is_created(r) {
            TableState::New
        } else {
            self.facts.table(r).map_or(TableState::Unknown, TableState::Existing)
        }
    }

    /// Why the work on `r` harms nobody, when the text or the catalog proves it.
    pub fn harmless(&self, r: &RelName) -> Option<String> {
        match self.state(r) {
            TableState::New => Some(format!(
                "{} is created earlier in this text: nobody uses it yet",
                r.display()
            )),
            TableState::Existing(t) if t.size == 0 => Some(format!(
                "{} is empty (0 bytes): nothing to scan or rewrite",
                t.qualified
            )),
            _ => None,
        }
    }

    /// The size of the table in words, for reasons.
    pub fn describe(&self, r: &RelName) -> String {
        match self.state(r) {
            TableState::Existing(t) => {
                let rows = if t.rows < 0.0 {
                    "never analysed".to_string()
                } else {
                    format!("~{} rows", t.rows as i64)
                };
                format!("{} ({} bytes, {rows})", t.qualified, t.size)
            }
            TableState::New => format!("{} (new)", r.display()),
            TableState::Unknown => format!("{} (not found in this database: assuming it has rows)", r.display()),
        }
    }

    /// The table as a spec names it.
    pub fn spec_table(&self, r: &RelName) -> String {
        self.facts.table(r).map_or_else(|| r.display(), |t| t.qualified.clone())
    }
}

/// The per-statement rules.
pub fn statement(ctx: &Ctx, s: &Statement) -> Analysis {
    match &s.kind {
        Kind::AlterTable { table, cmds, lock } => alter::alter_table(ctx, table, cmds, *lock),
        Kind::CreateIndex { .. } | Kind::DropIndex { .. } | Kind::Reindex { .. } => index::index(ctx, &s.kind),
        Kind::CreateTable { columns, .. } => Analysis {
            lock: Some(LockMode::AccessExclusive),
            work: Work::CatalogOnly,
            findings: columns.iter().flat_map(types::column_type).collect(),
        },
        other => objects::objects(ctx, other),
    }
}

/// The worst verdict of a list.
pub fn worst(findings: &[Finding]) -> Verdict {
    findings.iter().map(|f| f.verdict).max().unwrap_or(Verdict::Ok)
}
