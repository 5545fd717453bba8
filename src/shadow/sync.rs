//! The row-copy trigger of a shadow migration.
//!
//! One generator serves both directions: before the swap the original table
//! feeds the shadow, after it the new table feeds the old one (so the swap can
//! be undone without losing a write).
//!
//! The trigger is AFTER ... FOR EACH ROW, so it sees the row as finally
//! written (after every BEFORE trigger), and makes the target row with the same
//! key equal to it, in the writer's own transaction:
//! - DELETE: delete the target row;
//! - UPDATE, same key: update the target row; if there is none yet, the
//!   backfill has not copied it: before the swap (`notes`) the key is noted
//!   and nothing is inserted (a batch will copy the row, or the settle will
//!   refresh a copy a batch made from an older snapshot); after it (the
//!   reverse direction, whose target has every row) it is inserted;
//! - UPDATE that changes the key: delete the old key's row, insert the new one;
//! - INSERT: insert (a new key cannot be in the target already).
//! Racing the backfill: an update never inserts a row ahead of the batches,
//! so the batches rarely meet a writer's row (only keys inserted or moved into
//! the range they copy); when they do they skip keys the target has and fall
//! back to `ON CONFLICT DO NOTHING`; whichever writes a key second waits for
//! the first to commit, and the trigger's copy (the newer) always wins
//! (docs/shadow-tables.md says why an update does not upsert). A delete notes
//! the key (`notes`), since a batch that read the row before the delete may
//! still copy it, whether or not the delete found a copy to delete (a writer's
//! trigger may have made one after the batch's snapshot);
//! `shadow::settle` removes such copies. Until then an insert of the same
//! key finds that copy, so an insert of a noted key goes through
//! `ON CONFLICT ... DO UPDATE` (only those: a speculative insertion costs
//! every insert). Keys after the backfill's upper bound (new rows, the usual
//! insert) need not even probe the notes: no batch copies them
//! (`new_is_beyond`).
//!
//! The function is SECURITY DEFINER: the roles that write the table need no
//! privilege on the target. Every name in the body is schema-qualified,
//! operators included; a fixed search_path is set on the function only when
//! the values hold user expressions or a key type lives outside pg_catalog
//! (`set_search_path`).

use crate::ident::{comment_text, Ident, QualifiedName};
use crate::sqlgen::dollar_quote;
use std::fmt::Display;

/// Equality, whatever the caller's search_path (the trigger is SECURITY
/// DEFINER: an `=` of the caller's schemas must never run in it).
pub const EQ: &str = "OPERATOR(pg_catalog.=)";

pub struct RowCopy<'a> {
    pub migration: &'a str,
    pub source: &'a QualifiedName,
    pub target: &'a QualifiedName,
    /// (source key column, target key column), in key order.
    pub key: Vec<(Ident, Ident)>,
    /// (target column, value over the trigger's NEW row), key columns included.
    pub values: Vec<(Ident, String)>,
    /// Target columns an UPDATE may not set (GENERATED ALWAYS identity).
    pub not_updatable: Vec<Ident>,
    /// `OVERRIDING SYSTEM VALUE` on insert.
    pub overriding: bool,
    /// "shadow" or "reverse", for the comment.
    pub purpose: &'a str,
    /// Run the body under `search_path = pg_catalog, pg_temp` (SET on the
    /// function). Needed when `values` hold user expressions, whose function
    /// and operator names resolve through the search_path; without them every
    /// name in the body is schema-qualified (operators as `OPERATOR(pg_catalog.=)`)
    /// and the SET is left out: restoring the caller's search_path after each
    /// call makes the caller's next statement look its schemas up again
    /// (docs/shadow-tables.md, "SECURITY DEFINER sync functions").
    pub set_search_path: bool,
    /// Deleted keys are noted (the forward direction, which races the
    /// backfill; see `shadow::settle`), or None.
    pub notes: Option<NoteSql>,
}

/// The statements of the trigger that deal with keys whose target row may
/// be missing or stale (see `shadow::settle`).
pub struct NoteSql {
    /// Notes the key of OLD (every delete, and the old key of a key change).
    pub note_old: String,
    /// Notes the key of NEW (an update of a row not copied yet).
    pub note_new: String,
    /// True when the key of NEW is noted (a late copy may hold it).
    pub new_is_noted: String,
    /// True when NEW's key sorts after the backfill's upper bound (no batch
    /// copies it, no probe needed: `shadow::beyond::sql::beyond_upper_function`).
    pub new_is_beyond: Option<String>,
    /// Note every delete (while batches run), or only deletes that find no
    /// target row (after the backfill: a REPEATABLE READ transaction older
    /// than a copy cannot see it).
    pub every_delete: bool,
}

