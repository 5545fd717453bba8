//! Operations: one module per kind of change, each implementing [`Operation`].
//!
//! An operation is built from its spec and the introspected table (checking
//! everything it can before anything is created), then turned into a [`Plan`]:
//! the SQL of every phase. Building and planning are pure; `api` runs the plans.

pub mod add_column;
pub mod alter_column_type;
pub mod carry;
pub mod column_copy;
pub mod column_default;
pub mod constraints;
pub mod drop_column;
pub mod drop_constraint;
pub mod drop_index;
pub mod drop_not_null;
pub mod indexes;
pub mod key_type;
pub mod named_constraint;
pub mod partitioned;
pub mod rename_column;
pub mod rename_constraint;
pub mod replica_identity;
pub mod set_comment;
pub mod set_not_null;
pub mod shadow_table;
pub mod shared;

use crate::catalog::TableInfo;
use crate::error::{ZdmError, ZdmResult};
use crate::ident::{Ident, QualifiedName};
use crate::plan::Plan;
use crate::spec::OperationSpec;
use pgrx::pg_sys::errcodes::PgSqlErrorCode;

/// Longest migration name: generated objects are named after it and must stay
/// within PostgreSQL's 63-byte identifier limit.
pub const MAX_MIGRATION_NAME: usize = 48;

/// PostgreSQL's identifier limit (NAMEDATALEN - 1): it silently truncates
/// longer names, so two long ones sharing their first 63 bytes would collide.
pub const MAX_IDENTIFIER: usize = 63;

/// Names of the objects a migration creates, derived from its name.
pub struct PlanContext {
    pub migration: String,
    /// Quotes a name the way the server does (`Ident::new` in the backend).
    pub quote: fn(&str) -> Ident,
}

impl PlanContext {
    /// `zdm.<prefix>_<migration>`: functions pg_zdm generates live in schema zdm.
    pub fn function_name(&self, prefix: &str) -> QualifiedName {
        QualifiedName::new(
            (self.quote)("zdm"),
            (self.quote)(&generated_name(prefix, &self.migration)),
        )
    }

    /// `zdm_<prefix>_<migration>`: triggers, constraints, indexes and tables
    /// (shadow, old, notes) in the user's schema.
    pub fn object_name(&self, prefix: &str) -> Ident {
        (self.quote)(&generated_name(&format!("zdm_{prefix}"), &self.migration))
    }
}

/// One kind of schema change.
pub trait Operation {
    /// Columns of the table this operation claims; a second active migration
    /// claiming any of them is refused.
    fn claimed_columns(&self) -> Vec<String>;
    /// A readable default migration name, e.g. `users_rename_name_to_full_name`.
    fn default_name(&self) -> String;
    /// The SQL of every phase.
    fn plan(&self, ctx: &PlanContext) -> ZdmResult<Plan>;
}

/// Build the operation a spec asks for, checking it against the table.
pub fn build(
    spec: &OperationSpec,
    table: &TableInfo,
    lookup: &dyn crate::catalog::Lookup,
    quote: fn(&str) -> Ident,
) -> ZdmResult<Box<dyn Operation>> {
    partitioned::refuse(spec, table)?;
    match spec {
        OperationSpec::AddColumn(a) => Ok(Box::new(add_column::AddColumn::new(table, a, quote)?)),
        OperationSpec::SetNotNull(a) => Ok(Box::new(set_not_null::SetNotNull::new(table, a)?)),
        OperationSpec::DropColumn(a) => Ok(Box::new(drop_column::DropColumn::new(table, a)?)),
        OperationSpec::AddCheck(a) => Ok(Box::new(constraints::AddCheck::new(table, a, quote)?)),
        OperationSpec::AddForeignKey(a) => Ok(Box::new(constraints::AddForeignKey::new(table, a, lookup, quote)?)),
        OperationSpec::AddUnique(a) => Ok(Box::new(indexes::CreateIndex::unique(table, a, lookup, quote)?)),
        OperationSpec::CreateIndex(a) => Ok(Box::new(indexes::CreateIndex::new(table, a, lookup, quote)?)),
        OperationSpec::AlterColumnType(a) => Ok(Box::new(alter_column_type::AlterColumnType::new(
            table, a, lookup, quote,
        )?)),
        OperationSpec::CreateShadowTable(a) => Ok(Box::new(shadow_table::ShadowTable::new(
            table,
            a,
            crate::shadow::probe::probe,
        )?)),
        OperationSpec::SetDefault(a) => Ok(Box::new(column_default::ColumnDefault::set(table, a)?)),
        OperationSpec::DropDefault(a) => Ok(Box::new(column_default::ColumnDefault::drop(table, a)?)),
        OperationSpec::DropNotNull(a) => Ok(Box::new(drop_not_null::DropNotNull::new(table, a)?)),
        OperationSpec::SetComment(a) => Ok(Box::new(set_comment::SetComment::new(table, a)?)),
        OperationSpec::RenameConstraint(a) => Ok(Box::new(rename_constraint::RenameConstraint::new(
            table, a, lookup, quote,
        )?)),
        OperationSpec::SetReplicaIdentity(a) => Ok(Box::new(replica_identity::SetReplicaIdentity::new(table, a)?)),
        OperationSpec::DropConstraint(a) => Ok(Box::new(drop_constraint::DropConstraint::new(table, a, quote)?)),
        OperationSpec::DropIndex(a) => Ok(Box::new(drop_index::DropIndex::new(table, a)?)),
        OperationSpec::RenameColumn(a) => Ok(Box::new(rename_column::RenameColumn::new(
            table,
            &a.column,
            &a.new_name,
            quote,
            crate::expr::replace_column,
        )?)),
    }
}

