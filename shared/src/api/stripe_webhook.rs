//! `POST /webhooks/stripe`: Stripe's Checkout Session events.
//!
//! The signature is checked over the body exactly as API Gateway delivered it;
//! a bad one is a `400` and nothing is written.
//!
//! Every session gets one final outcome (`PAYMENT#{session}`), written once,
//! whatever order Stripe delivers its events in. That outcome item is the
//! idempotency record: it is written in the same transaction as the change
//! it decides, keyed by session (so two events of one session, e.g.
//! `completed` then `async_payment_succeeded`, settle it once), and every
//! delivery starts by reading it with the checkout record and the booking
//! (one `BatchGetItem`). A paid session is confirmed in two round trips:
//! that read and one `TransactWriteItems`, then the calendar job is sent.
//! A redelivery, a concurrent delivery, or a retry after a crash between any
//! two steps reads the recorded outcome and finishes what it says (sending
//! the job again, refunding under the same key):
//!
//! - A session settles a reservation only if it is the one slotguard created
//!   for it (recorded at checkout), for the expected amount and currency.
//! - `completed` + `paid`, `async_payment_succeeded`: if the session is the
//!   reservation's own, the slot has not started, and the slot is free or
//!   still this reservation's, the outcome CONFIRMED is recorded in the same
//!   transaction that confirms the claim (CONFIRMED, no TTL), and a calendar
//!   job is queued (a failed send is a 503, so Stripe redelivers). Otherwise
//!   (someone else has the slot, the slot started, another session naming the
//!   reservation, or the session was already recorded failed or expired) the
//!   outcome is REFUNDED with its cause, and the payment is refunded with key
//!   `refund-{session}`. A refund Stripe refuses goes to the operator queue.
//! - `completed` + `unpaid` (delayed payment methods): the reservation's own
//!   session keeps the slot, without TTL, until the async result arrives, but
//!   only while the session has no outcome (one transaction).
//! - `expired`, `async_payment_failed`: the outcome FAILED or EXPIRED is
//!   recorded and, for the reservation's own session, its hold released, in
//!   one transaction; a later `completed` + `unpaid` then keeps nothing.
//! - `completed` + `no_payment_required`: nothing was charged; ignored.
//! - Another event type: `200`, ignored. A Checkout Session event the typed
//!   client cannot read is read leniently from the signed JSON; if even that
//!   fails, `503` (Stripe retries) and the `UnreadableSessionEvents` alarm.

use super::problem::api_error;
use super::{json_response, respond};
use crate::domain::{
    CalendarAction, CalendarJob, CheckoutRecord, Claim, ClaimStatus, PaymentOutcome, ReservationId, ReservationStatus,
    SessionEvent, SessionEventKind, SessionFacts,
};
use crate::ports::{
    Attention, AttentionStore, CalendarQueue, ClaimOutcome, ClaimStore, PaymentError, PaymentStore, Payments,
    QueueError, RefundCause, ReservationHistory, ReservationRecord, SessionState, StoreError,
};
use crate::ports::{Delivery, SignatureError, WebhookVerify};
use chrono::{DateTime, Utc};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use tracing::Instrument;

/// The header Stripe signs deliveries with.
pub const SIGNATURE_HEADER: &str = "stripe-signature";

/// What the webhook handler needs from storage.
pub trait WebhookStore: ClaimStore + PaymentStore + ReservationHistory + AttentionStore {}
impl<T: ClaimStore + PaymentStore + ReservationHistory + AttentionStore> WebhookStore for T {}

/// Everything the webhook handler talks to.
pub struct WebhookDeps<'a, S, P, Q, V> {
    pub store: &'a S,
    pub payments: &'a P,
    pub calendar: &'a Q,
    pub verifier: &'a V,
}

/// What settling a session event talks to, however the event arrived (a
/// signed delivery, or read back from Stripe's Events API by the catch-up).
pub struct SettleDeps<'a, S, P, Q> {
    pub store: &'a S,
    pub payments: &'a P,
    pub calendar: &'a Q,
}

impl<S, P, Q, V> WebhookDeps<'_, S, P, Q, V> {
    fn settle(&self) -> SettleDeps<'_, S, P, Q> {
        SettleDeps { store: self.store, payments: self.payments, calendar: self.calendar }
    }
}

/// The `200` of a delivery: Stripe stops retrying it.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct WebhookAck {
    pub received: bool,
    /// What the event did (`confirmed`, `refunded_late`, ...), when slotguard acted on it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// Why the event was not acted on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ignored: Option<String>,
}

