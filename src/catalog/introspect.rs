//! Reads pg_catalog into `model` types. Every name that leaves here is quoted
//! by the server (`quote_ident`, `format('%I')`), never by hand.

use super::model::{CheckInfo, ColumnInfo, Dependent, ForeignKeyInfo, IndexInfo, KeyInfo, TableInfo};
use crate::error::{ZdmError, ZdmResult};
use crate::ident::{Ident, Literal, QualifiedName, SqlFragment};
use crate::session::with_local_settings;
use pgrx::pg_sys;
use pgrx::pg_sys::errcodes::PgSqlErrorCode;
use pgrx::prelude::*;

/// Resolve a table name as written in a spec (`public.users`, `"My Table"`) and read it whole.
///
/// Read with `search_path = pg_catalog`: type names and default expressions
/// then come out schema-qualified (`public.mood`, `nextval('public.s'::regclass)`),
/// so the SQL generated from them means the same in any session.
pub fn load_table(name: &str) -> ZdmResult<TableInfo> {
    let oid = resolve_oid(name)?;
    refuse_temporary(oid, name)?;
    with_local_settings(&[("search_path", "pg_catalog".to_string())], || {
        load_table_by_oid(oid, name)
    })
}

/// A type as generated SQL writes it: schema-qualified (`pg_catalog.date`,
/// `public.mood`) unless SQL spells it with keywords (`integer`,
/// `character varying(20)`), which always mean pg_catalog's. An unqualified
/// `date` would resolve in the session running the SQL, whose pg_temp may
/// hold a domain of that name (`format_type` qualifies only what the current
/// search_path does not show).
pub fn type_name(oid: u32, typmod: i32) -> SqlFragment {
    let flags = (pg_sys::FORMAT_TYPE_TYPEMOD_GIVEN | pg_sys::FORMAT_TYPE_FORCE_QUALIFY) as u16;
    unsafe {
        let text = pg_sys::format_type_extended(pg_sys::Oid::from(oid), typmod, flags);
        let name = std::ffi::CStr::from_ptr(text).to_string_lossy().into_owned();
        pg_sys::pfree(text.cast());
        SqlFragment(name)
    }
}

/// A temporary table lives for one session and is dropped at its end without
/// any event trigger seeing it: a migration of it would outlive it. Nobody
/// else can write it, so a plain ALTER TABLE is already without downtime.
fn refuse_temporary(oid: u32, name: &str) -> ZdmResult<()> {
    let temporary = Spi::get_one_with_args::<bool>(
        "SELECT relpersistence = 't' FROM pg_catalog.pg_class WHERE oid = $1",
        &[pg_sys::Oid::from(oid).into()],
    )
    .map_err(spi_err)?;
    if temporary == Some(true) {
        return Err(ZdmError::not_supported(format!("\"{name}\" is a temporary table"))
            .hint("Only this session can use it: change it with ALTER TABLE directly."));
    }
    Ok(())
}

/// The table's oid, or 42P01 naming it.
pub fn resolve_oid(name: &str) -> ZdmResult<u32> {
    // As the caller would resolve it: with their search_path.
    let oid: Option<i64> = crate::privilege::with_caller_search_path(|| {
        Spi::get_one_with_args("SELECT pg_catalog.to_regclass($1)::oid::int8", &[name.into()])
    })
    .map_err(spi_err)?;
    oid.map(|o| o as u32).ok_or_else(|| {
        ZdmError::new(
            PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
            format!("relation \"{name}\" does not exist"),
        )
        .hint("Give the table schema-qualified, e.g. public.users; quote mixed-case names: public.\"Users\".")
    })
}

