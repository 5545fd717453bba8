//! Reads a partitioned table's tree: its partitions level by level and the
//! columns of every partition key in it. Names quoted by the server.

use super::model::{Partition, PartitionTree, TableInfo};
use crate::error::{spi_err, ZdmError, ZdmResult};
use crate::ident::{Ident, QualifiedName};
use pgrx::prelude::*;

/// The tree below table `oid` (a partitioned table), as it stands now.
pub fn load_tree(oid: u32) -> ZdmResult<PartitionTree> {
    Spi::connect(|client| {
        let mut members = Vec::new();
        let rows = client.select(
            "SELECT n.nspname::text, c.relname::text, pn.nspname::text, pc.relname::text, t.isleaf, t.relid::int8
               FROM pg_catalog.pg_partition_tree($1::int8::oid) t
               JOIN pg_catalog.pg_class c ON c.oid = t.relid
               JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
               JOIN pg_catalog.pg_class pc ON pc.oid = t.parentrelid
               JOIN pg_catalog.pg_namespace pn ON pn.oid = pc.relnamespace
              WHERE t.level > 0
              ORDER BY t.level, n.nspname, c.relname",
            None,
            &[(oid as i64).into()],
        )?;
        let name = |s: Option<String>, r: Option<String>| {
            QualifiedName::new(Ident::new(s.unwrap_or_default()), Ident::new(r.unwrap_or_default()))
        };
        for r in rows {
            members.push(Partition {
                oid: r.get::<i64>(6)?.unwrap_or_default() as u32,
                name: name(r.get(1)?, r.get(2)?),
                parent: name(r.get(3)?, r.get(4)?),
                leaf: r.get::<bool>(5)?.unwrap_or(true),
            });
        }
        // Partition key columns: plain ones in pg_partitioned_table, those in
        // an expression as internal dependencies of the column on its table;
        // a partition's are read by name (attnums differ across levels).
        let key_columns = client
            .select(
                "SELECT DISTINCT a.attname::text
                   FROM pg_catalog.pg_partition_tree($1::int8::oid) t
                   JOIN pg_catalog.pg_partitioned_table pt ON pt.partrelid = t.relid
                   JOIN pg_catalog.pg_attribute a ON a.attrelid = t.relid
                  WHERE a.attnum OPERATOR(pg_catalog.=) ANY (pt.partattrs::int2[])
                     OR EXISTS (SELECT FROM pg_catalog.pg_depend d
                                 WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = t.relid
                                   AND d.objsubid = a.attnum AND d.refobjid = t.relid AND d.refobjsubid = 0
                                   AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.deptype = 'i')
                  ORDER BY 1",
                None,
                &[(oid as i64).into()],
            )?
            .map(|r| r.get::<String>(1).map(|v| v.unwrap_or_default()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok::<_, pgrx::spi::Error>(PartitionTree { members, key_columns })
    })
    .map_err(spi_err)
}

/// A partition's columns are its root's: they change only through the
/// partitioned table at the top (PostgreSQL refuses them on a partition).
pub fn refuse_partition(t: &TableInfo) -> ZdmResult<()> {
    let root: Option<String> = crate::session::get_optional(
        "SELECT pg_catalog.format('%I.%I', n.nspname, c.relname)
           FROM pg_catalog.pg_partition_ancestors($1::int8::oid) a
           JOIN pg_catalog.pg_class c ON c.oid = a.relid
           JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
          WHERE a.relid <> $1::int8::oid AND NOT c.relispartition",
        &[(t.oid as i64).into()],
    )
    .map_err(spi_err)?;
    match root {
        None => Ok(()),
        Some(root) => Err(ZdmError::not_supported(format!(
            "\"{}\" is a partition of {root}; its columns are the partitioned table's",
            t.name.display_raw()
        ))
        .hint(format!(
            "Migrate the partitioned table: every partition follows (e.g. zdm.rename_column({}, ...)).",
            crate::ident::Literal::pure(&root)
        ))),
    }
}
