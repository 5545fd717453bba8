//! Golden test of a whole shadow plan: shapes built by hand (no server), and
//! every step's SQL, every generated function's full text and every field of
//! the stored plan compared with `src/shadow/golden/<name>.sql`. Any change
//! in the generated SQL shows as a diff here, and in review.
//!
//! After an intended change: `ZDM_BLESS_GOLDEN=1 cargo test --lib golden`
//! writes the files again; read their diff before committing them.

use super::plan::plan_from_shape;
use super::shape::{IndexBuild, ReverseColumn, ShadowColumn, ShadowForeignKey, ShadowShape, Source};
use crate::catalog::{ColumnInfo, IndexInfo, KeyInfo, TableInfo};
use crate::ident::{Ident, QualifiedName, SqlFragment};
use crate::ops::PlanContext;
use serde_json::Value;

fn table(schema: &str, name: &str, columns: Vec<ColumnInfo>, key: &[(&str, &str)]) -> TableInfo {
    TableInfo {
        oid: 1,
        name: QualifiedName::new(Ident::test(schema), Ident::test(name)),
        relkind: 'r',
        columns,
        key: Some(KeyInfo {
            index_name: format!("{name}_pkey"),
            is_primary: true,
            columns: key
                .iter()
                .map(|(c, ty)| (Ident::test(c), SqlFragment(ty.to_string())))
                .collect(),
            partitions: vec![],
        }),
        dependents: vec![],
        constraint_names: vec![],
        indexes: vec![],
        checks: vec![],
        foreign_keys: vec![],
        partitions: None,
    }
}

fn index(name: &str, unique: bool, attnums: &[i16]) -> IndexInfo {
    IndexInfo {
        oid: 2,
        constraint_oid: None,
        name: Ident::test(name),
        unique,
        primary: unique,
        exclusion: false,
        constraint: None,
        access_method: "btree".into(),
        elements: attnums.iter().map(|a| (*a, format!("c{a}"), String::new())).collect(),
        key_count: attnums.len(),
        predicate: None,
        options: None,
        attnums: attnums.to_vec(),
    }
}

fn shadow_col(name: &str, ty: &str, source: Source) -> ShadowColumn {
    ShadowColumn {
        name: Ident::test(name),
        type_sql: SqlFragment(ty.into()),
        not_null: false,
        has_default: false,
        generated: false,
        identity_always: false,
        source,
    }
}

fn reverse_col(name: &str, source: Option<&str>) -> ReverseColumn {
    ReverseColumn {
        name: Ident::test(name),
        not_null: false,
        has_default: false,
        generated: false,
        identity_always: false,
        source: source.map(Ident::test),
    }
}

fn copy(c: &str) -> Source {
    Source::Copy(Ident::test(c))
}

fn ix(name: &str) -> Ident {
    Ident::test(name)
}

