//! Keys whose shadow row may be stale, and the function that settles them.
//!
//! The backfill copies rows into the shadow without locking them in the
//! original (a row lock costs a WAL record and a dirtied page per row).
//! Without them a batch may copy a row as its snapshot saw it after a writer
//! changed it:
//! - a delete: a batch reads a row, a writer deletes it (its trigger deletes
//!   the shadow's copy if there is one: the batch's copy is not written or not
//!   committed yet, a writer's trigger may have made one after the batch's
//!   snapshot), then the batch copies the row that no longer exists;
//! - an update of a row not copied yet: the trigger finds no shadow row to
//!   update and inserts none (inserting ahead of the batches makes them meet
//!   writers' rows and start again, see `shadow::sync`); a batch whose
//!   snapshot is older than the update copies the old version.
//! So the trigger notes those keys (every delete while batches run, and every
//! update that finds no shadow row) in a small table, and the settle function
//! makes the shadow rows of noted keys equal to the original's rows again:
//! - it runs after every batch (in the batch's transaction), in `zdm.verify`,
//!   and in `swap_tables` under the ACCESS EXCLUSIVE lock, where no writer is
//!   in flight and every note of a committed write is visible: the swapped
//!   table holds neither a deleted row nor an old version;
//! - it locks the shadow rows it is about to judge (`FOR UPDATE SKIP LOCKED`:
//!   a row a writer holds is left, with its note, for the next time; the
//!   settle never waits, so it cannot deadlock with a writer), then judges
//!   them in later statements, whose snapshots see every write committed
//!   before the locks: a row the original no longer has is deleted, the
//!   others take the original's values (a writer that writes the row again
//!   waits for the lock, then updates the refreshed row: its write wins).
//!   Only the rows it locked are judged, named by their ctid: a row a writer
//!   made after the locks, and that another writer held, would make the
//!   refresh wait for that writer and then write the values of its older
//!   snapshot over the writer's;
//! - a note whose key has no shadow row is dropped while batches run: only a
//!   batch that read the row before the write committed can still copy it,
//!   and such a batch has committed (or is this transaction) by the time the
//!   note is visible; later batches copy the row as the write left it. Once
//!   the batches are over (`copy_missing`) no batch will copy it: the row is
//!   copied from the original, if the original has it.
//!
//! The copy phase (a shadow without indexes, see `shadow::copy_phase`) uses
//! the same notes: its trigger notes every key written and nothing else, and
//! the one settle that ends it makes all those rows right at once. Nobody
//! else writes the shadow then (`no_other_writer`), so it deletes the noted
//! keys' rows and copies them again in two set statements, much faster than
//! the general path (see docs/shadow-tables.md, "The settle").
//!
//! Notes live in a logged table: after a crash they are still there.

use crate::ident::{comment_text, Ident, Literal, QualifiedName, SqlFragment};
use crate::sqlgen::dollar_quote;

