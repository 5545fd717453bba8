//! Writer clients with an oracle.
//!
//! Each client owns one connection and loops over a mix of INSERT / UPDATE
//! (of the migrated column, of an unrelated column, to NULL, of the key) / DELETE / SELECT
//! on the table under migration. Every write is applied the same way to an
//! untouched oracle table in the same transaction, so at the end the migrated
//! table must equal the oracle. Every statement's latency is recorded and every
//! error is kept with its SQLSTATE: nothing is retried silently.

use crate::stats::Latencies;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The shape of the table a client writes: `key`, a value column (the one being
/// migrated; old and new applications name it differently) and an unrelated
/// nullable column.
#[derive(Debug, Clone)]
pub struct Target {
    pub table: String,
    pub key: String,
    pub value_col: String,
    pub other_col: String,
    pub oracle: String,
    /// Oracle column names for value and other.
    pub oracle_value_col: String,
    pub oracle_other_col: String,
    /// Rows 1..=initial_rows exist at the start.
    pub initial_rows: i64,
    /// The value column holds integers (written as text and cast), not text.
    pub value_is_int: bool,
    /// Some updates change the key (of rows the client inserted itself, to a
    /// fresh key of its own range, so clients never collide).
    pub key_updates: bool,
}

#[derive(Debug, Clone)]
pub struct ClientError {
    pub sqlstate: String,
    pub message: String,
    pub statement: String,
    pub at: Duration,
}

#[derive(Debug, Default)]
pub struct ClientReport {
    pub name: String,
    pub statements: u64,
    pub latencies: Latencies,
    pub errors: Vec<ClientError>,
}

pub struct Client {
    handle: JoinHandle<ClientReport>,
    stop: Arc<AtomicBool>,
}

impl Client {
    /// Start a client; `epoch` is the run's time origin for timelines.
    pub fn spawn(name: &str, url: &str, target: Target, id: u32, epoch: Instant) -> Client {
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let url = url.to_string();
        let name = name.to_string();
        let handle = std::thread::spawn(move || run_client(&name, &url, &target, id, epoch, &stop2));
        Client { handle, stop }
    }

    pub fn stop(self) -> ClientReport {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.join().expect("client thread panicked")
    }
}

fn sqlstate_of(e: &postgres::Error) -> String {
    e.code()
        .map(|c| c.code().to_string())
        .unwrap_or_else(|| "connection".to_string())
}

fn run_client(name: &str, url: &str, t: &Target, id: u32, epoch: Instant, stop: &AtomicBool) -> ClientReport {
    let mut report = ClientReport {
        name: name.to_string(),
        ..Default::default()
    };
    let mut conn = match postgres::Client::connect(url, postgres::NoTls) {
        Ok(c) => c,
        Err(e) => {
            report.errors.push(ClientError {
                sqlstate: sqlstate_of(&e),
                message: e.to_string(),
                statement: "connect".into(),
                at: epoch.elapsed(),
            });
            return report;
        }
    };
    let mut rng = SmallRng::seed_from_u64(id as u64 * 7919 + 17);
    let id_base = (id as i64 + 1) * 1_000_000_000;
    let mut next_id = id_base;
    let mut mine: Vec<i64> = Vec::new();
    let (tb, k, v, o) = (&t.table, &t.key, &t.value_col, &t.other_col);
    let (ob, ov, oo) = (&t.oracle, &t.oracle_value_col, &t.oracle_other_col);
    let mut seq: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        seq += 1;
        let pick_id = |rng: &mut SmallRng, mine: &Vec<i64>| -> i64 {
            if !mine.is_empty() && rng.gen_bool(0.3) {
                mine[rng.gen_range(0..mine.len())]
            } else {
                rng.gen_range(1..=t.initial_rows.max(1))
            }
        };
        let roll: u32 = rng.gen_range(0..100);
        let value = if t.value_is_int {
            rng.gen_range(0..1_000_000).to_string()
        } else {
            format!("{name}-{seq}")
        };
        // Integer values travel as text and are cast by the statement.
        let val = if t.value_is_int { "$2::text::int8" } else { "$2" };
        // Alternate prepared (extended protocol) and simple statements.
        let prepared = seq % 2 == 0;
        // $1 is always the key, cast to int8 (so an integer key works too, and
        // reads of it keep their result type when it becomes bigint), $2.. text values.
        let (stmt, oracle_stmt, key, params): (String, String, i64, Vec<Option<String>>) = match roll {
            0..=24 => {
                next_id += 1;
                mine.push(next_id);
                let other = if rng.gen_bool(0.2) {
                    None
                } else {
                    Some(format!("o{seq}"))
                };
                (
                    format!("INSERT INTO {tb} ({k}, {v}, {o}) VALUES ($1::int8, {val}, $3)"),
                    format!("INSERT INTO {ob} ({k}, {ov}, {oo}) VALUES ($1::int8, {val}, $3)"),
                    next_id,
                    vec![Some(value), other],
                )
            }
            25..=54 => {
                let id = pick_id(&mut rng, &mine);
                (
                    format!("UPDATE {tb} SET {v} = {val} WHERE {k} = $1::int8"),
                    format!("UPDATE {ob} SET {ov} = {val} WHERE {k} = $1::int8"),
                    id,
                    vec![Some(value)],
                )
            }
            55..=69 => {
                let id = pick_id(&mut rng, &mine);
                let other = if rng.gen_bool(0.3) {
                    None
                } else {
                    Some(format!("u{seq}"))
                };
                (
                    format!("UPDATE {tb} SET {o} = $2 WHERE {k} = $1::int8"),
                    format!("UPDATE {ob} SET {oo} = $2 WHERE {k} = $1::int8"),
                    id,
                    vec![other],
                )
            }
            70..=72 if t.key_updates && !mine.is_empty() => {
                let i = rng.gen_range(0..mine.len());
                let old = mine[i];
                next_id += 1;
                mine[i] = next_id;
                (
                    format!("UPDATE {tb} SET {k} = $2::text::int8 WHERE {k} = $1::int8"),
                    format!("UPDATE {ob} SET {k} = $2::text::int8 WHERE {k} = $1::int8"),
                    old,
                    vec![Some(next_id.to_string())],
                )
            }
            70..=74 => {
                let id = pick_id(&mut rng, &mine);
                (
                    format!("DELETE FROM {tb} WHERE {k} = $1::int8"),
                    format!("DELETE FROM {ob} WHERE {k} = $1::int8"),
                    id,
                    vec![],
                )
            }
            _ => {
                let id = pick_id(&mut rng, &mine);
                // The value is read as text: a statement prepared before a
                // migration changes the column's type and executed after it
                // fails with PostgreSQL's "cached plan must not change result
                // type" (0A000), whatever the tool (README, known limits); the
                // read itself still goes through the migrated column.
                (
                    format!("SELECT {k}::int8, {v}::text, {o} FROM {tb} WHERE {k} = $1::int8"),
                    String::new(),
                    id,
                    vec![],
                )
            }
        };
        let started = Instant::now();
        let at = epoch.elapsed();
        let result = run_one(&mut conn, &stmt, &oracle_stmt, key, &params, prepared);
        report.latencies.record(at, started.elapsed());
        report.statements += 1;
        if let Err(e) = result {
            report.errors.push(ClientError {
                sqlstate: sqlstate_of(&e),
                message: e.to_string(),
                statement: stmt,
                at,
            });
            if conn.is_closed() {
                break;
            }
            let _ = conn.batch_execute("ROLLBACK");
        }
    }
    report
}

