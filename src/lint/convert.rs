//! `zdm.convert(sql)`: the specs that replace a text's dangerous statements,
//! each ready for `zdm.plan()` / `zdm.start()`, and the dangerous statements
//! pg_zdm has no operation for, with the safe way in words.

use super::rules::Verdict;
use super::Report;
use serde_json::{json, Value};

pub fn convert(reports: &[Report]) -> Value {
    let mut migrations = Vec::new();
    let mut not_converted = Vec::new();
    for r in reports {
        for f in r.findings.iter().filter(|f| f.verdict == Verdict::Danger) {
            let entry = |extra: (&str, Value)| {
                let mut o = json!({"statement": r.statement.number, "line": r.statement.line,
                                   "sql": r.statement.text, "rule": f.rule});
                o[extra.0] = extra.1;
                o
            };
            match f.safe.as_ref().and_then(|s| s.spec.clone()) {
                Some(spec) => migrations.push(entry(("spec", spec))),
                None => not_converted.push(entry(("safe_way", json!(f.safe.as_ref().map(|s| s.text.clone()))))),
            }
        }
    }
    json!({ "migrations": migrations, "not_converted": not_converted })
}
