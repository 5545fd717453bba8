//! A call that acts on one migration: may the caller act on it, with whose
//! rights its statements run, and whether the call has anything left to do.
//! The rules themselves (who owns a table, how rights are switched) are in
//! `privilege`; this is where a migration's row meets them.

use crate::error::{ZdmError, ZdmResult};
use crate::ident::Literal;
use crate::migrations::{store, Phase};
use crate::privilege::{as_table_owner, require_table_owner};

/// Load a migration for a call that acts on it: 42704 when unknown, 42501
/// unless the caller may act for its table's owner (see `privilege`).
pub fn authorized(name: &str) -> ZdmResult<store::MigrationRow> {
    let m = store::get(name)?;
    require_table_owner(&m.table_name, Some(&m.created_by))?;
    Ok(m)
}

/// Run `f` for an authorized migration, with the rights of its table's owner.
pub fn as_owner_of<R>(name: &str, f: impl FnOnce() -> ZdmResult<R>) -> ZdmResult<R> {
    let m = authorized(name)?;
    as_table_owner(&m.table_name, f).map_err(|e| table_gone(&m, e))?
}

/// The table of `m` is gone (`e`: 42P01): an active migration can still be
/// abandoned by rollback; a finished one (abandoned with its table) has
/// nothing left to do, which is a phase error, not a missing table.
fn table_gone(m: &store::MigrationRow, e: ZdmError) -> ZdmError {
    let name = Literal::new(&m.name);
    if m.phase.is_final() {
        return ZdmError::wrong_state(format!(
            "migration {name} is {}; its table {} is gone",
            m.phase, m.table_name
        ))
        .hint("Nothing is left to do on it; start a new migration if a table of that name needs the change.");
    }
    e.hint(format!(
        "The table of this migration was dropped: SELECT zdm.rollback({name}); abandons the migration and removes what pg_zdm made for it."
    ))
}

/// A call that asks for the phase the migration is already in (rollback of a
/// rolled-back one, complete of a completed one): a no-op, said with a NOTICE.
pub fn already_in(m: &store::MigrationRow, phase: Phase) -> bool {
    if m.phase != phase {
        return false;
    }
    pgrx::notice!(
        "pg_zdm: migration {} is already {phase}; nothing to do",
        Literal::new(&m.name)
    );
    true
}
