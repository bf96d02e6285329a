//! The Stripe adapter: the only code that touches async-stripe.
//!
//! [`StripePayments`] implements [`Payments`] with the maintained async-stripe
//! line (pinned `=1.0.0-rc.10`); its base URL is configurable, so the same
//! client talks to real Stripe with test or live keys, or to the local
//! simulator. [`WebhookVerifier`] checks `Stripe-Signature` and turns Checkout
//! Session events into [`SessionEvent`]s.
//!
//! Size: async-stripe's typed objects come with their readers, and a Checkout
//! Session, a Refund or a webhook `Event` reaches (through expandable fields)
//! most of Stripe's object model — about 3 MiB of code in every function that
//! read one. The requests are still built by async-stripe's request types and
//! sent by its client, but their replies are read into the few fields
//! slotguard uses ([`StripeRequest::build`] + `customize::<T>()`, the
//! client's own extension point), and webhook bodies are verified here (the
//! scheme below) and read from their JSON, as they already were. The event
//! list (`GET /v1/events`, for the catch-up) is one such request too, built
//! with the client's [`RequestBuilder`] (async-stripe-core's `ListEvent`
//! sits behind a crate feature slotguard does not enable); each listed event
//! is read by the very reader webhook deliveries go through.

use crate::domain::payment::metadata;
use crate::domain::{
    CheckoutRequest, CheckoutSession, Customer, ReservationId, SessionEvent, SessionEventKind, SessionFacts, rfc3339,
};
use crate::ports::{
    Delivery, ListedEvent, PaymentError, Payments, RefundCause, RefundSeen, SignatureError, WebhookVerify,
};
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::HashMap;
use std::time::Duration;
use stripe::{IdempotencyKey, RequestStrategy, StripeError, StripeRequest};
use stripe_checkout::checkout_session::{
    CreateCheckoutSession, CreateCheckoutSessionLineItems, CreateCheckoutSessionLineItemsPriceData,
    CreateCheckoutSessionPaymentIntentData, ProductData,
};
use stripe_client_core::{RequestBuilder, StripeMethod};
use stripe_core::refund::{CreateRefund, CreateRefundReason, ListRefund};
use stripe_shared::CheckoutSessionMode;

/// Stripe through async-stripe.
pub struct StripePayments {
    client: stripe::Client,
}

impl std::fmt::Debug for StripePayments {
    // The client holds the secret key: never print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StripePayments")
    }
}

impl StripePayments {
    /// A client for `secret_key`, talking to `api_base` (e.g. the simulator's
    /// `http://127.0.0.1:12111`) instead of `https://api.stripe.com` when given.
    pub fn new(secret_key: &str, api_base: Option<&str>) -> Result<Self, PaymentError> {
        crate::adapters::install_crypto_provider();
        let mut builder = stripe::ClientBuilder::new(secret_key).timeout(Duration::from_secs(10));
        if let Some(url) = api_base {
            builder = builder.url(url);
        }
        let client =
            builder.build().map_err(|e| PaymentError::Rejected(format!("client configuration: {e}").into()))?;
        Ok(Self { client })
    }
}

/// 5xx, 429, 409 (idempotency key in use) and transport failures are worth a
/// retry; other Stripe errors are our mistake.
fn classify(err: StripeError) -> PaymentError {
    match err {
        StripeError::Stripe(e, _) if e.code.as_ref().is_some_and(|c| c.as_str() == "charge_already_refunded") => {
            PaymentError::AlreadyRefunded
        }
        StripeError::Stripe(e, status) if matches!(status, 409 | 429) || status >= 500 => {
            PaymentError::Unavailable(format!("status {status}: {}", e.message.unwrap_or_default()).into())
        }
        StripeError::Stripe(e, status) => {
            PaymentError::Rejected(format!("status {status}: {}", e.message.unwrap_or_default()).into())
        }
        StripeError::ClientError(e) => PaymentError::Unavailable(e.into()),
        StripeError::Timeout => PaymentError::Unavailable("timed out".into()),
        other => PaymentError::Rejected(Box::new(other)),
    }
}

/// The Checkout Session's idempotency key: one per hold and per fixed
/// expiry, so every call with the hold's fixed parameters gets the same
/// session, and re-fixed parameters (the old expiry had come too close to
/// pass Stripe's 30-minute minimum before any session was created) get a new one.
pub fn checkout_idempotency_key(r: &CheckoutRequest) -> String {
    format!("checkout-{}-{}", r.reservation_id, r.expires_at.timestamp())
}

