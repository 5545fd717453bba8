//! The tables the demo, the benchmarks and the tests work on, each with its
//! oracle: an untouched copy that every client writes too, in the same
//! transaction, so that the migrated table can be compared with it at the end.
//! Oracles are keyed like their table: unkeyed, each client write to a big
//! one scanned it whole while holding the table's lock.

use crate::load::Target;

/// `public.users (id, name varchar(255) NOT NULL, email)`, `rows` rows (every
/// third email NULL), and `public.users_oracle`.
pub fn users_with_oracle(c: &mut postgres::Client, rows: i64) {
    c.batch_execute(&format!(
        "CREATE TABLE public.users (id bigint PRIMARY KEY, name varchar(255) NOT NULL, email text);
         INSERT INTO public.users SELECT g, 'user ' || g, CASE WHEN g % 3 = 0 THEN NULL ELSE 'u' || g || '@x' END
           FROM generate_series(1, {rows}) g;
         CREATE TABLE public.users_oracle (LIKE public.users INCLUDING ALL);
         INSERT INTO public.users_oracle SELECT * FROM public.users;"
    ))
    .expect("users table");
    // VACUUM refuses to run in the implicit block of a multi-statement query.
    c.batch_execute("VACUUM ANALYZE public.users").unwrap();
    c.batch_execute("VACUUM ANALYZE public.users_oracle").unwrap();
}

/// Clients of [`users_with_oracle`]'s pair: they write `name` and `email`.
pub fn users_target(rows: i64) -> Target {
    Target {
        table: "public.users".into(),
        key: "id".into(),
        value_col: "name".into(),
        other_col: "email".into(),
        oracle: "public.users_oracle".into(),
        oracle_value_col: "name".into(),
        oracle_other_col: "email".into(),
        initial_rows: rows,
        value_is_int: false,
        key_updates: false,
    }
}

/// `public.orders (id, amount integer, note, legacy)`, `rows` rows (every fifth
/// note NULL, a few stored out of line), and `public.orders_oracle (id,
/// amount, note)`; clients: [`orders_target`].
pub fn orders_with_oracle(c: &mut postgres::Client, rows: i64) {
    c.batch_execute(&format!(
        "CREATE TABLE public.orders (id bigint PRIMARY KEY, amount integer NOT NULL DEFAULT 0, note text, legacy text);
         INSERT INTO public.orders SELECT g, (g * 7) % 100000, CASE WHEN g % 5 = 0 THEN NULL ELSE 'n' || g END, 'l'
           FROM generate_series(1, {rows}) g;
         -- a few large values, stored out of line (TOAST)
         UPDATE public.orders SET note = repeat(md5(id::text), 400) WHERE id % 10000 = 7;
         CREATE TABLE public.orders_oracle AS SELECT id, amount, note FROM public.orders;
         ALTER TABLE public.orders_oracle ADD PRIMARY KEY (id);"
    ))
    .unwrap();
    c.batch_execute("VACUUM ANALYZE public.orders").unwrap();
}

/// Clients of [`orders_with_oracle`]'s pair: they write `amount` (an integer)
/// and `other_col`, key updates included.
pub fn orders_target(other_col: &str, rows: i64) -> Target {
    Target {
        table: "public.orders".into(),
        key: "id".into(),
        value_col: "amount".into(),
        other_col: other_col.into(),
        oracle: "public.orders_oracle".into(),
        oracle_value_col: "amount".into(),
        oracle_other_col: "note".into(),
        initial_rows: rows,
        value_is_int: true,
        key_updates: true,
    }
}

/// `table (id, amount integer, status)`, `rows` rows, the statements `then`
/// run on it, an identical `<table>_oracle`, and the clients' view of the
/// pair (no key updates). Dropped first if they exist: the benchmarks run
/// rounds on the same names.
pub fn status_orders_with_oracle(c: &mut postgres::Client, table: &str, rows: i64, then: &str) -> Target {
    c.batch_execute(&format!(
        "DROP TABLE IF EXISTS {table}; DROP TABLE IF EXISTS {table}_oracle;
         CREATE TABLE {table} (id bigint PRIMARY KEY, amount integer NOT NULL DEFAULT 0, status text);
         INSERT INTO {table} SELECT g, g % 100000, 'new' FROM generate_series(1, {rows}) g;
         {then}
         CREATE TABLE {table}_oracle AS SELECT * FROM {table};
         ALTER TABLE {table}_oracle ADD PRIMARY KEY (id);"
    ))
    .unwrap();
    c.batch_execute(&format!("VACUUM ANALYZE {table}")).unwrap();
    c.batch_execute("CHECKPOINT").unwrap();
    status_orders_target(table, rows)
}

/// Writer clients of a `table (id, amount, status)` and its `<table>_oracle`.
pub fn status_orders_target(table: &str, rows: i64) -> Target {
    Target {
        table: table.into(),
        key: "id".into(),
        value_col: "amount".into(),
        other_col: "status".into(),
        oracle: format!("{table}_oracle"),
        oracle_value_col: "amount".into(),
        oracle_other_col: "status".into(),
        initial_rows: rows,
        value_is_int: true,
        key_updates: false,
    }
}

/// The case study of the demo: `public.users (id, name varchar(255), email,
/// created_at)` with `rows` users and a system user 0, its oracle
/// `public.users_oracle`, and `public.orders` (bigserial key, `user_id`
/// referencing users ON DELETE CASCADE, `amount integer` with a CHECK,
/// `status`, `note`, two indexes), `rows` orders.
pub fn case_study(c: &mut postgres::Client, rows: i64) {
    c.batch_execute(&format!(
        "CREATE TABLE public.users (
                 id bigint PRIMARY KEY,
                 name varchar(255) NOT NULL,
                 email varchar(255),
                 created_at timestamptz NOT NULL DEFAULT now());
             INSERT INTO public.users (id, name, email)
                  SELECT g, 'User ' || g, CASE WHEN g % 4 = 0 THEN NULL ELSE 'user' || g || '@example.com' END
                    FROM generate_series(1, {rows}) g;
             -- A system user the writers never touch, owner of the orders they insert.
             INSERT INTO public.users (id, name) VALUES (0, 'System');
             CREATE TABLE public.users_oracle (id bigint PRIMARY KEY, name varchar(255), email varchar(255));
             INSERT INTO public.users_oracle SELECT id, name, email FROM public.users;
             -- The orders table, restructured in act 2.
             CREATE TABLE public.orders (
                 id bigserial PRIMARY KEY,
                 user_id bigint NOT NULL DEFAULT 0 REFERENCES public.users (id) ON DELETE CASCADE,
                 amount integer NOT NULL,
                 status varchar(20) NOT NULL DEFAULT 'pending',
                 note text,
                 created_at timestamptz NOT NULL DEFAULT now());
             INSERT INTO public.orders (user_id, amount, status)
                  SELECT 1 + (g * 7919) % {rows}, (g * 31) % 10000, (ARRAY['pending', 'paid', 'shipped'])[1 + g % 3]
                    FROM generate_series(1, {rows}) g;
             CREATE INDEX orders_user_id_idx ON public.orders (user_id);
             CREATE INDEX orders_amount_idx ON public.orders (amount);
             ALTER TABLE public.orders ADD CONSTRAINT orders_amount_positive CHECK (amount >= 0);"
    ))
    .expect("tables");
    c.batch_execute("ANALYZE public.users").unwrap();
}