fn load_table_by_oid(oid: u32, asked_as: &str) -> ZdmResult<TableInfo> {
    Spi::connect(|client| {
        let row = client
            .select(
                "SELECT n.nspname::text, c.relname::text, c.relkind::text
                   FROM pg_catalog.pg_class c
                   JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                  WHERE c.oid = $1::int8::oid",
                Some(1),
                &[(oid as i64).into()],
            )?
            .first();
        let schema: String = row.get(1)?.unwrap_or_default();
        let relname: String = row.get(2)?.unwrap_or_default();
        let relkind: String = row.get(3)?.unwrap_or_default();
        let name = QualifiedName::new(Ident::new(schema), Ident::new(relname));

        let mut columns = Vec::new();
        let rows = client.select(
            "SELECT a.attname::text, a.attnum, NULL::text,
                    CASE WHEN a.attcollation <> 0 AND a.attcollation <> t.typcollation
                         THEN pg_catalog.format('COLLATE %I.%I', cn.nspname, co.collname) END,
                    a.attnotnull, pg_catalog.pg_get_expr(d.adbin, d.adrelid),
                    a.attidentity <> '', a.attgenerated <> '',
                    pg_catalog.col_description(a.attrelid, a.attnum),
                    (SELECT pg_catalog.format('%I.%I', sn.nspname, s.relname)
                       FROM pg_catalog.pg_depend dp
                       JOIN pg_catalog.pg_class s ON s.oid = dp.objid AND s.relkind = 'S'
                       JOIN pg_catalog.pg_namespace sn ON sn.oid = s.relnamespace
                      WHERE dp.refclassid = 'pg_catalog.pg_class'::regclass AND dp.refobjid = a.attrelid
                        AND dp.refobjsubid = a.attnum AND dp.classid = 'pg_catalog.pg_class'::regclass
                        AND dp.deptype IN ('a', 'i') LIMIT 1),
                    a.atttypid::int8, a.atttypmod
               FROM pg_catalog.pg_attribute a
               JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
               LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
               LEFT JOIN pg_catalog.pg_collation co ON co.oid = a.attcollation
               LEFT JOIN pg_catalog.pg_namespace cn ON cn.oid = co.collnamespace
              WHERE a.attrelid = $1::int8::oid AND a.attnum > 0 AND NOT a.attisdropped
              ORDER BY a.attnum",
            None,
            &[(oid as i64).into()],
        )?;
        for r in rows {
            let comment: Option<String> = r.get(9)?;
            columns.push(ColumnInfo {
                name: Ident::new(r.get::<String>(1)?.unwrap_or_default()),
                attnum: r.get::<i16>(2)?.unwrap_or_default(),
                type_sql: type_name(
                    r.get::<i64>(11)?.unwrap_or_default() as u32,
                    r.get::<i32>(12)?.unwrap_or(-1),
                ),
                collation_sql: r.get::<String>(4)?.map(SqlFragment),
                not_null: r.get::<bool>(5)?.unwrap_or(false),
                default_sql: r.get::<String>(6)?.map(SqlFragment),
                identity: r.get::<bool>(7)?.unwrap_or(false),
                generated: r.get::<bool>(8)?.unwrap_or(false),
                comment: comment.as_deref().map(Literal::new),
                owned_sequence: r.get::<String>(10)?.map(SqlFragment),
                type_oid: r.get::<i64>(11)?.unwrap_or_default() as u32,
                typmod: r.get::<i32>(12)?.unwrap_or(-1),
            });
        }

        // The batch key: the primary key, else the narrowest valid unique btree
        // index on NOT NULL columns without expression or predicate.
        let key_rows = client.select(
            "SELECT ic.relname::text, i.indisprimary,
                    array_agg(a.attname::text ORDER BY k.ord),
                    array_agg(a.atttypid::int8 ORDER BY k.ord), array_agg(a.atttypmod ORDER BY k.ord)
               FROM pg_catalog.pg_index i
               JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
               JOIN pg_catalog.pg_am am ON am.oid = ic.relam AND am.amname = 'btree'
               CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
               JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
              WHERE i.indrelid = $1::int8::oid AND i.indisunique AND i.indisvalid AND i.indimmediate
                AND i.indpred IS NULL AND i.indexprs IS NULL AND k.ord <= i.indnkeyatts
              GROUP BY ic.relname, i.indisprimary, i.indexrelid
             HAVING bool_and(a.attnotnull)
              ORDER BY i.indisprimary DESC, count(*), i.indexrelid
              LIMIT 1",
            None,
            &[(oid as i64).into()],
        )?;
        let mut key = None;
        for r in key_rows {
            let names: Vec<String> = r.get(3)?.unwrap_or_default();
            let type_oids: Vec<i64> = r.get(4)?.unwrap_or_default();
            let typmods: Vec<i32> = r.get(5)?.unwrap_or_default();
            let types = type_oids.iter().zip(&typmods).map(|(o, m)| type_name(*o as u32, *m));
            key = Some(KeyInfo {
                index_name: r.get::<String>(1)?.unwrap_or_default(),
                is_primary: r.get::<bool>(2)?.unwrap_or(false),
                columns: names.into_iter().map(Ident::new).zip(types).collect(),
                partitions: Vec::new(),
            });
        }

        // Objects that depend on particular columns: indexes, constraints, views,
        // triggers, policies, statistics. Column defaults and owned sequences are
        // part of the column itself and handled by the operations.
        let mut dependents: Vec<Dependent> = Vec::new();
        let dep_rows = client.select(
            "SELECT CASE d.classid
                      WHEN 'pg_catalog.pg_class'::regclass THEN
                        CASE (SELECT relkind FROM pg_catalog.pg_class WHERE oid = d.objid)
                          WHEN 'i' THEN 'index' WHEN 'I' THEN 'index' ELSE 'relation' END
                      WHEN 'pg_catalog.pg_constraint'::regclass THEN 'constraint'
                      WHEN 'pg_catalog.pg_rewrite'::regclass THEN 'view'
                      WHEN 'pg_catalog.pg_trigger'::regclass THEN 'trigger'
                      WHEN 'pg_catalog.pg_policy'::regclass THEN 'policy'
                      ELSE 'object' END,
                    pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid),
                    array_agg(DISTINCT d.refobjsubid::int2),
                    d.objid::int8
               FROM pg_catalog.pg_depend d
              WHERE d.refclassid = 'pg_catalog.pg_class'::regclass AND d.refobjid = $1::int8::oid
                AND d.refobjsubid > 0 AND d.deptype IN ('n', 'a')
                AND d.classid <> 'pg_catalog.pg_attrdef'::regclass
                AND NOT (d.classid = 'pg_catalog.pg_class'::regclass
                         AND (SELECT relkind FROM pg_catalog.pg_class WHERE oid = d.objid) = 'S')
              GROUP BY 1, 2, d.objid
              ORDER BY 1, 2",
            None,
            &[(oid as i64).into()],
        )?;
        for r in dep_rows {
            dependents.push(Dependent {
                kind: r.get::<String>(1)?.unwrap_or_default(),
                name: r.get::<String>(2)?.unwrap_or_default(),
                attnums: r.get::<Vec<i16>>(3)?.unwrap_or_default(),
                oid: r.get::<i64>(4)?.unwrap_or_default() as u32,
            });
        }

        let constraint_names: Vec<String> = client
            .select(
                "SELECT conname::text FROM pg_catalog.pg_constraint WHERE conrelid = $1::int8::oid ORDER BY 1",
                None,
                &[(oid as i64).into()],
            )?
            .map(|r| r.get::<String>(1).map(|v| v.unwrap_or_default()))
            .collect::<Result<_, _>>()?;

        let mut indexes = Vec::new();
        let rows = client.select(
            "SELECT i.indexrelid::int8, ic.relname::text, i.indisunique, i.indisprimary, i.indisexclusion,
                    am.amname::text, i.indnkeyatts::int4, con.conname::text,
                    pg_catalog.pg_get_expr(i.indpred, i.indrelid),
                    pg_catalog.array_to_string(ic.reloptions, ', '),
                    (SELECT array_agg(k.attnum ORDER BY k.n) FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, n)),
                    (SELECT array_agg(CASE WHEN k.attnum <> 0 THEN pg_catalog.quote_ident(a.attname)
                                           ELSE pg_catalog.pg_get_indexdef(i.indexrelid, k.n::int, false) END ORDER BY k.n)
                       FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, n)
                       LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum),
                    (SELECT array_agg(
                              CASE WHEN k.n > i.indnkeyatts THEN '' ELSE
                                coalesce(CASE WHEN coll.oid IS NOT NULL AND coll.oid <> coalesce(ty.typcollation, 0)
                                              THEN ' COLLATE ' || pg_catalog.format('%I.%I', colln.nspname, coll.collname) END, '')
                                || CASE WHEN NOT opc.opcdefault THEN ' ' || pg_catalog.format('%I.%I', opcn.nspname, opc.opcname) ELSE '' END
                                || CASE WHEN i.indoption[k.n - 1] & 1 = 1 THEN ' DESC' ELSE '' END
                                || CASE WHEN (i.indoption[k.n - 1] & 2 = 2) AND (i.indoption[k.n - 1] & 1 = 0) THEN ' NULLS FIRST'
                                        WHEN (i.indoption[k.n - 1] & 2 = 0) AND (i.indoption[k.n - 1] & 1 = 1) THEN ' NULLS LAST'
                                        ELSE '' END
                              END ORDER BY k.n)
                       FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, n)
                       LEFT JOIN pg_catalog.pg_opclass opc ON opc.oid = i.indclass[k.n - 1] AND k.n <= i.indnkeyatts
                       LEFT JOIN pg_catalog.pg_namespace opcn ON opcn.oid = opc.opcnamespace
                       LEFT JOIN pg_catalog.pg_collation coll ON coll.oid = i.indcollation[k.n - 1] AND k.n <= i.indnkeyatts
                       LEFT JOIN pg_catalog.pg_namespace colln ON colln.oid = coll.collnamespace
                       LEFT JOIN pg_catalog.pg_type ty ON ty.oid = opc.opcintype),
                    (SELECT array_agg(DISTINCT d.refobjsubid::int2) FROM pg_catalog.pg_depend d
                      WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = i.indexrelid
                        AND d.refclassid = 'pg_catalog.pg_class'::regclass AND d.refobjid = i.indrelid AND d.refobjsubid > 0),
                    con.oid::int8
               FROM pg_catalog.pg_index i
               JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
               JOIN pg_catalog.pg_am am ON am.oid = ic.relam
               LEFT JOIN pg_catalog.pg_constraint con ON con.conindid = i.indexrelid AND con.contype IN ('p', 'u', 'x')
                                                     AND con.conrelid = i.indrelid
              WHERE i.indrelid = $1::int8::oid
              ORDER BY ic.relname",
            None,
            &[(oid as i64).into()],
        )?;
        for r in rows {
            let attnums: Vec<i16> = r.get(11)?.unwrap_or_default();
            let texts: Vec<String> = r.get(12)?.unwrap_or_default();
            let suffixes: Vec<String> = r.get(13)?.unwrap_or_default();
            // Columns an index reads: its expressions' and predicate's (pg_depend)
            // and its plain key columns (which pg_depend records on the backing
            // constraint instead, for constraint indexes).
            let mut uses: Vec<i16> = r.get::<Vec<i16>>(14)?.unwrap_or_default();
            for a in attnums.iter().copied().filter(|a| *a > 0) {
                if !uses.contains(&a) {
                    uses.push(a);
                }
            }
            indexes.push(IndexInfo {
                oid: r.get::<i64>(1)?.unwrap_or_default() as u32,
                name: Ident::new(r.get::<String>(2)?.unwrap_or_default()),
                unique: r.get::<bool>(3)?.unwrap_or(false),
                primary: r.get::<bool>(4)?.unwrap_or(false),
                exclusion: r.get::<bool>(5)?.unwrap_or(false),
                access_method: r.get::<String>(6)?.unwrap_or_default(),
                key_count: r.get::<i32>(7)?.unwrap_or(0) as usize,
                constraint: r.get::<String>(8)?.map(Ident::new),
                predicate: r.get::<String>(9)?,
                options: r.get::<String>(10)?.filter(|o| !o.is_empty()),
                elements: attnums.iter().zip(texts).zip(suffixes).map(|((a, t), s)| (*a, t, s)).collect(),
                attnums: uses,
                constraint_oid: r.get::<i64>(15)?.map(|o| o as u32),
            });
        }

        let mut checks = Vec::new();
        let mut foreign_keys = Vec::new();
        let rows = client.select(
            "SELECT c.conname::text, c.contype::text, c.conkey, c.convalidated,
                    pg_catalog.pg_get_expr(c.conbin, c.conrelid),
                    CASE WHEN c.contype = 'f' THEN pg_catalog.format('%I.%I', rn.nspname, rc.relname) END,
                    (SELECT array_agg(a.attname::text ORDER BY k.n) FROM unnest(c.confkey) WITH ORDINALITY k(attnum, n)
                       JOIN pg_catalog.pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.attnum),
                    CASE c.confmatchtype WHEN 'f' THEN 'MATCH FULL ' ELSE '' END
                    || 'ON UPDATE ' || CASE c.confupdtype WHEN 'a' THEN 'NO ACTION' WHEN 'r' THEN 'RESTRICT' WHEN 'c' THEN 'CASCADE'
                                                           WHEN 'n' THEN 'SET NULL' WHEN 'd' THEN 'SET DEFAULT' END
                    || ' ON DELETE ' || CASE c.confdeltype WHEN 'a' THEN 'NO ACTION' WHEN 'r' THEN 'RESTRICT' WHEN 'c' THEN 'CASCADE'
                                                           WHEN 'n' THEN 'SET NULL' WHEN 'd' THEN 'SET DEFAULT' END,
                    CASE WHEN c.condeferrable THEN ' DEFERRABLE' || CASE WHEN c.condeferred THEN ' INITIALLY DEFERRED' ELSE '' END ELSE '' END,
                    c.oid::int8
               FROM pg_catalog.pg_constraint c
               LEFT JOIN pg_catalog.pg_class rc ON rc.oid = c.confrelid
               LEFT JOIN pg_catalog.pg_namespace rn ON rn.oid = rc.relnamespace
              WHERE c.conrelid = $1::int8::oid AND c.contype IN ('c', 'f')
              ORDER BY c.conname",
            None,
            &[(oid as i64).into()],
        )?;
        for r in rows {
            let name = Ident::new(r.get::<String>(1)?.unwrap_or_default());
            let con_oid = r.get::<i64>(10)?.unwrap_or_default() as u32;
            let kind: String = r.get(2)?.unwrap_or_default();
            let attnums: Vec<i16> = r.get(3)?.unwrap_or_default();
            if kind == "c" {
                checks.push(CheckInfo {
                    oid: con_oid,
                    name,
                    expr: r.get::<String>(5)?.unwrap_or_default(),
                    attnums,
                    validated: r.get::<bool>(4)?.unwrap_or(true),
                });
            } else {
                foreign_keys.push(ForeignKeyInfo {
                    oid: con_oid,
                    name,
                    attnums,
                    referenced: r.get::<String>(6)?.unwrap_or_default(),
                    referenced_columns: r.get::<Vec<String>>(7)?.unwrap_or_default().into_iter().map(Ident::new).collect(),
                    actions: r.get::<String>(8)?.unwrap_or_default(),
                    deferrable: r.get::<String>(9)?.unwrap_or_default(),
                });
            }
        }

        Ok::<_, pgrx::spi::Error>(TableInfo {
            oid,
            name,
            relkind: relkind.chars().next().unwrap_or('?'),
            columns,
            key,
            dependents,
            constraint_names,
            indexes,
            checks,
            foreign_keys,
            partitions: None,
        })
    })
    .map_err(spi_err)
    .and_then(|t| check_table_kind(t, asked_as))
    .and_then(with_partitions)
}

