//! A migration's life, as the `zdm.*` calls drive it: start (expand),
//! the backfill's controls, complete (contract) and rollback (undo).
//!
//! Each call here loads the migration, checks that the caller may act on it
//! and that the phase allows the move, runs the plan's steps through the
//! executor as the table's owner, and moves the phase in the catalog. The
//! SQL-facing wrappers are in `api`; what a plan shows (`zdm.plan()`,
//! `zdm.status()`) is in `report`.

pub mod access;
pub mod backfill_control;
pub mod complete;
pub mod prepare;
pub mod rollback;
pub mod start;
