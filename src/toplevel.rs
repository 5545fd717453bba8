//! Statements that must run at top level (CREATE INDEX CONCURRENTLY cannot run
//! in a function, a procedure or a transaction block).
//!
//! Start records them; `zdm.pending_statements()` lists what is left to run,
//! for psql's `\gexec` or a non-transactional migration file; complete is
//! refused until each index exists and is valid. An index left INVALID by a
//! failed build is dropped (CONCURRENTLY) and rebuilt, at most
//! `MAX_INDEX_RETRIES` times, and never left behind by complete or rollback.

use crate::error::{spi_err, ZdmError, ZdmResult};
use crate::ident::Literal;
use crate::migrations::store::{self, MigrationRow};
use crate::plan::Step;
use crate::session::get_optional;
use pgrx::prelude::*;

pub const MAX_INDEX_RETRIES: i64 = 3;

#[derive(Debug, PartialEq)]
enum IndexState {
    Missing,
    Building,
    Invalid,
    Valid,
}

fn index_state(index: &str) -> ZdmResult<IndexState> {
    let row: Option<(bool, bool)> = Spi::connect(|client| {
        let rows = client.select(
            "SELECT i.indisvalid,
                    EXISTS (SELECT FROM pg_catalog.pg_stat_progress_create_index p WHERE p.index_relid = i.indexrelid)
               FROM pg_catalog.pg_index i WHERE i.indexrelid = to_regclass($1)",
            None,
            &[index.into()],
        )?;
        let mut out = None;
        for r in rows {
            out = Some((r.get::<bool>(1)?.unwrap_or(false), r.get::<bool>(2)?.unwrap_or(false)));
        }
        Ok::<_, pgrx::spi::Error>(out)
    })
    .map_err(spi_err)?;
    Ok(match row {
        None => IndexState::Missing,
        Some((true, _)) => IndexState::Valid,
        Some((false, true)) => IndexState::Building,
        Some((false, false)) => IndexState::Invalid,
    })
}

fn gexec_hint(migration: &str) -> String {
    format!(
        "Run the pending statements at top level (not inside BEGIN ... COMMIT), e.g. in psql: \
         SELECT statement FROM zdm.pending_statements({}) \\gexec",
        Literal::new(migration)
    )
}

/// Is the step for a partition that has left its table's tree (detached or
/// dropped during the migration)? Such a step is not run, nor waited for.
fn partition_gone(step: &Step) -> ZdmResult<bool> {
    let (Some(root), Some(lock)) = (&step.partition_of, &step.lock) else {
        return Ok(false);
    };
    let present = get_optional::<bool>(
        "SELECT EXISTS (SELECT FROM pg_catalog.pg_partition_tree(pg_catalog.to_regclass($1)) t
                         WHERE t.relid OPERATOR(pg_catalog.=) pg_catalog.to_regclass($2))",
        &[root.as_str().into(), lock.relation.as_str().into()],
    )
    .map_err(spi_err)?
    .unwrap_or(false);
    Ok(!present)
}

/// Does `index` hang from partitioned index `parent`?
fn attached(parent: &str, index: &str) -> ZdmResult<bool> {
    Ok(get_optional::<bool>(
        "SELECT EXISTS (SELECT FROM pg_catalog.pg_inherits i
                         WHERE i.inhrelid OPERATOR(pg_catalog.=) pg_catalog.to_regclass($2)
                           AND i.inhparent OPERATOR(pg_catalog.=) pg_catalog.to_regclass($1))",
        &[parent.into(), index.into()],
    )
    .map_err(spi_err)?
    .unwrap_or(false))
}

/// Refuse to complete while an index the migration builds is not valid (a
/// partitioned table's: while a partition's index is not attached, or the
/// index of the table itself is not valid).
pub fn require_built(m: &MigrationRow) -> ZdmResult<()> {
    // The partitions' steps first: the index of a partitioned table itself
    // (not top level) is valid once they are done.
    let (top, own): (Vec<&Step>, Vec<&Step>) = m.plan.start.iter().partition(|s| s.top_level);
    for step in top
        .into_iter()
        .chain(own.into_iter().filter(|s| s.builds_index.is_some()))
    {
        if partition_gone(step)? {
            continue;
        }
        if let Some((parent, index)) = &step.attaches_index {
            if !attached(parent, index)? {
                return Err(ZdmError::wrong_state(format!(
                    "index {index} of migration \"{}\" is not attached to {parent} yet",
                    m.name
                ))
                .hint(gexec_hint(&m.name)));
            }
            continue;
        }
        let Some(index) = &step.builds_index else { continue };
        let state = index_state(index)?;
        if state != IndexState::Valid && !step.top_level {
            return Err(ZdmError::wrong_state(format!(
                "index {index} of migration \"{}\" is not valid although every partition's index is attached",
                m.name
            ))
            .hint(format!(
                "A partition was detached before its index was attached. Roll back (SELECT zdm.rollback({}); drops the index) and start again.",
                Literal::new(&m.name)
            )));
        }
        if state != IndexState::Valid {
            let what = match state {
                IndexState::Missing => "is not built yet",
                IndexState::Building => "is still being built",
                _ => "is INVALID (its build failed)",
            };
            return Err(
                ZdmError::wrong_state(format!("index {index} of migration \"{}\" {what}", m.name))
                    .hint(gexec_hint(&m.name)),
            );
        }
    }
    Ok(())
}

