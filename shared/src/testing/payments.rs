//! [`MemoryPayments`]: Checkout Sessions, refunds and events as Stripe keeps
//! them, and the signing secret the real webhook verifier is built with.

use super::{Faults, lock};
use crate::adapters::stripe::{SESSION_EVENT_TYPES, WebhookVerifier, checkout_idempotency_key, listed_event, sign};
use crate::domain::{CheckoutRequest, CheckoutSession, ReservationId};
use crate::ports::{ListedEvent, PaymentError, Payments, RefundCause, RefundSeen};
use chrono::{DateTime, Utc};
use std::sync::Mutex;

/// The webhook signing secret of the tests.
pub(crate) const WEBHOOK_SECRET: &str = "whsec_unit_tests";

/// The real verifier, with [`WEBHOOK_SECRET`].
pub(crate) fn verifier() -> WebhookVerifier {
    WebhookVerifier::new(WEBHOOK_SECRET)
}

/// A `Stripe-Signature` header for `body`, signed now with [`WEBHOOK_SECRET`]
/// (the verifier checks the 300 s tolerance against the real clock).
pub(crate) fn signature(body: &str) -> String {
    sign(body, WEBHOOK_SECRET, Utc::now().timestamp())
}

/// A Checkout Session the fake made, under its idempotency key.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SessionMade {
    pub key: String,
    pub request: CheckoutRequest,
    pub session: CheckoutSession,
}

/// A refund the fake made.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RefundMade {
    pub id: String,
    pub key: String,
    pub payment_intent: String,
    pub reservation_id: ReservationId,
    pub cause: RefundCause,
    /// `None`: the whole payment.
    pub amount: Option<i64>,
}

#[derive(Debug, Default)]
struct Ledger {
    sessions: Vec<SessionMade>,
    refunds: Vec<RefundMade>,
    /// What each payment took, where a test said so ([`MemoryPayments::set_paid`]);
    /// any other payment is taken to be large enough for every partial refund.
    paid: std::collections::HashMap<String, i64>,
    /// Refunds whose keys the fake no longer remembers ([`MemoryPayments::forget_keys`]).
    forgotten: usize,
    /// Events as their JSON, in the order they were made ([`MemoryPayments::publish`]).
    events: Vec<String>,
}

/// The payment provider in memory. Like Stripe, a key used again with the
/// same parameters gets the first answer and one with other parameters is
/// refused (until [`MemoryPayments::forget_keys`], as Stripe forgets a key
/// after 24 hours); partial refunds are made while money remains, a refund
/// of more than remains is refused (`amount_too_large`) and a payment
/// refunded in full refuses any further refund (`charge_already_refunded`).
/// Events a test publishes are listed as Stripe's event list does: the
/// Checkout Session types only, by `created`, read by the real reader.
#[derive(Default)]
pub(crate) struct MemoryPayments {
    ledger: Mutex<Ledger>,
    faults: Faults<PaymentError>,
}

impl MemoryPayments {
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes the next call of `op` (`create_checkout_session`, `refund_payment`) fail with `error`.
    pub fn fail_next(&self, op: &'static str, error: PaymentError) {
        self.faults.push(op, error);
    }

    pub fn sessions(&self) -> Vec<SessionMade> {
        lock(&self.ledger).sessions.clone()
    }

    pub fn refunds(&self) -> Vec<RefundMade> {
        lock(&self.ledger).refunds.clone()
    }

    /// Says what `payment_intent` took, so refunds beyond it are refused.
    pub fn set_paid(&self, payment_intent: &str, amount: i64) {
        lock(&self.ledger).paid.insert(payment_intent.to_owned(), amount);
    }

    /// Makes an event (its JSON, as a webhook delivery would post it): the
    /// event list has it from now on, after those published before.
    pub fn publish(&self, event_json: impl Into<String>) {
        lock(&self.ledger).events.push(event_json.into());
    }

    /// Forgets every idempotency key used so far, as Stripe does 24 hours
    /// after a key's first use: a request under such a key runs afresh.
    pub fn forget_keys(&self) {
        let mut ledger = lock(&self.ledger);
        ledger.forgotten = ledger.refunds.len();
    }
}

fn reused_key() -> PaymentError {
    PaymentError::Rejected("keys for idempotent requests can only be used with the same parameters".into())
}

