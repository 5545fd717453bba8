//! Least privilege: who may act on a migration, and with whose rights each
//! statement pg_zdm runs.
//!
//! - Only a member of a table's owning role, or a superuser, may start or act
//!   on a migration of it ([`require_table_owner`]); others get 42501 and
//!   nothing changes.
//! - Statements that touch the table or may run its code (DDL steps, batches,
//!   settle, verify, validations) run as the table's owner ([`as_table_owner`]),
//!   as PostgreSQL runs VACUUM or CREATE INDEX of another role's table: a
//!   superuser calling pg_zdm never lends its rights to the owner's triggers,
//!   defaults, check or index expressions.
//! - The catalog (`zdm.migrations`, `zdm.events`) and the functions pg_zdm
//!   generates in schema `zdm` are written as the extension's owner
//!   ([`as_catalog_owner`]): nobody else may write there. A generated function
//!   is then handed to the table's owner with EXECUTE revoked from PUBLIC
//!   (`executor`), so a SECURITY DEFINER trigger runs with the rights its
//!   table's owner already has, never more.
//! - Every API call runs its own queries under `search_path = pg_catalog,
//!   pg_temp` ([`api_call`]), whatever the caller's path holds; a table name
//!   given as text is still resolved with the caller's path
//!   ([`with_caller_search_path`]).

use crate::error::{spi_err, ZdmError, ZdmResult};
use crate::session::with_local_settings;
use pgrx::pg_sys;
use pgrx::pg_sys::errcodes::PgSqlErrorCode;
use pgrx::prelude::*;
use std::cell::{Cell, RefCell};

/// The path every API call runs its own queries under: pg_catalog first and
/// pg_temp last, so nothing a caller creates can stand in for a built-in.
pub const FIXED_SEARCH_PATH: &str = "pg_catalog, pg_temp";

thread_local! {
    /// The caller's search_path and role at the outermost API call.
    static CALLER: RefCell<Option<(String, pg_sys::Oid)>> = const { RefCell::new(None) };
    /// True while pg_zdm itself writes its catalog (read by the guard trigger).
    static CATALOG_WRITE: Cell<bool> = const { Cell::new(false) };
}

/// Run one API call: remember who called with which search_path, then run
/// `f` under [`FIXED_SEARCH_PATH`] and `standard_conforming_strings = on`.
pub fn api_call<R>(f: impl FnOnce() -> R) -> R {
    let outermost = CALLER.with(|c| c.borrow().is_none());
    if !outermost {
        return f();
    }
    let path: String = Spi::get_one("SELECT pg_catalog.current_setting('search_path')")
        .ok()
        .flatten()
        .unwrap_or_default();
    let role = unsafe { pg_sys::GetUserId() };
    CALLER.with(|c| *c.borrow_mut() = Some((path, role)));
    let _forget = OnDrop(|| CALLER.with(|c| *c.borrow_mut() = None));
    with_local_settings(
        &[
            ("search_path", FIXED_SEARCH_PATH.to_string()),
            // User text is checked, and generated SQL read back, as PostgreSQL's
            // default reads it: a backslash in a literal means itself.
            ("standard_conforming_strings", "on".to_string()),
        ],
        || {
            crate::runner::resume_once();
            f()
        },
    )
}

/// Run `f` with the caller's own search_path (to resolve names they gave).
pub fn with_caller_search_path<R>(f: impl FnOnce() -> R) -> R {
    match CALLER.with(|c| c.borrow().as_ref().map(|(p, _)| p.clone())) {
        Some(path) => with_local_settings(&[("search_path", path)], f),
        None => f(),
    }
}

/// The role that called the API (the current user outside an API call).
pub fn caller() -> pg_sys::Oid {
    CALLER
        .with(|c| c.borrow().as_ref().map(|(_, r)| *r))
        .unwrap_or_else(|| unsafe { pg_sys::GetUserId() })
}

/// The caller's name, recorded as `created_by` and `by_user` in the catalog.
pub fn caller_name() -> String {
    role_name(caller())
}

