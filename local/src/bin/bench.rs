//! `bench`: what the request path costs, measured on the local stack (run by
//! `scripts/bench`, which builds the binaries and starts the stack).
//!
//! Prints figures; asserts nothing. Each comparison is measured interleaved
//! in one run, so the machine's noise hits both sides alike:
//!
//! - request path latency through the local gateway (the same handlers) and
//!   the peak memory of this process;
//! - contention: many holds at once on few slots;
//! - seats and teams: availability of a team of 5 with busy time, team
//!   and seat holds;
//! - warm `reserve` (in-process) against the raw DynamoDB writes it is built
//!   on, on the same client;
//! - round trips per flow, counted by recording proxies in front of DynamoDB
//!   Local, the SQS server and the Stripe simulator;
//! - each release function binary as Lambda runs it (a runtime API
//!   stand-in): init, first response and peak memory against a hello-world
//!   `lambda_http` binary;
//! - binary sizes, arm64 (as deployed) and x86_64.
//!
//! The numbers describe this machine and DynamoDB Local, not AWS: on Lambda,
//! DynamoDB round trips are a few milliseconds and each request has its own
//! execution environment. They are for comparing changes.
//!
//! Environment: `SLOTGUARD_BENCH_DYNAMODB_URL`, `SLOTGUARD_BENCH_SQS_URL`
//! (required); `SLOTGUARD_BENCH_BIN_DIR` (release binaries: the functions and
//! `hello-lambda`; without it the Lambda sections are skipped),
//! `SLOTGUARD_BENCH_LAMBDA_DIR` (cargo lambda's arm64 output, if built),
//! `SLOTGUARD_BENCH_FUNCTION_LOG` (where the functions' output goes),
//! `SLOTGUARD_BENCH_ROUNDS` (cold-start rounds, 5), `SLOTGUARD_BENCH_ONLY`
//! (comma-separated sections: `latency,contention,teams,raw,flows,lambda,sizes`),
//! `RUST_LOG` (the in-process handlers' logs, on stderr; none if unset).

#[path = "../bench/flows.rs"]
mod flows;
#[path = "../bench/functions.rs"]
mod functions;
#[path = "../bench/latency.rs"]
mod latency;
#[path = "../bench/proxy.rs"]
mod proxy;
#[path = "../bench/runtime_api.rs"]
mod runtime_api;
#[path = "../bench/stats.rs"]
mod stats;

use slotguard::adapters::dynamo::DynamoStore;
use slotguard::adapters::sqs::SqsCalendarQueue;
use slotguard::adapters::stripe::{StripePayments, WebhookVerifier};
use slotguard::api::auth::AdminAuth;
use slotguard::api::checkout::CheckoutUrls;
use slotguard_local::{dev, gateway};
use stats::run;
use std::path::PathBuf;
use std::sync::Arc;

const TOKEN: &str = "bench-admin";
const WEBHOOK_SECRET: &str = "whsec_bench";
const STRIPE_KEY: &str = "sk_test_bench";

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set; run scripts/bench"))
}

