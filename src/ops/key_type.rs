//! `alter_column_type` of a key column (an `integer` primary key becoming
//! `bigint`): carried out as a shadow table with one alteration,
//! `ALTER COLUMN <key> TYPE <new type>`, so it is a shadow migration in every
//! respect (backfill, verify, swap_tables, complete, rollback: `shadow_table`'s
//! plan, unchanged).
//!
//! Why not the column copy of other columns: the sync triggers, the batches
//! and other tables' foreign keys find rows by the key, so a second column
//! cannot stand in for it while both application versions run, and complete
//! would have to rebuild the primary key and every foreign key pointing at
//! it. A shadow keeps the key's name: both versions write `id` throughout.
//!
//! On top of the shadow's plan:
//! - complete widens the key's sequence (serial or identity) to the new type's
//!   range when it had the whole old range: PostgreSQL leaves a serial's
//!   sequence `AS integer` when its column becomes bigint (and the shadow's
//!   identity sequence keeps the old maximum), which would stop inserts at
//!   2147483647 all the same;
//! - `referencing_columns`: foreign key columns that keep their type, with
//!   the call that changes them too.

use super::shadow_table::{Probe, ShadowTable};
use super::{fit_name, Operation, PlanContext};
use crate::catalog::{ColumnInfo, Lookup, Referencing, SequenceInfo, TableInfo};
use crate::error::{ZdmError, ZdmResult};
use crate::ident::{Literal, QualifiedName, SqlFragment};
use crate::plan::{CarriedOutAs, Plan, ReferencingColumn, Step};
use crate::spec::{AlterColumnTypeSpec, ShadowTableSpec};
use pgrx::pg_sys;

pub struct KeyTypeChange {
    table: QualifiedName,
    column: ColumnInfo,
    new_type: SqlFragment,
    alterations: Vec<String>,
    shadow: ShadowTable,
    referencing: Vec<Referencing>,
    /// `ALTER SEQUENCE` run last by complete, when the key's sequence needs it.
    widen_sequence: Option<Step>,
}

impl KeyTypeChange {
    pub fn new(
        table: &TableInfo,
        column: &ColumnInfo,
        spec: &AlterColumnTypeSpec,
        (new_oid, new_type): (u32, &SqlFragment),
        lookup: &dyn Lookup,
        probe: Probe,
    ) -> ZdmResult<Self> {
        refuse_expressions(table, column, spec)?;
        let alterations = vec![format!("ALTER COLUMN {} TYPE {new_type}", column.name)];
        let shadow_spec = ShadowTableSpec {
            table: table.name.to_string(),
            alterations: alterations.clone(),
            column_map: None,
        };
        let widen_sequence = match &column.owned_sequence {
            Some(seq) => lookup
                .sequence(&seq.0)?
                .and_then(|info| widen_sequence_step(seq, &info, column.type_oid, new_oid, new_type)),
            None => None,
        };
        let referencing = lookup
            .referencing_columns(table.oid, column.attnum)?
            .into_iter()
            .filter(|r| r.type_sql != *new_type)
            .collect();
        Ok(KeyTypeChange {
            table: table.name.clone(),
            column: column.clone(),
            new_type: new_type.clone(),
            alterations,
            shadow: ShadowTable::new(table, &shadow_spec, probe)?,
            referencing,
            widen_sequence,
        })
    }

    pub fn table(&self) -> &QualifiedName {
        &self.table
    }

    pub fn column(&self) -> &ColumnInfo {
        &self.column
    }

    pub fn new_type(&self) -> &SqlFragment {
        &self.new_type
    }

    fn reason(&self) -> String {
        format!(
            "column {} is part of the key of {}: the sync triggers, the backfill batches and foreign keys \
             find rows by it, so no second column can stand in for it while both application versions run. \
             The table is rebuilt through a shadow table instead: both versions keep writing {} (as {} before \
             the swap, as {} after it). Then CALL zdm.backfill, SELECT zdm.verify, zdm.swap_tables, zdm.complete \
             (zdm.rollback at any point before complete).",
            self.column.name.raw(),
            self.table.display_raw(),
            self.column.name.raw(),
            self.column.type_sql,
            self.new_type
        )
    }

    fn referencing_note(&self, r: &Referencing) -> ReferencingColumn {
        let call = format!(
            "SELECT zdm.alter_column_type({}, {}, {});",
            Literal::new(&r.table.to_string()),
            Literal::new(r.column.raw()),
            Literal::new(&self.new_type.0)
        );
        ReferencingColumn {
            table: r.table.to_string(),
            column: r.column.raw().to_string(),
            column_type: r.type_sql.to_string(),
            foreign_key: r.foreign_key.raw().to_string(),
            hint: format!(
                "{}.{} stays {} (foreign key {}): it cannot hold keys beyond that type's range. \
                 Change it too, once this migration is completed: {call}",
                r.table.display_raw(),
                r.column.raw(),
                r.type_sql,
                r.foreign_key.raw()
            ),
        }
    }
}