fn role_name(role: pg_sys::Oid) -> String {
    Spi::get_one_with_args::<String>("SELECT pg_catalog.pg_get_userbyid($1)::text", &[role.into()])
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// Whether the DDL running now is pg_zdm's own: run inside one of its calls
/// (read by the DDL guard, sql/guard.sql).
pub fn own_ddl_in_progress() -> bool {
    CALLER.with(|c| c.borrow().is_some())
}

/// Whether pg_zdm is writing its catalog right now (see sql/bootstrap.sql).
pub fn catalog_write_in_progress() -> bool {
    CATALOG_WRITE.with(|w| w.get())
}

/// Run `f` with the rights of `role`, in a security-restricted operation (no
/// temporary objects, no SET ROLE), as PostgreSQL does for maintenance of
/// another role's table. Put back on return and on error.
pub fn as_role<R>(role: pg_sys::Oid, f: impl FnOnce() -> R) -> R {
    let (mut user, mut context) = (pg_sys::InvalidOid, 0i32);
    unsafe { pg_sys::GetUserIdAndSecContext(&mut user, &mut context) };
    let flags = (pg_sys::SECURITY_LOCAL_USERID_CHANGE | pg_sys::SECURITY_RESTRICTED_OPERATION) as i32;
    unsafe { pg_sys::SetUserIdAndSecContext(role, context | flags) };
    let _restore = OnDrop(move || unsafe { pg_sys::SetUserIdAndSecContext(user, context) });
    f()
}

/// The role that owns the extension's catalog (the role that created it).
pub fn catalog_owner() -> pg_sys::Oid {
    Spi::get_one::<pg_sys::Oid>(
        "SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) 'zdm.migrations'::pg_catalog.regclass",
    )
    .ok()
    .flatten()
    .expect("zdm.migrations has an owner")
}

/// Run `f` as the catalog's owner, with the guard trigger's permission.
pub fn as_catalog_owner<R>(f: impl FnOnce() -> R) -> R {
    let owner = catalog_owner();
    let before = CATALOG_WRITE.with(|w| w.replace(true));
    let _restore = OnDrop(move || CATALOG_WRITE.with(|w| w.set(before)));
    as_role(owner, f)
}

/// The owner of a table, by name (as stored: schema-qualified and quoted).
/// Read by name (`zdm._table_oid`, sql/guard.sql), not with `to_regclass`,
/// which needs USAGE on the schema: a caller without it gets 42501 from us.
pub fn table_owner(table: &str) -> ZdmResult<Option<pg_sys::Oid>> {
    Spi::get_one_with_args::<pg_sys::Oid>(
        "SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) zdm._table_oid($1)",
        &[table.into()],
    )
    .or_else(|e| match e {
        pgrx::spi::Error::InvalidPosition => Ok(None),
        e => Err(e),
    })
    .map_err(spi_err)
}

/// Run `f` as the owner of `table` (schema-qualified, quoted).
pub fn as_table_owner<R>(table: &str, f: impl FnOnce() -> R) -> ZdmResult<R> {
    match table_owner(table)? {
        Some(owner) => Ok(as_role(owner, f)),
        None => Err(ZdmError::new(
            PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
            format!("relation \"{table}\" does not exist"),
        )
        .hint("The table of this migration was dropped or renamed; zdm.migrations still names it as it was.")),
    }
}

/// 42501 unless the caller may act for the owner of `table`: a member of
/// its owning role (with its privileges) or a superuser. `fallback` is the
/// role to check when the table is gone (the migration's creator).
pub fn require_table_owner(table: &str, fallback: Option<&str>) -> ZdmResult<()> {
    let owner = match table_owner(table)? {
        Some(o) => o,
        None => match fallback {
            Some(role) => match role_oid(role)? {
                Some(o) => o,
                None => return require_superuser(table),
            },
            None => return require_superuser(table),
        },
    };
    let allowed = Spi::get_one_with_args::<bool>(
        "SELECT pg_catalog.pg_has_role($1, $2, 'USAGE')",
        &[caller().into(), owner.into()],
    )
    .map_err(spi_err)?
    .unwrap_or(false);
    if allowed {
        return Ok(());
    }
    Err(ZdmError::new(
        PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
        format!(
            "must be owner of table {table} to migrate it (owner: {})",
            role_name(owner)
        ),
    )
    .detail(format!(
        "Role {} is not a member of role {}.",
        caller_name(),
        role_name(owner)
    ))
    .hint("Only the table's owner (a member of its owning role) or a superuser may start or act on its migrations."))
}

fn role_oid(role: &str) -> ZdmResult<Option<pg_sys::Oid>> {
    Spi::get_one_with_args::<pg_sys::Oid>(
        "SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) $1",
        &[role.into()],
    )
    .or_else(|e| match e {
        pgrx::spi::Error::InvalidPosition => Ok(None),
        e => Err(e),
    })
    .map_err(spi_err)
}

fn require_superuser(table: &str) -> ZdmResult<()> {
    if unsafe { pg_sys::superuser_arg(caller()) } {
        return Ok(());
    }
    Err(ZdmError::new(
        PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
        format!("table {table} no longer exists; only a superuser may act on its migration"),
    )
    .hint("Ask a superuser to roll the migration back."))
}

/// Runs a closure when dropped: on return and while an error unwinds.
struct OnDrop<F: FnMut()>(F);

impl<F: FnMut()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        (self.0)()
    }
}
