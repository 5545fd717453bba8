//! The shape of a shadow table, learnt by `probe` and read by the shadow
//! operation to plan its SQL. Plain data: unit tests build it by hand.

use crate::catalog::TableInfo;
use crate::ident::{Ident, QualifiedName, SqlFragment};

/// Where a shadow column's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Copied from this column of the original (assignment cast when the type changed).
    Copy(Ident),
    /// The `column_map` expression: `text` over the original's bare column names,
    /// `over_new` over a trigger's NEW row.
    Map { text: String, over_new: String },
    /// Not written by pg_zdm: the column's default (or NULL) fills it.
    Default,
}

#[derive(Debug, Clone)]
pub struct ShadowColumn {
    pub name: Ident,
    pub type_sql: SqlFragment,
    pub not_null: bool,
    pub has_default: bool,
    /// GENERATED ... STORED: computed by PostgreSQL, never written.
    pub generated: bool,
    /// GENERATED ALWAYS AS IDENTITY: written only with OVERRIDING SYSTEM VALUE, never updated.
    pub identity_always: bool,
    pub source: Source,
}

/// A column of the original table and the shadow column it is filled from
/// after the swap (reverse sync), if any.
#[derive(Debug, Clone)]
pub struct ReverseColumn {
    pub name: Ident,
    pub not_null: bool,
    pub has_default: bool,
    pub generated: bool,
    pub identity_always: bool,
    pub source: Option<Ident>,
}

#[derive(Debug, Clone)]
pub struct ShadowShape {
    pub original: TableInfo,
    /// The shadow as PostgreSQL built it (alterations applied).
    pub shadow: TableInfo,
    pub columns: Vec<ShadowColumn>,
    pub reverse: Vec<ReverseColumn>,
    /// (shadow index, original index) for every original index the shadow still has:
    /// complete gives the shadow's indexes (and their constraints) the original names.
    pub index_names: Vec<(Ident, Ident)>,
    /// (shadow identity sequence, schema-qualified; original identity sequence's bare name), quoted.
    pub identity_sequences: Vec<(SqlFragment, SqlFragment)>,
    /// Outgoing foreign keys re-created on the shadow (NOT VALID, validated after the backfill).
    pub foreign_keys: Vec<ShadowForeignKey>,
    /// The original's NOT VALID checks, as `ADD CONSTRAINT ... NOT VALID`
    /// actions the swap runs on the shadow (the backfill copies rows they refuse).
    pub not_valid_checks: Vec<String>,
    /// The statements that create the shadow like the original (before the alterations).
    pub create: Vec<String>,
    /// The user's alterations, checked, in order.
    pub alterations: Vec<String>,
    pub unlogged: bool,
    /// The shadow's indexes (and the constraints they back) as PostgreSQL
    /// built them, in creation order: the statements that drop each one and
    /// build it again with the same name, so the rows can be copied into a
    /// table without indexes and the indexes built once, after the copy.
    pub indexes_to_build: Vec<IndexBuild>,
}

#[derive(Debug, Clone)]
pub struct IndexBuild {
    pub name: Ident,
    /// `ALTER TABLE ... DROP CONSTRAINT` or `DROP INDEX`.
    pub drop: String,
    /// `ALTER TABLE ... ADD CONSTRAINT` or `CREATE INDEX`, then its comment if any.
    pub build: Vec<String>,
    /// Backs a constraint (primary key, unique, exclusion): ALTER TABLE takes
    /// ACCESS EXCLUSIVE, CREATE INDEX only SHARE.
    pub constraint: bool,
}

#[derive(Debug, Clone)]
pub struct ShadowForeignKey {
    pub name: Ident,
    pub columns: Vec<Ident>,
    /// Schema-qualified, quoted; the shadow itself for a self-reference.
    pub referenced: String,
    pub referenced_columns: Vec<Ident>,
    pub actions: String,
    pub deferrable: String,
}

/// The key pairs (original column, shadow column) by which rows are matched.
pub type KeyPairs = Vec<(Ident, Ident, SqlFragment)>;

impl ShadowShape {
    pub fn shadow_name(&self) -> &QualifiedName {
        &self.shadow.name
    }

    /// The shadow column a given original column is copied into.
    pub fn copied_into(&self, original: &str) -> Option<&ShadowColumn> {
        self.columns
            .iter()
            .find(|c| matches!(&c.source, Source::Copy(o) if o.raw() == original))
    }
}
