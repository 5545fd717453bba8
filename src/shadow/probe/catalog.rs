//! The catalog reads the shadow's shape is made of: how the original is
//! stored, the shadow's columns as LIKE made them, how each index of the
//! shadow is dropped and built again, which shadow index copies which
//! original one, and which columns are GENERATED ALWAYS identities. Apart
//! from the flow so that the SQL text is in one place (rule 3 of
//! docs/architecture.md).

use crate::catalog::introspect::spi_err;
use crate::error::{ZdmError, ZdmResult};
use crate::ident::Ident;
use crate::shadow::shape::IndexBuild;
use pgrx::pg_sys::errcodes::PgSqlErrorCode;
use pgrx::prelude::*;
use std::collections::HashMap;

/// How the original is stored, for the shadow's CREATE TABLE: persistence
/// (`relpersistence`), storage options (the TOAST table's as `toast.*`),
/// tablespace and owner (names quoted).
pub(super) struct StorageSettings {
    pub persistence: String,
    pub options: Vec<String>,
    pub tablespace: Option<String>,
    pub owner: String,
}

pub(super) fn storage_settings(oid: u32) -> ZdmResult<StorageSettings> {
    Spi::connect(|c| {
        let r = c
            .select(
                "SELECT c.relpersistence::text,
                        ARRAY(SELECT pg_catalog.format('%I = %L', o.option_name, o.option_value)
                                FROM pg_catalog.pg_options_to_table(c.reloptions) o
                              UNION ALL
                              SELECT pg_catalog.format('toast.%I = %L', o.option_name, o.option_value)
                                FROM pg_catalog.pg_class t, pg_catalog.pg_options_to_table(t.reloptions) o
                               WHERE t.oid = c.reltoastrelid),
                        (SELECT pg_catalog.quote_ident(spcname) FROM pg_catalog.pg_tablespace WHERE oid = c.reltablespace),
                        pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(c.relowner))
                   FROM pg_catalog.pg_class c WHERE c.oid = $1::int8::oid",
                Some(1),
                &[(oid as i64).into()],
            )?
            .first();
        Ok::<_, pgrx::spi::Error>(StorageSettings {
            persistence: r.get::<String>(1)?.unwrap_or_default(),
            options: r.get::<Vec<String>>(2)?.unwrap_or_default(),
            tablespace: r.get::<String>(3)?,
            owner: r.get::<String>(4)?.unwrap_or_default(),
        })
    })
    .map_err(spi_err)
}

/// attnum → name of the table's columns (the shadow's, as LIKE made them).
pub(super) fn column_names(oid: u32) -> ZdmResult<HashMap<i16, String>> {
    Spi::connect(|c| {
        c.select(
            "SELECT attnum, attname::text FROM pg_catalog.pg_attribute
              WHERE attrelid = $1::int8::oid AND attnum > 0 AND NOT attisdropped",
            None,
            &[(oid as i64).into()],
        )?
        .map(|r| Ok((r.get::<i16>(1)?.unwrap_or(0), r.get::<String>(2)?.unwrap_or_default())))
        .collect::<Result<_, pgrx::spi::Error>>()
    })
    .map_err(spi_err)
}

/// How to drop each index of the shadow and build it again as it is now
/// (definitions read under search_path = pg_catalog: every name qualified).
pub(super) fn index_builds(shadow: &str, oid: u32) -> ZdmResult<Vec<IndexBuild>> {
    Spi::connect(|c| {
        c.select(
            "SELECT ic.relname::text,
                    con.oid IS NOT NULL,
                    CASE WHEN con.oid IS NOT NULL
                         THEN pg_catalog.format('ALTER TABLE %s DROP CONSTRAINT %I', $2, con.conname)
                         ELSE pg_catalog.format('DROP INDEX %I.%I', n.nspname, ic.relname) END,
                    CASE WHEN con.oid IS NOT NULL
                         THEN pg_catalog.format('ALTER TABLE %s ADD CONSTRAINT %I %s', $2, con.conname,
                                                pg_catalog.pg_get_constraintdef(con.oid))
                         ELSE pg_catalog.pg_get_indexdef(i.indexrelid) END,
                    CASE WHEN con.oid IS NOT NULL
                         THEN pg_catalog.format('COMMENT ON CONSTRAINT %I ON %s IS %L', con.conname, $2,
                                                pg_catalog.obj_description(con.oid, 'pg_constraint'))
                         ELSE pg_catalog.format('COMMENT ON INDEX %I.%I IS %L', n.nspname, ic.relname,
                                                pg_catalog.obj_description(i.indexrelid, 'pg_class')) END,
                    coalesce(pg_catalog.obj_description(con.oid, 'pg_constraint'),
                             pg_catalog.obj_description(i.indexrelid, 'pg_class')) IS NOT NULL
               FROM pg_catalog.pg_index i
               JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
               JOIN pg_catalog.pg_namespace n ON n.oid = ic.relnamespace
               LEFT JOIN pg_catalog.pg_constraint con
                      ON con.conindid = i.indexrelid AND con.conrelid = i.indrelid
                     AND con.contype IN ('p', 'u', 'x')
              WHERE i.indrelid = $1::int8::oid
              ORDER BY i.indexrelid",
            None,
            &[(oid as i64).into(), shadow.into()],
        )?
        .map(|r| {
            let mut build = vec![r.get::<String>(4)?.unwrap_or_default()];
            if r.get::<bool>(6)?.unwrap_or(false) {
                build.push(r.get::<String>(5)?.unwrap_or_default());
            }
            Ok(IndexBuild {
                name: Ident::new(r.get::<String>(1)?.unwrap_or_default().as_str()),
                constraint: r.get::<bool>(2)?.unwrap_or(false),
                drop: r.get::<String>(3)?.unwrap_or_default(),
                build,
            })
        })
        .collect::<Result<_, pgrx::spi::Error>>()
    })
    .map_err(spi_err)
}

