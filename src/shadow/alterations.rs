//! The `alterations` of `zdm.create_shadow_table`: `ALTER TABLE` actions for the
//! shadow, checked with PostgreSQL's raw parser before anything is created.
//!
//! Each one is parsed as `ALTER TABLE zdm_probe <action>`: it must be exactly
//! one statement, and every action in it one of the kinds below. The text is
//! later run as `ALTER TABLE <shadow> <action>`, the same tokens that were parsed.
//!
//! Refused, with the better way in the hint:
//! - constraints (ADD CONSTRAINT, inline CHECK/UNIQUE/REFERENCES, SET NOT NULL):
//!   on the shadow they would make the sync trigger, hence the application's
//!   own writes, fail on a row that breaks them; add them after the swap with
//!   zdm.add_check / add_unique / add_foreign_key / set_not_null, which validate
//!   without blocking;
//! - `ALTER COLUMN ... TYPE ... USING expr`: the expression goes in `column_map`,
//!   where it also serves the sync trigger;
//! - anything that is not about the table's columns (RENAME TO, OWNER, SET SCHEMA...).

use crate::error::{ZdmError, ZdmResult};
use crate::session::{caught_message, caught_sqlstate, in_subtransaction};
use pgrx::pg_sys;
use pgrx::pg_sys::errcodes::PgSqlErrorCode;
use std::ffi::CString;

const PREFIX: &str = "ALTER TABLE zdm_probe ";

/// Why an alteration is refused: None when it is acceptable.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Ok,
    NotOneStatement,
    NotAlterTable,
    Using,
    Constraint,
    Other(String),
}

/// Check every alteration; returns them trimmed, in order.
pub fn check_all(alterations: &[String]) -> ZdmResult<Vec<String>> {
    alterations
        .iter()
        .enumerate()
        .map(|(i, a)| check_one(i + 1, a))
        .collect()
}

fn check_one(position: usize, text: &str) -> ZdmResult<String> {
    let text = text.trim().trim_end_matches(';').trim_end().to_string();
    let name = format!("alteration {position} \"{text}\"");
    if text.is_empty() || text.contains('\0') {
        return Err(ZdmError::invalid_parameter(format!("{name} is empty"))
            .hint("Give an ALTER TABLE action without ALTER TABLE, e.g. 'ALTER COLUMN amount TYPE numeric(10,2)'."));
    }
    let sql = format!("{PREFIX}{text}");
    let verdict = in_subtransaction(|| unsafe { classify(&sql) }).map_err(|e| {
        ZdmError::new(
            caught_sqlstate(&e).unwrap_or(PgSqlErrorCode::ERRCODE_SYNTAX_ERROR),
            format!("{name}: {}", caught_message(&e)),
        )
        .hint("Give an ALTER TABLE action without ALTER TABLE, e.g. 'ADD COLUMN currency varchar(3) NOT NULL DEFAULT ''EUR'''.")
    })?;
    let refuse = |code, message: String, hint: &str| Err(ZdmError::new(code, message).hint(hint.to_string()));
    match verdict {
        Verdict::Ok => Ok(text),
        Verdict::NotOneStatement => refuse(
            PgSqlErrorCode::ERRCODE_SYNTAX_ERROR,
            format!("{name} is not a single ALTER TABLE action"),
            "One action per array element (or several separated by commas), and nothing after it.",
        ),
        Verdict::NotAlterTable => refuse(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!("{name} does not change the table's columns"),
            "Alterations may ADD/DROP/RENAME COLUMN and ALTER COLUMN TYPE / SET or DROP DEFAULT / DROP NOT NULL / SET STORAGE / SET STATISTICS.",
        ),
        Verdict::Using => refuse(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!("{name} has a USING clause"),
            "Put the conversion in column_map instead, e.g. {\"amount\": \"amount / 100.0\"}: the sync trigger uses it too.",
        ),
        Verdict::Constraint => refuse(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!("{name} adds a constraint to the shadow table"),
            "A constraint on the shadow would make the application's writes fail through the sync trigger on a row that breaks it. \
             Add it after the swap with zdm.add_check(), zdm.add_unique(), zdm.add_foreign_key() or zdm.set_not_null(), which validate without blocking.",
        ),
        Verdict::Other(what) => refuse(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!("{name}: {what} is not supported on a shadow table"),
            "Alterations may ADD/DROP/RENAME COLUMN and ALTER COLUMN TYPE / SET or DROP DEFAULT / DROP NOT NULL / SET STORAGE / SET STATISTICS.",
        ),
    }
}

