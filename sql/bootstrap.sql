-- The schema is created here, not named in the control file: a schema that
-- CREATE EXTENSION makes from the control file is not a member of the
-- extension and would outlive DROP EXTENSION. Created by the script, it is a
-- member: DROP EXTENSION removes it, and refuses while a live migration still
-- has its generated trigger functions in it.
CREATE SCHEMA zdm;
COMMENT ON SCHEMA zdm IS 'pg_zdm: zero-downtime schema migrations';

-- pg_zdm catalog: one row per migration, and an append-only event log.
-- Written only by pg_zdm's own functions (see the guard trigger below).

CREATE TABLE zdm.migrations (
    name                text PRIMARY KEY,
    table_name          text NOT NULL,          -- schema-qualified, quoted: public."Users"
    kind                text NOT NULL,          -- rename_column, ..., or multi
    phase               text NOT NULL
        CONSTRAINT migrations_phase_check
        CHECK (phase IN ('started', 'backfilling', 'backfilled', 'swapped', 'completed', 'rolled_back', 'abandoned')),
    columns             text[] NOT NULL DEFAULT '{}',   -- columns this migration claims
    spec                jsonb NOT NULL,         -- what was asked
    plan                jsonb NOT NULL,         -- the SQL of every phase, as generated at start
    created_at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    created_by          name NOT NULL DEFAULT current_user,
    updated_at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    completed_at        timestamptz,
    -- backfill progress, checkpointed in the same transaction as each batch
    backfill_upper      text[],                 -- key of the last row that existed when the backfill began
    backfill_last       text[],                 -- key of the last row of the last committed batch
    backfill_started_at timestamptz,
    rows_estimated      bigint,
    rows_done           bigint NOT NULL DEFAULT 0,
    rows_changed        bigint NOT NULL DEFAULT 0,
    batches             bigint NOT NULL DEFAULT 0,
    last_batch_size     integer,
    last_batch_ms       double precision,
    last_batch_at       timestamptz,
    current_batch_size  integer,                -- adapted to zdm.target_batch_time
    runner              text,                   -- 'pid 1234' or 'cron job 7 (pid 1234)'
    last_error          text,
    last_error_at       timestamptz,
    -- backfill control
    paused              boolean NOT NULL DEFAULT false,
    waiting_reason      text,                   -- why the backfill is not adding rows right now
    settings            jsonb NOT NULL DEFAULT '{}',   -- per-migration overrides of zdm.* backfill settings
    cron_job_id         bigint,                 -- pg_cron job of zdm.schedule_backfill()
    -- shadow tables: the last zdm.verify() result ('verify') and what
    -- zdm.swap_tables() changed ('swap'), for complete and rollback
    shadow              jsonb,
    -- partitioned tables: each leaf partition's backfill in walk order,
    -- {partition, state (pending, backfilling, done, gone), rows_done, rows_estimated}
    backfill_partitions jsonb
);
COMMENT ON TABLE zdm.migrations IS
    'pg_zdm migrations, one row each. Written only by zdm.* functions; read it freely.';

CREATE INDEX migrations_table_active ON zdm.migrations (table_name)
    WHERE phase NOT IN ('completed', 'rolled_back', 'abandoned');

CREATE TABLE zdm.events (
    id          bigserial PRIMARY KEY,
    -- ON UPDATE: an archived migration (see zdm.start) keeps its events.
    migration   text NOT NULL REFERENCES zdm.migrations (name) ON UPDATE CASCADE ON DELETE CASCADE,
    at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    event       text NOT NULL,
    from_phase  text,
    to_phase    text,
    detail      jsonb,
    by_user     name NOT NULL DEFAULT current_user,
    by_pid      integer NOT NULL DEFAULT pg_backend_pid()
);
COMMENT ON TABLE zdm.events IS 'Append-only log of what pg_zdm did to each migration.';

-- Who may write the catalog: its owner only (the role that created the
-- extension; pg_zdm's functions switch to it for the span of one write).
-- PUBLIC may read it. The guard below also refuses the owner's own writes
-- unless they come from pg_zdm: a flag kept in the server process, which no
-- session can set. COPY is let through for pg_restore (a superuser's, as only
-- the owner may write at all: see pg_extension_config_dump below).
CREATE FUNCTION zdm._catalog_guard() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NOT zdm._catalog_write_in_progress()
       AND current_query() !~* '^\s*copy\s' THEN
        RAISE EXCEPTION 'pg_zdm catalog table %.% is written by zdm.* functions only', TG_TABLE_SCHEMA, TG_TABLE_NAME
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Use zdm.start(), zdm.complete(), zdm.rollback() and friends; read the table freely.';
    END IF;
    -- An event changes only by following its migration's rename (a rolled-back
    -- migration archived as <name>@<n> when its name is started again).
    IF TG_TABLE_NAME = 'events' AND TG_OP = 'UPDATE'
       AND (pg_catalog.to_jsonb(OLD) OPERATOR(pg_catalog.-) 'migration'::text)
           IS DISTINCT FROM (pg_catalog.to_jsonb(NEW) OPERATOR(pg_catalog.-) 'migration'::text) THEN
        RAISE EXCEPTION 'zdm.events is append-only'
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Events are never changed; they go away with their migration only.';
    END IF;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END