/// LIKE ... INCLUDING INDEXES builds the copies in the order of the original's
/// index list (by oid), so the n-th new index copies the n-th old one. Checked
/// column by column, so a mismatch is an internal error, never a wrong name.
pub(super) fn pair_indexes(orig: u32, shadow: u32) -> ZdmResult<Vec<(String, String)>> {
    let list = |oid: u32| -> ZdmResult<Vec<(String, String)>> {
        Spi::connect(|c| {
            c.select(
                "SELECT ic.relname::text, i.indkey::text || '/' || i.indisunique || '/' || i.indisprimary || '/' || ic.relam
                   FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
                  WHERE i.indrelid = $1::int8::oid ORDER BY i.indexrelid",
                None,
                &[(oid as i64).into()],
            )?
            .map(|r| Ok((r.get::<String>(1)?.unwrap_or_default(), r.get::<String>(2)?.unwrap_or_default())))
            .collect::<Result<_, pgrx::spi::Error>>()
        })
        .map_err(spi_err)
    };
    let (o, s) = (list(orig)?, list(shadow)?);
    if o.len() != s.len() || o.iter().zip(&s).any(|(a, b)| a.1 != b.1) {
        return Err(ZdmError::new(
            PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            "the shadow table's indexes do not match the original's one for one",
        ));
    }
    Ok(s.into_iter().zip(o).map(|(s, o)| (s.0, o.0)).collect())
}

pub(super) fn identity_always_columns(oid: u32) -> ZdmResult<Vec<i16>> {
    Spi::connect(|c| {
        c.select(
            "SELECT attnum FROM pg_catalog.pg_attribute WHERE attrelid = $1::int8::oid AND attidentity = 'a'",
            None,
            &[(oid as i64).into()],
        )?
        .map(|r| Ok(r.get::<i16>(1)?.unwrap_or(0)))
        .collect::<Result<_, pgrx::spi::Error>>()
    })
    .map_err(spi_err)
}

/// Other tables' foreign keys to the table: each named `"fk on table"`, with
/// the referenced columns in key order.
pub(super) fn incoming_foreign_keys(oid: u32) -> ZdmResult<Vec<(String, Vec<String>)>> {
    Spi::connect(|c| {
        c.select(
            "SELECT pg_catalog.format('%s on %s', pg_catalog.quote_ident(con.conname), con.conrelid::regclass),
                    ARRAY(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY k(n, o)
                            JOIN pg_catalog.pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n ORDER BY k.o)
               FROM pg_catalog.pg_constraint con
              WHERE con.contype = 'f' AND con.confrelid = $1::int8::oid AND con.conrelid <> con.confrelid",
            None,
            &[(oid as i64).into()],
        )?
        .map(|r| Ok((r.get::<String>(1)?.unwrap_or_default(), r.get::<Vec<String>>(2)?.unwrap_or_default())))
        .collect::<Result<_, pgrx::spi::Error>>()
    })
    .map_err(spi_err)
}

/// The index that is the table's replica identity, if one is.
pub(super) fn replica_identity_index(oid: u32) -> ZdmResult<Option<String>> {
    crate::session::get_optional(
        "SELECT ic.relname::text FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
          WHERE i.indrelid = $1::int8::oid AND i.indisreplident",
        &[(oid as i64).into()],
    )
    .map_err(spi_err)
}

/// A relation's name without its schema, quoted (`regclass` text in).
pub(super) fn bare_relation_name(regclass: &str) -> ZdmResult<Option<String>> {
    crate::session::get_optional(
        "SELECT pg_catalog.quote_ident(relname::text) FROM pg_catalog.pg_class WHERE oid = $1::regclass",
        &[regclass.into()],
    )
    .map_err(spi_err)
}
