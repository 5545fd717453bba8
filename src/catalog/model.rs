//! What pg_zdm knows about a table, as plain data. Filled by `introspect`
//! (server side), read by `ops` (pure), built by hand in unit tests.

use crate::ident::{Ident, Literal, QualifiedName, SqlFragment};

#[derive(Debug, Clone)]
pub struct TableInfo {
    pub oid: u32,
    pub name: QualifiedName,
    /// pg_class.relkind as a char: 'r' table, 'p' partitioned, 'v' view...
    pub relkind: char,
    pub columns: Vec<ColumnInfo>,
    /// The key backfill batches walk: the primary key, else a unique NOT NULL index.
    pub key: Option<KeyInfo>,
    /// Indexes, constraints and views that use each column, for refusals and plans.
    pub dependents: Vec<Dependent>,
    /// Names of the table's constraints (raw).
    pub constraint_names: Vec<String>,
    pub indexes: Vec<IndexInfo>,
    pub checks: Vec<CheckInfo>,
    pub foreign_keys: Vec<ForeignKeyInfo>,
    /// A partitioned table's partitions (None for a plain table).
    pub partitions: Option<PartitionTree>,
}

/// Everything below a partitioned table, as it stands when read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartitionTree {
    /// Every partition, parents before their children (level by level).
    pub members: Vec<Partition>,
    /// Columns (raw names) in the partition key of the table or of any
    /// partition below it: they cannot change type or go while partitioned.
    pub key_columns: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    pub oid: u32,
    pub name: QualifiedName,
    /// The partitioned table it is attached to (the table itself, or a partition of it).
    pub parent: QualifiedName,
    /// A leaf holds rows; a partitioned partition holds partitions.
    pub leaf: bool,
}

impl PartitionTree {
    /// The partitions that hold rows, in tree order.
    pub fn leaves(&self) -> impl Iterator<Item = &Partition> {
        self.members.iter().filter(|p| p.leaf)
    }

    /// The partitioned tables below the root, parents first.
    pub fn branches(&self) -> impl Iterator<Item = &Partition> {
        self.members.iter().filter(|p| !p.leaf)
    }
}

/// An index, in pieces from which it can be rebuilt on another column.
#[derive(Debug, Clone)]
pub struct IndexInfo {
    pub oid: u32,
    pub constraint_oid: Option<u32>,
    pub name: Ident,
    pub unique: bool,
    pub primary: bool,
    pub exclusion: bool,
    /// The constraint it backs (UNIQUE, PRIMARY KEY, EXCLUDE), if any.
    pub constraint: Option<Ident>,
    pub access_method: String,
    /// Key elements then INCLUDE columns: (attnum, 0 for an expression; text; suffix
    /// with collation, operator class and ordering).
    pub elements: Vec<(i16, String, String)>,
    pub key_count: usize,
    pub predicate: Option<String>,
    pub options: Option<String>,
    /// Every column the index reads (key, INCLUDE, expressions, predicate).
    pub attnums: Vec<i16>,
}

#[derive(Debug, Clone)]
pub struct CheckInfo {
    pub oid: u32,
    pub name: Ident,
    /// The condition, without CHECK and outer parentheses.
    pub expr: String,
    pub attnums: Vec<i16>,
    pub validated: bool,
}

/// A foreign key from this table.
#[derive(Debug, Clone)]
pub struct ForeignKeyInfo {
    pub oid: u32,
    pub name: Ident,
    pub attnums: Vec<i16>,
    pub referenced: String,
    pub referenced_columns: Vec<Ident>,
    /// `MATCH ... ON UPDATE ... ON DELETE ...` clause.
    pub actions: String,
    pub deferrable: String,
}

/// What operations may ask the catalog beyond their own table.
pub trait Lookup {
    /// Is there a relation (table, index, sequence, view...) of that name in that schema?
    fn relation_exists(&self, schema: &str, name: &str) -> crate::error::ZdmResult<bool>;
    /// Another table, read whole (a foreign key's referenced table).
    fn table(&self, name: &str) -> crate::error::ZdmResult<TableInfo>;
    /// Foreign key columns (of any table, this one included) that reference
    /// column `attnum` of table `oid`.
    fn referencing_columns(&self, oid: u32, attnum: i16) -> crate::error::ZdmResult<Vec<Referencing>>;
    /// A sequence's type, maximum and increment (None: no such sequence).
    fn sequence(&self, name: &str) -> crate::error::ZdmResult<Option<SequenceInfo>>;
}

