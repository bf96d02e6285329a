//! `spawn_app()`: a local gateway on `127.0.0.1:0` over its own fresh table in
//! the real DynamoDB Local started by `scripts/test`, so tests never share state.

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Duration, DurationRound, Utc};
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use slotguard::adapters::calendar_secrets::{CalendarSecrets, DEFAULT_PREFIX};
use slotguard::adapters::calendars::CalendarTargetRules;
use slotguard::adapters::dynamo::DynamoStore;
use slotguard::adapters::sqs::SqsCalendarQueue;
use slotguard::adapters::stripe::{StripePayments, WebhookVerifier};
use slotguard::api::auth::AdminAuth;
use slotguard::api::checkout::CheckoutUrls;
use slotguard_local::{dev, gateway};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Once, OnceLock};

pub const ADMIN_TOKEN: &str = "test-admin-token";
pub const WEBHOOK_SECRET: &str = "whsec_test_integration";
pub const STRIPE_KEY: &str = "sk_test_integration";

pub type Item = HashMap<String, AttributeValue>;

/// One running gateway over one fresh table, queue and Stripe simulator.
pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub store: DynamoStore,
    /// The Stripe simulator's base URL.
    pub sim: String,
    pub queue: SqsCalendarQueue,
    pub dlq_url: String,
    /// The reservation secrets the `201`s of this app's reservations carried,
    /// by reservation id: what a booking page keeps.
    secrets: Arc<std::sync::Mutex<HashMap<String, String>>>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
    _sim_shutdown: tokio::sync::oneshot::Sender<()>,
}

/// Where the in-process handlers' log goes: `$SLOTGUARD_STACK_DIR/logs/`
/// (where `scripts/check-logs` reads it after the run), else cargo's
/// temporary directory for this test binary.
pub fn log_file() -> &'static Path {
    static FILE: OnceLock<PathBuf> = OnceLock::new();
    FILE.get_or_init(|| {
        let dir = std::env::var_os("SLOTGUARD_STACK_DIR")
            .map(|stack| PathBuf::from(stack).join("logs"))
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("logs"));
        std::fs::create_dir_all(&dir).expect("create the log directory");
        dir.join(format!("integration-{}.log", std::process::id()))
    })
}

/// Captures every log line of the in-process handlers (gateway, Stripe
/// simulator, calendar writer, harness) as JSON lines, the format the
/// functions log in on AWS, in [`log_file`]: slotguard's own crates at
/// DEBUG (more than production's INFO, so the PII check sees every line the
/// code can write), other crates at INFO. With TEST_LOG=1 the same lines
/// also go to stdout, as text.
pub fn init_logs() {
    use lambda_http::tracing::subscriber::filter::{LevelFilter, Targets};
    use lambda_http::tracing::subscriber::{fmt, prelude::*, registry};
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let levels = Targets::new()
            .with_default(LevelFilter::INFO)
            .with_target("slotguard", LevelFilter::DEBUG)
            .with_target("stripe_sim", LevelFilter::DEBUG);
        let file = std::fs::File::create(log_file()).expect("create the log file");
        let to_file = fmt::layer().json().with_writer(Mutex::new(file)).with_filter(levels.clone());
        let to_stdout = std::env::var_os("TEST_LOG")
            .map(|_| fmt::layer().with_target(false).without_time().with_test_writer().with_filter(levels));
        registry().with(to_file).with(to_stdout).init();
    });
}

/// An endpoint of the local stack `scripts/test` started.
fn stack_url(var: &str) -> String {
    init_logs();
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: run the integration tests with scripts/test, which starts the local stack")
    })
}

pub fn dynamodb_endpoint() -> String {
    stack_url("SLOTGUARD_TEST_DYNAMODB_URL")
}

/// A fresh calendar queue on the local SQS server, shaped like the
/// template's (a dead-letter queue after 5 receives) but with a 1-second
/// visibility timeout, so failed messages come back quickly. Returns the queue
/// and its dead-letter queue's URL.
pub async fn fresh_queue() -> (SqsCalendarQueue, String) {
    let sqs = dev::sqs_client(&stack_url("SLOTGUARD_TEST_SQS_URL"));
    let name = format!("test-{}", uuid::Uuid::new_v4().simple());
    let (queue_url, dlq_url) = dev::create_calendar_queues(&sqs, &name, 1).await.expect("create test queues");
    (SqsCalendarQueue::new(sqs, queue_url), dlq_url)
}

