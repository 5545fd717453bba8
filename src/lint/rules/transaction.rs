//! What holds across the statements of one text: which transaction each runs
//! in (an explicit BEGIN, or the migration tool's own when `in_transaction`),
//! whether lock_timeout was set before the first lock that can queue, which
//! ACCESS EXCLUSIVE locks are held together until COMMIT, and whether a
//! transaction open right now would make the first such lock queue (and every
//! query behind it). Pure: a walk over the statements with their analyses.

use super::{Analysis, Ctx, Finding, Verdict};
use crate::lint::facts::tables_named;
use crate::lint::model::*;

#[derive(Debug, Default)]
pub struct TextState {
    /// The migration tool runs the whole text in its own transaction.
    pub implicit: bool,
    /// Line of the BEGIN of the open explicit transaction.
    pub explicit: Option<i32>,
    pub lock_timeout: bool,
    pub created: Vec<RelName>,
    /// Tables under ACCESS EXCLUSIVE in the open transaction.
    exclusive: Vec<String>,
    /// Constraints added NOT VALID in the open transaction.
    not_valid: Vec<String>,
    reported_timeout: bool,
    reported_long: bool,
}

impl TextState {
    pub fn new(in_transaction: bool) -> Self {
        TextState {
            implicit: in_transaction,
            ..Default::default()
        }
    }

    fn in_transaction(&self) -> bool {
        self.implicit || self.explicit.is_some()
    }

    fn which_transaction(&self) -> String {
        match self.explicit {
            Some(l) => format!("the transaction opened by BEGIN on line {l}"),
            None => "the migration tool's transaction".to_string(),
        }
    }

    /// Findings of statement `s` given what came before, then the state moves past it.
    pub fn step(&mut self, ctx: &Ctx, s: &Statement, a: &Analysis) -> Vec<Finding> {
        let mut out = Vec::new();
        self.concurrently(s, &mut out);
        self.nesting(s, &mut out);
        let queued: Vec<String> = tables_named(&s.kind)
            .into_iter()
            .filter(|t| !ctx.is_created(t))
            .map(|t| ctx.spec_table(&t))
            .collect();
        let lock = a.lock;
        if lock >= Some(LockMode::Share) && !queued.is_empty() {
            self.lock_timeout_rule(&queued, &mut out);
            self.long_transaction_rule(ctx, &queued, &mut out);
            if lock == Some(LockMode::AccessExclusive) && self.in_transaction() {
                self.exclusive_rule(&queued, &mut out);
            }
        }
        self.validate_rule(s, &mut out);
        self.advance(s);
        out
    }

    fn concurrently(&self, s: &Statement, out: &mut Vec<Finding>) {
        let concurrent = matches!(
            s.kind,
            Kind::CreateIndex { concurrent: true, .. }
                | Kind::DropIndex { concurrent: true, .. }
                | Kind::Reindex { concurrent: true, .. }
        );
        if concurrent && self.in_transaction() {
            out.push(
                Finding::new(
                    "ban-concurrent-index-creation-in-transaction",
                    Verdict::Danger,
                    format!(
                        "CONCURRENTLY cannot run inside a transaction block: inside {} the statement fails",
                        self.which_transaction()
                    ),
                )
                .with_safe(
                    "run it alone, outside any transaction (zdm.create_index leaves it in zdm.pending_statements())",
                    None,
                ),
            );
        }
    }

    fn nesting(&self, s: &Statement, out: &mut Vec<Finding>) {
        match &s.kind {
            Kind::Transaction(TxKind::Begin) if self.in_transaction() => out.push(Finding::new("transaction-nesting", Verdict::Warning,
                format!("BEGIN inside {}: PostgreSQL ignores it with a warning, and the COMMIT that follows ends the outer transaction", self.which_transaction()))),
            Kind::Transaction(TxKind::Commit | TxKind::Rollback) if self.explicit.is_none() && self.implicit => {
                out.push(Finding::new("transaction-nesting", Verdict::Warning,
                    "COMMIT/ROLLBACK ends the migration tool's transaction: what follows runs outside it"))
            }
            _ => {}
        }
    }