impl WebhookAck {
    fn outcome(outcome: &str) -> Self {
        Self { received: true, outcome: Some(outcome.to_owned()), ignored: None }
    }

    fn ignored(reason: impl Into<String>) -> Self {
        Self { received: true, outcome: None, ignored: Some(reason.into()) }
    }
}

/// Handles `POST /webhooks/stripe`.
#[utoipa::path(
    post,
    path = "/webhooks/stripe",
    tag = "stripe",
    operation_id = "stripeWebhook",
    summary = "Stripe's Checkout Session events (signed; Stripe only)",
    params(("Stripe-Signature" = String, Header, description = "Stripe's signature of the body")),
    request_body(content = Object, description = "A Stripe event, as Stripe sends it"),
    responses((status = 200, description = "Received", body = WebhookAck)),
)]
pub async fn stripe_webhook<S: WebhookStore, P: Payments, Q: CalendarQueue, V: WebhookVerify>(
    deps: WebhookDeps<'_, S, P, Q, V>,
    req: Request,
) -> Response<Body> {
    stripe_webhook_at(deps, req, Utc::now()).await
}

/// [`stripe_webhook()`] at a given instant (tests drive the clock; the
/// signature's 300 s tolerance is still checked against the real clock).
pub async fn stripe_webhook_at<S: WebhookStore, P: Payments, Q: CalendarQueue, V: WebhookVerify>(
    deps: WebhookDeps<'_, S, P, Q, V>,
    req: Request,
    now: DateTime<Utc>,
) -> Response<Body> {
    respond(run(&deps, &req, now).await)
}