/// Starts a gateway over a new table in DynamoDB Local, with the local
/// stack's calendar rules ([`CalendarTargetRules::local`]).
pub async fn spawn_app() -> TestApp {
    spawn_app_with_calendar_rules(CalendarTargetRules::local()).await
}

/// [`spawn_app`] with other rules for the calendars of saved resources.
pub async fn spawn_app_with_calendar_rules(rules: CalendarTargetRules) -> TestApp {
    let ddb = dev::dynamodb_client(&dynamodb_endpoint());
    let table = format!("test-{}", uuid::Uuid::new_v4().simple());
    dev::ensure_table(&ddb, &table).await.expect("create the test table");
    let sim_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sim = format!("http://{}", sim_listener.local_addr().unwrap());
    spawn(DynamoStore::new(ddb, table), sim_listener, &sim, rules, gateway::Limits::default()).await
}

/// Starts a gateway over any store (e.g. one whose endpoint is down), with a
/// Stripe simulator that delivers its webhooks to the gateway.
pub async fn spawn_app_on(store: DynamoStore) -> TestApp {
    let sim_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sim = format!("http://{}", sim_listener.local_addr().unwrap());
    spawn_app_with(store, sim_listener, &sim.clone()).await
}

/// Starts a gateway over a new table that waits for slow clients only as
/// long as `limits` say.
pub async fn spawn_app_limited(limits: gateway::Limits) -> TestApp {
    let ddb = dev::dynamodb_client(&dynamodb_endpoint());
    let table = format!("test-{}", uuid::Uuid::new_v4().simple());
    dev::ensure_table(&ddb, &table).await.expect("create the test table");
    let sim_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sim = format!("http://{}", sim_listener.local_addr().unwrap());
    spawn(DynamoStore::new(ddb, table), sim_listener, &sim, CalendarTargetRules::local(), limits).await
}

/// Starts a gateway whose Stripe client talks to `stripe_url` (where
/// `sim_listener` serves the simulator, or nothing does).
pub async fn spawn_app_with(store: DynamoStore, sim_listener: tokio::net::TcpListener, stripe_url: &str) -> TestApp {
    spawn(store, sim_listener, stripe_url, CalendarTargetRules::local(), gateway::Limits::default()).await
}

async fn spawn(
    store: DynamoStore,
    sim_listener: tokio::net::TcpListener,
    stripe_url: &str,
    calendar_rules: CalendarTargetRules,
    limits: gateway::Limits,
) -> TestApp {
    init_logs();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let sim = format!("http://{}", sim_listener.local_addr().unwrap());
    let (sim_tx, sim_rx) = tokio::sync::oneshot::channel::<()>();
    let sim_config = stripe_sim::SimConfig {
        webhook_url: Some(format!("{base}/webhooks/stripe")),
        webhook_secret: WEBHOOK_SECRET.into(),
        public_url: None,
        clock_offset_secs: 0,
        ..stripe_sim::SimConfig::default()
    };
    tokio::spawn(stripe_sim::serve(sim_listener, sim_config, async move {
        let _ = sim_rx.await;
    }));
    let (queue, dlq_url) = fresh_queue().await;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let gw = gateway::Gateway {
        store: store.clone(),
        admin: AdminAuth::Token(ADMIN_TOKEN.into()),
        calendar_rules,
        payments: Arc::new(StripePayments::new(STRIPE_KEY, Some(stripe_url)).unwrap()),
        checkout_urls: CheckoutUrls {
            success_url: "https://shop.example/booked/{RESERVATION_ID}".into(),
            cancel_url: "https://shop.example/cancelled".into(),
        },
        calendar: queue.clone(),
        verifier: WebhookVerifier::new(WEBHOOK_SECRET),
    };
    let stopped = async move {
        let _ = rx.await;
    };
    tokio::spawn(serve_checked(listener, gw, stopped, limits));
    let http = reqwest::Client::builder().pool_max_idle_per_host(64).build().unwrap();
    TestApp { base, http, store, sim, queue, dlq_url, secrets: Arc::default(), _shutdown: tx, _sim_shutdown: sim_tx }
}

/// A Secrets Manager client for the test stack's moto server (which answers
/// Secrets Manager on its SQS port).
pub fn secrets_manager() -> aws_sdk_secretsmanager::Client {
    slotguard::adapters::install_crypto_provider();
    use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};
    let config = aws_sdk_secretsmanager::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("local", "local", None, None, "slotguard-tests"))
        .endpoint_url(stack_url("SLOTGUARD_TEST_SQS_URL"))
        .timeout_config(slotguard::adapters::aws::timeouts())
        .build();
    aws_sdk_secretsmanager::Client::from_conf(config)
}

