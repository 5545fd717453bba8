-- The committing backfill loop. PL/pgSQL on purpose: pgrx code cannot COMMIT.
-- No SET clause and not SECURITY DEFINER (either would forbid COMMIT), so every
-- name is schema-qualified instead, types and operators included: the
-- procedure means the same whatever the caller's search_path holds. Each step (zdm._backfill_step) decides
-- whether a batch runs (pause, replication lag, phase changes by other
-- sessions); this loop commits, sleeps when told to, and reports.
CREATE PROCEDURE zdm.backfill(
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