$$;

CREATE TRIGGER catalog_guard BEFORE INSERT OR UPDATE OR DELETE ON zdm.migrations
    FOR EACH ROW EXECUTE FUNCTION zdm._catalog_guard();
CREATE TRIGGER catalog_guard BEFORE INSERT OR UPDATE OR DELETE ON zdm.events
    FOR EACH ROW EXECUTE FUNCTION zdm._catalog_guard();
CREATE TRIGGER catalog_guard_truncate BEFORE TRUNCATE ON zdm.migrations
    FOR EACH STATEMENT EXECUTE FUNCTION zdm._catalog_guard();
CREATE TRIGGER catalog_guard_truncate BEFORE TRUNCATE ON zdm.events
    FOR EACH STATEMENT EXECUTE FUNCTION zdm._catalog_guard();

-- Table owners use pg_zdm on their own tables (each call checks that the
-- caller may act for the table's owner): the schema is open, the catalog
-- readable by all and writable by its owner only.
GRANT USAGE ON SCHEMA zdm TO PUBLIC;
REVOKE ALL ON zdm.migrations, zdm.events, zdm.events_id_seq FROM PUBLIC;
GRANT SELECT ON zdm.migrations, zdm.events TO PUBLIC;

-- pg_dump keeps the catalog's rows (the tables themselves come with CREATE EXTENSION).
SELECT pg_catalog.pg_extension_config_dump('zdm.migrations', '');
SELECT pg_catalog.pg_extension_config_dump('zdm.events', '');
SELECT pg_catalog.pg_extension_config_dump('zdm.events_id_seq', '');

-- Where each migration stands, with rates and an ETA for running backfills.
CREATE VIEW zdm.progress AS
SELECT m.name AS migration,
       m.table_name,
       m.kind,
       m.phase,
       CASE WHEN m.phase IN ('completed', 'rolled_back', 'abandoned') THEN 'done'
            WHEN m.paused THEN 'paused'
            WHEN m.waiting_reason IS NOT NULL THEN 'waiting'
            WHEN m.phase = 'backfilling' THEN 'backfilling'
            WHEN m.phase = 'started' AND m.plan ? 'backfill' THEN 'needs backfill'
            WHEN m.phase = 'backfilled' AND m.plan ? 'shadow' THEN 'ready to verify and swap'
            WHEN m.phase = 'swapped' THEN 'swapped: ready to complete'
            -- complete refuses while an index the migration builds at top
            -- level (CREATE INDEX CONCURRENTLY) is missing or not valid, or
            -- a partition's is not attached (a partition that left the
            -- table is not waited for)
            WHEN EXISTS (SELECT FROM pg_catalog.jsonb_array_elements(m.plan -> 'start') s
                          WHERE (s ->> 'top_level')::boolean
                            AND (NOT s ? 'partition_of'
                                 OR EXISTS (SELECT FROM pg_catalog.pg_partition_tree(pg_catalog.to_regclass(s ->> 'partition_of')) t
                                             WHERE t.relid = pg_catalog.to_regclass(s -> 'lock' ->> 'relation')))
                            AND CASE WHEN s ? 'attaches_index'
                                     THEN NOT EXISTS (SELECT FROM pg_catalog.pg_inherits h
                                                       WHERE h.inhrelid = pg_catalog.to_regclass(s -> 'attaches_index' ->> 1)
                                                         AND h.inhparent = pg_catalog.to_regclass(s -> 'attaches_index' ->> 0))
                                     ELSE s ? 'builds_index'
                                          AND NOT coalesce((SELECT i.indisvalid FROM pg_catalog.pg_index i
                                                             WHERE i.indexrelid = pg_catalog.to_regclass(s ->> 'builds_index')),
                                                           false) END)
                 THEN 'index builds pending: run zdm.pending_statements()'
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
GRANT SELECT ON zdm.progress TO PUBLIC;
COMMENT ON VIEW zdm.progress IS
    'One line per migration: phase, state, rows done, rates, ETA, last batch, who runs it, last error.';