/// Why a delivery was not acknowledged (Stripe retries a 5xx; a 4xx it
/// reports on the dashboard).
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error(transparent)]
    Signature(#[from] SignatureError),
    #[error("Checkout Session event {event_id} unreadable: {reason}")]
    Unreadable { event_id: String, reason: String },
    #[error("settling the session")]
    Store(#[from] StoreError),
    #[error("refunding the session")]
    Payment(#[from] PaymentError),
    #[error("queueing the calendar write")]
    Queue(#[from] QueueError),
    /// Every round found the state changed under it.
    #[error("concurrent updates; retry")]
    ConcurrentUpdate,
}

api_error!(WebhookError {
    wraps: [Store, Payment, Queue],
    Self::Signature(_) => InvalidSignature,
    Self::Unreadable { .. } => UnreadableEvent,
    Self::ConcurrentUpdate => ConcurrentUpdate,
});

async fn run<S: WebhookStore, P: Payments, Q: CalendarQueue, V: WebhookVerify>(
    deps: &WebhookDeps<'_, S, P, Q, V>,
    req: &Request,
    now: DateTime<Utc>,
) -> Result<Response<Body>, WebhookError> {
    let signature = req.headers().get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
    let delivery = deps.verifier.verify(req.body().as_ref(), signature)?;
    let event = match delivery {
        Delivery::Ignored { event_id, reason } => {
            tracing::info!(event_id = event_id.as_deref().unwrap_or("?"), %reason, "webhook event ignored");
            return Ok(json_response(StatusCode::OK, &WebhookAck::ignored(reason)));
        }
        Delivery::Unreadable { event_id, reason } => {
            crate::metrics::count("UnreadableSessionEvents", &[]);
            return Err(WebhookError::Unreadable { event_id: event_id.unwrap_or_else(|| "?".into()), reason });
        }
        Delivery::Session(event) => event,
    };
    handle_event(deps, &event, now).await
}

async fn handle_event<S: WebhookStore, P: Payments, Q: CalendarQueue, V: WebhookVerify>(
    deps: &WebhookDeps<'_, S, P, Q, V>,
    event: &SessionEvent,
    now: DateTime<Utc>,
) -> Result<Response<Body>, WebhookError> {
    Ok(json_response(StatusCode::OK, &settle_session_event(&deps.settle(), event, now).await?))
}

/// Settles one Checkout Session event: the webhook's work once the event is
/// known genuine. Safe to run any number of times, in any order with the
/// session's other events: the catch-up runs events the webhook may have
/// settled already through here too.
pub async fn settle_session_event<S: WebhookStore, P: Payments, Q: CalendarQueue>(
    deps: &SettleDeps<'_, S, P, Q>,
    event: &SessionEvent,
    now: DateTime<Utc>,
) -> Result<WebhookAck, WebhookError> {
    let Some(reservation_id) = event.session.reservation_id.clone() else {
        tracing::info!(event_id = %event.event_id, "session not created by slotguard; ignored");
        return Ok(WebhookAck::ignored("not a slotguard session"));
    };
    let span = tracing::info_span!("stripe_event", event_id = %event.event_id, %reservation_id, session_id = %event.session.session_id);
    let outcome = async {
        let paid =
            matches!(event.kind, SessionEventKind::Completed { paid: true } | SessionEventKind::AsyncPaymentSucceeded);
        let state = deps.store.session_state(&reservation_id, &event.session.session_id).await?;
        let own = state.checkout.clone().filter(|r| r.is_own(&event.session, paid));
        let session = Session { reservation_id: &reservation_id, facts: &event.session, own: own.as_ref() };
        match event.kind {
            SessionEventKind::Completed { paid: true } | SessionEventKind::AsyncPaymentSucceeded => {
                settle_paid(deps, &session, state, now).await
            }
            SessionEventKind::Completed { paid: false } => {
                keep_for_pending_payment(deps.store, &session, state, now).await
            }
            // Nothing was charged: nothing is bought; the hold lapses on its own.
            SessionEventKind::CompletedWithoutPayment => Ok("ignored_no_payment"),
            SessionEventKind::AsyncPaymentFailed => {
                release(deps.store, &session, state, PaymentOutcome::Failed, now).await
            }
            SessionEventKind::Expired => release(deps.store, &session, state, PaymentOutcome::Expired, now).await,
        }
    }
    .instrument(span)
    .await?;
    tracing::info!(outcome, "session event settled");
    Ok(WebhookAck::outcome(outcome))
}

/// A session event's reservation, facts, and the reservation's own checkout
/// record if (and only if) this session is the one slotguard created for it.
struct Session<'a> {
    reservation_id: &'a ReservationId,
    facts: &'a SessionFacts,
    own: Option<&'a CheckoutRecord>,
}

/// The claim this reservation would own once paid: its current claim if it
/// still has one, else rebuilt from its checkout record.
fn claim_for(
    reservation_id: &ReservationId,
    current: Option<Claim>,
    own: &CheckoutRecord,
    facts: &SessionFacts,
    status: ClaimStatus,
    now: DateTime<Utc>,
) -> Claim {
    let base = match current.filter(|c| &c.reservation_id == reservation_id) {
        Some(claim) => claim,
        None => Claim::from_checkout(own, status, now),
    };
    Claim {
        status,
        expires_at: None,
        payment_intent: facts.payment_intent.clone().or(base.payment_intent.clone()),
        ..base
    }
}

/// Gives a paid session its one outcome, then carries it out. Every round
/// re-reads the recorded outcome first, so a redelivery, a concurrent delivery
/// or a crash between steps all end the same way.
async fn settle_paid<S: WebhookStore, P: Payments, Q: CalendarQueue>(
    deps: &SettleDeps<'_, S, P, Q>,
    session: &Session<'_>,
    mut state: SessionState,
    now: DateTime<Utc>,
) -> Result<&'static str, WebhookError> {
    let store = deps.store;
    let (reservation_id, facts) = (session.reservation_id, session.facts);
    let confirmed = || async {
        let job = CalendarJob { action: CalendarAction::Write, reservation_id: reservation_id.clone() };
        deps.calendar.enqueue(&job).await?;
        Ok::<_, WebhookError>("confirmed")
    };
    for round in 0..4 {
        if round > 0 {
            state = store.session_state(reservation_id, &facts.session_id).await?;
        }
        let cause = match state.outcome {
            Some(PaymentOutcome::Confirmed) => return confirmed().await,
            Some(PaymentOutcome::Refunded(cause)) => return refund(deps, session, cause, now).await,
            // The session was recorded failed or expired, and now says paid:
            // never resurrect the claim; return the money.
            Some(PaymentOutcome::Failed | PaymentOutcome::Expired) => RefundCause::AfterOutcome,
            None => match session.own {
                None => RefundCause::NotOwnSession,
                Some(_) if now >= reservation_id.slot_key().start => RefundCause::TooLate,
                // The hold was retired without this session's outcome (its
                // checkout released it when the settings changed, while a
                // concurrent checkout created this session): the
                // reservation is over; its payment is returned, never
                // turned into a booking under the old terms.
                Some(_) if state.claim.is_none() && retired(store, reservation_id).await? => RefundCause::AfterOutcome,
                Some(own) => {
                    let booking =
                        claim_for(reservation_id, state.claim.take(), own, facts, ClaimStatus::Confirmed, now);
                    match store.confirm_paid(&booking, &facts.session_id, now).await? {
                        // The outcome is recorded with the booking: the job goes
                        // now; if sending fails (503), Stripe's redelivery reads
                        // the outcome and sends it.
                        ClaimOutcome::Done => {
                            tracing::info!(slot = %booking.slot, "booking confirmed");
                            return confirmed().await;
                        }
                        // A live booking or hold of someone else's overlaps it (buffers included).
                        ClaimOutcome::Taken { .. } => RefundCause::SlotTaken,
                        ClaimOutcome::Stale => continue,
                    }
                }
            },
        };
        if store.decide_refund(&facts.session_id, reservation_id, cause, now).await? {
            tracing::warn!(cause = cause.as_str(), "paid session cannot buy the booking: refunding");
            let metric = match cause {
                RefundCause::SlotTaken => "GhostPaymentRefunds",
                RefundCause::NotOwnSession => "ForeignPaymentRefunds",
                _ => "LatePaymentRefunds",
            };
            crate::metrics::count(metric, &[]);
        }
    }
    Err(WebhookError::ConcurrentUpdate)
}

/// Refunds a paid session whose outcome is REFUNDED, under key
/// `refund-{session}`: one refund per session, however often this runs.
/// A refund Stripe refuses goes to the operator queue and the event is
/// acknowledged: retrying would not change Stripe's mind.
async fn refund<S: WebhookStore, P: Payments, Q: CalendarQueue>(
    deps: &SettleDeps<'_, S, P, Q>,
    session: &Session<'_>,
    cause: RefundCause,
    now: DateTime<Utc>,
) -> Result<&'static str, WebhookError> {
    let (reservation_id, facts) = (session.reservation_id, session.facts);
    let reference = format!("refund-{}", facts.session_id);
    let Some(payment_intent) = &facts.payment_intent else {
        let detail = "the paid session names no payment to refund";
        raise(deps.store, &reference, "paid_without_payment_intent", reservation_id, detail, now).await?;
        return Ok("needs_attention");
    };
    match super::refunds::refund_once(deps.payments, payment_intent, &reference, reservation_id, cause, None).await {
        Ok(refund_id) => tracing::info!(%refund_id, "payment refunded"),
        Err(PaymentError::AlreadyRefunded) => tracing::info!("payment was already refunded"),
        Err(e @ PaymentError::Unavailable(_)) => return Err(e.into()),
        Err(e @ PaymentError::Rejected(_)) => {
            let detail = super::problem::Chain(&e).to_string();
            raise(deps.store, &reference, "refund_rejected", reservation_id, &detail, now).await?;
            return Ok("needs_attention");
        }
    }
    // Only the reservation's own payment tells its story; another session
    // naming it leaves the reservation as it is.
    if session.own.is_some() && cause != RefundCause::NotOwnSession {
        // A hold (or a pending payment's claim) of this reservation must not
        // outlive its refunded payment.
        let record = record_of(session, ReservationStatus::Refunded, now);
        // A failed condition means the hold changed since it was read (its
        // checkout extended it, a pending payment took it over): read again
        // and retire what is there, never leave it behind the refund. The
        // same hold failing twice will not change by retrying (its locks are
        // no longer its own: it lapsed on another clock); it lapses on its own.
        let mut tried: Option<Claim> = None;
        for _ in 0..4 {
            let hold = deps.store.get_claim(reservation_id).await?;
            match hold.filter(|c| &c.reservation_id == reservation_id && c.status.is_unpaid()) {
                Some(hold) if tried.as_ref() != Some(&hold) => {
                    if deps.store.retire_hold(&hold, &record, now).await? {
                        return Ok("refunded");
                    }
                    tried = Some(hold);
                }
                _ => break,
            }
        }
        deps.store.record_reservation(&record).await?;
    }
    Ok("refunded")
}

