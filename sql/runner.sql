-- The background runner (src/runner/): one row per migration that zdm.run()
-- handed to a background worker. Written only by pg_zdm (the catalog guard);
-- read it freely. Its worker holds the session advisory lock
-- (8020077, id) while it runs: that lock, not the pid, says it is alive.
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
