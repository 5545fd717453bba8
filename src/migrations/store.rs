//! Reads and writes of `zdm.migrations` and `zdm.events`.
//!
//! Only the catalog's owner may write those tables (PUBLIC may read them), and
//! a guard trigger refuses even its writes unless they come from here
//! ([`crate::privilege::as_catalog_owner`], see sql/bootstrap.sql). Every
//! phase change goes through [`move_phase`], which checks the state machine
//! and logs an event.

use super::phase::Phase;
use super::settings::BackfillSettings;
use crate::error::{spi_err, ZdmError, ZdmResult};
use crate::plan::Plan;
use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::Value;

#[derive(Debug, Clone)]
pub struct MigrationRow {
    pub name: String,
    pub table_name: String,
    pub kind: String,
    pub phase: Phase,
    pub plan: Plan,
    pub backfill_upper: Option<Vec<String>>,
    pub backfill_last: Option<Vec<String>>,
    pub paused: bool,
    pub waiting_reason: Option<String>,
    pub current_batch_size: Option<i32>,
    pub settings: BackfillSettings,
    pub cron_job_id: Option<i64>,
    /// The role that started it: the one to check once its table is gone.
    pub created_by: String,
}

/// Run catalog writes as the catalog's owner, with the guard trigger's permission.
fn writing<R>(f: impl FnOnce() -> R) -> R {
    crate::privilege::as_catalog_owner(f)
}

/// Load a migration and lock its row until the end of the transaction, so two
/// sessions never drive the same migration at once.
pub fn get_for_update(name: &str) -> ZdmResult<MigrationRow> {
    load(name, true)
}

/// Load a migration without locking it (for reports).
pub fn get(name: &str) -> ZdmResult<MigrationRow> {
    load(name, false)
}

fn load(name: &str, lock: bool) -> ZdmResult<MigrationRow> {
    let sql = format!(
        "SELECT name, table_name, kind, phase, plan, backfill_upper, backfill_last,
                paused, waiting_reason, current_batch_size, settings, cron_job_id, created_by::text
           FROM zdm.migrations WHERE name = $1{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    // connect_mut: a row lock is a write as far as SPI's read-only mode goes;
    // and only the catalog's owner may lock its rows.
    let row = writing(|| {
        Spi::connect_mut(|client| {
            let rows = client.update(&sql, None, &[name.into()])?;
            let mut out = None;
            for r in rows {
                out = Some((
                    (
                        r.get::<String>(1)?.unwrap_or_default(),
                        r.get::<String>(2)?.unwrap_or_default(),
                        r.get::<String>(3)?.unwrap_or_default(),
                        r.get::<String>(4)?.unwrap_or_default(),
                        r.get::<JsonB>(5)?.map(|j| j.0).unwrap_or(Value::Null),
                        r.get::<Vec<String>>(6)?,
                        r.get::<Vec<String>>(7)?,
                    ),
                    (
                        r.get::<bool>(8)?.unwrap_or(false),
                        r.get::<String>(9)?,
                        r.get::<i32>(10)?,
                        r.get::<JsonB>(11)?.map(|j| j.0).unwrap_or(Value::Null),
                        r.get::<i64>(12)?,
                        r.get::<String>(13)?.unwrap_or_default(),
                    ),
                ));
            }
            Ok::<_, pgrx::spi::Error>(out)
        })
    })
    .map_err(spi_err)?;
    let (
        (name, table_name, kind, phase, plan, upper, last),
        (paused, waiting_reason, current_batch_size, settings, cron_job_id, created_by),
    ) = row.ok_or_else(|| ZdmError::unknown_migration(name))?;
    let settings = if settings.is_null() {
        BackfillSettings::default()
    } else {
        BackfillSettings::parse(&settings)?
    };
    let plan: Plan = serde_json::from_value(plan)
        .map_err(|e| ZdmError::wrong_state(format!("stored plan of migration \"{name}\" cannot be read: {e}")))?;
    Ok(MigrationRow {
        phase: Phase::parse(&phase)?,
        name,
        table_name,
        kind,
        plan,
        backfill_upper: upper,
        backfill_last: last,
        paused,
        waiting_reason,
        current_batch_size,
        settings,
        cron_job_id,
        created_by,
    })
}

pub struct NewMigration<'a> {
    pub name: &'a str,
    pub table_name: &'a str,
    pub kind: &'a str,
    pub columns: Vec<String>,
    pub spec: Value,
    pub plan: &'a Plan,
}

pub fn insert(m: NewMigration) -> ZdmResult<()> {
    let plan = serde_json::to_value(m.plan).expect("plans serialize");
    writing(|| {
        Spi::run_with_args(
            "INSERT INTO zdm.migrations (name, table_name, kind, phase, columns, spec, plan, created_by)
             VALUES ($1, $2, $3, 'started', $4, $5, $6, $7)",
            &[
                m.name.into(),
                m.table_name.into(),
                m.kind.into(),
                m.columns.into(),
                JsonB(m.spec).into(),
                JsonB(plan).into(),
                crate::privilege::caller_name().into(),
            ],
        )
    })
    .map_err(spi_err)?;
    log_event(m.name, "start", None, Some(Phase::Started), None)
}

/// Is the name free? (42710 otherwise.)
pub fn exists(name: &str) -> ZdmResult<bool> {
    Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT FROM zdm.migrations WHERE name = $1)",
        &[name.into()],
    )
    .map(|b| b.unwrap_or(false))
    .map_err(spi_err)
}

