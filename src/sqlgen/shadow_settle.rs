//! Keys whose shadow row may be stale, and the function that settles them.
//!
//! The backfill copies rows into the shadow without locking them in the
//! original (row locks on every source row cost a WAL record and a dirtied
//! page each: the copy ran at half the speed of a plain `INSERT ... SELECT`).
//! Without them a batch may copy a row as its snapshot saw it after a writer
//! changed it:
//! - a delete: a batch reads a row, a writer deletes it (its trigger deletes
//!   the shadow's copy if there is one: the batch's copy is not written or not
//!   committed yet, a writer's trigger may have made one after the batch's
//!   snapshot), then the batch copies the row that no longer exists;
//! - an update of a row not copied yet: the trigger finds no shadow row to
//!   update and inserts none (inserting ahead of the batches makes them meet
//!   writers' rows and start again, see `sqlgen::shadow_sync`); a batch whose
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
//! The copy phase (a shadow without indexes, see `ops::shadow_table`) uses
//! the same notes: its trigger notes every key written and nothing else, and
//! the one settle that ends it makes all those rows right at once. Nobody
//! else writes the shadow then (`no_other_writer`), so it deletes the noted
//! keys' rows and copies them again in two set statements: the general path
//! joined the notes with both whole tables four times (50,000 notes on
//! 1,000,000 rows, measured ad hoc in psql: the settle alone took 1.4 s; the
//! whole end-of-copy step, two index builds included, went from 1.86 s to
//! 1.20 s).
//!
//! Notes live in a logged table: after a crash they are still there.

use super::dollar_quote;
use crate::ident::{comment_text, Ident, Literal, QualifiedName, SqlFragment};

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

    /// The greatest key in the original or the shadow (text[], NULL when
    /// both are empty): the bound after which, once a copy phase is over and
    /// settled, no shadow row can exist that the original does not have.
    /// Each side is one backward index scan.
    pub fn greatest_key_sql(&self) -> String {
        let side = |table: String, cols: Vec<String>| {
            let texts: Vec<String> = cols.iter().map(|c| format!("{c}::text")).collect();
            let desc: Vec<String> = cols.iter().map(|c| format!("{c} DESC")).collect();
            let typed: Vec<String> = cols
                .iter()
                .zip(&self.key)
                .map(|(c, (_, ty, _))| format!("{c}::{ty}"))
                .collect();
            format!(
                "(SELECT ARRAY[{}] AS zdm_k, ROW({}) AS zdm_r FROM {table} ORDER BY {} LIMIT 1)",
                texts.join(", "),
                typed.join(", "),
                desc.join(", ")
            )
        };
        let source: Vec<String> = self.key.iter().map(|(s, _, _)| format!("zdm_s.{s}")).collect();
        let target: Vec<String> = self.key.iter().map(|(_, _, t)| format!("zdm_t.{t}")).collect();
        format!(
            "SELECT zdm_k FROM ({}\n UNION ALL {}) AS zdm_b ORDER BY zdm_r DESC LIMIT 1",
            side(format!("ONLY {} AS zdm_s", self.source), source),
            side(format!("{} AS zdm_t", self.target), target),
        )
    }

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
            own_table_only = super::own_table_only(self.source),
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

/// What is known of the backfill's upper bound (the last key it copies).
pub enum UpperBound<'a> {
    /// Not computed yet (the backfill has not begun): no key is beyond.
    NotYet,
    /// The table was empty when the backfill began: every key is beyond.
    Empty,
    /// The key, one literal per key column.
    Key(&'a [Literal]),
}

/// Key types whose order does not depend on a collation: the function below
/// compares them exactly as the batch function does, inlined or not. (Type
/// names as `introspect::type_name` writes them.)
pub fn beyond_upper_applies(key_types: &[String]) -> bool {
    const ORDERED: [&str; 8] = [
        "smallint",
        "integer",
        "bigint",
        "numeric",
        "pg_catalog.uuid",
        "pg_catalog.date",
        "timestamp without time zone",
        "timestamp with time zone",
    ];
    !key_types.is_empty() && key_types.iter().all(|t| ORDERED.contains(&t.as_str()))
}

