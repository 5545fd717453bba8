//! Deleted keys of a shadow migration, and the function that settles them.
//!
//! The backfill copies rows into the shadow without locking them in the
//! original (row locks on every source row cost a WAL record and a dirtied
//! page each: the copy ran at half the speed of a plain `INSERT ... SELECT`).
//! Without them one race is left: a batch reads a row, a writer deletes it
//! (its trigger deletes the shadow's copy if there is one: the batch's copy
//! is not written or not committed yet, a writer's trigger may have made one
//! after the batch's snapshot), then the batch copies the row that no longer
//! exists. So the trigger notes every deleted key in a small table, and the
//! settle function removes the copies of noted keys that the original does not
//! have:
//! - it runs after every batch (in the batch's transaction), in `zdm.verify`,
//!   and in `swap_tables` under the ACCESS EXCLUSIVE lock, where no writer is
//!   in flight and every note of a committed delete is visible: the swapped
//!   table never holds a deleted row;
//! - it locks the shadow rows it is about to judge (`FOR UPDATE SKIP LOCKED`:
//!   a row a writer holds is left, with its note, for the next time; the
//!   settle never waits, so it cannot deadlock with a writer), then judges
//!   them in a later statement, whose snapshot sees every write committed
//!   before the locks: a key inserted again since is in the original, and its
//!   row (the newer copy, written by the trigger) is kept;
//! - a note whose key has no shadow row is dropped: only a batch that read
//!   the row before the delete committed can still copy it, and such a batch
//!   has committed (or is this transaction) by the time the note is visible.
//!
//! Notes live in a logged table: after a crash they are still there.

use super::dollar_quote;
use crate::ident::{Ident, QualifiedName, SqlFragment};

pub struct Settle<'a> {
    pub migration: &'a str,
    pub source: &'a QualifiedName,
    pub target: &'a QualifiedName,
    /// The table of deleted keys.
    pub notes: &'a QualifiedName,
    /// (source key column, its type, target key column), in key order.
    pub key: Vec<(Ident, SqlFragment, Ident)>,
}

