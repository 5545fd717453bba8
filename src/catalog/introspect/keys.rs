//! The table's indexes and constraints, read from pg_index and pg_constraint.

use crate::catalog::model::{CheckInfo, ForeignKeyInfo, IndexInfo};
use crate::ident::Ident;
use pgrx::spi::{Error as SpiError, SpiClient};

/// Its indexes, each with what it reads and how to build it again.
pub(super) fn indexes(client: &SpiClient<'_>, oid: u32) -> Result<Vec<IndexInfo>, SpiError> {
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
            elements: attnums
                .iter()
                .zip(texts)
                .zip(suffixes)
                .map(|((a, t), s)| (*a, t, s))
                .collect(),
            attnums: uses,
            constraint_oid: r.get::<i64>(15)?.map(|o| o as u32),
        });
    }

    Ok(indexes)
}

/// Its CHECK constraints and foreign keys.
pub(super) fn checks_and_foreign_keys(
    client: &SpiClient<'_>,
    oid: u32,
) -> Result<(Vec<CheckInfo>, Vec<ForeignKeyInfo>), SpiError> {
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
                referenced_columns: r
                    .get::<Vec<String>>(7)?
                    .unwrap_or_default()
                    .into_iter()
                    .map(Ident::new)
                    .collect(),
                actions: r.get::<String>(8)?.unwrap_or_default(),
                deferrable: r.get::<String>(9)?.unwrap_or_default(),
            });
        }
    }

    Ok((checks, foreign_keys))
}
