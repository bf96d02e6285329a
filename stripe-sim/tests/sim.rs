//! Drives the simulator with the real async-stripe client and verifies its
//! webhooks with the real `Webhook::construct_event`: if the simulator's
//! shapes or signatures drifted from what the library expects, these fail.

use serde_json::Value;
use slotguard_serve::{BodyExt, Bytes, Full, Incoming, Request, Response, StatusCode};
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use stripe::{
    ApiErrorsCode, ApiErrorsType, Client, ClientBuilder, IdempotencyKey, RequestStrategy, StripeError, StripeRequest,
};
use stripe_checkout::checkout_session::{
    CreateCheckoutSession, CreateCheckoutSessionLineItems, CreateCheckoutSessionLineItemsPriceData,
    CreateCheckoutSessionPaymentIntentData, ExpireCheckoutSession, ProductData, RetrieveCheckoutSession,
};
use stripe_checkout::{CheckoutSession, CheckoutSessionMode, CheckoutSessionPaymentStatus, CheckoutSessionStatus};
use stripe_core::Refund;
use stripe_core::RefundReason;
use stripe_core::refund::{CreateRefund, CreateRefundReason, ListRefund, RetrieveRefund};
use stripe_sim::SimConfig;
use stripe_types::Currency;
use stripe_webhook::{EventObject, EventType, Webhook};
use tokio::net::TcpListener;

const SECRET: &str = "whsec_test_sim_secret";

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// What the webhook receiver saw in one verified delivery.
#[derive(Debug, Clone)]
struct Delivery {
    event_id: String,
    type_: EventType,
    api_version: Option<String>,
    session: CheckoutSession,
    /// The body exactly as posted.
    body: String,
}

/// A webhook endpoint that verifies every delivery as product code would.
#[derive(Clone)]
struct Receiver {
    url: String,
    verified: Arc<Mutex<Vec<Delivery>>>,
    rejected: Arc<Mutex<Vec<String>>>,
    /// What verified deliveries are answered.
    status: Arc<AtomicU16>,
}

impl Receiver {
    async fn start(secret: &'static str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let receiver = Receiver {
            url: format!("http://{}/webhooks/stripe", listener.local_addr().unwrap()),
            verified: Arc::default(),
            rejected: Arc::default(),
            status: Arc::new(AtomicU16::new(200)),
        };
        let shared = receiver.clone();
        let handler = move |req| {
            let shared = shared.clone();
            async move {
                let status = shared.receive(req, secret).await;
                let mut response = Response::new(Full::new(Bytes::new()));
                *response.status_mut() = StatusCode::from_u16(status).unwrap();
                Ok::<_, Infallible>(response)
            }
        };
        tokio::spawn(slotguard_serve::serve(listener, handler, std::future::pending()));
        receiver
    }

    async fn receive(&self, req: Request<Incoming>, secret: &str) -> u16 {
        let content_type = req.headers().get("content-type").cloned();
        let signature = req.headers().get("stripe-signature").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        let body = req.into_body().collect().await.unwrap().to_bytes();
        let body = String::from_utf8(body.to_vec()).unwrap();
        assert!(
            content_type.and_then(|c| c.to_str().ok().map(|c| c.starts_with("application/json"))).unwrap_or(false),
            "deliveries are JSON"
        );
        match Webhook::construct_event(&body, &signature, secret) {
            Ok(event) => {
                let session = match event.data.object {
                    EventObject::CheckoutSessionCompleted(s)
                    | EventObject::CheckoutSessionAsyncPaymentSucceeded(s)
                    | EventObject::CheckoutSessionAsyncPaymentFailed(s)
                    | EventObject::CheckoutSessionExpired(s) => *s,
                    _ => panic!("unexpected event object for {}", event.type_),
                };
                self.verified.lock().unwrap().push(Delivery {
                    event_id: event.id.as_str().to_owned(),
                    type_: event.type_,
                    api_version: event.api_version.map(|v| v.as_str().to_owned()),
                    session,
                    body,
                });
                self.status.load(Ordering::SeqCst)
            }
            Err(e) => {
                self.rejected.lock().unwrap().push(e.to_string());
                400
            }
        }
    }

    fn deliveries(&self) -> Vec<Delivery> {
        self.verified.lock().unwrap().clone()
    }

    async fn wait_for(&self, count: usize) -> Vec<Delivery> {
        for _ in 0..200 {
            let got = self.deliveries();
            if got.len() >= count {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("expected {count} deliveries, got {:?}", self.deliveries());
    }
}

/// A running simulator and clients for it.
struct Sim {
    base: String,
    client: Client,
    http: reqwest::Client,
}

impl Sim {
    async fn start(webhook_url: Option<String>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let config = SimConfig { webhook_url, webhook_secret: SECRET.into(), ..SimConfig::default() };
        tokio::spawn(stripe_sim::serve(listener, config, std::future::pending()));
        let client = stripe_client("sk_test_simulated").url(base.clone()).build().unwrap();
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Sim { base, client, http }
    }

    async fn control(&self, method: &str, path: &str) -> (u16, Value) {
        let url = format!("{}{path}", self.base);
        let request = match method {
            "GET" => self.http.get(url),
            _ => self.http.post(url),
        };
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    async fn sessions(&self) -> Vec<Value> {
        let (status, body) = self.control("GET", "/_sim/checkout/sessions").await;
        assert_eq!(status, 200);
        body["sessions"].as_array().unwrap().clone()
    }

    async fn create(&self, request: &CreateCheckoutSession, key: &str) -> Result<CheckoutSession, StripeError> {
        request
            .customize()
            .request_strategy(RequestStrategy::Idempotent(IdempotencyKey::new(key).unwrap()))
            .send(&self.client)
            .await
    }

    async fn open_session(&self, reference: &str) -> CheckoutSession {
        self.create(&session_request(reference, now() + 3600), &format!("checkout-{reference}")).await.unwrap()
    }

    async fn complete(&self, id: &str, query: &str) -> (u16, Value) {
        self.control("POST", &format!("/_sim/checkout/sessions/{id}/complete{query}")).await
    }

    /// A session created and paid; its payment intent.
    async fn paid(&self, reference: &str) -> String {
        let session = self.open_session(reference).await;
        let (status, body) = self.complete(session.id.as_str(), "").await;
        assert_eq!(status, 200, "{body}");
        body["payment_intent"].as_str().unwrap().to_owned()
    }

    async fn refund(&self, request: &CreateRefund, key: &str) -> Result<Refund, StripeError> {
        request
            .customize()
            .request_strategy(RequestStrategy::Idempotent(IdempotencyKey::new(key).unwrap()))
            .send(&self.client)
            .await
    }

    async fn refunds(&self) -> Vec<Value> {
        let (status, body) = self.control("GET", "/_sim/refunds").await;
        assert_eq!(status, 200);
        body["refunds"].as_array().unwrap().clone()
    }

    async fn events(&self) -> Vec<Value> {
        let (status, body) = self.control("GET", "/_sim/events").await;
        assert_eq!(status, 200);
        body["events"].as_array().unwrap().clone()
    }

    /// A `/v1` GET with raw reqwest, for what async-stripe's enabled
    /// features do not cover (`ListEvent` needs async-stripe-core's `event`).
    async fn v1_get(&self, path_and_query: &str) -> (u16, Value) {
        let response = self
            .http
            .get(format!("{}{path_and_query}", self.base))
            .bearer_auth("sk_test_simulated")
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }
}

/// The ids of a list answer's elements, in order.
fn ids(list: &Value) -> Vec<String> {
    list["data"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_owned()).collect()
}

/// A session like slotguard's: one slot, EUR 45, reservation metadata.
fn session_request(reference: &str, expires_at: i64) -> CreateCheckoutSession {
    let mut price = CreateCheckoutSessionLineItemsPriceData::new(Currency::EUR);
    price.unit_amount = Some(4500);
    price.product_data = Some(ProductData::new("Coaching call, 23 Nov 09:00"));
    let mut item = CreateCheckoutSessionLineItems::new();
    item.price_data = Some(price);
    item.quantity = Some(1);
    let mut intent = CreateCheckoutSessionPaymentIntentData::new();
    intent.metadata = Some(HashMap::from([("reservation_id".into(), reference.into())]));
    CreateCheckoutSession::new()
        .mode(CheckoutSessionMode::Payment)
        .line_items(vec![item])
        .client_reference_id(reference)
        .customer_email("ada@example.com")
        .metadata(HashMap::from([
            ("reservation_id".to_string(), reference.to_string()),
            ("resource_id".to_string(), "demo".to_string()),
        ]))
        .expires_at(expires_at)
        .success_url("http://127.0.0.1:9/done?session_id={CHECKOUT_SESSION_ID}")
        .cancel_url("http://127.0.0.1:9/cancelled")
        .payment_intent_data(intent)
}

fn stripe_error(result: Result<impl std::fmt::Debug, StripeError>) -> (Box<stripe::ApiErrors>, u16) {
    match result {
        Err(StripeError::Stripe(error, status)) => (error, status),
        other => panic!("expected a Stripe error, got {other:?}"),
    }
}

fn pi_id(session: &CheckoutSession) -> Option<String> {
    session.payment_intent.as_ref().map(|p| p.id().as_str().to_owned())
}

#[tokio::test]
async fn create_retrieve_and_replay_a_session_with_the_real_client() {
    let sim = Sim::start(None).await;
    let expires_at = now() + 3600;
    let request = session_request("rsv_1", expires_at);

    let created = sim.create(&request, "checkout-rsv_1").await.unwrap();
    assert!(created.id.as_str().starts_with("cs_test_"));
    assert_eq!(created.status, Some(CheckoutSessionStatus::Open));
    assert_eq!(created.payment_status, CheckoutSessionPaymentStatus::Unpaid);
    assert_eq!(created.mode, CheckoutSessionMode::Payment);
    assert_eq!(created.amount_total, Some(4500));
    assert_eq!(created.currency, Some(Currency::EUR));
    assert_eq!(created.expires_at, expires_at);
    assert_eq!(created.client_reference_id.as_deref(), Some("rsv_1"));
    assert_eq!(created.customer_email.as_deref(), Some("ada@example.com"));
    assert!(created.payment_intent.is_none());
    assert!(!created.livemode);
    let metadata = created.metadata.clone().unwrap();
    assert_eq!(metadata["reservation_id"], "rsv_1");
    assert_eq!(metadata["resource_id"], "demo");
    assert_eq!(created.url.as_deref(), Some(format!("{}/c/pay/{}", sim.base, created.id.as_str()).as_str()));

    let fetched = RetrieveCheckoutSession::new(created.id.clone()).send(&sim.client).await.unwrap();
    assert_eq!(fetched.id, created.id);
    assert_eq!(fetched.expires_at, expires_at);
    assert_eq!(fetched.metadata, created.metadata);

    // The same key and parameters: the first answer again, nothing new made.
    let again = sim.create(&request, "checkout-rsv_1").await.unwrap();
    assert_eq!(again.id, created.id);
    let sessions = sim.sessions().await;
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0]["idempotency_key"], "checkout-rsv_1");
    assert_eq!(sessions[0]["create_responses"], 2);

    // The same key with other parameters is Stripe's idempotency_error.
    let other = session_request("rsv_2", expires_at);
    let (error, status) = stripe_error(sim.create(&other, "checkout-rsv_1").await);
    assert_eq!(status, 400);
    assert_eq!(error.type_, ApiErrorsType::IdempotencyError);
    assert_eq!(sim.sessions().await.len(), 1);

    let (error, status) = stripe_error(RetrieveCheckoutSession::new("cs_test_missing").send(&sim.client).await);
    assert_eq!(status, 404);
    assert_eq!(error.code, Some(ApiErrorsCode::ResourceMissing));
}

