-- Convenience entry points: each builds a spec and calls zdm.start(spec).
-- Their regclass arguments resolve with the caller's search_path (arguments
-- are read before the function's SET applies); their bodies with pg_catalog
-- first and pg_temp last, whatever the caller's path holds.

-- A table as a spec names it: schema-qualified and quoted, whatever the search_path.
CREATE FUNCTION zdm._table_name(tbl regclass) RETURNS text
LANGUAGE sql STABLE STRICT SET search_path = pg_catalog, pg_temp AS $$
    SELECT pg_catalog.format('%I.%I', n.nspname, c.relname)
      FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = tbl
$$;

CREATE FUNCTION zdm.rename_column(tbl regclass, col name, new_name name, migration text DEFAULT NULL)
RETURNS text LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
    SELECT zdm.start(pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
        'name', migration,
        'operations', pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
            'op', 'rename_column', 'table', zdm._table_name(tbl),
            'column', col::text, 'new_name', new_name::text)))))
$$;
COMMENT ON FUNCTION zdm.rename_column(regclass, name, name, text) IS
    'Start renaming a column with expand/migrate/contract; returns the migration name.';

CREATE FUNCTION zdm.alter_column_type(tbl regclass, col name, new_type text, up_expr text DEFAULT NULL,
                                      down_expr text DEFAULT NULL, migration text DEFAULT NULL)
RETURNS text LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
    SELECT zdm.start(pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
        'name', migration,
        'operations', pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
            'op', 'alter_column_type', 'table', zdm._table_name(tbl), 'column', col::text,
            'new_type', new_type, 'up_expr', up_expr, 'down_expr', down_expr)))))
$$;
COMMENT ON FUNCTION zdm.alter_column_type(regclass, name, text, text, text, text) IS
    'Start changing a column''s type (a second column kept in sync, or one short ALTER when binary compatible); returns the migration name.';

-- One spec, one operation: the shared body of the wrappers below.
CREATE FUNCTION zdm._start_one(migration text, op jsonb) RETURNS text
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
    SELECT zdm.start(pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
        'name', migration, 'operations', pg_catalog.jsonb_build_array(op))))
$$;

CREATE FUNCTION zdm.add_column(tbl regclass, col name, col_type text, default_expr text DEFAULT NULL,
                               not_null boolean DEFAULT false, fill_expr text DEFAULT NULL, migration text DEFAULT NULL)
RETURNS text LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
    SELECT zdm._start_one(migration, pg_catalog.jsonb_build_object(
        'op', 'add_column', 'table', zdm._table_name(tbl), 'column', col::text, 'type', col_type,
        'default', default_expr, 'not_null', coalesce(not_null, false), 'fill_expr', fill_expr))
$$;
COMMENT ON FUNCTION zdm.add_column(regclass, name, text, text, boolean, text, text) IS
    'Start adding a column (catalog only when the default allows; else backfilled, NOT NULL through a validated check).';

CREATE FUNCTION zdm.set_not_null(tbl regclass, col name, fill_expr text DEFAULT NULL, migration text DEFAULT NULL)
RETURNS text LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
    SELECT zdm._start_one(migration, pg_catalog.jsonb_build_object(
        'op', 'set_not_null', 'table', zdm._table_name(tbl), 'column', col::text, 'fill_expr', fill_expr))
$$;
COMMENT ON FUNCTION zdm.set_not_null(regclass, name, text, text) IS
    'Start making a column NOT NULL: CHECK NOT VALID, fill NULLs, VALIDATE, SET NOT NULL.';

CREATE FUNCTION zdm.drop_column(tbl regclass, col name, down_expr text DEFAULT NULL, migration text DEFAULT NULL)
RETURNS text LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
    SELECT zdm._start_one(migration, pg_catalog.jsonb_build_object(
        'op', 'drop_column', 'table', zdm._table_name(tbl), 'column', col::text, 'down_expr', down_expr))
$$;
COMMENT ON FUNCTION zdm.drop_column(regclass, name, text, text) IS
    'Start dropping a column: deprecated now, dropped by complete.';

CREATE FUNCTION zdm.add_check(tbl regclass, constraint_name name, check_expr text, migration text DEFAULT NULL)
RETURNS text LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
    SELECT zdm._start_one(migration, pg_catalog.jsonb_build_object(
        'op', 'add_check', 'table', zdm._table_name(tbl), 'constraint', constraint_name::text, 'check', check_expr))
$$;
COMMENT ON FUNCTION zdm.add_check(regclass, name, text, text) IS
    'Start adding a CHECK constraint: NOT VALID now, validated by complete.';

CREATE FUNCTION zdm.add_foreign_key(tbl regclass, constraint_name name, cols name[], ref_table regclass, ref_cols name[],
                                    on_delete text DEFAULT 'NO ACTION', migration text DEFAULT NULL)
RETURNS text LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
    SELECT zdm._start_one(migration, pg_catalog.jsonb_build_object(
        'op', 'add_foreign_key', 'table', zdm._table_name(tbl), 'constraint', constraint_name::text,
        'columns', pg_catalog.to_jsonb(cols::text[]), 'references', zdm._table_name(ref_table),
        'referenced_columns', pg_catalog.to_jsonb(ref_cols::text[]), 'on_delete', on_delete))
$$;
COMMENT ON FUNCTION zdm.add_foreign_key(regclass, name, name[], regclass, name[], text, text) IS
    'Start adding a foreign key: NOT VALID now, validated by complete.';

CREATE FUNCTION zdm.add_unique(tbl regclass, constraint_name name, cols name[], migration text DEFAULT NULL)
RETURNS text LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
    SELECT zdm._start_one(migration, pg_catalog.jsonb_build_object(
        'op', 'add_unique', 'table', zdm._table_name(tbl), 'constraint', constraint_name::text,
        'columns', pg_catalog.to_jsonb(cols::text[])))
$$;
COMMENT ON FUNCTION zdm.add_unique(regclass, name, name[], text) IS
    'Start adding a UNIQUE constraint: its index is built CONCURRENTLY (zdm.pending_statements), complete attaches it.';

CREATE FUNCTION zdm.create_index(tbl regclass, index_name name, definition text, migration text DEFAULT NULL)
RETURNS text LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
    SELECT zdm._start_one(migration, pg_catalog.jsonb_build_object(
        'op', 'create_index', 'table', zdm._table_name(tbl), 'index', index_name::text, 'definition', definition))
$$;
COMMENT ON FUNCTION zdm.create_index(regclass, name, text, text) IS
    'Start creating an index CONCURRENTLY: run zdm.pending_statements() at top level, then complete.';

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
