-- Convenience entry points: each builds a spec and calls zdm.start(spec).

-- A table as a spec names it: schema-qualified and quoted, whatever the search_path.
CREATE FUNCTION zdm._table_name(tbl regclass) RETURNS text
LANGUAGE sql STABLE STRICT AS $$
    SELECT pg_catalog.format('%I.%I', n.nspname, c.relname)
      FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = tbl
$$;

CREATE FUNCTION zdm.rename_column(tbl regclass, col name, new_name name, migration text DEFAULT NULL)
RETURNS text LANGUAGE sql AS $$
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
RETURNS text LANGUAGE sql AS $$
    SELECT zdm.start(pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
        'name', migration,
        'operations', pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
            'op', 'alter_column_type', 'table', zdm._table_name(tbl), 'column', col::text,
            'new_type', new_type, 'up_expr', up_expr, 'down_expr', down_expr)))))
$$;
COMMENT ON FUNCTION zdm.alter_column_type(regclass, name, text, text, text, text) IS
    'Start changing a column''s type (a second column kept in sync, or one short ALTER when binary compatible); returns the migration name.';
