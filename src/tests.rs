//! In-server tests (`cargo pgrx test`): each runs in its own transaction.
use pgrx::prelude::*;

#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    #[pg_test]
    fn catalog_exists() {
        let n = Spi::get_one::<i64>("SELECT count(*) FROM zdm.migrations").unwrap();
        assert_eq!(n, Some(0));
    }
}
