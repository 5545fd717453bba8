//! The lock prober: a session that queries the table every 10 ms and records
//! how long each query took. The query (`SELECT 1 FROM t WHERE false`) needs
//! the table's ACCESS SHARE lock like any read but touches no row, so what it
//! measures is lock waits alone: behind an ACCESS EXCLUSIVE lock, or behind a
//! lock request queued for one. (Real reads' latencies are the clients'.)

use crate::stats::Latencies;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub struct Prober {
    handle: JoinHandle<ProbeReport>,
    stop: Arc<AtomicBool>,
}

#[derive(Debug, Default)]
pub struct ProbeReport {
    pub reads: Latencies,
    pub errors: Vec<String>,
}

impl ProbeReport {
    pub fn longest_wait_ms(&self) -> f64 {
        self.reads.max_ms()
    }
}

impl Prober {
    pub fn spawn(url: &str, table: &str, epoch: Instant) -> Prober {
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let (url, table) = (url.to_string(), table.to_string());
        let handle = std::thread::spawn(move || {
            let mut report = ProbeReport::default();
            let mut conn = postgres::Client::connect(&url, postgres::NoTls).expect("prober connects");
            let sql = format!("SELECT 1 FROM {table} WHERE false");
            while !stop2.load(Ordering::Relaxed) {
                let at = epoch.elapsed();
                let t = Instant::now();
                if let Err(e) = conn.simple_query(&sql) {
                    report.errors.push(e.to_string());
                }
                let took = t.elapsed();
                report.reads.record(at, took);
                std::thread::sleep(Duration::from_millis(10));
            }
            report
        });
        Prober { handle, stop }
    }

    pub fn stop(self) -> ProbeReport {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.join().expect("prober panicked")
    }
}