impl Payments for MemoryPayments {
    async fn create_checkout_session(&self, request: &CheckoutRequest) -> Result<CheckoutSession, PaymentError> {
        self.faults.take("create_checkout_session")?;
        let mut ledger = lock(&self.ledger);
        let key = checkout_idempotency_key(request);
        if let Some(made) = ledger.sessions.iter().find(|s| s.key == key) {
            return if &made.request == request { Ok(made.session.clone()) } else { Err(reused_key()) };
        }
        let id = format!("cs_test_memory_{}", ledger.sessions.len() + 1);
        let session = CheckoutSession {
            url: format!("https://checkout.stripe.test/c/pay/{id}"),
            id,
            expires_at: request.expires_at,
        };
        ledger.sessions.push(SessionMade { key, request: request.clone(), session: session.clone() });
        Ok(session)
    }

    async fn refund_payment(
        &self,
        payment_intent: &str,
        idempotency_key: &str,
        reservation_id: &ReservationId,
        cause: RefundCause,
        amount: Option<i64>,
    ) -> Result<String, PaymentError> {
        self.faults.take("refund_payment")?;
        let mut ledger = lock(&self.ledger);
        let remembered = ledger.forgotten;
        if let Some(made) = ledger.refunds[remembered..].iter().find(|r| r.key == idempotency_key) {
            let same = made.payment_intent == payment_intent
                && &made.reservation_id == reservation_id
                && made.cause == cause
                && made.amount == amount;
            return if same { Ok(made.id.clone()) } else { Err(reused_key()) };
        }
        let earlier: Vec<&RefundMade> = ledger.refunds.iter().filter(|r| r.payment_intent == payment_intent).collect();
        let paid = ledger.paid.get(payment_intent).copied();
        let refunded: Option<i64> = earlier.iter().map(|r| r.amount).sum();
        // `None` among the earlier refunds: refunded in full.
        let remaining = match (paid, refunded) {
            (_, None) => Some(0),
            (Some(paid), Some(sum)) => Some(paid - sum),
            (None, Some(_)) => None,
        };
        match (remaining, amount) {
            (Some(0), _) => return Err(PaymentError::AlreadyRefunded),
            (Some(left), Some(asked)) if asked > left => {
                return Err(PaymentError::Rejected("amount_too_large: the refund exceeds what remains".into()));
            }
            // A full refund after a partial one, of a payment of unknown size.
            (None, None) if !earlier.is_empty() => return Err(PaymentError::AlreadyRefunded),
            _ => {}
        }
        let amount = match (remaining, amount) {
            (Some(left), None) if !earlier.is_empty() => Some(left),
            _ => amount,
        };
        let refund = RefundMade {
            id: format!("re_test_memory_{}", ledger.refunds.len() + 1),
            key: idempotency_key.to_owned(),
            payment_intent: payment_intent.to_owned(),
            reservation_id: reservation_id.clone(),
            cause,
            amount,
        };
        ledger.refunds.push(refund.clone());
        Ok(refund.id)
    }

    async fn refunds_of(&self, payment_intent: &str) -> Result<Vec<RefundSeen>, PaymentError> {
        self.faults.take("refunds_of")?;
        let ledger = lock(&self.ledger);
        let paid = ledger.paid.get(payment_intent).copied();
        Ok(ledger
            .refunds
            .iter()
            .rev()
            .filter(|r| r.payment_intent == payment_intent)
            .map(|r| RefundSeen {
                id: r.id.clone(),
                // A full refund of a payment of unknown size: some positive amount.
                amount: r.amount.or(paid).unwrap_or(i64::MAX / 4),
                standing: true,
                step: Some(r.key.clone()),
                reservation_id: Some(r.reservation_id.to_string()),
                cause: Some(r.cause.as_str().to_owned()),
            })
            .collect())
    }

    async fn session_events_since(&self, since: DateTime<Utc>) -> Result<Vec<ListedEvent>, PaymentError> {
        self.faults.take("session_events_since")?;
        let ledger = lock(&self.ledger);
        let of_a_session_type = |json: &&String| {
            let event: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
            SESSION_EVENT_TYPES.contains(&event["type"].as_str().unwrap_or_default())
        };
        let mut listed: Vec<ListedEvent> = ledger
            .events
            .iter()
            .filter(of_a_session_type)
            .map(|json| listed_event(json, since))
            .filter(|e| e.created.timestamp() >= since.timestamp())
            .collect();
        listed.sort_by_key(|e| e.created);
        Ok(listed)
    }
}
