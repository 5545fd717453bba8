//! rename_column: expand → migrate → contract.
//!
//! - start: add the new column (same type and collation, no default yet), a
//!   `CHECK (new IS NOT NULL) NOT VALID` when the old one is NOT NULL, and the
//!   two-way sync trigger. Old and new applications both work from here on.
//! - backfill: `new = old` for existing rows, in keyset batches.
//! - validate: `VALIDATE CONSTRAINT` of the NOT NULL check (no exclusive lock).
//! - complete: drop the trigger and the old column; the new column takes the old
//!   one's default, NOT NULL (instant: the validated check proves it), owned
//!   sequence and comment.
//! - rollback: drop the trigger and the new column; the old column was never touched.

use super::{check_new_column_name, fit_name, require_column, require_key, Operation, PlanContext};
use crate::catalog::{ColumnInfo, KeyInfo, TableInfo};
use crate::error::{ZdmError, ZdmResult};
use crate::ident::{Ident, QualifiedName};
use crate::plan::{BackfillPlan, LockMode, Plan, Step};
use crate::sqlgen::backfill::KeysetUpdate;
use crate::sqlgen::column_sync::ColumnSync;

pub struct RenameColumn {
    table: QualifiedName,
    column: ColumnInfo,
    new_name: Ident,
    key: KeyInfo,
}

impl RenameColumn {
    pub fn new(table: &TableInfo, column: &str, new_name: &str, quote: fn(&str) -> Ident) -> ZdmResult<Self> {
        let col = require_column(table, column)?;
        check_new_column_name(table, new_name)?;
        let key = require_key(table)?;
        let tname = table.name.display_raw();
        if col.identity || col.generated {
            return Err(ZdmError::not_supported(format!(
                "column \"{column}\" of relation \"{tname}\" is an identity or generated column; rename_column cannot keep two copies of it"
            ))
            .hint("A plain ALTER TABLE ... RENAME COLUMN is instant; coordinate it with the application release."));
        }
        if table.is_key_column(column) {
            return Err(ZdmError::not_supported(format!(
                "column \"{column}\" is part of the key \"{}\" of relation \"{tname}\"; rename_column does not rename key columns",
                key.index_name
            ))
            .hint("Rebuild the table with zdm.create_shadow_table() and a RENAME COLUMN alteration instead."));
        }
        let users: Vec<String> =
            table.dependents_of(col.attnum).map(|d| format!("{} ({})", d.name, d.kind)).collect();
        if !users.is_empty() {
            return Err(ZdmError::not_supported(format!(
                "column \"{column}\" of relation \"{tname}\" is used by other objects that rename_column cannot carry over yet: {}",
                users.join(", ")
            ))
            .hint("Drop or recreate those objects around the migration, or rebuild the table with zdm.create_shadow_table()."));
        }
        Ok(RenameColumn {
            table: table.name.clone(),
            column: col.clone(),
            new_name: quote(new_name),
            key: key.clone(),
        })
    }

    fn sync<'a>(&'a self, function: &'a QualifiedName, trigger: &'a Ident, migration: &'a str) -> ColumnSync<'a> {
        ColumnSync {
            migration,
            table: &self.table,
            function,
            trigger,
            old: &self.column.name,
            new: &self.new_name,
            up: None,
            down: None,
        }
    }
}

impl Operation for RenameColumn {
    fn claimed_columns(&self) -> Vec<String> {
        vec![self.column.name.raw().to_string(), self.new_name.raw().to_string()]
    }

    fn default_name(&self) -> String {
        fit_name(&format!(
            "{}_rename_{}_to_{}",
            self.table.name.raw(),
            self.column.name.raw(),
            self.new_name.raw()
        ))
    }

