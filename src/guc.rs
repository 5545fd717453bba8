//! The settings a DBA can tune, all under the `zdm.` prefix.
//!
//! Each has a session default here; a value can be set per role, per database,
//! in postgresql.conf, or with SET for one session. The README lists them.

use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};

/// How long one DDL statement may wait for its lock before it gives up and retries.
pub static LOCK_TIMEOUT_MS: GucSetting<i32> = GucSetting::<i32>::new(100);
/// How many times a DDL step is tried before pg_zdm gives up and names the blockers.
pub static LOCK_ATTEMPTS: GucSetting<i32> = GucSetting::<i32>::new(10);
/// First pause between two attempts; doubles each time, with jitter, up to the cap.
pub static RETRY_BACKOFF_MS: GucSetting<i32> = GucSetting::<i32>::new(200);
/// Cap on the pause between two attempts.
pub static RETRY_BACKOFF_MAX_MS: GucSetting<i32> = GucSetting::<i32>::new(5000);
/// Rows per backfill batch. A batch holds its rows' locks until it commits, so
/// its size bounds how long a writer of one of those rows can wait.
pub static BATCH_SIZE: GucSetting<i32> = GucSetting::<i32>::new(1000);
/// Pause between two backfill batches, to leave room to the application.
pub static BATCH_DELAY_MS: GucSetting<i32> = GucSetting::<i32>::new(0);
/// Target duration of one batch: the batch size adapts to stay near it (0: fixed size).
pub static TARGET_BATCH_TIME_MS: GucSetting<i32> = GucSetting::<i32>::new(100);
/// While a standby's replay lags more than this, the backfill waits (0: never waits).
pub static MAX_REPLICATION_LAG_MS: GucSetting<i32> = GucSetting::<i32>::new(10_000);
/// Seconds between two progress NOTICEs of a running backfill.
pub static PROGRESS_INTERVAL_S: GucSetting<i32> = GucSetting::<i32>::new(5);

/// Shadow tables: copy the rows into a shadow without indexes, build them after.
pub static SHADOW_INDEXES_AFTER_COPY: GucSetting<bool> = GucSetting::<bool>::new(true);

/// Set by pg_zdm around its own catalog writes; the guard trigger refuses others.
pub static CATALOG_WRITE: GucSetting<bool> = GucSetting::<bool>::new(false);

/// An integer setting: its name, its two descriptions (as `SHOW` and the
/// docs give them), the static holding its value, its bounds and its unit.
struct IntSetting {
    name: &'static std::ffi::CStr,
    short: &'static std::ffi::CStr,
    long: &'static std::ffi::CStr,
    setting: &'static GucSetting<i32>,
    min: i32,
    max: i32,
    unit: GucFlags,
}

const INT_SETTINGS: &[IntSetting] = &[
    IntSetting {
        name: c"zdm.lock_timeout",
        short: c"How long one pg_zdm DDL statement waits for its lock before retrying.",
        long: c"Readers and writers that arrive while pg_zdm waits for a lock queue behind it for at most this long.",
        setting: &LOCK_TIMEOUT_MS,
        min: 1,
        max: 60_000,
        unit: GucFlags::UNIT_MS,
    },
    IntSetting {
        name: c"zdm.lock_attempts",
        short: c"How many times a pg_zdm DDL step is tried when its lock is not available.",
        long: c"After the last attempt the step fails with SQLSTATE 55P03, naming the sessions that held the lock.",
        setting: &LOCK_ATTEMPTS,
        min: 1,
        max: 1000,
        unit: GucFlags::empty(),
    },
    IntSetting {
        name: c"zdm.retry_backoff",
        short: c"First pause between two attempts of a DDL step; doubles each attempt, with jitter.",
        long: c"",
        setting: &RETRY_BACKOFF_MS,
        min: 0,
        max: 60_000,
        unit: GucFlags::UNIT_MS,
    },
    IntSetting {
        name: c"zdm.retry_backoff_max",
        short: c"Longest pause between two attempts of a DDL step.",
        long: c"",
        setting: &RETRY_BACKOFF_MAX_MS,
        min: 0,
        max: 600_000,
        unit: GucFlags::UNIT_MS,
    },
    IntSetting {
        name: c"zdm.batch_size",
        short: c"Rows per backfill batch.",
        long: c"",
        setting: &BATCH_SIZE,
        min: 1,
        max: 10_000_000,
        unit: GucFlags::empty(),
    },
    IntSetting {
        name: c"zdm.batch_delay",
        short: c"Pause between two backfill batches.",
        long: c"",
        setting: &BATCH_DELAY_MS,
        min: 0,
        max: 600_000,
        unit: GucFlags::UNIT_MS,
    },
    IntSetting {
        name: c"zdm.target_batch_time",
        short: c"Target duration of one backfill batch; the batch size adapts to stay near it (0: fixed size).",
        long:
            c"A batch keeps its rows locked until it commits, so this bounds how long a writer waits for the backfill.",
        setting: &TARGET_BATCH_TIME_MS,
        min: 0,
        max: 600_000,
        unit: GucFlags::UNIT_MS,
    },
    IntSetting {
        name: c"zdm.max_replication_lag",
        short: c"The backfill waits while a standby's replay lags more than this (0: never waits).",
        long: c"Measured as replay_lag of pg_stat_replication; the wait shows in zdm.progress.waiting_reason.",
        setting: &MAX_REPLICATION_LAG_MS,
        min: 0,
        max: 86_400_000,
        unit: GucFlags::UNIT_MS,
    },
    IntSetting {
        name: c"zdm.progress_interval",
        short: c"Seconds between two progress NOTICEs of a running backfill.",
        long: c"",
        setting: &PROGRESS_INTERVAL_S,
        min: 1,
        max: 3600,
        unit: GucFlags::UNIT_S,
    },
];

pub fn register() {
    GucRegistry::define_bool_guc(
        c"zdm.catalog_write",
        c"Internal: lets pg_zdm's own functions write its catalog tables.",
        c"Do not set it by hand: zdm.migrations and zdm.events are written by zdm.* functions only.",
        &CATALOG_WRITE,
        GucContext::Userset,
        GucFlags::NO_SHOW_ALL | GucFlags::NO_RESET_ALL,
    );
    GucRegistry::define_bool_guc(
        c"zdm.shadow_indexes_after_copy",
        c"create_shadow_table copies the rows into a shadow without indexes and builds them after the copy.",
        c"Read when the migration starts. Faster copy (a bulk index build instead of one insert per index and row); \
          writes during the copy are noted and settled once the indexes exist. Off: the indexes exist from the start \
          and writers' triggers keep the shadow's rows current during the copy (verify meaningful mid-backfill).",
        &SHADOW_INDEXES_AFTER_COPY,
        GucContext::Userset,
        GucFlags::default(),
    );
    for s in INT_SETTINGS {
        GucRegistry::define_int_guc(
            s.name,
            s.short,
            s.long,
            s.setting,
            s.min,
            s.max,
            GucContext::Userset,
            s.unit,
        );
    }
}
