//! What the linter understands of a migration's text, as plain data: the
//! statements PostgreSQL's raw parser found (`parse.rs` builds these), with
//! types and default expressions already resolved by the server where it can
//! (`resolve.rs`). Everything after parsing works on these values only.

/// A relation as the statement names it (schema optional, as written).
#[derive(Debug, Clone, PartialEq)]
pub struct RelName {
    pub schema: Option<String>,
    pub name: String,
}

impl RelName {
    pub fn display(&self) -> String {
        match &self.schema {
            Some(s) => format!("{s}.{}", self.name),
            None => self.name.clone(),
        }
    }
}

/// A type as written, and what the server made of it (None: not resolvable
/// now, e.g. created earlier in the same text).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TypeRef {
    /// Last name of the type as written, lower case: `varchar`, `serial`, `int4`.
    pub written: String,
    /// The type modifiers were given (`varchar(20)`, `char(5)`).
    pub has_typmod: bool,
    pub is_array: bool,
    pub resolved: Option<ResolvedType>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedType {
    pub oid: u32,
    pub typmod: i32,
    /// `character varying(40)`, schema-qualified outside pg_catalog.
    pub sql: String,
}

/// A default or generation expression: its text as the server deparses it,
/// and whether it calls a volatile function (None: could not be analysed).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ExprInfo {
    pub text: Option<String>,
    pub volatile: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct ColumnSpec {
    pub name: String,
    pub type_ref: TypeRef,
    pub not_null: bool,
    pub default: Option<ExprInfo>,
    pub identity: bool,
    pub generated_stored: bool,
    /// Inline constraints of the column definition (PRIMARY KEY, REFERENCES...).
    pub constraints: Vec<ConstraintSpec>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ConstraintKind {
    Check {
        expr: Option<String>,
    },
    ForeignKey {
        columns: Vec<String>,
        references: RelName,
        referenced_columns: Vec<String>,
        on_delete: String,
    },
    Unique {
        columns: Vec<String>,
        using_index: Option<String>,
    },
    PrimaryKey {
        columns: Vec<String>,
        using_index: Option<String>,
    },
    Exclusion,
    NotNull,
    Other,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ConstraintSpec {
    pub name: Option<String>,
    pub kind: ConstraintKind,
    pub not_valid: bool,
}

/// One subcommand of ALTER TABLE.
#[derive(Debug, Clone, PartialEq)]
pub enum AlterCmd {
    AddColumn(ColumnSpec),
    DropColumn {
        column: String,
    },
    AlterType {
        column: String,
        new_type: TypeRef,
        using: Option<String>,
    },
    SetNotNull {
        column: String,
    },
    DropNotNull {
        column: String,
    },
    SetDefault {
        column: String,
    },
    AddConstraint(ConstraintSpec),
    ValidateConstraint {
        name: String,
    },
    DropConstraint {
        name: String,
    },
    AddIdentity {
        column: String,
    },
    /// Anything else, by its AT_* name (`SetStatistics`).
    Other {
        what: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum TxKind {
    Begin,
    Commit,
    Rollback,
    Savepoint,
    Other,
}

/// The statements the linter understands; anything else is `Other` with its
/// node tag, linted only for what every statement shares (transactions).
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    AlterTable {
        table: RelName,
        cmds: Vec<AlterCmd>,
        lock: LockMode,
    },
    CreateIndex {
        table: RelName,
        index: Option<String>,
        concurrent: bool,
        unique: bool,
        if_not_exists: bool,
        definition: Option<String>,
    },
    DropIndex {
        indexes: Vec<RelName>,
        concurrent: bool,
        if_exists: bool,
    },
    Reindex {
        concurrent: bool,
        target: Option<RelName>,
    },
    RenameColumn {
        table: RelName,
        column: String,
        new_name: String,
    },
    RenameTable {
        table: RelName,
        new_name: String,
    },
    RenameSchema {
        schema: String,
    },
    RenameEnumValue {
        type_name: String,
    },
    CreateTable {
        table: RelName,
        columns: Vec<ColumnSpec>,
        constraints: Vec<ConstraintSpec>,
    },
    DropTable {
        tables: Vec<RelName>,
        cascade: bool,
    },
    DropDatabase {
        name: String,
    },
    Truncate {
        tables: Vec<RelName>,
        cascade: bool,
    },
    CreateDomain {
        name: String,
        has_constraint: bool,
    },
    AlterDomainAddConstraint {
        name: String,
        not_valid: bool,
    },
    Transaction(TxKind),
    SetLockTimeout {
        value: Option<String>,
    },
    SetOther,
    /// UPDATE or DELETE of rows.
    DataChange {
        table: RelName,
        verb: &'static str,
        has_where: bool,
    },
    Other {
        tag: String,
    },
}

/// The lock a statement takes: pg_zdm's one type for lock modes.
pub use crate::plan::LockMode;

/// One statement of the text.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    /// 1-based position in the text.
    pub number: i32,
    /// 1-based line where the statement starts (after leading comments).
    pub line: i32,
    pub text: String,
    pub kind: Kind,
}