/// The calendar credentials of resources, read from moto as the calendar
/// functions read them from Secrets Manager (default prefix).
pub fn calendar_secrets() -> CalendarSecrets {
    CalendarSecrets::secrets_manager(secrets_manager(), DEFAULT_PREFIX).unwrap()
}

/// A fresh secret name under the calendar secret prefix.
pub fn calendar_secret_name() -> String {
    format!("{DEFAULT_PREFIX}test-{}", uuid::Uuid::new_v4().simple())
}

/// Creates (or replaces the value of) the secret `name` in moto.
pub async fn put_secret(name: &str, value: &Value) {
    let sm = secrets_manager();
    let exists = sm.describe_secret().secret_id(name).send().await.is_ok();
    if exists {
        sm.put_secret_value().secret_id(name).secret_string(value.to_string()).send().await.expect("put secret value");
    } else {
        sm.create_secret().name(name).secret_string(value.to_string()).send().await.expect("create the secret");
    }
}

/// A resource open around the clock in UTC with one-hour slots.
pub fn open_all_day() -> Value {
    json!({
        "name": "Test room",
        "timezone": "UTC",
        "slot_minutes": 60,
        "price": { "amount": 2500, "currency": "eur" },
        "weekly_hours": {
            "mon": [{"start": "00:00", "end": "24:00"}], "tue": [{"start": "00:00", "end": "24:00"}],
            "wed": [{"start": "00:00", "end": "24:00"}], "thu": [{"start": "00:00", "end": "24:00"}],
            "fri": [{"start": "00:00", "end": "24:00"}], "sat": [{"start": "00:00", "end": "24:00"}],
            "sun": [{"start": "00:00", "end": "24:00"}]
        }
    })
}

/// The start of the whole UTC hour `hours` from now (always in the future).
pub fn hour_from_now(hours: i64) -> DateTime<Utc> {
    Utc::now().duration_trunc(Duration::hours(1)).unwrap() + Duration::hours(hours)
}

/// `hour`:00 UTC the day after tomorrow (36–72 hours ahead), for tests
/// whose slots must stay on one UTC day whatever the time of the run: a slot
/// running past midnight is not offered, and per-day counts (round-robin
/// load, `max_per_day`) start again at midnight.
pub fn day_after_tomorrow_at(hour: i64) -> DateTime<Utc> {
    (Utc::now() + Duration::days(2)).duration_trunc(Duration::days(1)).unwrap() + Duration::hours(hour)
}

pub fn rfc3339(t: DateTime<Utc>) -> String {
    slotguard::domain::rfc3339(t)
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Creates or replaces a resource through the admin route.
    pub async fn put_resource(&self, id: &str, spec: &Value) {
        let r = self
            .http
            .put(self.url(&format!("/v1/resources/{id}")))
            .bearer_auth(ADMIN_TOKEN)
            .json(spec)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "put resource: {}", r.text().await.unwrap());
    }

    pub fn reserve_body(resource: &str, start: DateTime<Utc>, email: &str) -> Value {
        json!({ "resource_id": resource, "start": rfc3339(start), "customer": { "name": "Test Customer", "email": email } })
    }

    pub async fn reserve(&self, resource: &str, start: DateTime<Utc>, email: &str) -> Response {
        self.http
            .post(self.url("/v1/reservations"))
            .json(&Self::reserve_body(resource, start, email))
            .send()
            .await
            .unwrap()
    }

    pub async fn slots(&self, resource: &str, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<String> {
        self.slots_with(resource, from, to, &[]).await
    }

    /// The open starts in `[from, to)`, with more query parameters (`type`, `duration`).
    pub async fn slots_with(
        &self,
        resource: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        more: &[(&str, String)],
    ) -> Vec<String> {
        let mut query = vec![("from", rfc3339(from)), ("to", rfc3339(to))];
        query.extend(more.iter().cloned());
        let r = self.http.get(self.url(&format!("/v1/resources/{resource}/slots"))).query(&query).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let body: Value = r.json().await.unwrap();
        body["slots"].as_array().unwrap().iter().map(|s| s["start"].as_str().unwrap().to_owned()).collect()
    }

    /// Keeps the secret of the reservation a reserve `201` (`held`)
    /// answered; returns its id.
    pub fn remember(&self, held: &Value) -> String {
        let id = held["reservation_id"].as_str().expect("a reserve 201").to_owned();
        let secret = held["reservation_secret"].as_str().expect("a reserve 201 carries the secret").to_owned();
        self.secrets.lock().unwrap().insert(id.clone(), secret);
        id
    }

    /// The secret a reservation's `201` carried, if this app made it.
    pub fn secret_of(&self, reservation_id: &str) -> Option<String> {
        self.secrets.lock().unwrap().get(reservation_id).cloned()
    }

    /// `req` with the reservation's secret as its bearer, as a booking page
    /// that reserved sends it (none for a reservation this app did not make).
    pub fn as_holder(&self, reservation_id: &str, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self.secret_of(reservation_id) {
            Some(secret) => req.bearer_auth(secret),
            None => req,
        }
    }

    /// The reservation as the holder of its secret sees it.
    pub async fn status_of(&self, reservation_id: &str) -> (StatusCode, Value) {
        let req = self.http.get(self.url(&format!("/v1/reservations/{reservation_id}")));
        let r = self.as_holder(reservation_id, req).send().await.unwrap();
        (r.status(), r.json().await.unwrap())
    }

    /// Every item in the table, sorted by key.
    pub async fn scan(&self) -> Vec<Item> {
        scan_table(&self.store).await
    }

    /// Claim items that keep the slot from others right now.
    pub async fn live_holds(&self) -> Vec<Item> {
        let now = Utc::now().timestamp();
        self.scan()
            .await
            .into_iter()
            .filter(|i| s(i, "kind") == "claim" && s(i, "status") == "HELD")
            .filter(|i| matches!(i.get("expires_at"), Some(AttributeValue::N(n)) if n.parse::<i64>().unwrap() > now))
            .collect()
    }
}

