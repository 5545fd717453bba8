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
use pgrx::pg_sys;
use pgrx::pg_sys::errcodes::PgSqlErrorCode;
use std::ffi::CString;

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
    // Rewrite from the end so earlier locations stay valid.
    let mut over_new = text.clone();
    let mut columns = Vec::new();
    let mut vars = analysed.vars.clone();
    vars.sort_by_key(|(_, loc)| std::cmp::Reverse(*loc));
    for (attno, loc) in vars {
        let (name, _) = row.get(attno as usize - 1).ok_or_else(|| {
            ZdmError::new(
                PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
                format!("{what}: column {attno} not found"),
            )
        })?;
        let start = loc as usize - PREFIX.len();
        let len = column_ref_len(&text[start..]).ok_or_else(|| {
            ZdmError::not_supported(format!(
                "{what} \"{text}\": cannot read the column reference at offset {start}"
            ))
            .hint("Write column names plainly, as name or \"Name\".")
        })?;
        let target = write_as
            .iter()
            .find(|(from, _)| from == name)
            .map_or(name, |(_, to)| to);
        over_new.replace_range(start..start + len, &format!("NEW.{target}"));
        if !columns.contains(&name.raw().to_string()) {
            columns.push(name.raw().to_string());
        }
    }
    columns.reverse();
    Ok(RowExpr {
        text,
        over_new,
        columns,
        volatile: analysed.volatile,
        result_type: analysed.result_type,
    })
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
    let (oid, typmod) = in_subtransaction(|| unsafe {
        let c = CString::new(sql.as_str()).unwrap();
        let list = pg_sys::raw_parser(c.as_ptr(), pg_sys::RawParseMode::RAW_PARSE_DEFAULT);
        let raw = (*(*list).elements).ptr_value as *mut pg_sys::RawStmt;
        let query = pg_sys::parse_analyze_fixedparams(raw, c.as_ptr(), std::ptr::null_mut(), 0, std::ptr::null_mut());
        let target = (*(*(*query).targetList).elements).ptr_value as *mut pg_sys::TargetEntry;
        let expr = (*target).expr as *mut pg_sys::Node;
        (pg_sys::exprType(expr).to_u32(), pg_sys::exprTypmod(expr))
    })
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
        let mut out = text.clone();
        let mut vars = analysed.vars;
        vars.sort_by_key(|(_, loc)| std::cmp::Reverse(*loc));
        for (a, loc) in vars {
            if a != attnum {
                continue;
            }
            let start = loc as usize - PREFIX.len();
            let len = column_ref_len(&text[start..]).ok_or_else(|| {
                ZdmError::not_supported(format!(
                    "{what} \"{text}\": cannot read the column reference at offset {start}"
                ))
            })?;
            out.replace_range(start..start + len, to.quoted());
        }
        Ok(out)
    })
}

/// One SELECT with one target and nothing else.
fn check_structure(text: &str, what: &str) -> ZdmResult<()> {
    let sql = format!("{PREFIX}{text})");
    let ok = in_subtransaction(|| unsafe {
        let c = CString::new(sql.as_str()).unwrap();
        let list = pg_sys::raw_parser(c.as_ptr(), pg_sys::RawParseMode::RAW_PARSE_DEFAULT);
        if list.is_null() || (*list).length != 1 {
            return false;
        }
        let raw = (*(*list).elements).ptr_value as *mut pg_sys::RawStmt;
        let stmt = (*raw).stmt;
        if (*stmt).type_ != pg_sys::NodeTag::T_SelectStmt {
            return false;
        }
        let s = stmt as *mut pg_sys::SelectStmt;
        let s = &*s;
        !s.targetList.is_null()
            && (*s.targetList).length == 1
            && s.fromClause.is_null()
            && s.whereClause.is_null()
            && s.groupClause.is_null()
            && s.havingClause.is_null()
            && s.windowClause.is_null()
            && s.valuesLists.is_null()
            && s.sortClause.is_null()
            && s.limitOffset.is_null()
            && s.limitCount.is_null()
            && s.lockingClause.is_null()
            && s.withClause.is_null()
            && s.distinctClause.is_null()
            && s.intoClause.is_null()
            && s.op == pg_sys::SetOperation::SETOP_NONE
    });
    match ok {
        Ok(true) => Ok(()),
        Ok(false) => Err(ZdmError::new(
            PgSqlErrorCode::ERRCODE_SYNTAX_ERROR,
            format!("{what} \"{text}\" is not a single expression"),
        )
        .hint("Give one SQL expression, e.g. coalesce(email, 'none'), without FROM, WHERE or a second statement.")),
        Err(e) => Err(ZdmError::new(
            caught_sqlstate(&e).unwrap_or(PgSqlErrorCode::ERRCODE_SYNTAX_ERROR),
            format!("{what} \"{text}\": {}", caught_message(&e)),
        )
        .hint("Give one SQL expression, e.g. coalesce(email, 'none').")),
    }
}

