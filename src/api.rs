//! The SQL-facing API: thin `#[pg_extern]` wrappers that parse arguments, call
//! the modules that do the work, and raise errors as PostgreSQL ERRORs.
//! Convenience functions with regclass arguments (`zdm.rename_column(...)`)
//! are SQL wrappers over `zdm.start()`, in sql/api.sql.

use crate::backfill;
use crate::catalog::introspect::load_table;
use crate::error::{OrRaise, ZdmError, ZdmResult};
use crate::executor::{run_steps, RetryPolicy};
use crate::ident::{Ident, Literal};
use crate::migrations::{store, Phase};
use crate::ops::{self, check_migration_name, PlanContext};
use crate::plan::{LockMode, Plan};
use crate::privilege::{api_call, as_table_owner, require_table_owner};
use crate::session::in_transaction_block;
use crate::spec::{parse_spec, MigrationSpec};
use pgrx::pg_sys::errcodes::PgSqlErrorCode;
use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::{json, Value};

/// A spec turned into a named plan, checked against the live catalog.
struct Prepared {
    name: String,
    table_name: String,
    kind: String,
    columns: Vec<String>,
    plan: Plan,
}

fn quote(s: &str) -> Ident {
    Ident::new(s)
}

fn prepare(spec: &MigrationSpec) -> ZdmResult<Prepared> {
    let first_table = spec.operations[0].table().to_string();
    if spec.operations.len() > 1
        && spec
            .operations
            .iter()
            .any(|o| matches!(o, crate::spec::OperationSpec::CreateShadowTable(_)))
    {
        return Err(
            ZdmError::not_supported("a shadow table migration has exactly one operation")
                .hint("Put every change of the table in the shadow's alterations and column_map."),
        );
    }
    let mut table = None;
    let mut built = Vec::new();
    for op in &spec.operations {
        let t = load_table(op.table())?;
        let table_name = t.name.to_string();
        require_table_owner(&table_name, None)?;
        // A column another migration is changing carries that migration's
        // triggers: say so first, rather than refusing because of them.
        conflict_check(&t.name.to_string(), &op.named_columns())?;
        if let Some(ref first) = table {
            let first: &crate::catalog::TableInfo = first;
            if first.oid != t.oid {
                return Err(ZdmError::not_supported(format!(
                    "a migration changes one table; \"{}\" and \"{}\" differ",
                    first_table,
                    op.table()
                ))
                .hint("Write one migration per table."));
            }
        }
        // The shadow's probe creates (and rolls back) tables: as the owner would.
        built.push(as_table_owner(&table_name, || {
            ops::build(op, &t, &crate::catalog::introspect::ServerLookup, quote)
        })??);
        table = Some(t);
    }
    let table = table.expect("at least one operation");
    let name = match &spec.name {
        Some(n) => n.clone(),
        None => {
            let names: Vec<String> = built.iter().map(|o| o.default_name()).collect();
            // Made of table and column names, which may hold control
            // characters that a migration name may not (see check_migration_name).
            let printable: String = names
                .join("_and_")
                .chars()
                .map(|c| if crate::ident::is_control(c) { '_' } else { c })
                .collect();
            unused_name(&ops::fit_name(&printable))?
        }
    };
    check_migration_name(&name)?;
    let ctx = PlanContext {
        migration: name.clone(),
        quote,
    };
    let mut plan = Plan::default();
    let mut columns = Vec::new();
    for op in &built {
        plan.merge(op.plan(&ctx)?)
            .map_err(|e| ZdmError::not_supported(e).hint("Split the migration in two."))?;
        columns.extend(op.claimed_columns());
    }
    let kind = if spec.operations.len() == 1 {
        spec.operations[0].kind().to_string()
    } else {
        "multi".to_string()
    };
    Ok(Prepared {
        name,
        table_name: table.name.to_string(),
        kind,
        columns,
        plan,
    })
}

/// A generated name already used by an earlier migration (names stay in the
/// catalog as history) gets a suffix: `users_rename_name_to_full_name_2`. A
/// rolled-back migration's name is free (start archives it).
fn unused_name(base: &str) -> ZdmResult<String> {
    if !store::name_taken(base)? {
        return Ok(base.to_string());
    }
    for n in 2..1000 {
        let suffix = format!("_{n}");
        let candidate = format!("{}{suffix}", ops::fit_name_with_room(base, suffix.len()));
        if !store::name_taken(&candidate)? {
            return Ok(candidate);
        }
    }
    Err(ZdmError::new(
        PgSqlErrorCode::ERRCODE_DUPLICATE_OBJECT,
        format!("no free migration name like \"{base}\""),
    )
    .hint("Give the migration a name of your own."))
}