/// Whether the reservation has its final record (released, refunded,
/// cancelled): its booking item is gone for good, and no session may bring it back.
async fn retired<S: WebhookStore>(store: &S, reservation_id: &ReservationId) -> Result<bool, StoreError> {
    Ok(store.get_reservation_record(reservation_id).await?.is_some())
}

/// Puts a problem only a person can settle on the operator queue, and counts it.
pub(crate) async fn raise<S: AttentionStore>(
    store: &S,
    reference: &str,
    kind: &str,
    reservation_id: &ReservationId,
    detail: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    tracing::error!(reference, kind, detail = %crate::telemetry::scrub(detail), "needs an operator");
    crate::metrics::count("NeedsAttention", &[]);
    let attention = Attention {
        reference: reference.to_owned(),
        kind: kind.to_owned(),
        reservation_id: Some(reservation_id.clone()),
        detail: detail.to_owned(),
        raised_at: now,
    };
    store.raise_attention(&attention).await
}

/// The record of a reservation its own session settled (`own` is set): it
/// keeps the secret's hash, so the customer still sees the outcome's details.
fn record_of(session: &Session<'_>, status: ReservationStatus, now: DateTime<Utc>) -> ReservationRecord {
    let &Session { reservation_id, facts, own } = session;
    ReservationRecord {
        reservation_id: reservation_id.clone(),
        start: reservation_id.slot_key().start,
        end: facts.slot_end.unwrap_or_else(|| reservation_id.slot_key().start),
        status,
        amount: facts.amount.unwrap_or_default(),
        currency: facts.currency.clone().unwrap_or_default(),
        recorded_at: now,
        secret_hash: own.and_then(|r| r.secret_hash.clone()),
        calendars: Vec::new(),
    }
}

