//! Keyset batches over a table's key. Each batch is index range scans only,
//! whatever has been done before: its end is the key `n` entries further along
//! the key index (`(key) > last AND (key) <= upper ORDER BY key OFFSET n - 1
//! LIMIT 1`), or the upper bound; its work is one statement over
//! `(key) > last AND (key) <= end`. It never chases rows inserted after the
//! backfill began (the sync trigger already handles those).
//!
//! Parameters of the generated statements (positions travel as text[] so one
//! stored statement serves any key type; `DateStyle` is fixed to ISO while they run):
//! - `$1` upper bound: key of the last row that existed when the backfill began
//! - `$2` batch size
//! - `$3` key of the last row of the previous batch (NULL for the first batch)
//! - `$4` the batch's end (only in `explain_statements`; the function keeps it
//!   in variables)

use super::dollar_quote;
use crate::ident::{comment_text, Ident, QualifiedName, SqlFragment};

pub struct KeysetBatch<'a> {
    pub table: &'a QualifiedName,
    /// Key columns in index order, with their types.
    pub key: &'a [(Ident, SqlFragment)],
    pub work: BatchWork,
}

/// What a batch does to the rows of its key range.
#[derive(Clone)]
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
    /// in its range (a plain insert when it has none there, else an anti-join
    /// bounded by the range on both sides); if a
    /// trigger copies one of its rows meanwhile (unique violation), the batch
    /// runs again with `ON CONFLICT DO NOTHING`. A row deleted after the
    /// batch's snapshot may still be copied: its delete noted the key, and the
    /// settle function called after the copy removes such copies (see
    /// `shadow::settle`).
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
        /// The migration's settle function, called after the copy. None while
        /// the shadow has no indexes yet (its copy phase): writers do not
        /// write it then, so a batch is a plain insert, and the settle waits
        /// for the indexes.
        settle: Option<String>,
    },
}

