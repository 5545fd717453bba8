-- Monitoring queries, ready to use during a migration.

-- Who waits on whom: every waiting session with each session blocking it.
CREATE VIEW zdm.blocking_locks AS
SELECT w.pid                                    AS waiting_pid,
       w.usename                                AS waiting_user,
       wl.mode                                  AS waiting_mode,
       wl.locktype                              AS lock_type,
       wl.relation::regclass                    AS relation,
       pg_catalog.now() - coalesce(w.state_change, w.query_start) AS waiting_for,
       w.query                                  AS waiting_query,
       b.pid                                    AS blocking_pid,
       b.usename                                AS blocking_user,
       (SELECT pg_catalog.string_agg(DISTINCT bl.mode, ', ')
          FROM pg_catalog.pg_locks bl
         WHERE bl.pid = b.pid AND bl.granted
           AND bl.locktype = wl.locktype
           AND bl.relation IS NOT DISTINCT FROM wl.relation) AS blocking_modes,
       b.state                                  AS blocking_state,
       pg_catalog.now() - b.xact_start          AS blocking_xact_age,
       b.query                                  AS blocking_query
  FROM pg_catalog.pg_stat_activity w
  CROSS JOIN LATERAL pg_catalog.unnest(pg_catalog.pg_blocking_pids(w.pid)) AS bp(pid)
  JOIN pg_catalog.pg_stat_activity b ON b.pid = bp.pid
  LEFT JOIN LATERAL (SELECT l.mode, l.locktype, l.relation
                       FROM pg_catalog.pg_locks l
                      WHERE l.pid = w.pid AND NOT l.granted
                      LIMIT 1) wl ON true
 WHERE w.wait_event_type = 'Lock';
COMMENT ON VIEW zdm.blocking_locks IS
    'Sessions waiting for a lock and the sessions blocking them (pg_blocking_pids), with modes, ages and queries.';

-- The oldest open transactions: they hold back CREATE INDEX CONCURRENTLY,
-- VALIDATE, the swap of shadow tables, and VACUUM.
CREATE VIEW zdm.long_transactions AS
SELECT a.pid,
       a.usename                                AS "user",
       a.application_name,
       a.client_addr,
       a.state,
       pg_catalog.now() - a.xact_start          AS xact_age,
       pg_catalog.now() - a.state_change        AS state_age,
       pg_catalog.age(a.backend_xmin)           AS xmin_age,
       a.wait_event_type,
       a.wait_event,
       a.query
  FROM pg_catalog.pg_stat_activity a
 WHERE a.xact_start IS NOT NULL
   AND a.pid <> pg_catalog.pg_backend_pid()
   AND a.backend_type = 'client backend'
 ORDER BY a.xact_start;
COMMENT ON VIEW zdm.long_transactions IS
    'Open transactions, oldest first: an old one delays CONCURRENTLY builds and swaps; idle in transaction ones block DDL.';

-- How far each standby is behind (empty on a standby or without replicas).
CREATE VIEW zdm.replication_lag AS
SELECT r.pid,
       r.application_name,
       r.client_addr,
       r.state,
       r.sync_state,
       r.write_lag,
       r.flush_lag,
       r.replay_lag,
       CASE WHEN NOT pg_catalog.pg_is_in_recovery()
            THEN pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), r.replay_lsn) END AS replay_bytes_behind,
       r.sent_lsn,
       r.replay_lsn
  FROM pg_catalog.pg_stat_replication r;
COMMENT ON VIEW zdm.replication_lag IS
    'Standbys and their lag; the backfill waits while replay_lag exceeds zdm.max_replication_lag.';

GRANT SELECT ON zdm.blocking_locks, zdm.long_transactions, zdm.replication_lag TO PUBLIC;

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