/// A partitioned table with its tree; its key walks the leaves (each has
/// its own copy of the key index: a partitioned table's key includes the
/// partition key, so every partition has it).
fn with_partitions(mut t: TableInfo) -> ZdmResult<TableInfo> {
    super::partitions::refuse_partition(&t)?;
    if t.relkind != 'p' {
        return Ok(t);
    }
    let tree = super::partitions::load_tree(t.oid)?;
    if let Some(key) = t.key.as_mut() {
        key.partitions = tree.leaves().map(|p| p.name.clone()).collect();
    }
    t.partitions = Some(tree);
    Ok(t)
}

/// Ordinary and partitioned tables can be migrated column by column here.
fn check_table_kind(t: TableInfo, asked_as: &str) -> ZdmResult<TableInfo> {
    match t.relkind {
        'r' | 'p' => Ok(t),
        other => Err(ZdmError::new(
            PgSqlErrorCode::ERRCODE_WRONG_OBJECT_TYPE,
            format!("\"{asked_as}\" is not a table (relkind '{other}')"),
        )
        .hint("pg_zdm migrates ordinary tables; views and materialized views are recreated, not migrated.")),
    }
}

/// Kept here too for the modules that read the catalog through this one.
pub use crate::error::spi_err;

/// The server side of [`super::Lookup`].
pub struct ServerLookup;

