//! The payment provider: Checkout Sessions, refunds, reading its signed
//! webhook deliveries, and reading its Checkout Session events back (the
//! catch-up). [`StripePayments`](crate::adapters::stripe::StripePayments)
//! and [`WebhookVerifier`](crate::adapters::stripe::WebhookVerifier) implement it.

use super::Cause;
use crate::domain::{CheckoutRequest, CheckoutSession, ReservationId, SessionEvent};
use chrono::{DateTime, Utc};
use std::future::Future;

pub use crate::domain::RefundCause;

/// Why a payment provider call failed.
#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    /// Down, timing out, rate limiting or failing on its side: retry later (503).
    #[error("payment provider unavailable")]
    Unavailable(#[source] Cause),
    /// Refused the request: a bug or misconfiguration on our side (500).
    #[error("payment provider refused the request")]
    Rejected(#[source] Cause),
    /// A refund found the payment already refunded in full (e.g. a retry after
    /// Stripe forgot the idempotency key): the refund's goal is met.
    #[error("the payment is already refunded")]
    AlreadyRefunded,
}

/// The payment provider (Stripe). Every call is idempotent: it sends an
/// idempotency key derived from what it does.
pub trait Payments: Send + Sync {
    /// Creates the Checkout Session of a hold (key
    /// `checkout-{reservation_id}-{expires_at}`): calling it again with the
    /// same request returns the same session.
    fn create_checkout_session(
        &self,
        request: &CheckoutRequest,
    ) -> impl Future<Output = Result<CheckoutSession, PaymentError>> + Send;
    /// Refunds `amount` minor units of a payment (all of it when `None`)
    /// under `idempotency_key` (e.g. `refund-{session_id}`,
    /// `cancel-{reservation_id}`): at most one refund per key, however often
    /// it is called. Returns the refund id.
    fn refund_payment(
        &self,
        payment_intent: &str,
        idempotency_key: &str,
        reservation_id: &ReservationId,
        cause: RefundCause,
        amount: Option<i64>,
    ) -> impl Future<Output = Result<String, PaymentError>> + Send;
    /// Every refund of a payment the provider keeps (all pages), newest
    /// first: what [`refund_once`](crate::api::refunds::refund_once) counts
    /// before it refunds, because an idempotency key protects a refund only
    /// for as long as the provider remembers it (Stripe: 24 hours).
    fn refunds_of(&self, payment_intent: &str) -> impl Future<Output = Result<Vec<RefundSeen>, PaymentError>> + Send;
    /// Every Checkout Session event the provider keeps that was created at
    /// or after `since` (whole seconds), all pages, **oldest first**; each
    /// read from its JSON by the reader the webhook uses, so an event is
    /// settled the same however it arrived. What the catch-up
    /// ([`crate::jobs::catch_up`]) settles when no webhook came. Stripe keeps
    /// events for 30 days.
    fn session_events_since(
        &self,
        since: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<ListedEvent>, PaymentError>> + Send;
}

/// A Checkout Session event read back from the provider's event list.
#[derive(Debug, Clone, PartialEq)]
pub struct ListedEvent {
    pub event_id: String,
    /// When the provider created it (whole seconds): the catch-up's cursor
    /// moves by it.
    pub created: DateTime<Utc>,
    /// What a webhook delivery of the same JSON would carry.
    pub delivery: Delivery,
}

/// A refund of a payment, as the provider lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundSeen {
    pub id: String,
    /// Minor units.
    pub amount: i64,
    /// Counts against the payment: not `failed` or `canceled`.
    pub standing: bool,
    /// The idempotency key it was made under, from its metadata (`None`:
    /// not made by slotguard, or made before slotguard recorded it).
    pub step: Option<String>,
    /// The metadata's `reservation_id` and `cause`, for refunds made
    /// before the step was recorded.
    pub reservation_id: Option<String>,
    pub cause: Option<String>,
}

/// Why a webhook request was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing Stripe-Signature header")]
    Missing,
    #[error("malformed Stripe-Signature header")]
    Malformed,
    #[error("no v1 signature matches the signing secret")]
    Mismatch,
    #[error("signature timestamp outside the 300 s tolerance")]
    Stale,
    #[error("the body is not UTF-8 JSON")]
    NotText,
}

/// What a verified delivery carries.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    /// A Checkout Session event slotguard acts on.
    Session(SessionEvent),
    /// A genuine event slotguard does not act on (another type, or a shape
    /// this library version cannot read of a type slotguard does not act
    /// on): acknowledge it so Stripe stops.
    Ignored { event_id: Option<String>, reason: String },
    /// A genuine Checkout Session event slotguard acts on, whose session it
    /// cannot read even leniently. It must not be dropped (a paid customer
    /// would get neither booking nor refund): answer 5xx so Stripe retries,
    /// and alarm.
    Unreadable { event_id: Option<String>, reason: String },
}

/// Reads webhook deliveries: checks the signature over the exact body bytes
/// and extracts what booking needs from the event.
pub trait WebhookVerify: Send + Sync {
    /// `signature` is the `Stripe-Signature` header, if any.
    fn verify(&self, body: &[u8], signature: Option<&str>) -> Result<Delivery, SignatureError>;
}