/// A column of a foreign key that references a column of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Referencing {
    pub foreign_key: Ident,
    pub table: QualifiedName,
    pub column: Ident,
    pub type_sql: SqlFragment,
    pub type_oid: u32,
    pub typmod: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SequenceInfo {
    pub type_oid: u32,
    pub max: i64,
    pub increment: i64,
}

#[derive(Debug, Clone)]
pub struct ColumnInfo {
    pub name: Ident,
    pub attnum: i16,
    /// `introspect::type_name`: `character varying(255)`, `numeric(10,2)`, `pg_catalog.date`.
    pub type_sql: SqlFragment,
    pub type_oid: u32,
    pub typmod: i32,
    /// `COLLATE "..."` when the column's collation is not its type's default.
    pub collation_sql: Option<SqlFragment>,
    pub not_null: bool,
    /// `pg_get_expr(adbin, adrelid)`.
    pub default_sql: Option<SqlFragment>,
    pub identity: bool,
    pub generated: bool,
    pub comment: Option<Literal>,
    /// A sequence owned by this column (serial), schema-qualified and quoted.
    pub owned_sequence: Option<SqlFragment>,
}

#[derive(Debug, Clone)]
pub struct KeyInfo {
    /// Name of the index the key comes from (raw).
    pub index_name: String,
    pub is_primary: bool,
    /// Key columns in index order, with their type for casting text back.
    pub columns: Vec<(Ident, SqlFragment)>,
    /// A partitioned table's leaf partitions, which the backfill walks one
    /// after the other, each by this key (its own copy of the key index).
    /// Empty for a plain table: the backfill walks the table itself.
    pub partitions: Vec<QualifiedName>,
}

/// An object that depends on particular columns of the table.
#[derive(Debug, Clone)]
pub struct Dependent {
    /// "index", "constraint", "view", "trigger", "policy"...
    pub kind: String,
    pub oid: u32,
    pub name: String,
    /// attnums it uses (empty when it uses the whole row).
    pub attnums: Vec<i16>,
}

impl TableInfo {
    pub fn column(&self, name: &str) -> Option<&ColumnInfo> {
        self.columns.iter().find(|c| c.name.raw() == name)
    }

    /// Dependents that use the given column.
    pub fn dependents_of(&self, attnum: i16) -> impl Iterator<Item = &Dependent> {
        self.dependents.iter().filter(move |d| d.attnums.contains(&attnum))
    }

    /// The oids of a partitioned table's partitions (empty for a plain table):
    /// its generated trigger functions accept them without a catalog lookup.
    pub fn partition_oids(&self) -> Vec<u32> {
        self.partitions
            .as_ref()
            .map(|p| p.members.iter().map(|m| m.oid).collect())
            .unwrap_or_default()
    }

    /// Is the column in the partition key of the table or of a partition below it?
    pub fn is_partition_key_column(&self, name: &str) -> bool {
        self.partitions
            .as_ref()
            .is_some_and(|p| p.key_columns.iter().any(|c| c == name))
    }

    pub fn is_key_column(&self, name: &str) -> bool {
        self.key
            .as_ref()
            .is_some_and(|k| k.columns.iter().any(|(c, _)| c.raw() == name))
    }
}

#[cfg(test)]
impl ColumnInfo {
    /// A plain column for unit tests: no default, collation, identity or comment.
    pub fn test(name: &str, attnum: i16, ty: &str, not_null: bool) -> ColumnInfo {
        ColumnInfo {
            name: Ident::test(name),
            attnum,
            type_sql: SqlFragment(ty.into()),
            type_oid: 0,
            typmod: -1,
            collation_sql: None,
            not_null,
            default_sql: None,
            identity: false,
            generated: false,
            comment: None,
            owned_sequence: None,
        }
    }
}