#[derive(Clone)]
struct Analysed {
    has_sublinks: bool,
    has_aggregates_or_sets: bool,
    volatile: bool,
    result_type: u32,
    /// (attribute number, location in the query text) of each column reference.
    vars: Vec<(i16, i32)>,
}

unsafe fn analyse_select(sql: &str) -> Analysed {
    let c = CString::new(sql).unwrap();
    let list = pg_sys::raw_parser(c.as_ptr(), pg_sys::RawParseMode::RAW_PARSE_DEFAULT);
    let raw = (*(*list).elements).ptr_value as *mut pg_sys::RawStmt;
    let query = pg_sys::parse_analyze_fixedparams(raw, c.as_ptr(), std::ptr::null_mut(), 0, std::ptr::null_mut());
    let q = &*query;
    let target = (*(*q.targetList).elements).ptr_value as *mut pg_sys::TargetEntry;
    let expr = (*target).expr as *mut pg_sys::Node;
    let mut vars: Vec<(i16, i32)> = Vec::new();
    collect_vars(expr, &mut vars as *mut Vec<(i16, i32)> as *mut std::ffi::c_void);
    Analysed {
        has_sublinks: q.hasSubLinks,
        has_aggregates_or_sets: q.hasAggs || q.hasWindowFuncs || q.hasTargetSRFs,
        volatile: pg_sys::contain_volatile_functions(expr),
        result_type: pg_sys::exprType(expr).to_u32(),
        vars,
    }
}

unsafe extern "C-unwind" fn collect_vars(node: *mut pg_sys::Node, ctx: *mut std::ffi::c_void) -> bool {
    if node.is_null() {
        return false;
    }
    if (*node).type_ == pg_sys::NodeTag::T_Var {
        let v = &*(node as *mut pg_sys::Var);
        let out = &mut *(ctx as *mut Vec<(i16, i32)>);
        if v.varlevelsup == 0 && v.location >= 0 {
            out.push((v.varattno, v.location));
        }
        return false;
    }
    pg_sys::expression_tree_walker(node, Some(collect_vars), ctx)
}

/// Length of the column reference starting `text`: `name`, `"Name"`,
/// `tbl.name` or `schema.tbl.name`, as the lexer reads identifiers.
pub fn column_ref_len(text: &str) -> Option<usize> {
    let b = text.as_bytes();
    let mut i = ident_len(b, 0)?;
    loop {
        let mut j = i;
        while j < b.len() && b[j].is_ascii_whitespace() {
            j += 1;
        }
        if j < b.len() && b[j] == b'.' {
            j += 1;
            while j < b.len() && b[j].is_ascii_whitespace() {
                j += 1;
            }
            match ident_len(b, j) {
                Some(end) => i = end,
                None => return Some(i),
            }
        } else {
            return Some(i);
        }
    }
}

/// End of the identifier starting at `i`, if there is one.
fn ident_len(b: &[u8], i: usize) -> Option<usize> {
    if i >= b.len() {
        return None;
    }
    if b[i] == b'"' {
        let mut j = i + 1;
        while j < b.len() {
            if b[j] == b'"' {
                if j + 1 < b.len() && b[j + 1] == b'"' {
                    j += 2;
                    continue;
                }
                return Some(j + 1);
            }
            j += 1;
        }
        return None;
    }
    let start_ok = b[i].is_ascii_alphabetic() || b[i] == b'_' || b[i] >= 0x80;
    if !start_ok {
        return None;
    }
    let mut j = i + 1;
    while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_' || b[j] == b'$' || b[j] >= 0x80) {
        j += 1;
    }
    Some(j)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_references_are_measured_like_the_lexer() {
        assert_eq!(column_ref_len("amount::numeric"), Some(6));
        assert_eq!(column_ref_len("\"Big \"\"X\"\"\" + 1"), Some(11));
        assert_eq!(column_ref_len("users.amount * 2"), Some(12));
        assert_eq!(column_ref_len("public . users . amount)"), Some(23));
        assert_eq!(column_ref_len("prénom || 'x'"), Some(7));
        assert_eq!(column_ref_len("1 + a"), None);
        assert_eq!(column_ref_len("\"unterminated"), None);
    }
}
