//! The proof harness of pg_zdm: real clusters, real concurrent sessions.
//!
//! - [`cluster`] starts a throwaway PostgreSQL cluster (as the `postgres` OS
//!   user when run as root) with pg_zdm installed from the system directories;
//! - [`load`] runs old-app / new-app writer clients that mirror every write into
//!   an untouched oracle table, recording every latency and every error;
//! - [`prober`] reads a table every 10 ms and records the longest wait;
//! - [`fixtures`]: the tables, with their oracles, that the demo, the
//!   benchmarks and the tests share.
//! Used by the integration tests (pgrx-tests/tests) and by the demo.

pub mod cluster;
pub mod fixtures;
pub mod load;
pub mod prober;
pub mod stats;
