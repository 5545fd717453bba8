//! The row-copy trigger of a shadow migration, and the query of `zdm.verify`.
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
//! the first to commit, and the trigger's copy (the newer) always wins.
//! (Inserting ahead of the batches, as an upsert would, made nearly every
//! batch under write load meet a writer's row mid-statement, fail on the
//! unique index and start again with `ON CONFLICT`: the copy took twice as
//! long in `zdm-bench rebuild`.) A delete notes
//! the key (`notes`), since a batch that read the row before the delete may
//! still copy it, whether or not the delete found a copy to delete (a writer's
//! trigger may have made one after the batch's snapshot);
//! `sqlgen::shadow_settle` removes such copies. Until then an insert of the
//! same key finds that copy, so an insert of a noted key goes through
//! `ON CONFLICT ... DO UPDATE` (only those: a speculative insertion on every
//! insert cost a fifth of the insert rate in `zdm-bench triggers`). Keys after
//! the backfill's upper bound (new rows, the usual insert) need not even probe
//! the notes: no batch copies them (`new_is_beyond`).
//!
//! The function is SECURITY DEFINER: the roles that write the table need no
//! privilege on the target. Every name in the body is schema-qualified,
//! operators included; a fixed search_path is set on the function only when
//! the values hold user expressions or a key type lives outside pg_catalog
//! (`set_search_path`).

use super::dollar_quote;
use crate::ident::{comment_text, Ident, QualifiedName};

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
    /// call made the caller's next statement look its schemas up again, about
    /// a tenth of the single-row write rate in `zdm-bench triggers`.
    pub set_search_path: bool,
    /// Deleted keys are noted (the forward direction, which races the
    /// backfill; see `sqlgen::shadow_settle`), or None.
    pub notes: Option<NoteSql>,
}

/// The statements of the trigger that deal with keys whose target row may
/// be missing or stale (see `sqlgen::shadow_settle`).
pub struct NoteSql {
    /// Notes the key of OLD (every delete, and the old key of a key change).
    pub note_old: String,
    /// Notes the key of NEW (an update of a row not copied yet).
    pub note_new: String,
    /// True when the key of NEW is noted (a late copy may hold it).
    pub new_is_noted: String,
    /// True when NEW's key sorts after the backfill's upper bound (no batch
    /// copies it, no probe needed: `shadow_settle::beyond_upper_function`).
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

