//! The Rust side of the DDL guard (sql/guard.sql): what an `ALTER TABLE`
//! changed, read from the command PostgreSQL collected for event triggers.
//! plpgsql sees only the command's tag and object; the guard needs to know
//! which subcommand touched which column (a type changed under a sync
//! trigger breaks it, a comment does not).

use pgrx::pg_sys;
use pgrx::PgList;
use std::ffi::CStr;

/// One subcommand of an `ALTER TABLE`: the table it acted on (a recursion to
/// a child table is its own subcommand), what it did, and the column it names.
pub struct Subcommand {
    pub relation: pg_sys::Oid,
    pub kind: &'static str,
    pub column: Option<String>,
}

/// The subcommands of a collected `ALTER TABLE`; nothing for any other command.
///
/// # Safety
/// `command` must point to the `CollectedCommand` PostgreSQL passes as a
/// `pg_ddl_command` during a `ddl_command_end` event trigger.
pub unsafe fn alter_table_subcommands(command: *const pg_sys::CollectedCommand) -> Vec<Subcommand> {
    let Some(command) = command.as_ref() else {
        return Vec::new();
    };
    if command.type_ != pg_sys::CollectedCommandType::SCT_AlterTable {
        return Vec::new();
    }
    let at = command.d.alterTable;
    let subcommands = PgList::<pg_sys::CollectedATSubcmd>::from_pg(at.subcmds);
    subcommands
        .iter_ptr()
        .filter_map(|sub| sub.as_ref())
        .filter_map(|sub| (sub.parsetree as *const pg_sys::AlterTableCmd).as_ref())
        .map(|cmd| Subcommand {
            relation: at.objectId,
            kind: kind_of(cmd.subtype),
            column: column_named(cmd),
        })
        .collect()
}

/// The subcommands the guard tells apart; every other one is `other`.
fn kind_of(subtype: pg_sys::AlterTableType::Type) -> &'static str {
    use pg_sys::AlterTableType as At;
    match subtype {
        At::AT_AddColumn | At::AT_AddColumnRecurse => "add column",
        At::AT_AlterColumnType => "alter column type",
        _ => "other",
    }
}

/// The column a subcommand names: `name` for most, the new column's for ADD COLUMN.
unsafe fn column_named(cmd: &pg_sys::AlterTableCmd) -> Option<String> {
    if !cmd.name.is_null() {
        return Some(CStr::from_ptr(cmd.name).to_string_lossy().into_owned());
    }
    let def = cmd.def as *const pg_sys::ColumnDef;
    if !def.is_null() && (*cmd.def).type_ == pg_sys::NodeTag::T_ColumnDef && !(*def).colname.is_null() {
        return Some(CStr::from_ptr((*def).colname).to_string_lossy().into_owned());
    }
    None
}