fn optional(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn number(name: &str, default: usize) -> usize {
    optional(name).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn heading(title: &str) {
    println!();
    println!("{title}");
}

/// A resource open around the clock (Berlin) with one-hour slots starting
/// every 15 minutes, seated if `seats` is given.
fn hourly(name: &str, seats: Option<u32>) -> serde_json::Value {
    let mut spec = open_resource(name, "Europe/Berlin");
    let object = spec.as_object_mut().expect("a JSON object");
    object.remove("slot_minutes");
    object.remove("price");
    let mut kind = serde_json::json!({"id": "t", "start_interval_minutes": 15,
        "durations": [{"minutes": 60, "price": {"amount": 1000, "currency": "eur"}}]});
    if let Some(seats) = seats {
        kind["seats"] = serde_json::json!(seats);
    }
    spec["booking_types"] = serde_json::json!([kind]);
    spec
}

/// A resource open around the clock with 15-minute slots.
fn open_resource(name: &str, timezone: &str) -> serde_json::Value {
    let open = serde_json::json!([{"start": "00:00", "end": "24:00"}]);
    serde_json::json!({
        "name": name, "timezone": timezone, "slot_minutes": 15,
        "price": {"amount": 1000, "currency": "eur"},
        "weekly_hours": {"mon": open, "tue": open, "wed": open, "thu": open, "fri": open, "sat": open, "sun": open}
    })
}

#[tokio::main]
async fn main() {
    // The handlers' own logs (a 503's cause, say) on stderr, if asked for.
    if std::env::var_os("RUST_LOG").is_some() {
        lambda_http::tracing::init_default_subscriber_with_writer(std::io::stderr);
    }
    let dynamodb_url = env("SLOTGUARD_BENCH_DYNAMODB_URL");
    let sqs_url = env("SLOTGUARD_BENCH_SQS_URL");
    let only = optional("SLOTGUARD_BENCH_ONLY");
    let section = |name: &str| only.as_deref().is_none_or(|o| o.split(',').any(|s| s.trim() == name));
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");

    let ddb = dev::dynamodb_client(&dynamodb_url);
    let table = format!("bench-{}", uuid::Uuid::new_v4().simple());
    dev::ensure_table(&ddb, &table).await.expect("create the bench table");
    let sqs = dev::sqs_client(&sqs_url);
    let (queue_url, dlq_url) = dev::create_calendar_queues(&sqs, &table, 30).await.expect("create queues");
    let store = DynamoStore::new(ddb.clone(), table);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let gw = gateway::Gateway {
        store: store.clone(),
        admin: AdminAuth::Token(TOKEN.into()),
        calendar_rules: slotguard::adapters::calendars::CalendarTargetRules::local(),
        // Never called by these requests.
        payments: Arc::new(StripePayments::new(STRIPE_KEY, Some("http://127.0.0.1:9")).unwrap()),
        checkout_urls: CheckoutUrls { success_url: "https://x/".into(), cancel_url: "https://x/".into() },
        calendar: SqsCalendarQueue::new(sqs, queue_url.clone()),
        verifier: WebhookVerifier::new(WEBHOOK_SECRET),
    };
    tokio::spawn(gateway::serve(listener, gw, std::future::pending()));
    let http = reqwest::Client::builder().pool_max_idle_per_host(256).build().unwrap();
    let r = http
        .put(format!("{base}/v1/resources/bench"))
        .bearer_auth(TOKEN)
        .json(&open_resource("Bench room", "Europe/Berlin"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "create the bench resource");

    let day = chrono::Utc::now().date_naive().succ_opt().unwrap().and_hms_opt(0, 0, 0).unwrap().and_utc();
    let slot = |i: usize| day + chrono::Duration::minutes(15 * i as i64);
    let body = |i: usize, who: usize| {
        serde_json::json!({"resource_id": "bench", "start": slotguard::domain::rfc3339(slot(i)),
            "customer": {"name": "Bench", "email": format!("b{who}@example.com")}})
    };
    println!(
        "slotguard bench: local stack (DynamoDB Local, SQS server, Stripe simulator), {} cores, {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC")
    );
    println!("Figures for comparing changes on this machine, not AWS latencies; nothing is asserted.");

    if section("latency") {
        heading("Request path through the local gateway (HTTP client -> gateway -> handler -> DynamoDB Local)");
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
        let r =
            http.put(format!("{base}/v1/resources/lengths")).bearer_auth(TOKEN).json(&lengths).send().await.unwrap();
        assert!(r.status().is_success(), "create the lengths resource");
        let hold = |minutes: i64, i: usize, days_ahead: i64| {
            let start = day + chrono::Duration::days(days_ahead) + chrono::Duration::minutes(minutes * i as i64);
            serde_json::json!({"resource_id": "lengths", "start": slotguard::domain::rfc3339(start),
                "booking_type": "t", "duration_minutes": minutes,
                "customer": {"name": "Bench", "email": format!("l{i}@example.com")}})
        };
        for round in 0..2 {
            let again = if round == 0 { "" } else { ", again" };
            run(format!("hold 30 min (6 cells), c=1{again}"), 200, 1, |i| {
                http.post(format!("{base}/v1/reservations")).json(&hold(30, i, 30 + 10 * round)).send()
            })
            .await
            .print();
            run(format!("hold 240 min (48 cells), c=1{again}"), 200, 1, |i| {
                http.post(format!("{base}/v1/reservations")).json(&hold(240, i, 100 + 100 * round)).send()
            })
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
        run("reservation status (miss), c=8", 1000, 8, |_| {
            http.get(format!("{base}/v1/reservations/{missing}")).send()
        })
        .await
        .print();
        println!(
            "  peak RSS of this process (gateway + client + every handler): {:.1} MiB",
            stats::peak_rss_mib("self").unwrap_or(f64::NAN)
        );
    }

    if section("contention") {
        let (slots, total) = (10, 1000);
        heading(&format!(
            "Contention: {total} holds sent at once on {slots} slots through the gateway ({} per slot)",
            total / slots
        ));
        latency::contention(&http, &base, "bench", slot(5000), slots, total).await;
    }

    if section("teams") {
        heading("Seats and teams through the local gateway");
        // Five members, open around the clock, each with a booking every
        // ten hours of the week and busy time (a 45-minute event every
        // seven hours, as the refresh caches it); a round-robin team over them.
        let members: Vec<String> = (1..=5).map(|i| format!("member-{i}")).collect();
        for (i, m) in members.iter().enumerate() {
            let mut spec = hourly(&format!("Member {i}"), None);
            let calendar = slotguard::domain::CalendarTarget::caldav(format!("http://127.0.0.1:9/{m}/"));
            spec["calendar"] = serde_json::to_value(&calendar).unwrap();
            spec["busy_time"] = serde_json::json!({"enabled": true});
            let r = http.put(format!("{base}/v1/resources/{m}")).bearer_auth(TOKEN).json(&spec).send().await.unwrap();
            assert!(r.status().is_success(), "create a member: {}", r.text().await.unwrap_or_default());
            let now = chrono::Utc::now();
            let snapshot = slotguard::ports::BusySnapshot {
                resource_id: slotguard::domain::ResourceId::parse(m).unwrap(),
                fetched_at: now,
                from: now - chrono::Duration::days(1),
                to: now + chrono::Duration::days(60),
                source: slotguard::ports::source_digest(&calendar),
                intervals: (0..60 * 24 / 7)
                    .map(|k| {
                        let s = day + chrono::Duration::hours(7 * k + i as i64);
                        (s, s + chrono::Duration::minutes(45))
                    })
                    .collect(),
            };
            let saved =
                slotguard::ports::BusyStore::save_busy_snapshot(&store, &snapshot, now + chrono::Duration::days(1));
            assert!(saved.await.unwrap(), "cache the member's busy time");
            for h in (i..7 * 24).step_by(10) {
                let start = day + chrono::Duration::hours(h as i64);
                let hold = serde_json::json!({"resource_id": m, "start": slotguard::domain::rfc3339(start),
                    "customer": {"name": "Bench", "email": "m@example.com"}});
                http.post(format!("{base}/v1/reservations")).json(&hold).send().await.unwrap();
            }
        }
        let mut team = hourly("Bench team", None);
        team["team"] = serde_json::json!({"members": members, "assignment": "round_robin"});
        let r = http.put(format!("{base}/v1/resources/team")).bearer_auth(TOKEN).json(&team).send().await.unwrap();
        assert!(r.status().is_success(), "create the team");
        let from = slotguard::domain::rfc3339(day);
        let to = slotguard::domain::rfc3339(day + chrono::Duration::days(7));
        run("availability, team of 5 (round-robin) with busy time, 7 days, c=8", 200, 8, |_| {
            http.get(format!("{base}/v1/resources/team/slots")).query(&[("from", &from), ("to", &to)]).send()
        })
        .await
        .print();
        run("availability, one member with busy time, 7 days, c=8", 200, 8, |_| {
            http.get(format!("{base}/v1/resources/member-1/slots")).query(&[("from", &from), ("to", &to)]).send()
        })
        .await
        .print();
        let team_hold = |i: usize| {
            let start = day + chrono::Duration::days(8) + chrono::Duration::hours((i / 5) as i64);
            serde_json::json!({"resource_id": "team", "start": slotguard::domain::rfc3339(start),
                "customer": {"name": "Bench", "email": format!("t{i}@example.com")}})
        };
        run("reserve on the team, 5 holds per start (one per free member), c=5", 500, 5, |i| {
            http.post(format!("{base}/v1/reservations")).json(&team_hold(i)).send()
        })
        .await
        .print();
        let seated = hourly("Bench class", Some(50));
        let r = http.put(format!("{base}/v1/resources/class")).bearer_auth(TOKEN).json(&seated).send().await.unwrap();
        assert!(r.status().is_success(), "create the seated resource: {}", r.text().await.unwrap_or_default());
        let seat = |i: usize| {
            let start = day + chrono::Duration::days(9) + chrono::Duration::hours((i / 60) as i64);
            serde_json::json!({"resource_id": "class", "start": slotguard::domain::rfc3339(start),
                "customer": {"name": "Bench", "email": format!("s{i}@example.com")}})
        };
        run("seat holds, 60 at once per 50-seat slot (50 x 201, 10 x 409), c=60", 600, 60, |i| {
            http.post(format!("{base}/v1/reservations")).json(&seat(i)).send()
        })
        .await
        .print();
    }

    if section("raw") {
        let n = 200;
        heading(&format!(
            "Warm reserve, handler called in-process, vs raw conditional writes on the same DynamoDB client \
             ({n} of each, interleaved in rotating order, after 20 warm-up rounds; distinct slots)"
        ));
        latency::reserve_vs_raw(&store, "bench", slot(6000), n).await;
    }

    if section("flows") {
        heading(
            "Round trips per request, counted by recording proxies in front of DynamoDB Local, the SQS server \
             and the Stripe simulator (handlers in-process behind the gateway, warm: every route called once \
             before, the resource cached as a warm Lambda has it; \"new process\" = a gateway with a cold cache; \
             status = HTTP status, for confirm the webhook's)",
        );
        flows::round_trips(&dynamodb_url, &sqs_url, WEBHOOK_SECRET).await;
    }

    let bin_dir = optional("SLOTGUARD_BENCH_BIN_DIR").map(PathBuf::from);
    let names: Vec<String> =
        std::iter::once(functions::HELLO.to_owned()).chain(functions::function_names(&root)).collect();
    if section("lambda") {
        match &bin_dir {
            None => {
                println!("\n(Lambda init, first response and peak RSS skipped: SLOTGUARD_BENCH_BIN_DIR is not set)")
            }
            Some(bin_dir) => {
                let rounds = number("SLOTGUARD_BENCH_ROUNDS", 5);
                let invocations = number("SLOTGUARD_BENCH_INVOCATIONS", 200);
                let sim_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let sim = format!("http://{}", sim_listener.local_addr().unwrap());
                let config =
                    stripe_sim::SimConfig { webhook_secret: WEBHOOK_SECRET.into(), ..stripe_sim::SimConfig::default() };
                tokio::spawn(stripe_sim::serve(sim_listener, config, std::future::pending()));
                let stack = functions::Stack {
                    dynamodb_url: dynamodb_url.clone(),
                    sqs_url: sqs_url.clone(),
                    queue_url: queue_url.clone(),
                    dlq_url: dlq_url.clone(),
                    stripe_url: sim.clone(),
                    stripe_key: STRIPE_KEY.into(),
                    webhook_secret: WEBHOOK_SECRET.into(),
                    paid_session: functions::paid_session(&http, &sim, STRIPE_KEY).await,
                };
                let mut bins = Vec::new();
                for name in &names {
                    match functions::Binary::new(name, bin_dir, &root, &stack) {
                        Some(bin) if bin_dir.join(name).exists() => bins.push(bin),
                        Some(_) => println!("  ({name}: no binary in {})", bin_dir.display()),
                        None => println!("  ({name}: no sample event known to the bench)"),
                    }
                }
                let log_path = optional("SLOTGUARD_BENCH_FUNCTION_LOG").unwrap_or_else(|| "/dev/null".into());
                let log = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&log_path)
                    .unwrap_or_else(|e| panic!("{log_path}: {e}"));
                heading(&format!(
                    "Lambda cold start of each x86_64 release binary: spawned with Lambda's environment against a \
                     local runtime API stand-in; init = spawn to first GET /next, 1st resp = spawn to the POSTed \
                     answer to its events/ file; median of {rounds} rounds, binaries interleaved; ÷hello = this \
                     binary ÷ {}",
                    functions::HELLO
                ));
                functions::cold_starts(&bins, &ddb, WEBHOOK_SECRET, rounds, invocations, &log).await;
            }
        }
    }

    if section("sizes") {
        match &bin_dir {
            None => println!("\n(binary sizes skipped: SLOTGUARD_BENCH_BIN_DIR is not set)"),
            Some(bin_dir) => {
                let lambda_dir = optional("SLOTGUARD_BENCH_LAMBDA_DIR").map(PathBuf::from);
                heading(&format!(
                    "Binary size, stripped release builds: arm64 = cargo lambda build --release --arm64 ({}), \
                     x86_64 = the binaries measured above",
                    match (&lambda_dir, optional("SLOTGUARD_BENCH_ARM64_BUILD_SECS")) {
                        (None, _) => "skipped: SLOTGUARD_BENCH_ARM64=0".to_owned(),
                        (Some(_), Some(secs)) => format!("built in {secs} s this run"),
                        (Some(_), None) => "built this run".to_owned(),
                    }
                ));
                functions::print_sizes(&names, bin_dir, lambda_dir.as_deref());
            }
        }
    }
}
