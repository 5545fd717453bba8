//! The migrations catalog: `zdm.migrations` (one row per migration) and
//! `zdm.events` (append-only log), with the phase state machine in `phase`.

pub mod phase;
pub mod store;

pub use phase::Phase;
