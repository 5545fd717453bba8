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

use crate::error::{ZdmError, ZdmResult};
use crate::guc;
use crate::plan::{LockMode, Step};
use crate::session::{caught_sqlstate, in_subtransaction, sleep_ms, with_local_settings};
use pgrx::pg_sys;
use pgrx::pg_sys::errcodes::PgSqlErrorCode;
use pgrx::prelude::*;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Instant;

#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub lock_timeout_ms: u64,
    pub attempts: u32,
    pub backoff_ms: u64,
    pub backoff_max_ms: u64,
}

impl RetryPolicy {
    pub fn from_settings() -> Self {
        RetryPolicy {
            lock_timeout_ms: guc::LOCK_TIMEOUT_MS.get().max(1) as u64,
            attempts: guc::LOCK_ATTEMPTS.get().max(1) as u32,
            backoff_ms: guc::RETRY_BACKOFF_MS.get().max(0) as u64,
            backoff_max_ms: guc::RETRY_BACKOFF_MAX_MS.get().max(0) as u64,
        }
    }

    /// Pause before attempt `attempt + 1`: doubling from `backoff_ms`, capped,
    /// with ±50% jitter so that competing sessions do not retry in step.
    pub fn pause_after(&self, attempt: u32, random: f64) -> u64 {
        let base = self
            .backoff_ms
            .saturating_mul(1u64 << attempt.saturating_sub(1).min(20));
        let capped = base.min(self.backoff_max_ms) as f64;
        (capped * (0.5 + random)).round() as u64
    }
}

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

/// Run `body` in a subtransaction with `lock_timeout` set; on 55P03 roll it back,
/// pause and run it again, up to `policy.attempts` times. `locks` names what the
/// body waits for, so the final error can name who holds it.
pub fn with_lock_retry<R>(
    policy: &RetryPolicy,
    locks: &[(String, LockMode)],
    what: &str,
    body: impl Fn() -> R,
) -> ZdmResult<(R, ExecReport)> {
    let mut report = ExecReport::default();
    let started = Instant::now();
    let mut seed = jitter_seed();
    for attempt in 1..=policy.attempts {
        report.attempts = attempt;
        let attempt_start = Instant::now();
        let outcome = in_subtransaction(|| {
            with_local_settings(&[("lock_timeout", format!("{}ms", policy.lock_timeout_ms))], &body)
        });
        match outcome {
            Ok(result) => {
                report.held_ms = attempt_start.elapsed().as_secs_f64() * 1000.0;
                report.waited_ms = (started.elapsed().as_secs_f64() * 1000.0 - report.held_ms).max(0.0);
                return Ok((result, report));
            }
            Err(e) if caught_sqlstate(&e) == Some(PgSqlErrorCode::ERRCODE_LOCK_NOT_AVAILABLE) => {
                let cancelled = cancel_blocking_autovacuum(locks);
                if attempt == policy.attempts {
                    return Err(gave_up(what, locks, attempt, started));
                }
                seed = xorshift(seed);
                let random = (seed % 1000) as f64 / 1000.0;
                // A cancelled autovacuum releases its lock at once.
                sleep_ms(if cancelled > 0 {
                    10
                } else {
                    policy.pause_after(attempt, random)
                });
            }
            Err(e) => e.rethrow(),
        }
    }
    unreachable!("the loop returns on the last attempt")
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

/// The 55P03 error after the last attempt, naming who holds conflicting locks.
fn gave_up(what: &str, locks: &[(String, LockMode)], attempts: u32, started: Instant) -> ZdmError {
    let blockers = describe_blockers(locks);
    let tables: Vec<&str> = locks.iter().map(|(r, _)| r.as_str()).collect();
    let mut err = ZdmError::new(
        PgSqlErrorCode::ERRCODE_LOCK_NOT_AVAILABLE,
        format!(
            "pg_zdm could not lock {} after {attempts} attempts over {:.1} s ({what})",
            tables.join(", "),
            started.elapsed().as_secs_f64()
        ),
    );
    err = if blockers.is_empty() {
        err.detail("The sessions holding the lock finished before they could be listed.")
    } else {
        err.detail(format!("Blocked by: {}", blockers.join("; ")))
    };
    err.hint(
        "Nothing was changed. End or wait for the blocking sessions (see zdm.blocking_locks), \
         or raise zdm.lock_attempts / zdm.lock_timeout, then run the same call again.",
    )
}

/// Cancel the autovacuum workers (not the anti-wraparound ones) that hold a
/// lock conflicting with `locks`, when this role may signal them; a NOTICE
/// names each. Returns how many were cancelled.
fn cancel_blocking_autovacuum(locks: &[(String, LockMode)]) -> usize {
    let mut cancelled = 0;
    for (relation, mode) in locks {
        let conflicting: Vec<String> = mode.conflicts().iter().map(|m| m.pg_locks_name().to_string()).collect();
        let done: Result<Vec<String>, pgrx::spi::Error> = Spi::connect_mut(|client| {
            let rows = client.update(
                // The workers are chosen first (a materialized CTE), so that no
                // other backend can ever reach pg_cancel_backend.
                "WITH zdm_workers AS MATERIALIZED (
                     SELECT DISTINCT l.pid, a.query
                       FROM pg_catalog.pg_locks l
                       JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
                      WHERE l.locktype = 'relation' AND l.granted
                        AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database())
                        AND l.relation = pg_catalog.to_regclass($1)
                        AND l.mode = ANY($2)
                        AND a.backend_type = 'autovacuum worker'
                        AND a.query NOT LIKE '%(to prevent wraparound)%'
                        AND pg_catalog.current_setting('is_superuser')::boolean)
                 SELECT pg_catalog.format('pid %s: %s', pid, query)
                   FROM zdm_workers
                  WHERE pg_catalog.pg_cancel_backend(pid)",
                None,
                &[relation.as_str().into(), conflicting.into()],
            )?;
            rows.map(|r| r.get::<String>(1).map(|s| s.unwrap_or_default()))
                .collect()
        });
        for worker in done.unwrap_or_default() {
            cancelled += 1;
            pgrx::notice!(
                "pg_zdm cancelled the autovacuum holding a lock on {relation} ({worker}), as PostgreSQL cancels \
                 an autovacuum that blocks a lock request; it will process the table again later"
            );
        }
    }
    cancelled
}

