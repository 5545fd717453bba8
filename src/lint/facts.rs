//! What the database knows about the objects a migration names, read from the
//! catalog as the caller (nothing here runs with more rights than the caller
//! has: pg_class, pg_attribute, pg_constraint, pg_index and pg_locks are
//! readable by every role, `pg_relation_size` too, and pg_stat_activity shows
//! another role's transaction start only to those allowed to see it).
//! Names are resolved with the caller's search_path, as the migration would be.

use super::model::*;
use super::resolve;
use crate::error::{spi_err, ZdmError, ZdmResult};
use crate::privilege::with_caller_search_path;
use crate::session::{caught_message, caught_sqlstate, in_subtransaction};
use pgrx::pg_sys::errcodes::PgSqlErrorCode;
use pgrx::prelude::*;
use pgrx::JsonB;
use serde::Deserialize;
use std::collections::HashMap;

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ColumnFacts {
    pub name: String,
    pub type_oid: u32,
    pub typmod: i32,
    pub collation: u32,
    pub not_null: bool,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct TableFacts {
    pub oid: u32,
    /// `schema.table`, quoted as needed (as a spec names it).
    pub qualified: String,
    pub schema: String,
    /// Bytes of the heap (all partitions for a partitioned table).
    pub size: i64,
    /// pg_class.reltuples summed over partitions; negative: never analysed.
    pub rows: f64,
    pub columns: Vec<ColumnFacts>,
    /// Columns with a validated CHECK (col IS NOT NULL).
    pub not_null_checks: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct IndexFacts {
    pub qualified: String,
    pub table: String,
    pub table_size: i64,
    pub valid: bool,
    pub unique: bool,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct LongTransaction {
    pub pid: i32,
    pub seconds: f64,
    /// Relations it holds a lock on (oids).
    pub relations: Vec<u32>,
}

/// Everything the rules may ask about, keyed by names as the text writes them.
#[derive(Debug, Default, Clone)]
pub struct Facts {
    pub tables: HashMap<String, TableFacts>,
    pub indexes: HashMap<String, IndexFacts>,
    /// (table as written, column) → does the type change of that statement rewrite?
    pub type_changes: HashMap<(String, String), Option<bool>>,
    pub long_transactions: Vec<LongTransaction>,
}

impl Facts {
    pub fn table(&self, r: &RelName) -> Option<&TableFacts> {
        self.tables.get(&r.display())
    }
    pub fn index(&self, r: &RelName) -> Option<&IndexFacts> {
        self.indexes.get(&r.display())
    }
}

/// Read the facts for every object the statements name.
pub fn gather(statements: &[Statement], long_transaction: &str) -> ZdmResult<Facts> {
    let mut facts = Facts::default();
    for s in statements {
        for t in tables_named(&s.kind) {
            if !facts.tables.contains_key(&t.display()) {
                if let Some(f) = read_table(&t)? {
                    facts.tables.insert(t.display(), f);
                }
            }
        }
        match &s.kind {
            Kind::DropIndex { indexes, .. } => {
                for i in indexes {
                    if let Some(f) = read_index(i.schema.as_deref(), &i.name)? {
                        facts.indexes.insert(i.display(), f);
                    }
                }
            }
            Kind::AlterTable { table, cmds, .. } => {
                let tf = facts.tables.get(&table.display()).cloned();
                for c in cmds {
                    read_cmd_facts(&mut facts, table, tf.as_ref(), c)?;
                }
            }
            _ => {}
        }
    }
    facts.long_transactions = read_long_transactions(long_transaction)?;
    Ok(facts)
}

fn read_cmd_facts(facts: &mut Facts, table: &RelName, tf: Option<&TableFacts>, c: &AlterCmd) -> ZdmResult<()> {
    let Some(tf) = tf else { return Ok(()) };
    match c {
        AlterCmd::AlterType { column, new_type, .. } => {
            let old = tf.columns.iter().find(|col| &col.name == column);
            let rewrites = match (old, &new_type.resolved) {
                (Some(o), Some(n)) => {
                    resolve::type_change_rewrites((o.type_oid, o.typmod, o.collation), (n.oid, n.typmod))
                }
                _ => None,
            };
            facts.type_changes.insert((table.display(), column.clone()), rewrites);
        }
        AlterCmd::AddConstraint(ConstraintSpec {
            kind:
                ConstraintKind::Unique {
                    using_index: Some(i), ..
                }
                | ConstraintKind::PrimaryKey {
                    using_index: Some(i), ..
                },
            ..
        }) => {
            // USING INDEX names an index of the table's schema.
            if let Some(f) = read_index(Some(&tf.schema), i)? {
                facts.indexes.insert(i.clone(), f);
            }
        }
        _ => {}
    }
    Ok(())
}

/// Tables a statement acts on (not those it creates).
pub fn tables_named(kind: &Kind) -> Vec<RelName> {
    match kind {
        Kind::AlterTable { table, cmds, .. } => {
            let mut v = vec![table.clone()];
            for c in cmds {
                if let AlterCmd::AddConstraint(ConstraintSpec {
                    kind: ConstraintKind::ForeignKey { references, .. },
                    ..
                }) = c
                {
                    v.push(references.clone());
                }
                if let AlterCmd::AddColumn(col) = c {
                    for k in &col.constraints {
                        if let ConstraintKind::ForeignKey { references, .. } = &k.kind {
                            v.push(references.clone());
                        }
                    }
                }
            }
            v
        }
        Kind::CreateIndex { table, .. }
        | Kind::RenameColumn { table, .. }
        | Kind::RenameTable { table, .. }
        | Kind::DataChange { table, .. } => vec![table.clone()],
        Kind::DropTable { tables, .. } | Kind::Truncate { tables, .. } => tables.clone(),
        Kind::Reindex { target: Some(t), .. } => vec![t.clone()],
        _ => vec![],
    }
}

const TABLE_FACTS: &str = "
SELECT (SELECT pg_catalog.jsonb_build_object(
  'oid', c.oid::int8,
  'qualified', pg_catalog.format('%I.%I', n.nspname, c.relname),
  'schema', n.nspname,
  'size', zdm_size.bytes,
  'rows', CASE WHEN c.relkind = 'p'
              THEN (SELECT coalesce(sum(greatest(pc.reltuples, 0)), 0) FROM pg_catalog.pg_partition_tree(c.oid) p
                      JOIN pg_catalog.pg_class pc ON pc.oid = p.relid)
              ELSE c.reltuples END::float8,
  'columns', coalesce((SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                 'name', a.attname, 'type_oid', a.atttypid::int8, 'typmod', a.atttypmod,
                 'collation', a.attcollation::int8, 'not_null', a.attnotnull) ORDER BY a.attnum)
               FROM pg_catalog.pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '[]'),
  'not_null_checks', coalesce((SELECT pg_catalog.jsonb_agg(a.attname)
               FROM pg_catalog.pg_constraint co
               JOIN pg_catalog.pg_attribute a ON a.attrelid = co.conrelid AND a.attnum = co.conkey[1]
              WHERE co.conrelid = c.oid AND co.contype = 'c' AND co.convalidated
                AND pg_catalog.cardinality(co.conkey) = 1
                AND pg_catalog.pg_get_constraintdef(co.oid) = pg_catalog.format('CHECK ((%I IS NOT NULL))', a.attname)), '[]'))
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace,
       LATERAL (SELECT CASE WHEN c.relkind = 'p'
                            THEN (SELECT coalesce(sum(pg_catalog.pg_relation_size(p.relid)), 0) FROM pg_catalog.pg_partition_tree(c.oid) p)
                            ELSE pg_catalog.pg_relation_size(c.oid) END::int8 AS bytes) zdm_size
 WHERE c.oid = pg_catalog.to_regclass(CASE WHEN $1 IS NULL THEN pg_catalog.quote_ident($2) ELSE pg_catalog.quote_ident($1) OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) pg_catalog.quote_ident($2) END) AND c.relkind IN ('r', 'p'))";

fn read_table(r: &RelName) -> ZdmResult<Option<TableFacts>> {
    read_visible(TABLE_FACTS, r.schema.as_deref(), &r.name)
}

/// One object's facts ($1 its schema, NULL: by search_path; $2 its name,
/// both quoted by the server), None when the caller cannot see it: not there, or in a
/// schema they have no USAGE on (to_regclass raises 42501 for that).
fn read_visible<T: serde::de::DeserializeOwned>(query: &str, schema: Option<&str>, name: &str) -> ZdmResult<Option<T>> {
    let read = in_subtransaction(|| {
        with_caller_search_path(|| Spi::get_one_with_args::<JsonB>(query, &[schema.into(), name.into()]))
    });
    match read {
        Ok(json) => Ok(json.map_err(spi_err)?.and_then(|j| serde_json::from_value(j.0).ok())),
        Err(e) if caught_sqlstate(&e) == Some(PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE) => Ok(None),
        Err(e) => Err(ZdmError::new(
            PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            caught_message(&e),
        )),
    }
}

const INDEX_FACTS: &str = "
SELECT (SELECT pg_catalog.jsonb_build_object(
  'qualified', pg_catalog.format('%I.%I', n.nspname, c.relname),
  'table', pg_catalog.format('%I.%I', tn.nspname, t.relname),
  'table_size', CASE WHEN t.relkind = 'p'
                     THEN (SELECT coalesce(sum(pg_catalog.pg_relation_size(p.relid)), 0) FROM pg_catalog.pg_partition_tree(t.oid) p)
                     ELSE pg_catalog.pg_relation_size(t.oid) END::int8,
  'valid', i.indisvalid, 'unique', i.indisunique)
  FROM pg_catalog.pg_index i
  JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_catalog.pg_class t ON t.oid = i.indrelid JOIN pg_catalog.pg_namespace tn ON tn.oid = t.relnamespace
 WHERE i.indexrelid = pg_catalog.to_regclass(CASE WHEN $1 IS NULL THEN pg_catalog.quote_ident($2) ELSE pg_catalog.quote_ident($1) OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) pg_catalog.quote_ident($2) END))";

fn read_index(schema: Option<&str>, name: &str) -> ZdmResult<Option<IndexFacts>> {
    read_visible(INDEX_FACTS, schema, name)
}

const LONG_TRANSACTIONS: &str = "
SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
         'pid', a.pid,
         'seconds', extract(epoch FROM pg_catalog.statement_timestamp() - a.xact_start)::float8,
         'relations', (SELECT coalesce(pg_catalog.jsonb_agg(DISTINCT l.relation::int8), '[]')
                         FROM pg_catalog.pg_locks l WHERE l.pid = a.pid AND l.relation IS NOT NULL AND l.granted))
         ORDER BY a.xact_start), '[]')
  FROM pg_catalog.pg_stat_activity a
 WHERE a.pid <> pg_catalog.pg_backend_pid() AND a.backend_type = 'client backend'
   AND a.xact_start < pg_catalog.statement_timestamp() - $1::interval";

fn read_long_transactions(threshold: &str) -> ZdmResult<Vec<LongTransaction>> {
    let json: Option<JsonB> = Spi::get_one_with_args(LONG_TRANSACTIONS, &[threshold.into()]).map_err(spi_err)?;
    Ok(json.and_then(|j| serde_json::from_value(j.0).ok()).unwrap_or_default())
}
