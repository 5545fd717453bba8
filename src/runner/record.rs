//! Reads and writes of `zdm.runners` (sql/runner.sql): one row per migration
//! handed to a background worker. Written as the catalog's owner, like
//! `zdm.migrations` (`privilege::as_catalog_owner`).

use crate::error::{spi_err, ZdmError, ZdmResult};
use crate::privilege::as_catalog_owner;
use pgrx::prelude::*;

/// Key 1 of the session advisory lock a running worker holds; key 2 is the
/// runner's id. Alive = that lock is held (a pid may be reused after a crash).
pub const LOCK_KEY: i32 = 8_020_077;

/// How far the worker goes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Through {
    /// Every top-level step of the migrate phase; a shadow stops before verify.
    Backfilled,
    /// A shadow also verifies and swaps.
    Swap,
}

impl Through {
    pub fn parse(s: &str) -> ZdmResult<Through> {
        match s {
            "backfilled" => Ok(Through::Backfilled),
            "swap" => Ok(Through::Swap),
            other => Err(
                ZdmError::invalid_parameter(format!("through must be 'backfilled' or 'swap', got '{other}'"))
                    .hint("'backfilled' stops a shadow migration before verify and swap; 'swap' runs both."),
            ),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Through::Backfilled => "backfilled",
            Through::Swap => "swap",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Runner {
    pub migration: String,
    pub id: i64,
    pub through: Through,
    pub state: String,
    pub last_error: Option<String>,
}

impl Runner {
    /// Launched or running: a worker is (or should be) at work.
    pub fn active(&self) -> bool {
        self.state == "launched" || self.state == "running"
    }
}

const COLUMNS: &str = "migration, id, through, state, last_error";

fn read(sql: &str, arg: pgrx::datum::DatumWithOid) -> ZdmResult<Option<Runner>> {
    Spi::connect(|client| {
        let mut out = None;
        for r in client.select(sql, None, &[arg])? {
            out = Some((
                r.get::<String>(1)?.unwrap_or_default(),
                r.get::<i64>(2)?.unwrap_or_default(),
                r.get::<String>(3)?.unwrap_or_default(),
                r.get::<String>(4)?.unwrap_or_default(),
                r.get::<String>(5)?,
            ));
        }
        Ok::<_, pgrx::spi::Error>(out)
    })
    .map_err(spi_err)?
    .map(|(migration, id, through, state, last_error)| {
        Ok(Runner {
            migration,
            id,
            through: Through::parse(&through)?,
            state,
            last_error,
        })
    })
    .transpose()
}

pub fn of_migration(migration: &str) -> ZdmResult<Option<Runner>> {
    read(
        &format!("SELECT {COLUMNS} FROM zdm.runners WHERE migration OPERATOR(pg_catalog.=) $1"),
        migration.into(),
    )
}

pub fn by_id(id: i64) -> ZdmResult<Option<Runner>> {
    read(
        &format!("SELECT {COLUMNS} FROM zdm.runners WHERE id OPERATOR(pg_catalog.=) $1"),
        id.into(),
    )
}

fn write(sql: &str, args: &[pgrx::datum::DatumWithOid]) -> ZdmResult<()> {
    as_catalog_owner(|| Spi::run_with_args(sql, args)).map_err(spi_err)
}

/// Record a (new) request: state `launched`, returns the runner's id.
pub fn request(migration: &str, through: Through) -> ZdmResult<i64> {
    write(
        "INSERT INTO zdm.runners AS r (migration, through, state, database, requested_by, launched_at, launches)
         VALUES ($1, $2, 'launched', (SELECT oid FROM pg_catalog.pg_database WHERE datname OPERATOR(pg_catalog.=) pg_catalog.current_database()),
                 $3, pg_catalog.clock_timestamp(), 1)
         ON CONFLICT (migration) DO UPDATE
            SET through = EXCLUDED.through, state = 'launched', pid = NULL, launches = r.launches OPERATOR(pg_catalog.+) 1,
                requested_by = EXCLUDED.requested_by, requested_at = pg_catalog.clock_timestamp(),
                launched_at = pg_catalog.clock_timestamp(), started_at = NULL, ended_at = NULL, last_error = NULL,
                updated_at = pg_catalog.clock_timestamp()",
        &[
            migration.into(),
            through.as_str().into(),
            crate::privilege::caller_name().into(),
        ],
    )?;
    Ok(of_migration(migration)?.map(|r| r.id).unwrap_or_default())
}

/// A worker was launched again for it (after a restart or a killed worker).
pub fn relaunched(id: i64) -> ZdmResult<()> {
    write(
        "UPDATE zdm.runners SET launched_at = pg_catalog.clock_timestamp(), launches = launches OPERATOR(pg_catalog.+) 1,
                updated_at = pg_catalog.clock_timestamp()
          WHERE id OPERATOR(pg_catalog.=) $1",
        &[id.into()],
    )
}

/// The worker has started on it.
pub fn running(id: i64, pid: i32) -> ZdmResult<()> {
    write(
        "UPDATE zdm.runners SET state = 'running', pid = $2, started_at = pg_catalog.clock_timestamp(),
                updated_at = pg_catalog.clock_timestamp()
          WHERE id OPERATOR(pg_catalog.=) $1",
        &[id.into(), pid.into()],
    )
}

/// The through of a runner asked for again with another goal.
pub fn set_through(id: i64, through: Through) -> ZdmResult<()> {
    write(
        "UPDATE zdm.runners SET through = $2, updated_at = pg_catalog.clock_timestamp() WHERE id OPERATOR(pg_catalog.=) $1",
        &[id.into(), through.as_str().into()],
    )
}

/// The end of a runner: `done`, `failed` (with its error) or `cancelled`.
pub fn ended(id: i64, state: &str, error: Option<&str>) -> ZdmResult<()> {
    write(
        "UPDATE zdm.runners SET state = $2, last_error = $3, pid = NULL, ended_at = pg_catalog.clock_timestamp(),
                updated_at = pg_catalog.clock_timestamp()
          WHERE id OPERATOR(pg_catalog.=) $1",
        &[id.into(), state.into(), error.into()],
    )
}

/// Is a worker holding this runner's lock (in this database)?
pub fn worker_alive(id: i64) -> ZdmResult<bool> {
    Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT FROM pg_catalog.pg_locks l
                         WHERE l.locktype OPERATOR(pg_catalog.=) 'advisory' AND l.granted
                           AND l.database OPERATOR(pg_catalog.=) (SELECT oid FROM pg_catalog.pg_database
                                                                    WHERE datname OPERATOR(pg_catalog.=) pg_catalog.current_database())
                           AND l.classid OPERATOR(pg_catalog.=) $1::pg_catalog.oid
                           AND l.objid OPERATOR(pg_catalog.=) $2::pg_catalog.oid
                           AND l.objsubid OPERATOR(pg_catalog.=) 2)",
        &[LOCK_KEY.into(), (id as i32).into()],
    )
    .map(|b| b.unwrap_or(false))
    .map_err(spi_err)
}

/// Active runners of this database whose worker is gone and that were not
/// launched in the last `grace_s` seconds since the server started (a worker
/// takes a moment to take its lock).
pub fn orphans(grace_s: i32) -> ZdmResult<Vec<(i64, String)>> {
    Spi::connect(|client| {
        client
            .select(
                "SELECT r.id, r.migration FROM zdm.runners r
                  WHERE r.state OPERATOR(pg_catalog.=) ANY (ARRAY['launched', 'running'])
                    AND r.database OPERATOR(pg_catalog.=) (SELECT oid FROM pg_catalog.pg_database
                                                            WHERE datname OPERATOR(pg_catalog.=) pg_catalog.current_database())
                    AND (r.launched_at IS NULL
                         OR r.launched_at OPERATOR(pg_catalog.<) pg_catalog.pg_postmaster_start_time()
                         OR r.launched_at OPERATOR(pg_catalog.<)
                            (pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) pg_catalog.make_interval(secs => $1)))
                    AND NOT EXISTS (SELECT FROM pg_catalog.pg_locks l
                                     WHERE l.locktype OPERATOR(pg_catalog.=) 'advisory' AND l.granted
                                       AND l.database OPERATOR(pg_catalog.=) r.database
                                       AND l.classid OPERATOR(pg_catalog.=) $2::pg_catalog.oid
                                       AND l.objid OPERATOR(pg_catalog.=) r.id::pg_catalog.int4::pg_catalog.oid
                                       AND l.objsubid OPERATOR(pg_catalog.=) 2)
                  ORDER BY r.id",
                None,
                &[grace_s.into(), LOCK_KEY.into()],
            )?
            .map(|r| Ok((r.get::<i64>(1)?.unwrap_or_default(), r.get::<String>(2)?.unwrap_or_default())))
            .collect::<Result<Vec<_>, pgrx::spi::Error>>()
    })
    .map_err(spi_err)
}
