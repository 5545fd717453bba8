//! The fill trigger: gives a column a value on every row written while a
//! migration runs, when the writer left it NULL. Used while a NOT NULL check
//! (NOT VALID) protects a column that writers of the old application version
//! do not know about (add_column, drop_column) or that still holds NULLs in
//! rows the backfill has not reached (set_not_null): PostgreSQL checks such a
//! constraint on every new row version, including an unrelated UPDATE of an
//! old row. And for a nullable column added with a `fill_expr`, on INSERT
//! only: rows the old application inserts after the backfill get the value
//! too, while an UPDATE that sets NULL keeps it.

use super::{dollar_quote, fire_always, RowTrigger};
use crate::ident::{comment_text, Ident, QualifiedName};

/// The writes the fill trigger fires for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FillOn {
    /// A nullable column: a NULL an UPDATE writes is meant.
    Insert,
    /// A NOT NULL check holds for every new row version.
    InsertOrUpdate,
}

pub struct FillTrigger<'a> {
    pub migration: &'a str,
    pub table: &'a QualifiedName,
    pub function: &'a QualifiedName,
    pub trigger: &'a Ident,
    pub column: &'a Ident,
    /// The value, over the `NEW` row (already cast to the column's type).
    pub value_over_new: &'a str,
    /// Why, for the comment in the function body (names in it are quoted;
    /// the whole text goes through `comment_text`).
    pub why: &'a str,
    pub on: FillOn,
    /// A partitioned table's partitions (oids; empty for a plain table).
    pub partitions: &'a [u32],
}

impl FillTrigger<'_> {
    pub fn create_function(&self) -> String {
        let body = format!(
            "-- pg_zdm migration {migration}: {why}.
BEGIN
    {own_table_only}
    IF NEW.{col} IS NULL THEN
        NEW.{col} := {value};
    END IF;
    RETURN NEW;
END;
",
            migration = comment_text(self.migration),
            why = comment_text(self.why),
            col = self.column,
            own_table_only = super::own_table_or_partitions(self.table, self.partitions),
            value = self.value_over_new,
        );
        format!(
            "CREATE FUNCTION {}() RETURNS trigger LANGUAGE plpgsql AS {}",
            self.function,
            dollar_quote(&body)
        )
    }

    /// `CREATE TRIGGER`, BEFORE the writes of `on` (see `RowTrigger`).
    pub fn create_trigger(&self) -> String {
        let events = match self.on {
            FillOn::Insert => "INSERT",
            FillOn::InsertOrUpdate => "INSERT OR UPDATE",
        };
        fire_always(
            format!(
                "CREATE TRIGGER {} BEFORE {events} ON {} FOR EACH ROW EXECUTE FUNCTION {}()",
                self.trigger, self.table, self.function
            ),
            self.trigger,
            self.table,
        )
    }

    /// The trigger around the function, to drop them (see `RowTrigger`).
    pub fn trigger(&self) -> RowTrigger<'_> {
        RowTrigger {
            table: self.table,
            function: self.function,
            trigger: self.trigger,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_only_nulls() {
        let t = QualifiedName::new(Ident::test("public"), Ident::test("users"));
        let f = QualifiedName::new(Ident::test("zdm"), Ident::test("fill_m"));
        let trg = Ident::test("zdm_fill_m");
        let col = Ident::test("Email");
        let ft = FillTrigger {
            migration: "m",
            table: &t,
            function: &f,
            trigger: &trg,
            column: &col,
            value_over_new: "(lower(NEW.name) || '@example.com')::text",
            why: "fills Email",
            on: FillOn::InsertOrUpdate,
            partitions: &[],
        };
        let sql = ft.create_function();
        assert!(
            sql.contains(
                "IF NEW.\"Email\" IS NULL THEN\n        NEW.\"Email\" := (lower(NEW.name) || '@example.com')::text;"
            ),
            "{sql}"
        );
        assert_eq!(ft.create_trigger(), "CREATE TRIGGER zdm_fill_m BEFORE INSERT OR UPDATE ON public.users FOR EACH ROW EXECUTE FUNCTION zdm.fill_m();\n\
             ALTER TABLE public.users ENABLE ALWAYS TRIGGER zdm_fill_m");
        let insert_only = FillTrigger {
            on: FillOn::Insert,
            ..ft
        };
        assert_eq!(
            insert_only.create_trigger(),
            "CREATE TRIGGER zdm_fill_m BEFORE INSERT ON public.users FOR EACH ROW EXECUTE FUNCTION zdm.fill_m();\n\
             ALTER TABLE public.users ENABLE ALWAYS TRIGGER zdm_fill_m"
        );
    }
}
