//! The sync function of a copy phase: while the shadow has no indexes, the
//! trigger only notes the key of every row written; the settle that ends
//! the copy phase makes those rows right (see `shadow::settle`).

use crate::ident::{comment_text, QualifiedName};
use crate::shadow::settle::Settle;
use crate::sqlgen::dollar_quote;

impl Settle<'_> {
    /// The sync function of the copy phase, while the shadow has no indexes:
    /// it only notes the key of every row written (the old and the new key
    /// of an update that moves a row); the settle run once the indexes are
    /// built makes those rows right. SECURITY DEFINER like the row-copy
    /// function it is replaced by, every name and operator qualified.
    pub fn create_note_every_write_function(&self, function: &QualifiedName) -> String {
        let key = |row: &str| {
            let c: Vec<String> = self.key.iter().map(|(s, _, _)| format!("{row}.{s}")).collect();
            format!("({})", c.join(", "))
        };
        let body = format!(
            "-- pg_zdm migration {migration} (shadow sync, copy phase): notes the key
-- of every row written in {source}. The batches copy rows into {target},
-- which has no index yet; once its indexes are built this function is
-- replaced by the one that copies each write, and the settle makes the rows
-- of the noted keys equal to the original's.
BEGIN
    {own_table_only}
    IF TG_OP OPERATOR(pg_catalog.=) 'INSERT' THEN
        {note_new}
    ELSE
        {note_old}
        IF TG_OP OPERATOR(pg_catalog.=) 'UPDATE' AND {old} OPERATOR(pg_catalog.<>) {new} THEN
            {note_new}
        END IF;
    END IF;
    RETURN NULL;
END;
",
            migration = comment_text(self.migration),
            source = comment_text(&self.source.to_string()),
            target = comment_text(&self.target.to_string()),
            own_table_only = crate::sqlgen::own_table_only(self.source),
            note_new = self.note_key("NEW"),
            note_old = self.note_key("OLD"),
            old = key("OLD"),
            new = key("NEW"),
        );
        format!(
            "CREATE FUNCTION {function}() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER AS {}",
            dollar_quote(&body)
        )
    }
}

#[cfg(test)]
mod tests {
    use crate::ident::{Ident, QualifiedName};
    use crate::shadow::settle::tests::{names, settle};

    #[test]
    fn the_copy_phase_trigger_notes_every_key_written() {
        let names = names("public", "Order; DROP TABLE x");
        let s = settle(&names, vec![("id", "bigint", "id")]);
        let f =
            s.create_note_every_write_function(&QualifiedName::new(Ident::test("zdm"), Ident::test("shadow_sync_m")));
        assert!(
            f.starts_with(
                "CREATE FUNCTION zdm.shadow_sync_m() RETURNS trigger\nLANGUAGE plpgsql SECURITY DEFINER AS $zdm$"
            ),
            "{f}"
        );
        assert!(f.contains("    IF TG_OP OPERATOR(pg_catalog.=) 'INSERT' THEN\n        INSERT INTO public.zdm_stale_m (id) VALUES (NEW.id);\n    ELSE\n        INSERT INTO public.zdm_stale_m (id) VALUES (OLD.id);\n        IF TG_OP OPERATOR(pg_catalog.=) 'UPDATE' AND (OLD.id) OPERATOR(pg_catalog.<>) (NEW.id) THEN\n            INSERT INTO public.zdm_stale_m (id) VALUES (NEW.id);\n        END IF;\n    END IF;\n    RETURN NULL;"), "{f}");
        // Nothing in it touches the shadow, which has no index yet.
        assert!(!f.split("BEGIN").nth(1).unwrap().contains("zdm_shadow_m"), "{f}");
    }
}
