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
    CHECK (phase IN ('started', 'backfilling', 'backfilled', 'swapped', 'completed', 'rolled_back', 'abandoned'));
ALTER TABLE zdm.migrations ADD COLUMN shadow jsonb;
-- A migration whose table was dropped ends 'abandoned' (final, like rolled_back).
DROP INDEX zdm.migrations_table_active;
CREATE INDEX migrations_table_active ON zdm.migrations (table_name)
    WHERE phase NOT IN ('completed', 'rolled_back', 'abandoned');

CREATE OR REPLACE VIEW zdm.progress AS
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
RETURNS text LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
    SELECT zdm._start_one(migration, pg_catalog.jsonb_build_object(
        'op', 'create_shadow_table', 'table', zdm._table_name(tbl),
        'alterations', pg_catalog.to_jsonb(coalesce(alterations, '{}'::text[])),
        'column_map', column_map))
$$;
COMMENT ON FUNCTION zdm.create_shadow_table(regclass, text[], jsonb, text) IS
    'Start restructuring a table through a shadow copy (alterations applied to it, columns filled by name or column_map), kept in sync by a trigger; returns the migration name. Then CALL zdm.backfill, zdm.verify, zdm.swap_tables, zdm.complete.';

-- Least privilege (see README, Security).
-- The catalog: writable by its owner only, and only through pg_zdm (a flag
-- inside the server process, no longer a setting any session could change).
CREATE FUNCTION zdm."_catalog_write_in_progress"() RETURNS bool /* bool */
STRICT
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', '_catalog_write_in_progress_wrapper';

CREATE OR REPLACE FUNCTION zdm._catalog_guard() RETURNS trigger
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

-- Idempotent calls: a rolled-back migration whose name is started
-- again is renamed <name>@<n>; its events follow it.
ALTER TABLE zdm.events DROP CONSTRAINT events_migration_fkey;
ALTER TABLE zdm.events ADD CONSTRAINT events_migration_fkey
    FOREIGN KEY (migration) REFERENCES zdm.migrations (name) ON UPDATE CASCADE ON DELETE CASCADE;

CREATE FUNCTION zdm."forget"(
	"migration" TEXT /* &str */
) RETURNS void
STRICT
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'forget_wrapper';

GRANT USAGE ON SCHEMA zdm TO PUBLIC;
REVOKE ALL ON zdm.migrations, zdm.events, zdm.events_id_seq FROM PUBLIC;
GRANT SELECT ON zdm.migrations, zdm.events, zdm.progress TO PUBLIC;
GRANT SELECT ON zdm.blocking_locks, zdm.long_transactions, zdm.replication_lag TO PUBLIC;

-- The SQL wrappers mean the same whatever the caller's search_path holds.
ALTER FUNCTION zdm._table_name(regclass) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION zdm.rename_column(regclass, name, name, text) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION zdm.alter_column_type(regclass, name, text, text, text, text) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION zdm._start_one(text, jsonb) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION zdm.add_column(regclass, name, text, text, boolean, text, text) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION zdm.set_not_null(regclass, name, text, text) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION zdm.drop_column(regclass, name, text, text) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION zdm.add_check(regclass, name, text, text) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION zdm.add_foreign_key(regclass, name, name[], regclass, name[], text, text) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION zdm.add_unique(regclass, name, name[], text) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION zdm.create_index(regclass, name, text, text) SET search_path = pg_catalog, pg_temp;

-- The committing procedure, every name qualified (it may not fix its path).
-- The committing backfill loop. PL/pgSQL on purpose: pgrx code cannot COMMIT.
-- No SET clause and not SECURITY DEFINER (either would forbid COMMIT), so every
-- name is schema-qualified instead, types and operators included: the
-- procedure means the same whatever the caller's search_path holds. Each step (zdm._backfill_step) decides
-- whether a batch runs (pause, replication lag, phase changes by other
-- sessions); this loop commits, sleeps when told to, and reports.
CREATE OR REPLACE PROCEDURE zdm.backfill(
    migration   text,
    batch_size  integer DEFAULT NULL,
    max_seconds integer DEFAULT NULL,
    via         text    DEFAULT 'CALL')       -- who runs it, for zdm.progress.runner ('cron' from pg_cron)
LANGUAGE plpgsql AS $$
DECLARE
    began       pg_catalog.timestamptz := pg_catalog.clock_timestamp();
    last_notice pg_catalog.timestamptz := pg_catalog.clock_timestamp();
    total       bigint := 0;
    delay       pg_catalog.interval;
    every       pg_catalog.interval;
    step        record;
    p           record;
    failed      boolean;
    err_state   pg_catalog.text;
    err_message pg_catalog.text;
    err_detail  pg_catalog.text;
    err_hint    pg_catalog.text;
