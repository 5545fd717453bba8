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