pub struct Settle<'a> {
    pub migration: &'a str,
    pub source: &'a QualifiedName,
    pub target: &'a QualifiedName,
    /// The table of noted keys.
    pub notes: &'a QualifiedName,
    /// (source key column, its type, target key column), in key order.
    pub key: Vec<(Ident, SqlFragment, Ident)>,
    /// (target column, its value over the source row's bare column names):
    /// the columns a refresh sets (not the key, not GENERATED ALWAYS).
    pub refreshed: Vec<(Ident, String)>,
    /// (target column, its value over the source row's bare column names):
    /// every column a copy of a missing row writes (the key included).
    pub inserted: Vec<(Ident, String)>,
    /// `OVERRIDING SYSTEM VALUE` on that copy (GENERATED ALWAYS identity).
    pub overriding: bool,
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
            "pg_zdm migration {}: keys of {} whose shadow row may be stale (deleted, or updated before it was copied; see zdm.shadow_settle_...)",
            self.migration,
            self.source.display_raw()
        );
        format!("COMMENT ON TABLE {} IS {}", self.notes, Literal::pure(&text))
    }

    /// The trigger's statement noting the key of `row` (`OLD` or `NEW`).
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
            "EXISTS (SELECT FROM {} WHERE {} OPERATOR(pg_catalog.=) ({}))",
            self.notes,
            self.source_cols(""),
            vals.join(", ")
        )
    }

    /// The index behind `key_is_noted` (the trigger probes it on every insert).
    pub fn index_notes_table(&self) -> String {
        format!("CREATE INDEX ON {} {}", self.notes, self.source_cols(""))
    }

    /// The statement giving the locked rows of the settled keys the values of
    /// the original's rows (a sub-select per row: the values are written over
    /// the original's bare column names, which resolve in it first).
    fn refresh(&self) -> String {
        if self.refreshed.is_empty() {
            return String::new();
        }
        let cols: Vec<String> = self.refreshed.iter().map(|(c, _)| c.to_string()).collect();
        let vals: Vec<String> = self.refreshed.iter().map(|(_, v)| v.clone()).collect();
        format!(
            "
    -- The others take the original's values (rows deleted and inserted again,
    -- rows updated before their copy). No change when they have them already.
    UPDATE {target} AS zdm_t
       SET ({cols}) = (SELECT {vals}
                         FROM ONLY {source} AS zdm_s
                        WHERE {s_key} = {t_key})
     WHERE zdm_t.ctid = ANY (zdm_held_rows)
       AND EXISTS (SELECT FROM ONLY {source} AS zdm_s WHERE {s_key} = {t_key});",
            target = self.target,
            source = self.source,
            cols = cols.join(", "),
            vals = vals.join(", "),
            s_key = self.source_cols("zdm_s."),
            t_key = self.target_cols("zdm_t."),
        )
    }

    /// `INSERT INTO target ... SELECT ... FROM source` of the rows whose keys
    /// the notes at the ctids in `tids` (a tid[] variable) hold, each line
    /// after the first indented by 8 (no terminator).
    fn copy_noted_rows(&self, tids: &str) -> String {
        let cols: Vec<String> = self.inserted.iter().map(|(c, _)| c.to_string()).collect();
        let vals: Vec<String> = self.inserted.iter().map(|(_, v)| v.clone()).collect();
        format!(
            "INSERT INTO {target} ({cols}){overriding}
        SELECT {vals}
          FROM ONLY {source} AS zdm_s
         WHERE {s_key} IN (SELECT {n_key} FROM {notes} AS zdm_n
                            WHERE zdm_n.ctid = ANY ({tids}))",
            target = self.target,
            source = self.source,
            notes = self.notes,
            cols = cols.join(", "),
            overriding = if self.overriding {
                " OVERRIDING SYSTEM VALUE"
            } else {
                ""
            },
            vals = vals.join(", "),
            s_key = self.source_cols("zdm_s."),
            n_key = self.source_cols("zdm_n.").trim_start_matches('(').trim_end_matches(')'),
        )
    }

    /// The statement copying, when the batches are over, the rows of noted
    /// keys that the shadow lacks (`zdm_missing`) from the original.
    fn copy_missing(&self) -> String {
        format!(
            "
    IF zdm_copy_missing AND zdm_missing IS NOT NULL THEN
        -- No batch will copy them any more (rows the original gained, or
        -- changed, while the shadow was written only by the batches): they
        -- come from the original as it is now. A writer's copy made meanwhile
        -- is newer and stays.
        {}
        ON CONFLICT {} DO NOTHING;
    END IF;",
            self.copy_noted_rows("zdm_missing"),
            self.target_cols(""),
        )
    }

    /// `zdm.shadow_settle_<migration>(copy_missing)`: rows removed.
    pub fn create_function(&self, function: &QualifiedName) -> String {
        let notes = self.notes;
        let target = self.target;
        let source = self.source;
        let t_key = self.target_cols("zdm_t.");
        let n_key = self.source_cols("zdm_n.");
        let s_key = self.source_cols("zdm_s.");
        let body = format!(
            "-- pg_zdm migration {migration}: makes the rows of {target_comment} whose keys
-- are noted in {notes_comment} equal to the rows of {source_comment} again: a backfill batch
-- may have copied them as they were before a delete or an update.
-- zdm_copy_missing: the batches are over, so the shadow must also gain the
-- rows of noted keys it lacks (false while batches still copy them).
-- zdm_no_other_writer: nobody else writes the shadow now (the end of a copy
-- phase): the rows of noted keys are simply replaced, in two set statements.
DECLARE
    zdm_noted tid[];
    zdm_missing tid[];
    zdm_held_rows tid[];
    zdm_held_notes tid[];
    zdm_settled tid[];
    zdm_removed bigint;
BEGIN
    SELECT array_agg(ctid) INTO zdm_noted FROM {notes};
    IF zdm_noted IS NULL THEN
        RETURN 0;
    END IF;
    IF zdm_no_other_writer THEN
        DELETE FROM {target} AS zdm_t
         USING {notes} AS zdm_n
         WHERE zdm_n.ctid = ANY (zdm_noted) AND {t_key} = {n_key};
        GET DIAGNOSTICS zdm_removed = ROW_COUNT;
        -- A new statement: writes committed since the notes were read are
        -- copied as they are now (their own notes stay for the next settle).
        {copy_noted};
        DELETE FROM {notes} WHERE ctid = ANY (zdm_noted);
        RETURN zdm_removed;
    END IF;
    -- Notes whose key has no row in the shadow: settled as they are (a
    -- batch copies the row later), or by a copy when the batches are over.
    SELECT array_agg(zdm_n.ctid) INTO zdm_missing
      FROM {notes} AS zdm_n
     WHERE zdm_n.ctid = ANY (zdm_noted)
       AND NOT EXISTS (SELECT FROM {target} AS zdm_t WHERE {t_key} = {n_key});
{copy_missing}
    -- The shadow rows of the other notes that this call can lock, and their
    -- notes. A row a writer holds is left, with its note, for the next call.
    -- Only the rows locked here are judged below: a row a writer makes from
    -- now on is written in the same transaction as {source_comment}'s, so it is right.
    SELECT array_agg(zdm_row), array_agg(zdm_note)
      INTO zdm_held_rows, zdm_held_notes
      FROM (SELECT zdm_t.ctid AS zdm_row, zdm_n.ctid AS zdm_note
              FROM {notes} AS zdm_n
              JOIN {target} AS zdm_t ON {t_key} = {n_key}
             WHERE zdm_n.ctid = ANY (zdm_noted)
               FOR UPDATE OF zdm_t SKIP LOCKED) AS zdm_held;
    zdm_settled := coalesce(zdm_missing, '{{}}') || coalesce(zdm_held_notes, '{{}}');
    IF zdm_held_rows IS NULL THEN
        DELETE FROM {notes} WHERE ctid = ANY (zdm_settled);
        RETURN 0;
    END IF;
    -- A new statement, so a new snapshot: every write to these rows committed
    -- before the locks is seen. A key inserted again since is in {source_comment}.
    DELETE FROM {target} AS zdm_t
     WHERE zdm_t.ctid = ANY (zdm_held_rows)
       AND NOT EXISTS (SELECT FROM ONLY {source} AS zdm_s WHERE {s_key} = {t_key});
    GET DIAGNOSTICS zdm_removed = ROW_COUNT;{refresh}
    DELETE FROM {notes} WHERE ctid = ANY (zdm_settled);
    RETURN zdm_removed;
END;
",
            migration = comment_text(self.migration),
            target_comment = comment_text(&target.to_string()),
            notes_comment = comment_text(&notes.to_string()),
            source_comment = comment_text(&source.to_string()),
            refresh = self.refresh(),
            copy_missing = self.copy_missing(),
            copy_noted = self.copy_noted_rows("zdm_noted"),
        );
        format!(
            "CREATE FUNCTION {function}(zdm_copy_missing boolean DEFAULT true, zdm_no_other_writer boolean DEFAULT false)
RETURNS bigint
LANGUAGE plpgsql AS {}",
            dollar_quote(&body)
        )
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;

    pub fn names(schema: &str, table: &str) -> [QualifiedName; 3] {
        let n = |t: &str| QualifiedName::new(Ident::test(schema), Ident::test(t));
        [n(table), n("zdm_shadow_m"), n("zdm_stale_m")]
    }

    /// A settle of migration m over `names`, with these key pairs.
    pub fn settle<'a>(names: &'a [QualifiedName; 3], key: Vec<(&str, &str, &str)>) -> Settle<'a> {
        Settle {
            migration: "m",
            source: &names[0],
            target: &names[1],
            notes: &names[2],
            key: key
                .into_iter()
                .map(|(s, ty, t)| (Ident::test(s), SqlFragment(ty.into()), Ident::test(t)))
                .collect(),
            refreshed: vec![],
            inserted: vec![],
            overriding: false,
        }
    }

    #[test]
    fn settle_locks_then_judges_in_a_later_statement() {
        let names = names("My Schema", "Order; DROP TABLE x");
        let s = Settle {
            refreshed: vec![
                (Ident::test("amount"), "amount".into()),
                (Ident::test("Tax"), "(round(amount * 0.2, 2))".into()),
            ],
            inserted: vec![
                (Ident::test("a"), "a".into()),
                (Ident::test("b2"), "\"B\"".into()),
                (Ident::test("amount"), "amount".into()),
            ],
            overriding: true,
            ..settle(&names, vec![("a", "integer", "a"), ("B", "text", "b2")])
        };
        assert_eq!(
            s.create_notes_table(),
            "CREATE TABLE \"My Schema\".zdm_stale_m (a integer, \"B\" text)"
        );
        assert_eq!(
            s.note_key("OLD"),
            "INSERT INTO \"My Schema\".zdm_stale_m (a, \"B\") VALUES (OLD.a, OLD.\"B\");"
        );
        assert!(s.comment_notes_table().contains("Order; DROP TABLE x"));
        assert_eq!(
            s.key_is_noted("NEW"),
            "EXISTS (SELECT FROM \"My Schema\".zdm_stale_m WHERE (a, \"B\") OPERATOR(pg_catalog.=) (NEW.a, NEW.\"B\"))"
        );
        assert_eq!(
            s.index_notes_table(),
            "CREATE INDEX ON \"My Schema\".zdm_stale_m (a, \"B\")"
        );
        let f = s.create_function(&QualifiedName::new(Ident::test("zdm"), Ident::test("shadow_settle_m")));
        assert!(
            f.starts_with("CREATE FUNCTION zdm.shadow_settle_m(zdm_copy_missing boolean DEFAULT true, zdm_no_other_writer boolean DEFAULT false)\nRETURNS bigint"),
            "{f}"
        );
        let lock = f.find("FOR UPDATE OF zdm_t SKIP LOCKED").expect("locks");
        let judge = f
            .find("DELETE FROM \"My Schema\".zdm_shadow_m AS zdm_t\n     WHERE zdm_t.ctid = ANY (zdm_held_rows)")
            .expect("deletes");
        assert!(lock < judge, "{f}");
        assert!(
            f.contains("JOIN \"My Schema\".zdm_shadow_m AS zdm_t ON (zdm_t.a, zdm_t.b2) = (zdm_n.a, zdm_n.\"B\")"),
            "{f}"
        );
        // Only the rows it locked are judged, by their key in the original.
        assert!(
            f.contains("     WHERE zdm_t.ctid = ANY (zdm_held_rows)\n       AND NOT EXISTS (SELECT FROM ONLY \"My Schema\".\"Order; DROP TABLE x\" AS zdm_s WHERE (zdm_s.a, zdm_s.\"B\") = (zdm_t.a, zdm_t.b2));"),
            "{f}"
        );
        // The rows kept take the original's values, read in the sub-select
        // where the bare column names are the original's.
        let refresh = f
            .find("UPDATE \"My Schema\".zdm_shadow_m AS zdm_t\n       SET (amount, \"Tax\") = (SELECT amount, (round(amount * 0.2, 2))\n                         FROM ONLY \"My Schema\".\"Order; DROP TABLE x\" AS zdm_s\n                        WHERE (zdm_s.a, zdm_s.\"B\") = (zdm_t.a, zdm_t.b2))")
            .expect(&f);
        assert!(judge < refresh, "{f}");
        assert!(f.contains("     WHERE zdm_t.ctid = ANY (zdm_held_rows)\n       AND EXISTS (SELECT FROM ONLY \"My Schema\".\"Order; DROP TABLE x\" AS zdm_s WHERE (zdm_s.a, zdm_s.\"B\") = (zdm_t.a, zdm_t.b2));"), "{f}");
        // Only the notes it settled are dropped.
        assert!(f.contains("DELETE FROM \"My Schema\".zdm_stale_m WHERE ctid = ANY (zdm_settled);"));

        // Once the batches are over, the rows of noted keys the shadow lacks
        // are copied (before the rows are locked and judged).
        // With no other writer (the end of a copy phase): delete and copy again.
        let replace = f.find("    IF zdm_no_other_writer THEN").expect(&f);
        assert!(f.contains("        DELETE FROM \"My Schema\".zdm_shadow_m AS zdm_t\n         USING \"My Schema\".zdm_stale_m AS zdm_n\n         WHERE zdm_n.ctid = ANY (zdm_noted) AND (zdm_t.a, zdm_t.b2) = (zdm_n.a, zdm_n.\"B\");"), "{f}");
        assert!(f.contains("        INSERT INTO \"My Schema\".zdm_shadow_m (a, b2, amount) OVERRIDING SYSTEM VALUE\n        SELECT a, \"B\", amount\n          FROM ONLY \"My Schema\".\"Order; DROP TABLE x\" AS zdm_s\n         WHERE (zdm_s.a, zdm_s.\"B\") IN (SELECT zdm_n.a, zdm_n.\"B\" FROM \"My Schema\".zdm_stale_m AS zdm_n\n                            WHERE zdm_n.ctid = ANY (zdm_noted));\n        DELETE FROM \"My Schema\".zdm_stale_m WHERE ctid = ANY (zdm_noted);\n        RETURN zdm_removed;"), "{f}");
        assert!(replace < lock, "{f}");
        let copy = f
            .find("    IF zdm_copy_missing AND zdm_missing IS NOT NULL THEN")
            .expect(&f);
        assert!(copy < lock, "{f}");
        assert!(f.contains("        INSERT INTO \"My Schema\".zdm_shadow_m (a, b2, amount) OVERRIDING SYSTEM VALUE\n        SELECT a, \"B\", amount\n          FROM ONLY \"My Schema\".\"Order; DROP TABLE x\" AS zdm_s\n         WHERE (zdm_s.a, zdm_s.\"B\") IN (SELECT zdm_n.a, zdm_n.\"B\" FROM \"My Schema\".zdm_stale_m AS zdm_n\n                            WHERE zdm_n.ctid = ANY (zdm_missing))\n        ON CONFLICT (a, b2) DO NOTHING;"), "{f}");
    }
}