/// The phase of the migration called `name`, None when there is none.
pub fn phase_of(name: &str) -> ZdmResult<Option<Phase>> {
    let phase: Option<String> =
        crate::session::get_optional("SELECT phase FROM zdm.migrations WHERE name = $1", &[name.into()])
            .map_err(spi_err)?;
    phase.map(|p| Phase::parse(&p)).transpose()
}

/// Is the name taken? A rolled-back migration's name is free again: the next
/// start of that name archives it ([`archive`]). A completed one's stays taken.
pub fn name_taken(name: &str) -> ZdmResult<bool> {
    Ok(!phase_of(name)?.is_none_or(Phase::frees_its_name))
}

/// The spec a migration was started with, as stored.
pub fn spec_of(name: &str) -> ZdmResult<Value> {
    let v: Option<JsonB> =
        crate::session::get_optional("SELECT spec FROM zdm.migrations WHERE name = $1", &[name.into()])
            .map_err(spi_err)?;
    v.map(|j| j.0).ok_or_else(|| ZdmError::unknown_migration(name))
}

/// The active migration started with exactly these operations (normalized
/// spec), if any: an unnamed spec run again finds its migration by them.
pub fn active_with_operations(operations: &Value) -> ZdmResult<Option<String>> {
    crate::session::get_optional(
        "SELECT name FROM zdm.migrations
          WHERE phase NOT IN ('completed', 'rolled_back', 'abandoned') AND spec -> 'operations' = $1
          ORDER BY created_at LIMIT 1",
        &[JsonB(operations.clone()).into()],
    )
    .map_err(spi_err)
}

/// Free the name of a rolled-back migration by renaming it `<name>@<n>` (the
/// first n not taken); its events follow (ON UPDATE CASCADE). Returns the new name.
pub fn archive(name: &str) -> ZdmResult<String> {
    let mut n = 1;
    while exists(&format!("{name}@{n}"))? {
        n += 1;
    }
    let archived = format!("{name}@{n}");
    writing(|| {
        Spi::run_with_args(
            "UPDATE zdm.migrations SET name = $2, updated_at = clock_timestamp()
              WHERE name = $1 AND phase IN ('rolled_back', 'abandoned')",
            &[name.into(), archived.as_str().into()],
        )
    })
    .map_err(spi_err)?;
    log_event(
        &archived,
        "archived",
        None,
        None,
        Some(serde_json::json!({ "name": name, "as": archived, "reason": "its name was started again" })),
    )?;
    Ok(archived)
}

