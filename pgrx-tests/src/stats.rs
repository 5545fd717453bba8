//! Latency statistics: percentiles and a per-100 ms timeline.

use std::time::Duration;

#[derive(Debug, Clone, Default)]
pub struct Latencies {
    /// (offset from the run's start, latency), in microseconds.
    pub samples: Vec<(u64, u64)>,
}

impl Latencies {
    pub fn record(&mut self, at: Duration, latency: Duration) {
        self.samples.push((at.as_micros() as u64, latency.as_micros() as u64));
    }

    pub fn merge(&mut self, other: &Latencies) {
        self.samples.extend_from_slice(&other.samples);
    }

    fn sorted(&self) -> Vec<u64> {
        let mut v: Vec<u64> = self.samples.iter().map(|s| s.1).collect();
        v.sort_unstable();
        v
    }

    /// Percentile in milliseconds (p in 0..=100).
    pub fn percentile_ms(&self, p: f64) -> f64 {
        let v = self.sorted();
        if v.is_empty() {
            return 0.0;
        }
        let idx = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
        v[idx.min(v.len() - 1)] as f64 / 1000.0
    }

    /// When the slowest sample started, from the run's origin.
    pub fn max_at(&self) -> Duration {
        self.samples
            .iter()
            .max_by_key(|s| s.1)
            .map(|s| Duration::from_micros(s.0))
            .unwrap_or_default()
    }

    pub fn max_ms(&self) -> f64 {
        self.samples.iter().map(|s| s.1).max().unwrap_or(0) as f64 / 1000.0
    }

    pub fn count(&self) -> usize {
        self.samples.len()
    }

    /// Samples whose start falls in [from, to).
    pub fn window(&self, from: Duration, to: Duration) -> Latencies {
        let (a, b) = (from.as_micros() as u64, to.as_micros() as u64);
        Latencies {
            samples: self.samples.iter().copied().filter(|s| s.0 >= a && s.0 < b).collect(),
        }
    }

    /// Max latency per 100 ms bucket, in ms: the timeline a chart plots.
    pub fn timeline_ms(&self, bucket: Duration) -> Vec<f64> {
        let b = bucket.as_micros().max(1) as u64;
        let mut out: Vec<f64> = Vec::new();
        for &(at, lat) in &self.samples {
            let i = (at / b) as usize;
            if out.len() <= i {
                out.resize(i + 1, 0.0);
            }
            out[i] = out[i].max(lat as f64 / 1000.0);
        }
        out
    }
}
