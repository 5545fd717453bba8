//! User expressions over a table's row (`up_expr`, `down_expr`, `fill_expr`,
//! `check_expr`), checked and rewritten with PostgreSQL's own parser.
//!
//! 1. Structure: `SELECT (<expr>)` must parse (raw parser) into exactly one
//!    SELECT with one target and nothing else, so an expression cannot smuggle
//!    in a FROM, a second statement or a closing parenthesis.
//! 2. Meaning: `SELECT (<expr>)[::type] FROM ONLY <table>` is parse-analysed:
//!    unknown columns, functions and types, and impossible casts, are refused
//!    with PostgreSQL's own SQLSTATE and message.
//! 3. Effects: subqueries (which may read or write other tables), aggregates,
//!    window and set-returning functions are refused; volatile functions too
//!    where the value must be reproducible (sync triggers, checks).
//! 4. Rewriting for triggers: each column reference (a `Var` of the analysed
//!    tree, whose location points into the text) is replaced by `NEW.<column>`.

use crate::catalog::TableInfo;
use crate::error::{ZdmError, ZdmResult};
use crate::ident::{Ident, SqlFragment};
use crate::session::{caught_message, caught_sqlstate, in_subtransaction, with_local_settings};
use pgrx::pg_sys::errcodes::PgSqlErrorCode;

mod lexer;
mod parse;

pub use lexer::column_ref_len;
use parse::{analyse_select, analyse_type, check_structure, Analysed};

/// A checked expression.
#[derive(Debug, Clone)]
pub struct RowExpr {
    /// As the user wrote it (trimmed): valid over the table's bare column names.
    pub text: String,
    /// The same over a trigger's `NEW` row.
    pub over_new: String,
    /// Columns it reads (raw names, as written: before `write_as`).
    pub columns: Vec<String>,
    pub volatile: bool,
    /// Type oid of the value (after the cast, when one was asked).
    pub result_type: u32,
}

/// What the expression is for, in messages: "up_expr", "fill_expr"...
pub struct ExprRules<'a> {
    pub what: &'a str,
    /// Cast the value to this type (the target column's type).
    pub cast_to: Option<&'a str>,
    pub allow_volatile: bool,
}

const PREFIX: &str = "SELECT (";

/// The columns an expression may read: the table's, plus any column a
/// migration adds (a down_expr reads the new column before it exists).
pub fn row_of(table: &TableInfo) -> Vec<(Ident, SqlFragment)> {
    table
        .columns
        .iter()
        .map(|c| (c.name.clone(), c.type_sql.clone()))
        .collect()
}

/// Check an expression. Analysed with `search_path = pg_catalog`, so that an
/// accepted expression names every function and type outside pg_catalog with
/// its schema, and means the same in the sync trigger of any session.
pub fn analyze(table: &TableInfo, row: &[(Ident, SqlFragment)], expr: &str, rules: &ExprRules) -> ZdmResult<RowExpr> {
    analyze_mapped(table, row, expr, rules, &[])
}

/// `analyze`, with the references to some of the row's names written as
/// another column of `NEW` (`write_as`: (name in the row, column of NEW)):
/// a down_expr reads the new value under the column's own name.
pub fn analyze_mapped(
    table: &TableInfo,
    row: &[(Ident, SqlFragment)],
    expr: &str,
    rules: &ExprRules,
    write_as: &[(Ident, Ident)],
) -> ZdmResult<RowExpr> {
    with_local_settings(&[("search_path", "pg_catalog".to_string())], || {
        analyze_here(table, row, expr, rules, write_as)
    })
}

fn analyze_here(
    _table: &TableInfo,
    row: &[(Ident, SqlFragment)],
    expr: &str,
    rules: &ExprRules,
    write_as: &[(Ident, Ident)],
) -> ZdmResult<RowExpr> {
    let text = expr.trim().to_string();
    let what = rules.what;
    if text.is_empty() {
        return Err(ZdmError::invalid_parameter(format!("{what} is empty"))
            .hint("Give a SQL expression over the row's columns."));
    }
    if text.contains('\0') {
        return Err(ZdmError::invalid_parameter(format!("{what} contains a NUL byte")));
    }
    check_structure(&text, what)?;
    let cast = rules.cast_to.map(|t| format!("::{t}")).unwrap_or_default();
    // Analysed over a row of typed NULLs, not the table: the row may include a
    // column that does not exist yet, and nothing is read or locked.
    let fields: Vec<String> = row.iter().map(|(n, t)| format!("NULL::{t} AS {n}")).collect();
    let sql = format!("{PREFIX}{text}){cast} FROM (SELECT {}) AS zdm_row", fields.join(", "));
    let hint = || {
        format!(
            "{what} is a SQL expression over the columns {}, e.g. amount::numeric(10,2); \
             functions and types outside pg_catalog are written with their schema.",
            row.iter().map(|(c, _)| c.raw()).collect::<Vec<_>>().join(", ")
        )
    };
    let analysed = in_subtransaction(|| unsafe { analyse_select(&sql) }).map_err(|e| {
        let code = caught_sqlstate(&e).unwrap_or(PgSqlErrorCode::ERRCODE_SYNTAX_ERROR);
        ZdmError::new(code, format!("{what} \"{text}\": {}", caught_message(&e))).hint(hint())
    })?;
    refuse_effects(&analysed, &text, rules)?;
    let mut columns = Vec::new();
    let over_new = rewrite_columns(&text, &analysed, what, |attno| {
        let (name, _) = row.get(attno as usize - 1)?;
        if !columns.contains(&name.raw().to_string()) {
            columns.insert(0, name.raw().to_string());
        }
        let target = write_as
            .iter()
            .find(|(from, _)| from == name)
            .map_or(name, |(_, to)| to);
        Some(format!("NEW.{target}"))
    })?;
    Ok(RowExpr {
        text,
        over_new,
        columns,
        volatile: analysed.volatile,
        result_type: analysed.result_type,
    })
}