/// Remove a migration and its events (zdm.forget: rolled-back ones only).
pub fn delete(name: &str) -> ZdmResult<()> {
    writing(|| Spi::run_with_args("DELETE FROM zdm.migrations WHERE name = $1", &[name.into()])).map_err(spi_err)
}

/// An active (not final) migration on the same table claiming any of `columns`.
pub fn conflicting_migration(table_name: &str, columns: &[String]) -> ZdmResult<Option<(String, Vec<String>)>> {
    Spi::connect(|client| {
        let rows = client.select(
            "SELECT name, CASE WHEN '*' = ANY(columns) OR '*' = ANY($2::text[]) THEN ARRAY['*']
                        ELSE ARRAY(SELECT unnest(columns) INTERSECT SELECT unnest($2::text[])) END
               FROM zdm.migrations
              WHERE phase NOT IN ('completed', 'rolled_back', 'abandoned')
                -- Names as stored (schema-qualified, quoted by the server): no
                -- lookup, so no schema the caller may not use stops the check.
                AND table_name = $1
                AND (columns && $2::text[] OR '*' = ANY(columns) OR '*' = ANY($2::text[]))
              ORDER BY created_at LIMIT 1",
            None,
            &[table_name.into(), columns.to_vec().into()],
        )?;
        let mut out = None;
        for r in rows {
            out = Some((
                r.get::<String>(1)?.unwrap_or_default(),
                r.get::<Vec<String>>(2)?.unwrap_or_default(),
            ));
        }
        Ok::<_, pgrx::spi::Error>(out)
    })
    .map_err(spi_err)
}

/// Change phase if the state machine allows it, and log it.
pub fn move_phase(m: &MigrationRow, to: Phase, event: &str, detail: Option<Value>) -> ZdmResult<()> {
    m.phase.check_move(to, &m.name)?;
    writing(|| {
        Spi::run_with_args(
            "UPDATE zdm.migrations
                SET phase = $2, updated_at = clock_timestamp(),
                    completed_at = CASE WHEN $2 IN ('completed', 'rolled_back', 'abandoned') THEN clock_timestamp() END
              WHERE name = $1",
            &[m.name.as_str().into(), to.as_str().into()],
        )
    })
    .map_err(spi_err)?;
    log_event(&m.name, event, Some(m.phase), Some(to), detail)
}

pub fn log_event(
    name: &str,
    event: &str,
    from: Option<Phase>,
    to: Option<Phase>,
    detail: Option<Value>,
) -> ZdmResult<()> {
    writing(|| {
        Spi::run_with_args(
            "INSERT INTO zdm.events (migration, event, from_phase, to_phase, detail, by_user)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                name.into(),
                event.into(),
                from.map(|p| p.as_str()).into(),
                to.map(|p| p.as_str()).into(),
                detail.map(JsonB).into(),
                crate::privilege::caller_name().into(),
            ],
        )
    })
    .map_err(spi_err)
}

/// Progress of one committed batch, saved in the batch's own transaction.
pub struct BatchCheckpoint<'a> {
    pub last_key: &'a [String],
    pub rows_scanned: i64,
    pub rows_changed: i64,
    pub batch_size: i32,
    pub batch_ms: f64,
    pub next_batch_size: Option<i32>,
    /// Who runs the backfill: 'CALL', 'cron', 'backfill_batch'.
    pub runner: &'a str,
    /// The leaf partition the batch ran on (its position in the plan's
    /// `backfill.partitions`), for a partitioned table.
    pub partition: Option<i32>,
}

