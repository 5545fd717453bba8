//! What a shadow plan refuses before anything is created: a key the shadow
//! does not keep as a copy, a shadow without a unique index on that key, and
//! columns nothing would fill (in the shadow, or back in the old table after
//! the swap).

use crate::catalog::{IndexInfo, KeyInfo};
use crate::error::{ZdmError, ZdmResult};
use crate::ident::Ident;
use crate::ops::require_key;
use crate::shadow::shape::{ShadowShape, Source};
use pgrx::pg_sys::errcodes::PgSqlErrorCode;

/// The original's key, and how the shadow holds it.
pub struct Key<'a> {
    pub info: &'a KeyInfo,
    /// (original key column, shadow key column), in key order.
    pub pairs: Vec<(Ident, Ident)>,
    /// The shadow's unique index on the key (built first after a copy phase).
    pub index: &'a IndexInfo,
}

fn refusal(code: PgSqlErrorCode, message: String, hint: &str) -> ZdmError {
    ZdmError::new(code, message).hint(hint.to_string())
}

/// Rows are matched by the original's key, copied as is into the shadow,
/// where a unique index must make it the ON CONFLICT arbiter.
pub fn matched_key(shape: &ShadowShape) -> ZdmResult<Key<'_>> {
    let tname = shape.original.name.display_raw();
    let info = require_key(&shape.original)?;
    let mut pairs = Vec::new();
    for (k, _) in &info.columns {
        let Some(s) = shape.copied_into(k.raw()) else {
            return Err(refusal(
                PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!("the shadow of {tname} does not keep key column {} as a copy", k.raw()),
                "The shadow is kept in sync row by row through the table's key: keep its columns (renaming or widening them is fine) and leave them out of column_map.",
            ));
        };
        pairs.push((k.clone(), s.name.clone()));
    }
    let Some(index) = key_index(shape, &pairs) else {
        return Err(refusal(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!(
                "the shadow of {tname} has no unique index on its key ({})",
                info.index_name
            ),
            "Do not drop the primary key (or the unique index pg_zdm walks) in the alterations.",
        ));
    };
    Ok(Key { info, pairs, index })
}

/// A unique index of the shadow, without a predicate, on the key's columns.
fn key_index<'a>(shape: &'a ShadowShape, pairs: &[(Ident, Ident)]) -> Option<&'a IndexInfo> {
    let attnums: Vec<i16> = pairs
        .iter()
        .filter_map(|(_, s)| shape.shadow.column(s.raw()).map(|c| c.attnum))
        .collect();
    shape.shadow.indexes.iter().find(|i| {
        i.unique
            && i.predicate.is_none()
            && i.key_count == attnums.len()
            && i.elements[..i.key_count]
                .iter()
                .all(|(a, _, _)| *a != 0 && attnums.contains(a))
    })
}

/// A NOT NULL column without a default that nothing writes: in the shadow
/// (the sync would fail the application's writes), or in the original after
/// the swap (the reverse sync would).
pub fn every_column_filled(shape: &ShadowShape) -> ZdmResult<()> {
    let tname = shape.original.name.display_raw();
    for c in &shape.columns {
        if matches!(c.source, Source::Default) && c.not_null && !c.has_default && !c.generated {
            return Err(refusal(
                PgSqlErrorCode::ERRCODE_NOT_NULL_VIOLATION,
                format!(
                    "column {} of the shadow of {tname} is NOT NULL, has no default, and nothing fills it",
                    c.name.raw()
                ),
                "Give it a default in the alteration (ADD COLUMN ... DEFAULT ...), or an expression in column_map.",
            ));
        }
    }
    for r in &shape.reverse {
        if r.source.is_none() && r.not_null && !r.has_default && !r.generated {
            return Err(refusal(
                PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                format!(
                    "column {} of {tname} is NOT NULL without a default, and the new structure cannot fill it back",
                    r.name.raw()
                ),
                "After the swap the old table is kept current from the new one so that the swap can be undone; \
                 this column would have no value. Make it nullable or give it a default first (both catalog-only), \
                 or keep it in the shadow.",
            ));
        }
    }
    Ok(())
}
