//! The table itself, read from pg_class and pg_attribute: its name, its
//! columns, its batch key, and what depends on its columns.

use super::type_name;
use crate::catalog::model::{ColumnInfo, Dependent, KeyInfo};
use crate::ident::{Ident, Literal, QualifiedName, SqlFragment};
use pgrx::spi::{Error as SpiError, SpiClient};

/// The table's schema-qualified name and its relkind.
pub(super) fn name_and_kind(client: &SpiClient<'_>, oid: u32) -> Result<(QualifiedName, char), SpiError> {
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

    Ok((name, relkind.chars().next().unwrap_or('?')))
}

/// Its columns, in order, with their types schema-qualified.
pub(super) fn columns(client: &SpiClient<'_>, oid: u32) -> Result<Vec<ColumnInfo>, SpiError> {
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

    Ok(columns)
}

/// The batch key: the primary key, else the narrowest valid unique btree
/// index on NOT NULL columns without expression or predicate.
pub(super) fn batch_key(client: &SpiClient<'_>, oid: u32) -> Result<Option<KeyInfo>, SpiError> {
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

    Ok(key)
}

/// Objects that depend on particular columns: indexes, constraints, views,
/// triggers, policies, statistics. Column defaults and owned sequences are
/// part of the column itself and handled by the operations.
pub(super) fn dependents(client: &SpiClient<'_>, oid: u32) -> Result<Vec<Dependent>, SpiError> {
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

    Ok(dependents)
}

/// The names of its constraints (for names pg_zdm picks).
pub(super) fn constraint_names(client: &SpiClient<'_>, oid: u32) -> Result<Vec<String>, SpiError> {
    client
        .select(
            "SELECT conname::text FROM pg_catalog.pg_constraint WHERE conrelid = $1::int8::oid ORDER BY 1",
            None,
            &[(oid as i64).into()],
        )?
        .map(|r| r.get::<String>(1).map(|v| v.unwrap_or_default()))
        .collect::<Result<_, _>>()
}
