//! The proof harness of pg_zdm: real clusters, real concurrent sessions.
//!
//! - [`cluster`] starts a throwaway PostgreSQL cluster (as the `postgres` OS
//!   user when run as root) with pg_zdm installed from the system directories;
//! - [`load`] runs old-app / new-app writer clients that mirror every write into
//!   an untouched oracle table, recording every latency and every error;
//! - [`prober`] reads a table every 10 ms and records the longest wait.
//! Used by the integration tests (pgrx-tests/tests) and by the demo.

pub mod cluster;
pub mod load;
pub mod prober;
pub mod stats;