fn idempotent(key: String) -> Result<RequestStrategy, PaymentError> {
    IdempotencyKey::new(key)
        .map(RequestStrategy::Idempotent)
        .map_err(|e| PaymentError::Rejected(format!("idempotency key: {e}").into()))
}

impl Payments for StripePayments {
    async fn create_checkout_session(&self, r: &CheckoutRequest) -> Result<CheckoutSession, PaymentError> {
        let currency = r.currency.parse::<stripe_types::Currency>().expect("currency parsing is infallible");
        let mut price = CreateCheckoutSessionLineItemsPriceData::new(currency);
        price.unit_amount = Some(r.amount);
        price.product_data = Some(ProductData::new(r.product_name.clone()));
        let mut line = CreateCheckoutSessionLineItems::new();
        line.price_data = Some(price);
        line.quantity = Some(1);
        let meta = HashMap::from([
            (metadata::RESERVATION_ID.to_owned(), r.reservation_id.to_string()),
            (metadata::SLOT.to_owned(), r.slot.to_string()),
            (metadata::SLOT_END.to_owned(), rfc3339(r.slot_end)),
            (metadata::CUSTOMER_NAME.to_owned(), r.customer.name.clone()),
        ]);
        let mut intent = CreateCheckoutSessionPaymentIntentData::new();
        intent.metadata = Some(meta.clone());
        let session = CreateCheckoutSession::new()
            .mode(CheckoutSessionMode::Payment)
            .line_items(vec![line])
            .client_reference_id(r.reservation_id.to_string())
            .customer_email(r.customer.email.as_str())
            .metadata(meta)
            .payment_intent_data(intent)
            .expires_at(r.expires_at.timestamp())
            .success_url(r.success_url.clone())
            .cancel_url(r.cancel_url.clone())
            .build()
            .customize::<SessionReply>()
            .request_strategy(idempotent(checkout_idempotency_key(r))?)
            .send(&self.client)
            .await
            .map_err(classify)?;
        let url = session.url.ok_or_else(|| PaymentError::Rejected("Checkout Session has no url".into()))?;
        Ok(CheckoutSession {
            id: session.id,
            url,
            expires_at: DateTime::from_timestamp(session.expires_at, 0).unwrap_or(r.expires_at),
        })
    }

    async fn refund_payment(
        &self,
        payment_intent: &str,
        idempotency_key: &str,
        reservation_id: &ReservationId,
        cause: RefundCause,
        amount: Option<i64>,
    ) -> Result<String, PaymentError> {
        let mut refund = CreateRefund::new();
        if let Some(amount) = amount {
            refund = refund.amount(amount);
        }
        let refund = refund
            .payment_intent(payment_intent)
            .reason(CreateRefundReason::RequestedByCustomer)
            .metadata(HashMap::from([
                (metadata::RESERVATION_ID.to_owned(), reservation_id.to_string()),
                (metadata::REFUND_CAUSE.to_owned(), cause.as_str().to_owned()),
                (metadata::REFUND_STEP.to_owned(), idempotency_key.to_owned()),
            ]))
            .build()
            .customize::<RefundReply>()
            .request_strategy(idempotent(idempotency_key.to_owned())?)
            .send(&self.client)
            .await
            .map_err(classify)?;
        Ok(refund.id)
    }

    async fn refunds_of(&self, payment_intent: &str) -> Result<Vec<RefundSeen>, PaymentError> {
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        // Stripe allows 100 refunds a page; a payment has a handful at most,
        // so the bound only stops a provider that never says `has_more: false`.
        for _ in 0..100 {
            let mut list = ListRefund::new().payment_intent(payment_intent).limit(100);
            if let Some(id) = &after {
                list = list.starting_after(id.clone());
            }
            let page = list.build().customize::<RefundPage>().send(&self.client).await.map_err(classify)?;
            after = page.data.last().map(|r| r.id.clone());
            seen.extend(page.data.into_iter().map(|r| {
                let mut meta = r.metadata.unwrap_or_default();
                RefundSeen {
                    standing: !matches!(r.status.as_deref(), Some("failed" | "canceled")),
                    step: meta.remove(metadata::REFUND_STEP),
                    reservation_id: meta.remove(metadata::RESERVATION_ID),
                    cause: meta.remove(metadata::REFUND_CAUSE),
                    id: r.id,
                    amount: r.amount,
                }
            }));
            if !page.has_more || after.is_none() {
                return Ok(seen);
            }
        }
        Err(PaymentError::Unavailable("refund listing did not end".into()))
    }

