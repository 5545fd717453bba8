//! The shadow part of the plan (`ShadowPlan`, stored with it): the names and
//! the SQL that verify, the swap and complete work with.

use super::columns::compared_value;
use super::key::Key;
use super::names::Names;
use crate::ident::Ident;
use crate::plan::{ShadowPlan, TruncateTriggers};
use crate::shadow::shape::{ShadowColumn, ShadowShape, Source};
use crate::shadow::verify::sql::{verify_diff_sql, verify_sums_sql, Compared};

/// What verify compares: every written column, and the key with the shadow's types.
fn compared(shape: &ShadowShape, key: &Key, written: &[&ShadowColumn]) -> (Vec<(Ident, Ident, String)>, Vec<Compared>) {
    let compared = written
        .iter()
        .map(|c| Compared {
            column: c.name.clone(),
            source_value: compared_value(c),
            type_sql: c.type_sql.to_string(),
        })
        .collect();
    let key_types = key
        .pairs
        .iter()
        .map(|(o, s)| {
            let ty = shape
                .shadow
                .column(s.raw())
                .map(|c| c.type_sql.to_string())
                .unwrap_or_default();
            (o.clone(), s.clone(), ty)
        })
        .collect();
    (key_types, compared)
}

pub fn shadow_plan(
    shape: &ShadowShape,
    names: &Names,
    key: &Key,
    written: &[&ShadowColumn],
    after_copy: bool,
) -> ShadowPlan {
    let (table, shadow, old, notes) = (&names.table, &names.shadow, &names.old, &names.notes);
    let (key_types, compared) = compared(shape, key, written);
    ShadowPlan {
        table: table.to_string(),
        schema: table.schema.to_string(),
        table_relname: table.name.raw().to_string(),
        shadow: shadow.to_string(),
        shadow_relname: shadow.name.raw().to_string(),
        old: old.to_string(),
        old_relname: old.name.raw().to_string(),
        forward_trigger: names.forward_trigger.to_string(),
        reverse_trigger: names.reverse_trigger.to_string(),
        reverse_function: names.reverse_fn.to_string(),
        truncate_triggers: Some(TruncateTriggers {
            forward: names.truncate_trigger.to_string(),
            reverse: names.reverse_truncate_trigger.to_string(),
            reverse_function: names.reverse_truncate_fn.to_string(),
        }),
        verify_sql: verify_sums_sql(table, shadow, &key_types, &compared, None),
        verify_pending_sql: Some(verify_sums_sql(table, shadow, &key_types, &compared, Some(notes))),
        notes: Some(notes.to_string()),
        verify_diff_sql: verify_diff_sql(table, shadow, &key_types, &compared),
        compared_columns: compared.iter().map(|c| c.column.raw().to_string()).collect(),
        not_compared: shape
            .columns
            .iter()
            .filter(|c| matches!(c.source, Source::Default))
            .map(|c| c.name.raw().to_string())
            .collect(),
        column_pairs: shape
            .columns
            .iter()
            .filter_map(|c| match &c.source {
                Source::Copy(o) => Some((o.raw().to_string(), c.name.raw().to_string())),
                _ => None,
            })
            .collect(),
        index_names: shape
            .index_names
            .iter()
            .map(|(s, o)| (s.raw().to_string(), o.raw().to_string()))
            .collect(),
        not_valid_checks: shape.not_valid_checks.clone(),
        settle_function: Some(names.settle_fn.to_string()),
        indexes_after_copy: after_copy,
    }
}
