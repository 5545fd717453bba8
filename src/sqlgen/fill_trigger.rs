//! The fill trigger: gives a column a value on every row written while a
//! migration runs, when the writer left it NULL. Used while a NOT NULL check
//! (NOT VALID) protects a column that writers of the old application version
//! do not know about (add_column, drop_column) or that still holds NULLs in
//! rows the backfill has not reached (set_not_null): PostgreSQL checks such a
//! constraint on every new row version, including an unrelated UPDATE of an
//! old row.

use super::{dollar_quote, RowTrigger};
use crate::ident::{comment_text, Ident, QualifiedName};

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
            own_table_only = super::own_table_only(self.table),
            value = self.value_over_new,
        );
        format!(
            "CREATE FUNCTION {}() RETURNS trigger LANGUAGE plpgsql AS {}",
            self.function,
            dollar_quote(&body)
        )
    }

    /// The trigger around the function (see `RowTrigger`).
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
        };
        let sql = ft.create_function();
        assert!(
            sql.contains(
                "IF NEW.\"Email\" IS NULL THEN\n        NEW.\"Email\" := (lower(NEW.name) || '@example.com')::text;"
            ),
            "{sql}"
        );
        assert_eq!(ft.trigger().create_trigger(), "CREATE TRIGGER zdm_fill_m BEFORE INSERT OR UPDATE ON public.users FOR EACH ROW EXECUTE FUNCTION zdm.fill_m();\n\
             ALTER TABLE public.users ENABLE ALWAYS TRIGGER zdm_fill_m");
    }
}