/// The operations of a spec as stored and compared: what `parse_spec` makes
/// of them, serialized (not the raw JSON text, whose spelling may vary).
fn normalized_operations(spec: &MigrationSpec) -> Value {
    serde_json::to_value(&spec.operations).expect("specs serialize")
}

/// A start of a migration that already exists (a migration file run again,
/// issue 15): Some(name) when it is active with the same spec (nothing to do),
/// an error when the name is taken otherwise, None to go on with the start.
fn earlier_start(spec: &MigrationSpec) -> ZdmResult<Option<String>> {
    let given = normalized_operations(spec);
    let Some(name) = &spec.name else {
        // Unnamed: the active migration started with the same operations, if any.
        let Some(name) = store::active_with_operations(&given)? else {
            return Ok(None);
        };
        return same_spec_again(&name).map(Some);
    };
    match store::phase_of(name)? {
        None | Some(Phase::RolledBack | Phase::Abandoned) => Ok(None),
        Some(Phase::Completed) => Err(name_taken_error(name)
            .detail("It is completed; a completed migration keeps its name as history.")
            .hint("Give the new migration another name.")),
        Some(_) => {
            let stored = store::spec_of(name)?;
            // Re-parsed, so a spec stored by an earlier version compares as today's.
            let existing = parse_spec(&stored)
                .map(|s| normalized_operations(&s))
                .unwrap_or_else(|_| stored["operations"].clone());
            if existing == given {
                return same_spec_again(name).map(Some);
            }
            let diff = crate::spec::differences(&json!({ "operations": existing }), &json!({ "operations": given }));
            Err(name_taken_error(name)
                .detail(format!("Its spec differs (existing → given): {}", diff.join("; ")))
                .hint(format!(
                    "Give the new migration another name, or roll this one back first: SELECT zdm.rollback({});",
                    Literal::new(name)
                )))
        }
    }
}

/// The same start again: nothing to do, said with a NOTICE (the caller must
/// still be allowed to act on the migration).
fn same_spec_again(name: &str) -> ZdmResult<String> {
    let m = authorized(name)?;
    pgrx::notice!(
        "pg_zdm: migration {} already exists with the same spec (phase {}); nothing to do",
        Literal::new(name),
        m.phase
    );
    Ok(name.to_string())
}

fn name_taken_error(name: &str) -> ZdmError {
    ZdmError::new(
        PgSqlErrorCode::ERRCODE_DUPLICATE_OBJECT,
        format!("migration {} already exists", Literal::new(name)),
    )
}

/// A call that asks for the phase the migration is already in (rollback of a
/// rolled-back one, complete of a completed one): a no-op, said with a NOTICE.
fn already_in(m: &store::MigrationRow, phase: Phase) -> bool {
    if m.phase != phase {
        return false;
    }
    pgrx::notice!(
        "pg_zdm: migration {} is already {phase}; nothing to do",
        Literal::new(&m.name)
    );
    true
}

/// What to run next on a migration, for `zdm.status()`; None once it is finished.
fn next_step(name: &str) -> ZdmResult<Option<String>> {
    let m = store::get(name)?;
    let q = Literal::new(name);
    if m.phase.is_final() {
        return Ok(None);
    }
    if m.paused {
        return Ok(Some(format!("SELECT zdm.resume({q}); then CALL zdm.backfill({q});")));
    }
    if m.plan.backfill.is_some() && matches!(m.phase, Phase::Started | Phase::Backfilling) {
        return Ok(Some(format!(
            "CALL zdm.backfill({q}); (top level) or SELECT zdm.schedule_backfill({q});"
        )));
    }
    if m.plan.shadow.is_some() {
        return Ok(Some(match m.phase {
            Phase::Backfilled => format!("SELECT zdm.verify({q}); then SELECT zdm.swap_tables({q});"),
            _ => {
                format!("SELECT zdm.complete({q}); once the new table has proved itself (zdm.rollback({q}) swaps back)")
            }
        }));
    }
    if crate::toplevel::require_built(&m).is_err() {
        return Ok(Some(format!(
            "SELECT statement FROM zdm.pending_statements({q}) \\gexec"
        )));
    }
    Ok(Some(format!(
        "SELECT zdm.complete({q}); once the old application is retired"
    )))
}