unsafe fn classify(sql: &str) -> Verdict {
    let c = CString::new(sql).unwrap();
    let list = pg_sys::raw_parser(c.as_ptr(), pg_sys::RawParseMode::RAW_PARSE_DEFAULT);
    if list.is_null() || (*list).length != 1 {
        return Verdict::NotOneStatement;
    }
    let raw = (*(*list).elements).ptr_value as *mut pg_sys::RawStmt;
    let stmt = (*raw).stmt;
    match (*stmt).type_ {
        pg_sys::NodeTag::T_RenameStmt => {
            let r = &*(stmt as *mut pg_sys::RenameStmt);
            if r.renameType == pg_sys::ObjectType::OBJECT_COLUMN {
                Verdict::Ok
            } else {
                Verdict::Other("renaming anything but a column".into())
            }
        }
        pg_sys::NodeTag::T_AlterTableStmt => {
            let a = &*(stmt as *mut pg_sys::AlterTableStmt);
            if a.cmds.is_null() {
                return Verdict::NotAlterTable;
            }
            for i in 0..(*a.cmds).length {
                let cmd = &*((*(*a.cmds).elements.add(i as usize)).ptr_value as *mut pg_sys::AlterTableCmd);
                let v = classify_cmd(cmd);
                if v != Verdict::Ok {
                    return v;
                }
            }
            Verdict::Ok
        }
        _ => Verdict::NotAlterTable,
    }
}

unsafe fn classify_cmd(cmd: &pg_sys::AlterTableCmd) -> Verdict {
    use pg_sys::AlterTableType as T;
    match cmd.subtype {
        T::AT_AddColumn => column_def_verdict(cmd.def as *mut pg_sys::ColumnDef),
        T::AT_AlterColumnType => {
            let def = cmd.def as *mut pg_sys::ColumnDef;
            if !def.is_null() && !(*def).raw_default.is_null() {
                Verdict::Using
            } else {
                Verdict::Ok
            }
        }
        T::AT_DropColumn
        | T::AT_ColumnDefault
        | T::AT_DropNotNull
        | T::AT_SetStatistics
        | T::AT_SetStorage
        | T::AT_SetCompression
        | T::AT_SetOptions
        | T::AT_ResetOptions
        | T::AT_DropConstraint
        | T::AT_SetRelOptions
        | T::AT_ResetRelOptions => Verdict::Ok,
        T::AT_AddConstraint | T::AT_SetNotNull => Verdict::Constraint,
        other => Verdict::Other(format!("ALTER TABLE action #{other}")),
    }
}

unsafe fn column_def_verdict(def: *mut pg_sys::ColumnDef) -> Verdict {
    if def.is_null() || (*def).constraints.is_null() {
        return Verdict::Ok;
    }
    let list = (*def).constraints;
    for i in 0..(*list).length {
        let c = &*((*(*list).elements.add(i as usize)).ptr_value as *mut pg_sys::Constraint);
        use pg_sys::ConstrType as C;
        match c.contype {
            C::CONSTR_CHECK | C::CONSTR_PRIMARY | C::CONSTR_UNIQUE | C::CONSTR_FOREIGN | C::CONSTR_EXCLUSION => {
                return Verdict::Constraint
            }
            _ => {}
        }
    }
    Verdict::Ok
}
