//! Where two specs differ: the DETAIL of a start that reuses a migration's
//! name with another spec.

use serde_json::Value;

/// Where two normalized specs differ, one `path: existing → given` per leaf,
/// for the DETAIL of a start that reuses a name with another spec.
pub fn differences(existing: &Value, given: &Value) -> Vec<String> {
    let mut out = Vec::new();
    diff_at("", existing, given, &mut out);
    out
}

fn diff_at(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    let join = |key: &str| {
        if path.is_empty() {
            key.to_string()
        } else {
            format!("{path}.{key}")
        }
    };
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let none = Value::Null;
                diff_at(&join(k), x.get(k).unwrap_or(&none), y.get(k).unwrap_or(&none), out);
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (u, v)) in x.iter().zip(y).enumerate() {
                diff_at(&format!("{path}[{i}]"), u, v, out);
            }
        }
        _ if a != b => out.push(format!("{}: {a} → {b}", if path.is_empty() { "spec" } else { path })),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_name_each_changed_leaf() {
        let a = serde_json::json!([{"op": "rename_column", "table": "public.u", "column": "name", "new_name": "full_name"}]);
        let b = serde_json::json!([{"op": "rename_column", "table": "public.u", "column": "name", "new_name": "nom"}]);
        assert_eq!(differences(&a, &b), vec![r#"[0].new_name: "full_name" → "nom""#]);
        assert!(differences(&a, &a).is_empty());
        let c = serde_json::json!([{"op": "drop_column"}, {"op": "x"}]);
        assert_eq!(differences(&a, &c).len(), 1, "different lengths: the whole value");
    }
}