#[tokio::test]
async fn a_replay_is_byte_identical_and_marked() {
    let sim = Sim::start(None).await;
    let body = "line_items[0][price_data][currency]=eur&line_items[0][price_data][unit_amount]=4500\
        &line_items[0][price_data][product_data][name]=Slot&line_items[0][quantity]=1\
        &metadata[reservation_id]=rsv_raw&mode=payment";
    let post = |body: &'static str| {
        sim.http
            .post(format!("{}/v1/checkout/sessions", sim.base))
            .bearer_auth("sk_test_raw")
            .header("idempotency-key", "raw-key")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };
    let first = post(body).await.unwrap();
    assert_eq!(first.status(), 200);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first_request_id = first.headers()["request-id"].clone();
    let first_body = first.text().await.unwrap();

    let second = post(body).await.unwrap();
    assert_eq!(second.status(), 200);
    assert_eq!(second.headers()["idempotent-replayed"], "true");
    assert_eq!(second.headers()["request-id"], first_request_id);
    assert_eq!(second.text().await.unwrap(), first_body);

    // Same parameters in another order are the same parameters.
    let reordered = "mode=payment&metadata[reservation_id]=rsv_raw\
        &line_items[0][quantity]=1&line_items[0][price_data][product_data][name]=Slot\
        &line_items[0][price_data][unit_amount]=4500&line_items[0][price_data][currency]=eur";
    let third = post(reordered).await.unwrap();
    assert_eq!(third.headers()["idempotent-replayed"], "true");

    let changed = post(
        "line_items[0][price_data][currency]=eur&line_items[0][price_data][unit_amount]=1\
        &line_items[0][price_data][product_data][name]=Slot&line_items[0][quantity]=1",
    )
    .await
    .unwrap();
    assert_eq!(changed.status(), 400);
    let error: Value = changed.json().await.unwrap();
    assert_eq!(error["error"]["type"], "idempotency_error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_with_one_key_make_one_session() {
    let sim = Arc::new(Sim::start(None).await);
    let request = session_request("rsv_race", now() + 3600);
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (sim, request) = (sim.clone(), request.clone());
            tokio::spawn(async move { sim.create(&request, "race-key").await.unwrap().id })
        })
        .collect();
    let mut ids = Vec::new();
    for task in tasks {
        ids.push(task.await.unwrap());
    }
    assert!(ids.iter().all(|id| *id == ids[0]));
    let sessions = sim.sessions().await;
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0]["create_responses"], 20);
}

#[tokio::test]
async fn expires_at_must_be_30_minutes_to_24_hours_ahead() {
    let sim = Sim::start(None).await;
    for (offset, key) in [(10 * 60, "too-soon"), (25 * 3600, "too-late")] {
        let (error, status) = stripe_error(sim.create(&session_request("rsv_x", now() + offset), key).await);
        assert_eq!(status, 400, "{key}");
        assert_eq!(error.type_, ApiErrorsType::InvalidRequestError);
        assert_eq!(error.param.as_deref(), Some("expires_at"));
    }
    assert!(sim.sessions().await.is_empty());
    // A failed validation saves nothing: the key works once fixed.
    let fixed = sim.create(&session_request("rsv_x", now() + 31 * 60), "too-soon").await;
    assert!(fixed.is_ok());
    // Both bounds are inside the window.
    assert!(sim.create(&session_request("rsv_y", now() + 23 * 3600), "late-ok").await.is_ok());
}