/// What an expression computed for one row at a time may not do: read other
/// tables, aggregate, return sets, read the whole row — or, where its value
/// must be reproducible, call a volatile function.
fn refuse_effects(analysed: &Analysed, text: &str, rules: &ExprRules) -> ZdmResult<()> {
    let what = rules.what;
    if analysed.has_sublinks {
        return Err(ZdmError::not_supported(format!("{what} \"{text}\" contains a subquery"))
            .hint("Expressions may use only the row's own columns, constants and functions: a subquery could read or write other tables."));
    }
    if analysed.has_aggregates_or_sets {
        return Err(ZdmError::not_supported(format!(
            "{what} \"{text}\" uses an aggregate, window or set-returning function"
        ))
        .hint("The expression is computed for one row at a time."));
    }
    if analysed.volatile && !rules.allow_volatile {
        return Err(ZdmError::not_supported(format!("{what} \"{text}\" calls a volatile function"))
            .hint("It must give the same value each time for the same row (no random(), nextval(), clock_timestamp()...)."));
    }
    if analysed.vars.iter().any(|(attno, _)| *attno <= 0) {
        return Err(
            ZdmError::not_supported(format!("{what} \"{text}\" uses the whole row or a system column"))
                .hint("Name the columns it needs."),
        );
    }
    Ok(())
}

/// `text` with each column reference the analysed tree found replaced by
/// what `with` gives for its attribute number (None: left as written).
/// References are replaced from the end, so earlier locations stay valid.
fn rewrite_columns(
    text: &str,
    analysed: &Analysed,
    what: &str,
    mut with: impl FnMut(i16) -> Option<String>,
) -> ZdmResult<String> {
    let mut out = text.to_string();
    let mut vars = analysed.vars.clone();
    vars.sort_by_key(|(_, loc)| std::cmp::Reverse(*loc));
    for (attno, loc) in vars {
        let Some(replacement) = with(attno) else {
            continue;
        };
        let start = loc as usize - PREFIX.len();
        let len = column_ref_len(&text[start..]).ok_or_else(|| {
            ZdmError::not_supported(format!(
                "{what} \"{text}\": cannot read the column reference at offset {start}"
            ))
            .hint("Write column names plainly, as name or \"Name\".")
        })?;
        out.replace_range(start..start + len, &replacement);
    }
    Ok(out)
}

/// A type name as the user wrote it (`numeric(10,2)`), resolved by the
/// server: (type oid, typmod, canonical name, schema-qualified: see
/// `introspect::type_name`).
pub fn analyze_type(type_text: &str, what: &str) -> ZdmResult<(u32, i32, SqlFragment)> {
    with_local_settings(&[("search_path", "pg_catalog".to_string())], || {
        analyze_type_here(type_text, what)
    })
}

fn analyze_type_here(type_text: &str, what: &str) -> ZdmResult<(u32, i32, SqlFragment)> {
    let text = type_text.trim();
    if text.is_empty() || text.contains('\0') {
        return Err(ZdmError::invalid_parameter(format!("{what} is empty")).hint("Give a type, e.g. numeric(10,2)."));
    }
    check_structure(&format!("NULL::{text}"), what)?;
    let sql = format!("{PREFIX}NULL::{text})");
    let (oid, typmod) = in_subtransaction(|| unsafe { analyse_type(&sql) })
    .map_err(|e| {
        ZdmError::new(
            caught_sqlstate(&e).unwrap_or(PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT),
            format!("{what} \"{text}\": {}", caught_message(&e)),
        )
        .hint("Give a type as in CREATE TABLE, e.g. numeric(10,2), varchar(320), bigint; types outside pg_catalog with their schema.")
    })?;
    Ok((oid, typmod, crate::catalog::introspect::type_name(oid, typmod)))
}

/// The same expression with references to column `attnum` of `row` renamed
/// to `to` (bare, not NEW.): an index expression, a predicate or a CHECK
/// moved from an old column to its new twin.
pub fn replace_column(
    row: &[(Ident, SqlFragment)],
    expr: &str,
    attnum: i16,
    to: &Ident,
    what: &str,
) -> ZdmResult<String> {
    with_local_settings(&[("search_path", "pg_catalog".to_string())], || {
        let text = expr.trim().to_string();
        let fields: Vec<String> = row.iter().map(|(n, t)| format!("NULL::{t} AS {n}")).collect();
        let sql = format!("{PREFIX}{text}) FROM (SELECT {}) AS zdm_row", fields.join(", "));
        let analysed = in_subtransaction(|| unsafe { analyse_select(&sql) }).map_err(|e| {
            ZdmError::new(
                caught_sqlstate(&e).unwrap_or(PgSqlErrorCode::ERRCODE_SYNTAX_ERROR),
                format!(
                    "{what} \"{text}\" cannot be moved to {}: {}",
                    to.raw(),
                    caught_message(&e)
                ),
            )
        })?;
        let out = rewrite_columns(&text, &analysed, what, |a| {
            (a == attnum).then(|| to.quoted().to_string())
        })?;
        Ok(out)
    })
}