    async fn session_events_since(&self, since: DateTime<Utc>) -> Result<Vec<ListedEvent>, PaymentError> {
        let mut listed = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..MAX_EVENT_PAGES {
            let query = EventQuery {
                types: &SESSION_EVENT_TYPES,
                created: CreatedSince { gte: since.timestamp() },
                limit: EVENTS_PER_PAGE,
                starting_after: after.as_deref(),
            };
            let page = RequestBuilder::new(StripeMethod::Get, "/events")
                .query(&query)
                .customize::<EventPage>()
                .send(&self.client)
                .await
                .map_err(classify)?;
            // Newest first: each page's last event is where the next page starts.
            let read: Vec<ListedEvent> =
                page.data.iter().map(|event| listed_event(&miniserde::json::to_string(event), since)).collect();
            after = read.last().map(|e| e.event_id.clone()).filter(|id| !id.is_empty());
            listed.extend(read);
            if !page.has_more || after.is_none() {
                listed.reverse();
                // Stable: events of one second keep Stripe's order, reversed.
                listed.sort_by_key(|e| e.created);
                return Ok(listed);
            }
        }
        Err(PaymentError::Unavailable(
            format!(
                "more than {} session events since {}",
                MAX_EVENT_PAGES * usize::from(EVENTS_PER_PAGE),
                rfc3339(since)
            )
            .into(),
        ))
    }
}

/// Stripe's largest page of a list.
const EVENTS_PER_PAGE: u8 = 100;

/// How many pages of events one listing reads at most (50 000 events; a
/// catch-up every few minutes reads a handful).
const MAX_EVENT_PAGES: usize = 500;

/// The query of `GET /v1/events`: the session event types slotguard acts
/// on, created at or after a time (`types[0]=...&created[gte]=...`).
#[derive(serde::Serialize)]
struct EventQuery<'a> {
    types: &'a [&'a str],
    created: CreatedSince,
    limit: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    starting_after: Option<&'a str>,
}

#[derive(serde::Serialize)]
struct CreatedSince {
    gte: i64,
}

/// A page of `GET /v1/events`: each event kept whole, as JSON, for
/// [`listed_event`] (the webhook's reader).
#[derive(miniserde::Deserialize)]
struct EventPage {
    data: Vec<miniserde::json::Value>,
    has_more: bool,
}

/// What slotguard reads of a created Checkout Session (other fields are skipped).
#[derive(miniserde::Deserialize)]
struct SessionReply {
    id: String,
    url: Option<String>,
    expires_at: i64,
}

/// What slotguard reads of a created Refund.
#[derive(miniserde::Deserialize)]
struct RefundReply {
    id: String,
}

/// What slotguard reads of a page of `GET /v1/refunds`.
#[derive(miniserde::Deserialize)]
struct RefundPage {
    data: Vec<RefundListed>,
    has_more: bool,
}

/// What slotguard reads of a listed Refund.
#[derive(miniserde::Deserialize)]
struct RefundListed {
    id: String,
    amount: i64,
    status: Option<String>,
    metadata: Option<std::collections::BTreeMap<String, String>>,
}

/// Verifies webhook deliveries with the endpoint's signing secret.
#[derive(Clone)]
pub struct WebhookVerifier {
    secret: String,
}

impl std::fmt::Debug for WebhookVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookVerifier")
    }
}

/// The event types slotguard subscribes to.
pub const SESSION_EVENT_TYPES: [&str; 4] = [
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed",
    "checkout.session.expired",
];

impl WebhookVerifier {
    pub fn new(secret: impl Into<String>) -> Self {
        Self { secret: secret.into() }
    }
}

impl WebhookVerify for WebhookVerifier {
    /// Checks the signature over the exact body bytes and reads the event.
    fn verify(&self, body: &[u8], signature: Option<&str>) -> Result<Delivery, SignatureError> {
        let signature = signature.ok_or(SignatureError::Missing)?;
        let payload = std::str::from_utf8(body).map_err(|_| SignatureError::NotText)?;
        check_signature(body, signature, &self.secret, Utc::now().timestamp())?;
        Ok(session_delivery(payload))
    }
}