/// 55006 when an active migration of the table claims any of `columns`.
fn conflict_check(table_name: &str, columns: &[String]) -> ZdmResult<()> {
    if let Some((other, cols)) = store::conflicting_migration(table_name, columns)? {
        let what = if cols.iter().any(|c| c == crate::spec::WHOLE_TABLE) {
            format!("{table_name} is being restructured (or changed) by migration \"{other}\"")
        } else {
            format!(
                "column(s) {} of {} are already being migrated by migration \"{other}\"",
                cols.join(", "),
                table_name
            )
        };
        return Err(ZdmError::new(PgSqlErrorCode::ERRCODE_OBJECT_IN_USE, what).hint(format!(
            "Complete or roll back \"{other}\" first: SELECT zdm.complete({0}); or SELECT zdm.rollback({0});",
            Literal::new(&other)
        )));
    }
    Ok(())
}

/// Load a migration for a call that acts on it: 42704 when unknown, 42501
/// unless the caller may act for its table's owner (see `privilege`).
fn authorized(name: &str) -> ZdmResult<store::MigrationRow> {
    let m = store::get(name)?;
    require_table_owner(&m.table_name, Some(&m.created_by))?;
    Ok(m)
}

/// Run `f` for an authorized migration, with the rights of its table's owner.
fn as_owner_of<R>(name: &str, f: impl FnOnce() -> ZdmResult<R>) -> ZdmResult<R> {
    let m = authorized(name)?;
    as_table_owner(&m.table_name, f).map_err(|e| {
        e.hint(format!(
            "The table of this migration was dropped: SELECT zdm.rollback({}); abandons the migration and removes what pg_zdm made for it.",
            Literal::new(name)
        ))
    })?
}

fn plan_json(p: &Prepared) -> Value {
    let steps = |steps: &[crate::plan::Step]| -> Value {
        Value::Array(
            steps
                .iter()
                .map(|s| {
                    json!({
                        "description": s.description,
                        "sql": s.sql,
                        "lock": s.lock.as_ref().map(|l| json!({
                            "relation": l.relation, "mode": l.mode.as_sql(), "blocks": l.mode.blocks()})),
                        "top_level": s.top_level,
                    })
                })
                .collect(),
        )
    };
    json!({
        "migration": p.name,
        "table": p.table_name,
        "kind": p.kind,
        // Set when the operation goes another way than its name says (a key
        // column's type: a shadow table), with the reason.
        "carried_out_as": p.plan.carried_out_as,
        "referencing_columns": p.plan.referencing_columns,
        "columns": p.columns,
        "phases": {
            "start": steps(&p.plan.start),
            "backfill": p.plan.backfill.as_ref().map(|b| json!({
                "description": b.description,
                "key": b.key_columns,
                "upper_bound_sql": b.upper_bound_sql,
                "batch_function": b.function,
                "batch_statements": b.batch_statements,
                "lock": {"relation": b.table, "mode": "ROW EXCLUSIVE", "blocks": "only the rows of the batch, briefly"},
            })),
            "validate": steps(&p.plan.validate),
            "complete": steps(&p.plan.complete),
            "rollback": steps(&p.plan.rollback),
        }
    })
}

/// A start that went another way than its operation's name (a key column's
/// type through a shadow table) says so, and names the columns left behind:
/// the caller expects the phases of the operation it called.
fn announce_carried_out_as(p: &Prepared) {
    if let Some(c) = &p.plan.carried_out_as {
        pgrx::notice!(
            "pg_zdm: migration {} is carried out as {} ({}): {}",
            Literal::new(&p.name),
            c.kind,
            c.alterations.join(", "),
            c.reason
        );
    }
    for r in &p.plan.referencing_columns {
        pgrx::notice!("pg_zdm: {}", r.hint);
    }
}

/// The migration a spec describes, planned, and for a shadow the locks
/// swap_tables will take, in its order, as the catalog stands now: what
/// `zdm.plan()` and `zdm.plan_steps()` show.
fn prepare_dry_run(spec: &Value) -> ZdmResult<(Prepared, Option<Vec<(String, LockMode)>>)> {
    let spec = parse_spec(spec)?;
    let prepared = prepare(&spec)?;
    let swap_locks = match &prepared.plan.shadow {
        Some(sp) => Some(crate::shadow::swap::lock_order(&sp.table, &sp.shadow)?),
        None => None,
    };
    Ok((prepared, swap_locks))
}

/// One row of `zdm.plan_steps()`.
#[derive(Debug, PartialEq)]
struct PlanRow {
    phase: &'static str,
    /// From 1 within the phase.
    position: i32,
    description: String,
    lock: Option<(LockMode, String)>,
    top_level: bool,
    statement: String,
}