    fn plan(&self, ctx: &PlanContext) -> ZdmResult<Plan> {
        let t = self.table.to_string();
        let (old, new) = (&self.column.name, &self.new_name);
        let function = ctx.function_name("sync");
        let trigger = ctx.object_name("sync");
        let not_null_check = ctx.object_name("nn");
        let sync = self.sync(&function, &trigger, &ctx.migration);
        let aex = LockMode::AccessExclusive;

        let mut start = vec![Step::locked(
            format!("add column {} beside {}", new.raw(), old.raw()),
            format!(
                "ALTER TABLE {t} ADD COLUMN {new} {}{}",
                self.column.type_sql,
                self.column.collation_sql.as_ref().map(|c| format!(" {c}")).unwrap_or_default()
            ),
            &t,
            aex,
        )];
        if self.column.not_null {
            start.push(Step::locked(
                format!("NOT NULL on {} as a check, not validated yet (new rows are checked)", new.raw()),
                format!("ALTER TABLE {t} ADD CONSTRAINT {not_null_check} CHECK ({new} IS NOT NULL) NOT VALID"),
                &t,
                aex,
            ));
        }
        start.push(Step::unlocked("sync trigger function", sync.create_function()));
        start.push(Step::locked(
            format!("sync trigger between {} and {}", old.raw(), new.raw()),
            sync.create_trigger(),
            &t,
            LockMode::ShareRowExclusive,
        ));

        let keyset = KeysetUpdate {
            table: &self.table,
            key: &self.key.columns,
            assignments: vec![format!("{new} = {old}")],
            needs_work: format!("{new} IS DISTINCT FROM {old}"),
        };
        let batch_function = ctx.function_name("backfill");
        let description = format!("copy {} into {} for existing rows", old.raw(), new.raw());
        start.push(Step::unlocked(
            "backfill batch function",
            keyset.create_batch_function(&batch_function, &ctx.migration, &description),
        ));
        let backfill = BackfillPlan {
            description,
            table: t.clone(),
            key_columns: self.key.columns.iter().map(|(c, _)| c.raw().to_string()).collect(),
            upper_bound_sql: keyset.upper_bound_sql(),
            function: batch_function.to_string(),
            next_batch_sql: keyset.next_batch_sql(),
        };
        let drop_batch_function =
            Step::unlocked("drop the backfill batch function", format!("DROP FUNCTION IF EXISTS {batch_function}(text[], integer, text[])"));

        let mut validate = Vec::new();
        if self.column.not_null {
            validate.push(Step::locked(
                format!("validate NOT NULL check of {} (reads and writes go on)", new.raw()),
                format!("ALTER TABLE {t} VALIDATE CONSTRAINT {not_null_check}"),
                &t,
                LockMode::ShareUpdateExclusive,
            ));
        }

        let mut complete = vec![
            Step::locked("drop the sync trigger", sync.drop_trigger(), &t, aex),
            Step::unlocked("drop the sync trigger function", sync.drop_function()),
            drop_batch_function.clone(),
        ];
        if let Some(seq) = &self.column.owned_sequence {
            complete.push(Step::unlocked(
                format!("sequence {seq} now belongs to {}", new.raw()),
                format!("ALTER SEQUENCE {seq} OWNED BY {t}.{new}"),
            ));
        }
        complete.push(Step::locked(
            format!("drop the old column {}", old.raw()),
            format!("ALTER TABLE {t} DROP COLUMN {old}"),
            &t,
            aex,
        ));
        if let Some(default) = &self.column.default_sql {
            complete.push(Step::locked(
                format!("default of {} moves to {}", old.raw(), new.raw()),
                format!("ALTER TABLE {t} ALTER COLUMN {new} SET DEFAULT {default}"),
                &t,
                aex,
            ));
        }
        if self.column.not_null {
            complete.push(Step::locked(
                format!("{} NOT NULL (instant: the validated check proves it)", new.raw()),
                format!("ALTER TABLE {t} ALTER COLUMN {new} SET NOT NULL"),
                &t,
                aex,
            ));
            complete.push(Step::locked(
                "drop the now redundant check",
                format!("ALTER TABLE {t} DROP CONSTRAINT {not_null_check}"),
                &t,
                aex,
            ));
        }
        if let Some(comment) = &self.column.comment {
            complete.push(Step::unlocked(
                format!("comment of {} moves to {}", old.raw(), new.raw()),
                format!("COMMENT ON COLUMN {t}.{new} IS {comment}"),
            ));
        }

        let rollback = vec![
            Step::locked("drop the sync trigger", sync.drop_trigger(), &t, aex),
            Step::unlocked("drop the sync trigger function", sync.drop_function()),
            drop_batch_function,
            Step::locked(
                format!("drop the new column {}", new.raw()),
                format!("ALTER TABLE {t} DROP COLUMN IF EXISTS {new}"),
                &t,
                aex,
            ),
        ];

        Ok(Plan { start, backfill: Some(backfill), validate, complete, rollback })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Dependent;
    use crate::ident::SqlFragment;

    fn col(name: &str, attnum: i16, ty: &str, not_null: bool) -> ColumnInfo {
        ColumnInfo {
            name: Ident::test(name),
            attnum,
            type_sql: SqlFragment(ty.into()),
            collation_sql: None,
            not_null,
            default_sql: None,
            identity: false,
            generated: false,
            comment: None,
            owned_sequence: None,
        }
    }

    fn users() -> TableInfo {
        TableInfo {
            oid: 1,
            name: QualifiedName::new(Ident::test("public"), Ident::test("users")),
            relkind: 'r',
            columns: vec![col("id", 1, "bigint", true), col("name", 2, "character varying(255)", true), col("email", 3, "text", false)],
            key: Some(KeyInfo {
                index_name: "users_pkey".into(),
                is_primary: true,
                columns: vec![(Ident::test("id"), SqlFragment("bigint".into()))],
            }),
            dependents: vec![Dependent { kind: "index".into(), name: "index users_email_idx".into(), attnums: vec![3] }],
        }
    }

    fn ctx(m: &str) -> PlanContext {
        PlanContext { migration: m.into(), quote: Ident::test }
    }

    #[test]
    fn plan_has_every_phase() {
        let op = RenameColumn::new(&users(), "name", "full_name", Ident::test).unwrap();
        assert_eq!(op.default_name(), "users_rename_name_to_full_name");
        assert_eq!(op.claimed_columns(), ["name", "full_name"]);
        let p = op.plan(&ctx("m")).unwrap();
        assert_eq!(p.start[0].sql, "ALTER TABLE public.users ADD COLUMN full_name character varying(255)");
        assert_eq!(p.start[1].sql, "ALTER TABLE public.users ADD CONSTRAINT zdm_nn_m CHECK (full_name IS NOT NULL) NOT VALID");
        assert!(p.start[3].sql.starts_with("CREATE TRIGGER zdm_sync_m BEFORE INSERT OR UPDATE ON public.users"));
        assert_eq!(p.validate[0].sql, "ALTER TABLE public.users VALIDATE CONSTRAINT zdm_nn_m");
        let complete: Vec<&str> = p.complete.iter().map(|s| s.sql.as_str()).collect();
        assert!(complete.contains(&"ALTER TABLE public.users DROP COLUMN name"));
        assert!(complete.contains(&"ALTER TABLE public.users ALTER COLUMN full_name SET NOT NULL"));
        assert_eq!(p.rollback[3].sql, "ALTER TABLE public.users DROP COLUMN IF EXISTS full_name");
        let b = p.backfill.unwrap();
        assert_eq!(b.function, "zdm.backfill_m");
        let func = &p.start.last().unwrap().sql;
        assert!(func.contains("SET full_name = name"));
        assert!(func.contains("AND (full_name IS DISTINCT FROM name)"));
    }

    #[test]
    fn refusals() {
        let t = users();
        assert_eq!(RenameColumn::new(&t, "nope", "x", Ident::test).err().unwrap().sqlstate(), "42703");
        assert_eq!(RenameColumn::new(&t, "name", "email", Ident::test).err().unwrap().sqlstate(), "42701");
        assert_eq!(RenameColumn::new(&t, "id", "user_id", Ident::test).err().unwrap().sqlstate(), "0A000");
        let e = RenameColumn::new(&t, "email", "mail", Ident::test).err().unwrap();
        assert_eq!(e.sqlstate(), "0A000");
        assert!(e.message.contains("users_email_idx"));
        let mut nokey = users();
        nokey.key = None;
        assert_eq!(RenameColumn::new(&nokey, "name", "x", Ident::test).err().unwrap().sqlstate(), "55000");
    }
}