/// How far a signature's `t` may be from now, either way (Stripe's libraries' default).
const TOLERANCE_SECONDS: u64 = 300;

/// Stripe's webhook signature scheme, as its libraries check it: the header is
/// `t={unix seconds},v1={hex},v1={hex},...` (other keys, e.g. `v0`, ignored); the
/// body is genuine if any `v1` equals HMAC-SHA256(secret, "{t}.{body}")
/// (compared in constant time), and fresh if `t` is within 300 s of `now`,
/// checked only after a signature matched. Several `v1`s are how Stripe signs
/// during a secret roll.
fn check_signature(body: &[u8], header: &str, secret: &str, now: i64) -> Result<(), SignatureError> {
    let mut t = None;
    let mut candidates = Vec::new();
    for pair in header.split(',') {
        let (key, value) = pair.split_once('=').ok_or(SignatureError::Mismatch)?;
        match key {
            "t" => t = Some(value.parse::<i64>().map_err(|_| SignatureError::Malformed)?),
            "v1" => candidates.push(value),
            _ => {}
        }
    }
    let t = t.ok_or(SignatureError::Mismatch)?;
    let mac = signature_mac(secret, t, body);
    let genuine = candidates.iter().any(|candidate| {
        data_encoding::HEXLOWER_PERMISSIVE
            .decode(candidate.as_bytes())
            .is_ok_and(|bytes| mac.clone().verify_slice(&bytes).is_ok())
    });
    if !genuine {
        return Err(SignatureError::Mismatch);
    }
    // `t` is signed, but a `t` at the ends of i64 must not overflow the check.
    match now.checked_sub(t).map(i64::unsigned_abs) {
        Some(skew) if skew <= TOLERANCE_SECONDS => Ok(()),
        _ => Err(SignatureError::Stale),
    }
}

/// Reads a verified event, taking only the fields booking needs from its JSON
/// (so a field or enum value added to Stripe's API later changes nothing).
pub(crate) fn session_delivery(payload: &str) -> Delivery {
    match serde_json::from_str::<serde_json::Value>(payload) {
        Ok(event) => delivery_of(&event),
        Err(_) => Delivery::Unreadable { event_id: None, reason: "not JSON".to_owned() },
    }
}

/// An event of the provider's event list, read as a webhook delivery of the
/// same JSON is ([`session_delivery`]), with its id and `created` time. An
/// event without a readable `created` (never, from Stripe) is unreadable and
/// dated `fallback`, the start of the listing, so it is met first.
pub(crate) fn listed_event(payload: &str, fallback: DateTime<Utc>) -> ListedEvent {
    let Ok(event) = serde_json::from_str::<serde_json::Value>(payload) else {
        let delivery = Delivery::Unreadable { event_id: None, reason: "not JSON".to_owned() };
        return ListedEvent { event_id: String::new(), created: fallback, delivery };
    };
    let event_id = event["id"].as_str().unwrap_or_default().to_owned();
    let created = event["created"].as_i64().and_then(|t| DateTime::from_timestamp(t, 0));
    let delivery = match created {
        Some(_) => delivery_of(&event),
        None => Delivery::Unreadable { event_id: Some(event_id.clone()), reason: "no created time".to_owned() },
    };
    ListedEvent { event_id, created: created.unwrap_or(fallback), delivery }
}

