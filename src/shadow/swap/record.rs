//! What the swap changed, kept in `zdm.migrations.shadow -> 'swap'` for the
//! two ways out: the swap back of a rollback, and complete.

use serde::{Deserialize, Serialize};

/// What the swap changed, kept in `zdm.migrations.shadow -> 'swap'`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SwapRecord {
    /// User triggers disabled on the old table: (quoted name, pg_trigger.tgenabled).
    pub disabled_triggers: Vec<(String, String)>,
    /// Serial sequences whose ownership moved: (sequence, old column, new column), quoted.
    pub serial_sequences: Vec<(String, String, String)>,
    /// Identity sequences: (old table's, new table's), quoted.
    pub identity_sequences: Vec<(String, String)>,
    /// Publications the table was moved between (quoted names).
    pub publications: Vec<String>,
    /// Foreign keys of other tables, added on the new table NOT VALID.
    pub foreign_keys: Vec<IncomingForeignKey>,
    /// The views as they were defined on the original: a swap back recreates
    /// them from these texts (the ones read on the new table would keep casts
    /// the new column types put in).
    #[serde(default)]
    pub views: Vec<(String, Vec<String>)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IncomingForeignKey {
    /// The referencing table, schema-qualified and quoted.
    pub table: String,
    /// Its original name (on the old table's constraint) and the temporary one.
    pub name: String,
    pub temporary: String,
    /// Whether the original was validated: one that was NOT VALID stays so.
    #[serde(default = "yes")]
    pub validated: bool,
}

fn yes() -> bool {
    true
}
