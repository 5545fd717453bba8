//! The safe DDL executor: every statement pg_zdm runs on a user's table goes
//! through here.
//!
//! A group of steps (one phase) runs as one unit in a subtransaction:
//! 1. `lock_timeout` is set to `zdm.lock_timeout`;
//! 2. the strongest lock the group needs is taken up front on each relation
//!    (`LOCK TABLE ... IN <mode> MODE`), so statements never upgrade a lock
//!    while readers queue behind them; all of them within one
//!    `zdm.lock_timeout` (each `LOCK` gets what is left of it), so a session
//!    queued behind the first waits at most that long plus the hold time;
//! 3. the statements run.
//! If a lock is not available (SQLSTATE 55P03) the subtransaction rolls back —
//! nothing is left half-done, and the sessions that queued behind us go on —
//! pg_zdm sleeps (exponential backoff with jitter) and tries again, up to
//! `zdm.lock_attempts` times. The final error names the sessions holding the
//! lock, with their queries. Any other error is re-raised as is.
//!
//! Autovacuum yields: PostgreSQL cancels an autovacuum that blocks a lock
//! request once the request has waited `deadlock_timeout` (1 s by default),
//! but our requests give up long before that, so an autovacuum of a large
//! table (the shadow, after its backfill) would outlast every attempt. After a
//! failed attempt pg_zdm cancels, as PostgreSQL would, the autovacuum workers
//! holding a conflicting lock — never one that prevents wraparound — when it
//! runs as a superuser (PostgreSQL 15 lets no one else signal them).

mod blockers;
mod retry;

pub use retry::{with_lock_retry, RetryPolicy};

use crate::error::ZdmResult;
use crate::plan::{LockMode, Step};
use pgrx::pg_sys;
use pgrx::prelude::*;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Instant;

/// What running a group of steps cost.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ExecReport {
    pub attempts: u32,
    /// Time spent waiting for locks in failed attempts plus backoff pauses.
    pub waited_ms: f64,
    /// Duration of the successful attempt, from asking the locks to the last statement.
    pub held_ms: f64,
    pub statements: usize,
}
/// Run `steps` as one all-or-nothing unit with lock timeouts and retries.
/// Top-level steps (`CREATE INDEX CONCURRENTLY`) are left out, by design:
/// they cannot run inside a transaction, so the user runs them
/// (`zdm.pending_statements()`), and complete checks them (`toplevel`).
pub fn run_steps(steps: &[Step], policy: &RetryPolicy) -> ZdmResult<ExecReport> {
    let steps = run_in_transaction(steps);
    let steps = steps.as_slice();
    if steps.is_empty() {
        return Ok(ExecReport::default());
    }
    let locks = strongest_locks(steps);
    let what = steps.first().map(|s| s.description.as_str()).unwrap_or("DDL");
    let ((), mut report) = with_lock_retry(policy, &locks, what, || {
        take_locks(&locks, policy);
        for step in steps {
            if step.caller_rights {
                crate::privilege::as_role(crate::privilege::caller(), || run_statement(&step.sql));
            } else {
                run_statement(&step.sql);
            }
        }
    })?;
    report.statements = steps.len();
    Ok(report)
}

/// `LOCK TABLE` of each relation in turn, in the order given, all within one
/// `policy.lock_timeout_ms`: each waits at most what the ones before it left.
/// Sessions queued behind a lock already taken wait for every later one too;
/// a timeout per lock would let them wait that many times over. The
/// statements that follow get the whole timeout again.
pub fn take_locks(locks: &[(String, LockMode)], policy: &RetryPolicy) {
    let started = Instant::now();
    for (relation, mode) in locks {
        let spent = started.elapsed().as_millis() as u64;
        let left = policy.lock_timeout_ms.saturating_sub(spent).max(1);
        crate::session::set_local("lock_timeout", &format!("{left}ms"));
        Spi::run(&format!("LOCK TABLE {relation} IN {} MODE", mode.as_sql())).expect("LOCK TABLE");
    }
    crate::session::set_local("lock_timeout", &format!("{}ms", policy.lock_timeout_ms));
}

/// The steps of a group that run here, inside the group's transaction: all
/// but the top-level ones, in their order.
fn run_in_transaction(steps: &[Step]) -> Vec<Step> {
    steps.iter().filter(|s| !s.top_level).cloned().collect()
}

