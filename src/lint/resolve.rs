//! What the server makes of pieces of a statement, without running it: the
//! type a type name means, whether a default expression is volatile (and its
//! text as the server prints it), and whether a column type change rewrites
//! the table, decided as ALTER TABLE decides it (ATColumnChangeRequiresRewrite:
//! the coercion after `expression_planner` must reduce to relabelings of the
//! column). Anything that cannot be resolved now (an object created earlier in
//! the same text) comes back as None: the rules then say they do not know.

use super::model::{ExprInfo, ResolvedType};
use crate::session::{in_subtransaction, with_local_settings};
use pgrx::pg_sys::{self, NodeTag};
use std::ffi::CStr;

/// The type a TypeName of the raw tree names, with the caller's search_path.
pub unsafe fn resolve_type(tn: *mut pg_sys::TypeName) -> Option<ResolvedType> {
    let (oid, typmod) = in_subtransaction(|| {
        let mut oid = pg_sys::InvalidOid;
        let mut typmod = -1;
        pg_sys::typenameTypeIdAndMod(std::ptr::null_mut(), tn, &mut oid, &mut typmod);
        (oid.to_u32(), typmod)
    })
    .ok()?;
    Some(ResolvedType {
        oid,
        typmod,
        sql: crate::catalog::introspect::type_name(oid, typmod).to_string(),
    })
}

/// A column default of the raw tree: volatile or not, and its text.
pub unsafe fn resolve_default(raw: *mut pg_sys::Node, target: Option<&ResolvedType>) -> ExprInfo {
    if raw.is_null() {
        return ExprInfo::default();
    }
    let analysed = in_subtransaction(|| {
        let pstate = pg_sys::make_parsestate(std::ptr::null_mut());
        let copy = pg_sys::copyObjectImpl(raw.cast()) as *mut pg_sys::Node;
        let mut expr = pg_sys::transformExpr(pstate, copy, pg_sys::ParseExprKind::EXPR_KIND_COLUMN_DEFAULT);
        if let Some(t) = target {
            let coerced = pg_sys::coerce_to_target_type(
                pstate,
                expr,
                pg_sys::exprType(expr),
                pg_sys::Oid::from(t.oid),
                t.typmod,
                pg_sys::CoercionContext::COERCION_ASSIGNMENT,
                pg_sys::CoercionForm::COERCE_IMPLICIT_CAST,
                -1,
            );
            if !coerced.is_null() {
                expr = coerced;
            }
        }
        let volatile = pg_sys::contain_volatile_functions(expr);
        let text = with_local_settings(&[("search_path", "pg_catalog".to_string())], || {
            let t = pg_sys::deparse_expression(expr, std::ptr::null_mut(), false, false);
            CStr::from_ptr(t).to_string_lossy().into_owned()
        });
        (volatile, text)
    });
    match analysed {
        Ok((volatile, text)) => ExprInfo {
            text: Some(text),
            volatile: Some(volatile),
        },
        Err(_) => ExprInfo::default(),
    }
}

/// Would `ALTER COLUMN ... TYPE new` (without USING) rewrite a column of type
/// `old`? None when PostgreSQL cannot coerce one to the other at all.
pub fn type_change_rewrites(old: (u32, i32, u32), new: (u32, i32)) -> Option<bool> {
    let (old_oid, old_typmod, collation) = old;
    unsafe {
        in_subtransaction(|| {
            let pstate = pg_sys::make_parsestate(std::ptr::null_mut());
            let var = pg_sys::makeVar(1, 1, old_oid.into(), old_typmod, collation.into(), 0);
            let coerced = pg_sys::coerce_to_target_type(
                pstate,
                var.cast(),
                old_oid.into(),
                new.0.into(),
                new.1,
                pg_sys::CoercionContext::COERCION_ASSIGNMENT,
                pg_sys::CoercionForm::COERCE_IMPLICIT_CAST,
                -1,
            );
            if coerced.is_null() {
                return None;
            }
            let planned = pg_sys::expression_planner(coerced.cast()) as *mut pg_sys::Node;
            Some(requires_rewrite(planned))
        })
        .ok()
        .flatten()
    }
}

/// ATColumnChangeRequiresRewrite (tablecmds.c), for a column numbered 1.
unsafe fn requires_rewrite(mut expr: *mut pg_sys::Node) -> bool {
    loop {
        match (*expr).type_ {
            NodeTag::T_Var if (*(expr as *mut pg_sys::Var)).varattno == 1 => return false,
            NodeTag::T_RelabelType => expr = (*(expr as *mut pg_sys::RelabelType)).arg.cast(),
            NodeTag::T_CoerceToDomain => {
                let d = &*(expr as *mut pg_sys::CoerceToDomain);
                if pg_sys::DomainHasConstraints(d.resulttype) {
                    return true;
                }
                expr = d.arg.cast();
            }
            NodeTag::T_FuncExpr => {
                let f = &*(expr as *mut pg_sys::FuncExpr);
                let id = f.funcid.to_u32();
                if (id == pg_sys::F_TIMESTAMPTZ_TIMESTAMP || id == pg_sys::F_TIMESTAMP_TIMESTAMPTZ)
                    && !pg_sys::TimestampTimestampTzRequiresRewrite()
                {
                    expr = (*(*f.args).elements).ptr_value.cast();
                } else {
                    return true;
                }
            }
            _ => return true,
        }
    }
}
