//! What the swap reads from the catalog before it changes anything: the
//! relations it locks, in order, and the views on the table with all it
//! takes to create them again. Read under `search_path = pg_catalog`, so
//! definitions name the table schema-qualified.

use crate::catalog::introspect::spi_err;
use crate::error::ZdmResult;
use crate::plan::LockMode;
use pgrx::prelude::*;

/// A view to drop and recreate, read before the renames.
pub(super) struct ViewDef {
    pub name: String,
    pub create: Vec<String>,
}

/// What the swap (or the swap back) locks, in the order the sessions that use
/// those relations lock them, so that none of them holds one while waiting
/// for another that the swap holds: the views on `table` first (the outermost
/// first: a query on a view locks it, then what it reads), then `table` and
/// its twin (`other`: the shadow, or the old table), ACCESS EXCLUSIVE; then
/// the tables whose foreign keys are re-pointed, SHARE ROW EXCLUSIVE (what
/// adding a foreign key takes).
pub fn lock_order(table: &str, other: &str) -> ZdmResult<Vec<(String, LockMode)>> {
    let views = rows(
        &format!(
            "{VIEWS_ON_TABLE}
         SELECT pg_catalog.format('%I.%I', n.nspname, c.relname)
           FROM (SELECT oid, max(depth) AS depth FROM v GROUP BY oid) v
           JOIN pg_catalog.pg_class c ON c.oid = v.oid
           JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
          ORDER BY v.depth DESC, c.oid"
        ),
        &[table.into()],
        |r| text(r, 1),
    )?;
    let referencing = rows(
        "SELECT DISTINCT pg_catalog.format('%I.%I', n.nspname, c.relname), c.oid
           FROM pg_catalog.pg_constraint con
           JOIN pg_catalog.pg_class c ON c.oid = con.conrelid
           JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
          WHERE con.contype = 'f' AND con.confrelid = $1::regclass AND con.conrelid <> con.confrelid
          ORDER BY c.oid",
        &[table.into()],
        |r| text(r, 1),
    )?;
    let mut locks: Vec<(String, LockMode)> = views.into_iter().map(|v| (v, LockMode::AccessExclusive)).collect();
    locks.push((table.to_string(), LockMode::AccessExclusive));
    locks.push((other.to_string(), LockMode::AccessExclusive));
    locks.extend(referencing.into_iter().map(|t| (t, LockMode::ShareRowExclusive)));
    Ok(locks)
}

pub(super) fn rows<T>(
    sql: &str,
    args: &[pgrx::datum::DatumWithOid],
    f: impl Fn(&pgrx::spi::SpiHeapTupleData) -> Result<T, pgrx::spi::Error>,
) -> ZdmResult<Vec<T>> {
    Spi::connect(|c| c.select(sql, None, args)?.map(|r| f(&r)).collect::<Result<Vec<T>, _>>()).map_err(spi_err)
}

pub(super) fn text(r: &pgrx::spi::SpiHeapTupleData, i: usize) -> Result<String, pgrx::spi::Error> {
    Ok(r.get::<String>(i)?.unwrap_or_default())
}

/// `v(oid, depth)`: the views on table `$1` and the views on those, with how
/// deep each stands (a view on a view on the table: 2), maybe more than once.
const VIEWS_ON_TABLE: &str = "WITH RECURSIVE v(oid, depth) AS (
             SELECT DISTINCT r.ev_class, 1 FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_rewrite r ON r.oid = d.objid
              WHERE d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.refclassid = 'pg_catalog.pg_class'::regclass
                AND d.refobjid = $1::regclass AND r.ev_class <> $1::regclass
             UNION ALL
             SELECT r.ev_class, v.depth + 1 FROM v JOIN pg_catalog.pg_depend d ON d.refclassid = 'pg_catalog.pg_class'::regclass
                    AND d.refobjid = v.oid AND d.classid = 'pg_catalog.pg_rewrite'::regclass
               JOIN pg_catalog.pg_rewrite r ON r.oid = d.objid AND r.ev_class <> v.oid
              WHERE v.depth < 100)";

