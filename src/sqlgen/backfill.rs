//! Keyset batches over a table's key: each batch is one index range scan
//! `(key) > last AND (key) <= upper ORDER BY key LIMIT n`, whatever has been done
//! before, and never chases rows inserted after the backfill began (the sync
//! trigger already handles those).
//!
//! Parameters of the generated statements (positions travel as text[] so one
//! stored statement serves any key type; `DateStyle` is fixed to ISO while they run):
//! - `$1` upper bound: key of the last row that existed when the backfill began
//! - `$2` batch size
//! - `$3` key of the last row of the previous batch (`next_batch_sql` only)

use super::dollar_quote;
use crate::ident::{Ident, QualifiedName, SqlFragment};

pub struct KeysetBatch<'a> {
    pub table: &'a QualifiedName,
    /// Key columns in index order, with their types.
    pub key: &'a [(Ident, SqlFragment)],
    pub work: BatchWork,
}

/// What a batch does to the rows of its key range.
pub enum BatchWork {
    /// Column migrations: an UPDATE of the range in place.
    Update {
        /// `col = expr` assignments; expressions use the table's bare column names.
        assignments: Vec<String>,
        /// Condition under which a row still needs the assignments (skips rows the
        /// sync trigger already made right, so a re-run changes nothing).
        needs_work: String,
    },
    /// Shadow tables: copy the range into the shadow, without locking the
    /// original's rows. A row the sync trigger already wrote is left alone: the
    /// trigger's copy is the newer one. The batch skips the keys the shadow has
    /// in its range (an anti-join bounded by the range on both sides); if a
    /// trigger copies one of its rows meanwhile (unique violation), the batch
    /// runs again with `ON CONFLICT DO NOTHING`. A row deleted after the
    /// batch's snapshot may still be copied: its delete noted the key, and the
    /// settle function called after the copy removes such copies (see
    /// `sqlgen::shadow_settle`).
    CopyInto {
        /// Schema-qualified, quoted.
        target: String,
        /// Target columns, quoted.
        columns: Vec<String>,
        /// Values over the source's bare column names, one per target column.
        values: Vec<String>,
        /// The target's key columns (the ON CONFLICT arbiter).
        conflict_key: Vec<String>,
        /// `OVERRIDING SYSTEM VALUE`, for GENERATED ALWAYS identity columns.
        overriding: bool,
        /// The migration's settle function, called after the copy.
        settle: String,
    },
}