/// up_expr / down_expr / new_column cannot apply: the shadow copies key
/// values as they are (PostgreSQL's assignment cast), both ways, and the key
/// keeps its name.
fn refuse_expressions(table: &TableInfo, column: &ColumnInfo, spec: &AlterColumnTypeSpec) -> ZdmResult<()> {
    let given: Vec<&str> = [
        ("up_expr", spec.up_expr.is_some()),
        ("down_expr", spec.down_expr.is_some()),
        ("new_column", spec.new_column.is_some()),
    ]
    .into_iter()
    .filter_map(|(n, g)| g.then_some(n))
    .collect();
    if given.is_empty() {
        return Ok(());
    }
    Err(ZdmError::not_supported(format!(
        "alter_column_type of key column \"{}\" of relation \"{}\" cannot take {}",
        column.name.raw(),
        table.name.display_raw(),
        given.join(", ")
    ))
    .hint(
        "A key column's type changes through a shadow table, which copies its values with a plain cast \
         (and back, until complete) and keeps its name: leave these out. A key whose values need another \
         conversion is a new key: add it with add_column, then make it the key.",
    ))
}

/// Largest value of an integer type (None: not smallint, integer or bigint).
fn integer_max(type_oid: u32) -> Option<i64> {
    match type_oid {
        o if o == pg_sys::INT2OID.to_u32() => Some(i16::MAX as i64),
        o if o == pg_sys::INT4OID.to_u32() => Some(i32::MAX as i64),
        o if o == pg_sys::INT8OID.to_u32() => Some(i64::MAX),
        _ => None,
    }
}

/// `ALTER SEQUENCE ... AS <new> MAXVALUE <new max>` when an ascending sequence
/// may use the old type's whole range and the new type is a wider integer;
/// a maximum of the user's own is left alone.
fn widen_sequence_step(
    seq: &SqlFragment,
    info: &SequenceInfo,
    old_oid: u32,
    new_oid: u32,
    new_type: &SqlFragment,
) -> Option<Step> {
    let (old_max, new_max) = (integer_max(old_oid)?, integer_max(new_oid)?);
    if new_max <= old_max || info.increment <= 0 || info.max != old_max {
        return None;
    }
    // Unlocked as far as the executor goes (it locks tables, not sequences):
    // ALTER SEQUENCE takes its own lock on the sequence, for an instant,
    // inside complete's transaction, which holds the table's lock anyway.
    Some(Step::unlocked(
        format!("sequence {seq} may go on to the {new_type} range (it ended at {old_max})"),
        format!("ALTER SEQUENCE {seq} AS {new_type} MAXVALUE {new_max}"),
    ))
}

impl Operation for KeyTypeChange {
    fn claimed_columns(&self) -> Vec<String> {
        self.shadow.claimed_columns()
    }

    fn default_name(&self) -> String {
        fit_name(&super::shared::type_change_name(
            &self.table,
            &self.column,
            &self.new_type,
        ))
    }

    fn plan(&self, ctx: &PlanContext) -> ZdmResult<Plan> {
        let mut plan = self.shadow.plan(ctx)?;
        plan.complete.extend(self.widen_sequence.clone());
        plan.carried_out_as = Some(CarriedOutAs {
            kind: "create_shadow_table".into(),
            alterations: self.alterations.clone(),
            reason: self.reason(),
        });
        plan.referencing_columns = self.referencing.iter().map(|r| self.referencing_note(r)).collect();
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences_widen_only_over_their_whole_old_range() {
        let int4 = pg_sys::INT4OID.to_u32();
        let int8 = pg_sys::INT8OID.to_u32();
        let seq = SqlFragment("public.t_id_seq".into());
        let bigint = SqlFragment("bigint".into());
        let info = |max, increment| SequenceInfo {
            type_oid: int4,
            max,
            increment,
        };
        let step = widen_sequence_step(&seq, &info(i32::MAX as i64, 1), int4, int8, &bigint).unwrap();
        assert_eq!(
            step.sql,
            "ALTER SEQUENCE public.t_id_seq AS bigint MAXVALUE 9223372036854775807"
        );
        // A maximum of the user's own, a descending sequence, a narrowing, a non-integer type: left alone.
        assert!(widen_sequence_step(&seq, &info(1000, 1), int4, int8, &bigint).is_none());
        assert!(widen_sequence_step(&seq, &info(i32::MAX as i64, -1), int4, int8, &bigint).is_none());
        assert!(widen_sequence_step(&seq, &info(i64::MAX, 1), int8, int4, &SqlFragment("integer".into())).is_none());
        let numeric = pg_sys::NUMERICOID.to_u32();
        assert!(widen_sequence_step(&seq, &info(i32::MAX as i64, 1), int4, numeric, &bigint).is_none());
    }
}