/// Check a user-chosen migration name.
pub fn check_migration_name(name: &str) -> ZdmResult<()> {
    // The name is shown in hints, messages and generated code: a newline in
    // it would forge lines there (NUL included: the server cannot store it).
    if let Some(c) = name.chars().find(|&c| crate::ident::is_control(c)) {
        return Err(ZdmError::new(
            PgSqlErrorCode::ERRCODE_INVALID_NAME,
            format!(
                "migration name \"{}\" contains a control character ({})",
                crate::ident::comment_text(name),
                crate::ident::comment_text(&c.to_string())
            ),
        )
        .hint("Use printable characters only: no newline, tab or other control character."));
    }
    if name.is_empty() || name.len() > MAX_MIGRATION_NAME {
        return Err(ZdmError::new(
            PgSqlErrorCode::ERRCODE_INVALID_NAME,
            format!("migration name \"{name}\" must be 1 to {MAX_MIGRATION_NAME} bytes long"),
        )
        .hint("Objects pg_zdm creates are named after the migration and must fit in 63 bytes."));
    }
    Ok(())
}

/// Shorten a default migration name to the limit, keeping it unique with a hash suffix.
pub fn fit_name(name: &str) -> String {
    fit_to(name, MAX_MIGRATION_NAME)
}

/// The name of an object a migration creates: `<prefix>_<migration>`, fitted
/// to PostgreSQL's identifier limit. Every generated name goes through here,
/// so each fits and stays unique per migration (the hash is of the full name).
pub fn generated_name(prefix: &str, migration: &str) -> String {
    fit_to(&format!("{prefix}_{migration}"), MAX_IDENTIFIER)
}

/// `name` if it fits in `limit` bytes; otherwise cut at a char boundary and
/// suffixed with `_` and the FNV-1a hash of the whole name (stable across
/// builds, which std's hasher is not), `limit` bytes at most.
fn fit_to(name: &str, limit: usize) -> String {
    if name.len() <= limit {
        return name.to_string();
    }
    let mut h: u32 = 0x811c9dc5;
    for b in name.bytes() {
        h ^= b as u32;
        h = h.wrapping_mul(0x01000193);
    }
    let mut cut = limit - 9;
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}_{h:08x}", &name[..cut])
}

/// Cut a name so that `room` more bytes still fit in the limit.
pub fn fit_name_with_room(name: &str, room: usize) -> &str {
    let mut cut = name.len().min(MAX_MIGRATION_NAME - room);
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    &name[..cut]
}

/// Check a new column name: valid length and not already taken.
pub fn check_new_column_name(table: &TableInfo, new_name: &str) -> ZdmResult<()> {
    if new_name.is_empty() || new_name.len() > 63 {
        return Err(ZdmError::new(
            PgSqlErrorCode::ERRCODE_INVALID_NAME,
            format!("column name \"{new_name}\" must be 1 to 63 bytes long"),
        )
        .hint("PostgreSQL truncates longer names; choose a shorter one."));
    }
    if table.column(new_name).is_some() {
        return Err(ZdmError::new(
            PgSqlErrorCode::ERRCODE_DUPLICATE_COLUMN,
            format!(
                "column \"{new_name}\" of relation \"{}\" already exists",
                table.name.display_raw()
            ),
        )
        .hint("Choose another name, or drop the existing column first."));
    }
    Ok(())
}

/// Find a column or refuse with 42703 naming the table.
pub fn require_column<'t>(table: &'t TableInfo, column: &str) -> ZdmResult<&'t crate::catalog::ColumnInfo> {
    table.column(column).ok_or_else(|| {
        ZdmError::new(
            PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN,
            format!(
                "column \"{column}\" of relation \"{}\" does not exist",
                table.name.display_raw()
            ),
        )
        .hint(format!(
            "Columns are: {}.",
            table
                .columns
                .iter()
                .map(|c| c.name.raw())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })
}

/// Find an index of the table or refuse with 42704 naming the table.
pub fn require_index<'t>(table: &'t TableInfo, index: &str) -> ZdmResult<&'t crate::catalog::IndexInfo> {
    table.indexes.iter().find(|i| i.name.raw() == index).ok_or_else(|| {
        let names: Vec<&str> = table.indexes.iter().map(|i| i.name.raw()).collect();
        ZdmError::new(
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            format!(
                "index \"{index}\" of relation \"{}\" does not exist",
                table.name.display_raw()
            ),
        )
        .hint(if names.is_empty() {
            "The table has no index.".to_string()
        } else {
            format!("Its indexes are: {}.", names.join(", "))
        })
    })
}