/// `function(key...) RETURNS boolean`: true when the key sorts after the
/// backfill's upper bound. No batch copies such a key (batches stop at the
/// bound), and only writers' triggers write it in the shadow, in the same
/// transaction as the original: the shadow cannot hold a late copy of it, so
/// the trigger inserts it without probing the notes (a probe costs as much as
/// the rest of the insert's trigger). A SQL function, STABLE, without SET: the
/// trigger's `IF` inlines it and folds the bound in as a constant; replacing it
/// invalidates the plans that inlined it.
pub fn beyond_upper_function(function: &str, key_types: &[String], upper: UpperBound) -> String {
    let body = match upper {
        UpperBound::NotYet => "SELECT false".to_string(),
        UpperBound::Empty => "SELECT true".to_string(),
        UpperBound::Key(values) => {
            let params: Vec<String> = (1..=key_types.len()).map(|i| format!("${i}")).collect();
            // Inlined into a SECURITY DEFINER trigger that may run under the
            // caller's search_path: the operator is qualified, and so are the
            // type names (but for SQL keywords, which always mean pg_catalog's).
            let bound: Vec<String> = values.iter().zip(key_types).map(|(v, t)| format!("{v}::{t}")).collect();
            format!(
                "SELECT ({}) OPERATOR(pg_catalog.>) ({})",
                params.join(", "),
                bound.join(", ")
            )
        }
    };
    format!(
        "CREATE OR REPLACE FUNCTION {function}({}) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE AS {}",
        key_types.join(", "),
        dollar_quote(&format!("{body}\n"))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(schema: &str, table: &str) -> [QualifiedName; 3] {
        let n = |t: &str| QualifiedName::new(Ident::test(schema), Ident::test(t));
        [n(table), n("zdm_shadow_m"), n("zdm_stale_m")]
    }

    /// A settle of migration m over `names`, with these key pairs.
    fn settle<'a>(names: &'a [QualifiedName; 3], key: Vec<(&str, &str, &str)>) -> Settle<'a> {
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

    #[test]
    fn greatest_key_of_either_table() {
        let names = names("public", "t");
        let s = settle(&names, vec![("a", "integer", "a2"), ("b", "date", "b")]);
        assert_eq!(
            s.greatest_key_sql(),
            "SELECT zdm_k FROM ((SELECT ARRAY[zdm_s.a::text, zdm_s.b::text] AS zdm_k, ROW(zdm_s.a::integer, zdm_s.b::date) AS zdm_r FROM ONLY public.t AS zdm_s ORDER BY zdm_s.a DESC, zdm_s.b DESC LIMIT 1)\n UNION ALL (SELECT ARRAY[zdm_t.a2::text, zdm_t.b::text] AS zdm_k, ROW(zdm_t.a2::integer, zdm_t.b::date) AS zdm_r FROM public.zdm_shadow_m AS zdm_t ORDER BY zdm_t.a2 DESC, zdm_t.b DESC LIMIT 1)) AS zdm_b ORDER BY zdm_r DESC LIMIT 1"
        );
    }

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

    #[test]
    fn keys_beyond_the_upper_bound() {
        let types = vec!["bigint".to_string(), "pg_catalog.uuid".to_string()];
        assert!(beyond_upper_applies(&types));
        assert!(
            !beyond_upper_applies(&["pg_catalog.text".to_string()]),
            "collations order text"
        );
        assert!(
            !beyond_upper_applies(&["uuid".to_string()]),
            "an unqualified name may be the caller's type"
        );
        assert!(!beyond_upper_applies(&[]));
        let f = "zdm.shadow_beyond_m";
        assert_eq!(
            beyond_upper_function(f, &types, UpperBound::NotYet),
            "CREATE OR REPLACE FUNCTION zdm.shadow_beyond_m(bigint, pg_catalog.uuid) RETURNS boolean\nLANGUAGE sql STABLE PARALLEL SAFE AS $zdm$\nSELECT false\n$zdm$"
        );
        assert!(beyond_upper_function(f, &types, UpperBound::Empty).ends_with("$zdm$\nSELECT true\n$zdm$"));
        let key = [Literal::test("10"), Literal::test("it's")];
        assert!(
            beyond_upper_function(f, &types, UpperBound::Key(&key)).ends_with(
                "$zdm$\nSELECT ($1, $2) OPERATOR(pg_catalog.>) ('10'::bigint, 'it''s'::pg_catalog.uuid)\n$zdm$"
            ),
            "{}",
            beyond_upper_function(f, &types, UpperBound::Key(&key))
        );
    }
}
