//! The SQL functions of the linter: thin wrappers inside `privilege::api_call`.

use super::rules::{worst, Verdict};
use super::Report;
use crate::error::{OrRaise, ZdmError, ZdmResult};
use crate::privilege::api_call;
use pgrx::pg_sys::errcodes::PgSqlErrorCode;
use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::{json, Value};

type Row = (
    i32,
    i32,
    String,
    Vec<String>,
    Option<String>,
    String,
    Option<String>,
    Option<i64>,
    Option<i64>,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<JsonB>,
);

/// One row per finding (one `ok` row for a statement without any).
fn rows(reports: Vec<Report>) -> Vec<Row> {
    let mut out = Vec::new();
    for r in reports {
        let base = |verdict: &str,
                    rule: Option<String>,
                    reason: Option<String>,
                    safe: Option<String>,
                    spec: Option<Value>|
         -> Row {
            (
                r.statement.number,
                r.statement.line,
                r.statement.text.clone(),
                r.objects.clone(),
                r.lock.map(|l| l.as_sql()).map(str::to_string),
                r.work.as_str().to_string(),
                r.table.as_ref().map(|t| t.qualified.clone()),
                r.table.as_ref().map(|t| t.size),
                r.table.as_ref().map(|t| t.rows as i64),
                verdict.to_string(),
                rule,
                reason,
                safe,
                spec.map(JsonB),
            )
        };
        if r.findings.is_empty() {
            out.push(base("ok", None, None, None, None));
        }
        for f in &r.findings {
            out.push(base(
                f.verdict.as_str(),
                Some(f.rule.to_string()),
                Some(f.reason.clone()),
                f.safe.as_ref().map(|s| s.text.clone()),
                f.safe.as_ref().and_then(|s| s.spec.clone()),
            ));
        }
    }
    out
}

fn as_json(reports: &[Report]) -> Value {
    Value::Array(reports.iter().map(|r| json!({
        "statement": r.statement.number, "line": r.statement.line, "sql": r.statement.text,
        "objects": r.objects, "lock": r.lock.map(|l| l.as_sql()), "work": r.work.as_str(),
        "table": r.table.as_ref().map(|t| json!({"name": t.qualified, "bytes": t.size, "rows": t.rows as i64})),
        "verdict": worst(&r.findings).as_str(),
        "findings": r.findings.iter().map(|f| json!({
            "rule": f.rule, "verdict": f.verdict.as_str(), "reason": f.reason,
            "safe_way": f.safe.as_ref().map(|s| s.text.clone()), "spec": f.safe.as_ref().and_then(|s| s.spec.clone())})).collect::<Vec<_>>(),
    })).collect())
}

fn check(reports: &[Report]) -> ZdmResult<String> {
    let dangers: Vec<String> = reports
        .iter()
        .flat_map(|r| {
            r.findings
                .iter()
                .filter(|f| f.verdict == Verdict::Danger)
                .map(move |f| format!("line {}: {} ({})", r.statement.line, f.rule, f.reason))
        })
        .collect();
    let warnings = reports
        .iter()
        .flat_map(|r| &r.findings)
        .filter(|f| f.verdict == Verdict::Warning)
        .count();
    if dangers.is_empty() {
        return Ok(format!("{} statements, no danger, {warnings} warnings", reports.len()));
    }
    Err(ZdmError::new(
        PgSqlErrorCode::ERRCODE_RAISE_EXCEPTION,
        format!("migration has {} dangerous statement(s)", dangers.len()),
    )
    .detail(dangers.join("\n"))
    .hint("SELECT * FROM zdm.lint(...) shows each with its safe way; zdm.convert(...) gives the pg_zdm specs."))
}

#[pg_schema]
pub mod zdm {
    use super::*;

    /// Lint a migration's text against this database: one row per finding
    /// (statement, line, lock, work on the table, its size, verdict, rule,
    /// why, the safe way and its zdm.start() spec). Executes nothing.
    #[pg_extern]
    #[allow(clippy::type_complexity)]
    fn lint(
        sql: &str,
        in_transaction: default!(bool, false),
        long_transaction: default!(&str, "'1 minute'"),
    ) -> TableIterator<
        'static,
        (
            name!(statement_no, i32),
            name!(line, i32),
            name!(statement, String),
            name!(objects, Vec<String>),
            name!(lock_mode, Option<String>),
            name!(table_work, String),
            name!(table_name, Option<String>),
            name!(table_bytes, Option<i64>),
            name!(table_rows, Option<i64>),
            name!(verdict, String),
            name!(rule, Option<String>),
            name!(reason, Option<String>),
            name!(safe_way, Option<String>),
            name!(spec, Option<JsonB>),
        ),
    > {
        let reports = api_call(|| super::super::lint(sql, in_transaction, long_transaction)).or_raise();
        TableIterator::new(rows(reports))
    }

    /// zdm.lint() as one jsonb array, one element per statement.
    #[pg_extern]
    fn lint_json(
        sql: &str,
        in_transaction: default!(bool, false),
        long_transaction: default!(&str, "'1 minute'"),
    ) -> JsonB {
        JsonB(api_call(|| super::super::lint(sql, in_transaction, long_transaction).map(|r| as_json(&r))).or_raise())
    }

    /// For CI: raises (P0001, the dangers listed in DETAIL) when any statement
    /// is `danger`; else returns a one-line summary.
    #[pg_extern]
    fn lint_check(
        sql: &str,
        in_transaction: default!(bool, false),
        long_transaction: default!(&str, "'1 minute'"),
    ) -> String {
        api_call(|| super::super::lint(sql, in_transaction, long_transaction).and_then(|r| check(&r))).or_raise()
    }

    /// The zdm.start() specs that replace the text's dangerous statements, and
    /// those pg_zdm has no operation for: {"migrations": [...], "not_converted": [...]}.
    #[pg_extern]
    fn convert(sql: &str, in_transaction: default!(bool, false)) -> JsonB {
        JsonB(
            api_call(|| {
                super::super::lint(sql, in_transaction, "1 minute").map(|r| super::super::convert::convert(&r))
            })
            .or_raise(),
        )
    }
}
