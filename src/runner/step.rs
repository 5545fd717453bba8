//! What the worker does next, decided in one transaction from the catalog:
//! the same code as `CALL zdm.backfill` (`backfill::loop_step`: pause, lag,
//! batch size, checkpoint), then the pending top-level statements
//! (`toplevel::pending`, with its invalid-index recovery), then, when asked,
//! a shadow's verify and swap. Everything is re-read each time, so pause,
//! resume, settings, cancel, complete and rollback act within one step.

use super::record::{self, Through};
use crate::backfill::{self, Step};
use crate::error::ZdmResult;
use crate::lifecycle::access::{as_owner_of, authorized};
use crate::lifecycle::backfill_control;
use crate::migrations::Phase;

/// What the worker loop does after this step's transaction commits.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// A batch or a step ran: go on after this pause.
    Continue { delay_ms: u64 },
    /// Nothing to do now (paused, throttled, an index another session builds).
    Sleep { ms: u64, why: String },
    /// Run this statement at top level, then look again.
    TopLevel(String),
    /// The end: the runner's final state and why.
    Stop { state: &'static str, why: String },
}

/// Per-process memory of the worker between steps.
#[derive(Debug, Default)]
pub struct Progress {
    /// `backfill_control::ended` ran once the batches were done.
    pub backfill_ended: bool,
}

/// While paused, how often the worker looks at the catalog again.
const PAUSED_POLL_MS: u64 = 300;

pub fn next(runner_id: i64, progress: &mut Progress) -> ZdmResult<Action> {
    let Some(r) = record::by_id(runner_id)? else {
        return Ok(stop("cancelled", "its runner row is gone"));
    };
    if !r.active() {
        return Ok(stop("cancelled", &format!("the runner is {}", r.state)));
    }
    let name = r.migration.as_str();
    let m = authorized(name)?;
    match m.phase {
        Phase::Completed => return Ok(stop("done", "the migration was completed")),
        p if p.is_final() => return Ok(stop("cancelled", &format!("the migration is {p}"))),
        _ => {}
    }
    if m.plan.backfill.is_some() && !m.phase.backfill_done() {
        let step = as_owner_of(name, || backfill::loop_step(name, None, "worker"))?;
        return Ok(match step {
            Step::Batch(_) => Action::Continue {
                delay_ms: m.settings.effective().batch_delay_ms.max(0) as u64,
            },
            Step::Wait { reason, ms } => Action::Sleep {
                ms: ms.max(10) as u64,
                why: reason,
            },
            Step::Paused => Action::Sleep {
                ms: PAUSED_POLL_MS,
                why: "paused".into(),
            },
            Step::Done => Action::Continue { delay_ms: 0 },
            Step::Gone(p) => stop("cancelled", &format!("the migration is {p}")),
        });
    }
    if !progress.backfill_ended {
        // As the CALL's loop does at its end: a shadow's late notes settled,
        // its pg_cron jobs parked.
        backfill_control::ended(name)?;
        progress.backfill_ended = true;
        return Ok(Action::Continue { delay_ms: 0 });
    }
    if let Some((_, statement)) = crate::toplevel::pending(Some(name))?.into_iter().next() {
        return Ok(Action::TopLevel(statement));
    }
    if crate::toplevel::require_built(&m).is_err() {
        return Ok(Action::Sleep {
            ms: 1000,
            why: "an index of the migration is being built by another session".into(),
        });
    }
    if m.plan.shadow.is_some() && r.through == Through::Swap {
        if m.phase == Phase::Backfilled {
            let verified = crate::migrations::store::shadow_state(name)?
                .get("verify")
                .is_some_and(|v| v.get("backfilled") == Some(&serde_json::json!(true)));
            if !verified {
                as_owner_of(name, || crate::shadow::verify::verify(name, false))?;
                return Ok(Action::Continue { delay_ms: 0 });
            }
            let policy = crate::shadow::swap::policy(None, None)?;
            crate::shadow::swap::swap(name, &policy)?;
            return Ok(Action::Continue { delay_ms: 0 });
        }
        return Ok(stop("done", "swapped: ready to complete"));
    }
    let why = if m.plan.shadow.is_some() {
        "backfilled: ready to verify and swap"
    } else {
        "ready to complete"
    };
    Ok(stop("done", why))
}

fn stop(state: &'static str, why: &str) -> Action {
    Action::Stop {
        state,
        why: why.to_string(),
    }
}