impl KeysetBatch<'_> {
    fn key_list(&self, prefix: &str) -> String {
        self.key
            .iter()
            .map(|(c, _)| format!("{prefix}{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn key_desc(&self, prefix: &str) -> String {
        self.key
            .iter()
            .map(|(c, _)| format!("{prefix}{c} DESC"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn key_as_text_array(&self, prefix: &str) -> String {
        let items: Vec<String> = self.key.iter().map(|(c, _)| format!("{prefix}{c}::text")).collect();
        format!("ARRAY[{}]", items.join(", "))
    }

    /// `($n[1]::type1, $n[2]::type2)`
    fn param_row(&self, param: u8) -> String {
        let items: Vec<String> = self
            .key
            .iter()
            .enumerate()
            .map(|(i, (_, ty))| format!("${param}[{}]::{ty}", i + 1))
            .collect();
        format!("({})", items.join(", "))
    }

    /// Key of the last existing row, as text[] (NULL when the table is empty).
    pub fn upper_bound_sql(&self) -> String {
        format!(
            "SELECT {} FROM ONLY {} ORDER BY {} LIMIT 1",
            self.key_as_text_array(""),
            self.table,
            self.key_desc("")
        )
    }

    /// The per-migration batch function, readable with `\sf`: one keyset batch,
    /// returning rows scanned, rows changed and the key of the batch's last row.
    pub fn create_batch_function(&self, function: &QualifiedName, migration: &str, description: &str) -> String {
        let indent = |sql: String| {
            sql.lines()
                .map(|l| format!("        {l}"))
                .collect::<Vec<_>>()
                .join("\n")
        };
        let choose = |safe: bool| {
            format!(
                "    IF $3 IS NULL THEN
        RETURN QUERY
{};
    ELSE
        RETURN QUERY
{};
    END IF;
",
                indent(self.batch_sql(false, safe)),
                indent(self.batch_sql(true, safe))
            )
        };
        let work = match &self.work {
            BatchWork::Update { .. } => choose(false),
            BatchWork::CopyInto { settle, .. } => {
                let nest = |sql: String| {
                    sql.lines()
                        .map(|l| {
                            if l.is_empty() {
                                String::new()
                            } else {
                                format!("    {l}")
                            }
                        })
                        .collect::<Vec<_>>()
                        .join("\n")
                };
                format!(
                    "    BEGIN
{}
    EXCEPTION WHEN unique_violation THEN
        -- A writer's trigger copied one of these rows after this batch's snapshot:
        -- the same batch again, leaving the rows already there alone.
{}
    END;
    -- Rows deleted after this batch's snapshot may have been copied all the
    -- same; their deletes noted the keys. Remove such copies now.
    PERFORM {settle}();
",
                    nest(choose(false)),
                    nest(choose(true)),
                )
            }
        };
        let body = format!(
            "#variable_conflict use_column
-- pg_zdm migration {migration}: one keyset batch of the backfill of {table}
-- ({description}).
-- $1: key of the last row that existed when the backfill began (upper bound)
-- $2: batch size
-- $3: key of the last row of the previous batch, NULL for the first batch
BEGIN
{work}END;
",
            migration = migration.replace('\n', " "),
            table = self.table,
            description = description.replace('\n', " "),
        );
        format!(
            "CREATE FUNCTION {function}(upper_bound text[], batch_size integer, last_key text[])
RETURNS TABLE (zdm_rows_scanned bigint, zdm_rows_changed bigint, zdm_last_key text[])
LANGUAGE plpgsql AS {}",
            dollar_quote(&body)
        )
    }

    /// `(cols) > $3` (after the first batch) `AND (cols) <= <end>`: the batch's
    /// key range over `cols` (the table's key columns, or the shadow's).
    fn range(&self, cols: &[String], after_last: bool, end: &str) -> String {
        let row = format!("({})", cols.join(", "));
        if after_last {
            format!("{row} > {}\n       AND {row} <= {end}", self.param_row(3))
        } else {
            format!("{row} <= {end}")
        }
    }

    /// The statement of the `zdm_changed` step over the batch's range;
    /// `safe`: the variant that copes with rows copied since the snapshot.
    fn work_sql(&self, after_last: bool, safe: bool) -> String {
        let n = self.key.len();
        let end: Vec<String> = (1..=n).map(|i| format!("(SELECT zdm_k{i} FROM zdm_end)")).collect();
        let end = format!("({})", end.join(", "));
        let source_cols: Vec<String> = self.key.iter().map(|(c, _)| c.to_string()).collect();
        let range = self.range(&source_cols, after_last, &end);
        match &self.work {
            BatchWork::Update {
                assignments,
                needs_work,
            } => format!(
                "    UPDATE ONLY {table}
       SET {assignments}
     WHERE {range}
       AND ({needs_work})
    RETURNING 1",
                table = self.table,
                assignments = assignments.join(",\n           "),
            ),
            BatchWork::CopyInto {
                target,
                columns,
                values,
                conflict_key,
                overriding,
                ..
            } => {
                let (skip, on_conflict) = if safe {
                    (
                        String::new(),
                        format!("\n    ON CONFLICT ({}) DO NOTHING", conflict_key.join(", ")),
                    )
                } else {
                    let target_key: Vec<String> = conflict_key.iter().map(|k| format!("zdm_t.{k}")).collect();
                    let source_key: Vec<String> = self.key.iter().map(|(k, _)| format!("zdm_src.{k}")).collect();
                    // The shadow side is bounded by the same range, so the
                    // anti-join reads only the few rows writers copied there
                    // (never the whole shadow), however the planner joins.
                    (
                        format!(
                            "\n       AND NOT EXISTS (SELECT FROM {target} AS zdm_t\n                        WHERE ({}) = ({})\n                          AND {})",
                            target_key.join(", "),
                            source_key.join(", "),
                            self.range(&target_key, after_last, &end).replace("\n       AND", "\n                          AND"),
                        ),
                        String::new(),
                    )
                };
                let source_range = self.range(
                    &self.key.iter().map(|(k, _)| format!("zdm_src.{k}")).collect::<Vec<_>>(),
                    after_last,
                    &end,
                );
                format!(
                    "    INSERT INTO {target} ({columns}){overriding}
    SELECT {values}
      FROM ONLY {table} AS zdm_src
     WHERE {source_range}{skip}{on_conflict}
    RETURNING 1",
                    columns = columns.join(", "),
                    overriding = if *overriding { " OVERRIDING SYSTEM VALUE" } else { "" },
                    values = values.join(",\n           "),
                    table = self.table,
                )
            }
        }
    }

    pub fn first_batch_sql(&self) -> String {
        self.batch_sql(false, false)
    }

    pub fn next_batch_sql(&self) -> String {
        self.batch_sql(true, false)
    }

    /// One batch. Its end is the key `$2` rows further (found by skipping
    /// along the key index, nothing materialized), or the upper bound when
    /// fewer rows are left; its work is one statement over that key range.
    fn batch_sql(&self, after_last: bool, safe: bool) -> String {
        let key = self.key_list("");
        let n = self.key.len();
        let aliases: Vec<String> = (1..=n).map(|i| format!("zdm_k{i}")).collect();
        // The batch's keys are renamed zdm_k1.. so that bare column names in the
        // assignments can only mean the table's own columns.
        let aliased: Vec<String> = self
            .key
            .iter()
            .zip(&aliases)
            .map(|((c, _), a)| format!("{c} AS {a}"))
            .collect();
        let upper: Vec<String> = self
            .key
            .iter()
            .enumerate()
            .map(|(i, (_, ty))| format!("$1[{}]::{ty}", i + 1))
            .collect();
        let end_text: Vec<String> = aliases.iter().map(|a| format!("{a}::text")).collect();
        let source_cols: Vec<String> = self.key.iter().map(|(c, _)| c.to_string()).collect();
        let to_upper = self.range(&source_cols, after_last, &self.param_row(1));
        // The work takes a key range, not a join with the batch: a range stays
        // an index range scan whatever the batch size, where a join may turn
        // into a merge join over the whole index for big batches.
        format!(
            "WITH zdm_end AS MATERIALIZED (
    SELECT {aliases}, zdm_full
      FROM ((SELECT {aliased}, true AS zdm_full
               FROM ONLY {table}
              WHERE {to_upper_indented}
              ORDER BY {key}
             OFFSET $2 - 1 LIMIT 1)
            UNION ALL
            SELECT {upper}, false) AS zdm_e
     ORDER BY zdm_full DESC
     LIMIT 1
), zdm_changed AS (
{work}
)
SELECT CASE WHEN (SELECT zdm_full FROM zdm_end) THEN $2::int8
            ELSE (SELECT count(*)
                    FROM (SELECT FROM ONLY {table}
                           WHERE {to_upper_count}
                           ORDER BY {key}
                           LIMIT $2) AS zdm_left)
       END AS rows_scanned,
       (SELECT count(*) FROM zdm_changed)::int8 AS rows_changed,
       (SELECT ARRAY[{end_text}] FROM zdm_end) AS last_key",
            aliases = aliases.join(", "),
            aliased = aliased.join(", "),
            table = self.table,
            to_upper_indented = to_upper.replace("\n       AND", "\n                AND"),
            to_upper_count = to_upper.replace("\n       AND", "\n                             AND"),
            upper = upper.join(", "),
            work = self.work_sql(after_last, safe),
            end_text = end_text.join(", "),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn composite_key_batches_are_range_scans() {
        let t = QualifiedName::new(Ident::test("public"), Ident::test("Order Lines"));
        let key = vec![
            (Ident::test("order_id"), SqlFragment("bigint".into())),
            (Ident::test("Line"), SqlFragment("integer".into())),
        ];
        let k = KeysetBatch {
            table: &t,
            key: &key,
            work: BatchWork::Update {
                assignments: vec!["b = a".into()],
                needs_work: "b IS DISTINCT FROM a".into(),
            },
        };
        assert_eq!(
            k.upper_bound_sql(),
            "SELECT ARRAY[order_id::text, \"Line\"::text] FROM ONLY public.\"Order Lines\" ORDER BY order_id DESC, \"Line\" DESC LIMIT 1"
        );
        let next = k.next_batch_sql();
        assert!(next.contains("WHERE (order_id, \"Line\") > ($3[1]::bigint, $3[2]::integer)\n                AND (order_id, \"Line\") <= ($1[1]::bigint, $1[2]::integer)"), "{next}");
        // The batch's end: $2 rows further along the index, or the upper bound.
        assert!(next.contains("ORDER BY order_id, \"Line\"\n             OFFSET $2 - 1 LIMIT 1)\n            UNION ALL\n            SELECT $1[1]::bigint, $1[2]::integer, false) AS zdm_e"), "{next}");
        assert!(next.contains("WHERE (order_id, \"Line\") > ($3[1]::bigint, $3[2]::integer)\n       AND (order_id, \"Line\") <= ((SELECT zdm_k1 FROM zdm_end), (SELECT zdm_k2 FROM zdm_end))"), "{next}");
        // Rows scanned: the batch size, or the rows left when fewer are (an
        // ordered LIMIT, so that this too stays an index range scan).
        assert!(next.contains("SELECT CASE WHEN (SELECT zdm_full FROM zdm_end) THEN $2::int8\n            ELSE (SELECT count(*)\n                    FROM (SELECT FROM ONLY public.\"Order Lines\"\n                           WHERE (order_id, \"Line\") > ($3[1]::bigint, $3[2]::integer)\n                             AND (order_id, \"Line\") <= ($1[1]::bigint, $1[2]::integer)\n                           ORDER BY order_id, \"Line\"\n                           LIMIT $2) AS zdm_left)"), "{next}");
        let first = k.first_batch_sql();
        assert!(!first.contains("$3"), "{first}");
        assert!(first.contains("WHERE (order_id, \"Line\") <= ($1[1]::bigint, $1[2]::integer)"));
        assert!(
            !first.contains("MATERIALIZED (\n    SELECT order_id"),
            "no batch of keys is materialized: {first}"
        );
        let f = QualifiedName::new(Ident::test("zdm"), Ident::test("backfill_m"));
        let func = k.create_batch_function(&f, "m", "copy a into b");
        assert!(
            func.starts_with("CREATE FUNCTION zdm.backfill_m(upper_bound text[], batch_size integer, last_key text[])"),
            "{func}"
        );
        assert!(
            func.contains("IF $3 IS NULL THEN\n        RETURN QUERY\n        WITH zdm_end AS MATERIALIZED ("),
            "{func}"
        );
        assert!(func.contains("-- pg_zdm migration m: one keyset batch of the backfill of public.\"Order Lines\""));
    }

    #[test]
    fn copy_batches_skip_copied_keys_and_fall_back_on_a_race() {
        let t = QualifiedName::new(Ident::test("public"), Ident::test("orders"));
        let key = vec![(Ident::test("id"), SqlFragment("bigint".into()))];
        let k = KeysetBatch {
            table: &t,
            key: &key,
            work: BatchWork::CopyInto {
                target: "public.zdm_shadow_m".into(),
                columns: vec!["id".into(), "amount".into()],
                values: vec!["id".into(), "amount".into()],
                conflict_key: vec!["id".into()],
                overriding: false,
                settle: "zdm.shadow_settle_m".into(),
            },
        };
        let next = k.next_batch_sql();
        assert!(next.contains("FROM ONLY public.orders AS zdm_src"), "{next}");
        // The shadow side of the anti-join is bounded by the batch's range too.
        assert!(
            next.contains("       AND NOT EXISTS (SELECT FROM public.zdm_shadow_m AS zdm_t\n                        WHERE (zdm_t.id) = (zdm_src.id)\n                          AND (zdm_t.id) > ($3[1]::bigint)\n                          AND (zdm_t.id) <= ((SELECT zdm_k1 FROM zdm_end)))\n    RETURNING 1"),
            "{next}"
        );
        assert!(
            !next.contains("ON CONFLICT") && !next.contains("FOR KEY SHARE"),
            "{next}"
        );
        let f = QualifiedName::new(Ident::test("zdm"), Ident::test("backfill_m"));
        let func = k.create_batch_function(&f, "m", "copy");
        let (fast, rest) = func
            .split_once("EXCEPTION WHEN unique_violation THEN")
            .expect("a fallback");
        let (fallback, after) = rest.split_once("    END;\n").expect("the copy's block ends");
        assert!(
            fast.contains("AND NOT EXISTS") && !fast.contains("ON CONFLICT"),
            "{func}"
        );
        assert!(
            fallback.contains("     WHERE (zdm_src.id) <= ((SELECT zdm_k1 FROM zdm_end))\n                ON CONFLICT (id) DO NOTHING"),
            "{func}"
        );
        assert!(!fallback.contains("NOT EXISTS"), "{func}");
        // The settle runs after the copy, whichever way it went.
        assert!(after.contains("PERFORM zdm.shadow_settle_m();"), "{func}");
    }
}
