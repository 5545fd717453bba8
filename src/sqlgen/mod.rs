//! SQL generation: pure functions from plan inputs to SQL text.
//!
//! Nothing here talks to the server or quotes a name by itself: names arrive
//! quoted by PostgreSQL (see `ident`). Every function is unit-tested on text.

pub mod backfill;
pub mod column_sync;
pub mod fill_trigger;
pub mod refuse;

/// The shadow's "key after the bound" function lives in `shadow::beyond::sql`;
/// `backfill` reaches it by this older path.
pub mod shadow_settle {
    pub use crate::shadow::beyond::sql::{beyond_upper_function, UpperBound};
}

/// Wrap a function body in a dollar quote whose tag does not occur in the body
/// (a quoted identifier may contain `$zdm$`; the tag then grows a number).
pub fn dollar_quote(body: &str) -> String {
    let mut tag = "$zdm$".to_string();
    let mut n = 0;
    while body.contains(&tag) {
        n += 1;
        tag = format!("$zdm{n}$");
    }
    format!("{tag}\n{body}{tag}")
}

/// A BEFORE INSERT OR UPDATE row trigger and its function, as pg_zdm names
/// them: the DDL around the trigger bodies of `column_sync` and `fill_trigger`.
pub struct RowTrigger<'a> {
    pub table: &'a crate::ident::QualifiedName,
    pub function: &'a crate::ident::QualifiedName,
    pub trigger: &'a crate::ident::Ident,
}

impl RowTrigger<'_> {
    /// BEFORE, so values are fixed before constraints are checked; pg_zdm's
    /// triggers are named `zdm_...` so they fire after the user's own BEFORE
    /// triggers (PostgreSQL fires them in name order) and see their changes.
    pub fn create_trigger(&self) -> String {
        fire_always(
            format!(
                "CREATE TRIGGER {} BEFORE INSERT OR UPDATE ON {} FOR EACH ROW EXECUTE FUNCTION {}()",
                self.trigger, self.table, self.function
            ),
            self.trigger,
            self.table,
        )
    }

    pub fn drop_trigger(&self) -> String {
        format!("DROP TRIGGER IF EXISTS {} ON {}", self.trigger, self.table)
    }

    pub fn drop_function(&self) -> String {
        format!("DROP FUNCTION IF EXISTS {}()", self.function)
    }
}

/// The first statement of every trigger function pg_zdm generates: it acts
/// for its own table only. EXECUTE on it is revoked from PUBLIC (see
/// `executor::run_statement`), so only its owner could attach it elsewhere;
/// there it fails instead of acting. The regclass constant is resolved when
/// the statement is planned, and planned again when that table changes (the
/// swap gives the name to the new table, whose reverse trigger uses it).
pub fn own_table_only(table: &crate::ident::QualifiedName) -> String {
    own_table_or_partitions(table, &[])
}

/// [`own_table_only`] for a partitioned table, whose triggers fire on its
/// partitions (PostgreSQL clones them to each): the partitions it had at
/// start by oid (a constant array: no catalog lookup per row; the lookup
/// cost 15 s per million rows of backfill), any other whose root is the table.
pub fn own_table_or_partitions(table: &crate::ident::QualifiedName, partitions: &[u32]) -> String {
    let table = crate::ident::quote_literal(&table.to_string());
    let partitions = if partitions.is_empty() {
        String::new()
    } else {
        let oids: Vec<String> = partitions.iter().map(|o| o.to_string()).collect();
        format!(
            "\n       AND TG_RELID OPERATOR(pg_catalog.<>) ALL ('{{{}}}'::pg_catalog.oid[])\n       \
             AND pg_catalog.pg_partition_root(TG_RELID) IS DISTINCT FROM {table}::pg_catalog.regclass",
            oids.join(",")
        )
    };
    format!(
        "IF TG_RELID OPERATOR(pg_catalog.<>) {table}::pg_catalog.regclass::pg_catalog.oid{partitions} THEN
        RAISE EXCEPTION 'pg_zdm: trigger % on %.% runs a function generated for another table', TG_NAME, TG_TABLE_SCHEMA, TG_TABLE_NAME
            USING ERRCODE := 'insufficient_privilege';
    END IF;"
    )
}

/// `CREATE TRIGGER`, then `ENABLE ALWAYS`: the trigger also fires for
/// writes made under `session_replication_role = replica` (a logical
/// replication subscriber's apply worker, some restore tools), which would
/// otherwise never reach the new column or the shadow.
pub fn fire_always(create_trigger: String, trigger: &impl std::fmt::Display, table: &impl std::fmt::Display) -> String {
    format!("{create_trigger};\nALTER TABLE {table} ENABLE ALWAYS TRIGGER {trigger}")
}

/// Row-constructor text for a list of already-quoted expressions: `(a, b)`.
pub fn row(items: &[String]) -> String {
    format!("({})", items.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partitioned_tables_trigger_acts_for_its_partitions() {
        let t = crate::ident::QualifiedName::new(crate::ident::Ident::test("public"), crate::ident::Ident::test("ev"));
        assert_eq!(
            own_table_or_partitions(&t, &[16400, 16410]),
            "IF TG_RELID OPERATOR(pg_catalog.<>) 'public.ev'::pg_catalog.regclass::pg_catalog.oid
       AND TG_RELID OPERATOR(pg_catalog.<>) ALL ('{16400,16410}'::pg_catalog.oid[])
       AND pg_catalog.pg_partition_root(TG_RELID) IS DISTINCT FROM 'public.ev'::pg_catalog.regclass THEN
        RAISE EXCEPTION 'pg_zdm: trigger % on %.% runs a function generated for another table', TG_NAME, TG_TABLE_SCHEMA, TG_TABLE_NAME
            USING ERRCODE := 'insufficient_privilege';
    END IF;"
        );
        assert!(own_table_only(&t)
            .starts_with("IF TG_RELID OPERATOR(pg_catalog.<>) 'public.ev'::pg_catalog.regclass::pg_catalog.oid THEN"));
    }

    #[test]
    fn dollar_quote_avoids_tags_in_body() {
        assert_eq!(dollar_quote("x\n"), "$zdm$\nx\n$zdm$");
        let q = dollar_quote("NEW.\"a$zdm$b\"\n");
        assert!(q.starts_with("$zdm1$"), "{q}");
        assert!(q.ends_with("$zdm1$"));
    }
}