/// `public.orders` (id bigint key, customer_id, "Amount" integer, legacy,
/// n an identity GENERATED ALWAYS) becoming: "Amount" bigint, total_cents
/// from column_map, created_at from its default, legacy dropped.
fn orders() -> ShadowShape {
    let original = table(
        "public",
        "orders",
        vec![
            ColumnInfo::test("id", 1, "bigint", true),
            ColumnInfo::test("customer_id", 2, "bigint", true),
            ColumnInfo::test("Amount", 3, "integer", false),
            ColumnInfo::test("legacy", 4, "text", false),
            ColumnInfo::test("n", 5, "bigint", true),
        ],
        &[("id", "bigint")],
    );
    let mut shadow = table(
        "public",
        "zdm_shadow_m",
        vec![
            ColumnInfo::test("id", 1, "bigint", true),
            ColumnInfo::test("customer_id", 2, "bigint", true),
            ColumnInfo::test("Amount", 3, "bigint", false),
            ColumnInfo::test("n", 5, "bigint", true),
            ColumnInfo::test("total_cents", 6, "bigint", false),
            ColumnInfo::test("created_at", 7, "timestamp with time zone", true),
        ],
        &[("id", "bigint")],
    );
    shadow.indexes = vec![
        index("zdm_shadow_m_customer_id_idx", false, &[2]),
        index("zdm_shadow_m_pkey", true, &[1]),
    ];
    let identity = ShadowColumn {
        identity_always: true,
        not_null: true,
        ..shadow_col("n", "bigint", copy("n"))
    };
    let created_at = ShadowColumn {
        not_null: true,
        has_default: true,
        ..shadow_col("created_at", "timestamp with time zone", Source::Default)
    };
    ShadowShape {
        original,
        shadow,
        columns: vec![
            shadow_col("id", "bigint", copy("id")),
            shadow_col("customer_id", "bigint", copy("customer_id")),
            shadow_col("Amount", "bigint", copy("Amount")),
            identity,
            shadow_col(
                "total_cents",
                "bigint",
                Source::Map {
                    text: "\"Amount\" * 100".into(),
                    over_new: "NEW.\"Amount\" * 100".into(),
                },
            ),
            created_at,
        ],
        reverse: vec![
            reverse_col("id", Some("id")),
            reverse_col("customer_id", Some("customer_id")),
            reverse_col("Amount", Some("Amount")),
            reverse_col("legacy", None),
            ReverseColumn {
                identity_always: true,
                not_null: true,
                ..reverse_col("n", Some("n"))
            },
        ],
        index_names: vec![
            (ix("zdm_shadow_m_pkey"), ix("orders_pkey")),
            (ix("orders_customer_id_idx"), ix("orders_customer_id_idx")),
        ],
        identity_sequences: vec![(
            SqlFragment("public.zdm_shadow_m_n_seq".into()),
            SqlFragment("orders_n_seq".into()),
        )],
        foreign_keys: vec![ShadowForeignKey {
            name: ix("orders_customer_id_fkey"),
            columns: vec![ix("customer_id")],
            referenced: "public.customers".into(),
            referenced_columns: vec![ix("id")],
            actions: "ON DELETE CASCADE".into(),
            deferrable: String::new(),
        }],
        not_valid_checks: vec!["ADD CONSTRAINT amount_positive CHECK ((\"Amount\" > 0)) NOT VALID".into()],
        create: vec!["CREATE TABLE public.zdm_shadow_m (LIKE public.orders INCLUDING ALL)".into()],
        alterations: vec![
            "ALTER COLUMN \"Amount\" TYPE bigint".into(),
            "ADD COLUMN total_cents bigint".into(),
            "ADD COLUMN created_at timestamp with time zone NOT NULL DEFAULT now()".into(),
            "DROP COLUMN legacy".into(),
        ],
        unlogged: false,
        indexes_to_build: vec![
            IndexBuild {
                name: ix("zdm_shadow_m_customer_id_idx"),
                drop: "DROP INDEX public.zdm_shadow_m_customer_id_idx".into(),
                build: vec![
                    "CREATE INDEX zdm_shadow_m_customer_id_idx ON public.zdm_shadow_m USING btree (customer_id)".into(),
                    "COMMENT ON INDEX public.zdm_shadow_m_customer_id_idx IS 'by customer'".into(),
                ],
                constraint: false,
            },
            IndexBuild {
                name: ix("zdm_shadow_m_pkey"),
                drop: "ALTER TABLE public.zdm_shadow_m DROP CONSTRAINT zdm_shadow_m_pkey".into(),
                build: vec!["ALTER TABLE public.zdm_shadow_m ADD CONSTRAINT zdm_shadow_m_pkey PRIMARY KEY (id)".into()],
                constraint: true,
            },
        ],
    }
}

