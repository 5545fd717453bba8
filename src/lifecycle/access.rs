//! A call that acts on one migration: may the caller act on it, with whose
//! rights its statements run, and whether the call has anything left to do.
//! The rules themselves (who owns a table, how rights are switched) are in
//! `privilege`; this is where a migration's row meets them.

use crate::error::ZdmResult;
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
    as_table_owner(&m.table_name, f).map_err(|e| {
        e.hint(format!(
            "The table of this migration was dropped: SELECT zdm.rollback({}); abandons the migration and removes what pg_zdm made for it.",
            Literal::new(name)
        ))
    })?
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