/// Refuse a table without a key to walk in batches.
pub fn require_key(table: &TableInfo) -> ZdmResult<&crate::catalog::KeyInfo> {
    table.key.as_ref().ok_or_else(|| {
        ZdmError::wrong_state(format!(
            "table \"{}\" has no primary key and no unique index on NOT NULL columns",
            table.name.display_raw()
        ))
        .hint("pg_zdm backfills in key order. Add a primary key first (CREATE UNIQUE INDEX CONCURRENTLY, then ADD PRIMARY KEY USING INDEX).")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_names_are_shortened_stably() {
        let long = "a".repeat(80);
        let a = fit_name(&long);
        assert_eq!(a.len(), MAX_MIGRATION_NAME);
        assert_eq!(a, fit_name(&long));
        assert_ne!(a, fit_name(&"a".repeat(81)));
        assert_eq!(fit_name("short"), "short");
        let unicode = "é".repeat(40);
        assert!(fit_name(&unicode).len() <= MAX_MIGRATION_NAME);
    }

    /// Every prefix pg_zdm names objects with (`function_name` / `object_name`).
    const PREFIXES: [&str; 16] = [
        "shadow_sync",
        "shadow_settle",
        "shadow_reverse",
        "shadow_truncate",
        "shadow_reverse_truncate",
        "shadow_beyond",
        "fill",
        "backfill",
        "sync",
        "zdm_reverse_truncate",
        "zdm_sync_ins",
        "zdm_shadow",
        "zdm_old",
        "zdm_stale",
        "zdm_fk12",
        "zdm_ix12",
    ];

    #[test]
    fn generated_names_fit_and_stay_apart() {
        let m = "m".repeat(MAX_MIGRATION_NAME);
        let other = format!("{}n", "m".repeat(MAX_MIGRATION_NAME - 1));
        for prefix in PREFIXES {
            let (a, b) = (generated_name(prefix, &m), generated_name(prefix, &other));
            assert!(a.len() <= MAX_IDENTIFIER && b.len() <= MAX_IDENTIFIER, "{a} {b}");
            assert_ne!(a, b, "{prefix}");
            assert!(a.starts_with(&format!("{prefix}_m")), "{a}");
        }
        // Short enough: unchanged, so existing names stay what they were.
        assert_eq!(generated_name("shadow_sync", "m1"), "shadow_sync_m1");
        let long = generated_name("shadow_reverse_truncate", &m);
        assert_eq!(long.len(), MAX_IDENTIFIER);
        assert_eq!(long, generated_name("shadow_reverse_truncate", &m));
        assert!(long.starts_with("shadow_reverse_truncate_mmm"));
        // A multi-byte name is cut at a char boundary.
        let e = generated_name("zdm_reverse_truncate", &"é".repeat(24));
        assert!(e.len() <= MAX_IDENTIFIER, "{e}");
    }

    #[test]
    fn context_names_fit() {
        let ctx = PlanContext {
            migration: "m".repeat(MAX_MIGRATION_NAME),
            quote: Ident::test,
        };
        assert_eq!(ctx.function_name("shadow_reverse_truncate").schema.raw(), "zdm");
        assert!(ctx.function_name("shadow_reverse_truncate").name.raw().len() <= MAX_IDENTIFIER);
        assert!(ctx.object_name("reverse_truncate").raw().len() <= MAX_IDENTIFIER);
        assert!(ctx
            .object_name("reverse_truncate")
            .raw()
            .starts_with("zdm_reverse_truncate_m"));
    }

    #[test]
    fn migration_names_are_bounded() {
        assert!(check_migration_name("ok").is_ok());
        assert_eq!(check_migration_name("").unwrap_err().sqlstate(), "42602");
        assert_eq!(check_migration_name(&"x".repeat(49)).unwrap_err().sqlstate(), "42602");
    }

    #[test]
    fn migration_names_have_no_control_characters() {
        assert!(check_migration_name("it's a \\ name é").is_ok());
        for bad in ["a\nb", "a\rb", "a\tb", "a\0b", "a\u{7f}b", "a\u{85}b", "a\u{2028}b"] {
            let e = check_migration_name(bad).unwrap_err();
            assert_eq!(e.sqlstate(), "42602", "{bad:?}");
            assert!(e.hint.is_some());
        }
        let e = check_migration_name("x\nDECLARE").unwrap_err();
        assert_eq!(
            e.message,
            "migration name \"x\\nDECLARE\" contains a control character (\\n)"
        );
    }
}