/// Every item of a store's table, read consistently, sorted by key.
pub async fn scan_table(store: &DynamoStore) -> Vec<Item> {
    let mut items: Vec<Item> = store
        .client()
        .scan()
        .table_name(store.table())
        .consistent_read(true)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .expect("scan the table");
    items.sort_by_key(|i| (s(i, "pk"), s(i, "sk")));
    items
}

pub fn s(item: &Item, name: &str) -> String {
    match item.get(name) {
        Some(AttributeValue::S(v)) => v.clone(),
        _ => String::new(),
    }
}

/// Asserts `r` is a problem response with this status and type; returns its body.
pub async fn assert_problem(r: Response, status: u16, kind: &str) -> Value {
    assert_eq!(r.status().as_u16(), status, "status of a {kind} problem");
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["type"], kind, "{body}");
    assert_eq!(body["status"], status, "{body}");
    assert!(body["title"].as_str().is_some_and(|t| !t.is_empty()), "{body}");
    assert!(body["detail"].as_str().is_some_and(|t| !t.is_empty()), "{body}");
    body
}

/// [`gateway::serve_with`], holding every answer of an API route to the
/// OpenAPI document (`slotguard::api::openapi::documents`): an answer whose
/// status, or problem `type`, the document does not list for its operation
/// is logged as a contract violation and not sent (the connection closes),
/// so the test that provoked it fails.
async fn serve_checked(
    listener: tokio::net::TcpListener,
    gw: gateway::Gateway,
    shutdown: impl std::future::Future<Output = ()>,
    limits: gateway::Limits,
) {
    let gw = Arc::new(gw);
    let handler = move |req: slotguard_serve::Request<slotguard_serve::Incoming>| {
        let gw = gw.clone();
        async move {
            let (method, path) = (req.method().to_string(), req.uri().path().to_owned());
            let response = gw.handle_within(req, limits.body_read_timeout).await;
            if !(path.starts_with("/v1/") || path.starts_with("/webhooks/")) {
                return Ok(response);
            }
            use slotguard_serve::BodyExt;
            let (parts, body) = response.into_parts();
            let bytes = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            let response = slotguard_serve::Response::from_parts(parts, slotguard_serve::Full::new(bytes.clone()));
            let status = response.status().as_u16();
            let is_problem = response.headers().get("content-type").is_some_and(|v| v == "application/problem+json");
            let kind = is_problem
                .then(|| serde_json::from_slice::<Value>(&bytes).ok())
                .flatten()
                .and_then(|body| body["type"].as_str().map(str::to_owned));
            match slotguard::api::openapi::documents(&method, &path, status, kind.as_deref()) {
                Ok(()) => Ok(response),
                Err(why) => {
                    eprintln!("CONTRACT VIOLATION (docs/openapi.json): {why}");
                    Err(why)
                }
            }
        }
    };
    slotguard_serve::serve_with(listener, handler, shutdown, limits.connection).await;
}
