//! The row-copy trigger, as text.

use super::*;

/// The trigger's note statements for a migration "m" keyed on id.
fn notes(every_delete: bool, beyond: Option<&str>) -> Option<NoteSql> {
    Some(NoteSql {
        note_old: "INSERT INTO public.zdm_stale_m (id) VALUES (OLD.id);".into(),
        note_new: "INSERT INTO public.zdm_stale_m (id) VALUES (NEW.id);".into(),
        new_is_noted: "EXISTS (SELECT FROM public.zdm_stale_m WHERE (id) OPERATOR(pg_catalog.=) (NEW.id))".into(),
        new_is_beyond: beyond.map(str::to_string),
        every_delete,
    })
}

fn names() -> (QualifiedName, QualifiedName) {
    (
        QualifiedName::new(Ident::test("public"), Ident::test("Order; DROP TABLE x")),
        QualifiedName::new(Ident::test("public"), Ident::test("zdm_shadow_m")),
    )
}

#[test]
fn trigger_handles_every_kind_of_write() {
    let (s, t) = names();
    let f = QualifiedName::new(Ident::test("zdm"), Ident::test("shadow_sync_m"));
    let rc = RowCopy {
        migration: "m",
        source: &s,
        target: &t,
        key: vec![(Ident::test("id"), Ident::test("id"))],
        values: vec![
            (Ident::test("id"), "NEW.id".into()),
            (Ident::test("Amount"), "NEW.\"Amount\"".into()),
            (Ident::test("tax"), "round(NEW.\"Amount\" * 0.2, 2)".into()),
        ],
        not_updatable: vec![],
        overriding: false,
        purpose: "shadow",
        // a user expression (tax): its names resolve through the search_path
        set_search_path: true,
        notes: None,
    };
    let sql = rc.create_function(&f);
    assert!(sql.starts_with("CREATE FUNCTION zdm.shadow_sync_m() RETURNS trigger\nLANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $zdm$"), "{sql}");
    assert!(
        sql.contains("DELETE FROM public.zdm_shadow_m WHERE (id) OPERATOR(pg_catalog.=) (OLD.id);"),
        "{sql}"
    );
    assert!(
        sql.contains("IF (OLD.id) OPERATOR(pg_catalog.=) (NEW.id) THEN"),
        "{sql}"
    );
    assert!(sql.contains("SET \"Amount\" = NEW.\"Amount\",\n                   tax = round(NEW.\"Amount\" * 0.2, 2)\n             WHERE (id) OPERATOR(pg_catalog.=) (NEW.id);"), "{sql}");
    assert!(
            sql.contains("IF TG_OP OPERATOR(pg_catalog.=) 'INSERT' THEN\n        -- A new key: the target cannot hold it (its deletes follow the source's,\n        -- and the backfill copies only rows that existed before).\n        INSERT INTO public.zdm_shadow_m (id, \"Amount\", tax)\n        VALUES (NEW.id,\n                NEW.\"Amount\",\n                round(NEW.\"Amount\" * 0.2, 2));\n        RETURN NULL;"),
            "{sql}"
        );
    assert!(sql.contains("ON CONFLICT (id) DO UPDATE SET \"Amount\" = EXCLUDED.\"Amount\",\n                      tax = EXCLUDED.tax;"), "{sql}");
    assert!(!sql.contains("OVERRIDING"));
    // the key is never SET by an update
    assert!(!sql.contains("SET id ="), "{sql}");
    // Racing a backfill: every delete notes the key, and an
    // insert replaces a late copy of a deleted row with the same key.
    let noting = RowCopy {
        notes: notes(true, None),
        ..rc
    };
    let sql = noting.create_function(&f);
    assert_eq!(
        sql.matches("INSERT INTO public.zdm_stale_m (id) VALUES (OLD.id);")
            .count(),
        2,
        "both deletes (row deleted, key changed) note: {sql}"
    );
    assert!(
        sql.contains(
            "    DELETE FROM public.zdm_shadow_m WHERE (id) OPERATOR(pg_catalog.=) (OLD.id);
    -- A batch that read the row before this delete may still copy it (whether
    -- or not a copy was just deleted): the key is noted, and the settle removes
    -- such a copy.
    INSERT INTO public.zdm_stale_m (id) VALUES (OLD.id);
    RETURN NULL;"
        ),
        "{sql}"
    );
    // An insert upserts only when its key was deleted before (a late copy
    // may hold it); otherwise it stays a plain insert.
    assert!(
            sql.contains("    IF TG_OP OPERATOR(pg_catalog.=) 'INSERT' THEN\n        IF EXISTS (SELECT FROM public.zdm_stale_m WHERE (id) OPERATOR(pg_catalog.=) (NEW.id)) THEN\n"),
            "{sql}"
        );
    assert!(
            sql.contains("            VALUES (NEW.id,\n                    NEW.\"Amount\",\n                    round(NEW.\"Amount\" * 0.2, 2))\n            ON CONFLICT (id) DO UPDATE SET"),
            "{sql}"
        );
    assert!(
            sql.contains("        ELSE\n            -- A new key: the target cannot hold it (its deletes follow the source's,\n            -- and the backfill copies only rows that existed before).\n            INSERT INTO public.zdm_shadow_m (id, \"Amount\", tax)\n            VALUES (NEW.id,\n                    NEW.\"Amount\",\n                    round(NEW.\"Amount\" * 0.2, 2));\n        END IF;"),
            "{sql}"
        );
    assert_eq!(sql.matches("ON CONFLICT (id) DO UPDATE").count(), 2, "{sql}");
    // An update of a row not copied yet inserts nothing: it notes the key
    // (a batch copies the row, the settle refreshes an older copy).
    assert!(
        sql.contains(
            "             WHERE (id) OPERATOR(pg_catalog.=) (NEW.id);
            IF NOT FOUND THEN
                -- Not copied yet. A batch will copy it as committed, or already read
                -- it before this write and copies the older version: the key is
                -- noted, and the settle refreshes such a copy.
                INSERT INTO public.zdm_stale_m (id) VALUES (NEW.id);
            END IF;
            RETURN NULL;
        ELSE"
        ),
        "{sql}"
    );
    // Keys after the backfill's upper bound are inserted without a probe.
    let beyond = RowCopy {
        notes: notes(true, Some("zdm.shadow_beyond_m(NEW.id)")),
        ..noting
    };
    let sql = beyond.create_function(&f);
    assert!(
            sql.contains("    IF TG_OP OPERATOR(pg_catalog.=) 'INSERT' THEN\n        IF zdm.shadow_beyond_m(NEW.id) THEN\n            -- A key after the last one the backfill copies: no batch copies it,\n            -- so the target cannot hold it (and the notes need no probe).\n            INSERT INTO public.zdm_shadow_m (id, \"Amount\", tax)\n            VALUES (NEW.id,\n                    NEW.\"Amount\",\n                    round(NEW.\"Amount\" * 0.2, 2));\n        ELSIF EXISTS (SELECT FROM public.zdm_stale_m WHERE (id) OPERATOR(pg_catalog.=) (NEW.id)) THEN\n"),
            "{sql}"
        );
    let noting = RowCopy {
        notes: notes(true, None),
        ..beyond
    };
    // After the backfill only deletes that find nothing note their key.
    let after = RowCopy {
        notes: notes(false, None),
        ..noting
    };
    let sql = after.create_function(&f);
    assert_eq!(sql.matches("IF NOT FOUND THEN\n").count(), 3, "{sql}");
    assert!(
        sql.contains(
            "    DELETE FROM public.zdm_shadow_m WHERE (id) OPERATOR(pg_catalog.=) (OLD.id);\n    IF NOT FOUND THEN\n"
        ),
        "{sql}"
    );
    assert_eq!(
            create_trigger(&Ident::test("zdm_shadow_m"), &s, &f),
            "CREATE TRIGGER zdm_shadow_m AFTER INSERT OR UPDATE OR DELETE ON public.\"Order; DROP TABLE x\" FOR EACH ROW EXECUTE FUNCTION zdm.shadow_sync_m();\n\
             ALTER TABLE public.\"Order; DROP TABLE x\" ENABLE ALWAYS TRIGGER zdm_shadow_m"
        );
}