impl Settle<'_> {
    fn source_cols(&self, prefix: &str) -> String {
        let c: Vec<String> = self.key.iter().map(|(s, _, _)| format!("{prefix}{s}")).collect();
        format!("({})", c.join(", "))
    }

    fn target_cols(&self, prefix: &str) -> String {
        let c: Vec<String> = self.key.iter().map(|(_, _, t)| format!("{prefix}{t}")).collect();
        format!("({})", c.join(", "))
    }

    /// The notes table: the original's key columns, nothing else.
    pub fn create_notes_table(&self) -> String {
        let cols: Vec<String> = self.key.iter().map(|(s, ty, _)| format!("{s} {ty}")).collect();
        format!("CREATE TABLE {} ({})", self.notes, cols.join(", "))
    }

    pub fn comment_notes_table(&self) -> String {
        let text = format!(
            "pg_zdm migration {}: keys deleted from {} while the shadow was filled (see zdm.shadow_settle_...)",
            self.migration,
            self.source.display_raw()
        );
        format!("COMMENT ON TABLE {} IS '{}'", self.notes, text.replace('\'', "''"))
    }

    /// The trigger's statement noting the key of `row` (`OLD`).
    pub fn note_key(&self, row: &str) -> String {
        let vals: Vec<String> = self.key.iter().map(|(s, _, _)| format!("{row}.{s}")).collect();
        format!(
            "INSERT INTO {} {} VALUES ({});",
            self.notes,
            self.source_cols(""),
            vals.join(", ")
        )
    }

    /// True when the key of `row` (`NEW`) is noted: an index probe.
    pub fn key_is_noted(&self, row: &str) -> String {
        let vals: Vec<String> = self.key.iter().map(|(s, _, _)| format!("{row}.{s}")).collect();
        format!(
            "EXISTS (SELECT FROM {} WHERE {} = ({}))",
            self.notes,
            self.source_cols(""),
            vals.join(", ")
        )
    }

    /// The index behind `key_is_noted` (the trigger probes it on every insert).
    pub fn index_notes_table(&self) -> String {
        format!("CREATE INDEX ON {} {}", self.notes, self.source_cols(""))
    }

    /// `zdm.shadow_settle_<migration>()`: rows removed.
    pub fn create_function(&self, function: &QualifiedName) -> String {
        let notes = self.notes;
        let target = self.target;
        let source = self.source;
        let t_key = self.target_cols("zdm_t.");
        let n_key = self.source_cols("zdm_n.");
        let s_key = self.source_cols("zdm_s.");
        let body = format!(
            "-- pg_zdm migration {migration}: removes from {target} the copies a backfill
-- batch made of rows deleted from {source} after the batch read them. Each
-- delete noted its key in {notes}.
DECLARE
    zdm_noted tid[];
    zdm_settled tid[];
    zdm_removed bigint;
BEGIN
    SELECT array_agg(ctid) INTO zdm_noted FROM {notes};
    IF zdm_noted IS NULL THEN
        RETURN 0;
    END IF;
    -- The notes this call settles: keys without a row in the shadow, and keys
    -- whose row it could lock. A row a writer holds is left for the next call.
    SELECT array_agg(zdm_n.ctid) INTO zdm_settled
      FROM {notes} AS zdm_n
     WHERE zdm_n.ctid = ANY (zdm_noted)
       AND (NOT EXISTS (SELECT FROM {target} AS zdm_t WHERE {t_key} = {n_key})
            OR EXISTS (SELECT FROM {target} AS zdm_t WHERE {t_key} = {n_key}
                          FOR UPDATE OF zdm_t SKIP LOCKED));
    IF zdm_settled IS NULL THEN
        RETURN 0;
    END IF;
    -- A new statement, so a new snapshot: every write to these rows committed
    -- before the locks is seen. A key inserted again since is in {source}.
    DELETE FROM {target} AS zdm_t
     USING {notes} AS zdm_n
     WHERE zdm_n.ctid = ANY (zdm_settled)
       AND {t_key} = {n_key}
       AND NOT EXISTS (SELECT FROM ONLY {source} AS zdm_s WHERE {s_key} = {n_key});
    GET DIAGNOSTICS zdm_removed = ROW_COUNT;
    DELETE FROM {notes} WHERE ctid = ANY (zdm_settled);
    RETURN zdm_removed;
END;
",
            migration = self.migration.replace('\n', " "),
        );
        format!(
            "CREATE FUNCTION {function}() RETURNS bigint
LANGUAGE plpgsql AS {}",
            dollar_quote(&body)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settle_locks_then_judges_in_a_later_statement() {
        let src = QualifiedName::new(Ident::test("My Schema"), Ident::test("Order; DROP TABLE x"));
        let dst = QualifiedName::new(Ident::test("My Schema"), Ident::test("zdm_shadow_m"));
        let notes = QualifiedName::new(Ident::test("My Schema"), Ident::test("zdm_deleted_m"));
        let s = Settle {
            migration: "m",
            source: &src,
            target: &dst,
            notes: &notes,
            key: vec![
                (Ident::test("a"), SqlFragment("integer".into()), Ident::test("a")),
                (Ident::test("B"), SqlFragment("text".into()), Ident::test("b2")),
            ],
        };
        assert_eq!(
            s.create_notes_table(),
            "CREATE TABLE \"My Schema\".zdm_deleted_m (a integer, \"B\" text)"
        );
        assert_eq!(
            s.note_key("OLD"),
            "INSERT INTO \"My Schema\".zdm_deleted_m (a, \"B\") VALUES (OLD.a, OLD.\"B\");"
        );
        assert!(s.comment_notes_table().contains("Order; DROP TABLE x"));
        assert_eq!(
            s.key_is_noted("NEW"),
            "EXISTS (SELECT FROM \"My Schema\".zdm_deleted_m WHERE (a, \"B\") = (NEW.a, NEW.\"B\"))"
        );
        assert_eq!(
            s.index_notes_table(),
            "CREATE INDEX ON \"My Schema\".zdm_deleted_m (a, \"B\")"
        );
        let f = s.create_function(&QualifiedName::new(Ident::test("zdm"), Ident::test("shadow_settle_m")));
        assert!(
            f.starts_with("CREATE FUNCTION zdm.shadow_settle_m() RETURNS bigint"),
            "{f}"
        );
        let lock = f.find("FOR UPDATE OF zdm_t SKIP LOCKED").expect("locks");
        let judge = f
            .find("DELETE FROM \"My Schema\".zdm_shadow_m AS zdm_t")
            .expect("deletes");
        assert!(lock < judge, "{f}");
        assert!(f.contains("WHERE (zdm_t.a, zdm_t.b2) = (zdm_n.a, zdm_n.\"B\")"), "{f}");
        assert!(
            f.contains("NOT EXISTS (SELECT FROM ONLY \"My Schema\".\"Order; DROP TABLE x\" AS zdm_s WHERE (zdm_s.a, zdm_s.\"B\") = (zdm_n.a, zdm_n.\"B\"))"),
            "{f}"
        );
        // Only the notes it settled are dropped.
        assert!(f.contains("DELETE FROM \"My Schema\".zdm_deleted_m WHERE ctid = ANY (zdm_settled);"));
    }
}
