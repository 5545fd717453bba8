//! rename_column: the new name as a second column kept in sync with the old
//! one (see `column_copy` for the phases); complete drops the old column.

use super::column_copy::ColumnCopy;
use super::{check_new_column_name, fit_name, require_column, require_key, Operation, PlanContext};
use crate::catalog::TableInfo;
use crate::error::{ZdmError, ZdmResult};
use crate::ident::{Ident, Literal};
use crate::plan::Plan;

pub struct RenameColumn {
    copy: ColumnCopy,
}

impl RenameColumn {
    pub fn new(
        table: &TableInfo,
        column: &str,
        new_name: &str,
        quote: fn(&str) -> Ident,
        rewrite: super::carry::Rewrite,
    ) -> ZdmResult<Self> {
        let col = require_column(table, column)?;
        check_new_column_name(table, new_name)?;
        let key = require_key(table)?;
        if table.is_key_column(column) {
            return Err(key_rename_refusal(table, column, new_name, quote));
        }
        let new_ident = quote(new_name);
        let carry = super::carry::carry_over(table, col, &new_ident, "rename_column", rewrite)?;
        Ok(RenameColumn {
            copy: ColumnCopy {
                table: table.name.clone(),
                old: col.clone(),
                new_name: new_ident,
                carry,
                new_type: col.type_sql.clone(),
                up: None,
                down: None,
                takes_old_name: false,
                key: key.clone(),
                final_default: col.default_sql.clone(),
                partitions: table.partitions.clone(),
            },
        })
    }
}

/// A key column cannot be renamed with both names working until complete:
/// a second column cannot stand in for the key (triggers, batches and other
/// tables' foreign keys find rows by it), and a shadow table (the way a key's
/// type changes, `key_type`) switches the name at the swap, for every client
/// at once: not what rename_column promises, so it is not chosen silently.
fn key_rename_refusal(table: &TableInfo, column: &str, new_name: &str, quote: fn(&str) -> Ident) -> ZdmError {
    let tname = table.name.display_raw();
    let (old, new) = (quote(column), quote(new_name));
    ZdmError::not_supported(format!(
        "column \"{column}\" is part of the key of relation \"{tname}\"; rename_column cannot keep both of its names working until complete"
    ))
    .hint(format!(
        "Rows are found by their key, so no second column can stand in for it. To switch names at one moment for every client: \
         SELECT zdm.create_shadow_table({}, ARRAY[{}]); (the new name from the swap on, zdm.rollback swaps back; \
         not while other tables' foreign keys reference the column), or the catalog-only ALTER TABLE {} RENAME COLUMN {old} TO {new}.",
        Literal::pure(&table.name.to_string()),
        Literal::pure(&format!("RENAME COLUMN {old} TO {new}")),
        table.name,
    ))
}

impl Operation for RenameColumn {
    fn claimed_columns(&self) -> Vec<String> {
        vec![
            self.copy.old.name.raw().to_string(),
            self.copy.new_name.raw().to_string(),
        ]
    }

    fn default_name(&self) -> String {
        fit_name(&format!(
            "{}_rename_{}_to_{}",
            self.copy.table.name.raw(),
            self.copy.old.name.raw(),
            self.copy.new_name.raw()
        ))
    }

