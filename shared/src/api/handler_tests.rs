//! Unit tests of the HTTP handlers: the sample events of `events/`, read by
//! `lambda_http` as the Lambda runtime reads them and edited where a case
//! needs, go through the real handlers against the in-memory fakes of
//! [`crate::testing`]. Each test checks the answer and what the fakes
//! recorded: what was written, refunded or queued, and what was not.
//!
//! The integration tests (`tests/it`) cover the same flows against the real
//! local stack; these reach the branches in milliseconds.

use super::auth::AdminAuth;
use super::availability::availability_at;
use super::cancel::{CancelDeps, cancel_at};
use super::checkout::{CheckoutUrls, checkout_at};
use super::idempotency::RECORD_TTL;
use super::put_resource::put_resource;
use super::reschedule::{RescheduleDeps, reschedule_at};
use super::reservation_status::reservation_status_at;
use super::reserve::reserve_at;
use super::stripe_webhook::{WebhookDeps, stripe_webhook_at};
use super::{MAX_BODY_BYTES, ProblemKind};
use crate::adapters::stripe::{WebhookVerifier, sign};
use crate::domain::payment::session_window;
use crate::domain::resource::OpeningSpec;
use crate::domain::{
    CalendarAction, CalendarJob, CancellationPolicy, CheckoutLink, CheckoutTerms, Claim, ClaimStatus, DateOverrideSpec,
    LateCancellation, LockKey, PaymentOutcome, RefundCause, ReservationId, ReservationSecret, ReservationStatus,
    Resource, SecretHash, SlotKey, rfc3339,
};
use crate::ports::{PaymentError, ReservationRecord};
use crate::testing::*;
use chrono::{DateTime, Duration, Utc};
use lambda_http::http::HeaderMap;
use lambda_http::{Body, Request, Response};
use serde_json::{Value, json};

// The 5xx problem types, as `api::problem` names them (the 4xx ones, the
// clients' contract, are spelt out where they are expected).
const STORE_UNAVAILABLE: &str = ProblemKind::ServiceUnavailable.as_str();
const PAYMENTS_UNAVAILABLE: &str = ProblemKind::PaymentProviderUnavailable.as_str();
const PAYMENTS_REFUSED: &str = ProblemKind::PaymentProviderError.as_str();
const QUEUE_UNAVAILABLE: &str = ProblemKind::QueueUnavailable.as_str();
const UNREADABLE_EVENT: &str = ProblemKind::UnreadableEvent.as_str();

const ADMIN_TOKEN: &str = "admin-unit-test-token";
/// The payment of the sample reservation once it is booked.
const BOOKED_PAYMENT: &str = "pi_booked_unit_test";

/// The day before the sample slot (2030-01-07T08:00Z, a Monday, 09:00 in Berlin).
fn now() -> DateTime<Utc> {
    at("2030-01-06T12:00:00Z")
}

/// The Checkout Session the sample Stripe events are about, and its payment.
fn sample_session() -> String {
    Fixture::load(events::stripe::COMPLETED).text_at("/data/object/id").to_owned()
}

fn sample_payment() -> String {
    Fixture::load(events::stripe::COMPLETED).text_at("/data/object/payment_intent").to_owned()
}

/// How a Stripe call can fail, and the problem each failure becomes: 503
/// (retry later) or 502 (Stripe refused).
fn stripe_failures() -> [(PaymentError, u16, &'static str); 2] {
    [
        (PaymentError::Unavailable("timed out".into()), 503, PAYMENTS_UNAVAILABLE),
        (PaymentError::Rejected("refused".into()), 502, PAYMENTS_REFUSED),
    ]
}

/// A handler's answer, read.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: HeaderMap,
    body: Value,
}

impl Reply {
    /// `event` on the reservation this reserve reply made, with its secret.
    fn on_it(&self, event: &str) -> Fixture {
        let secret = self.body["reservation_secret"].as_str().expect("a 201 of reserve carries the secret");
        Fixture::load(event)
            .path_id(self.body["reservation_id"].as_str().unwrap())
            .header("authorization", &format!("Bearer {secret}"))
    }
}

impl From<Response<Body>> for Reply {
    fn from(response: Response<Body>) -> Self {
        let body = serde_json::from_slice(response.body().as_ref()).unwrap_or(Value::Null);
        Self { status: response.status().as_u16(), headers: response.headers().clone(), body }
    }
}

impl Reply {
    /// Checks that this is a problem of `status` and `kind`, shaped as every problem is.
    #[track_caller]
    fn assert_problem(&self, case: &str, status: u16, kind: &str) {
        assert_eq!((self.status, self.body["type"].as_str()), (status, Some(kind)), "{case}: {}", self.body);
        assert_eq!(self.headers["content-type"], "application/problem+json", "{case}");
        assert_eq!(self.body["status"], status, "{case}");
        assert!(self.body["title"].is_string() && self.body["detail"].is_string(), "{case}: {}", self.body);
    }

