//! Retrying a unit of work whose locks were not available: a subtransaction
//! rolled back on 55P03, a pause that doubles with jitter, and, after the last
//! attempt, an error naming who held the locks (`blockers`).

use super::blockers::{cancel_blocking_autovacuum, gave_up};
use super::ExecReport;
use crate::error::ZdmResult;
use crate::guc;
use crate::plan::LockMode;
use crate::session::{caught_sqlstate, in_subtransaction, sleep_ms, with_local_settings};
use pgrx::pg_sys::errcodes::PgSqlErrorCode;
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
}
