//! What pg_zdm shows without changing anything: a spec's plan (`zdm.plan()`
//! as JSON, `zdm.plan_steps()` as rows, in the order the steps run) and a
//! migration's status with the next thing to run (`zdm.status()`).

use crate::error::ZdmResult;
use crate::ident::Literal;
use crate::lifecycle::prepare::{prepare, Prepared};
use crate::migrations::{store, Phase};
use crate::plan::{LockMode, Plan, Step};
use crate::spec::parse_spec;
use serde_json::{json, Value};

/// `zdm.plan()`: every phase's steps with their SQL and locks, and for a
/// shadow the locks swap_tables will take.
pub fn plan(spec: &Value) -> ZdmResult<Value> {
    let (prepared, swap_locks) = prepare_dry_run(spec)?;
    let mut json = plan_json(&prepared);
    if let Some(locks) = swap_locks {
        json["phases"]["swap"] = json!({
            "locks": locks.iter().map(|(relation, mode)| json!({
                "relation": relation, "mode": mode.as_sql(), "blocks": mode.blocks()})).collect::<Vec<_>>(),
        });
    }
    Ok(json)
}

/// `zdm.plan_steps()`: the same plan as rows.
pub fn plan_steps(spec: &Value) -> ZdmResult<Vec<PlanRow>> {
    let (prepared, swap_locks) = prepare_dry_run(spec)?;
    Ok(plan_rows(&prepared.plan, swap_locks.as_deref().unwrap_or(&[])))
}

/// `zdm.status()`: everything about one migration, and what to run next.
pub fn status(migration: &str) -> ZdmResult<Value> {
    let mut v = store::status_json(migration)?;
    v["next"] = next_step(migration)?.map(Value::String).unwrap_or(Value::Null);
    Ok(v)
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

fn plan_json(p: &Prepared) -> Value {
    let steps = |steps: &[Step]| -> Value {
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
                // A partitioned table: its leaf partitions, walked one after the other.
                "partitions": b.partitions.iter().map(|p| json!({
                    "partition": p.table, "batch_function": p.function, "upper_bound_sql": p.upper_bound_sql,
                    "validate_when_done": steps(&p.validate),
                    "lock": {"relation": p.table, "mode": "ROW EXCLUSIVE", "blocks": "only the rows of the batch, briefly"},
                })).collect::<Vec<_>>(),
            })),
            "validate": steps(&p.plan.validate),
            "complete": steps(&p.plan.complete),
            "rollback": steps(&p.plan.rollback),
        }
    })
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
pub struct PlanRow {
    pub phase: &'static str,
    /// From 1 within the phase.
    pub position: i32,
    pub description: String,
    pub lock: Option<(LockMode, String)>,
    pub top_level: bool,
    pub statement: String,
}

/// A plan's steps as rows, phases in the order they run: start, backfill (its
/// batch statements), validate, swap (a shadow's locks), complete, rollback.
fn plan_rows(plan: &Plan, swap_locks: &[(String, LockMode)]) -> Vec<PlanRow> {
    let mut rows = PlanRows(Vec::new());
    rows.steps("start", &plan.start);
    if let Some(b) = plan.backfill.as_ref().filter(|b| !b.partitions.is_empty()) {
        for p in &b.partitions {
            rows.push(
                "backfill",
                format!("{} (in batches) on partition {}", b.description, p.table),
                Some((LockMode::RowExclusive, p.table.clone())),
                false,
                format!("SELECT * FROM {}($1, $2, $3)", p.function),
            );
            for v in &p.validate {
                let lock = v.lock.as_ref().map(|l| (l.mode, l.relation.clone()));
                rows.push("backfill", v.description.clone(), lock, false, v.sql.clone());
            }
        }
    } else if let Some(b) = &plan.backfill {
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

    fn steps(&mut self, phase: &'static str, steps: &[Step]) {
        for s in steps {
            let lock = s.lock.as_ref().map(|l| (l.mode, l.relation.clone()));
            self.push(phase, s.description.clone(), lock, s.top_level, s.sql.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