pub fn checkpoint_batch(name: &str, c: &BatchCheckpoint) -> ZdmResult<()> {
    writing(|| {
        Spi::run_with_args(
            "UPDATE zdm.migrations
                SET backfill_last = $2, rows_done = rows_done + $3, rows_changed = rows_changed + $4,
                    batches = batches + 1, last_batch_size = $5, last_batch_ms = $6,
                    last_batch_at = clock_timestamp(), updated_at = clock_timestamp(),
                    current_batch_size = $7,
                    runner = CASE WHEN $8 = 'cron' AND cron_job_id IS NOT NULL
                                  THEN 'cron job ' || cron_job_id ELSE $8 END || ' (pid ' || pg_backend_pid() || ')',
                    backfill_partitions = CASE WHEN $9::int IS NULL THEN backfill_partitions
                        ELSE jsonb_set(backfill_partitions, ARRAY[$9::text, 'rows_done'],
                                       to_jsonb(coalesce((backfill_partitions->$9::int->>'rows_done')::bigint, 0) + $3)) END
              WHERE name = $1",
            &[
                name.into(),
                c.last_key.to_vec().into(),
                c.rows_scanned.into(),
                c.rows_changed.into(),
                c.batch_size.into(),
                c.batch_ms.into(),
                c.next_batch_size.into(),
                c.runner.into(),
                c.partition.into(),
            ],
        )
    })
    .map_err(spi_err)
}

/// Why the backfill is not adding rows right now (None: it is).
pub fn set_waiting(name: &str, reason: Option<&str>) -> ZdmResult<()> {
    writing(|| {
        Spi::run_with_args(
            "UPDATE zdm.migrations SET waiting_reason = $2, updated_at = clock_timestamp()
              WHERE name = $1 AND waiting_reason IS DISTINCT FROM $2",
            &[name.into(), reason.into()],
        )
    })
    .map_err(spi_err)
}

pub fn set_paused(name: &str, paused: bool) -> ZdmResult<()> {
    writing(|| {
        Spi::run_with_args(
            "UPDATE zdm.migrations SET paused = $2, waiting_reason = NULL, updated_at = clock_timestamp() WHERE name = $1",
            &[name.into(), paused.into()],
        )
    })
    .map_err(spi_err)
}

pub fn set_settings(name: &str, settings: &BackfillSettings) -> ZdmResult<()> {
    let v = serde_json::to_value(settings).expect("settings serialize");
    writing(|| {
        Spi::run_with_args(
            "UPDATE zdm.migrations SET settings = $2, current_batch_size = NULL, updated_at = clock_timestamp() WHERE name = $1",
            &[name.into(), JsonB(v).into()],
        )
    })
    .map_err(spi_err)
}

pub fn set_cron_job(name: &str, job: Option<i64>) -> ZdmResult<()> {
    writing(|| {
        Spi::run_with_args(
            "UPDATE zdm.migrations SET cron_job_id = $2, updated_at = clock_timestamp() WHERE name = $1",
            &[name.into(), job.into()],
        )
    })
    .map_err(spi_err)
}

/// Remember the error that stopped a backfill run (committed by the caller
/// after the failed batch was rolled back).
pub fn record_error(name: &str, error: &str) -> ZdmResult<()> {
    writing(|| {
        Spi::run_with_args(
            "UPDATE zdm.migrations SET last_error = $2, last_error_at = clock_timestamp(), updated_at = clock_timestamp()
              WHERE name = $1",
            &[name.into(), error.into()],
        )
    })
    .map_err(spi_err)?;
    log_event(
        name,
        "backfill error",
        None,
        None,
        Some(serde_json::json!({ "error": error })),
    )
}

/// Record where the backfill stops (the last row that exists now) and the estimate.
pub fn begin_backfill(name: &str, upper: &[String], estimate: i64) -> ZdmResult<()> {
    writing(|| {
        Spi::run_with_args(
            "UPDATE zdm.migrations
                SET backfill_upper = $2, rows_estimated = $3, backfill_started_at = clock_timestamp(),
                    updated_at = clock_timestamp()
              WHERE name = $1",
            &[name.into(), upper.to_vec().into(), estimate.into()],
        )
    })
    .map_err(spi_err)
}

/// A partitioned table's backfill begins: one entry per leaf partition, in
/// walk order (`{partition, state, rows_done, rows_estimated}`).
pub fn begin_partitions(name: &str, partitions: Value, estimate: i64) -> ZdmResult<()> {
    writing(|| {
        Spi::run_with_args(
            "UPDATE zdm.migrations
                SET backfill_partitions = $2, backfill_upper = NULL, backfill_last = NULL, rows_estimated = $3,
                    backfill_started_at = clock_timestamp(), updated_at = clock_timestamp()
              WHERE name = $1",
            &[name.into(), JsonB(partitions).into(), estimate.into()],
        )
    })
    .map_err(spi_err)
}