/// A plan's steps as rows, phases in the order they run: start, backfill (its
/// batch statements), validate, swap (a shadow's locks), complete, rollback.
fn plan_rows(plan: &Plan, swap_locks: &[(String, LockMode)]) -> Vec<PlanRow> {
    let mut rows = PlanRows(Vec::new());
    rows.steps("start", &plan.start);
    if let Some(b) = &plan.backfill {
        for sql in &b.batch_statements {
            let lock = Some((LockMode::RowExclusive, b.table.clone()));
            rows.push(
                "backfill",
                format!("{} (in batches)", b.description),
                lock,
                false,
                sql.clone(),
            );
        }
    }
    rows.steps("validate", &plan.validate);
    for (relation, mode) in swap_locks {
        let sql = format!("LOCK TABLE {relation} IN {} MODE", mode.as_sql());
        let lock = Some((*mode, relation.clone()));
        rows.push("swap", format!("swap_tables locks {relation}"), lock, false, sql);
    }
    rows.steps("complete", &plan.complete);
    rows.steps("rollback", &plan.rollback);
    rows.0
}

struct PlanRows(Vec<PlanRow>);

impl PlanRows {
    fn push(
        &mut self,
        phase: &'static str,
        description: String,
        lock: Option<(LockMode, String)>,
        top_level: bool,
        statement: String,
    ) {
        let position = self.0.iter().filter(|r| r.phase == phase).count() as i32 + 1;
        self.0.push(PlanRow {
            phase,
            position,
            description,
            lock,
            top_level,
            statement,
        });
    }

    fn steps(&mut self, phase: &'static str, steps: &[crate::plan::Step]) {
        for s in steps {
            let lock = s.lock.as_ref().map(|l| (l.mode, l.relation.clone()));
            self.push(phase, s.description.clone(), lock, s.top_level, s.sql.clone());
        }
    }
}

/// Everything in this module is created in schema `zdm` (pgrx emits
/// `CREATE SCHEMA IF NOT EXISTS zdm` and qualifies each function).
#[pg_schema]
pub mod zdm {
    use super::*;

    /// Dry run: the ordered steps of every phase with their SQL and locks. Changes nothing.
    #[pg_extern]
    fn plan(spec: JsonB) -> JsonB {
        api_call(|| {
            let (prepared, swap_locks) = prepare_dry_run(&spec.0)?;
            let mut json = plan_json(&prepared);
            if let Some(locks) = swap_locks {
                json["phases"]["swap"] = json!({
                    "locks": locks.iter().map(|(relation, mode)| json!({
                        "relation": relation, "mode": mode.as_sql(), "blocks": mode.blocks()})).collect::<Vec<_>>(),
                });
            }
            Ok(JsonB(json))
        })
        .or_raise()
    }

    /// `zdm.plan()` as rows, one per step, in the order they run, for psql.
    /// Changes nothing.
    #[pg_extern]
    fn plan_steps(
        spec: JsonB,
    ) -> TableIterator<
        'static,
        (
            name!(phase, String),
            name!(position, i32),
            name!(description, String),
            name!(lock_mode, Option<String>),
            name!(locked_relation, Option<String>),
            name!(top_level, bool),
            name!(statement, String),
        ),
    > {
        let rows = api_call(|| {
            let (prepared, swap_locks) = prepare_dry_run(&spec.0)?;
            Ok(plan_rows(&prepared.plan, swap_locks.as_deref().unwrap_or(&[])))
        })
        .or_raise();
        TableIterator::new(rows.into_iter().map(|r| {
            (
                r.phase.to_string(),
                r.position,
                r.description,
                r.lock.as_ref().map(|(m, _)| m.as_sql().to_string()),
                r.lock.map(|(_, rel)| rel),
                r.top_level,
                r.statement,
            )
        }))
    }

    /// Expand: create the new objects and sync triggers in one short transaction.
    #[pg_extern]
    fn start(spec: JsonB) -> String {
        api_call(|| start_impl(spec.0)).or_raise()
    }