BEGIN
    -- First call into the library: it also defines the zdm.* settings read below.
    PERFORM zdm._backfill_precheck(migration, batch_size);
    every := pg_catalog.current_setting('zdm.progress_interval')::pg_catalog.interval;
    LOOP
        failed := false;
        BEGIN
            SELECT * INTO step FROM zdm._backfill_step(migration, batch_size, via);
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS err_state = RETURNED_SQLSTATE, err_message = MESSAGE_TEXT,
                                    err_detail = PG_EXCEPTION_DETAIL, err_hint = PG_EXCEPTION_HINT;
            failed := true;
        END;
        IF failed THEN
            -- The batch was rolled back; keep the error visible in zdm.progress, then fail.
            PERFORM zdm._backfill_failed(migration, err_state, err_message);
            COMMIT;
            RAISE EXCEPTION USING ERRCODE = err_state, MESSAGE = err_message,
                                  DETAIL = coalesce(err_detail, ''), HINT = coalesce(err_hint, '');
        END IF;
        COMMIT;
        EXIT WHEN NOT (step.state OPERATOR(pg_catalog.=) ANY (ARRAY['batch', 'wait']::pg_catalog.text[]));
        total := total OPERATOR(pg_catalog.+) step.rows;
        IF (pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) last_notice) OPERATOR(pg_catalog.>=) every THEN
            SELECT * INTO p FROM zdm.progress WHERE progress.migration OPERATOR(pg_catalog.=) backfill.migration;
            RAISE NOTICE 'pg_zdm %: % of ~% rows (% %%), % rows/s, eta %, batch of % rows%',
                migration, p.rows_done, p.rows_estimated, coalesce(p.percent::pg_catalog.text, '?'),
                coalesce(p.current_rows_per_second::pg_catalog.text, '?'),
                coalesce(pg_catalog.date_trunc('second', p.eta)::pg_catalog.text, '?'),
                coalesce(p.last_batch_size::pg_catalog.text, '?'),
                coalesce(' -- waiting: ' OPERATOR(pg_catalog.||) step.reason, '');
            last_notice := pg_catalog.clock_timestamp();
        END IF;
        EXIT WHEN max_seconds IS NOT NULL
              AND (pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) began)
                  OPERATOR(pg_catalog.>=) pg_catalog.make_interval(secs => max_seconds);
        IF step.state OPERATOR(pg_catalog.=) 'wait' THEN
            PERFORM pg_catalog.pg_sleep(step.wait_ms::pg_catalog.float8 OPERATOR(pg_catalog./) 1000.0::pg_catalog.float8);
        ELSE
            delay := coalesce((SELECT pg_catalog.make_interval(secs => (m.settings OPERATOR(pg_catalog.->>) 'batch_delay_ms')::pg_catalog.float8
                                                                      OPERATOR(pg_catalog./) 1000::pg_catalog.float8)
                                 FROM zdm.migrations m WHERE m.name OPERATOR(pg_catalog.=) backfill.migration
                                  AND m.settings OPERATOR(pg_catalog.?) 'batch_delay_ms'),
                              pg_catalog.current_setting('zdm.batch_delay')::pg_catalog.interval);
            IF delay OPERATOR(pg_catalog.>) '0'::pg_catalog.interval THEN
                PERFORM pg_catalog.pg_sleep(pg_catalog.date_part('epoch', delay));
            END IF;
        END IF;
    END LOOP;
    IF step.state OPERATOR(pg_catalog.=) ANY (ARRAY['done', 'gone']::pg_catalog.text[]) THEN
        PERFORM zdm._backfill_ended(migration);
        COMMIT;
    END IF;
    SELECT * INTO p FROM zdm.progress WHERE progress.migration OPERATOR(pg_catalog.=) backfill.migration;
    RAISE NOTICE 'pg_zdm %: % rows in this call; % (%)%', migration, total, p.phase, p.state,
        CASE WHEN step.state OPERATOR(pg_catalog.=) 'paused' THEN ' -- paused: SELECT zdm.resume(...) then CALL again'
             WHEN step.state OPERATOR(pg_catalog.=) 'gone' THEN ' -- ' OPERATOR(pg_catalog.||) step.reason
             WHEN step.state OPERATOR(pg_catalog.=) 'batch' THEN ' -- stopped after max_seconds; CALL again to go on'
             WHEN step.state OPERATOR(pg_catalog.=) 'wait'
                 THEN ' -- stopped after max_seconds while waiting: ' OPERATOR(pg_catalog.||) step.reason
             ELSE '' END;
END
$$;
COMMENT ON PROCEDURE zdm.backfill(text, integer, integer, text) IS
    'Backfill a migration in committed batches. CALL it at top level (not inside BEGIN ... COMMIT).';

-- Migrations in flight when this version is installed: their generated
-- functions were owned by whoever started them (often a superuser) and
-- executable by PUBLIC, their triggers fired only for origin writes. Each
-- function goes to its table's owner without PUBLIC's EXECUTE, each trigger
-- fires ALWAYS (see README, Security). Before the DDL guard exists.
DO $$
DECLARE
    f record;
    t record;
