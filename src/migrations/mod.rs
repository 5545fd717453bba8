//! The migrations catalog: `zdm.migrations` (one row per migration) and
//! `zdm.events` (append-only log), with the phase state machine in `phase`
//! and a migration's own backfill settings in `settings`.

pub mod phase;
pub mod settings;
pub mod store;

pub use phase::Phase;
pub use settings::BackfillSettings;
