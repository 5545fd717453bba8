//! In-server tests of alter_column_type: expressions both ways, binary-compatible changes, what moves with the column.

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    #[allow(unused_imports)]
    use crate::error::sqlstate_of;
    #[allow(unused_imports)]
    use crate::tests::tests::*;
    use pgrx::prelude::*;

    #[pg_test]
    fn alter_column_type_int_to_numeric_whole_lifecycle() {
        orders_table("public.orders");
        let m = one::<String>("SELECT zdm.alter_column_type('public.orders', 'amount', 'numeric(10,2)')").unwrap();
        assert_eq!(m, "orders_amount_to_numeric_10_2");
        // Old app writes amount, new app writes amount_new; both stay consistent.
        Spi::run("INSERT INTO orders (id, amount) VALUES (1001, 7)").unwrap();
        Spi::run("INSERT INTO orders (id, amount_new) VALUES (1002, 8.5)").unwrap();
        Spi::run("UPDATE orders SET amount = 99 WHERE id = 1").unwrap();
        Spi::run("UPDATE orders SET amount_new = 12.75 WHERE id = 2").unwrap();
        Spi::run("UPDATE orders SET note = 'x' WHERE id = 3").unwrap();
        assert_eq!(
            one::<String>("SELECT amount_new::text FROM orders WHERE id = 1001").unwrap(),
            "7.00"
        );
        assert_eq!(one::<i32>("SELECT amount FROM orders WHERE id = 1002"), Some(9)); // 8.5 rounds to 9
        assert_eq!(
            one::<String>("SELECT amount_new::text FROM orders WHERE id = 1").unwrap(),
            "99.00"
        );
        assert_eq!(one::<i32>("SELECT amount FROM orders WHERE id = 2"), Some(13));
        assert_eq!(
            one::<String>("SELECT amount_new::text FROM orders WHERE id = 3").unwrap(),
            "30.00"
        );
        // A value the new type cannot hold fails the writer's statement: never a silent NULL.
        assert_eq!(
            sqlstate("INSERT INTO orders (id, amount) VALUES (1003, 2000000000)").as_deref(),
            Some("22003")
        );
        while one::<i64>(&format!("SELECT zdm.backfill_batch('{m}', 200)")).unwrap() > 0 {}
        assert_eq!(one::<i64>("SELECT count(*) FROM orders WHERE amount_new IS DISTINCT FROM amount::numeric(10,2) AND id NOT IN (2, 1002)"), Some(0));
        // The new application's value survived the backfill (the old column holds it rounded).
        assert_eq!(
            one::<String>("SELECT amount_new::text FROM orders WHERE id = 2").unwrap(),
            "12.75"
        );
        Spi::run(&format!("SELECT zdm.complete('{m}')")).unwrap();
        assert_eq!(one::<String>("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'orders'::regclass AND attname = 'amount'").unwrap(), "numeric(10,2)");
        assert_eq!(
            one::<bool>(
                "SELECT attnotnull FROM pg_attribute WHERE attrelid = 'orders'::regclass AND attname = 'amount'"
            ),
            Some(true)
        );
        assert_eq!(
            one::<String>("SELECT pg_get_expr(adbin, adrelid) FROM pg_attrdef WHERE adrelid = 'orders'::regclass")
                .unwrap(),
            "(0)::numeric(10,2)"
        );
        assert_eq!(
            one::<String>("SELECT amount::text FROM orders WHERE id = 2").unwrap(),
            "12.75"
        );
        Spi::run("INSERT INTO orders (id) VALUES (5000)").unwrap();
        assert_eq!(
            one::<String>("SELECT amount::text FROM orders WHERE id = 5000").unwrap(),
            "0.00"
        );
        assert_eq!(one::<i64>("SELECT count(*) FROM pg_attribute WHERE attrelid = 'orders'::regclass AND attname LIKE 'amount%' AND NOT attisdropped"), Some(1));
    }

    #[pg_test]
    fn alter_column_type_with_expressions_both_ways() {
        orders_table("public.cents");
        let m = one::<String>("SELECT zdm.alter_column_type('public.cents', 'amount', 'numeric(12,2)', 'amount / 100.0', 'round(amount * 100)', 'to_euros')").unwrap();
        assert_eq!(m, "to_euros");
        Spi::run("INSERT INTO cents (id, amount) VALUES (9001, 1234)").unwrap();
        Spi::run("INSERT INTO cents (id, amount_new) VALUES (9002, 5.67)").unwrap();
        assert_eq!(
            one::<String>("SELECT amount_new::text FROM cents WHERE id = 9001").unwrap(),
            "12.34"
        );
        assert_eq!(one::<i32>("SELECT amount FROM cents WHERE id = 9002"), Some(567));
        let f = one::<String>("SELECT pg_get_functiondef('zdm.sync_to_euros'::regproc)").unwrap();
        assert!(
            f.contains("NEW.amount_new := (NEW.amount / 100.0)::numeric(12,2);"),
            "{f}"
        );
        assert!(
            f.contains("NEW.amount := (round(NEW.amount_new * 100))::integer;"),
            "{f}"
        );
        while one::<i64>("SELECT zdm.backfill_batch('to_euros')").unwrap() > 0 {}
        assert_eq!(
            one::<String>("SELECT amount_new::text FROM cents WHERE id = 7").unwrap(),
            "0.70"
        );
        Spi::run("SELECT zdm.rollback('to_euros')").unwrap();
        assert_eq!(one::<String>("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'cents'::regclass AND attname = 'amount'").unwrap(), "integer");
        assert_eq!(one::<i32>("SELECT amount FROM cents WHERE id = 9002"), Some(567));
    }

    /// As in pgroll and Reshape: in down_expr the column's own name is the new
    /// value, so `rating::text` converts the new integer back (it used to read
    /// the old column: the identity, and the old column stayed stale).
    #[pg_test]
    fn down_expr_reads_the_new_value_under_the_column_name() {
        Spi::run(
            "CREATE TABLE public.reviews (id int PRIMARY KEY, rating text);
             INSERT INTO public.reviews SELECT g, (g % 5)::text FROM generate_series(1, 20) g;",
        )
        .unwrap();
        let m = one::<String>(
            "SELECT zdm.alter_column_type('public.reviews', 'rating', 'integer', 'rating::integer', 'rating::text')",
        )
        .unwrap();
        Spi::run("INSERT INTO reviews (id, rating_new) VALUES (100, 4)").unwrap();
        Spi::run("UPDATE reviews SET rating_new = 5 WHERE id = 1").unwrap();
        Spi::run("INSERT INTO reviews (id, rating) VALUES (101, '3')").unwrap();
        assert_eq!(
            one::<String>("SELECT rating FROM reviews WHERE id = 100").as_deref(),
            Some("4")
        );
        assert_eq!(
            one::<String>("SELECT rating FROM reviews WHERE id = 1").as_deref(),
            Some("5")
        );
        assert_eq!(one::<i32>("SELECT rating_new FROM reviews WHERE id = 101"), Some(3));
        let f = one::<String>(&format!("SELECT pg_get_functiondef('zdm.sync_{m}'::regproc)")).unwrap();
        assert!(
            f.contains("NEW.rating := (NEW.rating_new::text)::pg_catalog.text;"),
            "{f}"
        );
        // The new column's own name still means the same.
        Spi::run(&format!("SELECT zdm.rollback('{m}')")).unwrap();
        let m = one::<String>(
            "SELECT zdm.alter_column_type('public.reviews', 'rating', 'integer', 'rating::integer', 'rating_new::text', 'again')",
        )
        .unwrap();
        Spi::run("INSERT INTO reviews (id, rating_new) VALUES (102, 2)").unwrap();
        assert_eq!(
            one::<String>("SELECT rating FROM reviews WHERE id = 102").as_deref(),
            Some("2")
        );
        Spi::run(&format!("SELECT zdm.rollback('{m}')")).unwrap();
        // A down_expr that does not read the new value is refused, saying how to write it.
        let err = error_text(
            "SELECT zdm.alter_column_type('public.reviews', 'rating', 'integer', 'rating::integer', $$'n/a'$$)",
        );
        assert!(
            err.starts_with("22023: down_expr '''n/a''' does not read the new value of column 'rating' / ")
                && err.contains("rating is the new value (integer), e.g. rating::pg_catalog.text"),
            "{err}"
        );
        assert_eq!(
            one::<i64>("SELECT count(*) FROM zdm.migrations WHERE phase NOT IN ('rolled_back')"),
            Some(0)
        );
    }

    /// A new-application INSERT that gives only the new column: the old
    /// column gets down(new), not its own DEFAULT (PostgreSQL fills the default
    /// before the trigger; the trigger overwrites it when the new column is set).
    /// It kept the default while `rating` in down_expr meant the old column.
    #[pg_test]
    fn new_app_insert_of_the_new_column_beats_the_old_default() {
        Spi::run("CREATE TABLE public.rd (id int PRIMARY KEY, rating text NOT NULL DEFAULT '0')").unwrap();
        let m = one::<String>(
            "SELECT zdm.alter_column_type('public.rd', 'rating', 'integer', 'rating::integer', 'rating::text')",
        )
        .unwrap();
        Spi::run("INSERT INTO rd (id, rating_new) VALUES (1, 4)").unwrap();
        Spi::run("INSERT INTO rd (id) VALUES (2)").unwrap();
        // The known limit: an explicit NULL reads as "not given" (README, Known limits).
        Spi::run("INSERT INTO rd (id, rating_new) VALUES (3, NULL)").unwrap();
        assert_eq!(
            one::<String>("SELECT string_agg(id || ':' || rating || '/' || rating_new, ' ' ORDER BY id) FROM rd")
                .as_deref(),
            Some("1:4/4 2:0/0 3:0/0")
        );
        while one::<i64>(&format!("SELECT zdm.backfill_batch('{m}')")).unwrap() > 0 {}
        Spi::run(&format!("SELECT zdm.complete('{m}')")).unwrap();
        Spi::run("INSERT INTO rd (id) VALUES (4)").unwrap();
        assert_eq!(one::<i32>("SELECT rating FROM rd WHERE id = 4"), Some(0));
    }

    #[pg_test]
    fn binary_compatible_type_change_is_one_short_alter() {
        Spi::run(
            "CREATE TABLE public.bc (id int PRIMARY KEY, email varchar(50), code varchar(10));
                  CREATE INDEX bc_email ON public.bc (email);
                  INSERT INTO public.bc SELECT g, 'e' || g, 'c' FROM generate_series(1, 100) g;",
        )
        .unwrap();
        let filenode = one::<i64>("SELECT pg_relation_filenode('public.bc')::int8").unwrap();
        let m = one::<String>("SELECT zdm.alter_column_type('public.bc', 'email', 'varchar(320)')").unwrap();
        assert_eq!(
            one::<String>(&format!("SELECT phase FROM zdm.migrations WHERE name = '{m}'")).unwrap(),
            "backfilled"
        );
        assert_eq!(one::<String>("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'bc'::regclass AND attname = 'email'").unwrap(), "character varying(320)");
        assert_eq!(
            one::<i64>("SELECT pg_relation_filenode('public.bc')::int8"),
            Some(filenode),
            "no rewrite"
        );
        Spi::run(&format!("SELECT zdm.complete('{m}')")).unwrap();
        let m2 = one::<String>("SELECT zdm.alter_column_type('public.bc', 'code', 'text')").unwrap();
        Spi::run(&format!("SELECT zdm.rollback('{m2}')")).unwrap();
        assert_eq!(one::<String>("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'bc'::regclass AND attname = 'code'").unwrap(), "character varying(10)");
    }

    #[pg_test]
    fn alter_type_carries_an_index_over() {
        Spi::run(
            "CREATE TABLE public.ti (id int PRIMARY KEY, amount int NOT NULL);
                  INSERT INTO public.ti SELECT g, g FROM generate_series(1, 100) g;
                  CREATE INDEX ti_amount ON public.ti (amount);
                  ALTER TABLE public.ti ADD CONSTRAINT ti_amount_pos CHECK (amount > 0);",
        )
        .unwrap();
        let m = one::<String>("SELECT zdm.alter_column_type('public.ti', 'amount', 'bigint')").unwrap();
        while one::<i64>(&format!("SELECT zdm.backfill_batch('{m}')")).unwrap() > 0 {}
        build_pending(&m);
        Spi::run(&format!("SELECT zdm.complete('{m}')")).unwrap();
        assert_eq!(table_ddl("public.ti"), "CREATE INDEX ti_amount ON public.ti USING btree (amount)\nCREATE UNIQUE INDEX ti_pkey ON public.ti USING btree (id)\nti_amount_pos CHECK ((amount > 0)) valid=true\nti_pkey PRIMARY KEY (id) valid=true");
        assert_eq!(
            attr("ti", "amount", "format_type(atttypid, atttypmod)").as_deref(),
            Some("bigint")
        );
    }
}
