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
//! - `plan`: the operation and its plan, from the shape (pure; `golden` tests it whole).
//! - SQL text (pure): `sync` (the row-copy trigger), `truncate` (the TRUNCATE
//!   triggers), `settle` (the notes and the settle function), `copy_phase`
//!   (the trigger that only notes keys); `verify::sql` and `beyond::sql` next
//!   to what runs them.
//! - `verify`: row count and per-column checksums of shadow vs. original, in one snapshot.
//! - `beyond`: when inserts may skip the probe of the notes.
//! - `swap`: the swap, the swap back (rollback), and the clean-up of complete.

pub mod alterations;
pub mod beyond;
pub mod copy_phase;
pub mod plan;
pub mod probe;
pub mod settle;
pub mod shape;
pub mod swap;
pub mod sync;
pub mod truncate;
pub mod verify;

#[cfg(test)]
mod golden;
