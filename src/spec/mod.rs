//! The migration spec: what the user asks for, as JSON, parsed into typed Rust.
//!
//! Two shapes are accepted:
//! - one operation: `{"op": "rename_column", "table": "public.users", "column": "name", "new_name": "full_name"}`
//! - several: `{"name": "users_v2", "operations": [ {...}, {...} ]}`
//!
//! Parse errors name the offending field (`operations[1].new_name: ...`).

mod diff;
mod operations;

pub use diff::differences;
pub use operations::*;

use crate::error::{ZdmError, ZdmResult};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A whole migration: an optional name and one or more operations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MigrationSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub operations: Vec<OperationSpec>,
}

/// One operation. `op` selects the variant; each variant's fields are its arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum OperationSpec {
    /// Rename a column through expand/migrate/contract: a new column kept in
    /// sync with the old one by a trigger until complete drops the old one.
    RenameColumn(RenameColumnSpec),
    /// Change a column's type: a second column of the new type, kept in sync
    /// through up/down expressions, renamed to the old name by complete. A
    /// binary-compatible change is one short ALTER instead.
    AlterColumnType(AlterColumnTypeSpec),
    /// Add a column: catalog-only when its default allows, else nullable,
    /// backfilled, then NOT NULL through a validated check.
    AddColumn(AddColumnSpec),
    /// Make a column NOT NULL: CHECK NOT VALID, fill NULLs, VALIDATE, SET NOT NULL.
    SetNotNull(SetNotNullSpec),
    /// Drop a column: deprecated at start (new-app inserts keep working), dropped by complete.
    DropColumn(DropColumnSpec),
    /// Add a CHECK constraint: NOT VALID at start, VALIDATE at complete.
    AddCheck(AddCheckSpec),
    /// Add a foreign key: NOT VALID at start, VALIDATE at complete.
    AddForeignKey(AddForeignKeySpec),
    /// Add a UNIQUE constraint: unique index built CONCURRENTLY, then USING INDEX.
    AddUnique(AddUniqueSpec),
    /// Create an index CONCURRENTLY (a top-level statement).
    CreateIndex(CreateIndexSpec),
    /// Restructure a whole table: a shadow copy with the new structure, kept in
    /// sync by a trigger, backfilled, verified, then swapped in by `zdm.swap_tables()`.
    CreateShadowTable(ShadowTableSpec),
    /// Drop an index: kept until complete, dropped CONCURRENTLY (a top-level statement).
    DropIndex(DropIndexSpec),
    /// Give a column a new default, at complete (catalog only).
    SetDefault(SetDefaultSpec),
    /// Drop a column's default, at complete (catalog only).
    DropDefault(DropDefaultSpec),
    /// Let a column accept NULL, at start (catalog only).
    DropNotNull(DropNotNullSpec),
    /// Change a table's or a column's comment, at complete.
    SetComment(SetCommentSpec),
    /// Rename a constraint (and its index), at complete.
    RenameConstraint(RenameConstraintSpec),
    /// Change the table's replica identity, at complete (catalog only).
    SetReplicaIdentity(SetReplicaIdentitySpec),
    /// Drop a constraint at complete (the old application stays protected until then).
    DropConstraint(DropConstraintSpec),
}

impl OperationSpec {
    pub fn table(&self) -> &str {
        match self {
            OperationSpec::RenameColumn(a) => &a.table,
            OperationSpec::AlterColumnType(a) => &a.table,
            OperationSpec::AddColumn(a) => &a.table,
            OperationSpec::SetNotNull(a) => &a.table,
            OperationSpec::DropColumn(a) => &a.table,
            OperationSpec::AddCheck(a) => &a.table,
            OperationSpec::AddForeignKey(a) => &a.table,
            OperationSpec::AddUnique(a) => &a.table,
            OperationSpec::CreateIndex(a) => &a.table,
            OperationSpec::CreateShadowTable(a) => &a.table,
            OperationSpec::DropIndex(a) => &a.table,
            OperationSpec::SetDefault(a) => &a.table,
            OperationSpec::DropDefault(a) => &a.table,
            OperationSpec::DropNotNull(a) => &a.table,
            OperationSpec::SetComment(a) => &a.table,
            OperationSpec::RenameConstraint(a) => &a.table,
            OperationSpec::SetReplicaIdentity(a) => &a.table,
            OperationSpec::DropConstraint(a) => &a.table,
        }
    }

