//! Identifiers and literals, quoted by PostgreSQL itself.
//!
//! SQL generation (`sqlgen`) is pure: it never quotes anything on its own. It
//! receives [`Ident`]s and [`Literal`]s whose quoted form was produced by the
//! server's `quote_identifier` / `quote_literal_cstr`, so a table called
//! `"Order; DROP TABLE x"` is spelled exactly as PostgreSQL would spell it.
//! Unit tests build them with [`Ident::test`], a stand-in that always quotes.

use std::fmt;

/// A name (column, table, trigger...) with its raw spelling and its quoted SQL form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ident {
    raw: String,
    quoted: String,
}

impl Ident {
    /// Quote with the server's `quote_identifier` (only inside a backend).
    pub fn new(raw: impl Into<String>) -> Self {
        let raw = raw.into();
        let quoted = pgrx::spi::quote_identifier(&raw);
        Ident { raw, quoted }
    }

    /// For unit tests without a server: a plain lower-case name stays bare,
    /// anything else is double-quoted the way PostgreSQL does it.
    #[cfg(any(test, feature = "pg_test"))]
    pub fn test(raw: &str) -> Self {
        let bare = !raw.is_empty()
            && raw.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
            && raw
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        let quoted = if bare {
            raw.to_string()
        } else {
            format!("\"{}\"", raw.replace('"', "\"\""))
        };
        Ident {
            raw: raw.to_string(),
            quoted,
        }
    }

    pub fn raw(&self) -> &str {
        &self.raw
    }

    pub fn quoted(&self) -> &str {
        &self.quoted
    }
}

impl fmt::Display for Ident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.quoted)
    }
}

/// A schema-qualified relation or function name: `schema.name`, both parts quoted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QualifiedName {
    pub schema: Ident,
    pub name: Ident,
}

impl QualifiedName {
    pub fn new(schema: Ident, name: Ident) -> Self {
        QualifiedName { schema, name }
    }

    /// `schema.name` unquoted, for messages.
    pub fn display_raw(&self) -> String {
        format!("{}.{}", self.schema.raw(), self.name.raw())
    }
}

impl fmt::Display for QualifiedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.schema, self.name)
    }
}

/// A SQL string literal, quoted by the server's `quote_literal_cstr`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Literal {
    quoted: String,
}

impl Literal {
    /// Quote with the server's `quote_literal_cstr` (only inside a backend).
    pub fn new(value: &str) -> Self {
        Literal {
            quoted: pgrx::spi::quote_literal(value),
        }
    }

    /// The same text as [`Literal::new`], computed without a server: for pure
    /// code (SQL generation, hints built by pure functions).
    pub fn pure(value: &str) -> Self {
        Literal {
            quoted: quote_literal(value),
        }
    }

    #[cfg(any(test, feature = "pg_test"))]
    pub fn test(value: &str) -> Self {
        Self::pure(value)
    }
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.quoted)
    }
}

/// PostgreSQL's `quote_literal` (`quote_literal_internal` in
/// `src/backend/utils/adt/quote.c`), mirrored for code without a server:
/// quotes and backslashes doubled, and an `E` in front when there is a
/// backslash. That form reads back the same whatever
/// `standard_conforming_strings` says; doubling quotes alone does not (a
/// backslash is an escape when the setting is off). Keep it in step with the
/// server's: `tests::literal_matches_the_server` compares the two.
pub fn quote_literal(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 3);
    if value.contains('\\') {
        out.push('E');
    }
    out.push('\'');
    for c in value.chars() {
        if c == '\'' || c == '\\' {
            out.push(c);
        }
        out.push(c);
    }
    out.push('\'');
    out
}

/// A control character (C0, DEL, C1) or a Unicode line or paragraph
/// separator: characters that break a line or hide in a text shown to a user.
pub fn is_control(c: char) -> bool {
    c.is_control() || c == '\u{2028}' || c == '\u{2029}'
}

/// Text for a SQL comment (`-- ...` or `/* ... */`) that mentions a name:
/// pass an identifier's quoted form, or a migration name. Names are code if
/// they reach a comment as they are: a newline ends a `--` comment and the
/// rest of the name is compiled (a table called `x<newline>DECLARE ...`), and
/// `*/` ends a block comment. So every control character (and U+2028/U+2029,
/// line breaks to editors) becomes a visible escape (`\n`, `\u{2028}`), a
/// backslash is doubled so the escapes cannot be forged, and `/*` and `*/`
/// are broken by a backslash. The result is one line that cannot end or open
/// a comment.
pub fn comment_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut prev = None;
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '/' if prev == Some('*') => out.push_str("\\/"),
            '*' if prev == Some('/') => out.push_str("\\*"),
            c if is_control(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
        prev = Some(c);
    }
    out
}

/// A SQL fragment that came from the catalog (a type name from `format_type`,
/// a default from `pg_get_expr`) or from a user expression that was parsed and
/// checked by the server before it got here. Carried verbatim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlFragment(pub String);

impl fmt::Display for SqlFragment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_is_quote_literal() {
        assert_eq!(quote_literal("plain"), "'plain'");
        assert_eq!(quote_literal(""), "''");
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_literal("a\\b"), "E'a\\\\b'");
        assert_eq!(quote_literal("m\\'; DROP TABLE x; --"), "E'm\\\\''; DROP TABLE x; --'");
        assert_eq!(quote_literal("line\nbreak é"), "'line\nbreak é'");
        assert_eq!(Literal::pure("it's").to_string(), "'it''s'");
    }

    #[test]
    fn comment_text_stays_one_line() {
        assert_eq!(comment_text("public.\"Order Lines\""), "public.\"Order Lines\"");
        assert_eq!(
            comment_text("\"x\nDECLARE z int := 1; --\""),
            "\"x\\nDECLARE z int := 1; --\""
        );
        assert_eq!(
            comment_text("a\r\tb\u{0}c\u{7f}d\u{1b}"),
            "a\\r\\tb\\u{0}c\\u{7f}d\\u{1b}"
        );
        assert_eq!(
            comment_text("a\u{2028}b\u{2029}c\u{85}"),
            "a\\u{2028}b\\u{2029}c\\u{85}"
        );
        // A backslash is doubled, so `\n` in the output always means a newline.
        assert_eq!(comment_text("a\\nb"), "a\\\\nb");
        assert_eq!(comment_text("*/ x /* y /**/"), "*\\/ x /\\* y /\\**\\/");
        assert_eq!(comment_text("é ü"), "é ü");
    }

    #[test]
    fn comment_text_never_ends_or_opens_a_comment() {
        let nasty = ["*/", "/*", "/*/", "*/*", "**//", "\\*/", "/\\*", "x\n\r\u{2028}--"];
        for n in nasty {
            let out = comment_text(n);
            assert!(!out.contains("*/") && !out.contains("/*"), "{n:?} -> {out}");
            assert!(
                !out.chars().any(|c| c.is_control() || c == '\u{2028}'),
                "{n:?} -> {out}"
            );
        }
    }
}
