//! The expression through PostgreSQL's parser: its shape checked on the raw
//! parse tree, then parse analysis of a SELECT over a row of typed NULLs,
//! read back as plain data. Every unsafe call of `expr` is here.

use super::PREFIX;
use crate::error::{ZdmError, ZdmResult};
use crate::session::{caught_message, caught_sqlstate, in_subtransaction};
use pgrx::pg_sys;
use pgrx::pg_sys::errcodes::PgSqlErrorCode;
use std::ffi::CString;

/// One SELECT with one target and nothing else.
pub(super) fn check_structure(text: &str, what: &str) -> ZdmResult<()> {
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
pub(super) struct Analysed {
    pub has_sublinks: bool,
    pub has_aggregates_or_sets: bool,
    pub volatile: bool,
    pub result_type: u32,
    /// (attribute number, location in the query text) of each column reference.
    pub vars: Vec<(i16, i32)>,
}

/// Parse analysis of `sql`, a `SELECT (<expr>) ...` whose shape was checked.
///
/// # Safety
/// Raises a PostgreSQL ERROR on a bad expression: call it in a subtransaction.
pub(super) unsafe fn analyse_select(sql: &str) -> Analysed {
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

/// The type and typmod of `SELECT (NULL::<type>)`, parse-analysed.
///
/// # Safety
/// Raises a PostgreSQL ERROR on an unknown type: call it in a subtransaction.
pub(super) unsafe fn analyse_type(sql: &str) -> (u32, i32) {
    let c = CString::new(sql).unwrap();
    let list = pg_sys::raw_parser(c.as_ptr(), pg_sys::RawParseMode::RAW_PARSE_DEFAULT);
    let raw = (*(*list).elements).ptr_value as *mut pg_sys::RawStmt;
    let query = pg_sys::parse_analyze_fixedparams(raw, c.as_ptr(), std::ptr::null_mut(), 0, std::ptr::null_mut());
    let target = (*(*(*query).targetList).elements).ptr_value as *mut pg_sys::TargetEntry;
    let expr = (*target).expr as *mut pg_sys::Node;
    (pg_sys::exprType(expr).to_u32(), pg_sys::exprTypmod(expr))
}