    /// Every column the spec names, for the early check against migrations in progress.
    pub fn named_columns(&self) -> Vec<String> {
        match self {
            OperationSpec::RenameColumn(a) => vec![a.column.clone(), a.new_name.clone()],
            OperationSpec::AlterColumnType(a) => {
                vec![
                    a.column.clone(),
                    a.new_column.clone().unwrap_or_else(|| format!("{}_new", a.column)),
                ]
            }
            OperationSpec::AddColumn(a) => vec![a.column.clone()],
            OperationSpec::SetNotNull(a) => vec![a.column.clone()],
            OperationSpec::DropColumn(a) => vec![a.column.clone()],
            OperationSpec::SetDefault(a) => vec![a.column.clone()],
            OperationSpec::DropDefault(a) => vec![a.column.clone()],
            OperationSpec::DropNotNull(a) => vec![a.column.clone()],
            OperationSpec::SetComment(a) => a.column.iter().cloned().collect(),
            OperationSpec::RenameConstraint(_)
            | OperationSpec::SetReplicaIdentity(_)
            | OperationSpec::DropConstraint(_) => vec![],
            OperationSpec::AddCheck(_) | OperationSpec::CreateIndex(_) | OperationSpec::DropIndex(_) => vec![],
            OperationSpec::AddForeignKey(a) => a.columns.clone(),
            OperationSpec::AddUnique(a) => a.columns.clone(),
            // A shadow migration replaces the whole table: it claims every column.
            OperationSpec::CreateShadowTable(_) => vec![WHOLE_TABLE.to_string()],
        }
    }

    /// The operation's name as written in specs (`rename_column`).
    pub fn kind(&self) -> &'static str {
        match self {
            OperationSpec::RenameColumn(_) => "rename_column",
            OperationSpec::AlterColumnType(_) => "alter_column_type",
            OperationSpec::AddColumn(_) => "add_column",
            OperationSpec::SetNotNull(_) => "set_not_null",
            OperationSpec::DropColumn(_) => "drop_column",
            OperationSpec::AddCheck(_) => "add_check",
            OperationSpec::AddForeignKey(_) => "add_foreign_key",
            OperationSpec::AddUnique(_) => "add_unique",
            OperationSpec::CreateIndex(_) => "create_index",
            OperationSpec::CreateShadowTable(_) => "create_shadow_table",
            OperationSpec::DropIndex(_) => "drop_index",
            OperationSpec::SetDefault(_) => "set_default",
            OperationSpec::DropDefault(_) => "drop_default",
            OperationSpec::DropNotNull(_) => "drop_not_null",
            OperationSpec::SetComment(_) => "set_comment",
            OperationSpec::RenameConstraint(_) => "rename_constraint",
            OperationSpec::SetReplicaIdentity(_) => "set_replica_identity",
            OperationSpec::DropConstraint(_) => "drop_constraint",
        }
    }
}

/// Parse a spec from its JSON value, accepting both shapes.
///
/// Parsed by hand one level down (rather than by serde's internally tagged
/// enums, which buffer the content and lose the path) so that an error names
/// the exact field: `operations[1].new_name`.
pub fn parse_spec(value: &Value) -> ZdmResult<MigrationSpec> {
    let obj = value.as_object().ok_or_else(|| {
        ZdmError::invalid_parameter("a migration spec must be a JSON object")
            .hint(r#"Use {"op": "rename_column", ...} or {"name": "...", "operations": [...]}."#)
    })?;
    if obj.contains_key("op") {
        return Ok(MigrationSpec {
            name: None,
            operations: vec![parse_operation(value, "")?],
        });
    }
    let Some(ops) = obj.get("operations") else {
        return Err(ZdmError::invalid_parameter(
            "a migration spec needs either an \"op\" field or an \"operations\" array",
        )
        .hint(
            r#"Example: {"op": "rename_column", "table": "public.users", "column": "name", "new_name": "full_name"}"#,
        ));
    };
    if let Some(extra) = obj.keys().find(|k| *k != "name" && *k != "operations") {
        return Err(bad_field(
            extra,
            "unknown field; a migration has \"name\" and \"operations\"",
        ));
    }
    let name = match obj.get("name") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(bad_field("name", "must be a string")),
    };
    let ops = ops
        .as_array()
        .ok_or_else(|| bad_field("operations", "must be an array"))?;
    if ops.is_empty() {
        return Err(ZdmError::invalid_parameter("field \"operations\" is empty")
            .hint("A migration needs at least one operation."));
    }
    let operations = ops
        .iter()
        .enumerate()
        .map(|(i, op)| parse_operation(op, &format!("operations[{i}]")))
        .collect::<ZdmResult<Vec<_>>>()?;
    Ok(MigrationSpec { name, operations })
}