/// Refuse to complete when a built index is not the one planned (a
/// pasted CREATE INDEX edited by hand, on the wrong column, was accepted).
/// Compared by what defines an index, names aside: see [`index_shape`].
pub fn require_as_planned(m: &MigrationRow) -> ZdmResult<()> {
    for step in m.plan.start.iter().filter(|s| s.top_level) {
        let (Some(index), Some(lock)) = (&step.builds_index, &step.lock) else {
            continue;
        };
        if partition_gone(step)? {
            continue;
        }
        let planned = planned_shape(m, &lock.relation, &step.sql)?;
        let built = index_shape(index)?;
        if planned == built {
            continue;
        }
        let built_def: String = get_optional(
            "SELECT pg_catalog.pg_get_indexdef(to_regclass($1))",
            &[index.as_str().into()],
        )
        .map_err(spi_err)?
        .unwrap_or_default();
        return Err(ZdmError::wrong_state(format!(
            "index {index} of migration {} is not the index it planned",
            Literal::new(&m.name)
        ))
        .detail(format!("Built: {built_def}. Planned: {}.", step.sql))
        .hint(format!(
            "Drop it (DROP INDEX CONCURRENTLY {index};) and run the pending statement again, unchanged: \
             SELECT statement FROM zdm.pending_statements({}) \\gexec",
            Literal::new(&m.name)
        )));
    }
    Ok(())
}

/// What defines an index, without its name or its table's: access method,
/// uniqueness, each column or expression, opclasses, collations, orderings,
/// storage options and predicate, as PostgreSQL reads them back.
fn index_shape(index: &str) -> ZdmResult<Option<String>> {
    get_optional(
        "SELECT pg_catalog.concat_ws(' | ', am.amname, 'unique ' || i.indisunique,
                    'nulls not distinct ' || i.indnullsnotdistinct, 'key columns ' || i.indnkeyatts,
                    (SELECT pg_catalog.string_agg(pg_catalog.pg_get_indexdef(i.indexrelid, k, false), ', ' ORDER BY k)
                       FROM pg_catalog.generate_series(1, i.indnatts::int) k),
                    'opclasses ' || i.indclass::text, 'collations ' || i.indcollation::text,
                    'options ' || i.indoption::text, 'with ' || coalesce(c.reloptions::text, ''),
                    'where ' || coalesce(pg_catalog.pg_get_expr(i.indpred, i.indrelid), ''))
           FROM pg_catalog.pg_index i
           JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid
           JOIN pg_catalog.pg_am am ON am.oid = c.relam
          WHERE i.indexrelid = to_regclass($1)",
        &[index.into()],
    )
    .map_err(spi_err)
}

const PROBE_TABLE: &str = "zdm._zdm_index_probe";
const PROBE_INDEX: &str = "zdm._zdm_index_probe_idx";

/// The shape of the planned index, as PostgreSQL reads the planned statement:
/// built, without CONCURRENTLY, on an empty table with the table's columns
/// (LIKE: names, types, collations), in a subtransaction always rolled back.
/// Building it on the table itself would scan every row.
fn planned_shape(m: &MigrationRow, table: &str, sql: &str) -> ZdmResult<Option<String>> {
    let on = format!(" ON {table} ");
    let (head, rest) = sql
        .split_once(&on)
        .filter(|(h, _)| {
            h.starts_with("CREATE INDEX CONCURRENTLY ") || h.starts_with("CREATE UNIQUE INDEX CONCURRENTLY ")
        })
        .ok_or_else(|| {
            ZdmError::wrong_state(format!(
                "cannot read the planned index statement of migration {}: {sql}",
                Literal::new(&m.name)
            ))
        })?;
    let unique = if head.starts_with("CREATE UNIQUE ") {
        "UNIQUE "
    } else {
        ""
    };
    let probe_sql = format!("CREATE {unique}INDEX _zdm_index_probe_idx ON {PROBE_TABLE} {rest}");
    // As the catalog's owner, in schema zdm: the table's owner may not create
    // anywhere. Nothing runs on rows (the table is empty) and nothing is kept.
    crate::privilege::as_catalog_owner(|| {
        crate::session::in_rolled_back_subtransaction(|| -> ZdmResult<Option<String>> {
            Spi::run(&format!("CREATE TABLE {PROBE_TABLE} (LIKE {table})")).map_err(spi_err)?;
            Spi::run(&probe_sql).map_err(spi_err)?;
            index_shape(PROBE_INDEX)
        })
    })
    .map_err(|e| {
        ZdmError::wrong_state(format!(
            "cannot check the index of migration {} against its plan: {}",
            Literal::new(&m.name),
            crate::session::caught_message(&e)
        ))
        .detail(format!("Planned: {sql}."))
        .hint("See the server log; the migration can still be rolled back.")
    })?
}