fn delivery_of(event: &serde_json::Value) -> Delivery {
    let event_id = event["id"].as_str().map(str::to_owned);
    let type_ = event["type"].as_str().unwrap_or_default();
    if !SESSION_EVENT_TYPES.contains(&type_) {
        return Delivery::Ignored { event_id, reason: format!("event type {type_}") };
    }
    let unreadable = |why: &str| Delivery::Unreadable { event_id: event_id.clone(), reason: why.to_owned() };
    let Some(id) = event_id.clone() else { return unreadable("no event id") };
    let session = &event["data"]["object"];
    let Some(session_id) = session["id"].as_str().filter(|id| !id.is_empty()) else {
        return unreadable("no session id");
    };
    let kind = match type_ {
        "checkout.session.completed" => match session["payment_status"].as_str() {
            Some("paid") => SessionEventKind::Completed { paid: true },
            Some("unpaid") => SessionEventKind::Completed { paid: false },
            Some("no_payment_required") => SessionEventKind::CompletedWithoutPayment,
            _ => return unreadable("unknown payment_status"),
        },
        "checkout.session.async_payment_succeeded" => SessionEventKind::AsyncPaymentSucceeded,
        "checkout.session.async_payment_failed" => SessionEventKind::AsyncPaymentFailed,
        _ => SessionEventKind::Expired,
    };
    let text = |v: &serde_json::Value| v.as_str().map(str::to_owned);
    let meta = |key: &str| text(&session["metadata"][key]);
    let payment_intent = text(&session["payment_intent"]).or_else(|| text(&session["payment_intent"]["id"]));
    let facts = SessionFacts {
        session_id: session_id.to_owned(),
        reservation_id: meta(metadata::RESERVATION_ID)
            .or_else(|| text(&session["client_reference_id"]))
            .and_then(|id| ReservationId::parse(&id)),
        payment_intent,
        customer: match (
            meta(metadata::CUSTOMER_NAME),
            text(&session["customer_details"]["email"]).or_else(|| text(&session["customer_email"])),
        ) {
            (Some(name), Some(email)) => Customer::parse(&name, &email).ok(),
            _ => None,
        },
        slot_end: meta(metadata::SLOT_END)
            .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
            .map(|t| t.with_timezone(&Utc)),
        // With Adaptive Pricing the customer pays in their own currency; the
        // price slotguard set is the conversion's source.
        amount: session["currency_conversion"]["amount_total"].as_i64().or(session["amount_total"].as_i64()),
        currency: text(&session["currency_conversion"]["source_currency"]).or_else(|| text(&session["currency"])),
    };
    Delivery::Session(SessionEvent { event_id: id, kind, session: facts })
}

/// Signs a webhook body as Stripe does, for the simulator, tests and the
/// `sign-event` tool: `t={timestamp},v1={hex HMAC-SHA256("{t}.{body}")}`.
pub fn sign(body: &str, secret: &str, timestamp: i64) -> String {
    let v1 = data_encoding::HEXLOWER.encode(&signature_mac(secret, timestamp, body.as_bytes()).finalize().into_bytes());
    format!("t={timestamp},v1={v1}")
}

/// HMAC-SHA256 keyed with the signing secret over `"{t}.{body}"`, the one
/// computation both [`sign`] and the verifier make.
fn signature_mac(secret: &str, t: i64, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

#[cfg(test)]
mod props;

#[cfg(test)]
mod listing_tests {
    use super::*;

    const COMPLETED: &str = include_str!("../../../../events/stripe/checkout.session.completed.json");

    #[test]
    fn a_listed_event_is_read_as_its_webhook_delivery_with_its_time() {
        let since = DateTime::from_timestamp(1_893_900_000, 0).unwrap();
        let listed = listed_event(COMPLETED, since);
        assert_eq!(listed.event_id, "evt_1Example1");
        assert_eq!(listed.created.timestamp(), 1_893_918_701);
        assert_eq!(listed.delivery, session_delivery(COMPLETED));
        assert!(matches!(listed.delivery, Delivery::Session(_)));
    }

    #[test]
    fn a_listed_event_without_a_time_or_json_is_unreadable_and_met_first() {
        let since = DateTime::from_timestamp(1_893_900_000, 0).unwrap();
        let mut event: serde_json::Value = serde_json::from_str(COMPLETED).unwrap();
        event.as_object_mut().unwrap().remove("created");
        for text in [event.to_string(), "{not json".to_owned()] {
            let listed = listed_event(&text, since);
            assert_eq!(listed.created, since);
            assert!(matches!(listed.delivery, Delivery::Unreadable { .. }), "{listed:?}");
        }
    }

    #[test]
    fn the_event_query_names_the_four_session_types_and_the_time() {
        let query = EventQuery {
            types: &SESSION_EVENT_TYPES,
            created: CreatedSince { gte: 1_893_900_000 },
            limit: EVENTS_PER_PAGE,
            starting_after: Some("evt_1"),
        };
        let built = RequestBuilder::new(StripeMethod::Get, "/events").query(&query);
        let text = percent_encoding::percent_decode_str(built.query.as_deref().unwrap()).decode_utf8().unwrap();
        assert_eq!(
            text,
            "types[0]=checkout.session.completed&types[1]=checkout.session.async_payment_succeeded\
             &types[2]=checkout.session.async_payment_failed&types[3]=checkout.session.expired\
             &created[gte]=1893900000&limit=100&starting_after=evt_1"
        );
    }
}
