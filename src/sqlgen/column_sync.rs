//! The sync trigger of a column migration: an old column (written by the old
//! application) and a new one (written by the new application) kept consistent.
//!
//! Rules (both directions, no session state involved, so it works behind
//! PgBouncer in transaction mode and for any `search_path`):
//! - INSERT: a new application gives the new column, an old application can only
//!   give the old one. If the new column is set it wins and fills the old one;
//!   otherwise the old one fills the new one.
//! - UPDATE: the side that changed (`IS DISTINCT FROM` the OLD row) wins and is
//!   propagated, NULL included; the new side wins if both changed, and is not
//!   propagated when it equals what the old side gives (`up(old)`: the
//!   backfill's write), so the old column never goes through a lossy round trip; an UPDATE that
//!   touches neither leaves both alone, except that a row the backfill has not
//!   reached yet (new NULL, old set) gets its new value now: PostgreSQL checks a
//!   `NOT VALID` constraint on every new row version, so an unrelated UPDATE of
//!   an old row would otherwise fail the new column's NOT NULL check.
//! The new column has no default during the migration (complete gives it the
//! old one's), so "not given" reads as NULL on INSERT.

use super::{dollar_quote, RowTrigger};
use crate::ident::{comment_text, Ident, QualifiedName};

pub struct ColumnSync<'a> {
    pub migration: &'a str,
    pub table: &'a QualifiedName,
    pub function: &'a QualifiedName,
    /// BEFORE UPDATE trigger, with a WHEN clause.
    pub trigger: &'a Ident,
    /// BEFORE INSERT trigger.
    pub insert_trigger: &'a Ident,
    pub old: &'a Ident,
    pub new: &'a Ident,
    /// New value from the row (`NEW.` references); `None` copies the old column.
    pub up: Option<&'a str>,
    /// Old value from the row; `None` copies the new column.
    pub down: Option<&'a str>,
    /// A partitioned table's partitions (oids; empty for a plain table).
    pub partitions: &'a [u32],
}

