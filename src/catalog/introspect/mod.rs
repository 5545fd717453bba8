//! Reads pg_catalog into `model` types. Every name that leaves here is quoted
//! by the server (`quote_ident`, `format('%I')`), never by hand.
//! `relation`: the table, its columns, key and dependents; `keys`: its
//! indexes and constraints.

mod keys;
mod relation;

use super::model::TableInfo;
use crate::error::{ZdmError, ZdmResult};
use crate::ident::{Ident, QualifiedName, SqlFragment};
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
        let (name, relkind) = relation::name_and_kind(client, oid)?;
        let (checks, foreign_keys) = keys::checks_and_foreign_keys(client, oid)?;
        Ok::<_, pgrx::spi::Error>(TableInfo {
            oid,
            name,
            relkind,
            columns: relation::columns(client, oid)?,
            key: relation::batch_key(client, oid)?,
            dependents: relation::dependents(client, oid)?,
            constraint_names: relation::constraint_names(client, oid)?,
            indexes: keys::indexes(client, oid)?,
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
