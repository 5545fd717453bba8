//! A step that changes nothing and refuses (raises) when a condition holds:
//! how a plan checks, at the moment its phase runs, what could not be known
//! when it was planned (an index already dropped by its pending statement,
//! NULLs written while NOT NULL was off). Pure: every text arrives quoted.

use crate::ident::Literal;

/// What the refusal says: its SQLSTATE (five characters), message and hint.
pub struct Refusal<'a> {
    pub sqlstate: &'a str,
    pub message: &'a str,
    pub hint: &'a str,
}

/// `DO` block raising `refusal` when `condition` (a boolean SQL expression,
/// every name in it schema-qualified) is true.
pub fn refuse_if(condition: &str, refusal: &Refusal) -> String {
    let body = format!(
        "BEGIN
    IF {condition} THEN
        RAISE EXCEPTION USING ERRCODE = {}, MESSAGE = {}, HINT = {};
    END IF;
END;
",
        Literal::pure(refusal.sqlstate),
        Literal::pure(refusal.message),
        Literal::pure(refusal.hint)
    );
    format!("DO {}", super::dollar_quote(&body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_is_one_do_block_with_quoted_texts() {
        let sql = refuse_if(
            "pg_catalog.to_regclass('public.i') IS NULL",
            &Refusal {
                sqlstate: "55000",
                message: "index \"i\" is gone",
                hint: "it's $zdm$ gone",
            },
        );
        assert_eq!(
            sql,
            "DO $zdm1$
BEGIN
    IF pg_catalog.to_regclass('public.i') IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '55000', MESSAGE = 'index \"i\" is gone', HINT = 'it''s $zdm$ gone';
    END IF;
END;
$zdm1$"
        );
    }
}