BEGIN
    FOR f IN
        SELECT DISTINCT p.oid::pg_catalog.regprocedure AS signature, c.relowner
          FROM zdm.migrations m
          JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) pg_catalog.to_regclass(m.table_name)
          CROSS JOIN LATERAL pg_catalog.jsonb_array_elements(m.plan OPERATOR(pg_catalog.->) 'start') s
          JOIN pg_catalog.pg_proc p ON p.pronamespace OPERATOR(pg_catalog.=) 'zdm'::pg_catalog.regnamespace
           AND pg_catalog.starts_with(s OPERATOR(pg_catalog.->>) 'sql',
                                      'CREATE FUNCTION ' OPERATOR(pg_catalog.||) pg_catalog.format('%I.%I', 'zdm', p.proname) OPERATOR(pg_catalog.||) '(')
         WHERE m.phase <> ALL (ARRAY['completed', 'rolled_back'])
    LOOP
        EXECUTE pg_catalog.format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f.signature);
        EXECUTE pg_catalog.format('ALTER FUNCTION %s OWNER TO %I', f.signature, pg_catalog.pg_get_userbyid(f.relowner));
    END LOOP;
    FOR t IN
        SELECT tg.tgrelid::pg_catalog.regclass AS rel, tg.tgname
          FROM zdm.migrations m
          JOIN pg_catalog.pg_trigger tg ON tg.tgrelid OPERATOR(pg_catalog.=) pg_catalog.to_regclass(m.table_name)
         WHERE m.phase <> ALL (ARRAY['completed', 'rolled_back'])
           AND pg_catalog.starts_with(tg.tgname::pg_catalog.text, 'zdm_') AND tg.tgenabled OPERATOR(pg_catalog.<>) 'A'
    LOOP
        EXECUTE pg_catalog.format('ALTER TABLE %s ENABLE ALWAYS TRIGGER %I', t.rel, t.tgname);
    END LOOP;
END
$$;

-- The DDL guard (sql/guard.sql).
CREATE FUNCTION zdm."_own_ddl_in_progress"() RETURNS bool /* bool */
STRICT
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', '_own_ddl_in_progress_wrapper';
CREATE FUNCTION zdm."_abandon_dropped"(
	"migration" TEXT /* &str */
) RETURNS void
STRICT
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', '_abandon_dropped_wrapper';

CREATE FUNCTION zdm."_alter_table_subcommands"(command pg_catalog.pg_ddl_command)
RETURNS TABLE (relation oid, subcommand text, column_name text)
STRICT
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', '_alter_table_subcommands_wrapper';

-- The DDL guard: event triggers that refuse, with 55006, DDL from outside
-- pg_zdm that would break an active migration (its table renamed, a column it
-- claims dropped or renamed, one of its triggers dropped or not firing for
-- every write, its shadow, notes or old table dropped, renamed or short of a
-- column, its generated functions dropped). Dropping the migration's table
-- itself abandons the migration instead. pg_zdm's own DDL runs inside its
-- calls (zdm._own_ddl_in_progress()); any other DDL costs one indexed lookup
-- of zdm.migrations while no migration is active.

-- The active migration an object of pg_zdm's belongs to, if any:
-- `object_kind` is the object type as pg_event_trigger_*() name it,
-- `object_names` its address_names. (Not `kind`: a column of zdm.migrations
-- of that name would win over the parameter.)
CREATE FUNCTION zdm._guarded_by(object_kind text, object_names text[]) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT m.name
      FROM zdm.migrations m
     WHERE m.phase NOT IN ('completed', 'rolled_back', 'abandoned')
       AND CASE object_kind
           WHEN 'table' THEN
                format('%I.%I', object_names[1], object_names[2]) IN (m.table_name, m.plan->'shadow'->>'shadow', m.plan->'shadow'->>'old')
                OR EXISTS (SELECT FROM jsonb_array_elements(m.plan->'start') s
                            WHERE starts_with(s->>'sql', 'CREATE TABLE ' || format('%I.%I', object_names[1], object_names[2]) || ' '))
           WHEN 'table column' THEN
                format('%I.%I', object_names[1], object_names[2]) = m.table_name AND (object_names[3] = ANY (m.columns) OR '*' = ANY (m.columns))
           WHEN 'trigger' THEN
                format('%I.%I', object_names[1], object_names[2]) IN (m.table_name, m.plan->'shadow'->>'shadow', m.plan->'shadow'->>'old')
                AND starts_with(object_names[3], 'zdm_')
           WHEN 'function' THEN
                EXISTS (SELECT FROM jsonb_array_elements(m.plan->'start') s
                         WHERE starts_with(s->>'sql', 'CREATE FUNCTION ' || format('%I.%I', object_names[1], object_names[2]) || '('))
           ELSE false
           END
     ORDER BY m.created_at
     LIMIT 1
$$;