#[tokio::test]
async fn requests_without_an_api_key_are_401() {
    let sim = Sim::start(None).await;
    let url = format!("{}/v1/checkout/sessions/cs_test_x", sim.base);
    for auth in [None, Some("Bearer "), Some("Basic OnNlY3JldA=="), Some("Token sk_test_x")] {
        let mut request = sim.http.get(&url);
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401, "{auth:?}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["type"], "invalid_request_error");
    }
    let (error, status) = stripe_error(
        RetrieveCheckoutSession::new("cs_test_x").send(&stripe_client("").url(sim.base.clone()).build().unwrap()).await,
    );
    assert_eq!(status, 401);
    assert_eq!(error.type_, ApiErrorsType::InvalidRequestError);
    // `curl -u sk_test_...:` as in Stripe's docs: past auth, to a 404.
    let response = sim.http.get(&url).basic_auth("sk_test_x", None::<&str>).send().await.unwrap();
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn an_unreachable_endpoint_is_recorded_as_0() {
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/webhooks/stripe", closed.local_addr().unwrap());
    drop(closed);
    let sim = Sim::start(Some(url)).await;
    let session = sim.open_session("rsv_nowhere").await;
    let (status, body) = sim.complete(session.id.as_str(), "?deliveries=2").await;
    assert_eq!(status, 200);
    assert_eq!(body["deliveries"], serde_json::json!([0, 0]));
    let (_, events) = sim.control("GET", "/_sim/events").await;
    assert_eq!(events["events"][0]["deliveries"], serde_json::json!([0, 0]));
}

#[tokio::test]
async fn completion_delivers_a_signed_event_the_library_verifies() {
    let receiver = Receiver::start(SECRET).await;
    let sim = Sim::start(Some(receiver.url.clone())).await;
    let session = sim.open_session("rsv_paid").await;
    let id = session.id.as_str();

    let (status, body) = sim.complete(id, "").await;
    assert_eq!(status, 200);
    assert_eq!(body["deliveries"], serde_json::json!([200]));
    let pi = body["payment_intent"].as_str().unwrap().to_owned();
    assert!(pi.starts_with("pi_"));

    let got = receiver.deliveries();
    assert_eq!(got.len(), 1);
    let delivery = &got[0];
    assert_eq!(delivery.event_id, body["event_id"].as_str().unwrap());
    assert_eq!(delivery.type_, EventType::CheckoutSessionCompleted);
    assert_eq!(delivery.api_version.as_deref(), Some(stripe_shared::version::VERSION.as_str()));
    assert_eq!(delivery.session.id.as_str(), id);
    assert_eq!(delivery.session.status, Some(CheckoutSessionStatus::Complete));
    assert_eq!(delivery.session.payment_status, CheckoutSessionPaymentStatus::Paid);
    assert_eq!(pi_id(&delivery.session), Some(pi.clone()));
    assert_eq!(delivery.session.metadata.as_ref().unwrap()["reservation_id"], "rsv_paid");
    assert_eq!(delivery.session.client_reference_id.as_deref(), Some("rsv_paid"));

    let fetched = RetrieveCheckoutSession::new(id).send(&sim.client).await.unwrap();
    assert_eq!(fetched.status, Some(CheckoutSessionStatus::Complete));
    assert_eq!(fetched.payment_status, CheckoutSessionPaymentStatus::Paid);
    assert_eq!(pi_id(&fetched), Some(pi));
    assert_eq!(fetched.url, None);

    let (status, _) = sim.complete(id, "").await;
    assert_eq!(status, 409);
    assert_eq!(receiver.deliveries().len(), 1);
}

#[tokio::test]
async fn duplicate_deliveries_and_redelivery_keep_the_event_id() {
    let receiver = Receiver::start(SECRET).await;
    let sim = Sim::start(Some(receiver.url.clone())).await;
    let session = sim.open_session("rsv_dup").await;

    let (status, body) = sim.complete(session.id.as_str(), "?deliveries=3").await;
    assert_eq!(status, 200);
    assert_eq!(body["deliveries"], serde_json::json!([200, 200, 200]));
    let event_id = body["event_id"].as_str().unwrap().to_owned();
    let got = receiver.deliveries();
    assert_eq!(got.len(), 3);
    assert!(got.iter().all(|d| d.event_id == event_id));

    // The endpoint fails, then Stripe retries the same event.
    receiver.status.store(500, Ordering::SeqCst);
    let (status, body) = sim.control("POST", &format!("/_sim/events/{event_id}/redeliver")).await;
    assert_eq!(status, 200);
    assert_eq!(body["deliveries"], serde_json::json!([500]));
    receiver.status.store(200, Ordering::SeqCst);
    let (_, body) = sim.control("POST", &format!("/_sim/events/{event_id}/redeliver?deliveries=2")).await;
    assert_eq!(body["event_id"], event_id.as_str());
    assert_eq!(body["payment_intent"], pi_id(&receiver.deliveries()[0].session).unwrap().as_str());
    assert_eq!(body["deliveries"], serde_json::json!([200, 200]));
    let got = receiver.deliveries();
    assert_eq!(got.len(), 6);
    assert!(got.iter().all(|d| d.event_id == event_id));

    let (_, events) = sim.control("GET", "/_sim/events").await;
    let events = events["events"].as_array().unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["type"], "checkout.session.completed");
    assert_eq!(events[0]["session_id"], session.id.as_str());
    let mut statuses: Vec<u64> =
        events[0]["deliveries"].as_array().unwrap().iter().map(|s| s.as_u64().unwrap()).collect();
    statuses.sort();
    assert_eq!(statuses, [200, 200, 200, 200, 200, 500]);

    let (status, _) = sim.control("POST", "/_sim/events/evt_missing/redeliver").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_wrong_secret_fails_verification() {
    let receiver = Receiver::start("whsec_some_other_secret").await;
    let sim = Sim::start(Some(receiver.url.clone())).await;
    let session = sim.open_session("rsv_badsig").await;
    let (_, body) = sim.complete(session.id.as_str(), "").await;
    assert_eq!(body["deliveries"], serde_json::json!([400]));
    assert!(receiver.deliveries().is_empty());
    assert_eq!(receiver.rejected.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn delayed_payments_succeed_or_fail_later() {
    let receiver = Receiver::start(SECRET).await;
    let sim = Sim::start(Some(receiver.url.clone())).await;

    let a = sim.open_session("rsv_async_ok").await;
    let (status, body) = sim.complete(a.id.as_str(), "?async=true").await;
    assert_eq!(status, 200);
    let pi = body["payment_intent"].as_str().unwrap().to_owned();
    let completed = receiver.deliveries().pop().unwrap();
    assert_eq!(completed.type_, EventType::CheckoutSessionCompleted);
    assert_eq!(completed.session.status, Some(CheckoutSessionStatus::Complete));
    assert_eq!(completed.session.payment_status, CheckoutSessionPaymentStatus::Unpaid);
    assert_eq!(pi_id(&completed.session), Some(pi.clone()));

    // Not paid yet: nothing to refund.
    let (error, status) = stripe_error(CreateRefund::new().payment_intent(pi.as_str()).send(&sim.client).await);
    assert_eq!(status, 400);
    assert_eq!(error.type_, ApiErrorsType::InvalidRequestError);

    let (status, body) =
        sim.control("POST", &format!("/_sim/checkout/sessions/{}/async_payment?result=succeeded", a.id.as_str())).await;
    assert_eq!(status, 200);
    assert_eq!(body["payment_intent"], pi.as_str());
    assert_eq!(body["deliveries"], serde_json::json!([200]));
    let settled = receiver.deliveries().pop().unwrap();
    assert_eq!(settled.type_, EventType::CheckoutSessionAsyncPaymentSucceeded);
    assert_eq!(settled.session.payment_status, CheckoutSessionPaymentStatus::Paid);
    assert_eq!(settled.session.id, a.id);
    let fetched = RetrieveCheckoutSession::new(a.id.clone()).send(&sim.client).await.unwrap();
    assert_eq!(fetched.payment_status, CheckoutSessionPaymentStatus::Paid);

    // Settled once only.
    let (status, _) =
        sim.control("POST", &format!("/_sim/checkout/sessions/{}/async_payment?result=failed", a.id.as_str())).await;
    assert_eq!(status, 409);

    let b = sim.open_session("rsv_async_fail").await;
    // Not async-completed: nothing to settle.
    let (status, _) =
        sim.control("POST", &format!("/_sim/checkout/sessions/{}/async_payment?result=failed", b.id.as_str())).await;
    assert_eq!(status, 409);
    sim.complete(b.id.as_str(), "?async=true").await;
    let (status, _) =
        sim.control("POST", &format!("/_sim/checkout/sessions/{}/async_payment?result=failed", b.id.as_str())).await;
    assert_eq!(status, 200);
    let failed = receiver.deliveries().pop().unwrap();
    assert_eq!(failed.type_, EventType::CheckoutSessionAsyncPaymentFailed);
    assert_eq!(failed.session.id, b.id);
    assert_eq!(failed.session.payment_status, CheckoutSessionPaymentStatus::Unpaid);
    assert_eq!(receiver.deliveries().len(), 4);
}

#[tokio::test]
async fn expiring_emits_checkout_session_expired() {
    let receiver = Receiver::start(SECRET).await;
    let sim = Sim::start(Some(receiver.url.clone())).await;

    let a = sim.open_session("rsv_exp_a").await;
    let (status, body) = sim.control("POST", &format!("/_sim/checkout/sessions/{}/expire", a.id.as_str())).await;
    assert_eq!(status, 200);
    assert_eq!(body["payment_intent"], Value::Null);
    assert_eq!(body["deliveries"], serde_json::json!([200]));
    let expired = receiver.deliveries().pop().unwrap();
    assert_eq!(expired.type_, EventType::CheckoutSessionExpired);
    assert_eq!(expired.session.id, a.id);
    assert_eq!(expired.session.status, Some(CheckoutSessionStatus::Expired));
    assert_eq!(expired.session.payment_status, CheckoutSessionPaymentStatus::Unpaid);
    let (status, _) = sim.complete(a.id.as_str(), "").await;
    assert_eq!(status, 409);

    // Through the API, as product code would cancel a hold: the event
    // follows in the background, as from Stripe.
    let b = sim.open_session("rsv_exp_b").await;
    let expired = ExpireCheckoutSession::new(b.id.clone()).send(&sim.client).await.unwrap();
    assert_eq!(expired.status, Some(CheckoutSessionStatus::Expired));
    let got = receiver.wait_for(2).await;
    assert_eq!(got[1].type_, EventType::CheckoutSessionExpired);
    assert_eq!(got[1].session.id, b.id);

    let (error, status) = stripe_error(ExpireCheckoutSession::new(b.id.clone()).send(&sim.client).await);
    assert_eq!(status, 400);
    assert_eq!(error.type_, ApiErrorsType::InvalidRequestError);
}

#[tokio::test]
async fn a_delayed_completion_answers_202_and_delivers_later() {
    let receiver = Receiver::start(SECRET).await;
    let sim = Sim::start(Some(receiver.url.clone())).await;
    let session = sim.open_session("rsv_late").await;
    let (status, body) = sim.complete(session.id.as_str(), "?delay_ms=1000").await;
    assert_eq!(status, 202);
    assert_eq!(body["deliveries"], serde_json::json!([]));
    // The session is already complete; only the webhook is late.
    let fetched = RetrieveCheckoutSession::new(session.id.clone()).send(&sim.client).await.unwrap();
    assert_eq!(fetched.status, Some(CheckoutSessionStatus::Complete));
    assert!(receiver.deliveries().is_empty());
    let got = receiver.wait_for(1).await;
    assert_eq!(got[0].event_id, body["event_id"].as_str().unwrap());
}

#[tokio::test]
async fn refunds_are_idempotent_and_bounded_by_the_payment() {
    let sim = Sim::start(None).await;
    let session = sim.open_session("rsv_refund").await;
    let (_, body) = sim.complete(session.id.as_str(), "").await;
    let pi = body["payment_intent"].as_str().unwrap().to_owned();

    let request = CreateRefund::new()
        .payment_intent(pi.as_str())
        .amount(1000)
        .reason(CreateRefundReason::RequestedByCustomer)
        .metadata(HashMap::from([("reservation_id".to_string(), "rsv_refund".to_string())]));
    let send = || {
        request
            .customize()
            .request_strategy(RequestStrategy::Idempotent(IdempotencyKey::new("refund-rsv_refund").unwrap()))
            .send(&sim.client)
    };
    let first = send().await.unwrap();
    let second = send().await.unwrap();
    assert_eq!(first.id, second.id);
    assert!(first.id.as_str().starts_with("re_"));
    assert_eq!(first.amount, 1000);
    assert_eq!(first.currency, Currency::EUR);
    assert_eq!(first.status.as_deref(), Some("succeeded"));
    assert_eq!(first.reason, Some(RefundReason::RequestedByCustomer));
    assert_eq!(first.payment_intent.as_ref().map(|p| p.id().as_str().to_owned()), Some(pi.clone()));
    assert_eq!(first.metadata.as_ref().unwrap()["reservation_id"], "rsv_refund");

    let (_, refunds) = sim.control("GET", "/_sim/refunds").await;
    let refunds = refunds["refunds"].as_array().unwrap();
    assert_eq!(refunds.len(), 1);
    assert_eq!(refunds[0]["idempotency_key"], "refund-rsv_refund");
    assert_eq!(refunds[0]["amount"], 1000);
    assert_eq!(refunds[0]["payment_intent"], pi.as_str());

    // Without an amount: the rest.
    let rest = CreateRefund::new().payment_intent(pi.as_str()).send(&sim.client).await.unwrap();
    assert_eq!(rest.amount, 3500);

    let listed = ListRefund::new().payment_intent(pi.as_str()).send(&sim.client).await.unwrap();
    assert_eq!(listed.data.len(), 2);
    assert!(!listed.has_more);
    assert_eq!(listed.url, "/v1/refunds");
    // Newest first.
    assert_eq!(listed.data[0].id, rest.id);
    let page = ListRefund::new().payment_intent(pi.as_str()).limit(1).send(&sim.client).await.unwrap();
    assert_eq!(page.data.len(), 1);
    assert!(page.has_more);

    let fetched = RetrieveRefund::new(first.id.clone()).send(&sim.client).await.unwrap();
    assert_eq!(fetched.amount, 1000);

    let (error, status) =
        stripe_error(CreateRefund::new().payment_intent(pi.as_str()).amount(1).send(&sim.client).await);
    assert_eq!(status, 400);
    assert_eq!(error.code, Some(ApiErrorsCode::ChargeAlreadyRefunded));

    let other = sim.open_session("rsv_refund_2").await;
    let (_, body) = sim.complete(other.id.as_str(), "").await;
    let other_pi = body["payment_intent"].as_str().unwrap();
    let (error, status) =
        stripe_error(CreateRefund::new().payment_intent(other_pi).amount(4501).send(&sim.client).await);
    assert_eq!(status, 400);
    assert_eq!(error.code, Some(ApiErrorsCode::AmountTooLarge));

    let (error, status) = stripe_error(CreateRefund::new().payment_intent("pi_unknown").send(&sim.client).await);
    assert_eq!(status, 400);
    assert_eq!(error.code, Some(ApiErrorsCode::ResourceMissing));
    let (_, refunds) = sim.control("GET", "/_sim/refunds").await;
    assert_eq!(refunds["refunds"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn an_injected_outage_fails_requests_then_clears() {
    let sim = Sim::start(None).await;
    let request = session_request("rsv_outage", now() + 3600);

    let (status, _) = sim.control("POST", "/_sim/fail?status=500&count=1").await;
    assert_eq!(status, 200);
    let (error, status) = stripe_error(sim.create(&request, "outage-key").await);
    assert_eq!(status, 500);
    assert_eq!(error.type_, ApiErrorsType::ApiError);
    assert!(sim.sessions().await.is_empty());
    // The failed attempt saved nothing under the key: the retry executes.
    let session = sim.create(&request, "outage-key").await.unwrap();
    let sessions = sim.sessions().await;
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0]["id"], session.id.as_str());
    assert_eq!(sessions[0]["create_responses"], 1);

    // async-stripe's Retry strategy resends after a 5xx. (Without its `uuid`
    // feature it sends no idempotency key at all, so only the injected
    // failures, which never execute, make this safe.)
    sim.control("POST", "/_sim/fail?status=503&count=2").await;
    let retried = session_request("rsv_retry", now() + 3600)
        .customize()
        .request_strategy(RequestStrategy::Retry(3))
        .send(&sim.client)
        .await
        .unwrap();
    let sessions = sim.sessions().await;
    assert_eq!(sessions.len(), 2);
    assert_eq!(sessions[1]["id"], retried.id.as_str());

    sim.control("POST", "/_sim/fail?count=5").await;
    let (status, body) = sim.control("POST", "/_sim/fail?count=0").await;
    assert_eq!(status, 200);
    assert_eq!(body["remaining"], 0);
    assert!(RetrieveCheckoutSession::new(session.id.clone()).send(&sim.client).await.is_ok());
}

#[tokio::test]
async fn the_hosted_page_pays_and_cancels() {
    let receiver = Receiver::start(SECRET).await;
    let sim = Sim::start(Some(receiver.url.clone())).await;
    let session = sim.open_session("rsv_page").await;
    let url = session.url.clone().unwrap();

    let page = sim.http.get(&url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("Coaching call, 23 Nov 09:00"));
    assert!(html.contains("45.00 EUR"));

    let cancelled = sim.http.post(format!("{url}/cancel")).send().await.unwrap();
    assert_eq!(cancelled.status(), 303);
    assert_eq!(cancelled.headers()["location"], "http://127.0.0.1:9/cancelled");
    let fetched = RetrieveCheckoutSession::new(session.id.clone()).send(&sim.client).await.unwrap();
    assert_eq!(fetched.status, Some(CheckoutSessionStatus::Open));
    assert!(receiver.deliveries().is_empty());

    let paid = sim.http.post(format!("{url}/pay")).send().await.unwrap();
    assert_eq!(paid.status(), 303);
    assert_eq!(
        paid.headers()["location"].to_str().unwrap(),
        format!("http://127.0.0.1:9/done?session_id={}", session.id.as_str())
    );
    // The one delivery happened before the redirect.
    let got = receiver.deliveries();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].type_, EventType::CheckoutSessionCompleted);
    assert_eq!(got[0].session.payment_status, CheckoutSessionPaymentStatus::Paid);

    let again = sim.http.post(format!("{url}/pay")).send().await.unwrap();
    assert_eq!(again.status(), 409);
    assert_eq!(sim.http.get(&url).send().await.unwrap().status(), 410);
}

#[tokio::test]
async fn the_client_url_is_the_origin_with_or_without_a_slash() {
    let sim = Sim::start(None).await;
    let session = sim.open_session("rsv_url").await;
    let slash = stripe_client("sk_test_x").url(format!("{}/", sim.base)).build().unwrap();
    assert!(RetrieveCheckoutSession::new(session.id.clone()).send(&slash).await.is_ok());
    // With `/v1` the client asks for `/v1v1/...`, which does not exist.
    let v1 = stripe_client("sk_test_x").url(format!("{}/v1", sim.base)).build().unwrap();
    let (error, status) = stripe_error(RetrieveCheckoutSession::new(session.id.clone()).send(&v1).await);
    assert_eq!(status, 404);
    let message = error.message.unwrap();
    assert!(message.contains("/v1v1/checkout/sessions/"), "{message}");
    assert!(message.contains("without /v1"), "{message}");
}

#[tokio::test]
async fn unsupported_parameters_are_rejected_loudly() {
    let sim = Sim::start(None).await;
    let response = sim
        .http
        .post(format!("{}/v1/checkout/sessions", sim.base))
        .bearer_auth("sk_test_x")
        .body("mode=payment&line_items[0][price]=price_123&line_items[0][quantity]=1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "parameter_unknown");
    assert_eq!(body["error"]["param"], "line_items[0][price]");

    let response = sim
        .http
        .get(format!("{}/v1/checkout/sessions/cs_test_x?expand[]=payment_intent", sim.base))
        .bearer_auth("sk_test_x")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert!(sim.sessions().await.is_empty());
}

/// A Stripe client builder with the process's TLS crypto provider settled:
/// in a workspace build rustls has both aws-lc-rs and ring compiled in and
/// will not pick one itself.
fn stripe_client(key: &str) -> ClientBuilder {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    ClientBuilder::new(key)
}

#[tokio::test]
async fn the_clock_route_moves_expiry_creation_and_timestamps_but_not_signatures() {
    let receiver = Receiver::start(SECRET).await;
    let sim = Sim::start(Some(receiver.url.clone())).await;
    let (status, clock) = sim.control("GET", "/_sim/clock").await;
    assert_eq!(status, 200);
    assert_eq!(clock["offset_secs"], 0);

    // A session with 40 minutes to go; the clock moves an hour on: it expires
    // at once (not a sweep tick later) and its event is delivered, signed on
    // the real clock so the receiver's 300 s tolerance still accepts it.
    let a = sim.create(&session_request("rsv_clock_a", now() + 40 * 60), "clock-a").await.unwrap();
    let (status, moved) = sim.control("POST", "/_sim/clock?advance_secs=3600").await;
    assert_eq!(status, 200, "{moved}");
    assert_eq!(moved["offset_secs"], 3600);
    assert!((moved["now"].as_i64().unwrap() - (now() + 3600)).abs() <= 2, "{moved}");
    assert_eq!(moved["expired"].as_array().unwrap().len(), 1, "{moved}");
    assert_eq!(moved["deliveries"], serde_json::json!([200]));
    let expired = receiver.deliveries().pop().unwrap();
    assert_eq!(expired.type_, EventType::CheckoutSessionExpired);
    assert_eq!(expired.session.id, a.id);
    assert_eq!(sim.complete(a.id.as_str(), "").await.0, 409, "an expired session cannot be paid");

    // Creation is judged by the simulator's clock: 40 minutes of real time
    // ahead is now in its past, 1 h 40 min ahead is 40 minutes ahead of it.
    let (error, status) = stripe_error(sim.create(&session_request("rsv_clock_b", now() + 40 * 60), "clock-b").await);
    assert_eq!(status, 400);
    assert_eq!(error.param.as_deref(), Some("expires_at"));
    let c = sim.create(&session_request("rsv_clock_c", now() + 3600 + 40 * 60), "clock-c").await.unwrap();
    assert!((c.created - (now() + 3600)).abs() <= 2, "created on the simulator's clock");
    let (status, paid) = sim.complete(c.id.as_str(), "").await;
    assert_eq!(status, 200, "{paid}");
    assert_eq!(paid["deliveries"], serde_json::json!([200]), "signed on the real clock");
    let (_, events) = sim.control("GET", "/_sim/events").await;
    let completed = events["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(completed["type"], "checkout.session.completed");
    assert!((completed["created"].as_i64().unwrap() - (now() + 3600)).abs() <= 2, "{completed}");
    let refund = CreateRefund::new().payment_intent(paid["payment_intent"].as_str().unwrap()).send(&sim.client).await;
    assert!((refund.unwrap().created - (now() + 3600)).abs() <= 2, "refunds too");

    // Stepping back onto a caller's clock is allowed; nonsense is not.
    let (status, back) = sim.control("POST", "/_sim/clock?advance_secs=-3600").await;
    assert_eq!(status, 200);
    assert_eq!(back["offset_secs"], 0);
    assert_eq!(back["expired"], serde_json::json!([]));
    for bad in ["", "?advance_secs=soon", "?advance_secs=99999999999"] {
        let (status, body) = sim.control("POST", &format!("/_sim/clock{bad}")).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
}

#[tokio::test]
async fn the_clock_can_start_ahead() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let config = SimConfig { clock_offset_secs: 86_400, ..SimConfig::default() };
    tokio::spawn(stripe_sim::serve(listener, config, std::future::pending()));
    let clock: Value = reqwest::get(format!("{base}/_sim/clock")).await.unwrap().json().await.unwrap();
    assert_eq!(clock["offset_secs"], 86_400);
    assert!((clock["now"].as_i64().unwrap() - (now() + 86_400)).abs() <= 2);
}

#[tokio::test]
async fn events_are_listed_newest_first_in_pages_as_delivered() {
    let receiver = Receiver::start(SECRET).await;
    let sim = Sim::start(Some(receiver.url.clone())).await;
    // Twelve events, more than a default page, in two batches 1000 s apart on
    // the simulator's clock: every third session expires, the rest are paid.
    for i in 0..12 {
        if i == 6 {
            assert_eq!(sim.control("POST", "/_sim/clock?advance_secs=1000").await.0, 200);
        }
        let session = sim.open_session(&format!("rsv_list_{i}")).await;
        let (status, _) = if i % 3 == 2 {
            sim.control("POST", &format!("/_sim/checkout/sessions/{}/expire", session.id.as_str())).await
        } else {
            sim.complete(session.id.as_str(), "").await
        };
        assert_eq!(status, 200);
    }
    let recorded = sim.events().await;
    let mut newest_first: Vec<String> = recorded.iter().map(|e| e["id"].as_str().unwrap().to_owned()).collect();
    newest_first.reverse();

    let (status, first) = sim.v1_get("/v1/events").await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["object"], "list");
    assert_eq!(first["url"], "/v1/events");
    assert_eq!(first["has_more"], true);
    assert_eq!(ids(&first), newest_first[..10]);
    let last = newest_first[9].clone();
    let (_, second) = sim.v1_get(&format!("/v1/events?starting_after={last}")).await;
    assert_eq!(second["has_more"], false);
    assert_eq!(ids(&second), newest_first[10..]);
    // Backwards from the second page: the three just before it, newest first.
    let (_, back) = sim.v1_get(&format!("/v1/events?ending_before={}&limit=3", newest_first[10])).await;
    assert_eq!(ids(&back), newest_first[7..10]);
    assert_eq!(back["has_more"], true);
    let (_, top) = sim.v1_get(&format!("/v1/events?ending_before={}&limit=3", newest_first[2])).await;
    assert_eq!(ids(&top), newest_first[..2]);
    assert_eq!(top["has_more"], false);
    // Walking pages of 5 visits every event once.
    let mut walked = Vec::new();
    let mut query = "/v1/events?limit=5".to_owned();
    loop {
        let (_, page) = sim.v1_get(&query).await;
        walked.extend(ids(&page));
        if page["has_more"] == false {
            break;
        }
        query = format!("/v1/events?limit=5&starting_after={}", walked.last().unwrap());
    }
    assert_eq!(walked, newest_first);

    // Each element is the delivered JSON, byte for byte, and settles through
    // the library's webhook parser like a delivery.
    let (_, all) = sim.v1_get("/v1/events?limit=100").await;
    let delivered = receiver.deliveries();
    assert_eq!(delivered.len(), 12);
    for element in all["data"].as_array().unwrap() {
        let text = element.to_string();
        let id = element["id"].as_str().unwrap();
        let delivery = delivered.iter().find(|d| d.event_id == id).unwrap();
        assert_eq!(text, delivery.body);
        let signature = Webhook::generate_test_header(&text, SECRET, None);
        let event = Webhook::construct_event(&text, &signature, SECRET).unwrap();
        assert_eq!(event.id.as_str(), id);
        let (_, single) = sim.v1_get(&format!("/v1/events/{id}")).await;
        assert_eq!(&single, element);
    }

    // Filters: by exact type, by wildcard, by a list of types, by creation.
    let of_type = |list: &Value, type_: &str| list["data"].as_array().unwrap().iter().all(|e| e["type"] == type_);
    let (_, expired) = sim.v1_get("/v1/events?type=checkout.session.expired").await;
    assert_eq!(ids(&expired).len(), 4);
    assert!(of_type(&expired, "checkout.session.expired"));
    let (_, wildcard) = sim.v1_get("/v1/events?type=checkout.session.*&limit=100").await;
    assert_eq!(ids(&wildcard), newest_first);
    let (_, none) = sim.v1_get("/v1/events?type=charge.*").await;
    assert_eq!(ids(&none), Vec::<String>::new());
    let (_, listed) =
        sim.v1_get("/v1/events?types[]=checkout.session.completed&types[]=charge.refunded&limit=100").await;
    assert_eq!(ids(&listed).len(), 8);
    assert!(of_type(&listed, "checkout.session.completed"));
    let (_, indexed) = sim.v1_get("/v1/events?types[0]=checkout.session.expired&limit=2").await;
    assert_eq!(ids(&indexed), ids(&expired)[..2]);
    assert_eq!(indexed["has_more"], true);
    // A cursor need not match the filter: the page starts after it. (The
    // newest event expired a session, the one after it paid one.)
    assert_eq!(ids(&expired)[0], newest_first[0]);
    let (_, after_paid) =
        sim.v1_get(&format!("/v1/events?type=checkout.session.expired&starting_after={}", newest_first[1])).await;
    assert_eq!(ids(&after_paid), ids(&expired)[1..]);

    let split = recorded[6]["created"].as_i64().unwrap();
    assert!(split >= recorded[5]["created"].as_i64().unwrap() + 1000, "the clock moved between the batches");
    let (_, later) = sim.v1_get(&format!("/v1/events?created[gte]={split}&limit=100")).await;
    assert_eq!(ids(&later), newest_first[..6]);
    let (_, earlier) = sim.v1_get(&format!("/v1/events?created[lt]={split}&limit=100")).await;
    assert_eq!(ids(&earlier), newest_first[6..]);
    let (_, window) = sim.v1_get(&format!("/v1/events?created[gt]={}&created[lte]={split}&limit=100", split - 1)).await;
    assert!(!ids(&window).is_empty());
    assert!(window["data"].as_array().unwrap().iter().all(|e| e["created"] == split));
    let (_, exact) = sim.v1_get(&format!("/v1/events?created={split}&limit=100")).await;
    assert_eq!(ids(&exact), ids(&window));

    // What Stripe refuses.
    for (query, param) in [
        ("type=checkout.session.completed&types[]=checkout.session.expired", "types"),
        ("starting_after=evt_missing", "starting_after"),
        ("ending_before=evt_missing", "ending_before"),
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("delivery_success=false", "delivery_success"),
        ("created[after]=1", "created[after]"),
        ("created=yesterday", "created"),
    ] {
        let (status, body) = sim.v1_get(&format!("/v1/events?{query}")).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"]["type"], "invalid_request_error", "{query}");
        assert_eq!(body["error"]["param"], param, "{query}: {body}");
    }
    let (_, missing) = sim.v1_get("/v1/events?starting_after=evt_missing").await;
    assert_eq!(missing["error"]["code"], "resource_missing");
    let (_, unknown) = sim.v1_get("/v1/events?delivery_success=false").await;
    assert_eq!(unknown["error"]["code"], "parameter_unknown");
    let too_many: String = (0..21).map(|i| format!("types[]=t.{i}&")).collect();
    assert_eq!(sim.v1_get(&format!("/v1/events?{too_many}")).await.0, 400);
    let (status, _) =
        sim.v1_get(&format!("/v1/events?starting_after={}&ending_before={}", newest_first[1], newest_first[0])).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn an_idempotency_key_is_forgotten_after_24_hours_on_the_clock() {
    let sim = Sim::start(None).await;
    let pi = sim.paid("rsv_ttl").await;
    let request = CreateRefund::new().payment_intent(pi.as_str()).amount(1000);

    let first = sim.refund(&request, "refund-ttl").await.unwrap();
    // Within the day: a replay.
    sim.control("POST", "/_sim/clock?advance_secs=82800").await;
    assert_eq!(sim.refund(&request, "refund-ttl").await.unwrap().id, first.id);
    assert_eq!(sim.refunds().await.len(), 1);

    // 25 h after its first use Stripe has forgotten the key: the same POST is
    // a new request and refunds again.
    sim.control("POST", "/_sim/clock?advance_secs=7200").await;
    let second = sim.refund(&request, "refund-ttl").await.unwrap();
    assert_ne!(second.id, first.id);
    let refunds = sim.refunds().await;
    assert_eq!(refunds.len(), 2);
    assert_eq!(refunds[1]["idempotency_key"], "refund-ttl");
    // The key now names the second refund, for the next 24 h.
    assert_eq!(sim.refund(&request, "refund-ttl").await.unwrap().id, second.id);

    // Forgotten as if never seen: other parameters are no idempotency_error.
    let (status, body) = sim.control("POST", "/_sim/idempotency?ttl_secs=60").await;
    assert_eq!(status, 200);
    assert_eq!(body, serde_json::json!({"ttl_secs": 60}));
    sim.control("POST", "/_sim/clock?advance_secs=61").await;
    let other = CreateRefund::new().payment_intent(pi.as_str()).amount(500);
    let third = sim.refund(&other, "refund-ttl").await.unwrap();
    assert_eq!(third.amount, 500);

    // Forgetting every key at once.
    sim.control("POST", "/_sim/idempotency?ttl_secs=86400").await;
    let (_, clock) = sim.control("GET", "/_sim/clock").await;
    let sim_now = clock["now"].as_i64().unwrap();
    sim.create(&session_request("rsv_ttl_2", sim_now + 3600), "checkout-ttl-2").await.unwrap();
    let (status, body) = sim.control("POST", "/_sim/idempotency/forget").await;
    assert_eq!(status, 200);
    // refund-ttl, checkout-rsv_ttl (from `paid`), checkout-ttl-2.
    assert_eq!(body, serde_json::json!({"forgotten": 3}));
    let fourth = sim.refund(&other, "refund-ttl").await.unwrap();
    assert_ne!(fourth.id, third.id);
    assert_eq!(sim.refunds().await.len(), 4);
    assert_eq!(sim.control("POST", "/_sim/idempotency/forget").await.1, serde_json::json!({"forgotten": 1}));

    for bad in ["", "?ttl_secs=-1", "?ttl_secs=day"] {
        let (status, body) = sim.control("POST", &format!("/_sim/idempotency{bad}")).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
}

#[tokio::test]
async fn an_idempotency_ttl_can_be_configured() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let config = SimConfig { idempotency_ttl_secs: 0, ..SimConfig::default() };
    tokio::spawn(stripe_sim::serve(listener, config, std::future::pending()));
    let client = stripe_client("sk_test_simulated").url(base.clone()).build().unwrap();
    let request = session_request("rsv_ttl_0", now() + 3600);
    let send = || {
        request
            .customize()
            .request_strategy(RequestStrategy::Idempotent(IdempotencyKey::new("ttl-0").unwrap()))
            .send(&client)
    };
    // A ttl of 0: every key is already forgotten when it is used again.
    assert_ne!(send().await.unwrap().id, send().await.unwrap().id);
}

#[tokio::test]
async fn a_down_endpoint_gets_nothing_and_each_skipped_delivery_is_0() {
    let receiver = Receiver::start(SECRET).await;
    let sim = Sim::start(Some(receiver.url.clone())).await;
    let (status, body) = sim.control("POST", "/_sim/webhooks?down=true").await;
    assert_eq!(status, 200);
    assert_eq!(body, serde_json::json!({"down": true}));

    let a = sim.open_session("rsv_down_a").await;
    let (status, body) = sim.complete(a.id.as_str(), "?deliveries=2").await;
    assert_eq!(status, 200);
    assert_eq!(body["deliveries"], serde_json::json!([0, 0]));
    let completed = body["event_id"].as_str().unwrap().to_owned();
    // Through the API, delivered in the background: skipped all the same.
    let b = sim.open_session("rsv_down_b").await;
    ExpireCheckoutSession::new(b.id.clone()).send(&sim.client).await.unwrap();
    let mut events = Vec::new();
    for _ in 0..200 {
        events = sim.events().await;
        if events.len() == 2 && events[1]["deliveries"] != serde_json::json!([]) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(events[0]["id"], completed.as_str());
    assert_eq!(events[0]["deliveries"], serde_json::json!([0, 0]));
    assert_eq!(events[1]["type"], "checkout.session.expired");
    assert_eq!(events[1]["deliveries"], serde_json::json!([0]));
    let (_, redelivered) = sim.control("POST", &format!("/_sim/events/{completed}/redeliver")).await;
    assert_eq!(redelivered["deliveries"], serde_json::json!([0]));
    // Recorded and listed, never sent.
    let (_, listed) = sim.v1_get("/v1/events").await;
    assert_eq!(ids(&listed), [events[1]["id"].as_str().unwrap(), completed.as_str()]);
    assert!(receiver.deliveries().is_empty());

    // Back up: nothing is redelivered by itself; new events and asked-for
    // redeliveries go out again.
    let (_, body) = sim.control("POST", "/_sim/webhooks?down=false").await;
    assert_eq!(body, serde_json::json!({"down": false}));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(receiver.deliveries().is_empty());
    let (_, redelivered) = sim.control("POST", &format!("/_sim/events/{completed}/redeliver")).await;
    assert_eq!(redelivered["deliveries"], serde_json::json!([200]));
    let c = sim.open_session("rsv_down_c").await;
    assert_eq!(sim.complete(c.id.as_str(), "").await.1["deliveries"], serde_json::json!([200]));
    let got = receiver.deliveries();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].event_id, completed);
    assert_eq!(sim.events().await[0]["deliveries"], serde_json::json!([0, 0, 0, 200]));

    for bad in ["", "?down=maybe"] {
        let (status, body) = sim.control("POST", &format!("/_sim/webhooks{bad}")).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
}

#[tokio::test]
async fn a_lost_answer_is_replayed_to_the_retry_with_the_same_key() {
    let receiver = Receiver::start(SECRET).await;
    let sim = Sim::start(Some(receiver.url.clone())).await;
    let pi = sim.paid("rsv_lost").await;
    let request = CreateRefund::new()
        .payment_intent(pi.as_str())
        .amount(1500)
        .metadata(HashMap::from([("reservation_id".to_string(), "rsv_lost".to_string())]));

    let (status, body) = sim.control("POST", "/_sim/lose_answers?count=1").await;
    assert_eq!(status, 200);
    assert_eq!(body, serde_json::json!({"remaining": 1}));
    // GETs do not count.
    assert!(ListRefund::new().payment_intent(pi.as_str()).send(&sim.client).await.is_ok());
    // Stripe refunds, but the client hears nothing: the connection closes.
    match sim.refund(&request, "refund-lost").await {
        Err(StripeError::ClientError(_)) => {}
        other => panic!("expected no answer, got {other:?}"),
    }
    let refunds = sim.refunds().await;
    assert_eq!(refunds.len(), 1);
    assert_eq!(refunds[0]["idempotency_key"], "refund-lost");

    // The retry with the same key gets the saved answer: the same refund.
    let retried = sim.refund(&request, "refund-lost").await.unwrap();
    assert_eq!(retried.id.as_str(), refunds[0]["id"].as_str().unwrap());
    assert_eq!(retried.amount, 1500);
    assert_eq!(retried.metadata.as_ref().unwrap()["reservation_id"], "rsv_lost");
    assert_eq!(sim.refunds().await.len(), 1);

    // A lost session create: the session exists, its events go out, and the
    // retry replays it.
    sim.control("POST", "/_sim/lose_answers?count=1").await;
    let create = session_request("rsv_lost_2", now() + 3600);
    assert!(matches!(sim.create(&create, "checkout-lost").await, Err(StripeError::ClientError(_))));
    let sessions = sim.sessions().await;
    assert_eq!(sessions.len(), 2);
    let session = sim.create(&create, "checkout-lost").await.unwrap();
    assert_eq!(session.id.as_str(), sessions[1]["id"].as_str().unwrap());
    let expire = ExpireCheckoutSession::new(session.id.clone());
    sim.control("POST", "/_sim/lose_answers?count=1").await;
    assert!(matches!(
        expire
            .customize()
            .request_strategy(RequestStrategy::Idempotent(IdempotencyKey::new("expire-lost").unwrap()))
            .send(&sim.client)
            .await,
        Err(StripeError::ClientError(_))
    ));
    let got = receiver.wait_for(2).await;
    assert_eq!(got[1].type_, EventType::CheckoutSessionExpired);
    assert_eq!(got[1].session.id, session.id);

    // count=0 clears.
    sim.control("POST", "/_sim/lose_answers?count=5").await;
    let (_, body) = sim.control("POST", "/_sim/lose_answers?count=0").await;
    assert_eq!(body["remaining"], 0);
    assert!(sim.refund(&CreateRefund::new().payment_intent(pi.as_str()).amount(1), "refund-after").await.is_ok());
    assert_eq!(sim.control("POST", "/_sim/lose_answers?count=x").await.0, 400);
}

#[tokio::test]
async fn refunds_are_listed_per_payment_intent_with_metadata_and_cursors() {
    let sim = Sim::start(None).await;
    let pi_a = sim.paid("rsv_list_a").await;
    let pi_b = sim.paid("rsv_list_b").await;
    let mut made = Vec::new();
    for (i, pi) in [&pi_a, &pi_b, &pi_a, &pi_a, &pi_b].into_iter().enumerate() {
        let request = CreateRefund::new()
            .payment_intent(pi.as_str())
            .amount(500)
            .metadata(HashMap::from([("n".to_string(), i.to_string())]));
        made.push((pi.clone(), sim.refund(&request, &format!("refund-list-{i}")).await.unwrap()));
    }
    // pi_a's refunds, newest first: 3, 2, 0.
    let of_a: Vec<&Refund> = made.iter().rev().filter(|(pi, _)| *pi == pi_a).map(|(_, r)| r).collect();

    let listed = ListRefund::new().payment_intent(pi_a.as_str()).send(&sim.client).await.unwrap();
    assert!(!listed.has_more);
    assert_eq!(
        listed.data.iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
        of_a.iter().map(|r| r.id.clone()).collect::<Vec<_>>()
    );
    for (refund, n) in listed.data.iter().zip(["3", "2", "0"]) {
        assert_eq!(refund.payment_intent.as_ref().map(|p| p.id().as_str()), Some(pi_a.as_str()));
        assert_eq!(refund.metadata.as_ref().unwrap()["n"], n);
    }

    let page = ListRefund::new().payment_intent(pi_a.as_str()).limit(2).send(&sim.client).await.unwrap();
    assert!(page.has_more);
    assert_eq!(page.data.len(), 2);
    assert_eq!(page.data[1].id, of_a[1].id);
    let rest = ListRefund::new()
        .payment_intent(pi_a.as_str())
        .limit(2)
        .starting_after(page.data[1].id.as_str())
        .send(&sim.client)
        .await
        .unwrap();
    assert!(!rest.has_more);
    assert_eq!(rest.data.len(), 1);
    assert_eq!(rest.data[0].id, of_a[2].id);
    assert_eq!(rest.data[0].metadata.as_ref().unwrap()["n"], "0");
    let back = ListRefund::new()
        .payment_intent(pi_a.as_str())
        .ending_before(of_a[2].id.as_str())
        .send(&sim.client)
        .await
        .unwrap();
    assert_eq!(back.data.len(), 2);
    assert_eq!(back.data[0].id, of_a[0].id);

    let of_b = ListRefund::new().payment_intent(pi_b.as_str()).send(&sim.client).await.unwrap();
    assert_eq!(of_b.data.len(), 2);
    assert_eq!(of_b.data[0].metadata.as_ref().unwrap()["n"], "4");
    assert_eq!(ListRefund::new().send(&sim.client).await.unwrap().data.len(), 5);
    let (error, status) = stripe_error(
        ListRefund::new().payment_intent(pi_a.as_str()).starting_after("re_missing").send(&sim.client).await,
    );
    assert_eq!(status, 400);
    assert_eq!(error.code, Some(ApiErrorsCode::ResourceMissing));
    assert_eq!(error.param.as_deref(), Some("starting_after"));
}
