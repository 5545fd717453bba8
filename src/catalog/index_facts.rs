//! What the model (`IndexInfo`) leaves out of an index and of a table's
//! replica identity, read only by the operations that need it when they are
//! built (drop_index, drop_not_null, drop_constraint, set_replica_identity).

use crate::error::{spi_err, ZdmResult};
use pgrx::prelude::*;

pub struct IndexFacts {
    /// The table's replica identity is this index (`REPLICA IDENTITY USING INDEX`).
    pub replica_identity: bool,
    pub valid: bool,
    /// Not DEFERRABLE: checked at each statement.
    pub immediate: bool,
    /// `CREATE INDEX ...` as `pg_get_indexdef` gives it (every name qualified).
    pub definition: String,
}

pub fn index_facts(oid: u32) -> ZdmResult<IndexFacts> {
    Spi::connect(|client| {
        let row = client
            .select(
                "SELECT i.indisreplident, i.indisvalid, i.indimmediate, pg_catalog.pg_get_indexdef(i.indexrelid)
                   FROM pg_catalog.pg_index i WHERE i.indexrelid OPERATOR(pg_catalog.=) $1::pg_catalog.int8::pg_catalog.oid",
                None,
                &[(oid as i64).into()],
            )?
            .first();
        Ok::<_, pgrx::spi::Error>(IndexFacts {
            replica_identity: row.get::<bool>(1)?.unwrap_or(false),
            valid: row.get::<bool>(2)?.unwrap_or(false),
            immediate: row.get::<bool>(3)?.unwrap_or(false),
            definition: row.get::<String>(4)?.unwrap_or_default(),
        })
    })
    .map_err(spi_err)
}

/// `pg_class.relreplident`: 'd' default (the primary key), 'f' full, 'i' an index, 'n' nothing.
pub fn replica_identity(table_oid: u32) -> ZdmResult<char> {
    let c = Spi::get_one_with_args::<String>(
        "SELECT relreplident::pg_catalog.text FROM pg_catalog.pg_class
          WHERE oid OPERATOR(pg_catalog.=) $1::pg_catalog.int8::pg_catalog.oid",
        &[(table_oid as i64).into()],
    )
    .map_err(spi_err)?;
    Ok(c.and_then(|s| s.chars().next()).unwrap_or('d'))
}

/// Foreign keys of any table that rely on this unique index (`conindid`), as
/// `name on schema.table` (quoted): they would go with it.
pub fn referencing_foreign_keys(index_oid: u32) -> ZdmResult<Vec<String>> {
    Spi::connect(|client| {
        client
            .select(
                "SELECT pg_catalog.format('%I on %s', c.conname, c.conrelid::pg_catalog.regclass)
                   FROM pg_catalog.pg_constraint c
                  WHERE c.contype OPERATOR(pg_catalog.=) 'f'
                    AND c.conindid OPERATOR(pg_catalog.=) $1::pg_catalog.int8::pg_catalog.oid
                  ORDER BY 1",
                None,
                &[(index_oid as i64).into()],
            )?
            .map(|r| r.get::<String>(1).map(|v| v.unwrap_or_default()))
            .collect::<Result<Vec<_>, _>>()
    })
    .map_err(spi_err)
}

/// Whether the table's replica identity is its primary key (`DEFAULT`) and a
/// publication replicates its UPDATEs or DELETEs, which then need it.
pub fn published_by_primary_key(table_oid: u32) -> ZdmResult<bool> {
    let published = Spi::get_one_with_args::<bool>(
        "SELECT c.relreplident OPERATOR(pg_catalog.=) 'd'
                AND EXISTS (SELECT FROM pg_catalog.pg_publication_tables t
                              JOIN pg_catalog.pg_publication p ON p.pubname OPERATOR(pg_catalog.=) t.pubname
                             WHERE t.schemaname OPERATOR(pg_catalog.=) n.nspname
                               AND t.tablename OPERATOR(pg_catalog.=) c.relname
                               AND (p.pubupdate OR p.pubdelete))
           FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
          WHERE c.oid OPERATOR(pg_catalog.=) $1::pg_catalog.int8::pg_catalog.oid",
        &[(table_oid as i64).into()],
    )
    .map_err(spi_err)?;
    Ok(published.unwrap_or(false))
}
