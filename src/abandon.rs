//! A migration whose table was dropped ends `abandoned`: what pg_zdm made for
//! it outside the table (generated functions, the shadow, the table of noted
//! keys, the old table after a swap) is dropped, its pg_cron job removed, and
//! its name and columns are free again.
//!
//! Reached from the DDL guard when a migration's table is dropped (inside the
//! DROP's own transaction), or from `zdm.rollback` of a migration whose table
//! is gone (dropped while the guard was disabled). The clean-up statements run
//! with the caller's rights (whoever could drop the table owns these objects)
//! and without CASCADE (but for the old table's foreign keys, see
//! `drop_old_table_with_its_foreign_keys`): an object something else still
//! depends on stops the whole thing, with PostgreSQL's own message.

use crate::error::{spi_err, ZdmError, ZdmResult};
use crate::ident::Literal;
use crate::migrations::{store, Phase};
use crate::plan::Step;
use crate::session::{caught_message, caught_sqlstate, get_optional, in_subtransaction};
use pgrx::pg_sys::errcodes::PgSqlErrorCode;
use serde_json::json;

/// Abandon `name` if its table is gone; 55000 while the table exists.
pub fn abandon_if_dropped(name: &str) -> ZdmResult<()> {
    let m = store::get_for_update(name)?;
    if m.phase.is_final() {
        return Ok(());
    }
    if crate::privilege::table_owner(&m.table_name)?.is_some() {
        return Err(ZdmError::wrong_state(format!(
            "the table {} of migration {} still exists",
            m.table_name,
            Literal::new(name)
        ))
        .hint(format!("Use SELECT zdm.rollback({});", Literal::new(name))));
    }
    if let Some(old) = m
        .plan
        .shadow
        .as_ref()
        .map(|sp| sp.old.as_str())
        .filter(|_| m.phase == Phase::Swapped)
    {
        drop_old_table_with_its_foreign_keys(old)?;
    }
    let skipped = run_cleanup(cleanup_steps(&m))?;
    crate::scheduler::unschedule(name)?;
    pgrx::notice!(
        "pg_zdm: the table of migration {} was dropped; the migration is abandoned and what pg_zdm made for it is removed",
        Literal::new(name)
    );
    store::move_phase(
        &m,
        Phase::Abandoned,
        "abandoned",
        Some(json!({ "table": m.table_name, "skipped": skipped })),
    )
}

/// After a swap, other tables' foreign keys still reference the old table
/// (kept for a swap back); the new table's twins went with the dropped table
/// (`DROP TABLE ... CASCADE`). When nothing but such foreign keys depends on
/// the old table, it is dropped with them, as that CASCADE would have done
/// without pg_zdm; anything else depending on it stops the abandon.
fn drop_old_table_with_its_foreign_keys(old: &str) -> ZdmResult<()> {
    let only_foreign_keys = get_optional::<bool>(
        "SELECT pg_catalog.bool_and(d.classid = 'pg_catalog.pg_constraint'::pg_catalog.regclass
                                    AND c.contype = 'f')
           FROM pg_catalog.pg_depend d
           LEFT JOIN pg_catalog.pg_constraint c ON c.oid = d.objid
          WHERE d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
            AND d.refobjid = pg_catalog.to_regclass($1) AND d.deptype = 'n'",
        &[old.into()],
    )
    .map_err(spi_err)?;
    if only_foreign_keys == Some(true) {
        crate::executor::run_statement(&format!("DROP TABLE IF EXISTS {old} CASCADE"));
    }
    Ok(())
}

/// After a swap the migration's table is the former shadow: complete's steps
/// drop the old table and the functions. Before, rollback's steps drop the
/// shadow and the functions. Steps on the dropped table itself fail as missing.
fn cleanup_steps(m: &store::MigrationRow) -> &[Step] {
    if m.phase == Phase::Swapped {
        &m.plan.complete
    } else {
        &m.plan.rollback
    }
}

/// Run each step in a subtransaction of its own; a step on an object that
/// went with the table (42P01, 42704) is skipped and reported, any other
/// error stops the abandon. Top-level steps (index builds) are moot.
fn run_cleanup(steps: &[Step]) -> ZdmResult<Vec<String>> {
    let mut skipped = Vec::new();
    for step in steps.iter().filter(|s| !s.top_level) {
        if let Err(e) = in_subtransaction(|| crate::executor::run_statement(&step.sql)) {
            match caught_sqlstate(&e) {
                Some(PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE | PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT) => {
                    skipped.push(format!("{}: {}", step.description, caught_message(&e)))
                }
                code => {
                    return Err(ZdmError::new(
                        code.unwrap_or(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR),
                        format!(
                            "pg_zdm could not remove what it made for the dropped table: {}",
                            caught_message(&e)
                        ),
                    )
                    .detail(format!("While trying to {}: {}", step.description, step.sql))
                    .hint("Nothing was changed. Drop or detach the object that depends on it, then try again."))
                }
            }
        }
    }
    Ok(skipped)
}
