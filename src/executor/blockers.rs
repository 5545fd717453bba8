//! Who holds the locks pg_zdm waits for: named in the error after the last
//! attempt, and, for autovacuum workers, cancelled as PostgreSQL would.

use crate::error::ZdmError;
use crate::plan::LockMode;
use pgrx::pg_sys::errcodes::PgSqlErrorCode;
use pgrx::prelude::*;
use std::time::Instant;

/// The 55P03 error after the last attempt, naming who holds conflicting locks.
pub(super) fn gave_up(what: &str, locks: &[(String, LockMode)], attempts: u32, started: Instant) -> ZdmError {
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
pub(super) fn cancel_blocking_autovacuum(locks: &[(String, LockMode)]) -> usize {
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
