-- The committing backfill loop. PL/pgSQL on purpose: pgrx code cannot COMMIT.
-- No SET clause and not SECURITY DEFINER (either would forbid COMMIT), so every
-- name is schema-qualified instead. Each step (zdm._backfill_step) decides
-- whether a batch runs (pause, replication lag, phase changes by other
-- sessions); this loop commits, sleeps when told to, and reports.
CREATE PROCEDURE zdm.backfill(
    migration   text,
    batch_size  integer DEFAULT NULL,
    max_seconds integer DEFAULT NULL,
    via         text    DEFAULT 'CALL')       -- who runs it, for zdm.progress.runner ('cron' from pg_cron)
LANGUAGE plpgsql AS $$
DECLARE
    began       timestamptz := pg_catalog.clock_timestamp();
    last_notice timestamptz := pg_catalog.clock_timestamp();
    total       bigint := 0;
    delay       interval;
    every       interval;
    step        record;
    p           record;
    failed      boolean;
    err_state   text;
    err_message text;
    err_detail  text;
    err_hint    text;
BEGIN
    -- First call into the library: it also defines the zdm.* settings read below.
    PERFORM zdm._backfill_precheck(migration, batch_size);
    every := pg_catalog.current_setting('zdm.progress_interval')::interval;
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
        EXIT WHEN step.state NOT IN ('batch', 'wait');
        total := total + step.rows;
        IF pg_catalog.clock_timestamp() - last_notice >= every THEN
            SELECT * INTO p FROM zdm.progress WHERE progress.migration = backfill.migration;
            RAISE NOTICE 'pg_zdm %: % of ~% rows (% %%), % rows/s, eta %, batch of % rows%',
                migration, p.rows_done, p.rows_estimated, coalesce(p.percent::text, '?'),
                coalesce(p.current_rows_per_second::text, '?'),
                coalesce(pg_catalog.date_trunc('second', p.eta)::text, '?'),
                coalesce(p.last_batch_size::text, '?'),
                coalesce(' -- waiting: ' || step.reason, '');
            last_notice := pg_catalog.clock_timestamp();
        END IF;
        EXIT WHEN max_seconds IS NOT NULL
              AND pg_catalog.clock_timestamp() - began >= pg_catalog.make_interval(secs => max_seconds);
        IF step.state = 'wait' THEN
            PERFORM pg_catalog.pg_sleep(step.wait_ms / 1000.0);
        ELSE
            delay := coalesce((SELECT pg_catalog.make_interval(secs => (m.settings->>'batch_delay_ms')::float8 / 1000)
                                 FROM zdm.migrations m WHERE m.name = backfill.migration
                                  AND m.settings ? 'batch_delay_ms'),
                              pg_catalog.current_setting('zdm.batch_delay')::interval);
            IF delay > interval '0' THEN
                PERFORM pg_catalog.pg_sleep(pg_catalog.date_part('epoch', delay));
            END IF;
        END IF;
    END LOOP;
    IF step.state IN ('done', 'gone') THEN
        PERFORM zdm._backfill_ended(migration);
        COMMIT;
    END IF;
    SELECT * INTO p FROM zdm.progress WHERE progress.migration = backfill.migration;
    RAISE NOTICE 'pg_zdm %: % rows in this call; % (%)%', migration, total, p.phase, p.state,
        CASE step.state WHEN 'paused' THEN ' -- paused: SELECT zdm.resume(...) then CALL again'
                        WHEN 'gone' THEN ' -- ' || step.reason
                        WHEN 'batch' THEN ' -- stopped after max_seconds; CALL again to go on'
                        WHEN 'wait' THEN ' -- stopped after max_seconds while waiting: ' || step.reason
                        ELSE '' END;
END
$$;
COMMENT ON PROCEDURE zdm.backfill(text, integer, integer, text) IS
    'Backfill a migration in committed batches. CALL it at top level (not inside BEGIN ... COMMIT).';
