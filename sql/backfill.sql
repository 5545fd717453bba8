-- The committing backfill loop. PL/pgSQL on purpose: pgrx code cannot COMMIT.
-- No SET clause and not SECURITY DEFINER (either would forbid COMMIT), so every
-- name is schema-qualified instead.
CREATE PROCEDURE zdm.backfill(migration text, batch_size integer DEFAULT NULL, max_seconds integer DEFAULT NULL)
LANGUAGE plpgsql AS $$
DECLARE
    began       timestamptz := pg_catalog.clock_timestamp();
    last_notice timestamptz := pg_catalog.clock_timestamp();
    done        bigint;
    total       bigint := 0;
    delay       interval;
    every       interval;
    p           record;
BEGIN
    -- First call into the library: it also defines the zdm.* settings read below.
    PERFORM zdm._backfill_precheck(migration, batch_size);
    -- shown with units ('200ms', '5s'): read them as intervals
    delay := pg_catalog.current_setting('zdm.batch_delay')::interval;
    every := pg_catalog.current_setting('zdm.progress_interval')::interval;
    LOOP
        done := zdm.backfill_batch(migration, batch_size);
        COMMIT;
        total := total + done;
        EXIT WHEN done = 0;
        IF pg_catalog.clock_timestamp() - last_notice >= every THEN
            SELECT * INTO p FROM zdm.progress WHERE progress.migration = backfill.migration;
            RAISE NOTICE 'pg_zdm %: % rows of ~% (% %%), % rows/s, eta %',
                migration, p.rows_done, p.rows_estimated, p.percent, p.rows_per_second,
                coalesce(pg_catalog.date_trunc('second', p.eta)::text, '?');
            last_notice := pg_catalog.clock_timestamp();
        END IF;
        EXIT WHEN max_seconds IS NOT NULL
              AND pg_catalog.clock_timestamp() - began >= pg_catalog.make_interval(secs => max_seconds);
        IF delay > interval '0' THEN
            PERFORM pg_catalog.pg_sleep(pg_catalog.date_part('epoch', delay));
        END IF;
    END LOOP;
    SELECT * INTO p FROM zdm.progress WHERE progress.migration = backfill.migration;
    RAISE NOTICE 'pg_zdm %: % rows covered in this call; phase %', migration, total, p.phase;
END
$$;
COMMENT ON PROCEDURE zdm.backfill(text, integer, integer) IS
    'Backfill a migration in committed batches. CALL it at top level (not inside BEGIN ... COMMIT).';