    fn plan(&self, ctx: &PlanContext) -> ZdmResult<Plan> {
        let what = format!("copy {} into {}", self.copy.old.name.raw(), self.copy.new_name.raw());
        self.copy.plan(ctx, &what)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{ColumnInfo, Dependent, KeyInfo};
    use crate::ident::{QualifiedName, SqlFragment};

    fn users() -> TableInfo {
        TableInfo {
            oid: 1,
            name: QualifiedName::new(Ident::test("public"), Ident::test("users")),
            relkind: 'r',
            columns: vec![
                ColumnInfo::test("id", 1, "bigint", true),
                ColumnInfo::test("name", 2, "character varying(255)", true),
                ColumnInfo::test("email", 3, "text", false),
            ],
            key: Some(KeyInfo {
                index_name: "users_pkey".into(),
                is_primary: true,
                columns: vec![(Ident::test("id"), SqlFragment("bigint".into()))],
                partitions: vec![],
            }),
            dependents: vec![Dependent {
                kind: "view".into(),
                oid: 9,
                name: "rule _RETURN on view v".into(),
                attnums: vec![3],
            }],
            constraint_names: vec![],
            indexes: vec![],
            checks: vec![],
            foreign_keys: vec![],
            partitions: None,
        }
    }

    fn no_rewrite(_: &[(Ident, SqlFragment)], e: &str, _: i16, _: &Ident, _: &str) -> ZdmResult<String> {
        panic!("no expression to rewrite here: {e}")
    }

    fn ctx(m: &str) -> PlanContext {
        PlanContext {
            migration: m.into(),
            quote: Ident::test,
        }
    }

    #[test]
    fn plan_has_every_phase() {
        let op = RenameColumn::new(&users(), "name", "full_name", Ident::test, no_rewrite).unwrap();
        assert_eq!(op.default_name(), "users_rename_name_to_full_name");
        assert_eq!(op.claimed_columns(), ["name", "full_name"]);
        let p = op.plan(&ctx("m")).unwrap();
        assert_eq!(
            p.start[0].sql,
            "ALTER TABLE public.users ADD COLUMN full_name character varying(255)"
        );
        assert_eq!(
            p.start[1].sql,
            "ALTER TABLE public.users ADD CONSTRAINT zdm_nn_m CHECK (full_name IS NOT NULL) NOT VALID"
        );
        assert_eq!(
            p.start[3].sql,
            "CREATE TRIGGER zdm_sync_ins_m BEFORE INSERT ON public.users FOR EACH ROW EXECUTE FUNCTION zdm.sync_m();\n\
             ALTER TABLE public.users ENABLE ALWAYS TRIGGER zdm_sync_ins_m"
        );
        assert!(
            p.start[4]
                .sql
                .starts_with("CREATE TRIGGER zdm_sync_m BEFORE UPDATE ON public.users FOR EACH ROW WHEN ("),
            "{}",
            p.start[4].sql
        );
        assert_eq!(
            p.validate[0].sql,
            "ALTER TABLE public.users VALIDATE CONSTRAINT zdm_nn_m"
        );
        let complete: Vec<&str> = p.complete.iter().map(|s| s.sql.as_str()).collect();
        assert!(complete.contains(&"ALTER TABLE public.users DROP COLUMN name"));
        assert!(complete.contains(&"ALTER TABLE public.users ALTER COLUMN full_name SET NOT NULL"));
        assert_eq!(
            p.rollback.last().unwrap().sql,
            "ALTER TABLE public.users DROP COLUMN IF EXISTS full_name"
        );
        let b = p.backfill.unwrap();
        assert_eq!(b.function, "zdm.backfill_m");
        let func = &p.start.last().unwrap().sql;
        assert!(func.contains("SET full_name = name"));
        assert!(func.contains("AND (full_name IS NULL AND (name) IS NOT NULL)"));
    }

    #[test]
    fn refusals() {
        let t = users();
        assert_eq!(
            RenameColumn::new(&t, "nope", "x", Ident::test, no_rewrite)
                .err()
                .unwrap()
                .sqlstate(),
            "42703"
        );
        assert_eq!(
            RenameColumn::new(&t, "name", "email", Ident::test, no_rewrite)
                .err()
                .unwrap()
                .sqlstate(),
            "42701"
        );
        assert_eq!(
            RenameColumn::new(&t, "id", "user_id", Ident::test, no_rewrite)
                .err()
                .unwrap()
                .sqlstate(),
            "0A000"
        );
        let e = RenameColumn::new(&t, "email", "mail", Ident::test, no_rewrite)
            .err()
            .unwrap();
        assert_eq!(e.sqlstate(), "0A000");
        assert!(e.message.contains("view v"), "{}", e.message);
        let mut nokey = users();
        nokey.key = None;
        assert_eq!(
            RenameColumn::new(&nokey, "name", "x", Ident::test, no_rewrite)
                .err()
                .unwrap()
                .sqlstate(),
            "55000"
        );
    }
}
