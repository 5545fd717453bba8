//! Shadow tables: restructure a whole table by building a copy with the new
//! structure next to it, keeping the copy equal to the original with a row
//! trigger, filling it in keyset batches, checking it (`verify`), and swapping
//! it in under a short ACCESS EXCLUSIVE lock (`swap`). After the swap a reverse
//! trigger keeps the old table current, so the swap can be undone without
//! losing a write.
//!
//! - `alterations`: the user's `ALTER TABLE` actions, checked with PostgreSQL's parser.
//! - `shape`: what the shadow looks like and where each of its columns comes from (pure data).
//! - `probe`: builds the shadow in a rolled-back subtransaction to learn its shape,
//!   and refuses tables whose dependents cannot be re-pointed.
//! - `verify`: row count and per-column checksums of shadow vs. original, in one snapshot.
//! - `swap`: the swap, the swap back (rollback), and the clean-up of complete.

pub mod alterations;
pub mod beyond;
pub mod probe;
pub mod shape;
pub mod swap;
pub mod verify;

#[cfg(test)]
mod golden;