    /// Checks a 200 with `outcome` from the webhook.
    #[track_caller]
    fn assert_outcome(&self, case: &str, outcome: &str) {
        assert_eq!((self.status, self.body["outcome"].as_str()), (200, Some(outcome)), "{case}: {}", self.body);
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Every port, faked, and the clock.
struct World {
    store: MemoryStore,
    payments: MemoryPayments,
    queue: MemoryQueue,
    verifier: WebhookVerifier,
    admin: AdminAuth,
    urls: CheckoutUrls,
    now: DateTime<Utc>,
}

impl World {
    /// The sample resource, nothing else.
    fn new() -> Self {
        Self {
            store: MemoryStore::with_resources([sample_resource()]),
            payments: MemoryPayments::new(),
            queue: MemoryQueue::new(),
            verifier: verifier(),
            admin: AdminAuth::Token(ADMIN_TOKEN.into()),
            urls: CheckoutUrls {
                success_url: "https://shop.example/ok/{RESERVATION_ID}".into(),
                cancel_url: "https://shop.example/slots".into(),
            },
            now: now(),
        }
    }

    /// With the sample reservation's claim in `status`.
    fn with_sample(status: ClaimStatus) -> Self {
        let world = Self::new();
        world.store.insert_claim(world.sample_claim(status));
        world
    }

    /// The sample reservation's claim in `status`: a hold with 20 minutes
    /// left, or a payment's claim with its payment.
    fn sample_claim(&self, status: ClaimStatus) -> Claim {
        let expires_at = (status == ClaimStatus::Held).then(|| self.now + Duration::minutes(20));
        let created_at = self.now - Duration::minutes(10);
        let mut claim = claim(&sample_resource(), &sample_reservation(), status, expires_at, created_at);
        if status != ClaimStatus::Held {
            claim.payment_intent = Some(BOOKED_PAYMENT.into());
        }
        claim
    }

    /// With `session_id` recorded as the sample reservation's own Checkout Session.
    fn with_own_session(self, session_id: &str) -> Self {
        self.record_own_session(session_id);
        self
    }

    fn record_own_session(&self, session_id: &str) {
        self.store.insert_checkout_record(self.sample_claim(ClaimStatus::Held).checkout_record(session_id));
    }

    fn sample_record(&self, status: ReservationStatus) -> ReservationRecord {
        record(&sample_resource(), &sample_reservation(), status, self.now)
    }

    async fn reserve(&self, event: &Fixture) -> Reply {
        reserve_at(&self.store, event.request(), self.now).await.into()
    }

    async fn checkout(&self, event: &Fixture) -> Reply {
        checkout_at(&self.store, &self.payments, &self.urls, event.request(), self.now).await.into()
    }

    /// Delivers a Stripe event to the webhook, signed now.
    async fn webhook(&self, stripe_event: &Fixture) -> Reply {
        let body = stripe_event.text();
        let signed = Fixture::load(events::STRIPE_WEBHOOK).header("stripe-signature", &signature(&body));
        self.deliver(signed.body(body).request()).await
    }

    async fn deliver(&self, request: Request) -> Reply {
        let deps = WebhookDeps {
            store: &self.store,
            payments: &self.payments,
            calendar: &self.queue,
            verifier: &self.verifier,
        };
        stripe_webhook_at(deps, request, self.now).await.into()
    }

    async fn cancel(&self, event: &Fixture) -> Reply {
        let deps =
            CancelDeps { store: &self.store, payments: &self.payments, calendar: &self.queue, admin: &self.admin };
        cancel_at(deps, event.request(), self.now).await.into()
    }

    async fn reschedule(&self, event: &Fixture) -> Reply {
        let deps = RescheduleDeps { store: &self.store, calendar: &self.queue, admin: &self.admin };
        reschedule_at(deps, event.request(), self.now).await.into()
    }

    async fn availability(&self, event: &Fixture) -> Reply {
        availability_at(&self.store, event.request(), self.now).await.into()
    }

    async fn reservation_status(&self, event: &Fixture) -> Reply {
        reservation_status_at(&self.store, event.request(), self.now).await.into()
    }

    async fn put_resource(&self, event: &Fixture) -> Reply {
        let calendars = crate::adapters::calendars::CalendarTargetRules::local();
        put_resource(&self.store, &self.admin, &calendars, event.request()).await.into()
    }
}

// ---- reserve ------------------------------------------------------------------

#[tokio::test]
async fn reserve_holds_the_sample_slot_with_a_ttl_and_saves_its_response() {
    let world = World::new();
    let event = Fixture::load(events::RESERVE);
    let reply = world.reserve(&event).await;
    assert_eq!(reply.status, 201, "{}", reply.body);

    let resource = sample_resource();
    let id = ReservationId::parse(reply.body["reservation_id"].as_str().unwrap_or_default()).expect("an id");
    let requested = Fixture::load(event.text_at("/body")).text_at("/start").to_owned();
    assert_eq!(id.slot_key(), SlotKey { resource_id: resource.id.clone(), start: at(&requested) });
    assert_eq!(reply.header("location"), Some(format!("/v1/reservations/{id}").as_str()));

    let tables = world.store.snapshot();
    assert_eq!(tables.claims.len(), 1);
    let hold = tables.claim_of(&id).expect("the hold is stored");
    assert_eq!(hold.status, ClaimStatus::Held);
    let ttl = world.now + Duration::minutes(resource.hold_minutes.into());
    assert_eq!(hold.expires_at, Some(ttl), "the hold carries the TTL attribute");
    assert_eq!(reply.body["expires_at"], rfc3339(ttl));
    assert_eq!(hold.customer, sample_customer());
    assert_eq!(
        (hold.amount, hold.currency.as_str()),
        (resource.first_type().2.amount, resource.first_type().2.currency.as_str())
    );
    assert_eq!(hold.settings_version.as_ref(), Some(&resource.settings_version), "the settings it was held under");

    let secret = reply.body["reservation_secret"].as_str().expect("the 201 carries the secret");
    assert_eq!(hold.secret_hash, Some(SecretHash::of(secret)), "the hold keeps the secret's hash");

    // Saved for replays, but neither the client's key nor the secret in clear.
    let client_key = event.text_at("/headers/idempotency-key");
    assert_eq!(tables.idempotency.len(), 1);
    let (key, record) = tables.idempotency.iter().next().unwrap();
    assert!(!key.contains(client_key), "{key}");
    assert_eq!(key, &super::idempotency::record_key("reserve", client_key));
    assert_eq!(record.response.status, 201);
    assert!(!record.response.body.contains(secret), "the secret is stored in clear: {}", record.response.body);
    let mut saved: Value = serde_json::from_str(&record.response.body).unwrap();
    let mut shown = reply.body.clone();
    assert!(saved.as_object_mut().unwrap().remove("reservation_secret_sealed").is_some());
    shown.as_object_mut().unwrap().remove("reservation_secret");
    assert_eq!(saved, shown, "the rest of the response is saved as answered");
}

#[tokio::test]
async fn reserve_replays_a_repeated_request_and_holds_the_slot_once() {
    let world = World::new();
    let event = Fixture::load(events::RESERVE);
    let first = world.reserve(&event).await;
    let again = world.reserve(&event).await;
    assert_eq!((again.status, &again.body), (201, &first.body));
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.header("location"), first.header("location"));
    assert_eq!(world.store.snapshot().claims.len(), 1);
    // Without its key the same body is a new request, and meets the hold.
    world.reserve(&event.without_header("idempotency-key")).await.assert_problem("no key", 409, "slot_taken");
}

#[tokio::test]
async fn reserve_refuses_a_key_reused_with_another_body_and_writes_nothing() {
    let world = World::new();
    let event = Fixture::load(events::RESERVE);
    assert_eq!(world.reserve(&event).await.status, 201);
    let before = world.store.snapshot();
    let other_slot = event.body_field("/start", "2030-01-07T08:30:00Z");
    world.reserve(&other_slot).await.assert_problem("reused key", 422, "idempotency_key_reused");
    assert_eq!(world.store.snapshot(), before);
}

#[tokio::test]
async fn reserve_refuses_bad_requests_and_writes_nothing() {
    let sample = || Fixture::load(events::RESERVE);
    let oversized = format!("{{\"pad\":\"{}\"}}", "x".repeat(MAX_BODY_BYTES));
    let cases = [
        ("malformed JSON", sample().body("{\"resource_id\": "), 400, "invalid_json"),
        ("empty body", sample().body(""), 400, "invalid_json"),
        ("unknown field", sample().body_field("/coupon", "FREE"), 400, "invalid_field"),
        ("customer missing", sample().body_field("/customer", Value::Null), 400, "invalid_field"),
        ("wrong content type", sample().header("content-type", "text/plain"), 415, "unsupported_media_type"),
        ("body too big", sample().body(oversized), 413, "payload_too_large"),
        ("bad idempotency key", sample().header("idempotency-key", "has space"), 400, "invalid_idempotency_key"),
        ("unknown resource", sample().body_field("/resource_id", "nope"), 422, "unknown_resource"),
        ("start not a time", sample().body_field("/start", "monday 9am"), 422, "invalid_field"),
        ("slot not on the grid", sample().body_field("/start", "2030-01-07T08:10:00Z"), 422, "off_grid"),
        ("before opening", sample().body_field("/start", "2030-01-07T07:00:00Z"), 422, "outside_opening_hours"),
        ("slot in the past", sample().body_field("/start", "2030-01-06T08:00:00Z"), 422, "slot_in_past"),
        ("bad email", sample().body_field("/customer/email", "not-an-email"), 422, "invalid_field"),
    ];
    for (case, event, status, kind) in cases {
        let world = World::new();
        let before = world.store.snapshot();
        world.reserve(&event).await.assert_problem(case, status, kind);
        assert_eq!(world.store.snapshot(), before, "{case}: no hold, and no idempotency record left behind");
    }
}

#[tokio::test]
async fn reserve_a_slot_with_a_live_claim_is_409_and_leaves_the_claim() {
    let cases = [
        (ClaimStatus::Held, "held by another customer"),
        (ClaimStatus::PaymentPending, "already booked"),
        (ClaimStatus::Confirmed, "already booked"),
        (ClaimStatus::Cancelling, "already booked"),
    ];
    for (status, detail) in cases {
        let world = World::with_sample(status);
        let before = world.store.snapshot();
        let reply = world.reserve(&Fixture::load(events::RESERVE)).await;
        reply.assert_problem(status.as_str(), 409, "slot_taken");
        assert!(reply.body["detail"].as_str().unwrap().contains(detail), "{}", reply.body);
        assert_eq!(world.store.snapshot(), before, "{status:?}");
    }
}

#[tokio::test]
async fn reserve_over_a_lapsed_hold_takes_the_slot_and_the_old_one_reads_expired() {
    // Expired a minute ago, and expiring this very second (`expires_at <= now` is free).
    for lapsed_for in [Duration::minutes(1), Duration::zero()] {
        let world = World::new();
        let mut lapsed = world.sample_claim(ClaimStatus::Held);
        lapsed.expires_at = Some(world.now - lapsed_for);
        world.store.insert_claim(lapsed.clone());

        let reply = world.reserve(&Fixture::load(events::RESERVE)).await;
        assert_eq!(reply.status, 201, "{}", reply.body);
        let id = ReservationId::parse(reply.body["reservation_id"].as_str().unwrap()).unwrap();
        assert_ne!(id, lapsed.reservation_id);
        let tables = world.store.snapshot();
        assert_eq!(tables.claim(&lapsed.slot).map(|c| &c.reservation_id), Some(&id), "the new hold has the slot");
        let old = tables.claim_of(&lapsed.reservation_id).expect("the lapsed booking item stays until TTL");
        assert_eq!(old.reservation_status(world.now), ReservationStatus::Expired);
    }
}

#[tokio::test]
async fn reserve_with_storage_down_is_503_with_retry_after_and_writes_nothing() {
    let event = Fixture::load(events::RESERVE);
    for op in ["get_resource", "place_hold"] {
        let world = World::new();
        let before = world.store.snapshot();
        world.store.fail_next(op, unavailable(op));
        let reply = world.reserve(&event).await;
        reply.assert_problem(op, 503, STORE_UNAVAILABLE);
        assert_eq!(reply.header("retry-after"), Some("1"), "{op}");
        assert_eq!(world.store.snapshot(), before, "{op}: no hold, and no idempotency record");
        assert_eq!(world.reserve(&event).await.status, 201, "{op}: the retry goes through");
    }
}

#[tokio::test]
async fn a_retried_reserve_replays_its_answer_even_when_the_request_would_now_be_refused() {
    let mut world = World::new();
    let event = Fixture::load(events::RESERVE);
    let first = world.reserve(&event).await;
    assert_eq!(first.status, 201, "{}", first.body);
    // The slot has started since (the hold lapsed long ago): the request
    // itself would be refused, its earlier answer is replayed.
    let start = at(first.body["start"].as_str().unwrap());
    world.now = start + Duration::hours(1);
    let retry = world.reserve(&event).await;
    assert_eq!((retry.status, &retry.body), (201, &first.body));
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    // Once the record expired, the request is a new one, and refused.
    world.now = now() + RECORD_TTL + Duration::seconds(1);
    world.reserve(&event).await.assert_problem("after the record's TTL", 422, "slot_in_past");
    assert_eq!(world.store.snapshot().claims.len(), 1, "nothing else was held");
}

#[tokio::test]
async fn reserve_trusts_cached_settings_only_to_accept_and_checkout_checks_them_again() {
    let world = World::new();
    let event = Fixture::load(events::RESERVE);
    let monday_0830 = event.clone().body_field("/start", "2030-01-07T08:30:00Z");
    assert_eq!(world.reserve(&event).await.status, 201, "the settings are cached now");
    // Another process (the put-resource function) closes Monday 08:00-09:00
    // and opens Saturday: this process's cache does not know yet.
    let hours = |date: &str, start: &str, end: &str| DateOverrideSpec {
        date: date.into(),
        hours: vec![OpeningSpec { start: start.into(), end: end.into() }],
    };
    let mut spec = sample_resource().spec;
    spec.date_overrides = vec![hours("2030-01-07", "13:00", "17:00"), hours("2030-01-12", "09:00", "12:00")];
    world.store.put_resource_elsewhere(Resource::from_spec(sample_resource().id, spec).unwrap());

    // A refusal is decided on the stored settings: Saturday is open now.
    let saturday = event.clone().body_field("/start", "2030-01-12T08:30:00Z").header("idempotency-key", "sat");
    let saturday = world.reserve(&saturday).await;
    assert_eq!(saturday.status, 201, "refused by the cache, accepted by the table: {}", saturday.body);
    // An acceptance by the cache holds the slot, and checkout refuses to take money for it.
    let stale = world.reserve(&monday_0830.header("idempotency-key", "mon")).await;
    assert_eq!(stale.status, 201, "{}", stale.body);
    let id = stale.body["reservation_id"].as_str().unwrap();
    world.checkout(&stale.on_it(events::CHECKOUT)).await.assert_problem("stale settings", 409, "settings_changed");
    let tables = world.store.snapshot();
    let id = ReservationId::parse(id).unwrap();
    assert!(tables.claim_of(&id).is_none(), "the hold is released");
    assert_eq!(tables.records[&id].status, ReservationStatus::Released);
    assert!(world.payments.sessions().is_empty(), "no Checkout Session");
    // A hold the new settings still offer pays as usual.
    assert_eq!(world.checkout(&saturday.on_it(events::CHECKOUT)).await.status, 201);
}

// ---- checkout -----------------------------------------------------------------

#[tokio::test]
async fn checkout_creates_one_session_records_it_and_extends_the_hold() {
    let world = World::with_sample(ClaimStatus::Held);
    let id = sample_reservation();
    let hold = world.sample_claim(ClaimStatus::Held);
    let event = Fixture::load(events::CHECKOUT);
    let reply = world.checkout(&event).await;
    assert_eq!(reply.status, 201, "{}", reply.body);

    let sessions = world.payments.sessions();
    assert_eq!(sessions.len(), 1);
    let made = &sessions[0];
    assert_eq!(
        (&reply.body["session_id"], &reply.body["checkout_url"]),
        (&json!(made.session.id), &json!(made.session.url))
    );
    let (session_expires_at, hold_until) = session_window(hold.expires_at.unwrap(), world.now);
    assert_eq!(reply.body["expires_at"], rfc3339(session_expires_at));
    assert_eq!(made.key, format!("checkout-{id}-{}", session_expires_at.timestamp()));
    let asked = Fixture::load(event.text_at("/body"));
    let request = &made.request;
    assert_eq!(request.success_url, asked.text_at("/success_url").replace("{RESERVATION_ID}", id.as_str()));
    assert_eq!(request.cancel_url, asked.text_at("/cancel_url"));
    assert_eq!((request.amount, &request.currency, &request.customer), (hold.amount, &hold.currency, &hold.customer));
    assert_eq!((&request.slot, request.slot_end, request.expires_at), (&hold.slot, hold.end, session_expires_at));
    assert_eq!(request.product_name, sample_resource().name);

    let tables = world.store.snapshot();
    let stored = tables.claim_of(&id).unwrap();
    assert_eq!(stored.status, ClaimStatus::Held);
    assert_eq!(stored.expires_at, Some(hold_until), "the hold outlives its session");
    assert!(hold_until > session_expires_at);
    let link = CheckoutLink { session_id: made.session.id.clone(), url: made.session.url.clone() };
    assert_eq!(stored.checkout.as_ref(), Some(&link));
    assert_eq!(stored.checkout_terms.as_ref().map(|t| t.expires_at), Some(session_expires_at));
    let record = &tables.checkouts[&id];
    assert_eq!((&record.session_id, record.amount, &record.currency), (&made.session.id, hold.amount, &hold.currency));

    // Asked again: the same session, read from the hold.
    let again = world.checkout(&event).await;
    assert_eq!((again.status, &again.body), (200, &reply.body));
    assert_eq!(world.payments.sessions().len(), 1);
}

#[tokio::test]
async fn checkout_refuses_without_writing_or_calling_stripe() {
    let sample = || Fixture::load(events::CHECKOUT);
    let lapsed = |w: &World| {
        let mut hold = w.sample_claim(ClaimStatus::Held);
        hold.expires_at = Some(w.now - Duration::minutes(1));
        w.store.insert_claim(hold);
    };
    // A checkout was started with other return URLs (and Stripe did not answer).
    let started_elsewhere = |w: &World| {
        let mut hold = w.sample_claim(ClaimStatus::Held);
        let url = "https://elsewhere.example/".to_owned();
        let expires_at = w.now + Duration::minutes(40);
        hold.checkout_terms = Some(CheckoutTerms { expires_at, success_url: url.clone(), cancel_url: url });
        w.store.insert_claim(hold);
    };
    type Setup = fn(&World);
    let held: Setup = |w| w.store.insert_claim(w.sample_claim(ClaimStatus::Held));
    let another = format!("Bearer {}", ReservationSecret::generate().expose());
    let cases: [(&str, Setup, Fixture, u16, &str); 13] = [
        ("no secret", held, sample().without_header("authorization"), 401, "unauthorized"),
        ("a wrong secret", held, sample().header("authorization", "Bearer rsk_wrong"), 401, "unauthorized"),
        ("another reservation's secret", held, sample().header("authorization", &another), 401, "unauthorized"),
        ("a lapsed hold, without the secret", lapsed, sample().without_header("authorization"), 401, "unauthorized"),
        (
            "a bad body, without the secret",
            held,
            sample().without_header("authorization").body_field("/success_url", "javascript:alert(1)"),
            401,
            "unauthorized",
        ),
        ("lapsed hold", lapsed, sample(), 410, "hold_expired"),
        (
            "released",
            |w| w.store.insert_reservation_record(w.sample_record(ReservationStatus::Released)),
            sample(),
            410,
            "hold_expired",
        ),
        ("confirmed", |w| w.store.insert_claim(w.sample_claim(ClaimStatus::Confirmed)), sample(), 409, "not_held"),
        (
            "pending payment",
            |w| w.store.insert_claim(w.sample_claim(ClaimStatus::PaymentPending)),
            sample(),
            409,
            "not_held",
        ),
        ("unknown reservation", |_| {}, sample(), 404, "reservation_not_found"),
        ("malformed id", |_| {}, sample().path_id("12345"), 404, "reservation_not_found"),
        (
            "bad success_url",
            |w| w.store.insert_claim(w.sample_claim(ClaimStatus::Held)),
            sample().body_field("/success_url", "javascript:alert(1)"),
            422,
            "invalid_field",
        ),
        ("other URLs than those fixed", started_elsewhere, sample(), 409, "checkout_urls_differ"),
    ];
    for (case, setup, event, status, kind) in cases {
        let world = World::new();
        setup(&world);
        let before = world.store.snapshot();
        world.checkout(&event).await.assert_problem(case, status, kind);
        assert_eq!(world.store.snapshot(), before, "{case}");
        assert!(world.payments.sessions().is_empty(), "{case}");
    }
}

#[tokio::test]
async fn checkout_when_stripe_fails_keeps_the_hold_and_the_retry_sends_the_same_request() {
    let event = Fixture::load(events::CHECKOUT);
    let id = sample_reservation();
    for (error, status, kind) in stripe_failures() {
        let world = World::with_sample(ClaimStatus::Held);
        world.payments.fail_next("create_checkout_session", error);
        let reply = world.checkout(&event).await;
        reply.assert_problem(kind, status, kind);
        assert_eq!(reply.header("retry-after"), (status == 503).then_some("5"), "{kind}");
        let tables = world.store.snapshot();
        assert!(tables.checkouts.is_empty() && world.payments.sessions().is_empty(), "{kind}: no session");
        let hold = tables.claim_of(&id).expect("the hold stays");
        assert_eq!((hold.status, &hold.checkout), (ClaimStatus::Held, &None), "{kind}");
        let fixed = hold.checkout_terms.clone().expect("the session's terms are fixed before Stripe is called");

        let retry = world.checkout(&event).await;
        assert_eq!(retry.status, 201, "{kind}: {}", retry.body);
        let made = world.payments.sessions();
        assert_eq!(made.len(), 1, "{kind}");
        assert_eq!((made[0].request.expires_at, &made[0].request.success_url), (fixed.expires_at, &fixed.success_url));
    }
}

#[tokio::test]
async fn checkout_retried_after_its_fixed_expiry_came_too_close_fixes_new_terms() {
    let mut world = World::with_sample(ClaimStatus::Held);
    let event = Fixture::load(events::CHECKOUT);
    world.payments.fail_next("create_checkout_session", PaymentError::Unavailable("down".into()));
    world.checkout(&event).await.assert_problem("outage", 503, PAYMENTS_UNAVAILABLE);
    let first_terms = world.store.snapshot().claim_of(&sample_reservation()).unwrap().checkout_terms.clone().unwrap();

    // Ten minutes on, the fixed expiry is under Stripe's 30-minute minimum: Stripe refuses it.
    world.now += Duration::minutes(10);
    world.payments.fail_next("create_checkout_session", PaymentError::Rejected("expires_at too soon".into()));
    let reply = world.checkout(&event).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let made = world.payments.sessions();
    assert_eq!(made.len(), 1);
    assert!(made[0].request.expires_at > first_terms.expires_at, "a new expiry, and with it a new key");
    assert_ne!(made[0].key, format!("checkout-{}-{}", sample_reservation(), first_terms.expires_at.timestamp()));
    assert!(made[0].request.expires_at - world.now >= Duration::minutes(30));
}

#[tokio::test]
async fn new_terms_fixed_after_an_outage_must_still_end_before_the_start() {
    let mut world = World::new();
    let start = sample_reservation().slot_key().start;
    let hold = Claim { expires_at: Some(start - Duration::minutes(20)), ..world.sample_claim(ClaimStatus::Held) };
    world.store.insert_claim(hold);
    world.now = start - Duration::minutes(50);
    let event = Fixture::load(events::CHECKOUT);
    world.payments.fail_next("create_checkout_session", PaymentError::Unavailable("down".into()));
    world.checkout(&event).await.assert_problem("outage", 503, PAYMENTS_UNAVAILABLE);

    // Ten minutes on, new terms would let the customer pay after the start.
    world.now += Duration::minutes(10);
    world.payments.fail_next("create_checkout_session", PaymentError::Rejected("expires_at too soon".into()));
    world.checkout(&event).await.assert_problem("new terms", 422, "too_soon");
    assert!(world.payments.sessions().is_empty(), "no session to pay after the start");
}

// ---- stripe webhook -------------------------------------------------------------

#[tokio::test]
async fn a_paid_completion_of_the_own_session_confirms_without_ttl_and_queues_the_calendar_job() {
    let world = World::with_sample(ClaimStatus::Held).with_own_session(&sample_session());
    world.webhook(&Fixture::load(events::stripe::COMPLETED)).await.assert_outcome("paid", "confirmed");

    let id = sample_reservation();
    let tables = world.store.snapshot();
    let booking = tables.claim_of(&id).expect("the booking");
    assert_eq!(booking.status, ClaimStatus::Confirmed);
    assert_eq!(booking.expires_at, None, "a confirmed booking never carries the TTL attribute");
    assert_eq!(booking.payment_intent.as_deref(), Some(sample_payment().as_str()));
    assert_eq!(tables.outcome(&sample_session()), Some(PaymentOutcome::Confirmed));
    assert_eq!(world.queue.jobs(), [CalendarJob { action: CalendarAction::Write, reservation_id: id }]);
    assert!(world.payments.refunds().is_empty());
}

#[tokio::test]
async fn a_payment_for_a_reservation_released_at_checkout_is_refunded_not_turned_into_a_booking() {
    // Checkout released the hold (the settings changed) while a concurrent
    // checkout created the session: the session is the reservation's own,
    // its hold is gone, and its record says released.
    for (event, outcome) in
        [(events::stripe::COMPLETED, "refunded"), (events::stripe::COMPLETED_UNPAID, "already_settled")]
    {
        let world = World::new().with_own_session(&sample_session());
        world.store.insert_reservation_record(world.sample_record(ReservationStatus::Released));
        world.webhook(&Fixture::load(event)).await.assert_outcome(event, outcome);
        let tables = world.store.snapshot();
        assert!(tables.claim_of(&sample_reservation()).is_none(), "{event}: nothing brought back");
        let refunds = world.payments.refunds();
        let expected = usize::from(outcome == "refunded");
        assert_eq!(refunds.len(), expected, "{event}");
        if expected == 1 {
            assert_eq!(refunds[0].cause, RefundCause::AfterOutcome);
        }
    }
}

/// Where a delivery order leaves the sample reservation.
#[derive(Debug, Clone, Copy)]
enum Ending {
    /// Confirmed, its calendar job queued once, nothing refunded.
    Booked,
    /// Its hold released, the session's outcome this unpaid one.
    Released(PaymentOutcome),
    /// The payment refunded for this cause, nothing held.
    Refunded(RefundCause),
}

#[tokio::test]
async fn every_delivery_order_ends_in_one_outcome_per_session() {
    use events::stripe::*;
    // The sample session's events, in the order Stripe delivers them, what
    // the webhook answers each, and where they leave the reservation.
    let orders: [(&[&str], [&str; 2], Ending); 8] = [
        (&[COMPLETED, COMPLETED], ["confirmed", "confirmed"], Ending::Booked),
        (&[COMPLETED_UNPAID, ASYNC_SUCCEEDED], ["payment_pending", "confirmed"], Ending::Booked),
        (&[COMPLETED, EXPIRED], ["confirmed", "already_settled"], Ending::Booked),
        (&[COMPLETED_UNPAID, ASYNC_FAILED], ["payment_pending", "released"], Ending::Released(PaymentOutcome::Failed)),
        (&[EXPIRED, COMPLETED_UNPAID], ["released", "already_settled"], Ending::Released(PaymentOutcome::Expired)),
        (&[ASYNC_SUCCEEDED, ASYNC_FAILED], ["confirmed", "already_settled"], Ending::Booked),
        (&[ASYNC_FAILED, COMPLETED], ["released", "refunded"], Ending::Refunded(RefundCause::AfterOutcome)),
        (&[EXPIRED, ASYNC_SUCCEEDED], ["released", "refunded"], Ending::Refunded(RefundCause::AfterOutcome)),
    ];
    let (id, session, payment) = (sample_reservation(), sample_session(), sample_payment());
    let write = CalendarJob { action: CalendarAction::Write, reservation_id: id.clone() };
    for (events, answers, ending) in orders {
        let case = answers.join(", then ");
        let world = World::with_sample(ClaimStatus::Held).with_own_session(&session);
        for (event, answer) in events.iter().zip(answers) {
            world.webhook(&Fixture::load(event)).await.assert_outcome(&case, answer);
        }
        let tables = world.store.snapshot();
        let refunds = world.payments.refunds();
        assert!(refunds.iter().all(|r| r.key == format!("refund-{session}") && r.payment_intent == payment), "{case}");
        let found = (
            tables.claim_of(&id).map(|c| c.status),
            tables.records.get(&id).map(|r| r.status),
            tables.outcome(&session),
            refunds.iter().map(|r| r.cause).collect::<Vec<_>>(),
            world.queue.jobs(),
        );
        // Every delivery answered "confirmed" sends the calendar job (a
        // redelivery may follow a crash before the first send); the writer is idempotent.
        let confirmed = answers.iter().filter(|a| **a == "confirmed").count();
        let expected = match ending {
            Ending::Booked => {
                (Some(ClaimStatus::Confirmed), None, PaymentOutcome::Confirmed, vec![], vec![write.clone(); confirmed])
            }
            Ending::Released(unpaid) => (None, Some(ReservationStatus::Released), unpaid, vec![], vec![]),
            Ending::Refunded(cause) => {
                (None, Some(ReservationStatus::Refunded), PaymentOutcome::Refunded(cause), vec![cause], vec![])
            }
        };
        let (claim, record, outcome, causes, jobs) = expected;
        assert_eq!(found, (claim, record, Some(outcome), causes, jobs), "{case}");
    }
}

/// What becomes of the sample reservation when a payment naming it is refunded.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Afterwards {
    /// The slot's claim is left as it was, and nothing is recorded.
    Untouched,
    /// The slot's claim (someone else's) is left as it was; the reservation is recorded refunded.
    RecordedRefunded,
    /// The reservation's hold is retired and it is recorded refunded.
    HoldRetired,
}

