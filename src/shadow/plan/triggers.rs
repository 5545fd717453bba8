//! The sync functions and triggers of a shadow plan: the forward one (the
//! original feeds the shadow; during a copy phase it only notes keys), the
//! reverse one (after the swap the new table feeds the old one), and the two
//! that follow a TRUNCATE.

use super::columns::{new_value, overriding};
use super::key::Key;
use super::names::Names;
use crate::plan::{BeyondUpper, LockMode, Step};
use crate::shadow::settle::Settle;
use crate::shadow::shape::{ShadowColumn, ShadowShape, Source};
use crate::shadow::sync::{create_trigger, NoteSql, RowCopy};
use crate::shadow::truncate::{create_truncate_trigger, truncate_function};

/// The generated texts of the row-copy functions.
pub struct SyncFunctions {
    /// The forward function while batches run.
    forward: String,
    /// The forward function once the batches are over (replaces the other).
    forward_after_backfill: String,
    reverse: String,
}

/// The trigger's statements for noted keys (see `shadow::settle`).
fn note_sql(settle: &Settle, beyond: Option<&BeyondUpper>, key: &Key, every_delete: bool) -> NoteSql {
    NoteSql {
        note_old: settle.note_key("OLD"),
        note_new: settle.note_key("NEW"),
        new_is_noted: settle.key_is_noted("NEW"),
        new_is_beyond: beyond.map(|b| {
            let args: Vec<String> = key.info.columns.iter().map(|(c, _)| format!("NEW.{c}")).collect();
            format!("{}({})", b.function, args.join(", "))
        }),
        every_delete,
    }
}

/// Whether the key's types, in the original and the shadow, are PostgreSQL's
/// own. The sync functions run under a fixed search_path only when they must:
/// with user expressions in the values, or a key type whose equality is not
/// PostgreSQL's own (type names come schema-qualified, but for the
/// keyword-spelled ones such as `integer`: see `introspect::type_name`).
fn keys_builtin(shape: &ShadowShape, key: &Key) -> bool {
    let builtin = |t: &str| t.starts_with("pg_catalog.") || (!t.contains('.') && !t.contains('"'));
    key.info.columns.iter().all(|(_, ty)| builtin(&ty.to_string()))
        && key.pairs.iter().all(|(_, s)| {
            shape
                .shadow
                .column(s.raw())
                .is_some_and(|c| builtin(&c.type_sql.to_string()))
        })
}

/// Reverse: after the swap, the new table (with the original's name) feeds the old one.
fn reverse<'a>(migration: &'a str, shape: &ShadowShape, names: &'a Names, key: &Key) -> RowCopy<'a> {
    let back: Vec<_> = shape
        .reverse
        .iter()
        .filter(|r| !r.generated && r.source.is_some())
        .collect();
    RowCopy {
        migration,
        source: &names.table,
        target: &names.old,
        key: key.pairs.iter().map(|(o, s)| (s.clone(), o.clone())).collect(),
        values: back
            .iter()
            .map(|r| (r.name.clone(), format!("NEW.{}", r.source.as_ref().expect("filtered"))))
            .collect(),
        not_updatable: back
            .iter()
            .filter(|r| r.identity_always)
            .map(|r| r.name.clone())
            .collect(),
        overriding: back.iter().any(|r| r.identity_always),
        purpose: "reverse",
        set_search_path: !keys_builtin(shape, key),
        // No backfill races the reverse direction: the old table has every row.
        notes: None,
    }
}

impl SyncFunctions {
    pub fn new(
        migration: &str,
        shape: &ShadowShape,
        names: &Names,
        key: &Key,
        written: &[&ShadowColumn],
        (settle, beyond): (&Settle, Option<&BeyondUpper>),
    ) -> SyncFunctions {
        let plain_copies = written.iter().all(|c| matches!(c.source, Source::Copy(_)));
        // Forward: the original feeds the shadow.
        let forward = RowCopy {
            migration,
            source: &names.table,
            target: &names.shadow,
            key: key.pairs.clone(),
            values: written.iter().map(|c| (c.name.clone(), new_value(c))).collect(),
            not_updatable: written
                .iter()
                .filter(|c| c.identity_always)
                .map(|c| c.name.clone())
                .collect(),
            overriding: overriding(written),
            purpose: "shadow",
            set_search_path: !(keys_builtin(shape, key) && plain_copies),
            notes: Some(note_sql(settle, beyond, key, true)),
        };
        let forward_sql = forward.create_function(&names.forward_fn);
        // Once the last batch has committed no batch can copy a deleted row any
        // more: from then on only deletes that find no copy are noted.
        let forward_after_backfill = RowCopy {
            notes: Some(note_sql(settle, beyond, key, false)),
            ..forward
        };
        SyncFunctions {
            forward: forward_sql,
            forward_after_backfill: forward_after_backfill.create_or_replace_function(&names.forward_fn),
            reverse: reverse(migration, shape, names, key).create_function(&names.reverse_fn),
        }
    }

    /// The start's sync functions and triggers, in order.
    pub fn start_steps(&self, migration: &str, names: &Names, settle: &Settle, after_copy: bool) -> Vec<Step> {
        let table = &names.table;
        vec![
            if after_copy {
                Step::unlocked(
                    "function noting the key of each row change of the original (the shadow has no index to copy it through yet)",
                    settle.create_note_every_write_function(&names.forward_fn),
                )
            } else {
                Step::unlocked(
                    "function copying each row change of the original into the shadow",
                    self.forward.clone(),
                )
            },
            Step::unlocked(
                "function copying each row change back into the old table after the swap",
                self.reverse.clone(),
            ),
            Step::unlocked(
                "function emptying the shadow (and the notes) when the original is truncated",
                truncate_function(&names.truncate_fn, migration, table, &[&names.shadow, &names.notes], "shadow sync"),
            ),
            Step::unlocked(
                "function emptying the old table when the new one is truncated after the swap",
                truncate_function(&names.reverse_truncate_fn, migration, table, &[&names.old], "reverse sync"),
            ),
            names.on_table(
                "trigger feeding the shadow from the original (waits for writers in flight, then every write is copied)",
                create_trigger(&names.forward_trigger, table, &names.forward_fn),
                LockMode::ShareRowExclusive,
            ),
            names.on_table(
                "trigger following a TRUNCATE of the original (TRUNCATE fires no row trigger)",
                create_truncate_trigger(&names.truncate_trigger, table, &names.truncate_fn),
                LockMode::ShareRowExclusive,
            ),
        ]
    }

    /// The validate step that replaces the forward function once the batches are over.
    pub fn after_backfill_step(&self, after_copy: bool) -> Step {
        Step::unlocked(
            if after_copy {
                "the sync trigger copies every write into the shadow (it only noted keys during the copy)"
            } else {
                "the sync trigger notes only the deletes that find no copy (no batch copies rows any more)"
            },
            self.forward_after_backfill.clone(),
        )
    }
}