    fn start_impl(raw: Value) -> ZdmResult<String> {
        let spec = parse_spec(&raw)?;
        // Before prepare: a start run again would otherwise trip over its own
        // migration (its claimed columns, the column it added).
        if let Some(name) = earlier_start(&spec)? {
            return Ok(name);
        }
        let p = prepare(&spec)?;
        // Serialize starts on one table, so two sessions cannot both pass the conflict check.
        Spi::run_with_args(
            "SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('zdm:' || pg_catalog.to_regclass($1)::oid::text))",
            &[p.table_name.as_str().into()],
        )
        .map_err(crate::catalog::introspect::spi_err)?;
        match store::phase_of(&p.name)? {
            None => {}
            // Its name is free again; its history stays, under `<name>@<n>`.
            Some(phase @ (Phase::RolledBack | Phase::Abandoned)) => {
                let archived = store::archive(&p.name)?;
                pgrx::notice!(
                    "pg_zdm: the {phase} migration {} is kept as {}",
                    Literal::new(&p.name),
                    Literal::new(&archived)
                );
            }
            // Started meanwhile by another session.
            Some(_) => {
                return Err(
                    name_taken_error(&p.name).hint("Give the migration another name, or look at it with zdm.status().")
                )
            }
        }
        conflict_check(&p.table_name, &p.columns)?;
        let report = as_table_owner(&p.table_name, || {
            run_steps(&p.plan.start, &RetryPolicy::from_settings())
        })??;
        store::insert(store::NewMigration {
            name: &p.name,
            table_name: &p.table_name,
            kind: &p.kind,
            columns: p.columns.clone(),
            spec: serde_json::to_value(&spec).expect("specs serialize"),
            plan: &p.plan,
        })?;
        let m = store::get_for_update(&p.name)?;
        store::log_event(
            &p.name,
            "expand",
            None,
            None,
            Some(serde_json::to_value(&report).unwrap()),
        )?;
        announce_carried_out_as(&p);
        if p.plan.backfill.is_none() {
            // Validation (a scan under SHARE UPDATE EXCLUSIVE) waits for complete:
            // here it would run while start's ACCESS EXCLUSIVE lock is still held.
            store::move_phase(&m, Phase::Backfilled, "nothing to backfill", None)?;
        }
        Ok(p.name)
    }

    /// Contract: drop what the old application needed, in one short transaction.
    #[pg_extern]
    fn complete(migration: &str) {
        api_call(|| {
            // Checked before switching to the table's owner: the table of a
            // finished migration may be gone.
            if already_in(&authorized(migration)?, Phase::Completed) {
                return Ok(());
            }
            as_owner_of(migration, || complete_impl(migration))
        })
        .or_raise()
    }

    fn complete_impl(name: &str) -> ZdmResult<()> {
        let m = store::get_for_update(name)?;
        // Completed by another session while this one waited for the row.
        if already_in(&m, Phase::Completed) {
            return Ok(());
        }
        if m.plan.shadow.is_some() && m.phase == Phase::Backfilled {
            return Err(
                ZdmError::wrong_state(format!("migration \"{name}\" has not swapped its shadow table in yet")).hint(
                    format!(
                        "Swap first: SELECT zdm.swap_tables({0}); then complete. zdm.rollback({0}) abandons it.",
                        Literal::new(name)
                    ),
                ),
            );
        }
        m.phase.check_move(Phase::Completed, name)?;
        crate::toplevel::require_built(&m)?;
        crate::toplevel::require_as_planned(&m)?;
        let policy = RetryPolicy::from_settings();
        let mut shadow_steps = Vec::new();
        if m.plan.shadow.is_some() {
            shadow_steps = crate::shadow::swap::complete_foreign_keys(&m, &policy)?;
        }
        if m.plan.backfill.is_none() && !m.plan.validate.is_empty() {
            // Without a backfill nothing validated yet: VALIDATE first (reads and
            // writes go on), then the short exclusive steps.
            let report = run_steps(&m.plan.validate, &policy)?;
            store::log_event(
                name,
                "validate",
                None,
                None,
                Some(serde_json::to_value(report).unwrap()),
            )?;
        }
        shadow_steps.extend(m.plan.complete.iter().cloned());
        let report = run_steps(&shadow_steps, &policy)?;
        // A pg_cron job left for this migration would fail every minute from now on.
        crate::scheduler::unschedule(name)?;
        store::move_phase(
            &m,
            Phase::Completed,
            "complete",
            Some(serde_json::to_value(report).unwrap()),
        )
    }

    /// Undo start, from any phase before complete: the table is as before start.
    #[pg_extern]
    fn rollback(migration: &str) {
        api_call(|| {
            let m = authorized(migration)?;
            if already_in(&m, Phase::RolledBack) || already_in(&m, Phase::Abandoned) {
                return Ok(());
            }
            if crate::privilege::table_owner(&m.table_name)?.is_none() {
                return crate::abandon::abandon_if_dropped(migration);
            }
            as_owner_of(migration, || rollback_impl(migration))
        })
        .or_raise()
    }

    fn rollback_impl(name: &str) -> ZdmResult<()> {
        let m = store::get_for_update(name)?;
        if already_in(&m, Phase::RolledBack) {
            return Ok(());
        }
        m.phase.check_move(Phase::RolledBack, name)?;
        let policy = RetryPolicy::from_settings();
        if m.phase == Phase::Swapped {
            let swap_back = crate::shadow::swap::swap_back(&m, &policy)?;
            store::log_event(name, "swap back", None, None, Some(swap_back))?;
        }
        let report = run_steps(&m.plan.rollback, &policy)?;
        crate::scheduler::unschedule(name)?;
        store::move_phase(
            &m,
            Phase::RolledBack,
            "rollback",
            Some(serde_json::to_value(report).unwrap()),
        )
    }