CREATE FUNCTION zdm._guard_refuse(what text, migration text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RAISE EXCEPTION 'pg_zdm: % belongs to the active migration %; this DDL would break it', what, quote_literal(migration)
        USING ERRCODE = 'object_in_use',
              HINT = format('Nothing was changed. Finish the migration first: SELECT zdm.complete(%L); or SELECT zdm.rollback(%L);',
                            migration, migration);
END
$$;

-- Nothing to guard: the DDL is pg_zdm's own, or no migration is active.
CREATE FUNCTION zdm._guard_idle() RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT zdm._own_ddl_in_progress()
        OR NOT EXISTS (SELECT FROM zdm.migrations WHERE phase NOT IN ('completed', 'rolled_back', 'abandoned'))
$$;

CREATE FUNCTION zdm._guard_drop() RETURNS event_trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    o record;
    owner_migration text;
BEGIN
    IF to_regclass('zdm.migrations') IS NULL OR zdm._guard_idle() THEN
        RETURN;
    END IF;
    -- A migration's own table dropped: the migration is abandoned (its shadow,
    -- notes and triggers may go in the same statement). See src/abandon.rs.
    FOR owner_migration IN
        SELECT m.name FROM zdm.migrations m
         WHERE m.phase NOT IN ('completed', 'rolled_back', 'abandoned')
           AND m.table_name IN (SELECT format('%I.%I', d.address_names[1], d.address_names[2])
                                  FROM pg_event_trigger_dropped_objects() d
                                 WHERE d.object_type = 'table' AND NOT d.is_temporary)
         ORDER BY m.created_at
    LOOP
        PERFORM zdm._abandon_dropped(owner_migration);
    END LOOP;
    FOR o IN SELECT * FROM pg_event_trigger_dropped_objects() WHERE NOT is_temporary LOOP
        owner_migration := zdm._guarded_by(o.object_type, o.address_names);
        IF owner_migration IS NOT NULL THEN
            PERFORM zdm._guard_refuse(o.object_type || ' ' || o.object_identity, owner_migration);
        END IF;
    END LOOP;
END
$$;

-- The table of a migration, by its stored name, without a schema lookup that
-- needs USAGE (the DDL being checked may come from any role).
CREATE FUNCTION zdm._table_oid(table_name text) RETURNS oid
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT r.oid FROM pg_class r JOIN pg_namespace n ON n.oid = r.relnamespace
     WHERE n.nspname = (parse_ident(table_name))[1] AND r.relname = (parse_ident(table_name))[2]
$$;