impl ColumnSync<'_> {
    fn up_expr(&self) -> String {
        self.up
            .map(str::to_string)
            .unwrap_or_else(|| format!("NEW.{}", self.old))
    }

    fn down_expr(&self) -> String {
        self.down
            .map(str::to_string)
            .unwrap_or_else(|| format!("NEW.{}", self.new))
    }

    /// `CREATE FUNCTION` for the trigger function, readable with `\sf`.
    pub fn create_function(&self) -> String {
        let (old, new) = (self.old, self.new);
        let body = format!(
            "-- pg_zdm migration {migration}: keeps {old_column} (old application)
-- and {new_column} (new application) consistent until the migration completes.
BEGIN
    {own_table_only}
    IF TG_OP = 'INSERT' THEN
        IF NEW.{new} IS NOT NULL THEN
            NEW.{old} := {down};
        ELSE
            NEW.{new} := {up};
        END IF;
    ELSIF NEW.{new} IS DISTINCT FROM OLD.{new} THEN
        IF OLD.{new} IS NOT NULL THEN
            NEW.{old} := {down};
        ELSIF NEW.{new} IS DISTINCT FROM {up} THEN
            -- Filled from NULL with a value of its own: the new application wrote it.
            NEW.{old} := {down};
        END IF;
        -- Otherwise the new column was filled from NULL with the value the old
        -- one gives (the backfill's own write): the old column stays as it is,
        -- never put through a lossy round trip by down().
    ELSIF NEW.{old} IS DISTINCT FROM OLD.{old} THEN
        NEW.{new} := {up};
    ELSIF NEW.{new} IS NULL AND NEW.{old} IS NOT NULL THEN
        -- a row the backfill has not reached yet: fill it now, so that a
        -- NOT NULL check on the new column holds for this new row version.
        NEW.{new} := {up};
    END IF;
    RETURN NEW;
END;
",
            migration = comment_text(self.migration),
            old_column = comment_text(&format!("{}.{old}", self.table)),
            new_column = comment_text(&format!("{}.{new}", self.table)),
            own_table_only = super::own_table_or_partitions(self.table, self.partitions),
            up = self.up_expr(),
            down = self.down_expr(),
        );
        format!(
            "CREATE FUNCTION {}() RETURNS trigger LANGUAGE plpgsql AS {}",
            self.function,
            dollar_quote(&body)
        )
    }

    /// Two triggers run the function: one for every INSERT, and one for the
    /// UPDATEs that change either column or meet a row the backfill has not
    /// reached yet. The WHEN clause is evaluated by the executor, without
    /// entering PL/pgSQL, so an UPDATE of unrelated columns costs (almost)
    /// nothing. Named `zdm_...`, they fire after the user's own BEFORE
    /// triggers (PostgreSQL fires them in name order) and see their changes.
    pub fn create_triggers(&self) -> Vec<String> {
        let (t, f, old, new) = (self.table, self.function, self.old, self.new);
        vec![
            super::fire_always(
                format!(
                    "CREATE TRIGGER {} BEFORE INSERT ON {t} FOR EACH ROW EXECUTE FUNCTION {f}()",
                    self.insert_trigger
                ),
                self.insert_trigger,
                t,
            ),
            super::fire_always(
                format!(
                    "CREATE TRIGGER {} BEFORE UPDATE ON {t} FOR EACH ROW \
                     WHEN (NEW.{new} IS DISTINCT FROM OLD.{new} OR NEW.{old} IS DISTINCT FROM OLD.{old} \
                     OR (NEW.{new} IS NULL AND NEW.{old} IS NOT NULL)) EXECUTE FUNCTION {f}()",
                    self.trigger
                ),
                self.trigger,
                t,
            ),
        ]
    }

    pub fn drop_triggers(&self) -> Vec<String> {
        [self.insert_trigger, self.trigger]
            .iter()
            .map(|trg| {
                RowTrigger {
                    table: self.table,
                    function: self.function,
                    trigger: trg,
                }
                .drop_trigger()
            })
            .collect()
    }

    pub fn drop_function(&self) -> String {
        RowTrigger {
            table: self.table,
            function: self.function,
            trigger: self.trigger,
        }
        .drop_function()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample<'a>(
        t: &'a QualifiedName,
        f: &'a QualifiedName,
        trg: &'a Ident,
        old: &'a Ident,
        new: &'a Ident,
    ) -> ColumnSync<'a> {
        ColumnSync {
            migration: "m1",
            table: t,
            function: f,
            trigger: trg,
            insert_trigger: trg,
            old,
            new,
            up: None,
            down: None,
            partitions: &[],
        }
    }

    #[test]
    fn rename_trigger_copies_both_ways() {
        let t = QualifiedName::new(Ident::test("public"), Ident::test("Users"));
        let f = QualifiedName::new(Ident::test("zdm"), Ident::test("sync_m1"));
        let trg = Ident::test("zdm_sync_m1");
        let (old, new) = (Ident::test("name"), Ident::test("full name"));
        let s = sample(&t, &f, &trg, &old, &new);
        let sql = s.create_function();
        assert!(
            sql.starts_with("CREATE FUNCTION zdm.sync_m1() RETURNS trigger LANGUAGE plpgsql AS $zdm$"),
            "{sql}"
        );
        assert!(
            sql.contains("IF NEW.\"full name\" IS NOT NULL THEN\n            NEW.name := NEW.\"full name\";"),
            "{sql}"
        );
        assert!(sql.contains("ELSIF NEW.\"full name\" IS DISTINCT FROM OLD.\"full name\" THEN\n        IF OLD"));
        assert!(
            sql.contains(
                "IF OLD.\"full name\" IS NOT NULL THEN\n            NEW.name := NEW.\"full name\";\n        ELSIF NEW.\"full name\" IS DISTINCT FROM NEW.name THEN"
            ),
            "{sql}"
        );
        assert!(sql.contains("ELSIF NEW.name IS DISTINCT FROM OLD.name THEN\n        NEW.\"full name\" := NEW.name;"));
        assert!(sql.contains("public.\"Users\".name (old application)"));
        let triggers = s.create_triggers();
        assert_eq!(
            triggers[0],
            "CREATE TRIGGER zdm_sync_m1 BEFORE INSERT ON public.\"Users\" FOR EACH ROW EXECUTE FUNCTION zdm.sync_m1();\n\
             ALTER TABLE public.\"Users\" ENABLE ALWAYS TRIGGER zdm_sync_m1"
        );
        assert!(triggers[1].starts_with("CREATE TRIGGER zdm_sync_m1 BEFORE UPDATE ON public.\"Users\" FOR EACH ROW WHEN (NEW.\"full name\" IS DISTINCT FROM OLD.\"full name\" OR NEW.name IS DISTINCT FROM OLD.name OR (NEW.\"full name\" IS NULL AND NEW.name IS NOT NULL))"), "{}", triggers[1]);
    }

    #[test]
    fn names_in_the_comment_stay_in_it() {
        let t = QualifiedName::new(Ident::test("public"), Ident::test("x\nDECLARE z int := 1; --"));
        let f = QualifiedName::new(Ident::test("zdm"), Ident::test("sync_m1"));
        let trg = Ident::test("zdm_sync_m1");
        let (old, new) = (Ident::test("a\rb"), Ident::test("c"));
        let mut s = sample(&t, &f, &trg, &old, &new);
        s.migration = "m\u{2028}1";
        let sql = s.create_function();
        assert!(
            sql.contains(
                "$zdm$\n-- pg_zdm migration m\\u{2028}1: keeps public.\"x\\nDECLARE z int := 1; --\".\"a\\rb\" (old application)\n-- and public.\"x\\nDECLARE z int := 1; --\".c (new application) consistent"
            ),
            "{sql}"
        );
        // The code itself keeps the real name (a newline inside a quoted identifier).
        assert!(sql.contains("NEW.\"a\rb\" := NEW.c;"), "{sql}");
    }

    #[test]
    fn conversion_expressions_are_used() {
        let t = QualifiedName::new(Ident::test("public"), Ident::test("orders"));
        let f = QualifiedName::new(Ident::test("zdm"), Ident::test("sync_m2"));
        let trg = Ident::test("zdm_sync_m2");
        let (old, new) = (Ident::test("amount"), Ident::test("amount_new"));
        let mut s = sample(&t, &f, &trg, &old, &new);
        s.up = Some("NEW.amount::numeric(10,2)");
        s.down = Some("round(NEW.amount_new)::integer");
        let sql = s.create_function();
        assert!(sql.contains("NEW.amount_new := NEW.amount::numeric(10,2);"));
        assert!(sql.contains("NEW.amount := round(NEW.amount_new)::integer;"));
    }
}