#[tokio::test]
async fn a_paid_session_that_cannot_buy_the_booking_is_refunded_once_with_its_cause() {
    type Setup = fn(&mut World);
    let completed = || Fixture::load(events::stripe::COMPLETED);
    let cases: [(&str, Setup, Fixture, RefundCause, Afterwards); 5] = [
        (
            "another session is the reservation's own",
            |w| w.record_own_session("cs_made_by_slotguard"),
            completed(),
            RefundCause::NotOwnSession,
            Afterwards::Untouched,
        ),
        ("no session was made for it", |_| {}, completed(), RefundCause::NotOwnSession, Afterwards::Untouched),
        (
            "another amount",
            |w| w.record_own_session(&sample_session()),
            completed().set("/data/object/amount_total", 100),
            RefundCause::NotOwnSession,
            Afterwards::Untouched,
        ),
        (
            "someone else holds the slot",
            |w| {
                w.record_own_session(&sample_session());
                let mut theirs = w.sample_claim(ClaimStatus::Held);
                theirs.reservation_id = ReservationId::new(&theirs.slot);
                w.store.insert_claim(theirs);
            },
            completed(),
            RefundCause::SlotTaken,
            Afterwards::RecordedRefunded,
        ),
        (
            "the slot has started",
            |w| {
                w.record_own_session(&sample_session());
                w.now = sample_reservation().slot_key().start + Duration::minutes(1);
            },
            completed(),
            RefundCause::TooLate,
            Afterwards::HoldRetired,
        ),
    ];
    let (id, session) = (sample_reservation(), sample_session());
    for (case, setup, event, cause, afterwards) in cases {
        let mut world = World::with_sample(ClaimStatus::Held);
        setup(&mut world);
        let before = world.store.snapshot();
        world.webhook(&event).await.assert_outcome(case, "refunded");
        // Another event of the same session (Stripe sends several) refunds nothing more.
        world.webhook(&Fixture::load(events::stripe::ASYNC_SUCCEEDED)).await.assert_outcome(case, "refunded");

        let refunds = world.payments.refunds();
        assert_eq!(refunds.len(), 1, "{case}");
        let refund = &refunds[0];
        let made = (refund.key.clone(), refund.payment_intent.clone(), &refund.reservation_id, refund.cause);
        assert_eq!(made, (format!("refund-{session}"), sample_payment(), &id, cause), "{case}");
        let tables = world.store.snapshot();
        assert_eq!(tables.outcome(&session), Some(PaymentOutcome::Refunded(cause)), "{case}");
        let slot = id.slot_key();
        let found = match (tables.claim(&slot) == before.claim(&slot), tables.records.get(&id).map(|r| r.status)) {
            (true, None) => Some(Afterwards::Untouched),
            (true, Some(ReservationStatus::Refunded)) => Some(Afterwards::RecordedRefunded),
            (false, Some(ReservationStatus::Refunded)) if tables.claim(&slot).is_none() => {
                Some(Afterwards::HoldRetired)
            }
            _ => None,
        };
        assert_eq!(found, Some(afterwards), "{case}: {:?} {:?}", tables.claim(&slot), tables.records.get(&id));
        assert!(world.queue.jobs().is_empty(), "{case}");
    }
}