impl KeysetBatch<'_> {
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
    /// Separate statements (the batch's end, its work, the rows it covered),
    /// so the work is a plain statement whose row count PostgreSQL gives for
    /// free: no RETURNING, no materialized batch.
    pub fn create_batch_function(&self, function: &QualifiedName, migration: &str, description: &str) -> String {
        let n = self.key.len();
        let vars: Vec<String> = (1..=n).map(|i| format!("zdm_end{i}")).collect();
        let declare: Vec<String> = self
            .key
            .iter()
            .zip(&vars)
            .map(|((_, ty), v)| format!("    {v} {ty};"))
            .collect();
        // Variables are named through the block label: a column of the same
        // name cannot capture them (`#variable_conflict use_column`).
        let qualified: Vec<String> = vars.iter().map(|v| format!("zdm_batch.{v}")).collect();
        let end = format!("({})", qualified.join(", "));
        let into = format!("{}, zdm_batch.zdm_full", qualified.join(", "));
        let upper: Vec<String> = vars
            .iter()
            .zip(self.key.iter())
            .enumerate()
            .map(|(i, (v, (_, ty)))| format!("        zdm_batch.{v} := $1[{}]::{ty};", i + 1))
            .collect();
        let either = |first: String, next: String| {
            format!(
                "    IF $3 IS NULL THEN
{}
    ELSE
{}
    END IF;",
                indent(&first, 8),
                indent(&next, 8)
            )
        };
        let work = |safe: bool| {
            either(
                self.copy_or_update(false, safe, &end),
                self.copy_or_update(true, safe, &end),
            )
        };
        let work = match &self.work {
            BatchWork::Update { .. } => format!("{}\n    GET DIAGNOSTICS zdm_changed = ROW_COUNT;\n", work(false)),
            BatchWork::CopyInto { settle: None, .. } => format!(
                "{}\n    GET DIAGNOSTICS zdm_changed = ROW_COUNT;\n",
                either(
                    format!("{};", self.copy_sql(false, CopyMode::Plain, &end)),
                    format!("{};", self.copy_sql(true, CopyMode::Plain, &end)),
                )
            ),
            BatchWork::CopyInto {
                settle: Some(settle), ..
            } => format!(
                "    BEGIN
{fast}
        GET DIAGNOSTICS zdm_changed = ROW_COUNT;
    EXCEPTION WHEN unique_violation THEN
        -- A writer's trigger copied one of these rows (inserted or moved to its
        -- key) after this batch's snapshot:
        -- the same batch again, leaving the rows already there alone.
{safe}
        GET DIAGNOSTICS zdm_changed = ROW_COUNT;
    END;
    -- Rows deleted or updated after this batch's snapshot may have been
    -- copied as they were; those writes noted the keys. Settle them now.
    PERFORM {settle}(false);
",
                fast = indent(&work(false), 4),
                safe = indent(&work(true), 4),
            ),
        };
        let body = format!(
            "#variable_conflict use_column
-- pg_zdm migration {migration}: one keyset batch of the backfill of {table_comment}
-- ({description}).
-- $1: key of the last row that existed when the backfill began (upper bound)
-- $2: batch size
-- $3: key of the last row of the previous batch, NULL for the first batch
<<zdm_batch>>
DECLARE
{declare}
    zdm_full boolean;
    zdm_scanned bigint;
    zdm_changed bigint;
BEGIN
    -- The batch ends $2 rows further along the key index, or at the upper bound.
{end_key}
    IF NOT FOUND THEN
        zdm_batch.zdm_full := false;
{upper}
    END IF;
{work}    -- Rows covered: the batch size, or the rows that were left.
    IF zdm_batch.zdm_full THEN
        zdm_batch.zdm_scanned := $2;
    ELSE
{count}
    END IF;
    RETURN QUERY SELECT zdm_batch.zdm_scanned, zdm_batch.zdm_changed,
                        ARRAY[{end_text}];
END;
",
            migration = comment_text(migration),
            table_comment = comment_text(&self.table.to_string()),
            description = comment_text(description),
            declare = declare.join("\n"),
            end_key = either(
                format!("{};", self.end_key_sql(false, Some(&into))),
                format!("{};", self.end_key_sql(true, Some(&into)))
            ),
            upper = upper.join("\n"),
            count = indent(
                &either(
                    format!("{};", self.count_sql(false, Some("zdm_batch.zdm_scanned"))),
                    format!("{};", self.count_sql(true, Some("zdm_batch.zdm_scanned")))
                ),
                4
            ),
            end_text = qualified
                .iter()
                .map(|v| format!("{v}::text"))
                .collect::<Vec<_>>()
                .join(", "),
        );
        format!(
            "CREATE FUNCTION {function}(upper_bound text[], batch_size integer, last_key text[])
RETURNS TABLE (zdm_rows_scanned bigint, zdm_rows_changed bigint, zdm_last_key text[])
LANGUAGE plpgsql AS {}",
            dollar_quote(&body)
        )
    }

    /// `(cols) > $3` (after the first batch) `AND (cols) <= <end>`: the batch's
    /// key range over `cols` (the table's key columns, or the shadow's), the
    /// `AND` on a line of its own indented by `and_indent` spaces.
    fn range(&self, cols: &[String], after_last: bool, end: &str, and_indent: usize) -> String {
        let row = format!("({})", cols.join(", "));
        if after_last {
            let pad = " ".repeat(and_indent);
            format!("{row} > {}\n{pad}AND {row} <= {end}", self.param_row(3))
        } else {
            format!("{row} <= {end}")
        }
    }

    fn key_cols(&self, alias: &str) -> Vec<String> {
        self.key.iter().map(|(k, _)| format!("{alias}.{k}")).collect()
    }

    /// The key `$2` rows further along the index (within the upper bound),
    /// `INTO` the given targets, with `true` for "a full batch".
    fn end_key_sql(&self, after_last: bool, into: Option<&str>) -> String {
        let cols = self.key_cols("zdm_k");
        format!(
            "SELECT {}, true{}
  FROM ONLY {} AS zdm_k
 WHERE {}
 ORDER BY {}
OFFSET $2 - 1 LIMIT 1",
            cols.join(", "),
            into.map(|i| format!("\n  INTO {i}")).unwrap_or_default(),
            self.table,
            self.range(&cols, after_last, &self.param_row(1), 3),
            cols.join(", "),
        )
    }

    /// The rows left up to the upper bound (at most `$2`: an ordered LIMIT, so
    /// this too stays an index range scan).
    fn count_sql(&self, after_last: bool, into: Option<&str>) -> String {
        let cols = self.key_cols("zdm_k");
        format!(
            "SELECT count(*){}
  FROM (SELECT FROM ONLY {} AS zdm_k
         WHERE {}
         ORDER BY {}
         LIMIT $2) AS zdm_left",
            into.map(|i| format!("\n  INTO {i}")).unwrap_or_default(),
            self.table,
            self.range(&cols, after_last, &self.param_row(1), 11),
            cols.join(", "),
        )
    }

    /// The batch's work in the function. A copy checks first whether writers
    /// put any row in the shadow within the range (one index probe): if none,
    /// the plain `INSERT ... SELECT` (as fast as the bare statement); if some,
    /// the one that skips them. A row a writer copies meanwhile makes it fail
    /// (unique violation) and the safe variant runs instead.
    fn copy_or_update(&self, after_last: bool, safe: bool, end: &str) -> String {
        match (&self.work, safe) {
            (
                BatchWork::CopyInto {
                    target,
                    conflict_key,
                    settle: Some(_),
                    ..
                },
                false,
            ) => {
                let target_key: Vec<String> = conflict_key.iter().map(|k| format!("zdm_t.{k}")).collect();
                format!(
                    "IF EXISTS (SELECT FROM {target} AS zdm_t
            WHERE {}) THEN
{};
ELSE
{};
END IF;",
                    self.range(&target_key, after_last, end, 14),
                    indent(&self.work_sql(after_last, false, end), 4),
                    indent(&self.copy_sql(after_last, CopyMode::Plain, end), 4),
                )
            }
            _ => format!("{};", self.work_sql(after_last, safe, end)),
        }
    }

    /// The statement that does the batch's work over its key range (up to
    /// `end`); `safe`: the variant that copes with rows copied since the snapshot.
    fn work_sql(&self, after_last: bool, safe: bool, end: &str) -> String {
        match &self.work {
            BatchWork::Update {
                assignments,
                needs_work,
            } => format!(
                "UPDATE ONLY {table} AS zdm_row
   SET {assignments}
 WHERE {range}
   AND ({needs_work})",
                table = self.table,
                assignments = assignments.join(",\n       "),
                range = self.range(&self.key_cols("zdm_row"), after_last, end, 3),
            ),
            BatchWork::CopyInto { settle: None, .. } => self.copy_sql(after_last, CopyMode::Plain, end),
            BatchWork::CopyInto { .. } => self.copy_sql(
                after_last,
                if safe {
                    CopyMode::OnConflict
                } else {
                    CopyMode::SkipCopied
                },
                end,
            ),
        }
    }

    fn copy_sql(&self, after_last: bool, mode: CopyMode, end: &str) -> String {
        let BatchWork::CopyInto {
            target,
            columns,
            values,
            conflict_key,
            overriding,
            ..
        } = &self.work
        else {
            unreachable!("copy_sql on an update batch")
        };
        let skip = match mode {
            CopyMode::SkipCopied => {
                let target_key: Vec<String> = conflict_key.iter().map(|k| format!("zdm_t.{k}")).collect();
                // The shadow side is bounded by the same range, so the
                // anti-join reads only the few rows writers copied there
                // (never the whole shadow), however the planner joins.
                format!(
                    "\n   AND NOT EXISTS (SELECT FROM {target} AS zdm_t\n                    WHERE ({}) = ({})\n                      AND {})",
                    target_key.join(", "),
                    self.key_cols("zdm_src").join(", "),
                    self.range(&target_key, after_last, end, 22),
                )
            }
            _ => String::new(),
        };
        let on_conflict = match mode {
            CopyMode::OnConflict => format!("\nON CONFLICT ({}) DO NOTHING", conflict_key.join(", ")),
            _ => String::new(),
        };
        format!(
            "INSERT INTO {target} ({columns}){overriding}
SELECT {values}
  FROM ONLY {table} AS zdm_src
 WHERE {range}{skip}{on_conflict}",
            columns = columns.join(", "),
            overriding = if *overriding { " OVERRIDING SYSTEM VALUE" } else { "" },
            values = values.join(",\n       "),
            table = self.table,
            range = self.range(&self.key_cols("zdm_src"), after_last, end, 3),
        )
    }

    /// The statements of a batch after the first, for EXPLAIN: `$1` upper
    /// bound, `$2` batch size, `$3` last key done, `$4` the batch's end key
    /// (all text[] but `$2`): its end, its work, the rows it covered.
    pub fn explain_statements(&self) -> Vec<String> {
        let end: Vec<String> = self
            .key
            .iter()
            .enumerate()
            .map(|(i, (_, ty))| format!("$4[{}]::{ty}", i + 1))
            .collect();
        vec![
            self.end_key_sql(true, None),
            self.work_sql(true, false, &format!("({})", end.join(", "))),
            self.count_sql(true, None),
        ]
    }
}

