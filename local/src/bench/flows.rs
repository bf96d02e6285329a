//! Round trips per flow: a gateway whose DynamoDB, SQS and Stripe clients
//! talk through recording proxies, driven through each flow one request at a
//! time; the proxies' records between two requests are that request's round
//! trips. Counts whatever the handlers do now; nothing is expected.

use super::proxy::{self, Recorder};
use serde_json::{Value, json};
use slotguard::adapters::dynamo::DynamoStore;
use slotguard::adapters::sqs::SqsCalendarQueue;
use slotguard::adapters::stripe::{StripePayments, WebhookVerifier};
use slotguard::api::auth::AdminAuth;
use slotguard::api::checkout::CheckoutUrls;
use slotguard_local::{dev, gateway};
use std::sync::Arc;

const ADMIN: &str = "bench-admin";

struct Counted {
    ddb: Recorder,
    sqs: Recorder,
    stripe: Recorder,
}

impl Counted {
    fn clear(&self) {
        self.ddb.take();
        self.sqs.take();
        self.stripe.take();
    }

    /// Prints what was recorded since the last clear, as one line for `flow`.
    fn print(&self, flow: &str, status: &str) {
        let (ddb, sqs, stripe) = (self.ddb.take(), self.sqs.take(), self.stripe.take());
        let mut line = format!("{} + {}", proxy::summary("DynamoDB", &ddb), proxy::summary("SQS", &sqs));
        if !stripe.is_empty() {
            line.push_str(&format!(" + {}", proxy::summary("Stripe", &stripe)));
        }
        println!("  {flow:<30} {status:<5} {line}");
    }
}

async fn status_and_json(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or_default())
}