    fn lock_timeout_rule(&mut self, tables: &[String], out: &mut Vec<Finding>) {
        if self.lock_timeout || self.reported_timeout {
            return;
        }
        self.reported_timeout = true;
        out.push(Finding::new("require-lock-timeout", Verdict::Warning,
            format!("no lock_timeout is set: while this waits for its lock on {}, every query on the table queues behind it", tables.join(", ")))
            .with_safe("SET lock_timeout = '1s' first, and retry on 55P03 (pg_zdm's calls do both)", None));
    }

    fn long_transaction_rule(&mut self, ctx: &Ctx, tables: &[String], out: &mut Vec<Finding>) {
        if self.reported_long || ctx.facts.long_transactions.is_empty() {
            return;
        }
        self.reported_long = true;
        let oids: Vec<u32> = tables
            .iter()
            .filter_map(|t| ctx.facts.tables.values().find(|f| &f.qualified == t).map(|f| f.oid))
            .collect();
        let list = ctx
            .facts
            .long_transactions
            .iter()
            .map(|l| {
                let holds = if l.relations.iter().any(|r| oids.contains(r)) {
                    ", holding a lock on the table"
                } else {
                    ""
                };
                format!("pid {} open for {:.0} s{holds}", l.pid, l.seconds)
            })
            .collect::<Vec<_>>()
            .join("; ");
        let verdict = if self.lock_timeout {
            Verdict::Warning
        } else {
            Verdict::Danger
        };
        out.push(Finding::new("long-running-transaction", verdict,
            format!("a transaction open now may hold what this lock needs, and every query on {} would queue behind the wait: {list}", tables.join(", ")))
            .with_safe("wait for it to end (zdm.long_transactions), or keep lock_timeout short and retry", None));
    }

    fn exclusive_rule(&mut self, tables: &[String], out: &mut Vec<Finding>) {
        let held: Vec<String> = self.exclusive.iter().filter(|t| !tables.contains(t)).cloned().collect();
        if !held.is_empty() {
            out.push(Finding::new("exclusive-locks-held-together", Verdict::Warning,
                format!("ACCESS EXCLUSIVE on {} is still held (until COMMIT) while this waits for {}: both tables are blocked together",
                    held.join(", "), tables.join(", ")))
                .with_safe("one table per transaction: COMMIT between them", None));
        }
        for t in tables {
            if !self.exclusive.contains(t) {
                self.exclusive.push(t.clone());
            }
        }
    }

    fn validate_rule(&self, s: &Statement, out: &mut Vec<Finding>) {
        if let Kind::AlterTable { cmds, .. } = &s.kind {
            for c in cmds {
                if let AlterCmd::ValidateConstraint { name } = c {
                    if self.in_transaction() && self.not_valid.contains(name) {
                        out.push(Finding::new("constraint-missing-not-valid", Verdict::Warning,
                            format!("{name} is added NOT VALID and validated in the same transaction: the ACCESS EXCLUSIVE lock of the ADD is held during the scan"))
                            .with_safe("COMMIT between ADD CONSTRAINT ... NOT VALID and VALIDATE CONSTRAINT", None));
                    }
                }
            }
        }
    }

    fn advance(&mut self, s: &Statement) {
        match &s.kind {
            Kind::Transaction(TxKind::Begin) => {
                if !self.in_transaction() {
                    self.explicit = Some(s.line);
                }
            }
            Kind::Transaction(TxKind::Commit | TxKind::Rollback) => {
                self.explicit = None;
                self.implicit = false;
                self.exclusive.clear();
                self.not_valid.clear();
            }
            Kind::SetLockTimeout { value } => {
                self.lock_timeout = value.as_deref().is_some_and(|v| v.trim() != "0");
            }
            Kind::CreateTable { table, .. } => self.created.push(table.clone()),
            Kind::AlterTable { cmds, .. } => {
                for c in cmds {
                    if let AlterCmd::AddConstraint(ConstraintSpec {
                        name: Some(n),
                        not_valid: true,
                        ..
                    }) = c
                    {
                        self.not_valid.push(n.clone());
                    }
                }
            }
            _ => {}
        }
    }

    /// Findings once the whole text is read.
    pub fn finish(&self) -> Vec<Finding> {
        match self.explicit {
            Some(l) => vec![Finding::new(
                "ban-uncommitted-transaction",
                Verdict::Warning,
                format!(
                    "the transaction opened on line {l} is never committed: its locks stay held until the session ends"
                ),
            )
            .with_safe("end the text with COMMIT", None)],
            None => vec![],
        }
    }
}