#[tokio::test]
async fn a_refund_that_cannot_be_made_goes_to_the_operator_queue_and_is_acknowledged() {
    let completed = || Fixture::load(events::stripe::COMPLETED);
    let cases = [
        ("refund_rejected", Some(PaymentError::Rejected("the charge is disputed".into())), completed()),
        ("paid_without_payment_intent", None, completed().set("/data/object/payment_intent", Value::Null)),
    ];
    let (id, session) = (sample_reservation(), sample_session());
    for (kind, refusal, event) in cases {
        // Not the reservation's own session: it must be refunded.
        let world = World::with_sample(ClaimStatus::Held).with_own_session("cs_made_by_slotguard");
        if let Some(error) = refusal {
            world.payments.fail_next("refund_payment", error);
        }
        world.webhook(&event).await.assert_outcome(kind, "needs_attention");
        let tables = world.store.snapshot();
        let attention = tables.attention.get(&format!("refund-{session}")).expect("an operator item");
        assert_eq!((attention.kind.as_str(), attention.reservation_id.as_ref()), (kind, Some(&id)));
        assert_eq!(attention.raised_at, world.now);
        assert_eq!(tables.outcome(&session), Some(PaymentOutcome::Refunded(RefundCause::NotOwnSession)), "{kind}");
        assert!(world.payments.refunds().is_empty(), "{kind}");
    }
}