/// The table statement and its oracle twin in one transaction. Simple-protocol
/// runs inline the parameters as quoted literals.
fn run_one(
    conn: &mut postgres::Client,
    stmt: &str,
    oracle_stmt: &str,
    key: i64,
    params: &[Option<String>],
    prepared: bool,
) -> Result<(), postgres::Error> {
    let mut refs: Vec<&(dyn postgres::types::ToSql + Sync)> = vec![&key];
    refs.extend(params.iter().map(|p| p as &(dyn postgres::types::ToSql + Sync)));
    if oracle_stmt.is_empty() {
        if prepared {
            conn.query(stmt, &refs)?;
        } else {
            conn.simple_query(&inline(stmt, key, params))?;
        }
        return Ok(());
    }
    let mut tx = conn.transaction()?;
    if prepared {
        tx.execute(stmt, &refs)?;
        tx.execute(oracle_stmt, &refs)?;
    } else {
        tx.simple_query(&inline(stmt, key, params))?;
        tx.simple_query(&inline(oracle_stmt, key, params))?;
    }
    tx.commit()
}

/// Replace $n by literals (for the simple query protocol): $1 the key, $2.. texts.
fn inline(stmt: &str, key: i64, params: &[Option<String>]) -> String {
    let mut s = stmt.to_string();
    for (i, p) in params.iter().enumerate().rev() {
        let lit = match p {
            None => "NULL".to_string(),
            Some(v) => format!("'{}'", v.replace('\'', "''")),
        };
        s = s.replace(&format!("${}", i + 2), &lit);
    }
    s.replace("$1", &key.to_string())
}

/// Differences between the migrated table and the oracle, first `limit` rows.
pub fn oracle_diff(conn: &mut postgres::Client, table_select: &str, oracle_select: &str, limit: i64) -> Vec<String> {
    let sql = format!(
        "SELECT 'table only: ' || t::text FROM (({table_select}) EXCEPT ({oracle_select})) t
         UNION ALL
         SELECT 'oracle only: ' || o::text FROM (({oracle_select}) EXCEPT ({table_select})) o
         LIMIT {limit}"
    );
    conn.query(&sql, &[])
        .expect("oracle diff")
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect()
}

/// Print the first errors of a set of reports; returns their total.
pub fn report_errors(reports: &[ClientReport]) -> usize {
    let total: usize = reports.iter().map(|r| r.errors.len()).sum();
    for r in reports {
        for e in r.errors.iter().take(5) {
            eprintln!(
                "[{}] at {:?}: {} {} -- {}",
                r.name, e.at, e.sqlstate, e.message, e.statement
            );
        }
    }
    total
}
