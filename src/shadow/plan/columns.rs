//! The shadow columns pg_zdm writes, and the value of each: over the
//! original row's bare column names (batches, settle, verify) or over a
//! trigger's NEW row.

use crate::shadow::shape::{ShadowColumn, ShadowShape, Source};

/// The shadow columns the copy, the trigger and the settle write (not the
/// generated ones, not those their default fills).
pub fn written(shape: &ShadowShape) -> Vec<&ShadowColumn> {
    shape
        .columns
        .iter()
        .filter(|c| !c.generated && !matches!(c.source, Source::Default))
        .collect()
}

/// A written column's value over the original row's bare column names.
pub fn copied_value(c: &ShadowColumn) -> String {
    match &c.source {
        Source::Copy(o) => o.to_string(),
        Source::Map { text, .. } => format!("({text})"),
        Source::Default => unreachable!("not written"),
    }
}

/// The same over a trigger's NEW row.
pub fn new_value(c: &ShadowColumn) -> String {
    match &c.source {
        Source::Copy(o) => format!("NEW.{o}"),
        Source::Map { over_new, .. } => over_new.clone(),
        Source::Default => unreachable!("not written"),
    }
}

/// The same as verify compares it (a `column_map` expression unparenthesized).
pub fn compared_value(c: &ShadowColumn) -> String {
    match &c.source {
        Source::Copy(o) => o.to_string(),
        Source::Map { text, .. } => text.clone(),
        Source::Default => unreachable!("not written"),
    }
}

/// `OVERRIDING SYSTEM VALUE` on inserts: a GENERATED ALWAYS identity is written.
pub fn overriding(written: &[&ShadowColumn]) -> bool {
    written.iter().any(|c| c.identity_always)
}
