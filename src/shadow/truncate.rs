//! The TRUNCATE triggers of a shadow migration: TRUNCATE fires no row
//! trigger, so the shadow (before the swap) or the old table (after it) is
//! emptied by a statement trigger of its own.

use crate::ident::{comment_text, QualifiedName};
use crate::sqlgen::dollar_quote;
use std::fmt::Display;

/// The function of a TRUNCATE trigger: TRUNCATE fires no row trigger, so
/// without it the target would keep the rows (and bring them back at the
/// swap, or at a rollback after it). It truncates `targets` in the same
/// transaction. A target other tables reference (the old table after the
/// swap keeps its incoming foreign keys until complete) cannot be truncated
/// on its own: the writer's TRUNCATE then fails, saying what to do (the
/// function's name, in the error's context, names the migration).
pub fn truncate_function(
    function: &QualifiedName,
    migration: &str,
    source: &QualifiedName,
    targets: &[&QualifiedName],
    purpose: &str,
) -> String {
    let names: Vec<String> = targets.iter().map(|t| t.to_string()).collect();
    let body = format!(
        "-- pg_zdm migration {migration} ({purpose}): a TRUNCATE of {source} fires no
-- row trigger; the rows go from {targets_comment} too, in the same transaction.
BEGIN
    {own_table_only}
    TRUNCATE {targets};
    RETURN NULL;
EXCEPTION WHEN feature_not_supported THEN
    RAISE EXCEPTION 'pg_zdm: % (a TRUNCATE of %.% must also empty the table pg_zdm keeps for a rollback)',
        SQLERRM, quote_ident(TG_TABLE_SCHEMA), quote_ident(TG_TABLE_NAME)
        USING ERRCODE = 'feature_not_supported',
              HINT = 'Other tables still reference that table: finish the migration first '
                     '(zdm.complete or zdm.rollback), or DELETE the rows.';
END;
",
        migration = comment_text(migration),
        source = comment_text(&source.to_string()),
        targets = names.join(", "),
        targets_comment = comment_text(&names.join(", ")),
        own_table_only = crate::sqlgen::own_table_only(source),
    );
    format!(
        "CREATE FUNCTION {function}() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS {}",
        dollar_quote(&body)
    )
}

/// `CREATE TRIGGER` for a truncate function: AFTER TRUNCATE, per statement.
/// Names come quoted, as for `shadow::sync::create_trigger`.
pub fn create_truncate_trigger(trigger: &impl Display, table: &impl Display, function: &impl Display) -> String {
    crate::sqlgen::fire_always(
        format!("CREATE TRIGGER {trigger} AFTER TRUNCATE ON {table} FOR EACH STATEMENT EXECUTE FUNCTION {function}()"),
        trigger,
        table,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ident::Ident;

    #[test]
    fn truncate_comment_escapes_names() {
        let source = QualifiedName::new(Ident::test("public"), Ident::test("x\nDECLARE z int := 1; --"));
        let target = QualifiedName::new(Ident::test("public"), Ident::test("zdm_shadow_m"));
        let f = QualifiedName::new(Ident::test("zdm"), Ident::test("shadow_truncate_m"));
        let sql = truncate_function(&f, "m\n*/", &source, &[&target], "shadow sync");
        assert!(
            sql.contains(
                "$zdm$\n-- pg_zdm migration m\\n*\\/ (shadow sync): a TRUNCATE of public.\"x\\nDECLARE z int := 1; --\" fires no\n-- row trigger;"
            ),
            "{sql}"
        );
        // The name's only raw newline is inside the guard's string literal.
        let outside_literals = sql.replace(&crate::ident::quote_literal(&source.to_string()), "");
        assert!(!outside_literals.contains("\nDECLARE"), "{sql}");
    }
}
