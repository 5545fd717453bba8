//! The SQL of the bound after which inserts need no probe of the notes:
//! the function telling whether a key sorts after the backfill's upper
//! bound, and the query of the greatest key after a copy phase (see
//! `shadow::beyond`).

use crate::ident::Literal;
use crate::shadow::settle::Settle;
use crate::sqlgen::dollar_quote;

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

impl Settle<'_> {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shadow::settle::tests::{names, settle};

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