impl RowCopy<'_> {
    fn target_key(&self) -> String {
        let t: Vec<String> = self.key.iter().map(|(_, t)| t.to_string()).collect();
        format!("({})", t.join(", "))
    }

    fn source_key(&self, row: &str) -> String {
        let s: Vec<String> = self.key.iter().map(|(s, _)| format!("{row}.{s}")).collect();
        format!("({})", s.join(", "))
    }

    fn updatable(&self) -> Vec<&(Ident, String)> {
        self.values
            .iter()
            .filter(|(c, _)| !self.key.iter().any(|(_, k)| k == c) && !self.not_updatable.contains(c))
            .collect()
    }

    /// The same function, replacing the one in place (the trigger keeps it).
    pub fn create_or_replace_function(&self, function: &QualifiedName) -> String {
        self.create_function(function)
            .replacen("CREATE FUNCTION ", "CREATE OR REPLACE FUNCTION ", 1)
    }

    /// `INSERT INTO target (...) VALUES (...)` of the row, its lines
    /// indented by `indent` (no terminator: callers add ON CONFLICT or `;`).
    fn insert_row(&self, indent: &str) -> String {
        let cols: Vec<String> = self.values.iter().map(|(c, _)| c.to_string()).collect();
        let vals: Vec<String> = self.values.iter().map(|(_, v)| v.clone()).collect();
        let overriding = if self.overriding {
            " OVERRIDING SYSTEM VALUE"
        } else {
            ""
        };
        format!(
            "INSERT INTO {} ({}){overriding}\n{indent}VALUES ({})",
            self.target,
            cols.join(", "),
            vals.join(&format!(",\n{indent}        "))
        )
    }

    /// What an insert that meets the key does: the other columns take its values.
    fn on_conflict(&self) -> String {
        let set: Vec<String> = self
            .updatable()
            .iter()
            .map(|(c, _)| format!("{c} = EXCLUDED.{c}"))
            .collect();
        if set.is_empty() {
            "DO NOTHING".to_string()
        } else {
            format!("DO UPDATE SET {}", set.join(",\n                      "))
        }
    }

    /// An update that keeps the key: the target row takes the new values.
    fn same_key_update(&self) -> String {
        let set: Vec<String> = self.updatable().iter().map(|(c, v)| format!("{c} = {v}")).collect();
        let (target, tkey, new_key) = (self.target, self.target_key(), self.source_key("NEW"));
        if set.is_empty() {
            format!(
                "-- nothing but the key to copy: is the row there?
            PERFORM FROM {target} WHERE {tkey} {EQ} {new_key};"
            )
        } else {
            format!(
                "UPDATE {target}
               SET {}
             WHERE {tkey} {EQ} {new_key};",
                set.join(",\n                   ")
            )
        }
    }

    /// The delete of OLD's row, its lines after the first indented by
    /// `indent`; before the swap the key is noted (see `NoteSql::every_delete`).
    fn delete(&self, indent: &str) -> String {
        let (target, tkey) = (self.target, self.target_key());
        match &self.notes {
            None => format!("DELETE FROM {target} WHERE {tkey} {EQ} {};", self.source_key("OLD")),
            Some(NoteSql {
                note_old: note,
                every_delete: true,
                ..
            }) => format!(
                "DELETE FROM {target} WHERE {tkey} {EQ} {old};
{indent}-- A batch that read the row before this delete may still copy it (whether
{indent}-- or not a copy was just deleted): the key is noted, and the settle removes
{indent}-- such a copy.
{indent}{note}",
                old = self.source_key("OLD"),
            ),
            Some(NoteSql { note_old: note, .. }) => format!(
                "DELETE FROM {target} WHERE {tkey} {EQ} {old};
{indent}IF NOT FOUND THEN
{indent}    -- the backfill is over; a transaction whose snapshot is older than the
{indent}    -- copy of this row cannot see it: the key is noted for the settle
{indent}    {note}
{indent}END IF;",
                old = self.source_key("OLD"),
            ),
        }
    }

    /// An insert: plain for a new key; an upsert for a noted key (a late
    /// copy may hold it), unless the key sorts after the backfill's bound.
    fn insert(&self) -> String {
        let (tkey, on_conflict) = (self.target_key(), self.on_conflict());
        match &self.notes {
            None => format!(
                "-- A new key: the target cannot hold it (its deletes follow the source's,
        -- and the backfill copies only rows that existed before).
        {};",
                self.insert_row("        ")
            ),
            Some(NoteSql {
                new_is_noted,
                new_is_beyond,
                ..
            }) => {
                // Keys after the bound first, then the noted ones, then the others.
                let (beyond, branch) = match new_is_beyond {
                    None => (String::new(), "IF"),
                    Some(beyond) => (
                        format!(
                            "IF {beyond} THEN
            -- A key after the last one the backfill copies: no batch copies it,
            -- so the target cannot hold it (and the notes need no probe).
            {};
        ",
                            self.insert_row("            ")
                        ),
                        "ELSIF",
                    ),
                };
                format!(
                    "{beyond}{branch} {new_is_noted} THEN
            -- A key deleted before: the target may still hold a batch's late copy
            -- of the deleted row (until the settle removes it); this row replaces it.
            {insert}
            ON CONFLICT {tkey} {on_conflict};
        ELSE
            -- A new key: the target cannot hold it (its deletes follow the source's,
            -- and the backfill copies only rows that existed before).
            {insert};
        END IF;",
                    insert = self.insert_row("            "),
                )
            }
        }
    }

    /// After an update that keeps the key: what to do when the target has no row.
    fn not_found(&self) -> String {
        match &self.notes {
            None => "            IF FOUND THEN
                RETURN NULL;
            END IF;
            -- not there (a target older than this row): insert it below"
                .to_string(),
            Some(n) => format!(
                "            IF NOT FOUND THEN
                -- Not copied yet. A batch will copy it as committed, or already read
                -- it before this write and copies the older version: the key is
                -- noted, and the settle refreshes such a copy.
                {}
            END IF;
            RETURN NULL;",
                n.note_new
            ),
        }
    }

    pub fn create_function(&self, function: &QualifiedName) -> String {
        let (target, tkey, on_conflict) = (self.target, self.target_key(), self.on_conflict());
        let body = format!(
            "-- pg_zdm migration {migration} ({purpose} sync): makes the row of {target_comment}
-- with the same key equal to the row just written in {source_comment}, in the same
-- transaction. AFTER ROW: sees the row as finally written.
BEGIN
    {own_table_only}
    IF TG_OP {EQ} 'INSERT' THEN
        {insert}
        RETURN NULL;
    ELSIF TG_OP {EQ} 'UPDATE' THEN
        IF {old_key} {EQ} {new_key} THEN
            {same_key_update}
{not_found}
        ELSE
            -- the key changed: the row moves
            {delete_moved}
        END IF;
        -- ON CONFLICT: a batch copying this row may have inserted it meanwhile
        -- (we waited for it to commit); this newer version wins.
        {upsert}
        ON CONFLICT {tkey} {on_conflict};
        RETURN NULL;
    END IF;
    {delete_row}
    RETURN NULL;
END;
",
            insert = self.insert(),
            same_key_update = self.same_key_update(),
            migration = comment_text(self.migration),
            purpose = self.purpose,
            target_comment = comment_text(&target.to_string()),
            source_comment = comment_text(&self.source.to_string()),
            own_table_only = crate::sqlgen::own_table_only(self.source),
            not_found = self.not_found(),
            old_key = self.source_key("OLD"),
            delete_moved = self.delete("            "),
            delete_row = self.delete("    "),
            new_key = self.source_key("NEW"),
            upsert = self.insert_row("        "),
        );
        format!(
            "CREATE FUNCTION {function}() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER{} AS {}",
            if self.set_search_path {
                " SET search_path = pg_catalog, pg_temp"
            } else {
                ""
            },
            dollar_quote(&body)
        )
    }
}

/// `CREATE TRIGGER` for a row-copy function: AFTER, every row change.
/// Names come quoted: `Ident`s when a plan is built, the stored plan's text at the swap.
pub fn create_trigger(trigger: &impl Display, table: &impl Display, function: &impl Display) -> String {
    crate::sqlgen::fire_always(
        format!("CREATE TRIGGER {trigger} AFTER INSERT OR UPDATE OR DELETE ON {table} FOR EACH ROW EXECUTE FUNCTION {function}()"),
        trigger,
        table,
    )
}

#[cfg(test)]
mod tests;