    pub fn create_function(&self, function: &QualifiedName) -> String {
        let target = self.target;
        let cols: Vec<String> = self.values.iter().map(|(c, _)| c.to_string()).collect();
        let vals: Vec<String> = self.values.iter().map(|(_, v)| v.clone()).collect();
        let overriding = if self.overriding {
            " OVERRIDING SYSTEM VALUE"
        } else {
            ""
        };
        // `INSERT INTO target (...) VALUES (...)` of the row, its lines
        // indented by `indent` (no terminator: callers add ON CONFLICT or `;`).
        let insert_row = |indent: &str| {
            format!(
                "INSERT INTO {target} ({}){overriding}\n{indent}VALUES ({})",
                cols.join(", "),
                vals.join(&format!(",\n{indent}        "))
            )
        };
        let updatable = self.updatable();
        let set_new: Vec<String> = updatable.iter().map(|(c, v)| format!("{c} = {v}")).collect();
        let set_excluded: Vec<String> = updatable.iter().map(|(c, _)| format!("{c} = EXCLUDED.{c}")).collect();
        let tkey = self.target_key();
        let on_conflict = if set_excluded.is_empty() {
            "DO NOTHING".to_string()
        } else {
            format!("DO UPDATE SET {}", set_excluded.join(",\n                      "))
        };
        let same_key_update = if set_new.is_empty() {
            "-- nothing but the key to copy: is the row there?
            PERFORM FROM "
                .to_string()
                + &format!("{target} WHERE {tkey} {EQ} {};", self.source_key("NEW"))
        } else {
            format!(
                "UPDATE {target}
               SET {}
             WHERE {tkey} {EQ} {};",
                set_new.join(",\n                   "),
                self.source_key("NEW")
            )
        };
        let delete = |indent: &str| match &self.notes {
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
        };
        let insert = match &self.notes {
            None => format!(
                "-- A new key: the target cannot hold it (its deletes follow the source's,
        -- and the backfill copies only rows that existed before).
        {};",
                insert_row("        ")
            ),
            Some(NoteSql {
                new_is_noted,
                new_is_beyond,
                ..
            }) => format!(
                "{beyond}IF {new_is_noted} THEN
            -- A key deleted before: the target may still hold a batch's late copy
            -- of the deleted row (until the settle removes it); this row replaces it.
            {insert}
            ON CONFLICT {tkey} {on_conflict};
        ELSE
            -- A new key: the target cannot hold it (its deletes follow the source's,
            -- and the backfill copies only rows that existed before).
            {insert};
        END IF;",
                insert = insert_row("            "),
                beyond = match new_is_beyond {
                    None => String::new(),
                    Some(beyond) => format!(
                        "IF {beyond} THEN
            -- A key after the last one the backfill copies: no batch copies it,
            -- so the target cannot hold it (and the notes need no probe).
            {};
        ELS",
                        insert_row("            ")
                    ),
                },
            ),
        };
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
            migration = comment_text(self.migration),
            purpose = self.purpose,
            target_comment = comment_text(&target.to_string()),
            source_comment = comment_text(&self.source.to_string()),
            own_table_only = super::own_table_only(self.source),
            not_found = match &self.notes {
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
            },
            old_key = self.source_key("OLD"),
            delete_moved = delete("            "),
            delete_row = delete("    "),
            new_key = self.source_key("NEW"),
            upsert = insert_row("        "),
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
pub fn create_trigger(trigger: &Ident, table: &QualifiedName, function: &QualifiedName) -> String {
    super::fire_always(
        format!("CREATE TRIGGER {trigger} AFTER INSERT OR UPDATE OR DELETE ON {table} FOR EACH ROW EXECUTE FUNCTION {function}()"),
        trigger,
        table,
    )
}

/// The function of a TRUNCATE trigger: TRUNCATE fires no row trigger, so
/// without it the target would keep the rows (and bring them back at the
/// swap, or at a rollback after it). It truncates `targets` in the same
/// transaction. A target other tables reference (the old table after the
/// swap keeps its incoming foreign keys until complete) cannot be truncated
/// on its own: the writer's TRUNCATE then fails, saying what to do (the
/// function's name, in the error's context, names the migration).
pub fn truncate_function(
    function: &QualifiedName,
    migration: &str,
    source: &QualifiedName,
    targets: &[&QualifiedName],
    purpose: &str,
) -> String {
    let names: Vec<String> = targets.iter().map(|t| t.to_string()).collect();
    let body = format!(
        "-- pg_zdm migration {migration} ({purpose}): a TRUNCATE of {source} fires no
-- row trigger; the rows go from {targets_comment} too, in the same transaction.
BEGIN
    {own_table_only}
    TRUNCATE {targets};
    RETURN NULL;
EXCEPTION WHEN feature_not_supported THEN
    RAISE EXCEPTION 'pg_zdm: % (a TRUNCATE of %.% must also empty the table pg_zdm keeps for a rollback)',
        SQLERRM, quote_ident(TG_TABLE_SCHEMA), quote_ident(TG_TABLE_NAME)
        USING ERRCODE = 'feature_not_supported',
              HINT = 'Other tables still reference that table: finish the migration first '
                     '(zdm.complete or zdm.rollback), or DELETE the rows.';
END;
",
        migration = comment_text(migration),
        source = comment_text(&source.to_string()),
        targets = names.join(", "),
        targets_comment = comment_text(&names.join(", ")),
        own_table_only = super::own_table_only(source),
    );
    format!(
        "CREATE FUNCTION {function}() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS {}",
        dollar_quote(&body)
    )
}

/// `CREATE TRIGGER` for a truncate function: AFTER TRUNCATE, per statement.
pub fn create_truncate_trigger(trigger: &Ident, table: &QualifiedName, function: &QualifiedName) -> String {
    super::fire_always(
        format!("CREATE TRIGGER {trigger} AFTER TRUNCATE ON {table} FOR EACH STATEMENT EXECUTE FUNCTION {function}()"),
        trigger,
        table,
    )
}

/// One compared column of `verify`: its name in the shadow, the value the
/// original row gives for it (over bare column names), and the shadow's type.
pub struct Compared {
    pub column: Ident,
    pub source_value: String,
    pub type_sql: String,
}

/// A 64-bit hash of `value` (of type `type_sql`) seeded with `seed`: the
/// type's own extended hash function where equality is identity (integers,
/// uuid, text compared byte for byte under "C"), the hash of the text form
/// otherwise (1.0 and 1.00 are equal numerics but not the same value).
fn value_hash(value: &str, type_sql: &str, seed: &str) -> String {
    let typed = match type_sql {
        "smallint" => Some("hashint2extended"),
        "integer" => Some("hashint4extended"),
        "bigint" => Some("hashint8extended"),
        "pg_catalog.uuid" => Some("uuid_hash_extended"),
        _ => None,
    };
    match typed {
        Some(f) => format!("pg_catalog.{f}({value}, {seed})"),
        None => format!("pg_catalog.hashtextextended((({value})::text) COLLATE pg_catalog.\"C\", {seed})"),
    }
}

/// The verify query: one statement, so one snapshot, two sequential scans.
///
/// Each row's key is hashed; each compared column's value is hashed with the
/// key's hash as seed, so a value moved to another row changes the result.
/// Per column, the XOR of those hashes (order-independent; keys are unique on
/// both sides, so no two equal hashes cancel) and the count of non-NULL
/// values, and the row counts. Typed hashes and XOR keep it to plain integer
/// work: no text output of integers, no numeric accumulator. The original
/// side is cast to the shadow's type, as stored values were. Returns
/// (source_rows, shadow_rows, source_sums, shadow_sums).
///
/// `excluding`: the table of noted keys (named like the original's key
/// columns): rows of those keys are left out on both sides. Their shadow rows
/// may be late by design until a settle makes them the original's (see
/// `sqlgen::shadow_settle`), so this comparison needs no settle before it,
/// and no settle's row locks held through it.
pub fn verify_sums_sql(
    source: &QualifiedName,
    target: &QualifiedName,
    key: &[(Ident, Ident, String)],
    compared: &[Compared],
    excluding: Option<&QualifiedName>,
) -> String {
    // `zdm_t` is the scanned table; the notes' columns bear the original's key names.
    let not_noted = |own_key: &dyn Fn(&(Ident, Ident, String)) -> String| -> (&str, String) {
        let Some(notes) = excluding else {
            return ("", String::new());
        };
        let equal: Vec<String> = key
            .iter()
            .map(|k| format!("(zdm_n.{})::{} OPERATOR(pg_catalog.=) {}", k.0, k.2, own_key(k)))
            .collect();
        let clause = format!(
            "\n     WHERE NOT EXISTS (SELECT FROM {notes} AS zdm_n WHERE {})",
            equal.join(" AND ")
        );
        (" AS zdm_t", clause)
    };
    let side = |key_values: Vec<String>,
                values: Vec<String>,
                table: &QualifiedName,
                (alias, not_noted): (&str, String)|
     -> String {
        let key_hash = key
            .iter()
            .zip(&key_values)
            .fold("0".to_string(), |seed, ((_, _, ty), v)| value_hash(v, ty, &seed));
        // Hashes are strict: count(value) counts the same rows as count(hash)
        // without computing the hash twice.
        let sums: Vec<String> = values
            .iter()
            .zip(compared)
            .map(|(v, c)| {
                format!(
                    "coalesce(pg_catalog.bit_xor({}), 0)::text || '/' || pg_catalog.count({v})",
                    value_hash(v, &c.type_sql, "zdm_l.zdm_k")
                )
            })
            .collect();
        format!(
            "SELECT count(*) AS zdm_rows, ARRAY[{}]::text[] AS zdm_sums
      FROM ONLY {table}{alias}, LATERAL (SELECT {key_hash} AS zdm_k) zdm_l{not_noted}",
            sums.join(",\n             ")
        )
    };
    let src = side(
        key.iter().map(|(o, _, ty)| format!("({o})::{ty}")).collect(),
        compared
            .iter()
            .map(|c| format!("({})::{}", c.source_value, c.type_sql))
            .collect(),
        source,
        not_noted(&|(o, _, ty)| format!("(zdm_t.{o})::{ty}")),
    );
    let dst = side(
        key.iter().map(|(_, t, _)| t.to_string()).collect(),
        compared.iter().map(|c| c.column.to_string()).collect(),
        target,
        not_noted(&|(_, t, _)| format!("zdm_t.{t}")),
    );
    format!(
        "SELECT s.zdm_rows, d.zdm_rows, s.zdm_sums, d.zdm_sums
  FROM ({src}) s,
       ({dst}) d"
    )
}

/// Where the checksums differ: the rows that do, matched by key (a full
/// join, so run only on a mismatch). Returns (differing_rows, sample_keys).
pub fn verify_diff_sql(
    source: &QualifiedName,
    target: &QualifiedName,
    key: &[(Ident, Ident, String)],
    compared: &[Compared],
) -> String {
    let n = key.len();
    let src_key: Vec<String> = key
        .iter()
        .enumerate()
        .map(|(i, (s, _, ty))| format!("{s}::{ty} AS zdm_k{}", i + 1))
        .collect();
    let dst_key: Vec<String> = key
        .iter()
        .enumerate()
        .map(|(i, (_, t, _))| format!("{t} AS zdm_k{}", i + 1))
        .collect();
    let src_vals: Vec<String> = compared
        .iter()
        .enumerate()
        .map(|(i, c)| {
            format!(
                "pg_catalog.hashtextextended((({})::{})::text, 0) AS zdm_h{}",
                c.source_value,
                c.type_sql,
                i + 1
            )
        })
        .collect();
    let dst_vals: Vec<String> = compared
        .iter()
        .enumerate()
        .map(|(i, c)| format!("pg_catalog.hashtextextended({}::text, 0) AS zdm_h{}", c.column, i + 1))
        .collect();
    let join_on: Vec<String> = (1..=n).map(|i| format!("s.zdm_k{i} = d.zdm_k{i}")).collect();
    let keys: Vec<String> = (1..=n).map(|i| format!("coalesce(s.zdm_k{i}, d.zdm_k{i})")).collect();
    let mut differs = vec!["s.zdm_k1 IS NULL".to_string(), "d.zdm_k1 IS NULL".to_string()];
    differs.extend((1..=compared.len()).map(|i| format!("s.zdm_h{i} IS DISTINCT FROM d.zdm_h{i}")));
    format!(
        "WITH zdm_cmp AS MATERIALIZED (
    SELECT ROW({keys})::text AS zdm_key,
           ({differs}) AS zdm_differs
      FROM (SELECT {src_key}{src_sep}{src_vals} FROM ONLY {source}) s
      FULL JOIN (SELECT {dst_key}{dst_sep}{dst_vals} FROM ONLY {target}) d
        ON {join_on}
)
SELECT count(*) FILTER (WHERE zdm_differs) AS differing_rows,
       ARRAY(SELECT zdm_key FROM zdm_cmp WHERE zdm_differs ORDER BY zdm_key LIMIT 5) AS sample_keys
  FROM zdm_cmp",
        keys = keys.join(", "),
        differs = differs.join(" OR "),
        src_key = src_key.join(", "),
        src_sep = if src_vals.is_empty() { "" } else { ", " },
        src_vals = src_vals.join(", "),
        dst_key = dst_key.join(", "),
        dst_sep = if dst_vals.is_empty() { "" } else { ", " },
        dst_vals = dst_vals.join(", "),
        join_on = join_on.join(" AND "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The trigger's note statements for a migration "m" keyed on id.
    fn notes(every_delete: bool, beyond: Option<&str>) -> Option<NoteSql> {
        Some(NoteSql {
            note_old: "INSERT INTO public.zdm_stale_m (id) VALUES (OLD.id);".into(),
            note_new: "INSERT INTO public.zdm_stale_m (id) VALUES (NEW.id);".into(),
            new_is_noted: "EXISTS (SELECT FROM public.zdm_stale_m WHERE (id) OPERATOR(pg_catalog.=) (NEW.id))".into(),
            new_is_beyond: beyond.map(str::to_string),
            every_delete,
        })
    }

    fn names() -> (QualifiedName, QualifiedName) {
        (
            QualifiedName::new(Ident::test("public"), Ident::test("Order; DROP TABLE x")),
            QualifiedName::new(Ident::test("public"), Ident::test("zdm_shadow_m")),
        )
    }

    #[test]
    fn truncate_comment_escapes_names() {
        let source = QualifiedName::new(Ident::test("public"), Ident::test("x\nDECLARE z int := 1; --"));
        let target = QualifiedName::new(Ident::test("public"), Ident::test("zdm_shadow_m"));
        let f = QualifiedName::new(Ident::test("zdm"), Ident::test("shadow_truncate_m"));
        let sql = truncate_function(&f, "m\n*/", &source, &[&target], "shadow sync");
        assert!(
            sql.contains(
                "$zdm$\n-- pg_zdm migration m\\n*\\/ (shadow sync): a TRUNCATE of public.\"x\\nDECLARE z int := 1; --\" fires no\n-- row trigger;"
            ),
            "{sql}"
        );
        // The name's only raw newline is inside the guard's string literal.
        let outside_literals = sql.replace(&crate::ident::quote_literal(&source.to_string()), "");
        assert!(!outside_literals.contains("\nDECLARE"), "{sql}");
    }

    #[test]
    fn trigger_handles_every_kind_of_write() {
        let (s, t) = names();
        let f = QualifiedName::new(Ident::test("zdm"), Ident::test("shadow_sync_m"));
        let rc = RowCopy {
            migration: "m",
            source: &s,
            target: &t,
            key: vec![(Ident::test("id"), Ident::test("id"))],
            values: vec![
                (Ident::test("id"), "NEW.id".into()),
                (Ident::test("Amount"), "NEW.\"Amount\"".into()),
                (Ident::test("tax"), "round(NEW.\"Amount\" * 0.2, 2)".into()),
            ],
            not_updatable: vec![],
            overriding: false,
            purpose: "shadow",
            // a user expression (tax): its names resolve through the search_path
            set_search_path: true,
            notes: None,
        };
        let sql = rc.create_function(&f);
        assert!(sql.starts_with("CREATE FUNCTION zdm.shadow_sync_m() RETURNS trigger\nLANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $zdm$"), "{sql}");
        assert!(
            sql.contains("DELETE FROM public.zdm_shadow_m WHERE (id) OPERATOR(pg_catalog.=) (OLD.id);"),
            "{sql}"
        );
        assert!(
            sql.contains("IF (OLD.id) OPERATOR(pg_catalog.=) (NEW.id) THEN"),
            "{sql}"
        );
        assert!(sql.contains("SET \"Amount\" = NEW.\"Amount\",\n                   tax = round(NEW.\"Amount\" * 0.2, 2)\n             WHERE (id) OPERATOR(pg_catalog.=) (NEW.id);"), "{sql}");
        assert!(
            sql.contains("IF TG_OP OPERATOR(pg_catalog.=) 'INSERT' THEN\n        -- A new key: the target cannot hold it (its deletes follow the source's,\n        -- and the backfill copies only rows that existed before).\n        INSERT INTO public.zdm_shadow_m (id, \"Amount\", tax)\n        VALUES (NEW.id,\n                NEW.\"Amount\",\n                round(NEW.\"Amount\" * 0.2, 2));\n        RETURN NULL;"),
            "{sql}"
        );
        assert!(sql.contains("ON CONFLICT (id) DO UPDATE SET \"Amount\" = EXCLUDED.\"Amount\",\n                      tax = EXCLUDED.tax;"), "{sql}");
        assert!(!sql.contains("OVERRIDING"));
        // the key is never SET by an update
        assert!(!sql.contains("SET id ="), "{sql}");
        // Racing a backfill: every delete notes the key, and an
        // insert replaces a late copy of a deleted row with the same key.
        let noting = RowCopy {
            notes: notes(true, None),
            ..rc
        };
        let sql = noting.create_function(&f);
        assert_eq!(
            sql.matches("INSERT INTO public.zdm_stale_m (id) VALUES (OLD.id);")
                .count(),
            2,
            "both deletes (row deleted, key changed) note: {sql}"
        );
        assert!(
            sql.contains(
                "    DELETE FROM public.zdm_shadow_m WHERE (id) OPERATOR(pg_catalog.=) (OLD.id);
    -- A batch that read the row before this delete may still copy it (whether
    -- or not a copy was just deleted): the key is noted, and the settle removes
    -- such a copy.
    INSERT INTO public.zdm_stale_m (id) VALUES (OLD.id);
    RETURN NULL;"
            ),
            "{sql}"
        );
        // An insert upserts only when its key was deleted before (a late copy
        // may hold it); otherwise it stays a plain insert.
        assert!(
            sql.contains("    IF TG_OP OPERATOR(pg_catalog.=) 'INSERT' THEN\n        IF EXISTS (SELECT FROM public.zdm_stale_m WHERE (id) OPERATOR(pg_catalog.=) (NEW.id)) THEN\n"),
            "{sql}"
        );
        assert!(
            sql.contains("            VALUES (NEW.id,\n                    NEW.\"Amount\",\n                    round(NEW.\"Amount\" * 0.2, 2))\n            ON CONFLICT (id) DO UPDATE SET"),
            "{sql}"
        );
        assert!(
            sql.contains("        ELSE\n            -- A new key: the target cannot hold it (its deletes follow the source's,\n            -- and the backfill copies only rows that existed before).\n            INSERT INTO public.zdm_shadow_m (id, \"Amount\", tax)\n            VALUES (NEW.id,\n                    NEW.\"Amount\",\n                    round(NEW.\"Amount\" * 0.2, 2));\n        END IF;"),
            "{sql}"
        );
        assert_eq!(sql.matches("ON CONFLICT (id) DO UPDATE").count(), 2, "{sql}");
        // An update of a row not copied yet inserts nothing: it notes the key
        // (a batch copies the row, the settle refreshes an older copy).
        assert!(
            sql.contains(
                "             WHERE (id) OPERATOR(pg_catalog.=) (NEW.id);
            IF NOT FOUND THEN
                -- Not copied yet. A batch will copy it as committed, or already read
                -- it before this write and copies the older version: the key is
                -- noted, and the settle refreshes such a copy.
                INSERT INTO public.zdm_stale_m (id) VALUES (NEW.id);
            END IF;
            RETURN NULL;
        ELSE"
            ),
            "{sql}"
        );
        // Keys after the backfill's upper bound are inserted without a probe.
        let beyond = RowCopy {
            notes: notes(true, Some("zdm.shadow_beyond_m(NEW.id)")),
            ..noting
        };
        let sql = beyond.create_function(&f);
        assert!(
            sql.contains("    IF TG_OP OPERATOR(pg_catalog.=) 'INSERT' THEN\n        IF zdm.shadow_beyond_m(NEW.id) THEN\n            -- A key after the last one the backfill copies: no batch copies it,\n            -- so the target cannot hold it (and the notes need no probe).\n            INSERT INTO public.zdm_shadow_m (id, \"Amount\", tax)\n            VALUES (NEW.id,\n                    NEW.\"Amount\",\n                    round(NEW.\"Amount\" * 0.2, 2));\n        ELSIF EXISTS (SELECT FROM public.zdm_stale_m WHERE (id) OPERATOR(pg_catalog.=) (NEW.id)) THEN\n"),
            "{sql}"
        );
        let noting = RowCopy {
            notes: notes(true, None),
            ..beyond
        };
        // After the backfill only deletes that find nothing note their key.
        let after = RowCopy {
            notes: notes(false, None),
            ..noting
        };
        let sql = after.create_function(&f);
        assert_eq!(sql.matches("IF NOT FOUND THEN\n").count(), 3, "{sql}");
        assert!(
            sql.contains("    DELETE FROM public.zdm_shadow_m WHERE (id) OPERATOR(pg_catalog.=) (OLD.id);\n    IF NOT FOUND THEN\n"),
            "{sql}"
        );
        assert_eq!(
            create_trigger(&Ident::test("zdm_shadow_m"), &s, &f),
            "CREATE TRIGGER zdm_shadow_m AFTER INSERT OR UPDATE OR DELETE ON public.\"Order; DROP TABLE x\" FOR EACH ROW EXECUTE FUNCTION zdm.shadow_sync_m();\n\
             ALTER TABLE public.\"Order; DROP TABLE x\" ENABLE ALWAYS TRIGGER zdm_shadow_m"
        );
    }

    #[test]
    fn key_only_tables_and_identity_columns() {
        let (s, t) = names();
        let f = QualifiedName::new(Ident::test("zdm"), Ident::test("f"));
        let rc = RowCopy {
            migration: "m",
            source: &s,
            target: &t,
            key: vec![
                (Ident::test("a"), Ident::test("a")),
                (Ident::test("b"), Ident::test("b2")),
            ],
            values: vec![(Ident::test("a"), "NEW.a".into()), (Ident::test("b2"), "NEW.b".into())],
            not_updatable: vec![],
            overriding: true,
            purpose: "reverse",
            set_search_path: false,
            notes: None,
        };
        let sql = rc.create_function(&f);
        // Plain copies: every name qualified, no SET on the function, and no
        // unqualified operator anywhere in the body.
        assert!(
            sql.starts_with("CREATE FUNCTION zdm.f() RETURNS trigger\nLANGUAGE plpgsql SECURITY DEFINER AS $zdm$"),
            "{sql}"
        );
        assert!(!sql.contains(" = "), "{sql}");
        assert!(sql.contains("ON CONFLICT (a, b2) DO NOTHING;"), "{sql}");
        assert!(
            sql.contains("PERFORM FROM public.zdm_shadow_m WHERE (a, b2) OPERATOR(pg_catalog.=) (NEW.a, NEW.b);"),
            "{sql}"
        );
        assert!(sql.contains("OVERRIDING SYSTEM VALUE"), "{sql}");
    }

    #[test]
    fn verify_is_one_statement_over_both_tables() {
        let (s, t) = names();
        let compared = [Compared {
            column: Ident::test("amount"),
            source_value: "amount".into(),
            type_sql: "numeric(10,2)".into(),
        }];
        let key = [(Ident::test("id"), Ident::test("id"), "bigint".into())];
        let sums = verify_sums_sql(&s, &t, &key, &compared, None);
        assert!(sums.contains("ARRAY[coalesce(pg_catalog.bit_xor(pg_catalog.hashtextextended((((amount)::numeric(10,2))::text) COLLATE pg_catalog.\"C\", zdm_l.zdm_k)), 0)::text || '/' || pg_catalog.count((amount)::numeric(10,2))]::text[] AS zdm_sums
      FROM ONLY public.\"Order; DROP TABLE x\", LATERAL (SELECT pg_catalog.hashint8extended((id)::bigint, 0) AS zdm_k) zdm_l"), "{sums}");
        assert!(sums.contains("ARRAY[coalesce(pg_catalog.bit_xor(pg_catalog.hashtextextended(((amount)::text) COLLATE pg_catalog.\"C\", zdm_l.zdm_k)), 0)::text || '/' || pg_catalog.count(amount)]::text[] AS zdm_sums
      FROM ONLY public.zdm_shadow_m, LATERAL (SELECT pg_catalog.hashint8extended(id, 0) AS zdm_k) zdm_l"), "{sums}");
        assert!(
            sums.starts_with("SELECT s.zdm_rows, d.zdm_rows, s.zdm_sums, d.zdm_sums"),
            "one statement: {sums}"
        );
        let notes = QualifiedName::new(Ident::test("public"), Ident::test("zdm_stale_m"));
        let pending = verify_sums_sql(&s, &t, &key, &compared, Some(&notes));
        assert!(pending.contains("
      FROM ONLY public.\"Order; DROP TABLE x\" AS zdm_t, LATERAL (SELECT pg_catalog.hashint8extended((id)::bigint, 0) AS zdm_k) zdm_l
     WHERE NOT EXISTS (SELECT FROM public.zdm_stale_m AS zdm_n WHERE (zdm_n.id)::bigint OPERATOR(pg_catalog.=) (zdm_t.id)::bigint)"), "{pending}");
        assert!(pending.contains("
      FROM ONLY public.zdm_shadow_m AS zdm_t, LATERAL (SELECT pg_catalog.hashint8extended(id, 0) AS zdm_k) zdm_l
     WHERE NOT EXISTS (SELECT FROM public.zdm_stale_m AS zdm_n WHERE (zdm_n.id)::bigint OPERATOR(pg_catalog.=) zdm_t.id)"), "{pending}");
        let sql = verify_diff_sql(
            &s,
            &t,
            &[(Ident::test("id"), Ident::test("id"), "bigint".into())],
            &compared,
        );
        assert!(sql.contains("FROM (SELECT id::bigint AS zdm_k1, pg_catalog.hashtextextended(((amount)::numeric(10,2))::text, 0) AS zdm_h1 FROM ONLY public.\"Order; DROP TABLE x\") s"), "{sql}");
        assert!(sql.contains("FULL JOIN (SELECT id AS zdm_k1, pg_catalog.hashtextextended(amount::text, 0) AS zdm_h1 FROM ONLY public.zdm_shadow_m) d"), "{sql}");
        assert!(sql.contains("LIMIT 5"));
        assert!(
            sql.starts_with("WITH zdm_cmp AS MATERIALIZED ("),
            "one statement: {sql}"
        );
    }
}