impl super::Lookup for ServerLookup {
    fn relation_exists(&self, schema: &str, name: &str) -> ZdmResult<bool> {
        Spi::get_one_with_args::<bool>(
            "SELECT EXISTS (SELECT FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                             WHERE n.nspname = $1 AND c.relname = $2)",
            &[schema.into(), name.into()],
        )
        .map(|b| b.unwrap_or(false))
        .map_err(spi_err)
    }

    fn table(&self, name: &str) -> ZdmResult<TableInfo> {
        load_table(name)
    }

    fn referencing_columns(&self, oid: u32, attnum: i16) -> ZdmResult<Vec<super::Referencing>> {
        Spi::connect(|client| {
            let rows = client.select(
                "SELECT c.conname::text, n.nspname::text, r.relname::text, a.attname::text,
                        a.atttypid::int8, a.atttypmod
                   FROM pg_catalog.pg_constraint c
                   CROSS JOIN LATERAL unnest(c.conkey, c.confkey) AS k(attnum, refnum)
                   JOIN pg_catalog.pg_class r ON r.oid = c.conrelid
                   JOIN pg_catalog.pg_namespace n ON n.oid = r.relnamespace
                   JOIN pg_catalog.pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum
                  WHERE c.contype = 'f' AND c.confrelid = $1::int8::oid AND k.refnum = $2
                  ORDER BY n.nspname, r.relname, c.conname",
                None,
                &[(oid as i64).into(), attnum.into()],
            )?;
            let mut out = Vec::new();
            for r in rows {
                let type_oid = r.get::<i64>(5)?.unwrap_or_default() as u32;
                let typmod = r.get::<i32>(6)?.unwrap_or(-1);
                out.push(super::Referencing {
                    foreign_key: Ident::new(r.get::<String>(1)?.unwrap_or_default()),
                    table: QualifiedName::new(
                        Ident::new(r.get::<String>(2)?.unwrap_or_default()),
                        Ident::new(r.get::<String>(3)?.unwrap_or_default()),
                    ),
                    column: Ident::new(r.get::<String>(4)?.unwrap_or_default()),
                    type_sql: type_name(type_oid, typmod),
                    type_oid,
                    typmod,
                });
            }
            Ok::<_, pgrx::spi::Error>(out)
        })
        .map_err(spi_err)
    }

    fn sequence(&self, name: &str) -> ZdmResult<Option<super::SequenceInfo>> {
        Spi::connect(|client| {
            let rows = client.select(
                "SELECT s.seqtypid::int8, s.seqmax, s.seqincrement FROM pg_catalog.pg_sequence s
                  WHERE s.seqrelid = pg_catalog.to_regclass($1)",
                None,
                &[name.into()],
            )?;
            let mut out = None;
            for r in rows {
                out = Some(super::SequenceInfo {
                    type_oid: r.get::<i64>(1)?.unwrap_or_default() as u32,
                    max: r.get::<i64>(2)?.unwrap_or_default(),
                    increment: r.get::<i64>(3)?.unwrap_or_default(),
                });
            }
            Ok::<_, pgrx::spi::Error>(out)
        })
        .map_err(spi_err)
    }
}
