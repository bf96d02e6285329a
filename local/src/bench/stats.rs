//! Percentiles, the one-line latency figures of the request path, and
//! reading peak memory from `/proc`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The `p` quantile (0..=1) of `samples` (nearest rank); zero if empty.
pub fn quantile(samples: &[Duration], p: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    let mut sorted = samples.to_vec();
    sorted.sort();
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

pub fn median(samples: &[Duration]) -> Duration {
    quantile(samples, 0.5)
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `a / b`, printed as a factor (`3.20x`), or `-` when `b` is zero.
pub fn ratio(a: Duration, b: Duration) -> String {
    if b.is_zero() { "-".into() } else { format!("{:.2}x", a.as_secs_f64() / b.as_secs_f64()) }
}

/// Latencies and statuses of one batch of requests.
pub struct Figures {
    pub name: String,
    pub latencies: Vec<Duration>,
    pub elapsed: Duration,
    pub statuses: BTreeMap<u16, usize>,
}

impl Figures {
    pub fn print(&self) {
        let pct = |p: f64| ms(quantile(&self.latencies, p));
        println!(
            "  {:<36} n={:<5} p50={:>7.2} ms  p95={:>7.2} ms  p99={:>7.2} ms  max={:>7.2} ms  {:>6.0} req/s  statuses={:?}",
            self.name,
            self.latencies.len(),
            pct(0.50),
            pct(0.95),
            pct(0.99),
            pct(1.0),
            self.latencies.len() as f64 / self.elapsed.as_secs_f64(),
            self.statuses
        );
    }
}

/// Sends `requests` with at most `concurrency` in flight; times each. A
/// transport failure counts as status 0.
pub async fn run<F, Fut>(name: impl Into<String>, requests: usize, concurrency: usize, make: F) -> Figures
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = reqwest::Result<reqwest::Response>>,
{
    use futures::StreamExt;
    let started = Instant::now();
    let results: Vec<(Duration, u16)> = futures::stream::iter(0..requests)
        .map(|i| {
            let request = make(i);
            async move {
                let t = Instant::now();
                let status = match request.await {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        let _ = response.bytes().await;
                        status
                    }
                    Err(_) => 0,
                };
                (t.elapsed(), status)
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let mut statuses = BTreeMap::new();
    for (_, s) in &results {
        *statuses.entry(*s).or_insert(0) += 1;
    }
    Figures {
        name: name.into(),
        latencies: results.into_iter().map(|(d, _)| d).collect(),
        elapsed: started.elapsed(),
        statuses,
    }
}

/// Peak resident set size (`VmHWM`) of process `pid` (`"self"` for this
/// one), in MiB; `None` if it cannot be read.
pub fn peak_rss_mib(pid: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}
