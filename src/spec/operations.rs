//! The arguments of each operation, as the spec gives them.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShadowTableSpec {
    pub table: String,
    /// `ALTER TABLE` actions applied to the shadow: `ALTER COLUMN amount TYPE numeric(10,2)`.
    #[serde(default)]
    pub alterations: Vec<String>,
    /// Shadow column → SQL expression over the original row that fills it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column_map: Option<std::collections::BTreeMap<String, String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddColumnSpec {
    pub table: String,
    pub column: String,
    #[serde(rename = "type")]
    pub col_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    #[serde(default)]
    pub not_null: bool,
    /// Value for existing rows and rows inserted without the column until
    /// complete (default: the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fill_expr: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetNotNullSpec {
    pub table: String,
    pub column: String,
    /// Value for rows where the column is NULL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fill_expr: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DropColumnSpec {
    pub table: String,
    pub column: String,
    /// Value for rows the new application writes without the column, when it is NOT NULL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub down_expr: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddCheckSpec {
    pub table: String,
    pub constraint: String,
    pub check: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddForeignKeySpec {
    pub table: String,
    pub constraint: String,
    pub columns: Vec<String>,
    pub references: String,
    pub referenced_columns: Vec<String>,
    #[serde(default = "no_action")]
    pub on_delete: String,
}

fn no_action() -> String {
    "NO ACTION".to_string()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddUniqueSpec {
    pub table: String,
    pub constraint: String,
    pub columns: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateIndexSpec {
    pub table: String,
    pub index: String,
    /// What follows `ON table` in CREATE INDEX: `USING btree (email) WHERE deleted_at IS NULL`.
    pub definition: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlterColumnTypeSpec {
    pub table: String,
    pub column: String,
    pub new_type: String,
    /// New value from the row, where the column's name is its old value
    /// (default: a cast of the column).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub up_expr: Option<String>,
    /// Old value from the row, where the column's name (or `new_column`) is
    /// its NEW value (default: a cast back).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub down_expr: Option<String>,
    /// Name of the new-type column while both exist (default `<column>_new`):
    /// what the new application writes until complete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_column: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenameColumnSpec {
    /// The table, as regclass text (`public.users`, `"My Schema"."My Table"`).
    pub table: String,
    pub column: String,
    pub new_name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DropIndexSpec {
    pub table: String,
    /// An index of the table (raw name, in the table's schema).
    pub index: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetDefaultSpec {
    pub table: String,
    pub column: String,
    /// An SQL expression (no column reference; volatile allowed).
    pub default: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DropDefaultSpec {
    pub table: String,
    pub column: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DropNotNullSpec {
    pub table: String,
    pub column: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetCommentSpec {
    pub table: String,
    /// The column whose comment changes; none: the table's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// The new comment; null (or absent) removes it.
    pub comment: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenameConstraintSpec {
    pub table: String,
    pub constraint: String,
    pub new_name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetReplicaIdentitySpec {
    pub table: String,
    /// `default`, `full`, `nothing`, or `index` (with `index`).
    pub identity: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DropConstraintSpec {
    pub table: String,
    pub constraint: String,
}

/// The claim of a migration on every column of its table (shadow tables):
/// conflicts with any other active migration of the table.
pub const WHOLE_TABLE: &str = "*";

/// Every `op` value pg_zdm knows, for error hints.
pub const KNOWN_OPS: &[&str] = &[
    "rename_column",
    "alter_column_type",
    "add_column",
    "set_not_null",
    "drop_column",
    "add_check",
    "add_foreign_key",
    "add_unique",
    "create_index",
    "create_shadow_table",
    "drop_index",
    "set_default",
    "drop_default",
    "drop_not_null",
    "set_comment",
    "rename_constraint",
    "set_replica_identity",
    "drop_constraint",
];
