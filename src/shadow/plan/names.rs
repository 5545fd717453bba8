//! The names of everything a shadow migration creates, derived once from the
//! migration's name: functions in schema zdm, triggers on the table, the
//! shadow, the old table and the table of noted keys in the table's schema.

use crate::ident::{Ident, QualifiedName};
use crate::ops::PlanContext;
use crate::plan::{LockMode, Step};
use crate::shadow::shape::ShadowShape;

pub struct Names {
    /// The table (its name never changes: after the swap, the new table's).
    pub table: QualifiedName,
    pub shadow: QualifiedName,
    /// The original after the swap.
    pub old: QualifiedName,
    /// The keys whose shadow row may be stale (see `shadow::settle`).
    pub notes: QualifiedName,
    pub forward_fn: QualifiedName,
    pub settle_fn: QualifiedName,
    pub reverse_fn: QualifiedName,
    pub truncate_fn: QualifiedName,
    pub reverse_truncate_fn: QualifiedName,
    pub beyond_fn: QualifiedName,
    pub forward_trigger: Ident,
    pub reverse_trigger: Ident,
    pub truncate_trigger: Ident,
    pub reverse_truncate_trigger: Ident,
}

impl Names {
    pub fn new(ctx: &PlanContext, shape: &ShadowShape, old: &QualifiedName) -> Names {
        let table = shape.original.name.clone();
        Names {
            notes: QualifiedName::new(table.schema.clone(), ctx.object_name("stale")),
            table,
            shadow: shape.shadow_name().clone(),
            old: old.clone(),
            forward_fn: ctx.function_name("shadow_sync"),
            settle_fn: ctx.function_name("shadow_settle"),
            reverse_fn: ctx.function_name("shadow_reverse"),
            truncate_fn: ctx.function_name("shadow_truncate"),
            reverse_truncate_fn: ctx.function_name("shadow_reverse_truncate"),
            beyond_fn: ctx.function_name("shadow_beyond"),
            forward_trigger: ctx.object_name("sync"),
            reverse_trigger: ctx.object_name("reverse"),
            truncate_trigger: ctx.object_name("truncate"),
            reverse_truncate_trigger: ctx.object_name("reverse_truncate"),
        }
    }

    /// A step that locks the table.
    pub fn on_table(&self, description: &str, sql: String, mode: LockMode) -> Step {
        Step::locked(description, sql, &self.table.to_string(), mode)
    }
}
