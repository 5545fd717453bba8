//! SQL generation: pure functions from plan inputs to SQL text.
//!
//! Nothing here talks to the server or quotes a name by itself: names arrive
//! quoted by PostgreSQL (see `ident`). Every function is unit-tested on text.

pub mod backfill;
pub mod column_sync;
pub mod fill_trigger;

/// Wrap a function body in a dollar quote whose tag does not occur in the body
/// (a quoted identifier may contain `$zdm$`; the tag then grows a number).
pub fn dollar_quote(body: &str) -> String {
    let mut tag = "$zdm$".to_string();
    let mut n = 0;
    while body.contains(&tag) {
        n += 1;
        tag = format!("$zdm{n}$");
    }
    format!("{tag}\n{body}{tag}")
}

/// Row-constructor text for a list of already-quoted expressions: `(a, b)`.
pub fn row(items: &[String]) -> String {
    format!("({})", items.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollar_quote_avoids_tags_in_body() {
        assert_eq!(dollar_quote("x\n"), "$zdm$\nx\n$zdm$");
        let q = dollar_quote("NEW.\"a$zdm$b\"\n");
        assert!(q.starts_with("$zdm1$"), "{q}");
        assert!(q.ends_with("$zdm1$"));
    }
}