-- What of a shadow migration's second table is broken, if anything: the
-- shadow (before the swap) or the old table (after) gone, renamed, short of a
-- column it was made with, or with a trigger not firing ALWAYS; the table of
-- noted keys gone or renamed; before the swap, anything on the shadow that
-- could make the sync's writes or the settle's do nothing (row-level
-- security, a rule, a trigger of the user's). Its constraints and indexes may
-- change (a pg_restore adds the shadow's).
CREATE FUNCTION zdm._guard_second_table(m zdm.migrations) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    swapped boolean := m.phase = 'swapped';
    second text := m.plan->'shadow'->>(CASE WHEN swapped THEN 'old' ELSE 'shadow' END);
    t oid := zdm._table_oid(second);
BEGIN
    IF t IS NULL THEN
        RETURN 'table ' || second;
    END IF;
    IF EXISTS (SELECT FROM (SELECT p->>(CASE WHEN swapped THEN 0 ELSE 1 END) AS col
                              FROM jsonb_array_elements(m.plan->'shadow'->'column_pairs') p
                            UNION
                            SELECT c FROM jsonb_array_elements_text((m.plan->'shadow'->'compared_columns')
                                                                     || (m.plan->'shadow'->'not_compared')) c
                             WHERE NOT swapped) needed
                WHERE NOT EXISTS (SELECT FROM pg_attribute a
                                   WHERE a.attrelid = t AND a.attname = needed.col AND NOT a.attisdropped)) THEN
        RETURN 'a column of table ' || second;
    END IF;
    IF EXISTS (SELECT FROM pg_trigger tg
                WHERE tg.tgrelid = t AND starts_with(tg.tgname::text, 'zdm_') AND tg.tgenabled <> 'A') THEN
        RETURN 'a trigger of table ' || second;
    END IF;
    IF m.plan->'shadow' ? 'notes' AND zdm._table_oid(m.plan->'shadow'->>'notes') IS NULL THEN
        RETURN 'table ' || (m.plan->'shadow'->>'notes');
    END IF;
    IF NOT swapped THEN
        RETURN zdm._guard_shadow_writes(m);
    END IF;
    RETURN NULL;
END
$$;

-- Before the swap: anything on the shadow that could make the sync's writes
-- or the settle's do nothing (row-level security, a rule, a user's trigger).
CREATE FUNCTION zdm._guard_shadow_writes(m zdm.migrations) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT 'the writes into table ' || (m.plan->'shadow'->>'shadow')
      FROM (SELECT zdm._table_oid(m.plan->'shadow'->>'shadow') AS t) s
     WHERE EXISTS (SELECT FROM pg_class c WHERE c.oid = s.t AND (c.relrowsecurity OR c.relforcerowsecurity))
        OR EXISTS (SELECT FROM pg_rewrite r WHERE r.ev_class = s.t)
        OR EXISTS (SELECT FROM pg_trigger tg
                    WHERE tg.tgrelid = s.t AND NOT tg.tgisinternal AND NOT starts_with(tg.tgname::text, 'zdm_'))
$$;

-- After a CREATE TRIGGER or CREATE RULE from outside: nothing of the kind
-- on the shadow of an active migration before its swap. (Not the checks of
-- zdm._guard_alter: a pg_restore creates a sync trigger, then enables it ALWAYS.)
CREATE FUNCTION zdm._guard_create() RETURNS event_trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    m zdm.migrations;
    broken text;
BEGIN
    IF zdm._guard_idle() THEN
        RETURN;
    END IF;
    FOR m IN SELECT * FROM zdm.migrations
              WHERE phase NOT IN ('completed', 'rolled_back', 'abandoned', 'swapped') AND plan ? 'shadow' LOOP
        broken := zdm._guard_shadow_writes(m);
        IF broken IS NOT NULL THEN
            PERFORM zdm._guard_refuse(broken, m.name);
        END IF;
    END LOOP;
END
$$;

-- What one ALTER TABLE subcommand from outside breaks in migration m, if
-- anything: the type of a column its triggers copy changed under them; on
-- its second table (the shadow before the swap, the old table after), a
-- column added or a type changed, which the sync's writes into it do not
-- expect. (A pg_restore of the shadow does neither; its ADD PRIMARY KEY sets
-- NOT NULL, so that one is not told apart from a user's.)
CREATE FUNCTION zdm._guard_subcommand(m zdm.migrations, relation oid, subcommand text, column_name text) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE
           WHEN relation = zdm._table_oid(m.table_name) AND subcommand = 'alter column type'
                AND (column_name = ANY (m.columns) OR '*' = ANY (m.columns))
           THEN format('table %s (the type of its column %I)', m.table_name, column_name)
           WHEN relation = zdm._table_oid(second.name) AND subcommand IN ('add column', 'alter column type')
           THEN format('table %s (its columns)', second.name)
           END
      FROM (SELECT m.plan->'shadow'->>(CASE WHEN m.phase = 'swapped' THEN 'old' ELSE 'shadow' END) AS name) second
$$;

-- Was a catalog row (its xmin) written by the transaction running now, or
-- one of its subtransactions? Only those are visible while in progress.
CREATE FUNCTION zdm._written_by_this_transaction(x xid) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce(pg_xact_status(((CASE WHEN x::text::int8 - (c.cur & 4294967295) > 2147483648 THEN (c.cur >> 32) - 1
                                          WHEN (c.cur & 4294967295) - x::text::int8 > 2147483648 THEN (c.cur >> 32) + 1
                                          ELSE c.cur >> 32 END << 32) | x::text::int8)::text::xid8) = 'in progress', false)
      FROM (SELECT pg_current_xact_id()::text::int8 AS cur) c
$$;

-- A partition attached under table `t` by this transaction, not one of
-- `known` (the partitions at the migration's start), whose leaves hold rows:
-- they never went through the migration's sync triggers, nor its backfill
-- (which walks the leaves there were at start).
CREATE FUNCTION zdm._attached_with_rows(t oid, known jsonb) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    attached regclass;
    leaf regclass;
    has_rows boolean;
BEGIN
    FOR attached IN SELECT i.inhrelid::regclass FROM pg_partition_tree(t) pt
                      JOIN pg_inherits i ON i.inhrelid = pt.relid
                     WHERE pt.level > 0 AND zdm._written_by_this_transaction(i.xmin)
                       AND NOT coalesce(known ? format('%I.%I', (SELECT nspname FROM pg_namespace n JOIN pg_class c ON c.relnamespace = n.oid WHERE c.oid = pt.relid),
                                                       (SELECT relname FROM pg_class WHERE oid = pt.relid)), false) LOOP
        FOR leaf IN SELECT relid FROM pg_partition_tree(attached) WHERE isleaf LOOP
            EXECUTE format('SELECT EXISTS (SELECT FROM %s)', leaf) INTO has_rows;
            IF has_rows THEN
                RETURN attached::text;
            END IF;
        END LOOP;
    END LOOP;
    RETURN NULL;
END
$$;

-- After an ALTER TABLE, ALTER TRIGGER or ALTER SCHEMA from outside: the
-- tables of active migrations still have their names and claimed columns,
-- their triggers fire for every write (ENABLE ALWAYS), on every partition
-- of a partitioned one too, no subcommand changed what their triggers read or
-- write, no partition with rows joined it, and a shadow migration's second
-- table is intact.
CREATE FUNCTION zdm._guard_alter() RETURNS event_trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    m zdm.migrations;
    t oid;
    broken text;
    sub record;
    attached text;
BEGIN
    IF zdm._guard_idle() THEN
        RETURN;
    END IF;
    FOR m IN SELECT * FROM zdm.migrations WHERE phase NOT IN ('completed', 'rolled_back', 'abandoned') LOOP
        FOR sub IN SELECT s.* FROM pg_event_trigger_ddl_commands() c, zdm._alter_table_subcommands(c.command) s LOOP
            broken := zdm._guard_subcommand(m, sub.relation, sub.subcommand, sub.column_name);
            IF broken IS NOT NULL THEN
                PERFORM zdm._guard_refuse(broken, m.name);
            END IF;
        END LOOP;
        t := zdm._table_oid(m.table_name);
        IF t IS NULL THEN
            PERFORM zdm._guard_refuse('table ' || m.table_name, m.name);
        END IF;
        IF EXISTS (SELECT FROM unnest(m.columns) col
                    WHERE col <> '*'
                      AND NOT EXISTS (SELECT FROM pg_attribute a
                                       WHERE a.attrelid = t AND a.attname = col AND NOT a.attisdropped)) THEN
            PERFORM zdm._guard_refuse('a column of table ' || m.table_name, m.name);
        END IF;
        IF EXISTS (SELECT FROM pg_trigger tg
                    WHERE (tg.tgrelid = t OR tg.tgrelid IN (SELECT relid FROM pg_partition_tree(t)))
                      AND starts_with(tg.tgname::text, 'zdm_') AND tg.tgenabled <> 'A') THEN
            PERFORM zdm._guard_refuse('a trigger of table ' || m.table_name, m.name);
        END IF;
        attached := zdm._attached_with_rows(t, m.plan->'partitions');
        IF attached IS NOT NULL THEN
            RAISE EXCEPTION 'pg_zdm: partition % of table % has rows that never went through the sync triggers of the active migration %',
                            attached, m.table_name, quote_literal(m.name)
                USING ERRCODE = 'object_in_use',
                      HINT = format('Nothing was changed. Attach it after SELECT zdm.complete(%L); (or zdm.rollback), or create the partition empty (CREATE TABLE ... PARTITION OF) and copy its rows in.', m.name);
        END IF;
        IF m.plan ? 'shadow' THEN
            broken := zdm._guard_second_table(m);
            IF broken IS NOT NULL THEN
                PERFORM zdm._guard_refuse(broken, m.name);
            END IF;
        END IF;
    END LOOP;
END
$$;

CREATE EVENT TRIGGER zdm_guard_drop ON sql_drop EXECUTE FUNCTION zdm._guard_drop();
CREATE EVENT TRIGGER zdm_guard_alter ON ddl_command_end
    WHEN TAG IN ('ALTER TABLE', 'ALTER TRIGGER', 'ALTER SCHEMA')
    EXECUTE FUNCTION zdm._guard_alter();
CREATE EVENT TRIGGER zdm_guard_create ON ddl_command_end
    WHEN TAG IN ('CREATE TRIGGER', 'CREATE RULE')
    EXECUTE FUNCTION zdm._guard_create();

-- zdm.plan() as rows, one per step (phase, position, lock, statement).
CREATE FUNCTION zdm."plan_steps"(
	"spec" jsonb /* JsonB */
) RETURNS TABLE (
	"phase" TEXT,  /* String */
	"position" INT,  /* i32 */
	"description" TEXT,  /* String */
	"lock_mode" TEXT,  /* Option < String > */
	"locked_relation" TEXT,  /* Option < String > */
	"top_level" bool,  /* bool */
	"statement" TEXT  /* String */
)
STRICT
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'plan_steps_wrapper';

-- The migration linter (src/lint/): zdm.lint, zdm.lint_json, zdm.lint_check, zdm.convert.
CREATE FUNCTION zdm."lint"(
	"sql" TEXT, /* & str */
	"in_transaction" bool DEFAULT false, /* bool */
	"long_transaction" TEXT DEFAULT '1 minute' /* & str */
) RETURNS TABLE (
	"statement_no" INT,  /* i32 */
	"line" INT,  /* i32 */
	"statement" TEXT,  /* String */
	"objects" TEXT[],  /* Vec < String > */
	"lock_mode" TEXT,  /* Option < String > */
	"table_work" TEXT,  /* String */
	"table_name" TEXT,  /* Option < String > */
	"table_bytes" bigint,  /* Option < i64 > */
	"table_rows" bigint,  /* Option < i64 > */
	"verdict" TEXT,  /* String */
	"rule" TEXT,  /* Option < String > */
	"reason" TEXT,  /* Option < String > */
	"safe_way" TEXT,  /* Option < String > */
	"spec" jsonb  /* Option < JsonB > */
)
STRICT
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'lint_wrapper';

CREATE FUNCTION zdm."lint_json"(
	"sql" TEXT, /* & str */
	"in_transaction" bool DEFAULT false, /* bool */
	"long_transaction" TEXT DEFAULT '1 minute' /* & str */
) RETURNS jsonb /* JsonB */
STRICT
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'lint_json_wrapper';

CREATE FUNCTION zdm."lint_check"(
	"sql" TEXT, /* & str */
	"in_transaction" bool DEFAULT false, /* bool */
	"long_transaction" TEXT DEFAULT '1 minute' /* & str */
) RETURNS TEXT /* String */
STRICT
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'lint_check_wrapper';

CREATE FUNCTION zdm."convert"(
	"sql" TEXT, /* & str */
	"in_transaction" bool DEFAULT false /* bool */
) RETURNS jsonb /* JsonB */
STRICT
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'convert_wrapper';

-- The background runner (zdm.run, zdm.cancel, zdm.wait, zdm.runners).
CREATE FUNCTION zdm."run"(
	"migration" TEXT, /* & str */
	"through" TEXT DEFAULT 'backfilled' /* & str */
) RETURNS TEXT /* String */
STRICT
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'run_wrapper';
CREATE FUNCTION zdm."cancel"(
	"migration" TEXT /* & str */
) RETURNS bool /* bool */
STRICT
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'cancel_wrapper';
CREATE FUNCTION zdm."_runner_wait_step"(
	"migration" TEXT, /* & str */
	"began" timestamp with time zone, /* pgrx :: datum :: TimestampWithTimeZone */
	"timeout" interval /* Option < pgrx :: datum :: Interval > */
) RETURNS bool /* bool */
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', '_runner_wait_step_wrapper';
-- sql/runner.sql, as installed:
CREATE TABLE zdm.runners (
    migration    text PRIMARY KEY REFERENCES zdm.migrations (name) ON UPDATE CASCADE ON DELETE CASCADE,
    id           bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    through      text NOT NULL CONSTRAINT runners_through_check CHECK (through IN ('backfilled', 'swap')),
    state        text NOT NULL
        CONSTRAINT runners_state_check CHECK (state IN ('launched', 'running', 'done', 'failed', 'cancelled')),
    database     oid NOT NULL,
    pid          integer,                 -- the worker's, while it runs
    launches     integer NOT NULL DEFAULT 0,
    requested_by name NOT NULL,
    requested_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    launched_at  timestamptz,
    started_at   timestamptz,
    ended_at     timestamptz,
    last_error   text,                    -- 'SQLSTATE: message' of the error that stopped it
    updated_at   timestamptz NOT NULL DEFAULT clock_timestamp()
);
COMMENT ON TABLE zdm.runners IS
    'Background workers started by zdm.run(), one row per migration. Written only by zdm.* functions; read it freely.';

CREATE TRIGGER catalog_guard BEFORE INSERT OR UPDATE OR DELETE ON zdm.runners
    FOR EACH ROW EXECUTE FUNCTION zdm._catalog_guard();
CREATE TRIGGER catalog_guard_truncate BEFORE TRUNCATE ON zdm.runners
    FOR EACH STATEMENT EXECUTE FUNCTION zdm._catalog_guard();
REVOKE ALL ON zdm.runners FROM PUBLIC;
GRANT SELECT ON zdm.runners TO PUBLIC;

-- Block until the migrate phase a runner does is over. A procedure that
-- commits between two looks: a function would keep its transaction (and
-- snapshot) open across the wait, and CREATE INDEX CONCURRENTLY in the
-- worker waits for every transaction older than its own. So, like
-- zdm.backfill: no SET clause, every name schema-qualified.
CREATE PROCEDURE zdm.wait(migration text, timeout pg_catalog.interval DEFAULT NULL)
LANGUAGE plpgsql AS $$
DECLARE
    began    pg_catalog.timestamptz := pg_catalog.clock_timestamp();
    finished boolean;
BEGIN
    LOOP
        finished := zdm._runner_wait_step(migration, began, timeout);
        EXIT WHEN finished;
        COMMIT;
        PERFORM pg_catalog.pg_sleep(0.05);
    END LOOP;
END
$$;
COMMENT ON PROCEDURE zdm.wait(text, pg_catalog.interval) IS
    'Wait until the background runner of a migration is done (raises its error if it failed). CALL it at top level.';

-- Single-table operations of issue 18 (the same wrappers as sql/api.sql).
CREATE FUNCTION zdm.drop_index(tbl regclass, index_name name, migration text DEFAULT NULL)
RETURNS text LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
    SELECT zdm._start_one(migration, pg_catalog.jsonb_build_object(
        'op', 'drop_index', 'table', zdm._table_name(tbl), 'index', index_name::text))
$$;
COMMENT ON FUNCTION zdm.drop_index(regclass, name, text) IS
    'Start dropping an index: kept until complete; its DROP INDEX CONCURRENTLY runs at top level (zdm.pending_statements(migration)) before complete.';

CREATE FUNCTION zdm.set_default(tbl regclass, col name, default_expr text, migration text DEFAULT NULL)
RETURNS text LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
    SELECT zdm._start_one(migration, pg_catalog.jsonb_build_object(
        'op', 'set_default', 'table', zdm._table_name(tbl), 'column', col::text, 'default', default_expr))
$$;
COMMENT ON FUNCTION zdm.set_default(regclass, name, text, text) IS
    'Start changing a column''s default: the old one stays until complete (catalog only).';

CREATE FUNCTION zdm.drop_default(tbl regclass, col name, migration text DEFAULT NULL)
RETURNS text LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
    SELECT zdm._start_one(migration, pg_catalog.jsonb_build_object(
        'op', 'drop_default', 'table', zdm._table_name(tbl), 'column', col::text))
$$;
COMMENT ON FUNCTION zdm.drop_default(regclass, name, text) IS
    'Start dropping a column''s default: it stays until complete (catalog only).';

CREATE FUNCTION zdm.drop_not_null(tbl regclass, col name, migration text DEFAULT NULL)
RETURNS text LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
    SELECT zdm._start_one(migration, pg_catalog.jsonb_build_object(
        'op', 'drop_not_null', 'table', zdm._table_name(tbl), 'column', col::text))
$$;
COMMENT ON FUNCTION zdm.drop_not_null(regclass, name, text) IS
    'Start letting a column accept NULL: at once (catalog only); rollback puts NOT NULL back unless NULLs were written.';

CREATE FUNCTION zdm.set_comment(tbl regclass, comment text, col name DEFAULT NULL, migration text DEFAULT NULL)
RETURNS text LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
    SELECT zdm._start_one(migration, pg_catalog.jsonb_build_object(
        'op', 'set_comment', 'table', zdm._table_name(tbl), 'column', col::text, 'comment', comment))
$$;
COMMENT ON FUNCTION zdm.set_comment(regclass, text, name, text) IS
    'Start changing a table''s comment (or a column''s, with col): at complete, catalog only; NULL removes it.';

CREATE FUNCTION zdm.rename_constraint(tbl regclass, constraint_name name, new_name name, migration text DEFAULT NULL)
RETURNS text LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
    SELECT zdm._start_one(migration, pg_catalog.jsonb_build_object(
        'op', 'rename_constraint', 'table', zdm._table_name(tbl), 'constraint', constraint_name::text,
        'new_name', new_name::text))
$$;
COMMENT ON FUNCTION zdm.rename_constraint(regclass, name, name, text) IS
    'Start renaming a constraint (and its index): at complete, catalog only.';

CREATE FUNCTION zdm.set_replica_identity(tbl regclass, identity text, index_name name DEFAULT NULL,
                                         migration text DEFAULT NULL)
RETURNS text LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
    SELECT zdm._start_one(migration, pg_catalog.jsonb_build_object(
        'op', 'set_replica_identity', 'table', zdm._table_name(tbl), 'identity', identity,
        'index', index_name::text))
$$;
COMMENT ON FUNCTION zdm.set_replica_identity(regclass, text, name, text) IS
    'Start changing the replica identity (default, full, nothing, or index with index_name): at complete, catalog only.';

CREATE FUNCTION zdm.drop_constraint(tbl regclass, constraint_name name, migration text DEFAULT NULL)
RETURNS text LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
    SELECT zdm._start_one(migration, pg_catalog.jsonb_build_object(
        'op', 'drop_constraint', 'table', zdm._table_name(tbl), 'constraint', constraint_name::text))
$$;
COMMENT ON FUNCTION zdm.drop_constraint(regclass, name, text) IS
    'Start dropping a constraint: it keeps protecting the old application until complete drops it (catalog only).';

-- Partitioned tables: each leaf partition's backfill.
ALTER TABLE zdm.migrations ADD COLUMN backfill_partitions jsonb;

-- A partitioned table's backfill, one line per leaf partition in walk order.
CREATE VIEW zdm.partition_progress AS
SELECT m.name                                   AS migration,
       m.table_name,
       p.position,
       p.entry ->> 'partition'                  AS partition,
       p.entry ->> 'state'                      AS state,
       (p.entry ->> 'rows_done')::bigint        AS rows_done,
       greatest((p.entry ->> 'rows_estimated')::bigint, (p.entry ->> 'rows_done')::bigint) AS rows_estimated,
       CASE WHEN p.entry ->> 'state' IN ('done', 'gone') THEN 100.0
            WHEN coalesce((p.entry ->> 'rows_estimated')::bigint, 0) = 0 THEN NULL
            ELSE round(100.0 * (p.entry ->> 'rows_done')::bigint
                       / greatest((p.entry ->> 'rows_estimated')::bigint, (p.entry ->> 'rows_done')::bigint), 1)
       END                                      AS percent
  FROM zdm.migrations m
 CROSS JOIN LATERAL pg_catalog.jsonb_array_elements(m.backfill_partitions) WITH ORDINALITY AS p(entry, position)
 WHERE pg_catalog.jsonb_typeof(m.backfill_partitions) = 'array';
COMMENT ON VIEW zdm.partition_progress IS
    'A partitioned table''s backfill: each leaf partition''s state (pending, backfilling, done, gone: detached or dropped) and rows done.';
GRANT SELECT ON zdm.partition_progress TO PUBLIC;