/// How a copy batch treats keys the shadow may already have.
#[derive(Clone, Copy)]
enum CopyMode {
    /// The shadow has none in the range: a plain insert.
    Plain,
    /// Skip the keys the shadow has (an anti-join bounded by the range).
    SkipCopied,
    /// Insert with `ON CONFLICT DO NOTHING` (after a unique violation).
    OnConflict,
}

/// `sql` with every line indented by `by` spaces (empty lines stay empty),
/// for readable generated functions.
fn indent(sql: &str, by: usize) -> String {
    let pad = " ".repeat(by);
    let sql = sql.strip_suffix('\n').unwrap_or(sql);
    let mut out = String::with_capacity(sql.len() + 16 * by);
    // A line break inside a quoted name or a string literal is part of it:
    // the line after it is not indented (spaces there would change the
    // name). A quote in a `--` comment opens nothing; a doubled quote closes
    // and reopens at once.
    let mut quote: Option<char> = None;
    let mut comment = false;
    let mut line_start = true;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if line_start && c != '\n' {
            out.push_str(&pad);
        }
        line_start = false;
        match (quote, c) {
            (None, '\n') => (comment, line_start) = (false, true),
            (None, '-') if !comment && chars.peek() == Some(&'-') => comment = true,
            (None, '"' | '\'') if !comment => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            _ => {}
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indent_leaves_names_and_literals_alone() {
        assert_eq!(
            indent("a\n\"x\ny\" -- it's\nb\n\n'c\nd''\ne' \"\"\"f\ng\"\n", 2),
            "  a\n  \"x\ny\" -- it's\n  b\n\n  'c\nd''\ne' \"\"\"f\ng\""
        );
    }

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
        let [end, work, count] = <[String; 3]>::try_from(k.explain_statements()).unwrap();
        // The batch's end: $2 rows further along the index (within the upper bound).
        assert_eq!(
            end,
            "SELECT zdm_k.order_id, zdm_k.\"Line\", true\n  FROM ONLY public.\"Order Lines\" AS zdm_k\n WHERE (zdm_k.order_id, zdm_k.\"Line\") > ($3[1]::bigint, $3[2]::integer)\n   AND (zdm_k.order_id, zdm_k.\"Line\") <= ($1[1]::bigint, $1[2]::integer)\n ORDER BY zdm_k.order_id, zdm_k.\"Line\"\nOFFSET $2 - 1 LIMIT 1"
        );
        // The work: one range, bounded on both sides.
        assert_eq!(
            work,
            "UPDATE ONLY public.\"Order Lines\" AS zdm_row\n   SET b = a\n WHERE (zdm_row.order_id, zdm_row.\"Line\") > ($3[1]::bigint, $3[2]::integer)\n   AND (zdm_row.order_id, zdm_row.\"Line\") <= ($4[1]::bigint, $4[2]::integer)\n   AND (b IS DISTINCT FROM a)"
        );
        // Rows covered when fewer than a batch are left: an ordered LIMIT.
        assert!(
            count.contains("ORDER BY zdm_k.order_id, zdm_k.\"Line\"\n         LIMIT $2) AS zdm_left"),
            "{count}"
        );
        let f = QualifiedName::new(Ident::test("zdm"), Ident::test("backfill_m"));
        let func = k.create_batch_function(&f, "m", "copy a into b");
        assert!(
            func.starts_with("CREATE FUNCTION zdm.backfill_m(upper_bound text[], batch_size integer, last_key text[])"),
            "{func}"
        );
        assert!(func.contains("-- pg_zdm migration m: one keyset batch of the backfill of public.\"Order Lines\""));
        // Typed end-key variables, referred to through the block label (a
        // column of the same name cannot capture them).
        assert!(
            func.contains("<<zdm_batch>>\nDECLARE\n    zdm_end1 bigint;\n    zdm_end2 integer;\n"),
            "{func}"
        );
        assert!(
            func.contains("  INTO zdm_batch.zdm_end1, zdm_batch.zdm_end2, zdm_batch.zdm_full\n"),
            "{func}"
        );
        assert!(func.contains("    IF NOT FOUND THEN\n        zdm_batch.zdm_full := false;\n        zdm_batch.zdm_end1 := $1[1]::bigint;\n        zdm_batch.zdm_end2 := $1[2]::integer;\n    END IF;"), "{func}");
        assert!(func.contains("<= (zdm_batch.zdm_end1, zdm_batch.zdm_end2)\n"), "{func}");
        assert!(func.contains("GET DIAGNOSTICS zdm_changed = ROW_COUNT;"), "{func}");
        assert!(!func.contains("RETURNING") && !func.contains("MATERIALIZED"), "{func}");
        assert!(
            func.contains("ARRAY[zdm_batch.zdm_end1::text, zdm_batch.zdm_end2::text]"),
            "{func}"
        );
        // The first batch has no lower bound.
        let (first, _) = func.split_once("    ELSE\n").unwrap();
        assert!(
            first.contains("IF $3 IS NULL THEN") && !first.contains("$3[1]"),
            "{func}"
        );
    }

    fn orders_key() -> (QualifiedName, Vec<(Ident, SqlFragment)>) {
        let t = QualifiedName::new(Ident::test("public"), Ident::test("orders"));
        (t, vec![(Ident::test("id"), SqlFragment("bigint".into()))])
    }

    /// Copy batches of public.orders (id, amount) into its shadow.
    fn copy_into_orders<'a>(
        t: &'a QualifiedName,
        key: &'a [(Ident, SqlFragment)],
        settle: Option<String>,
    ) -> KeysetBatch<'a> {
        KeysetBatch {
            table: t,
            key,
            work: BatchWork::CopyInto {
                target: "public.zdm_shadow_m".into(),
                columns: vec!["id".into(), "amount".into()],
                values: vec!["id".into(), "amount".into()],
                conflict_key: vec!["id".into()],
                overriding: false,
                settle,
            },
        }
    }

    #[test]
    fn copy_phase_batches_are_plain_inserts() {
        let (t, key) = orders_key();
        let k = copy_into_orders(&t, &key, None);
        let f = QualifiedName::new(Ident::test("zdm"), Ident::test("backfill_m"));
        let func = k.create_batch_function(&f, "m", "copy");
        // The shadow has no index yet: nothing probes it, nothing settles.
        for absent in ["zdm_t", "ON CONFLICT", "EXCEPTION", "settle", "NOT EXISTS"] {
            assert!(!func.contains(absent), "{absent}: {func}");
        }
        assert!(
            func.contains("        INSERT INTO public.zdm_shadow_m (id, amount)\n        SELECT id,\n               amount\n          FROM ONLY public.orders AS zdm_src\n         WHERE (zdm_src.id) > ($3[1]::bigint)\n           AND (zdm_src.id) <= (zdm_batch.zdm_end1);\n"),
            "{func}"
        );
        assert!(!k.explain_statements()[1].contains("zdm_t"));
    }

    #[test]
    fn copy_batches_skip_copied_keys_and_fall_back_on_a_race() {
        let (t, key) = orders_key();
        let k = copy_into_orders(&t, &key, Some("zdm.shadow_settle_m".into()));
        // The shadow side of the anti-join is bounded by the batch's range too.
        let work = &k.explain_statements()[1];
        assert!(
            work.ends_with("   AND NOT EXISTS (SELECT FROM public.zdm_shadow_m AS zdm_t\n                    WHERE (zdm_t.id) = (zdm_src.id)\n                      AND (zdm_t.id) > ($3[1]::bigint)\n                      AND (zdm_t.id) <= ($4[1]::bigint))"),
            "{work}"
        );
        assert!(
            !work.contains("ON CONFLICT") && !work.contains("FOR KEY SHARE"),
            "{work}"
        );
        let f = QualifiedName::new(Ident::test("zdm"), Ident::test("backfill_m"));
        let func = k.create_batch_function(&f, "m", "copy");
        let (fast, rest) = func
            .split_once("EXCEPTION WHEN unique_violation THEN")
            .expect("a fallback");
        let (fallback, after) = rest.split_once("    END;\n").expect("the copy's block ends");
        // Fast: a plain insert when writers put nothing in the range, else the anti-join.
        assert!(
            fast.contains("            IF EXISTS (SELECT FROM public.zdm_shadow_m AS zdm_t\n                        WHERE (zdm_t.id) > ($3[1]::bigint)\n                          AND (zdm_t.id) <= (zdm_batch.zdm_end1)) THEN\n"),
            "{func}"
        );
        assert!(
            fast.contains("                 WHERE (zdm_src.id) > ($3[1]::bigint)\n                   AND (zdm_src.id) <= (zdm_batch.zdm_end1);\n            END IF;"),
            "the plain insert: {func}"
        );
        assert!(
            fast.contains("AND NOT EXISTS") && !fast.contains("ON CONFLICT"),
            "{func}"
        );
        assert!(
            fallback.contains(
                "             WHERE (zdm_src.id) <= (zdm_batch.zdm_end1)\n            ON CONFLICT (id) DO NOTHING;"
            ),
            "{func}"
        );
        assert!(!fallback.contains("NOT EXISTS"), "{func}");
        // The settle runs after the copy, whichever way it went.
        assert!(after.starts_with("    -- Rows deleted or updated after this batch's snapshot may have been\n    -- copied as they were; those writes noted the keys. Settle them now.\n    PERFORM zdm.shadow_settle_m(false);"), "{func}");
    }
}