/// Run one statement of pg_zdm's. A function pg_zdm generates lives in schema
/// `zdm`, where only the catalog's owner may create: it is created as that
/// owner, then handed to the current user (the table's owner, see
/// `privilege`) with EXECUTE revoked from PUBLIC, so that nobody may attach
/// it elsewhere and its SECURITY DEFINER rights are its table owner's.
pub fn run_statement(sql: &str) {
    let Some(function) = generated_function(sql) else {
        Spi::run(sql).expect("pg_zdm step");
        return;
    };
    let owner = unsafe { pg_sys::GetUserId() };
    crate::privilege::as_catalog_owner(|| {
        Spi::run(sql).expect("pg_zdm generated function");
        let signature: String = Spi::get_one_with_args(
            "SELECT p.oid::pg_catalog.regprocedure::pg_catalog.text
               FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) p.pronamespace
              WHERE n.nspname OPERATOR(pg_catalog.=) (pg_catalog.parse_ident($1))[1]
                AND p.proname OPERATOR(pg_catalog.=) (pg_catalog.parse_ident($1))[2]",
            &[function.into()],
        )
        .expect("the generated function")
        .expect("the generated function exists");
        let role: String = Spi::get_one_with_args(
            "SELECT pg_catalog.quote_ident(pg_catalog.pg_get_userbyid($1))",
            &[owner.into()],
        )
        .expect("role name")
        .expect("role exists");
        Spi::run(&format!("REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")).expect("revoke");
        Spi::run(&format!("ALTER FUNCTION {signature} OWNER TO {role}")).expect("owner");
    });
}

/// The name of the function a `CREATE [OR REPLACE] FUNCTION zdm.…` statement
/// creates (as written, quoted), or None for any other statement.
fn generated_function(sql: &str) -> Option<&str> {
    let rest = sql
        .strip_prefix("CREATE FUNCTION ")
        .or_else(|| sql.strip_prefix("CREATE OR REPLACE FUNCTION "))?;
    if !rest.starts_with("zdm.") {
        return None;
    }
    // The name ends at the first parenthesis outside double quotes.
    let mut quoted = false;
    for (i, c) in rest.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '(' if !quoted => return Some(&rest[..i]),
            _ => {}
        }
    }
    None
}
/// One entry per relation, with the strongest mode any step asks for, in the
/// order relations first appear (a stable order avoids lock-order deadlocks
/// between two pg_zdm sessions).
fn strongest_locks(steps: &[Step]) -> Vec<(String, LockMode)> {
    let mut order: Vec<String> = Vec::new();
    let mut modes: BTreeMap<String, LockMode> = BTreeMap::new();
    for lock in steps.iter().filter_map(|s| s.lock.as_ref()) {
        let entry = modes.entry(lock.relation.clone()).or_insert_with(|| {
            order.push(lock.relation.clone());
            lock.mode
        });
        *entry = (*entry).max(lock.mode);
    }
    order
        .into_iter()
        .map(|r| {
            let m = modes[&r];
            (r, m)
        })
        .collect()
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Step;

    #[test]
    fn top_level_steps_are_left_to_the_user() {
        let steps = [
            Step::unlocked("before", "SELECT 1".into()),
            Step::top_level_index("index", "CREATE INDEX CONCURRENTLY i ON t (b)".into(), "t", "i"),
            Step::unlocked("after", "SELECT 2".into()),
        ];
        let kept: Vec<String> = run_in_transaction(&steps).into_iter().map(|s| s.description).collect();
        assert_eq!(kept, ["before", "after"]);
    }

    #[test]
    fn generated_function_names() {
        assert_eq!(
            generated_function("CREATE FUNCTION zdm.sync_m() RETURNS trigger"),
            Some("zdm.sync_m")
        );
        assert_eq!(
            generated_function("CREATE OR REPLACE FUNCTION zdm.\"shadow_beyond_a(b\"(integer) RETURNS boolean"),
            Some("zdm.\"shadow_beyond_a(b\"")
        );
        assert_eq!(generated_function("CREATE FUNCTION public.f() RETURNS int"), None);
        assert_eq!(generated_function("CREATE TRIGGER t AFTER INSERT ON zdm.x"), None);
        assert_eq!(generated_function("SELECT 1"), None);
    }

    #[test]
    fn strongest_lock_per_relation_in_first_seen_order() {
        let steps = vec![
            Step::locked("a", "x".into(), "public.b", LockMode::ShareUpdateExclusive),
            Step::locked("b", "x".into(), "public.a", LockMode::RowExclusive),
            Step::unlocked("c", "x".into()),
            Step::locked("d", "x".into(), "public.b", LockMode::AccessExclusive),
        ];
        assert_eq!(
            strongest_locks(&steps),
            vec![
                ("public.b".to_string(), LockMode::AccessExclusive),
                ("public.a".to_string(), LockMode::RowExclusive)
            ]
        );
    }
}
