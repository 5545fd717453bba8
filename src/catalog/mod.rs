//! Catalog introspection: everything pg_zdm reads about user tables.
//! `model` is the plain data; `introspect` fills it from pg_catalog.

pub mod index_facts;
pub mod introspect;
pub mod model;
pub mod partitions;

pub use model::{
    CheckInfo, ColumnInfo, Dependent, ForeignKeyInfo, IndexInfo, KeyInfo, Lookup, Partition, PartitionTree,
    Referencing, SequenceInfo, TableInfo,
};