/// `"My Schema"."Order; DROP TABLE x"` keyed on (region text, "No" of a
/// domain outside pg_catalog), with a foreign key to itself: no copy phase
/// (the constraint needs the key's index), no bound for inserts (text keys
/// are ordered by collations), a fixed search_path on the sync functions.
fn self_referencing() -> ShadowShape {
    let key = [("region", "pg_catalog.text"), ("No", "app.order_no")];
    let cols = || {
        vec![
            ColumnInfo::test("region", 1, "pg_catalog.text", true),
            ColumnInfo::test("No", 2, "app.order_no", true),
            ColumnInfo::test("parent_no", 3, "app.order_no", false),
        ]
    };
    let original = table("My Schema", "Order; DROP TABLE x", cols(), &key);
    let mut shadow = table("My Schema", "zdm_shadow_m", cols(), &key);
    shadow.indexes = vec![index("zdm_shadow_m_pkey", true, &[1, 2])];
    let shadow_name = shadow.name.to_string();
    ShadowShape {
        original,
        shadow,
        columns: vec![
            shadow_col("region", "pg_catalog.text", copy("region")),
            shadow_col("No", "app.order_no", copy("No")),
            shadow_col("parent_no", "app.order_no", copy("parent_no")),
        ],
        reverse: vec![
            reverse_col("region", Some("region")),
            reverse_col("No", Some("No")),
            reverse_col("parent_no", Some("parent_no")),
        ],
        index_names: vec![(ix("zdm_shadow_m_pkey"), ix("Order; DROP TABLE x_pkey"))],
        identity_sequences: vec![],
        foreign_keys: vec![ShadowForeignKey {
            name: ix("parent"),
            columns: vec![ix("region"), ix("parent_no")],
            referenced: shadow_name,
            referenced_columns: vec![ix("region"), ix("No")],
            actions: String::new(),
            deferrable: " DEFERRABLE".into(),
        }],
        not_valid_checks: vec![],
        create: vec![
            "CREATE TABLE \"My Schema\".zdm_shadow_m (LIKE \"My Schema\".\"Order; DROP TABLE x\" INCLUDING ALL)".into(),
        ],
        alterations: vec![],
        unlogged: false,
        indexes_to_build: vec![IndexBuild {
            name: ix("zdm_shadow_m_pkey"),
            drop: "ALTER TABLE \"My Schema\".zdm_shadow_m DROP CONSTRAINT zdm_shadow_m_pkey".into(),
            build: vec![
                "ALTER TABLE \"My Schema\".zdm_shadow_m ADD CONSTRAINT zdm_shadow_m_pkey PRIMARY KEY (region, \"No\")"
                    .into(),
            ],
            constraint: true,
        }],
    }
}

/// `public.tags`, a key and nothing else, with nothing to build after a
/// copy: an update has nothing to set, an insert that meets the key does
/// nothing.
fn key_only() -> ShadowShape {
    let cols = || vec![ColumnInfo::test("id", 1, "integer", true)];
    let original = table("public", "tags", cols(), &[("id", "integer")]);
    let mut shadow = table("public", "zdm_shadow_m", cols(), &[("id", "integer")]);
    shadow.indexes = vec![index("zdm_shadow_m_pkey", true, &[1])];
    ShadowShape {
        original,
        shadow,
        columns: vec![shadow_col("id", "integer", copy("id"))],
        reverse: vec![reverse_col("id", Some("id"))],
        index_names: vec![],
        identity_sequences: vec![],
        foreign_keys: vec![],
        not_valid_checks: vec![],
        create: vec!["CREATE TABLE public.zdm_shadow_m (LIKE public.tags INCLUDING ALL)".into()],
        alterations: vec![],
        unlogged: false,
        indexes_to_build: vec![],
    }
}

fn ctx() -> PlanContext {
    PlanContext {
        migration: "m".into(),
        quote: Ident::test,
    }
}

fn old_name(shape: &ShadowShape) -> QualifiedName {
    QualifiedName::new(shape.original.name.schema.clone(), Ident::test("zdm_old_m"))
}

