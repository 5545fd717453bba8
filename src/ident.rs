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
    pub fn new(value: &str) -> Self {
        Literal {
            quoted: pgrx::spi::quote_literal(value),
        }
    }

    #[cfg(any(test, feature = "pg_test"))]
    pub fn test(value: &str) -> Self {
        Literal {
            quoted: quote_literal(value),
        }
    }
}

/// PostgreSQL's `quote_literal` (src/backend/utils/adt/quote.c), for pure
/// code: quotes and backslashes doubled, and `E'...'` when there is a
/// backslash, so the literal reads back the same whatever
/// `standard_conforming_strings` says.
pub fn quote_literal(value: &str) -> String {
    let body = value.replace('\'', "''");
    if value.contains('\\') {
        format!("E'{}'", body.replace('\\', "\\\\"))
    } else {
        format!("'{body}'")
    }
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.quoted)
    }
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