#[test]
fn key_only_tables_and_identity_columns() {
    let (s, t) = names();
    let f = QualifiedName::new(Ident::test("zdm"), Ident::test("f"));
    let rc = RowCopy {
        migration: "m",
        source: &s,
        target: &t,
        key: vec![
            (Ident::test("a"), Ident::test("a")),
            (Ident::test("b"), Ident::test("b2")),
        ],
        values: vec![(Ident::test("a"), "NEW.a".into()), (Ident::test("b2"), "NEW.b".into())],
        not_updatable: vec![],
        overriding: true,
        purpose: "reverse",
        set_search_path: false,
        notes: None,
    };
    let sql = rc.create_function(&f);
    // Plain copies: every name qualified, no SET on the function, and no
    // unqualified operator anywhere in the body.
    assert!(
        sql.starts_with("CREATE FUNCTION zdm.f() RETURNS trigger\nLANGUAGE plpgsql SECURITY DEFINER AS $zdm$"),
        "{sql}"
    );
    assert!(!sql.contains(" = "), "{sql}");
    assert!(sql.contains("ON CONFLICT (a, b2) DO NOTHING;"), "{sql}");
    assert!(
        sql.contains("PERFORM FROM public.zdm_shadow_m WHERE (a, b2) OPERATOR(pg_catalog.=) (NEW.a, NEW.b);"),
        "{sql}"
    );
    assert!(sql.contains("OVERRIDING SYSTEM VALUE"), "{sql}");
}
