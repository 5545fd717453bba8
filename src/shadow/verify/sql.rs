//! The SQL of `zdm.verify`: row counts and order-independent per-column
//! checksums of the original and the shadow in one statement, and, only on
//! a mismatch, the join that names the differing rows.

use crate::ident::{Ident, QualifiedName};

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
/// `shadow::settle`), so this comparison needs no settle before it,
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

    #[test]
    fn verify_is_one_statement_over_both_tables() {
        let s = QualifiedName::new(Ident::test("public"), Ident::test("Order; DROP TABLE x"));
        let t = QualifiedName::new(Ident::test("public"), Ident::test("zdm_shadow_m"));
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
