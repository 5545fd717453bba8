//! The swap back of a rollback, as statements: the old table takes its name
//! back with its triggers, sequences, publications and views; the new table
//! is the shadow again. Built from the recorded swap and the views on the
//! new table, read under the locks.

use super::catalog::ViewDef;
use super::record::SwapRecord;
use crate::ident::{Ident, Literal};
use crate::plan::ShadowPlan;

/// The statements, in order.
pub(super) fn statements(sp: &ShadowPlan, record: &SwapRecord, views: &[ViewDef]) -> Vec<String> {
    let t = &sp.table;
    let mut sql = Vec::new();
    if !views.is_empty() {
        let names: Vec<&str> = views.iter().map(|v| v.name.as_str()).collect();
        sql.push(format!("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE", names.join(", ")));
        sql.push(format!("DROP VIEW {}", names.join(", ")));
    }
    for f in &record.foreign_keys {
        sql.push(format!(
            "ALTER TABLE {} DROP CONSTRAINT IF EXISTS {}",
            f.table, f.temporary
        ));
    }
    sql.push(format!("DROP TRIGGER IF EXISTS {} ON {t}", sp.reverse_trigger));
    if let Some(tt) = &sp.truncate_triggers {
        sql.push(format!("DROP TRIGGER IF EXISTS {} ON {t}", tt.reverse));
    }
    sql.push(format!(
        "ALTER TABLE {t} RENAME TO {}",
        Ident::new(sp.shadow_relname.as_str())
    ));
    sql.push(format!(
        "ALTER TABLE {} RENAME TO {}",
        sp.old,
        Ident::new(sp.table_relname.as_str())
    ));
    for (name, state) in &record.disabled_triggers {
        let how = match state.as_str() {
            "R" => "ENABLE REPLICA",
            "A" => "ENABLE ALWAYS",
            _ => "ENABLE",
        };
        sql.push(format!("ALTER TABLE {t} {how} TRIGGER {name}"));
    }
    for (seq, old_col, _) in &record.serial_sequences {
        sql.push(format!("ALTER SEQUENCE {seq} OWNED BY {t}.{old_col}"));
    }
    for (old_seq, new_seq) in &record.identity_sequences {
        sql.push(setval_from(old_seq, new_seq));
    }
    for p in &record.publications {
        sql.push(format!("ALTER PUBLICATION {p} DROP TABLE {}", sp.shadow));
        sql.push(format!("ALTER PUBLICATION {p} ADD TABLE {t}"));
    }
    // The original definitions first (dependencies first, as recorded),
    // then any view created on the new table since the swap.
    for (_, create) in &record.views {
        sql.extend(create.iter().cloned());
    }
    for v in views.iter().filter(|v| !record.views.iter().any(|(n, _)| *n == v.name)) {
        sql.extend(v.create.iter().cloned());
    }
    sql
}

/// `setval` of `target` to where `source` stands (its own position, not max(id)).
pub(super) fn setval_from(target: &str, source: &str) -> String {
    format!(
        "SELECT pg_catalog.setval({}::regclass, s.last_value, s.is_called) FROM {source} s",
        Literal::new(target)
    )
}