    /// Remove a rolled-back migration and its events from the catalog (its
    /// name is free anyway; this clears the history). Other phases: 55000.
    #[pg_extern]
    fn forget(migration: &str) {
        api_call(|| {
            authorized(migration)?;
            let m = store::get_for_update(migration)?;
            if !m.phase.frees_its_name() {
                return Err(ZdmError::wrong_state(format!(
                    "migration {} is {}; only a rolled-back or abandoned migration can be forgotten",
                    Literal::new(migration),
                    m.phase
                ))
                .hint(if m.phase == Phase::Completed {
                    "A completed migration's history stays in the catalog.".to_string()
                } else {
                    format!("Roll it back first: SELECT zdm.rollback({});", Literal::new(migration))
                }));
            }
            store::delete(migration)
        })
        .or_raise()
    }

    /// Everything about one migration: phase, spec, progress, events.
    #[pg_extern]
    fn status(migration: &str) -> JsonB {
        api_call(|| {
            let mut v = store::status_json(migration).or_raise();
            v["next"] = next_step(migration)
                .or_raise()
                .map(Value::String)
                .unwrap_or(Value::Null);
            JsonB(v)
        })
    }

    /// Exactly one backfill batch in the caller's transaction: rows covered, 0 when finished.
    #[pg_extern]
    fn backfill_batch(migration: &str, batch_size: default!(Option<i32>, "NULL")) -> i64 {
        api_call(|| as_owner_of(migration, || backfill::run_one_batch(migration, batch_size))).or_raise()
    }

    /// One step of `CALL zdm.backfill()`'s loop: a batch, or why there is none.
    #[pg_extern]
    fn _backfill_step(
        migration: &str,
        batch_size: Option<i32>,
        via: &str,
    ) -> TableIterator<
        'static,
        (
            name!(rows, i64),
            name!(state, String),
            name!(wait_ms, i32),
            name!(reason, Option<String>),
        ),
    > {
        let step = api_call(|| as_owner_of(migration, || backfill::loop_step(migration, batch_size, via))).or_raise();
        let state = step.state().to_string();
        let row = match step {
            backfill::Step::Batch(n) => (n, state, 0, None),
            backfill::Step::Wait { reason, ms } => (0, state, ms, Some(reason)),
            backfill::Step::Gone(phase) => (0, state, 0, Some(format!("migration is {phase}"))),
            _ => (0, state, 0, None),
        };
        TableIterator::once(row)
    }

    /// Called by `zdm.backfill` after a failed batch was rolled back: keeps the
    /// error in zdm.migrations (the procedure commits it, then re-raises).
    #[pg_extern]
    fn _backfill_failed(migration: &str, sqlstate: &str, message: &str) {
        api_call(|| {
            authorized(migration)?;
            store::record_error(migration, &format!("{sqlstate}: {message}"))
        })
        .or_raise()
    }

    /// Called by `zdm.backfill` when the loop ends on a finished or abandoned
    /// migration: a shadow's late notes are settled, and its pg_cron job, if
    /// any, is not needed any more.
    #[pg_extern]
    fn _backfill_ended(migration: &str) {
        api_call(|| {
            let m = authorized(migration)?;
            if m.phase == Phase::Backfilled {
                as_owner_of(migration, || crate::shadow::verify::settle_after_copy_phase(&m))?;
            }
            crate::scheduler::after_run(migration)
        })
        .or_raise();
    }

    /// Called first by the `zdm.backfill` procedure: it commits between batches,
    /// which PostgreSQL only allows for a CALL outside a transaction block.
    #[pg_extern]
    fn _backfill_precheck(migration: &str, batch_size: Option<i32>) {
        api_call(|| backfill_precheck(migration, batch_size))
    }