#[tokio::test]
async fn a_calendar_queue_outage_is_a_503_and_the_redelivery_queues_the_job() {
    let world = World::with_sample(ClaimStatus::Held).with_own_session(&sample_session());
    let event = Fixture::load(events::stripe::COMPLETED);
    world.queue.fail_next("enqueue");
    let reply = world.webhook(&event).await;
    reply.assert_problem("queue down", 503, QUEUE_UNAVAILABLE);
    assert_eq!(reply.header("retry-after"), Some("5"));
    let tables = world.store.snapshot();
    assert_eq!(tables.claim_of(&sample_reservation()).map(|c| c.status), Some(ClaimStatus::Confirmed));
    assert_eq!(tables.outcome(&sample_session()), Some(PaymentOutcome::Confirmed));
    assert!(world.queue.jobs().is_empty());

    world.webhook(&event).await.assert_outcome("redelivery", "confirmed");
    let write = CalendarJob { action: CalendarAction::Write, reservation_id: sample_reservation() };
    assert_eq!(world.queue.jobs(), [write]);
}

#[tokio::test]
async fn deliveries_refused_ignored_or_unreadable_write_nothing() {
    let event = Fixture::load(events::stripe::COMPLETED);
    let body = event.text();
    let request = |body: &str, signature: Option<String>| {
        let delivery = Fixture::load(events::STRIPE_WEBHOOK).body(body);
        match signature {
            Some(s) => delivery.header("stripe-signature", &s).request(),
            None => delivery.without_header("stripe-signature").request(),
        }
    };
    let signed = |event: Fixture| {
        let body = event.text();
        request(&body, Some(signature(&body)))
    };
    let tampered = event.clone().set("/data/object/amount_total", 1).text();
    let long_ago = Utc::now().timestamp() - 301;
    let cases = [
        ("the sample's stale signature", Fixture::load(events::STRIPE_WEBHOOK).request(), 400, "invalid_signature"),
        ("no signature", request(&body, None), 400, "invalid_signature"),
        (
            "another secret",
            request(&body, Some(sign(&body, "whsec_other", Utc::now().timestamp()))),
            400,
            "invalid_signature",
        ),
        ("body changed after signing", request(&tampered, Some(signature(&body))), 400, "invalid_signature"),
        (
            "signed over 300 s ago",
            request(&body, Some(sign(&body, WEBHOOK_SECRET, long_ago))),
            400,
            "invalid_signature",
        ),
        (
            "an unreadable session event",
            signed(event.clone().set("/data/object/payment_status", "later")),
            503,
            UNREADABLE_EVENT,
        ),
        ("another event type", signed(event.clone().set("/type", "payment_intent.succeeded")), 200, ""),
    ];
    for (case, delivery, status, kind) in cases {
        let world = World::with_sample(ClaimStatus::Held).with_own_session(&sample_session());
        let before = world.store.snapshot();
        let reply = world.deliver(delivery).await;
        if status == 200 {
            assert_eq!((reply.status, reply.body["ignored"].is_string()), (200, true), "{case}: {}", reply.body);
        } else {
            reply.assert_problem(case, status, kind);
        }
        assert_eq!(world.store.snapshot(), before, "{case}");
        assert!(world.payments.refunds().is_empty() && world.queue.jobs().is_empty(), "{case}");
    }
}

#[tokio::test]
async fn a_session_slotguard_did_not_make_is_acknowledged_and_touches_no_booking() {
    let world = World::with_sample(ClaimStatus::Held).with_own_session(&sample_session());
    let event = Fixture::load(events::stripe::COMPLETED)
        .remove("/data/object/metadata/reservation_id")
        .set("/data/object/client_reference_id", Value::Null);
    let before = world.store.snapshot();
    let reply = world.webhook(&event).await;
    assert_eq!((reply.status, reply.body["ignored"].as_str()), (200, Some("not a slotguard session")));
    assert_eq!(world.store.snapshot(), before, "nothing written");
    assert!(world.payments.refunds().is_empty() && world.queue.jobs().is_empty());
}

// ---- cancel -------------------------------------------------------------------

#[tokio::test]
async fn cancel_refuses_without_the_secret_or_a_booking_and_changes_nothing() {
    let sample = || Fixture::load(events::CANCEL);
    let another = format!("Bearer {}", ReservationSecret::generate().expose());
    let cases = [
        ("no secret", Some(ClaimStatus::Confirmed), sample().without_header("authorization"), 401, "unauthorized"),
        (
            "a wrong secret",
            Some(ClaimStatus::Confirmed),
            sample().header("authorization", "Bearer rsk_wrong"),
            401,
            "unauthorized",
        ),
        (
            "another reservation's secret",
            Some(ClaimStatus::Confirmed),
            sample().header("authorization", &another),
            401,
            "unauthorized",
        ),
        (
            "the secret without Bearer",
            Some(ClaimStatus::Confirmed),
            sample().header("authorization", &sample_secret()),
            401,
            "unauthorized",
        ),
        (
            "a hold, without the secret",
            Some(ClaimStatus::Held),
            sample().without_header("authorization"),
            401,
            "unauthorized",
        ),
        ("a hold is not a booking", Some(ClaimStatus::Held), sample(), 409, "not_cancellable"),
        ("no such booking", None, sample(), 404, "booking_not_found"),
        ("a malformed id", None, sample().path_id("12345"), 404, "booking_not_found"),
    ];
    for (case, claim, event, status, kind) in cases {
        let world = claim.map_or_else(World::new, World::with_sample);
        let before = world.store.snapshot();
        world.cancel(&event).await.assert_problem(case, status, kind);
        assert_eq!(world.store.snapshot(), before, "{case}");
        assert!(world.payments.refunds().is_empty() && world.queue.jobs().is_empty(), "{case}");
    }
}