/// Sessions holding (or queued ahead for) a lock that conflicts with what we asked.
fn describe_blockers(locks: &[(String, LockMode)]) -> Vec<String> {
    let mut out = Vec::new();
    for (relation, mode) in locks {
        let conflicting: Vec<String> = mode.conflicts().iter().map(|m| m.pg_locks_name().to_string()).collect();
        let rows: Result<Vec<String>, pgrx::spi::Error> = Spi::connect(|client| {
            let rows = client.select(
                "SELECT pg_catalog.format('pid %s (%s, %s %s, %s for %s): %s',
                          l.pid, coalesce(a.usename::text, '?'), l.mode,
                          CASE WHEN l.granted THEN 'held' ELSE 'queued' END,
                          coalesce(a.state, '?'),
                          coalesce(pg_catalog.date_trunc('second', pg_catalog.now() - a.xact_start)::text, '?'),
                          coalesce(pg_catalog.left(a.query, 200), ''))
                   FROM pg_catalog.pg_locks l
                   LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
                  WHERE l.locktype = 'relation' AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database())
                    AND l.relation = pg_catalog.to_regclass($1)
                    AND l.pid <> pg_catalog.pg_backend_pid()
                    AND l.mode = ANY($2)
                  ORDER BY l.granted DESC, a.xact_start",
                None,
                &[relation.as_str().into(), conflicting.into()],
            )?;
            rows.map(|r| {
                r.get::<String>(1)
                    .map(|s| format!("{relation}: {}", s.unwrap_or_default()))
            })
            .collect()
        });
        out.extend(rows.unwrap_or_default());
    }
    out
}

fn jitter_seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1);
    t ^ ((std::process::id() as u64) << 32) | 1
}

fn xorshift(mut x: u64) -> u64 {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
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
    fn backoff_doubles_with_jitter_and_cap() {
        let p = RetryPolicy {
            lock_timeout_ms: 100,
            attempts: 5,
            backoff_ms: 100,
            backoff_max_ms: 350,
        };
        assert_eq!(p.pause_after(1, 0.5), 100);
        assert_eq!(p.pause_after(2, 0.5), 200);
        assert_eq!(p.pause_after(3, 0.5), 350);
        assert_eq!(p.pause_after(3, 0.0), 175);
        assert_eq!(p.pause_after(40, 0.999), 525);
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