/// `completed` with `unpaid`: a delayed payment method was accepted. Keeps
/// the slot for it, without expiry, unless the session already has its final
/// outcome (events come in any order) or the slot is someone else's.
async fn keep_for_pending_payment<S: WebhookStore>(
    store: &S,
    session: &Session<'_>,
    mut state: SessionState,
    now: DateTime<Utc>,
) -> Result<&'static str, WebhookError> {
    let (reservation_id, facts) = (session.reservation_id, session.facts);
    let Some(own) = session.own else {
        // Not the reservation's session: it cannot hold the slot. If it is paid later, it is refunded then.
        return Ok("ignored_not_own_session");
    };
    if now >= reservation_id.slot_key().start {
        // Too late to keep anything; if the payment succeeds, it is refunded then.
        return Ok("slot_started");
    }
    for round in 0..4 {
        if round > 0 {
            state = store.session_state(reservation_id, &facts.session_id).await?;
        }
        if state.outcome.is_some() {
            return Ok("already_settled");
        }
        let current = state.claim.take();
        if current.as_ref().is_some_and(|c| c.status != ClaimStatus::Held) {
            return Ok("payment_pending");
        }
        if current.is_none() && retired(store, reservation_id).await? {
            // Released without this session's outcome: nothing to keep.
            return Ok("already_settled");
        }
        let pending = claim_for(reservation_id, current, own, facts, ClaimStatus::PaymentPending, now);
        match store.hold_for_pending_payment(&pending, &facts.session_id, now).await? {
            ClaimOutcome::Done => return Ok("payment_pending"),
            // Someone else has the slot; if the payment succeeds, it is refunded then.
            ClaimOutcome::Taken { .. } => return Ok("slot_taken"),
            ClaimOutcome::Stale => continue,
        }
    }
    Err(WebhookError::ConcurrentUpdate)
}

/// `async_payment_failed`, `expired`: records the session's final unpaid
/// outcome and, if the session is the reservation's own, releases its hold in
/// the same transaction. A later event of the same session (a late
/// `completed` with `unpaid`) then finds the outcome and keeps nothing.
async fn release<S: WebhookStore>(
    store: &S,
    session: &Session<'_>,
    mut state: SessionState,
    outcome: PaymentOutcome,
    now: DateTime<Utc>,
) -> Result<&'static str, WebhookError> {
    let (reservation_id, facts) = (session.reservation_id, session.facts);
    for round in 0..4 {
        if round > 0 {
            state = store.session_state(reservation_id, &facts.session_id).await?;
        }
        if state.outcome.is_some() {
            return Ok("already_settled");
        }
        let hold = match session.own {
            Some(_) => state.claim.take().filter(|c| c.status.is_unpaid()),
            None => None,
        };
        if let Some(hold) = hold {
            let record = record_of(session, ReservationStatus::Released, now);
            if store.release(&hold, &record, &facts.session_id, outcome, now).await? {
                tracing::info!("hold released");
                return Ok("released");
            }
            continue; // it changed between the read and the transaction: decide again
        }
        // Nothing of this reservation's to release (confirmed, gone, someone
        // else's, or not its session): only the outcome is recorded.
        if store.record_unpaid_outcome(&facts.session_id, reservation_id, outcome, now).await? {
            return Ok("nothing_to_release");
        }
        return Ok("already_settled");
    }
    Err(WebhookError::ConcurrentUpdate)
}
