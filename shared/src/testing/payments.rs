//! [`MemoryPayments`]: Checkout Sessions and refunds as Stripe keeps them,
//! and the signing secret the real webhook verifier is built with.

use super::{Faults, lock};
use crate::adapters::stripe::{WebhookVerifier, checkout_idempotency_key, sign};
use crate::domain::{CheckoutRequest, CheckoutSession, ReservationId};
use crate::ports::{PaymentError, Payments, RefundCause};
use chrono::Utc;
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
}

/// The payment provider in memory. Like Stripe, a key used again with the
/// same parameters gets the first answer and one with other parameters is
/// refused; a payment refunded in full refuses a refund under another key.
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
        if let Some(made) = ledger.refunds.iter().find(|r| r.key == idempotency_key) {
            let same = made.payment_intent == payment_intent
                && &made.reservation_id == reservation_id
                && made.cause == cause
                && made.amount == amount;
            return if same { Ok(made.id.clone()) } else { Err(reused_key()) };
        }
        if ledger.refunds.iter().any(|r| r.payment_intent == payment_intent) {
            return Err(PaymentError::AlreadyRefunded);
        }
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
}