    fn backfill_precheck(migration: &str, batch_size: Option<i32>) {
        if in_transaction_block() {
            ZdmError::new(
                PgSqlErrorCode::ERRCODE_ACTIVE_SQL_TRANSACTION,
                format!(
                    "CALL zdm.backfill({}) cannot run inside a transaction block",
                    Literal::new(migration)
                ),
            )
            .detail("The backfill commits after every batch, which PostgreSQL allows only for a CALL at top level.")
            // PostgreSQL does not say which kind of transaction block this
            // is: an explicit BEGIN, or the implicit one of a query string
            // holding several statements. The hint names both.
            .hint(format!(
                "Send the CALL alone, at top level: not inside BEGIN ... COMMIT (psql: \\set AUTOCOMMIT on), \
                 and not in one query string with other statements (psql -c \"CALL ...; SELECT 1\", or a driver \
                 sending a whole file at once, runs them all in one implicit transaction). \
                 Or schedule it with zdm.schedule_backfill({0}), or call SELECT zdm.backfill_batch({0}); \
                 repeatedly from your own transactions.",
                Literal::new(migration)
            ))
            .raise();
        }
        if let Some(s) = batch_size {
            if s <= 0 {
                ZdmError::invalid_parameter(format!("batch size must be positive, got {s}"))
                    .hint("Leave it NULL to use the migration's setting or zdm.batch_size.")
                    .raise();
            }
        }
        // Refuses unknown and rolled-back migrations; one with nothing to do
        // gets a NOTICE, and the loop then ends at its first step.
        authorized(migration).or_raise();
        let m = store::get_for_update(migration).or_raise();
        backfill::work_of(&m).or_raise();
    }

    /// Stop the backfill: a running CALL or cron run stops after its current batch.
    #[pg_extern]
    fn pause(migration: &str) {
        api_call(|| pause_impl(migration))
    }

    fn pause_impl(migration: &str) {
        authorized(migration).or_raise();
        let m = store::get_for_update(migration).or_raise();
        if m.phase.is_final() || m.phase.backfill_done() {
            ZdmError::wrong_state(format!(
                "migration \"{migration}\" is {}; its backfill is not running",
                m.phase
            ))
            .hint("Only a migration in phase started or backfilling can be paused.")
            .raise();
        }
        if !m.paused {
            store::set_paused(migration, true).or_raise();
            store::log_event(migration, "pause", None, None, None).or_raise();
        }
    }

    /// Let the backfill go on: the next CALL (or cron run) continues where it stopped.
    #[pg_extern]
    fn resume(migration: &str) {
        api_call(|| resume_impl(migration))
    }

    fn resume_impl(migration: &str) {
        authorized(migration).or_raise();
        let m = store::get_for_update(migration).or_raise();
        if m.phase.is_final() || m.phase.backfill_done() {
            ZdmError::wrong_state(format!(
                "migration \"{migration}\" is {}; there is no backfill to resume",
                m.phase
            ))
            .hint("A finished backfill needs no resume; complete the migration with zdm.complete().")
            .raise();
        }
        if m.paused {
            store::set_paused(migration, false).or_raise();
            store::log_event(migration, "resume", None, None, None).or_raise();
        }
    }

    /// Per-migration backfill settings (overriding the zdm.* GUCs); returns the
    /// settings in force. Keys: batch_size, batch_delay_ms, target_batch_ms,
    /// max_replication_lag_ms; a null value goes back to the GUC.
    #[pg_extern]
    fn set_backfill_settings(migration: &str, settings: JsonB) -> JsonB {
        api_call(|| set_backfill_settings_impl(migration, settings))
    }

    fn set_backfill_settings_impl(migration: &str, settings: JsonB) -> JsonB {
        authorized(migration).or_raise();
        let m = store::get_for_update(migration).or_raise();
        let given = backfill::BackfillSettings::parse(&settings.0).or_raise();
        let mut merged = m.settings.clone();
        let obj = settings.0.as_object().cloned().unwrap_or_default();
        macro_rules! take {
            ($field:ident) => {
                if obj.contains_key(stringify!($field)) {
                    merged.$field = given.$field;
                }
            };
        }
        take!(batch_size);
        take!(batch_delay_ms);
        take!(target_batch_ms);
        take!(max_replication_lag_ms);
        store::set_settings(migration, &merged).or_raise();
        store::log_event(
            migration,
            "settings",
            None,
            None,
            Some(serde_json::to_value(&merged).unwrap()),
        )
        .or_raise();
        JsonB(serde_json::to_value(merged.effective()).unwrap())
    }

    /// Run the backfill from pg_cron: a job named after the migration runs a
    /// lone `CALL zdm.backfill(...)` for up to `max_seconds` each time, and
    /// unschedules itself once the backfill is done. Returns the job id (with nothing to
    /// schedule: a NOTICE, and the job it already has or NULL).
    #[pg_extern]
    fn schedule_backfill(
        migration: &str,
        schedule: default!(&str, "'* * * * *'"),
        max_seconds: default!(i32, 50),
    ) -> Option<i64> {
        api_call(|| {
            authorized(migration)?;
            crate::scheduler::schedule(migration, schedule, max_seconds)
        })
        .or_raise()
    }