fn parse_operation(value: &Value, at: &str) -> ZdmResult<OperationSpec> {
    let field = |f: &str| {
        if at.is_empty() {
            f.to_string()
        } else {
            format!("{at}.{f}")
        }
    };
    let obj = value
        .as_object()
        .ok_or_else(|| bad_field(at, "an operation must be a JSON object"))?;
    let op = match obj.get("op") {
        Some(Value::String(s)) => s.as_str(),
        Some(_) => return Err(bad_field(&field("op"), "must be a string")),
        None => return Err(bad_field(&field("op"), "missing")),
    };
    let mut args = obj.clone();
    args.remove("op");
    let args = Value::Object(args);
    match op {
        "rename_column" => Ok(OperationSpec::RenameColumn(from_value_with_path(&args, at)?)),
        "alter_column_type" => Ok(OperationSpec::AlterColumnType(from_value_with_path(&args, at)?)),
        "add_column" => Ok(OperationSpec::AddColumn(from_value_with_path(&args, at)?)),
        "set_not_null" => Ok(OperationSpec::SetNotNull(from_value_with_path(&args, at)?)),
        "drop_column" => Ok(OperationSpec::DropColumn(from_value_with_path(&args, at)?)),
        "add_check" => Ok(OperationSpec::AddCheck(from_value_with_path(&args, at)?)),
        "add_foreign_key" => Ok(OperationSpec::AddForeignKey(from_value_with_path(&args, at)?)),
        "add_unique" => Ok(OperationSpec::AddUnique(from_value_with_path(&args, at)?)),
        "create_index" => Ok(OperationSpec::CreateIndex(from_value_with_path(&args, at)?)),
        "create_shadow_table" => Ok(OperationSpec::CreateShadowTable(from_value_with_path(&args, at)?)),
        "drop_index" => Ok(OperationSpec::DropIndex(from_value_with_path(&args, at)?)),
        "set_default" => Ok(OperationSpec::SetDefault(from_value_with_path(&args, at)?)),
        "drop_default" => Ok(OperationSpec::DropDefault(from_value_with_path(&args, at)?)),
        "drop_not_null" => Ok(OperationSpec::DropNotNull(from_value_with_path(&args, at)?)),
        "set_comment" => Ok(OperationSpec::SetComment(from_value_with_path(&args, at)?)),
        "rename_constraint" => Ok(OperationSpec::RenameConstraint(from_value_with_path(&args, at)?)),
        "set_replica_identity" => Ok(OperationSpec::SetReplicaIdentity(from_value_with_path(&args, at)?)),
        "drop_constraint" => Ok(OperationSpec::DropConstraint(from_value_with_path(&args, at)?)),
        other => Err(bad_field(&field("op"), &format!("unknown operation \"{other}\""))
            .hint(format!("Known operations: {}.", KNOWN_OPS.join(", ")))),
    }
}

fn bad_field(at: &str, what: &str) -> ZdmError {
    ZdmError::invalid_parameter(format!("invalid migration spec at {at}: {what}"))
        .hint("See the README for the fields each operation takes.")
}

fn from_value_with_path<T: for<'de> Deserialize<'de>>(value: &Value, at: &str) -> ZdmResult<T> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let inner = e.path().to_string();
        let path = match (at.is_empty(), inner == ".") {
            (true, true) => "spec".to_string(),
            (true, false) => inner,
            (false, true) => at.to_string(),
            (false, false) => format!("{at}.{inner}"),
        };
        bad_field(&path, &e.inner().to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn single_operation_shape() {
        let s = parse_spec(&json!({"op": "rename_column", "table": "public.users",
                                    "column": "name", "new_name": "full_name"}))
        .unwrap();
        assert_eq!(s.name, None);
        assert_eq!(s.operations.len(), 1);
        assert_eq!(s.operations[0].kind(), "rename_column");
        assert_eq!(s.operations[0].table(), "public.users");
    }

    #[test]
    fn several_operations_shape() {
        let s = parse_spec(&json!({"name": "m1", "operations": [
            {"op": "rename_column", "table": "t", "column": "a", "new_name": "b"}]}))
        .unwrap();
        assert_eq!(s.name.as_deref(), Some("m1"));
    }

    #[test]
    fn errors_point_at_the_bad_field() {
        let e = parse_spec(&json!({"name": "m1", "operations": [
            {"op": "rename_column", "table": "t", "column": "a", "new_name": 3}]}))
        .unwrap_err();
        assert_eq!(e.sqlstate(), "22023");
        assert!(e.message.contains("operations[0].new_name"), "{}", e.message);

        let e = parse_spec(&json!({"op": "rename_column", "table": "t", "column": "a"})).unwrap_err();
        assert!(e.message.contains("new_name"), "{}", e.message);

        let e = parse_spec(&json!({"op": "rename_column", "table": "t", "column": "a",
                                   "new_name": "b", "colour": "red"}))
        .unwrap_err();
        assert!(e.message.contains("colour"), "{}", e.message);

        let e = parse_spec(&json!({"op": "explode", "table": "t"})).unwrap_err();
        assert!(e.message.contains("explode"), "{}", e.message);

        assert!(parse_spec(&json!([1])).is_err());
        assert!(parse_spec(&json!({"operations": []})).is_err());
        assert!(parse_spec(&json!({"table": "t"})).is_err());
    }
}
