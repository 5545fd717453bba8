//! In-server tests (`cargo pgrx test`): each runs in its own transaction,
//! against a real PostgreSQL, one file per capability. Concurrency lives in
//! the external suite (pgrx-tests/). This file holds the helpers they share.

mod alter_type;
mod backfill;
mod catalog_ops;
mod column_ops;
mod constraint_ops;
mod guard;
mod idempotent;
mod index_ops;
mod key_type;
mod lint;
mod partitioned;
mod plans;
mod quoting;
mod refusals;
mod rename;
mod security;
mod shadow;
mod verify;

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
pub(crate) mod tests {
    use crate::error::sqlstate_of;
    use crate::session::{caught_sqlstate, in_subtransaction};
    use pgrx::prelude::*;

    /// Run `sql`; return the SQLSTATE it failed with (None when it succeeded).
    pub(crate) fn sqlstate(sql: &str) -> Option<String> {
        match in_subtransaction(|| Spi::run(sql).expect("spi")) {
            Ok(()) => None,
            Err(e) => Some(
                caught_sqlstate(&e)
                    .map(sqlstate_of)
                    .unwrap_or_else(|| "rust panic".into()),
            ),
        }
    }

    /// Run `sql` (a statement PL/pgSQL can EXECUTE); return its error's
    /// "SQLSTATE: message / hint", or "" when it succeeded.
    pub(crate) fn error_text(sql: &str) -> String {
        error_with(sql, "PG_EXCEPTION_HINT")
    }

    /// Run `sql`; its error as "SQLSTATE: message / detail", or "" when it succeeded.
    pub(crate) fn error_with_detail(sql: &str) -> String {
        error_with(sql, "PG_EXCEPTION_DETAIL")
    }

    /// `sql`'s error as "SQLSTATE: message / <item>", `item` one of GET
    /// STACKED DIAGNOSTICS' items, or "" when it succeeded.
    fn error_with(sql: &str, item: &str) -> String {
        Spi::run(&format!(
            "CREATE OR REPLACE FUNCTION pg_temp.zdm_error_with(stmt text) RETURNS text LANGUAGE plpgsql AS $$
             DECLARE code text; msg text; more text;
             BEGIN
                 EXECUTE stmt;
                 RETURN '';
             EXCEPTION WHEN others THEN
                 GET STACKED DIAGNOSTICS code = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, more = {item};
                 RETURN code || ': ' || msg || ' / ' || more;
             END $$"
        ))
        .unwrap();
        let lit = crate::ident::Literal::new(sql);
        one::<String>(&format!("SELECT pg_temp.zdm_error_with({lit})")).unwrap_or_default()
    }

    pub(crate) fn one<T: IntoDatum + FromDatum>(sql: &str) -> Option<T> {
        Spi::get_one::<T>(sql).expect("query")
    }

    pub(crate) fn users_table(name: &str) {
        Spi::run(&format!(
            "CREATE TABLE {name} (id bigint PRIMARY KEY, name varchar(255) NOT NULL, email text);
             INSERT INTO {name} SELECT g, 'user ' || g, CASE WHEN g % 3 = 0 THEN NULL ELSE 'u' || g || '@x' END
               FROM generate_series(1, 1000) g;"
        ))
        .unwrap();
    }

    /// Every column of every row, as one text, to compare before/after.
    pub(crate) fn fingerprint(table: &str, cols: &str) -> String {
        one::<String>(&format!(
            "SELECT string_agg(concat_ws('|', {cols}), ',' ORDER BY id) FROM {table}"
        ))
        .unwrap_or_default()
    }

    pub(crate) fn orders_table(name: &str) {
        Spi::run(&format!(
            "CREATE TABLE {name} (id bigint PRIMARY KEY, amount integer NOT NULL DEFAULT 0, note text);
             INSERT INTO {name} SELECT g, g * 10, 'n' FROM generate_series(1, 500) g;"
        ))
        .unwrap();
    }

    pub(crate) fn attr(table: &str, col: &str, what: &str) -> Option<String> {
        crate::session::get_optional::<String>(
            &format!("SELECT {what}::text FROM pg_attribute WHERE attrelid = '{table}'::regclass AND attname = '{col}' AND NOT attisdropped"),
            &[],
        )
        .unwrap()
    }

    /// What `SELECT statement FROM zdm.pending_statements(m) \gexec` does, minus
    /// CONCURRENTLY (pg_tests run inside a transaction).
    pub(crate) fn build_pending(m: &str) {
        let stmts: Vec<String> = Spi::connect(|c| {
            c.select(
                &format!("SELECT statement FROM zdm.pending_statements('{m}')"),
                None,
                &[],
            )
            .unwrap()
            .map(|r| r.get::<String>(1).unwrap().unwrap())
            .collect()
        });
        for s in stmts {
            Spi::run(&s.replace(" CONCURRENTLY", "")).unwrap();
        }
    }

    pub(crate) fn table_ddl(t: &str) -> String {
        one::<String>(&format!(
            "SELECT string_agg(d, E'\n' ORDER BY d) FROM (
               SELECT pg_get_indexdef(indexrelid) AS d FROM pg_index WHERE indrelid = '{t}'::regclass
               UNION ALL SELECT conname || ' ' || pg_get_constraintdef(oid) || ' valid=' || convalidated
                 FROM pg_constraint WHERE conrelid = '{t}'::regclass) s"
        ))
        .unwrap()
    }

    pub(crate) fn shadow_leftovers() -> i64 {
        one::<i64>(
            r"SELECT (SELECT count(*) FROM pg_class WHERE relname LIKE 'zdm\_%')
                  + (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                      WHERE n.nspname = 'zdm'
                        AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e'))
                  + (SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'zdm\_%')
                  + (SELECT count(*) FROM zdm.migrations WHERE phase NOT IN ('completed', 'rolled_back', 'abandoned'))",
        )
        .unwrap()
    }

    /// `sql` (a PL/pgSQL body) with its comments, quoted identifiers and
    /// string literals blanked out: what PostgreSQL reads as code.
    pub(crate) fn code_only(sql: &str) -> String {
        let mut out = String::new();
        let mut chars = sql.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '-' if chars.peek() == Some(&'-') => {
                    // A `--` comment ends at a line break, as in PostgreSQL's scanner.
                    while chars.next_if(|&n| n != '\n' && n != '\r').is_some() {}
                }
                '"' | '\'' => {
                    // To the closing quote; a doubled quote stays inside.
                    while let Some(q) = chars.next() {
                        if q == c && chars.next_if_eq(&c).is_none() {
                            break;
                        }
                    }
                    out.push(' ');
                }
                c => out.push(c),
            }
        }
        out
    }

    /// The bodies and the definitions of the functions pg_zdm generated.
    pub(crate) fn generated_functions() -> (String, String) {
        let all = |what: &str| {
            one::<String>(&format!(
                "SELECT string_agg({what}, E'\\n') FROM pg_proc
                  WHERE pronamespace = 'zdm'::regnamespace AND prosrc LIKE '%-- pg_zdm migration%'"
            ))
            .unwrap()
        };
        (all("prosrc"), all("pg_get_functiondef(oid)"))
    }
}

/// Hooks for `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}