    /// Statements a migration still needs run at top level (CREATE INDEX
    /// CONCURRENTLY), in order: `SELECT statement FROM zdm.pending_statements() \gexec`.
    #[pg_extern]
    fn pending_statements(
        migration: default!(Option<&str>, "NULL"),
    ) -> TableIterator<'static, (name!(migration, String), name!(statement, String))> {
        TableIterator::new(api_call(|| crate::toplevel::pending(migration)).or_raise())
    }

    /// Compare a shadow table with its original in one snapshot: row counts,
    /// per-column checksums, up to five differing keys. Recorded for swap_tables.
    #[pg_extern]
    fn verify(migration: &str) -> JsonB {
        JsonB(api_call(|| as_owner_of(migration, || crate::shadow::verify::verify(migration, false))).or_raise())
    }

    /// Swap a verified shadow table in: one short transaction under ACCESS
    /// EXCLUSIVE locks taken with lock_timeout and retried; re-points every
    /// dependent. Returns a report (attempts, lock wait and hold times, what moved).
    #[pg_extern]
    fn swap_tables(
        migration: &str,
        lock_timeout: default!(Option<&str>, "NULL"),
        max_attempts: default!(Option<i32>, "NULL"),
    ) -> JsonB {
        api_call(|| {
            let policy = crate::shadow::swap::policy(lock_timeout, max_attempts)?;
            authorized(migration)?;
            crate::shadow::swap::swap(migration, &policy)
        })
        .map(JsonB)
        .or_raise()
    }

    /// Remove the migration's pg_cron job; false when it had none.
    #[pg_extern]
    fn unschedule_backfill(migration: &str) -> bool {
        api_call(|| {
            authorized(migration)?;
            store::get_for_update(migration)?;
            crate::scheduler::unschedule(migration)
        })
        .or_raise()
    }

    /// Called by the DDL guard (sql/guard.sql) when the table of an active
    /// migration is dropped: the migration is abandoned in the same transaction.
    /// Does nothing to a migration whose table still exists (55000).
    #[pg_extern]
    fn _abandon_dropped(migration: &str) {
        api_call(|| crate::abandon::abandon_if_dropped(migration)).or_raise()
    }

    /// Read by the DDL guard (sql/guard.sql): true only inside a pg_zdm call.
    #[pg_extern]
    fn _own_ddl_in_progress() -> bool {
        crate::privilege::own_ddl_in_progress()
    }

    /// Read by the catalog's guard trigger: true only while pg_zdm itself
    /// writes its catalog (a session cannot set it).
    #[pg_extern]
    fn _catalog_write_in_progress() -> bool {
        crate::privilege::catalog_write_in_progress()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Step;

    #[test]
    fn plan_rows_keep_the_order_steps_run_in() {
        let t = "public.t";
        let plan = Plan {
            start: vec![
                Step::locked(
                    "add",
                    "ALTER TABLE public.t ADD COLUMN b int".into(),
                    t,
                    LockMode::AccessExclusive,
                ),
                Step::unlocked("function", "CREATE FUNCTION zdm.f()".into()),
                Step::top_level_index(
                    "index",
                    "CREATE INDEX CONCURRENTLY i ON public.t (b)".into(),
                    t,
                    "public.i",
                ),
            ],
            complete: vec![Step::unlocked("drop", "DROP FUNCTION zdm.f()".into())],
            rollback: vec![Step::locked(
                "undo",
                "ALTER TABLE public.t DROP COLUMN b".into(),
                t,
                LockMode::AccessExclusive,
            )],
            ..Default::default()
        };
        let swap = [("public.v".to_string(), LockMode::AccessExclusive)];
        let rows = plan_rows(&plan, &swap);
        let shown: Vec<String> = rows
            .iter()
            .map(|r| {
                format!(
                    "{} {} {} {}",
                    r.phase,
                    r.position,
                    r.lock.as_ref().map(|(m, rel)| format!("{m}@{rel}")).unwrap_or_default(),
                    r.top_level
                )
            })
            .collect();
        assert_eq!(
            shown,
            [
                "start 1 ACCESS EXCLUSIVE@public.t false",
                "start 2  false",
                "start 3 SHARE UPDATE EXCLUSIVE@public.t true",
                "swap 1 ACCESS EXCLUSIVE@public.v false",
                "complete 1  false",
                "rollback 1 ACCESS EXCLUSIVE@public.t false",
            ]
        );
        assert_eq!(rows[3].statement, "LOCK TABLE public.v IN ACCESS EXCLUSIVE MODE");
    }
}
