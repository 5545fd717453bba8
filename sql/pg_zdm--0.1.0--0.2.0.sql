-- pg_zdm 0.1.0 → 0.2.0
--
-- Every change to the extension's SQL objects since 0.1.0 goes here, so that
-- ALTER EXTENSION pg_zdm UPDATE gives exactly what a fresh CREATE EXTENSION
-- gives (the external suite compares the two, object by object).
-- Rust functions are (re)declared with
--   CREATE OR REPLACE FUNCTION zdm.f(...) ... AS 'MODULE_PATHNAME', 'f_wrapper';
-- copied from the generated install script (cargo pgrx schema).
--

-- Shadow tables (zdm.create_shadow_table, zdm.verify, zdm.swap_tables).
ALTER TABLE zdm.migrations DROP CONSTRAINT migrations_phase_check;
ALTER TABLE zdm.migrations ADD CONSTRAINT migrations_phase_check
    CHECK (phase IN ('started', 'backfilling', 'backfilled', 'swapped', 'completed', 'rolled_back'));
ALTER TABLE zdm.migrations ADD COLUMN shadow jsonb;

CREATE OR REPLACE VIEW zdm.progress AS
SELECT m.name AS migration,
       m.table_name,
       m.kind,
       m.phase,
       CASE WHEN m.phase IN ('completed', 'rolled_back') THEN 'done'
            WHEN m.paused THEN 'paused'
            WHEN m.waiting_reason IS NOT NULL THEN 'waiting'
            WHEN m.phase = 'backfilling' THEN 'backfilling'
            WHEN m.phase = 'started' AND m.plan ? 'backfill' THEN 'needs backfill'
            WHEN m.phase = 'backfilled' AND m.plan ? 'shadow' THEN 'ready to verify and swap'
            WHEN m.phase = 'swapped' THEN 'swapped: ready to complete'
            ELSE 'ready to complete'
       END AS state,
       m.waiting_reason,
       m.rows_done,
       greatest(m.rows_estimated, m.rows_done) AS rows_estimated,
       CASE WHEN m.phase IN ('backfilled', 'swapped', 'completed') THEN 100.0
            WHEN coalesce(greatest(m.rows_estimated, m.rows_done), 0) = 0 THEN NULL
            ELSE round(100.0 * m.rows_done / greatest(m.rows_estimated, m.rows_done), 1)
       END AS percent,
       -- rate of the last batch, and average since the backfill began
       CASE WHEN m.last_batch_ms > 0 THEN round((m.last_batch_size * 1000.0 / m.last_batch_ms)::numeric, 0) END
           AS current_rows_per_second,
       CASE WHEN m.last_batch_at > m.backfill_started_at
            THEN round((m.rows_done / extract(epoch FROM m.last_batch_at - m.backfill_started_at))::numeric, 0)
       END AS rows_per_second,
       CASE WHEN m.phase = 'backfilling' AND m.rows_done > 0 AND m.last_batch_at > m.backfill_started_at
            THEN (m.last_batch_at - m.backfill_started_at)
                 * (greatest(m.rows_estimated - m.rows_done, 0)::float8 / m.rows_done)
       END AS eta,
       m.batches,
       m.last_batch_size,
       round(m.last_batch_ms::numeric, 1) AS last_batch_ms,
       m.current_batch_size AS next_batch_size,
       m.last_batch_at,
       m.runner,
       m.cron_job_id,
       m.last_error,
       m.last_error_at,
       m.backfill_started_at,
       m.updated_at
  FROM zdm.migrations m;

CREATE FUNCTION zdm."verify"(
	"migration" TEXT /* & str */
) RETURNS jsonb /* JsonB */
STRICT
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'verify_wrapper';

CREATE FUNCTION zdm."swap_tables"(
	"migration" TEXT, /* & str */
	"lock_timeout" TEXT DEFAULT NULL, /* Option < & str > */
	"max_attempts" INT DEFAULT NULL /* Option < i32 > */
) RETURNS jsonb /* JsonB */
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'swap_tables_wrapper';

CREATE FUNCTION zdm.create_shadow_table(tbl regclass, alterations text[] DEFAULT '{}', column_map jsonb DEFAULT NULL,
                                        migration text DEFAULT NULL)
RETURNS text LANGUAGE sql AS $$
    SELECT zdm._start_one(migration, pg_catalog.jsonb_build_object(
        'op', 'create_shadow_table', 'table', zdm._table_name(tbl),
        'alterations', pg_catalog.to_jsonb(coalesce(alterations, '{}'::text[])),
        'column_map', column_map))
$$;
COMMENT ON FUNCTION zdm.create_shadow_table(regclass, text[], jsonb, text) IS
    'Start restructuring a table through a shadow copy (alterations applied to it, columns filled by name or column_map), kept in sync by a trigger; returns the migration name. Then CALL zdm.backfill, zdm.verify, zdm.swap_tables, zdm.complete.';