#[tokio::test]
async fn cancel_refunds_frees_the_slot_queues_the_removal_and_answers_a_repeat_alike() {
    let by_customer = Fixture::load(events::CANCEL);
    let by_admin = by_customer.clone().header("authorization", &format!("Bearer {ADMIN_TOKEN}"));
    let id = sample_reservation();
    let delete = CalendarJob { action: CalendarAction::Delete, reservation_id: id.clone() };
    for (case, event) in [("the cancel token", by_customer), ("the admin", by_admin)] {
        let world = World::with_sample(ClaimStatus::Confirmed);
        let booking = world.sample_claim(ClaimStatus::Confirmed);
        let reply = world.cancel(&event).await;
        assert_eq!(reply.status, 200, "{case}: {}", reply.body);
        let refunds = world.payments.refunds();
        assert_eq!(refunds.len(), 1, "{case}");
        let refund = &refunds[0];
        assert_eq!(
            (refund.key.clone(), refund.payment_intent.as_str(), refund.cause),
            (format!("cancel-{id}"), BOOKED_PAYMENT, RefundCause::Cancelled)
        );
        assert_eq!(
            reply.body,
            json!({"reservation_id": id, "status": "cancelled", "refund_id": refund.id, "refunded": 4500, "currency": "eur"}),
            "{case}"
        );

        let tables = world.store.snapshot();
        assert_eq!(tables.claim(&id.slot_key()), None, "{case}: the slot is free");
        let record = &tables.records[&id];
        assert_eq!(
            (record.status, record.end, record.amount),
            (ReservationStatus::Cancelled, booking.end, booking.amount)
        );
        assert_eq!(record.secret_hash, booking.secret_hash, "{case}: a repeated cancel is authorised like the first");
        assert_eq!(world.queue.jobs(), vec![delete.clone()], "{case}");

        let again = world.cancel(&event).await;
        assert_eq!((again.status, &again.body["refund_id"]), (200, &Value::Null), "{case}: {}", again.body);
        assert_eq!(world.payments.refunds().len(), 1, "{case}: no second refund");
        assert_eq!(world.queue.jobs(), [delete.clone(), delete.clone()], "{case}: the removal is queued again");
    }
}

#[tokio::test]
async fn a_cancel_whose_refund_fails_stays_cancelling_and_its_retry_finishes() {
    let event = Fixture::load(events::CANCEL);
    let id = sample_reservation();
    for (error, status, kind) in stripe_failures() {
        let world = World::with_sample(ClaimStatus::Confirmed);
        world.payments.fail_next("refund_payment", error);
        world.cancel(&event).await.assert_problem(kind, status, kind);
        let tables = world.store.snapshot();
        assert_eq!(
            tables.claim_of(&id).map(|c| c.status),
            Some(ClaimStatus::Cancelling),
            "{kind}: the slot stays taken"
        );
        assert!(tables.records.is_empty() && world.queue.jobs().is_empty(), "{kind}");
        let raised = tables.attention.get(&format!("cancel-{id}")).map(|a| a.kind.as_str());
        assert_eq!(raised, (status == 502).then_some("refund_rejected"), "{kind}: a refused refund needs a person");

        let retry = world.cancel(&event).await;
        assert_eq!(retry.status, 200, "{kind}: {}", retry.body);
        let tables = world.store.snapshot();
        assert_eq!(tables.claim(&id.slot_key()), None, "{kind}");
        assert_eq!(tables.records[&id].status, ReservationStatus::Cancelled, "{kind}");
        assert_eq!(world.payments.refunds().len(), 1, "{kind}");
        assert_eq!(world.queue.jobs().len(), 1, "{kind}");
    }
}

#[tokio::test]
async fn a_cancel_finding_the_payment_already_refunded_counts_it_as_done() {
    let world = World::with_sample(ClaimStatus::Confirmed);
    world.payments.fail_next("refund_payment", PaymentError::AlreadyRefunded);
    let reply = world.cancel(&Fixture::load(events::CANCEL)).await;
    assert_eq!((reply.status, &reply.body["refund_id"]), (200, &Value::Null), "{}", reply.body);
    let id = sample_reservation();
    let tables = world.store.snapshot();
    assert_eq!(tables.claim(&id.slot_key()), None);
    assert_eq!(tables.records[&id].status, ReservationStatus::Cancelled);
    assert_eq!(world.queue.jobs(), [CalendarJob { action: CalendarAction::Delete, reservation_id: id }]);
}

// ---- availability, reservation status, put resource ------------------------------

#[tokio::test]
async fn availability_lists_the_open_slots_of_the_sample_day() {
    let world = World::new();
    let resource = sample_resource();
    let event = Fixture::load(events::AVAILABILITY);
    let (from, to) = (at(event.text_at("/queryStringParameters/from")), at(event.text_at("/queryStringParameters/to")));
    let grid = resource.first_slots_between(from, to);
    assert_eq!(grid.len(), 14, "Monday 09:00-12:00 and 13:00-17:00 in Berlin, 30-minute slots");
    // A live hold, a lapsed hold and a booking on the first three.
    let on = |i: usize, status: ClaimStatus, expires_at: Option<DateTime<Utc>>| {
        let id = ReservationId::new(&SlotKey { resource_id: resource.id.clone(), start: grid[i].start });
        world.store.insert_claim(claim(&resource, &id, status, expires_at, world.now));
    };
    on(0, ClaimStatus::Held, Some(world.now + Duration::minutes(1)));
    on(1, ClaimStatus::Held, Some(world.now));
    on(2, ClaimStatus::Confirmed, None);

    let reply = world.availability(&event).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let offered: Vec<&Value> = reply.body["slots"].as_array().unwrap().iter().map(|s| &s["start"]).collect();
    let open: Vec<Value> =
        grid.iter().enumerate().filter(|(i, _)| ![0, 2].contains(i)).map(|(_, s)| json!(rfc3339(s.start))).collect();
    assert_eq!(offered, open.iter().collect::<Vec<_>>());
    assert_eq!((&reply.body["from"], &reply.body["to"]), (&json!(rfc3339(from)), &json!(rfc3339(to))));
    assert_eq!((&reply.body["resource_id"], &reply.body["timezone"]), (&json!(resource.id), &json!("Europe/Berlin")));
}

#[tokio::test]
async fn availability_refuses_bad_queries() {
    let sample = || Fixture::load(events::AVAILABILITY);
    let cases = [
        ("from not a time", sample().query("from=yesterday"), 400, "invalid_query"),
        ("from after to", sample().query("from=2030-01-08T00:00:00Z&to=2030-01-07T00:00:00Z"), 400, "invalid_range"),
        ("over 31 days", sample().query("from=2030-01-01T00:00:00Z&to=2030-02-02T00:00:00Z"), 400, "range_too_large"),
        ("unknown resource", sample().path_id("nope"), 404, "resource_not_found"),
        ("malformed resource id", sample().path_id("Demo!"), 404, "resource_not_found"),
    ];
    let world = World::new();
    for (case, event, status, kind) in cases {
        world.availability(&event).await.assert_problem(case, status, kind);
    }
    world.store.fail_next("cells_on_day", unavailable("cells_on_day"));
    world.availability(&sample()).await.assert_problem("storage down", 503, STORE_UNAVAILABLE);
}

#[tokio::test]
async fn reservation_status_shows_what_became_of_the_reservation() {
    type Setup = fn(&World);
    let someone_else = |w: &World| {
        let mut theirs = w.sample_claim(ClaimStatus::Held);
        theirs.reservation_id = ReservationId::new(&theirs.slot);
        w.store.insert_claim(theirs);
    };
    let lapsed = |w: &World| {
        let mut hold = w.sample_claim(ClaimStatus::Held);
        hold.expires_at = Some(w.now);
        w.store.insert_claim(hold);
    };
    // (case, setup, status shown or 404, expiry shown to the secret's holder)
    let cases: [(&str, Setup, Option<&str>, bool); 7] = [
        ("held", |w| w.store.insert_claim(w.sample_claim(ClaimStatus::Held)), Some("held"), true),
        ("lapsed", lapsed, Some("expired"), false),
        (
            "pending",
            |w| w.store.insert_claim(w.sample_claim(ClaimStatus::PaymentPending)),
            Some("payment_pending"),
            false,
        ),
        ("confirmed", |w| w.store.insert_claim(w.sample_claim(ClaimStatus::Confirmed)), Some("confirmed"), false),
        (
            "refunded",
            |w| w.store.insert_reservation_record(w.sample_record(ReservationStatus::Refunded)),
            Some("refunded"),
            false,
        ),
        ("never made", |_| {}, None, false),
        ("someone else's slot now", someone_else, None, false),
    ];
    let public = Fixture::load(events::RESERVATION_STATUS).without_header("authorization");
    let holder = public.clone().header("authorization", &format!("Bearer {}", sample_secret()));
    let another = public.clone().header("authorization", &format!("Bearer {}", ReservationSecret::generate().expose()));
    let id = sample_reservation();
    for (case, setup, shown, expiry) in cases {
        let world = World::new();
        setup(&world);
        let Some(status) = shown else {
            for event in [&public, &holder] {
                world.reservation_status(event).await.assert_problem(case, 404, "reservation_not_found");
            }
            continue;
        };
        let before = world.store.snapshot();
        let seen = world.reservation_status(&public).await;
        let base = json!({
            "reservation_id": id,
            "resource_id": "demo",
            "start": rfc3339(id.slot_key().start),
            "end": seen.body["end"],
            "status": status,
        });
        assert_eq!((seen.status, &seen.body), (200, &base), "{case}: the public sees status and times only");
        assert!(seen.body["end"].is_string(), "{case}");

        let details = world.reservation_status(&holder).await;
        assert_eq!(details.status, 200, "{case}: {}", details.body);
        assert_eq!(details.body["amount"], json!(4500), "{case}: the holder sees the price");
        let expected_expiry = world.sample_claim(ClaimStatus::Held).expires_at.map(rfc3339);
        assert_eq!(
            details.body["expires_at"].as_str().map(str::to_owned),
            expected_expiry.filter(|_| expiry),
            "{case}"
        );
        world.reservation_status(&another).await.assert_problem(case, 401, "unauthorized");
        assert_eq!(world.store.snapshot(), before, "{case}: reading changes nothing");
    }
}