/// Runs every flow once through proxies in front of `dynamodb_url`,
/// `sqs_url` and a Stripe simulator started here; prints one line per flow.
pub async fn round_trips(dynamodb_url: &str, sqs_url: &str, webhook_secret: &str) {
    let (ddb_proxy, ddb) = proxy::spawn(dynamodb_url, proxy::aws_operation).await;
    let (sqs_proxy, sqs) = proxy::spawn(sqs_url, proxy::aws_operation).await;
    let sim_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the simulator");
    let sim = format!("http://{}", sim_listener.local_addr().expect("an address"));
    let (stripe_proxy, stripe) = proxy::spawn(&sim, proxy::stripe_call).await;
    let counted = Counted { ddb, sqs, stripe };

    let ddb_client = dev::dynamodb_client(&ddb_proxy);
    let table = format!("bench-flows-{}", uuid::Uuid::new_v4().simple());
    dev::ensure_table(&ddb_client, &table).await.expect("create the flows table");
    let sqs_client = dev::sqs_client(&sqs_proxy);
    let (queue_url, _) = dev::create_calendar_queues(&sqs_client, &table, 30).await.expect("create queues");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the gateway");
    let base = format!("http://{}", listener.local_addr().expect("an address"));
    tokio::spawn(stripe_sim::serve(
        sim_listener,
        stripe_sim::SimConfig {
            webhook_url: Some(format!("{base}/webhooks/stripe")),
            webhook_secret: webhook_secret.into(),
            public_url: None,
            clock_offset_secs: 0,
            ..stripe_sim::SimConfig::default()
        },
        std::future::pending(),
    ));
    let gw = gateway::Gateway {
        store: DynamoStore::new(ddb_client.clone(), table.clone()),
        admin: AdminAuth::Token(ADMIN.into()),
        calendar_rules: slotguard::adapters::calendars::CalendarTargetRules::local(),
        payments: Arc::new(StripePayments::new("sk_test_bench", Some(&stripe_proxy)).expect("a Stripe client")),
        checkout_urls: CheckoutUrls {
            success_url: "https://shop.example/booked/{RESERVATION_ID}".into(),
            cancel_url: "https://shop.example/slots".into(),
        },
        calendar: SqsCalendarQueue::new(sqs_client, queue_url),
        verifier: WebhookVerifier::new(webhook_secret),
    };
    // A second gateway with a store of its own (its own resource cache): a
    // new process, whose first reserve reads the resource.
    let fresh = gateway::Gateway { store: DynamoStore::new(ddb_client, table), ..gw.clone() };
    let fresh_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the gateway");
    let fresh_base = format!("http://{}", fresh_listener.local_addr().expect("an address"));
    tokio::spawn(gateway::serve(listener, gw, std::future::pending()));
    tokio::spawn(gateway::serve(fresh_listener, fresh, std::future::pending()));
    let http = reqwest::Client::new();
    let open = json!([{"start": "00:00", "end": "24:00"}]);
    let spec = json!({
        "name": "Flows room", "timezone": "UTC", "slot_minutes": 15, "price": {"amount": 1000, "currency": "eur"},
        "weekly_hours": {"mon": open, "tue": open, "wed": open, "thu": open, "fri": open, "sat": open, "sun": open}
    });
    let r = http.put(format!("{base}/v1/resources/flows")).bearer_auth(ADMIN).json(&spec).send().await;
    assert!(r.is_ok_and(|r| r.status().is_success()), "create the flows resource");
    let day = chrono::Utc::now().date_naive().succ_opt().expect("tomorrow").and_hms_opt(0, 0, 0).expect("midnight");
    let day = day.and_utc() + chrono::Duration::days(1);
    let body = |slot: i64| {
        let start = day + chrono::Duration::minutes(15 * slot);
        json!({"resource_id": "flows", "start": slotguard::domain::rfc3339(start),
            "customer": {"name": "Bench", "email": format!("flow{slot}@example.com")}})
    };
    let reserve_at = |base: &str, slot: i64, key: Option<&'static str>| {
        let mut req = http.post(format!("{base}/v1/reservations")).json(&body(slot));
        if let Some(key) = key {
            req = req.header("idempotency-key", key);
        }
        req.send()
    };
    let reserve = |slot: i64, key: Option<&'static str>| reserve_at(&base, slot, key);
    // Every route once first, so connection set-up is not counted.
    let warm = reserve(90, None).await.expect("warm-up reserve");
    let (_, warm_hold) = status_and_json(warm).await;
    let warm_id = warm_hold["reservation_id"].as_str().unwrap_or_default().to_owned();
    let warm_secret = warm_hold["reservation_secret"].as_str().unwrap_or_default().to_owned();
    let _ = http.post(format!("{base}/v1/reservations/{warm_id}/checkout")).bearer_auth(&warm_secret).send().await;
    let _ = http.get(format!("{base}/v1/reservations/{warm_id}")).bearer_auth(&warm_secret).send().await;
    counted.clear();

    let (status, held) = status_and_json(reserve(0, None).await.expect("reserve")).await;
    counted.print("reserve, no key", &status.to_string());
    let (status, _) = status_and_json(reserve_at(&fresh_base, 2, None).await.expect("reserve")).await;
    counted.print("reserve, new process", &status.to_string());
    let id = held["reservation_id"].as_str().unwrap_or_default().to_owned();
    // The page that reserved keeps the secret.
    let secret = held["reservation_secret"].as_str().unwrap_or_default().to_owned();

    let (status, _) = status_and_json(reserve(1, Some("bench-flow-key")).await.expect("reserve")).await;
    counted.print("reserve, Idempotency-Key", &status.to_string());
    let r = reserve(1, Some("bench-flow-key")).await.expect("reserve");
    let replayed = r.headers().get("idempotent-replayed").is_some_and(|v| v == "true");
    let (status, _) = status_and_json(r).await;
    counted.print(
        if replayed { "reserve, same key replayed" } else { "reserve, same key (NOT replayed)" },
        &status.to_string(),
    );

    let r =
        http.post(format!("{base}/v1/reservations/{id}/checkout")).bearer_auth(&secret).send().await.expect("checkout");
    let (status, session) = status_and_json(r).await;
    counted.print("checkout", &status.to_string());
    let session_id = session["session_id"].as_str().unwrap_or_default().to_owned();

    // The customer pays; the simulator delivers checkout.session.completed
    // (signed) to the gateway and answers once the webhook has answered.
    let paid = http
        .post(format!("{sim}/_sim/checkout/sessions/{session_id}/complete?deliveries=1"))
        .send()
        .await
        .expect("pay the session");
    let (_, paid) = status_and_json(paid).await;
    let delivered = paid["deliveries"].as_array().and_then(|d| d.first()).and_then(Value::as_u64).unwrap_or(0);
    counted.print("confirm (webhook, paid)", &delivered.to_string());

    let r = http.get(format!("{base}/v1/reservations/{id}")).bearer_auth(&secret).send().await.expect("status");
    let (status, _) = status_and_json(r).await;
    counted.print("reservation status", &status.to_string());
    let r = http.post(format!("{base}/v1/bookings/{id}/cancel")).bearer_auth(&secret).send().await.expect("cancel");
    let (status, _) = status_and_json(r).await;
    counted.print("cancel (customer, refund)", &status.to_string());

    let (from, to) = (slotguard::domain::rfc3339(day), slotguard::domain::rfc3339(day + chrono::Duration::days(1)));
    let r = http
        .get(format!("{base}/v1/resources/flows/slots"))
        .query(&[("from", &from), ("to", &to)])
        .send()
        .await
        .expect("availability");
    let (status, _) = status_and_json(r).await;
    counted.print("availability, 1 day", &status.to_string());
}