/// Each leaf partition's entry, in walk order (empty before the backfill began).
pub fn partition_states(name: &str) -> ZdmResult<Vec<Value>> {
    let v = crate::session::get_optional::<JsonB>(
        "SELECT backfill_partitions FROM zdm.migrations WHERE name = $1",
        &[name.into()],
    )
    .map_err(spi_err)?;
    Ok(match v.map(|j| j.0) {
        Some(Value::Array(a)) => a,
        _ => Vec::new(),
    })
}

/// Move leaf partition `index` to `state` ('backfilling', 'done', 'gone');
/// when it starts, its upper bound becomes the backfill's and no key is done yet.
pub fn set_partition_state(name: &str, index: i32, state: &str, upper: Option<&[String]>) -> ZdmResult<()> {
    writing(|| {
        Spi::run_with_args(
            "UPDATE zdm.migrations
                SET backfill_partitions = jsonb_set(backfill_partitions, ARRAY[$2::text, 'state'], to_jsonb($3::text)),
                    backfill_upper = CASE WHEN $3 = 'backfilling' THEN $4 ELSE backfill_upper END,
                    backfill_last = CASE WHEN $3 = 'backfilling' THEN NULL ELSE backfill_last END,
                    updated_at = clock_timestamp()
              WHERE name = $1",
            &[
                name.into(),
                index.into(),
                state.into(),
                upper.map(|u| u.to_vec()).into(),
            ],
        )
    })
    .map_err(spi_err)
}

/// Everything about one migration, as `zdm.status()` returns it.
pub fn status_json(name: &str) -> ZdmResult<Value> {
    if !exists(name)? {
        return Err(ZdmError::unknown_migration(name));
    }
    let v = Spi::get_one_with_args::<JsonB>(
        "SELECT jsonb_build_object(
                  'migration', m.name, 'table', m.table_name, 'kind', m.kind, 'phase', m.phase,
                  'columns', to_jsonb(m.columns), 'spec', m.spec,
                  'created_at', m.created_at, 'updated_at', m.updated_at, 'completed_at', m.completed_at,
                  'progress', (SELECT to_jsonb(p) - 'migration' FROM zdm.progress p WHERE p.migration = m.name),
                  'events', (SELECT jsonb_agg(jsonb_build_object('at', e.at, 'event', e.event,
                                     'from', e.from_phase, 'to', e.to_phase, 'detail', e.detail) ORDER BY e.id)
                               FROM zdm.events e WHERE e.migration = m.name))
           FROM zdm.migrations m WHERE m.name = $1",
        &[name.into()],
    )
    .map_err(spi_err)?;
    v.map(|j| j.0).ok_or_else(|| ZdmError::unknown_migration(name))
}

/// State of a shadow migration kept between calls: `verify` (the last result)
/// and `swap` (what the swap changed, for complete and rollback). `{}` when none.
pub fn shadow_state(name: &str) -> ZdmResult<Value> {
    let v: Option<JsonB> = crate::session::get_optional(
        "SELECT coalesce(shadow, '{}') FROM zdm.migrations WHERE name = $1",
        &[name.into()],
    )
    .map_err(spi_err)?;
    Ok(v.map(|j| j.0).unwrap_or_else(|| serde_json::json!({})))
}

/// Set one key of the shadow state (`verify`, `swap`); null removes it.
pub fn set_shadow_state(name: &str, key: &str, value: Value) -> ZdmResult<()> {
    writing(|| {
        Spi::run_with_args(
            "UPDATE zdm.migrations
                SET shadow = CASE WHEN $3 = 'null'::jsonb THEN coalesce(shadow, '{}') - $2
                                  ELSE coalesce(shadow, '{}') || pg_catalog.jsonb_build_object($2, $3) END,
                    updated_at = clock_timestamp()
              WHERE name = $1",
            &[name.into(), key.into(), JsonB(value).into()],
        )
    })
    .map_err(spi_err)
}