#[tokio::test]
async fn put_resource_stores_what_an_admin_sends_and_nothing_else() {
    let sample = || Fixture::load(events::PUT_RESOURCE);
    let bearer = format!("Bearer {ADMIN_TOKEN}");
    let token = || AdminAuth::Token(ADMIN_TOKEN.into());
    // (case, admin auth, event, problem or stored)
    let cases = [
        ("IAM, as API Gateway sends the sample", AdminAuth::Iam, sample(), None),
        ("the admin token", token(), sample().header("authorization", &bearer), None),
        ("no credentials", token(), sample(), Some((401, "unauthorized"))),
        ("a wrong token", token(), sample().header("authorization", "Bearer guess"), Some((401, "unauthorized"))),
        (
            "IAM without an IAM caller",
            AdminAuth::Iam,
            sample().remove("/requestContext/authorizer"),
            Some((401, "unauthorized")),
        ),
        (
            "admin access disabled",
            AdminAuth::Disabled,
            sample().header("authorization", &bearer),
            Some((403, "forbidden")),
        ),
        ("bad JSON", token(), sample().header("authorization", &bearer).body("{"), Some((400, "invalid_json"))),
        (
            "a bad resource id",
            token(),
            sample().header("authorization", &bearer).path_id("Demo"),
            Some((400, "invalid_resource_id")),
        ),
        (
            "a hold too short",
            token(),
            sample().header("authorization", &bearer).body_field("/hold_minutes", 10),
            Some((422, "invalid_resource")),
        ),
    ];
    for (case, admin, event, problem) in cases {
        let world = World { admin, store: MemoryStore::new(), ..World::new() };
        let reply = world.put_resource(&event).await;
        let stored = world.store.snapshot().resources;
        match problem {
            Some((status, kind)) => {
                reply.assert_problem(case, status, kind);
                assert!(stored.is_empty(), "{case}");
            }
            None => {
                assert_eq!((reply.status, &reply.body["id"]), (200, &json!("demo")), "{case}: {}", reply.body);
                let resource = sample_resource();
                assert_eq!(stored.values().collect::<Vec<_>>(), [&resource], "{case}");
            }
        }
    }
}

// ---- cancellation policy ---------------------------------------------------

/// The sample booking, confirmed under `policy` (the sample slot starts 20 hours after `now`).
fn world_with_policy(policy: CancellationPolicy) -> World {
    let world = World::new();
    let mut booking = world.sample_claim(ClaimStatus::Confirmed);
    booking.terms.cancellation = policy;
    world.store.insert_claim(booking);
    world
}

#[tokio::test]
async fn a_customer_cannot_cancel_after_a_refusing_cutoff_but_the_host_refunds_in_full() {
    let policy = CancellationPolicy { free_until_hours: 24, late: LateCancellation::Refuse };
    let world = world_with_policy(policy);
    let before = world.store.snapshot();
    let by_customer = Fixture::load(events::CANCEL);
    world.cancel(&by_customer).await.assert_problem("20 hours before", 409, "outside_cancellation_window");
    assert_eq!(world.store.snapshot(), before, "nothing changed");
    assert!(world.payments.refunds().is_empty() && world.queue.jobs().is_empty());

    let by_host = by_customer.header("authorization", &format!("Bearer {ADMIN_TOKEN}"));
    let reply = world.cancel(&by_host).await;
    assert_eq!((reply.status, reply.body["refunded"].as_i64()), (200, Some(4500)), "{}", reply.body);
    assert_eq!(world.payments.refunds()[0].amount, None, "a full refund");
}

#[tokio::test]
async fn a_late_cancellation_refunds_the_policy_share_once_whatever_the_clock_does_next() {
    let policy = CancellationPolicy { free_until_hours: 24, late: LateCancellation::Refund { percent: 50 } };
    let mut world = world_with_policy(policy);
    let id = sample_reservation();
    // The refund fails once: the booking stays CANCELLING with its amount decided.
    world.payments.fail_next("refund_payment", PaymentError::Unavailable("timed out".into()));
    world.cancel(&Fixture::load(events::CANCEL)).await.assert_problem("Stripe down", 503, PAYMENTS_UNAVAILABLE);
    let cancelling = world.store.snapshot().claim_of(&id).cloned().unwrap();
    assert_eq!((cancelling.status, cancelling.refund_amount), (ClaimStatus::Cancelling, Some(2250)));

    // Retried after the start: the amount decided before still applies.
    world.now += Duration::days(2);
    let reply = world.cancel(&Fixture::load(events::CANCEL)).await;
    assert_eq!((reply.status, reply.body["refunded"].as_i64()), (200, Some(2250)), "{}", reply.body);
    let refunds = world.payments.refunds();
    assert_eq!((refunds.len(), refunds[0].amount, refunds[0].key.clone()), (1, Some(2250), format!("cancel-{id}")));
    assert!(world.store.snapshot().claim_of(&id).is_none(), "the slot is free");
}

#[tokio::test]
async fn a_partial_refund_retried_after_stripe_forgot_its_key_refunds_only_what_is_owed() {
    for percent in [50, 30] {
        let policy = CancellationPolicy { free_until_hours: 24, late: LateCancellation::Refund { percent } };
        let world = world_with_policy(policy);
        let id = sample_reservation();
        let booking = world.store.snapshot().claim_of(&id).cloned().unwrap();
        let payment = booking.payment_intent.clone().expect("the sample booking was paid");
        world.payments.set_paid(&payment, booking.amount);
        let owed = booking.amount * i64::from(percent) / 100;
        // The refund goes through; the write finishing the cancellation does not.
        for _ in 0..3 {
            world.store.fail_next(
                "cancel_booking",
                crate::ports::StoreError::Unavailable { op: "cancel", source: "down".into() },
            );
            world.cancel(&Fixture::load(events::CANCEL)).await.assert_problem("finish", 503, STORE_UNAVAILABLE);
            // A day later Stripe has forgotten the key; the page still offers Cancel.
            world.payments.forget_keys();
        }
        let reply = world.cancel(&Fixture::load(events::CANCEL)).await;
        assert_eq!((reply.status, reply.body["refunded"].as_i64()), (200, Some(owed)), "{percent}: {}", reply.body);
        let refunds = world.payments.refunds();
        let total: i64 = refunds.iter().filter_map(|r| r.amount).sum();
        assert_eq!((refunds.len(), total), (1, owed), "{percent}%: one refund of the policy's share");
        assert_eq!(world.store.snapshot().records[&id].status, ReservationStatus::Cancelled);
    }
}

#[tokio::test]
async fn a_cancel_of_a_booking_without_a_payment_claims_no_refund() {
    let world = World::new();
    let booking = Claim { payment_intent: None, ..world.sample_claim(ClaimStatus::Confirmed) };
    world.store.insert_claim(booking);
    let reply = world.cancel(&Fixture::load(events::CANCEL)).await;
    assert_eq!((reply.status, reply.body["refunded"].as_i64()), (200, Some(0)), "{}", reply.body);
    assert!(world.payments.refunds().is_empty());
}

#[tokio::test]
async fn the_memory_provider_refunds_partially_while_money_remains_and_forgets_keys() {
    // The fake must not hide a second refund: it makes one while money remains.
    use crate::ports::Payments;
    let payments = crate::testing::MemoryPayments::new();
    let id = sample_reservation();
    payments.set_paid("pi_x", 100);
    let refund = |key: &'static str, amount| payments.refund_payment("pi_x", key, &id, RefundCause::Cancelled, amount);
    assert!(refund("a", Some(30)).await.is_ok());
    assert_eq!(refund("a", Some(30)).await.unwrap(), "re_test_memory_1", "a replay under the same key");
    payments.forget_keys();
    assert!(refund("a", Some(30)).await.is_ok(), "a forgotten key refunds again, as Stripe does");
    assert!(matches!(refund("b", Some(50)).await, Err(PaymentError::Rejected(_))), "more than remains");
    assert_eq!(refund("c", None).await.unwrap(), "re_test_memory_3", "the rest");
    assert!(matches!(refund("d", None).await, Err(PaymentError::AlreadyRefunded)));
    let amounts: Vec<Option<i64>> = payments.refunds().iter().map(|r| r.amount).collect();
    assert_eq!(amounts, [Some(30), Some(30), Some(40)]);
}

// ---- reschedule --------------------------------------------------------------

/// The reschedule event moving the sample booking to `start`.
fn reschedule_to(start: &str) -> Fixture {
    let body = json!({ "start": start }).to_string();
    Fixture::load(events::RESCHEDULE).body(body)
}

#[tokio::test]
async fn a_customers_move_after_free_cancellation_ended_does_not_reopen_it() {
    let policy = CancellationPolicy { free_until_hours: 24, late: LateCancellation::Refund { percent: 50 } };
    let later = reschedule_to("2030-01-09T10:00:00Z");
    let as_host = |f: Fixture| f.header("authorization", &format!("Bearer {ADMIN_TOKEN}"));
    // (who moves, hours before now the move happens, refund of a cancel 20 hours before the old start)
    let cases: [(&str, bool, i64, i64); 3] = [
        ("the customer, inside the late window", false, 0, 2250),
        ("the host, inside the late window", true, 0, 4500),
        ("the customer, before the window closed", false, 24 + 4, 4500),
    ];
    for (case, host, moved_hours_ago, refunded) in cases {
        let mut world = world_with_policy(policy);
        world.now -= Duration::hours(moved_hours_ago);
        let event = if host { as_host(later.clone()) } else { later.clone() };
        let moved = world.reschedule(&event).await;
        assert_eq!(moved.status, 200, "{case}: {}", moved.body);
        world.now += Duration::hours(moved_hours_ago);
        let reply = world.cancel(&Fixture::load(events::CANCEL)).await;
        assert_eq!((reply.status, reply.body["refunded"].as_i64()), (200, Some(refunded)), "{case}: {}", reply.body);
    }
}

