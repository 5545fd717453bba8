//! The plan of a shadow migration (`create_shadow_table`, and
//! `alter_column_type` of a key column, which becomes one), from the shape
//! `probe` learnt; everything after the probe is pure.
//!
//! start:    the shadow (LIKE the original, then the alterations; by default
//!           without its indexes until the rows are copied), its outgoing
//!           foreign keys NOT VALID, the notes and the settle, the batch
//!           function, the sync functions and the trigger that feeds the
//!           shadow (during a copy phase it only notes keys);
//! backfill: keyset batches copy the rows (`BatchWork::CopyInto`);
//! validate: after a copy phase, the index builds and the settles; the sync
//!           function that copies every write; VALIDATE of the foreign keys;
//! then `zdm.verify()` and `zdm.swap_tables()` (`shadow::verify`, `shadow::swap`);
//! complete: drop the old table and the reverse trigger, give indexes and
//!           identity sequences the original names;
//! rollback: drop the trigger feeding the shadow and the shadow.
//! The phases, locks and races in detail: docs/shadow-tables.md.
//!
//! - `key`: refusals (the key the shadow must keep, columns nothing fills);
//! - `names`: every generated object's name;
//! - `columns`: the columns written, and their values;
//! - `triggers`: the sync functions and triggers;
//! - `copy`: batches, settle, the inserts' bound, the index builds;
//! - `phases`: the shadow's creation, foreign keys, complete and rollback;
//! - `record`: the `ShadowPlan` kept for verify, the swap and complete.

mod columns;
mod copy;
mod key;
mod names;
mod phases;
mod record;
mod triggers;

use crate::catalog::TableInfo;
use crate::error::ZdmResult;
use crate::ident::QualifiedName;
use crate::ops::{require_key, Operation, PlanContext};
use crate::plan::Plan;
use crate::shadow::probe::ProbeRequest;
use crate::shadow::shape::ShadowShape;
use crate::spec::ShadowTableSpec;
use names::Names;
use std::collections::BTreeMap;

pub type Probe = fn(&ProbeRequest) -> ZdmResult<ShadowShape>;

pub struct ShadowTable {
    table: TableInfo,
    alterations: Vec<String>,
    column_map: BTreeMap<String, String>,
    probe: Probe,
}

impl ShadowTable {
    /// Its names are quoted by the `PlanContext` it is planned with.
    pub fn new(table: &TableInfo, spec: &ShadowTableSpec, probe: Probe) -> ZdmResult<Self> {
        require_key(table)?;
        Ok(ShadowTable {
            table: table.clone(),
            alterations: spec.alterations.clone(),
            column_map: spec.column_map.clone().unwrap_or_default(),
            probe,
        })
    }
}

impl Operation for ShadowTable {
    fn claimed_columns(&self) -> Vec<String> {
        vec![crate::spec::WHOLE_TABLE.to_string()]
    }

    fn default_name(&self) -> String {
        crate::ops::fit_name(&format!("{}_restructure", self.table.name.name.raw()))
    }

    fn plan(&self, ctx: &PlanContext) -> ZdmResult<Plan> {
        let schema = &self.table.name.schema;
        let shadow_name = QualifiedName::new(schema.clone(), ctx.object_name("shadow"));
        let old_name = QualifiedName::new(schema.clone(), ctx.object_name("old"));
        let shape = (self.probe)(&ProbeRequest {
            original: &self.table,
            shadow: &shadow_name,
            alterations: &self.alterations,
            column_map: &self.column_map,
        })?;
        plan_from_shape(ctx, &shape, &old_name, crate::guc::SHADOW_INDEXES_AFTER_COPY.get())
    }
}

/// Everything after the probe: pure. `indexes_after_copy`: copy the rows
/// into the shadow without its indexes and build them after the copy; not
/// done for a shadow with a foreign key to itself, which needs the
/// referenced key's index to exist.
pub fn plan_from_shape(
    ctx: &PlanContext,
    shape: &ShadowShape,
    old_name: &QualifiedName,
    indexes_after_copy: bool,
) -> ZdmResult<Plan> {
    let key = key::matched_key(shape)?;
    key::every_column_filled(shape)?;
    let shadow = shape.shadow_name().to_string();
    let after_copy = indexes_after_copy
        && !shape.indexes_to_build.is_empty()
        && !shape.foreign_keys.iter().any(|fk| fk.referenced == shadow);
    let names = Names::new(ctx, shape, old_name);
    let written = columns::written(shape);
    let settle = copy::settle(&ctx.migration, &names, &key, &written);
    let beyond = copy::beyond_upper(&names, &key, after_copy, &settle);
    let sync = triggers::SyncFunctions::new(
        &ctx.migration,
        shape,
        &names,
        &key,
        &written,
        (&settle, beyond.as_ref()),
    );
    let (create_batch, drop_batch, mut backfill) = copy::batch(ctx, &names, &key, &written, after_copy);
    backfill.beyond_upper = beyond.clone();
    let (fk_start, fk_validate) = phases::foreign_keys(shape, &names);

    let mut start = phases::create_shadow(shape, &names, after_copy);
    start.extend(fk_start);
    start.extend(phases::notes_and_settle(&settle, &names, beyond.as_ref()));
    start.push(create_batch);
    start.extend(sync.start_steps(&ctx.migration, &names, &settle, after_copy));
    let mut validate = match after_copy {
        true => copy::index_builds(shape, &names, &key),
        false => Vec::new(),
    };
    validate.push(sync.after_backfill_step(after_copy));
    validate.extend(fk_validate);
    let drop_generated = phases::drop_generated(&names, drop_batch, beyond.as_ref());
    Ok(Plan {
        start,
        backfill: Some(backfill),
        validate,
        complete: phases::complete(shape, &names, drop_generated.clone()),
        rollback: phases::rollback(&names, drop_generated),
        shadow: Some(record::shadow_plan(shape, &names, &key, &written, after_copy)),
        ..Default::default()
    })
}