/// Every field of the plan as stored (`zdm.migrations.plan`), one block per
/// value, strings as they are (the SQL readable, in its own lines).
fn render(path: &str, v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                render(&format!("{path}.{k}"), v, out);
            }
        }
        Value::Array(a) if !a.is_empty() => {
            for (i, v) in a.iter().enumerate() {
                render(&format!("{path}[{i}]"), v, out);
            }
        }
        Value::String(s) => out.push_str(&format!("-- {path}\n{s}\n\n")),
        other => out.push_str(&format!("-- {path} = {other}\n\n")),
    }
}

/// A line diff (longest common subsequence) of `expected` and `actual`,
/// changed lines only, with their line numbers.
fn diff(expected: &str, actual: &str) -> String {
    let (a, b): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            (i, j) = (i + 1, j + 1);
        } else if j < b.len() && (i == a.len() || lcs[i][j + 1] >= lcs[i + 1][j]) {
            out.push_str(&format!("+{:5} {}\n", j + 1, b[j]));
            j += 1;
        } else {
            out.push_str(&format!("-{:5} {}\n", i + 1, a[i]));
            i += 1;
        }
    }
    out
}

fn check_golden(name: &str, shape: &ShadowShape, indexes_after_copy: bool) {
    let plan = plan_from_shape(&ctx(), shape, &old_name(shape), indexes_after_copy).expect("plans");
    let mut actual = String::new();
    render("plan", &serde_json::to_value(&plan).expect("serializes"), &mut actual);
    let path = format!("{}/src/shadow/golden/{name}.sql", env!("CARGO_MANIFEST_DIR"));
    if std::env::var_os("ZDM_BLESS_GOLDEN").is_some() {
        std::fs::write(&path, &actual).expect("writes the golden file");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    if expected != actual {
        let written = std::env::temp_dir().join(format!("pg_zdm-golden-{name}.sql"));
        std::fs::write(&written, &actual).expect("writes the actual plan");
        panic!(
            "the plan differs from {path} (actual in {}; ZDM_BLESS_GOLDEN=1 rewrites it):\n{}",
            written.display(),
            diff(&expected, &actual)
        );
    }
}

#[test]
fn golden_copy_phase() {
    check_golden("copy_phase", &orders(), true);
}

#[test]
fn golden_indexes_kept() {
    check_golden("indexes_kept", &orders(), false);
}

#[test]
fn golden_self_referencing() {
    check_golden("self_referencing", &self_referencing(), true);
}

#[test]
fn golden_key_only() {
    check_golden("key_only", &key_only(), true);
}

#[test]
fn refusals_name_the_column() {
    let sqlstate = |shape: &ShadowShape| {
        let e = plan_from_shape(&ctx(), shape, &old_name(shape), true).unwrap_err();
        (e.sqlstate().to_string(), e.message)
    };
    let mut s = orders();
    s.columns[0].source = Source::Default;
    assert_eq!(
        sqlstate(&s),
        (
            "55000".into(),
            "the shadow of public.orders does not keep key column id as a copy".into()
        )
    );
    let mut s = orders();
    s.shadow.indexes.retain(|i| !i.unique);
    assert_eq!(
        sqlstate(&s),
        (
            "55000".into(),
            "the shadow of public.orders has no unique index on its key (orders_pkey)".into()
        )
    );
    let mut s = orders();
    s.columns[5].has_default = false;
    assert_eq!(
        sqlstate(&s),
        (
            "23502".into(),
            "column created_at of the shadow of public.orders is NOT NULL, has no default, and nothing fills it".into()
        )
    );
    let mut s = orders();
    s.reverse[3].not_null = true;
    assert_eq!(
        sqlstate(&s),
        (
            "0A000".into(),
            "column legacy of public.orders is NOT NULL without a default, and the new structure cannot fill it back"
                .into()
        )
    );
}