/// What is left to run at top level, in order, for one or every active migration.
pub fn pending(migration: Option<&str>) -> ZdmResult<Vec<(String, String)>> {
    let names: Vec<String> = Spi::connect(|client| {
        client
            .select(
                "SELECT name FROM zdm.migrations
                  WHERE phase NOT IN ('completed', 'rolled_back', 'abandoned') AND ($1::text IS NULL OR name = $1)
                  ORDER BY created_at",
                None,
                &[migration.into()],
            )?
            .map(|r| r.get::<String>(1).map(|v| v.unwrap_or_default()))
            .collect::<Result<Vec<_>, _>>()
    })
    .map_err(spi_err)?;
    if let Some(m) = migration {
        if names.is_empty() {
            // Unknown (42704) or finished: say which.
            let row = store::get_for_update(m)?;
            return Err(ZdmError::wrong_state(format!(
                "migration \"{m}\" is {}; nothing is pending",
                row.phase
            )));
        }
    }
    let mut out = Vec::new();
    for name in names {
        // Every migration the caller may act on (one named: or 42501).
        let row = store::get(&name)?;
        if let Err(e) = crate::privilege::require_table_owner(&row.table_name, Some(&row.created_by)) {
            if migration.is_some() {
                return Err(e);
            }
            continue;
        }
        let m = store::get_for_update(&name)?;
        // Indexes whose build this list runs first (an attach follows it).
        let mut listed: Vec<&str> = Vec::new();
        for step in m.plan.start.iter().filter(|s| s.top_level) {
            if partition_gone(step)? {
                continue;
            }
            if let Some((parent, index)) = &step.attaches_index {
                let ready = listed.contains(&index.as_str()) || index_state(index)? == IndexState::Valid;
                if ready && !attached(parent, index)? {
                    out.push((name.clone(), format!("{};", step.sql)));
                }
                continue;
            }
            let Some(index) = &step.builds_index else { continue };
            if matches!(index_state(index)?, IndexState::Missing | IndexState::Invalid) {
                listed.push(index);
            }
            match index_state(index)? {
                IndexState::Valid | IndexState::Building => {}
                IndexState::Missing => out.push((name.clone(), format!("{};", step.sql))),
                IndexState::Invalid => {
                    let retries: i64 = get_optional(
                        "SELECT count(*) FROM zdm.events WHERE migration = $1 AND event = 'index retry' AND detail->>'index' = $2",
                        &[name.as_str().into(), index.as_str().into()],
                    )
                    .map_err(spi_err)?
                    .unwrap_or(0);
                    if retries >= MAX_INDEX_RETRIES {
                        return Err(ZdmError::wrong_state(format!(
                            "index {index} of migration \"{name}\" failed to build {retries} times"
                        ))
                        .hint(format!(
                            "See the server log for why; then roll back (SELECT zdm.rollback({});) and fix the cause.",
                            Literal::new(&name)
                        )));
                    }
                    store::log_event(
                        &name,
                        "index retry",
                        None,
                        None,
                        Some(serde_json::json!({ "index": index, "retry": retries + 1 })),
                    )?;
                    out.push((name.clone(), format!("DROP INDEX CONCURRENTLY IF EXISTS {index};")));
                    out.push((name.clone(), format!("{};", step.sql)));
                }
            }
        }
    }
    Ok(out)
}

/// [`pending`], plus the `DROP INDEX CONCURRENTLY` of a migration's complete
/// (drop_index) once its builds are done and while the index exists. Only
/// for a migration the caller names, and never for the scheduler: dropping
/// is the contract (the old application loses the index), asked for by name.
pub fn pending_with_drops(migration: Option<&str>) -> ZdmResult<Vec<(String, String)>> {
    let mut out = pending(migration)?;
    let Some(name) = migration else { return Ok(out) };
    if !out.is_empty() {
        return Ok(out);
    }
    let m = store::get_for_update(name)?;
    for step in m.plan.complete.iter().filter(|s| s.top_level) {
        let Some(index) = &step.drops_index else { continue };
        if index_state(index)? != IndexState::Missing {
            out.push((name.to_string(), format!("{};", step.sql)));
        }
    }
    Ok(out)
}
