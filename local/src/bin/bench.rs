//! `bench`: latency, throughput and memory of the request path, measured
//! through the local gateway against DynamoDB Local (run by `scripts/bench`).
//!
//! Prints figures; asserts nothing about speed. The numbers describe this
//! machine and DynamoDB Local, not AWS: on Lambda, DynamoDB round trips are
//! a few milliseconds and each request has its own execution environment.
//! They are for comparing changes, and for sizing memory (peak RSS of the
//! process running every handler at once is an upper bound for one function).

use slotguard::adapters::dynamo::DynamoStore;
use slotguard::adapters::sqs::SqsCalendarQueue;
use slotguard::adapters::stripe::{StripePayments, WebhookVerifier};
use slotguard::api::auth::AdminAuth;
use slotguard::api::checkout::CheckoutUrls;
use slotguard_local::{dev, gateway};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TOKEN: &str = "bench-admin";

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set; run scripts/bench"))
}

struct Figures {
    name: &'static str,
    latencies: Vec<Duration>,
    elapsed: Duration,
    statuses: std::collections::BTreeMap<u16, usize>,
}

impl Figures {
    fn print(mut self) {
        self.latencies.sort();
        let pct = |p: f64| {
            let i = ((self.latencies.len() as f64 * p).ceil() as usize).clamp(1, self.latencies.len()) - 1;
            self.latencies[i].as_secs_f64() * 1000.0
        };
        println!(
            "{:<34} n={:<5} p50={:>6.2} ms  p95={:>6.2} ms  p99={:>6.2} ms  max={:>7.2} ms  {:>7.0} req/s  statuses={:?}",
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

/// Sends `requests` with at most `concurrency` in flight; times each.
async fn run<F, Fut>(name: &'static str, requests: usize, concurrency: usize, make: F) -> Figures
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
                // A transport failure counts as status 0.
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
    let mut statuses = std::collections::BTreeMap::new();
    for (_, s) in &results {
        *statuses.entry(*s).or_insert(0) += 1;
    }
    Figures { name, latencies: results.into_iter().map(|(d, _)| d).collect(), elapsed: started.elapsed(), statuses }
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(str::to_owned))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|kb| kb.parse::<f64>().ok()))
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

#[tokio::main]
async fn main() {
    let ddb = dev::dynamodb_client(&env("SLOTGUARD_BENCH_DYNAMODB_URL"));
    let table = format!("bench-{}", uuid::Uuid::new_v4().simple());
    dev::ensure_table(&ddb, &table).await.expect("create the bench table");
    let sqs = dev::sqs_client(&env("SLOTGUARD_BENCH_SQS_URL"));
    let (queue_url, _) = dev::create_calendar_queues(&sqs, &table, 30).await.expect("create queues");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let gw = gateway::Gateway {
        store: DynamoStore::new(ddb, table),
        admin: AdminAuth::Token(TOKEN.into()),
        // Never called by these requests.
        payments: Arc::new(StripePayments::new("sk_test_bench", Some("http://127.0.0.1:9")).unwrap()),
        checkout_urls: CheckoutUrls { success_url: "https://x/".into(), cancel_url: "https://x/".into() },
        calendar: SqsCalendarQueue::new(sqs, queue_url),
        verifier: WebhookVerifier::new("whsec_bench"),
    };
    tokio::spawn(gateway::serve(listener, gw, std::future::pending()));
    let http = reqwest::Client::builder().pool_max_idle_per_host(256).build().unwrap();
    let week: serde_json::Value = serde_json::json!({
        "name": "Bench room", "timezone": "Europe/Berlin", "slot_minutes": 15,
        "price": {"amount": 1000, "currency": "eur"},
        "weekly_hours": {"mon": [{"start": "00:00", "end": "24:00"}], "tue": [{"start": "00:00", "end": "24:00"}],
            "wed": [{"start": "00:00", "end": "24:00"}], "thu": [{"start": "00:00", "end": "24:00"}],
            "fri": [{"start": "00:00", "end": "24:00"}], "sat": [{"start": "00:00", "end": "24:00"}],
            "sun": [{"start": "00:00", "end": "24:00"}]}
    });
    let r = http.put(format!("{base}/v1/resources/bench")).bearer_auth(TOKEN).json(&week).send().await.unwrap();
    assert!(r.status().is_success(), "create the bench resource");

    let day = chrono::Utc::now().date_naive().succ_opt().unwrap().and_hms_opt(0, 0, 0).unwrap().and_utc();
    let slot = |i: usize| day + chrono::Duration::minutes(15 * i as i64);
    let body = |i: usize, who: usize| {
        serde_json::json!({"resource_id": "bench", "start": slotguard::domain::rfc3339(slot(i)),
            "customer": {"name": "Bench", "email": format!("b{who}@example.com")}})
    };
    println!(
        "slotguard bench: local gateway + DynamoDB Local, {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    run("reserve, distinct slots, c=1", 200, 1, |i| {
        http.post(format!("{base}/v1/reservations")).json(&body(i, i)).send()
    })
    .await
    .print();
    run("reserve, distinct slots, c=32", 2000, 32, |i| {
        http.post(format!("{base}/v1/reservations")).json(&body(200 + i, i)).send()
    })
    .await
    .print();
    run("reserve, 20 per slot (race), c=200", 2000, 200, |i| {
        http.post(format!("{base}/v1/reservations")).json(&body(2400 + i / 20, i)).send()
    })
    .await
    .print();
    run("reserve + Idempotency-Key, c=32", 1000, 32, |i| {
        http.post(format!("{base}/v1/reservations"))
            .header("idempotency-key", format!("bench-{i}"))
            .json(&body(2600 + i, i))
            .send()
    })
    .await
    .print();
    // Hold cost by length: a 30-minute booking writes 6 cell locks, a
    // 240-minute one 48, each in the hold's one TransactWriteItems.
    let open = serde_json::json!([{"start": "00:00", "end": "24:00"}]);
    let lengths = serde_json::json!({
        "name": "Bench lengths", "timezone": "UTC",
        "booking_types": [{"id": "t", "start_interval_minutes": 30, "max_advance_days": 3650, "durations": [
            {"minutes": 30, "price": {"amount": 1000, "currency": "eur"}},
            {"minutes": 240, "price": {"amount": 6000, "currency": "eur"}}]}],
        "weekly_hours": {"mon": open, "tue": open, "wed": open, "thu": open, "fri": open, "sat": open, "sun": open}
    });
    let r = http.put(format!("{base}/v1/resources/lengths")).bearer_auth(TOKEN).json(&lengths).send().await.unwrap();
    assert!(r.status().is_success(), "create the lengths resource");
    let hold = |minutes: i64, i: usize, days_ahead: i64| {
        let start = day + chrono::Duration::days(days_ahead) + chrono::Duration::minutes(minutes * i as i64);
        serde_json::json!({"resource_id": "lengths", "start": slotguard::domain::rfc3339(start),
            "booking_type": "t", "duration_minutes": minutes,
            "customer": {"name": "Bench", "email": format!("l{i}@example.com")}})
    };
    for round in 0..2 {
        run(if round == 0 { "hold 30 min (6 cells), c=1" } else { "hold 30 min (6 cells), c=1, again" }, 200, 1, |i| {
            http.post(format!("{base}/v1/reservations")).json(&hold(30, i, 30 + 10 * round)).send()
        })
        .await
        .print();
        run(
            if round == 0 { "hold 240 min (48 cells), c=1" } else { "hold 240 min (48 cells), c=1, again" },
            200,
            1,
            |i| http.post(format!("{base}/v1/reservations")).json(&hold(240, i, 100 + 100 * round)).send(),
        )
        .await
        .print();
    }
    let from = slotguard::domain::rfc3339(day);
    let to = slotguard::domain::rfc3339(day + chrono::Duration::days(7));
    run("availability, 7 days, c=8", 400, 8, |_| {
        http.get(format!("{base}/v1/resources/bench/slots")).query(&[("from", &from), ("to", &to)]).send()
    })
    .await
    .print();
    let missing = format!("rsv_bench_{}_{}", slot(0).format("%Y%m%dT%H%M%S"), "0".repeat(32));
    run("reservation status (miss), c=8", 1000, 8, |_| http.get(format!("{base}/v1/reservations/{missing}")).send())
        .await
        .print();
    println!("peak RSS of this process (gateway + client + every handler): {:.1} MiB", peak_rss_mib());
}
