//! The life of a migration: its phases and the only transitions allowed between them.
//!
//! ```text
//!   start ──► started ──► backfilling ──► backfilled ──► completed
//!                │  └─────────────────────────▲ │ │          ▲
//!                │   (nothing to backfill)      │ └► swapped ─┘  (shadow tables)
//!                └────────────┴─────────────────┴───────┴──► rolled_back
//! ```
//! A migration whose table was dropped goes from any phase before a final one
//! to `abandoned`. `completed`, `rolled_back` and `abandoned` are final.
//! Pure code: unit-tested without a server.

use crate::error::{ZdmError, ZdmResult};
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Expand done: new objects and sync triggers exist; old and new apps both work.
    Started,
    /// Existing rows are being brought up to date in batches.
    Backfilling,
    /// Every existing row is done; the migration may be completed.
    Backfilled,
    /// Shadow tables: the shadow has taken the table's place; the old table is
    /// kept current in reverse until complete (or a rollback swaps back).
    Swapped,
    /// Contract done: old objects dropped. Final.
    Completed,
    /// Everything start created was removed. Final.
    RolledBack,
    /// Its table was dropped; what pg_zdm made for it was removed. Final.
    Abandoned,
}

pub const ALL_PHASES: [Phase; 7] = [
    Phase::Started,
    Phase::Backfilling,
    Phase::Backfilled,
    Phase::Swapped,
    Phase::Completed,
    Phase::RolledBack,
    Phase::Abandoned,
];

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Started => "started",
            Phase::Backfilling => "backfilling",
            Phase::Backfilled => "backfilled",
            Phase::Swapped => "swapped",
            Phase::Completed => "completed",
            Phase::RolledBack => "rolled_back",
            Phase::Abandoned => "abandoned",
        }
    }

    pub fn parse(s: &str) -> ZdmResult<Phase> {
        ALL_PHASES
            .iter()
            .copied()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| ZdmError::wrong_state(format!("unknown migration phase \"{s}\"")))
    }

    /// A migration in a final phase holds no lock on its columns any more.
    pub fn is_final(self) -> bool {
        matches!(self, Phase::Completed | Phase::RolledBack | Phase::Abandoned)
    }

    /// Its name may be started again (the old one is archived first).
    pub fn frees_its_name(self) -> bool {
        matches!(self, Phase::RolledBack | Phase::Abandoned)
    }

    /// Every existing row is done (backfilled, or already swapped in).
    pub fn backfill_done(self) -> bool {
        matches!(self, Phase::Backfilled | Phase::Swapped)
    }

    pub fn can_move_to(self, to: Phase) -> bool {
        use Phase::*;
        matches!(
            (self, to),
            (Started, Backfilling)
                | (Started, Backfilled)
                | (Started, RolledBack)
                | (Backfilling, Backfilled)
                | (Backfilling, RolledBack)
                | (Backfilled, Completed)
                | (Backfilled, RolledBack)
                | (Backfilled, Swapped)
                | (Swapped, Completed)
                | (Swapped, RolledBack)
        ) || (to == Abandoned && !self.is_final())
    }

    /// Check a transition, with an error that says what to do instead.
    pub fn check_move(self, to: Phase, migration: &str) -> ZdmResult<()> {
        if self.can_move_to(to) {
            return Ok(());
        }
        let err = ZdmError::wrong_state(format!("migration \"{migration}\" cannot go from phase {self} to {to}"));
        let hint = match (self, to) {
            (Phase::Started | Phase::Backfilling, Phase::Completed) => format!(
                "Its backfill is not finished. Run: CALL zdm.backfill({}); then complete it.",
                crate::ident::Literal::pure(migration)
            ),
            (Phase::Completed, Phase::RolledBack) => {
                "A completed migration has dropped its old objects; write a new migration to undo it.".to_string()
            }
            (Phase::RolledBack, _) => "It was rolled back; start a new migration instead.".to_string(),
            (Phase::Abandoned, _) => "Its table was dropped; start a new migration instead.".to_string(),
            (Phase::Completed, _) => "It is already completed.".to_string(),
            _ => "See zdm.status() for the migration's phase.".to_string(),
        };
        Err(err.hint(hint))
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in ALL_PHASES {
            assert_eq!(Phase::parse(p.as_str()).unwrap(), p);
        }
        assert_eq!(Phase::parse("nope").unwrap_err().sqlstate(), "55000");
    }

    #[test]
    fn final_phases_go_nowhere() {
        for to in ALL_PHASES {
            assert!(!Phase::Completed.can_move_to(to));
            assert!(!Phase::RolledBack.can_move_to(to));
            assert!(!Phase::Abandoned.can_move_to(to));
        }
    }

    #[test]
    fn complete_needs_backfill_and_says_so() {
        let e = Phase::Started.check_move(Phase::Completed, "m'1").unwrap_err();
        assert_eq!(e.sqlstate(), "55000");
        assert!(e.hint.unwrap().contains("CALL zdm.backfill('m''1')"));
        // A backslash needs E'' to read back the same whatever standard_conforming_strings says.
        let e = Phase::Started.check_move(Phase::Completed, "m\\'1").unwrap_err();
        assert!(e.hint.unwrap().contains("CALL zdm.backfill(E'm\\\\''1');"));
        assert!(Phase::Backfilled.check_move(Phase::Completed, "m").is_ok());
    }

    #[test]
    fn any_active_migration_can_be_abandoned() {
        for from in ALL_PHASES {
            assert_eq!(from.can_move_to(Phase::Abandoned), !from.is_final(), "{from}");
        }
    }

    #[test]
    fn rollback_allowed_before_complete_only() {
        assert!(Phase::Started.can_move_to(Phase::RolledBack));
        assert!(Phase::Backfilling.can_move_to(Phase::RolledBack));
        assert!(Phase::Backfilled.can_move_to(Phase::RolledBack));
        let e = Phase::Completed.check_move(Phase::RolledBack, "m").unwrap_err();
        assert!(e.hint.unwrap().contains("new migration"));
    }
}