#[tokio::test]
async fn reschedule_moves_the_booking_and_its_locks_in_one_step_and_queues_the_event_update() {
    let world = World::with_sample(ClaimStatus::Confirmed);
    let id = sample_reservation();
    let before = world.store.snapshot().claim_of(&id).cloned().unwrap();
    let event = Fixture::load(events::RESCHEDULE);
    let target = at(Fixture::load(event.text_at("/body")).text_at("/start"));

    for attempt in ["first", "repeat"] {
        let reply = world.reschedule(&event).await;
        assert_eq!(reply.status, 200, "{attempt}: {}", reply.body);
        assert_eq!(
            (reply.body["start"].as_str(), reply.body["version"].as_u64()),
            (Some(rfc3339(target).as_str()), Some(1))
        );
    }
    let tables = world.store.snapshot();
    let moved = tables.claim_of(&id).unwrap();
    assert_eq!(
        (moved.slot.start, moved.end - moved.slot.start, moved.version),
        (target, before.end - before.slot.start, 1)
    );
    assert_eq!(
        (moved.payment_intent.as_ref(), moved.amount),
        (before.payment_intent.as_ref(), before.amount),
        "the payment carries over"
    );
    let locked: Vec<_> = tables
        .locks
        .values()
        .filter(|l| l.reservation_id == id)
        .map(|l| (l.resource_id.clone(), l.key.clone()))
        .collect();
    assert_eq!(locked, moved.locks(), "exactly the new interval's cells");
    assert!(
        !tables.locks.contains_key(&(before.slot.resource_id.clone(), LockKey::Cell(before.slot.start))),
        "the old cells are free"
    );
    let write = CalendarJob { action: CalendarAction::Write, reservation_id: id };
    assert_eq!(world.queue.jobs(), [write.clone(), write], "each answer queues the event's update");
}

#[tokio::test]
async fn reschedule_onto_another_booking_or_outside_the_rules_changes_nothing() {
    let event = Fixture::load(events::RESCHEDULE);
    let target = at(Fixture::load(event.text_at("/body")).text_at("/start"));
    let cases: Vec<(&str, Fixture, u16, &str)> = vec![
        ("taken", event.clone(), 409, "slot_taken"),
        ("off grid", reschedule_to("2030-01-07T10:10:00Z"), 422, "off_grid"),
        ("closed", reschedule_to("2030-01-07T20:00:00Z"), 422, "outside_opening_hours"),
        ("past", reschedule_to("2030-01-05T10:00:00Z"), 422, "slot_in_past"),
        ("no token", event.clone().header("authorization", "Bearer ct_wrong"), 401, "unauthorized"),
    ];
    for (case, event, status, kind) in cases {
        let world = World::with_sample(ClaimStatus::Confirmed);
        // Someone else's booking where the "taken" case wants to go.
        let other = ReservationId::new(&SlotKey { resource_id: sample_resource().id, start: target });
        world.store.insert_claim(Claim {
            slot: SlotKey { resource_id: sample_resource().id, start: target },
            end: target + Duration::minutes(30),
            ..claim(&sample_resource(), &other, ClaimStatus::Confirmed, None, world.now)
        });
        let before = world.store.snapshot();
        world.reschedule(&event).await.assert_problem(case, status, kind);
        assert_eq!(world.store.snapshot(), before, "{case}: nothing changed");
        assert!(world.queue.jobs().is_empty(), "{case}");
    }
}

#[tokio::test]
async fn only_a_confirmed_booking_is_rescheduled() {
    for status in [ClaimStatus::Held, ClaimStatus::PaymentPending, ClaimStatus::Cancelling] {
        let world = World::with_sample(status);
        let before = world.store.snapshot();
        world.reschedule(&Fixture::load(events::RESCHEDULE)).await.assert_problem(
            &format!("{status:?}"),
            409,
            "not_reschedulable",
        );
        assert_eq!(world.store.snapshot(), before);
    }
}

#[tokio::test]
async fn a_reschedule_that_fails_in_storage_or_the_queue_leaves_the_booking_or_is_finished_by_a_retry() {
    // The transaction fails: nothing moved, nothing queued, 503.
    let world = World::with_sample(ClaimStatus::Confirmed);
    let before = world.store.snapshot();
    world.store.fail_next("reschedule", unavailable("reschedule"));
    let event = Fixture::load(events::RESCHEDULE);
    world.reschedule(&event).await.assert_problem("storage down", 503, STORE_UNAVAILABLE);
    assert_eq!(world.store.snapshot(), before);
    assert!(world.queue.jobs().is_empty());

    // The move commits but the calendar job is not queued: 503; the retry
    // finds the booking moved, answers 200 and queues the job.
    world.queue.fail_next("enqueue");
    world.reschedule(&event).await.assert_problem("queue down", 503, QUEUE_UNAVAILABLE);
    assert!(world.queue.jobs().is_empty());
    let reply = world.reschedule(&event).await;
    assert_eq!((reply.status, reply.body["version"].as_u64()), (200, Some(1)), "{}", reply.body);
    assert_eq!(world.queue.jobs().len(), 1);
}

// ---- availability = what reserve accepts -------------------------------------

/// A Berlin resource with a buffered, noticed, day-limited type next to the
/// sample's 30-minute one, and two bookings already made.
fn typed_world() -> World {
    let spec = json!({
        "name": "Typed", "timezone": "Europe/Berlin",
        "weekly_hours": {"mon": [{"start": "09:00", "end": "12:00"}, {"start": "13:00", "end": "17:00"}]},
        "booking_types": [
            {"id": "a", "durations": [{"minutes": 30, "price": {"amount": 1000, "currency": "eur"}}],
             "buffer_after_minutes": 15, "start_interval_minutes": 15},
            {"id": "b", "durations": [{"minutes": 45, "price": {"amount": 2000, "currency": "eur"}}],
             "buffer_before_minutes": 10, "start_interval_minutes": 15, "min_notice_minutes": 1260, "max_per_day": 3}
        ]
    });
    let resource = crate::domain::Resource::from_spec(
        crate::domain::ResourceId::parse("typed").unwrap(),
        serde_json::from_value(spec).unwrap(),
    )
    .unwrap();
    let world = World { store: MemoryStore::with_resources([resource.clone()]), ..World::new() };
    // A confirmed "a" at 10:00 local (09:00Z, blocks to 09:45Z) and a live
    // hold of "b" at 14:00 local (13:00Z, blocks from 12:50Z).
    for (kind, minutes, start, status) in [
        ("a", 30, "2030-01-07T09:00:00Z", ClaimStatus::Confirmed),
        ("b", 45, "2030-01-07T13:00:00Z", ClaimStatus::Held),
    ] {
        let start = at(start);
        let slot = SlotKey { resource_id: resource.id.clone(), start };
        let id = ReservationId::new(&slot);
        let terms = resource.booking_type(Some(kind)).unwrap().terms(minutes);
        let expires = (status == ClaimStatus::Held).then(|| world.now + Duration::minutes(20));
        let base = claim(&resource, &id, status, expires, world.now);
        world.store.insert_claim(Claim { slot, end: start + Duration::minutes(minutes.into()), terms, ..base });
    }
    world
}

#[tokio::test]
async fn availability_offers_exactly_the_starts_reserve_accepts() {
    let (from, to) = ("2030-01-07T00:00:00Z", "2030-01-08T00:00:00Z");
    for (kind, minutes) in [("a", 30), ("b", 45)] {
        let world = typed_world();
        let query = format!("from={from}&to={to}&type={kind}&duration={minutes}");
        let event = Fixture::load(events::AVAILABILITY)
            .set("/pathParameters/id", "typed")
            .set("/rawQueryString", query.as_str())
            .set(
                "/queryStringParameters",
                json!({"from": from, "to": to, "type": kind, "duration": minutes.to_string()}),
            );
        let reply = world.availability(&event).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let offered: Vec<String> =
            reply.body["slots"].as_array().unwrap().iter().map(|s| s["start"].as_str().unwrap().to_owned()).collect();
        assert!(!offered.is_empty(), "{kind}");
        // Every 5 minutes of the day: reserve accepts it iff it was offered.
        let mut t = at(from);
        while t < at(to) {
            let fresh = typed_world();
            let body = json!({"resource_id": "typed", "start": rfc3339(t), "booking_type": kind,
                "duration_minutes": minutes, "customer": {"name": "Ada", "email": "ada@example.com"}});
            let reply = fresh.reserve(&Fixture::load(events::RESERVE).body(body.to_string())).await;
            let accepted = reply.status == 201;
            assert_eq!(accepted, offered.contains(&rfc3339(t)), "{kind} at {t}: {}", reply.body);
            t += Duration::minutes(5);
        }
    }
}