/// Views on the table (and views on those), dependencies first, with all it
/// takes to create them again: definition, options, owner, grants, comments.
pub(super) fn views_on(table: &str) -> ZdmResult<Vec<ViewDef>> {
    let list = rows(
        &format!(
            "{VIEWS_ON_TABLE}
         SELECT pg_catalog.format('%I.%I', n.nspname, c.relname),
                pg_catalog.pg_get_viewdef(c.oid),
                ARRAY(SELECT pg_catalog.format('%I = %L', o.option_name, o.option_value) FROM pg_catalog.pg_options_to_table(c.reloptions) o),
                pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(c.relowner)),
                c.relacl IS NOT NULL,
                ARRAY(SELECT pg_catalog.format('%s TO %s%s', a.privilege_type,
                             CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(a.grantee)) END,
                             CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END)
                        FROM pg_catalog.aclexplode(c.relacl) a),
                pg_catalog.quote_literal(pg_catalog.obj_description(c.oid, 'pg_class')),
                ARRAY(SELECT pg_catalog.format('COMMENT ON COLUMN %I.%I.%I IS %L', n.nspname, c.relname, a.attname, d.description)
                        FROM pg_catalog.pg_description d JOIN pg_catalog.pg_attribute a ON a.attrelid = d.objoid AND a.attnum = d.objsubid
                       WHERE d.classoid = 'pg_catalog.pg_class'::regclass AND d.objoid = c.oid AND d.objsubid > 0)
           FROM (SELECT oid, max(depth) AS depth FROM v GROUP BY oid) v
           JOIN pg_catalog.pg_class c ON c.oid = v.oid
           JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
          ORDER BY v.depth, c.oid"
        ),
        &[table.into()],
        |r| {
            Ok((
                text(r, 1)?,
                text(r, 2)?,
                r.get::<Vec<String>>(3)?.unwrap_or_default(),
                text(r, 4)?,
                r.get::<bool>(5)?.unwrap_or(false),
                r.get::<Vec<String>>(6)?.unwrap_or_default(),
                r.get::<String>(7)?,
                r.get::<Vec<String>>(8)?.unwrap_or_default(),
            ))
        },
    )?;
    Ok(list
        .into_iter()
        .map(
            |(name, def, options, owner, has_acl, grants, comment, column_comments)| {
                let with = if options.is_empty() {
                    String::new()
                } else {
                    format!(" WITH ({})", options.join(", "))
                };
                let mut create = vec![
                    format!("CREATE VIEW {name}{with} AS {}", def.trim_end().trim_end_matches(';')),
                    format!("ALTER VIEW {name} OWNER TO {owner}"),
                ];
                create.extend(acl_statements(&name, &owner, has_acl, &grants));
                if let Some(c) = comment {
                    create.push(format!("COMMENT ON VIEW {name} IS {c}"));
                }
                create.extend(column_comments);
                ViewDef { name, create }
            },
        )
        .collect())
}

/// Grants exactly as they were: a relation with an explicit ACL starts from
/// nothing (even for its owner), then gets each privilege back.
pub(super) fn acl_statements(object: &str, owner: &str, has_acl: bool, grants: &[String]) -> Vec<String> {
    if !has_acl {
        return Vec::new();
    }
    let mut out = vec![format!("REVOKE ALL ON {object} FROM {owner}")];
    for g in grants {
        let (privilege, rest) = g.split_once(" TO ").expect("formatted as '<privilege> TO <role>'");
        out.push(format!("GRANT {privilege} ON {object} TO {rest}"));
    }
    out
}

/// A quoted identifier's raw spelling, for comparing with pg_catalog names.
pub(super) fn unquoted(quoted: &str) -> String {
    if let Some(inner) = quoted.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        inner.replace("\"\"", "\"")
    } else {
        quoted.to_string()
    }
}
