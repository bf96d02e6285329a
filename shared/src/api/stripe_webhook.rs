//! `POST /webhooks/stripe`: Stripe's Checkout Session events.
//!
//! The signature is checked over the body exactly as API Gateway delivered it;
//! a bad one is a `400` and nothing is written. Each event id is processed once
//! (Powertools-style idempotency record; a concurrent redelivery gets `409` and
//! Stripe tries again later), and every step is also safe to repeat on its own:
//!
//! - `completed` + `paid`, `async_payment_succeeded`: the session gets exactly
//!   one outcome, recorded in the same transaction that confirms the claim.
//!   If the slot is free or still this reservation's, the claim becomes
//!   CONFIRMED without TTL and a calendar job is queued (a failed send is a 503,
//!   so Stripe redelivers). If someone else holds or owns the slot, the outcome
//!   is REFUNDED and the payment is refunded with key `refund-{session}`.
//! - `completed` + `unpaid` (delayed payment methods): the slot is kept, without
//!   TTL, until the async result arrives.
//! - `expired`, `async_payment_failed`: the hold is released, only if it is
//!   still this reservation's and not confirmed.
//! - Anything else, including events this library version cannot read: `200`, ignored.

use super::{Problem, idempotency, json_response, respond};
use crate::domain::{
    CalendarAction, CalendarJob, Claim, ClaimStatus, PaymentOutcome, ReservationId, ReservationStatus, SessionEvent,
    SessionEventKind, SessionFacts,
};
use crate::ports::{
    CalendarQueue, ClaimStore, IdempotencyStore, PaymentStore, Payments, QueueError, RefundCause, ReservationHistory,
    ReservationRecord,
};
use crate::stripe::{Delivery, WebhookVerifier};
use chrono::{DateTime, Utc};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde_json::json;
use tracing::Instrument;

/// The header Stripe signs deliveries with.
pub const SIGNATURE_HEADER: &str = "stripe-signature";

/// What the webhook handler needs from storage.
pub trait WebhookStore: ClaimStore + PaymentStore + ReservationHistory + IdempotencyStore {}
impl<T: ClaimStore + PaymentStore + ReservationHistory + IdempotencyStore> WebhookStore for T {}

/// Everything the webhook handler talks to.
pub struct WebhookDeps<'a, S, P, Q> {
    pub store: &'a S,
    pub payments: &'a P,
    pub calendar: &'a Q,
    pub verifier: &'a WebhookVerifier,
}

/// Handles `POST /webhooks/stripe`.
pub async fn stripe_webhook<S: WebhookStore, P: Payments, Q: CalendarQueue>(
    deps: WebhookDeps<'_, S, P, Q>,
    req: Request,
) -> Response<Body> {
    stripe_webhook_at(deps, req, Utc::now()).await
}

/// [`stripe_webhook`] at a given instant (tests drive the clock; the
/// signature's 300 s tolerance is still checked against the real clock).
pub async fn stripe_webhook_at<S: WebhookStore, P: Payments, Q: CalendarQueue>(
    deps: WebhookDeps<'_, S, P, Q>,
    req: Request,
    now: DateTime<Utc>,
) -> Response<Body> {
    respond(run(&deps, &req, now).await)
}

impl From<QueueError> for Problem {
    fn from(err: QueueError) -> Self {
        tracing::warn!(error = %err, "calendar queue unavailable");
        Problem {
            retry_after: Some(5),
            ..Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "queue_unavailable",
                "Queue unavailable",
                "the calendar queue did not take the job; retry",
            )
        }
    }
}

async fn run<S: WebhookStore, P: Payments, Q: CalendarQueue>(
    deps: &WebhookDeps<'_, S, P, Q>,
    req: &Request,
    now: DateTime<Utc>,
) -> Result<Response<Body>, Problem> {
    let signature = req.headers().get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
    let delivery = deps.verifier.verify(req.body().as_ref(), signature).map_err(|e| {
        tracing::warn!(error = %e, "webhook refused");
        Problem::bad_request("invalid_signature", e.to_string())
    })?;
    let event = match delivery {
        Delivery::Ignored { event_id, reason } => {
            tracing::info!(event_id = event_id.as_deref().unwrap_or("?"), %reason, "webhook event ignored");
            return Ok(json_response(StatusCode::OK, &json!({ "received": true, "ignored": reason })));
        }
        Delivery::Session(event) => event,
    };
    let key = Some(event.event_id.clone());
    let payload = json!({ "event": event.event_id });
    idempotency::run_once(deps.store, "stripe-event", key, &payload, now, || handle_event(deps, &event, now)).await
}

async fn handle_event<S: WebhookStore, P: Payments, Q: CalendarQueue>(
    deps: &WebhookDeps<'_, S, P, Q>,
    event: &SessionEvent,
    now: DateTime<Utc>,
) -> Result<Response<Body>, Problem> {
    let Some(reservation_id) = event.session.reservation_id.clone() else {
        tracing::info!(event_id = %event.event_id, "session not created by slotguard; ignored");
        return Ok(json_response(StatusCode::OK, &json!({ "received": true, "ignored": "not a slotguard session" })));
    };
    let span = tracing::info_span!("stripe_event", event_id = %event.event_id, %reservation_id);
    let outcome = async {
        match event.kind {
            SessionEventKind::Completed { paid: true } | SessionEventKind::AsyncPaymentSucceeded => {
                settle_paid(deps, &reservation_id, &event.session, now).await
            }
            SessionEventKind::Completed { paid: false } => {
                keep_for_pending_payment(deps.store, &reservation_id, &event.session, now).await
            }
            SessionEventKind::AsyncPaymentFailed | SessionEventKind::Expired => {
                release(deps.store, &reservation_id, &event.session, now).await
            }
        }
    }
    .instrument(span)
    .await?;
    tracing::info!(outcome, "webhook event handled");
    Ok(json_response(StatusCode::OK, &json!({ "received": true, "outcome": outcome })))
}

/// The claim this reservation would own once paid: its current claim if it
/// still has one, else rebuilt from the session's metadata.
fn claim_for(
    reservation_id: &ReservationId,
    current: Option<Claim>,
    facts: &SessionFacts,
    status: ClaimStatus,
    now: DateTime<Utc>,
) -> Option<Claim> {
    let base = match current.filter(|c| &c.reservation_id == reservation_id) {
        Some(claim) => claim,
        None => Claim {
            slot: reservation_id.slot_key(),
            end: facts.slot_end?,
            reservation_id: reservation_id.clone(),
            status,
            customer: facts.customer.clone()?,
            amount: facts.amount?,
            currency: facts.currency.clone()?,
            expires_at: None,
            created_at: now,
            session_expires_at: None,
            checkout: None,
            payment_intent: None,
            cancel_token: Some(crate::domain::new_cancel_token()),
        },
    };
    Some(Claim {
        status,
        expires_at: None,
        payment_intent: facts.payment_intent.clone().or(base.payment_intent.clone()),
        ..base
    })
}

/// Gives a paid session its one outcome, then carries it out. Every round
/// re-reads the recorded outcome first, so a redelivery, a concurrent delivery
/// or a crash between steps all end the same way.
async fn settle_paid<S: WebhookStore, P: Payments, Q: CalendarQueue>(
    deps: &WebhookDeps<'_, S, P, Q>,
    reservation_id: &ReservationId,
    facts: &SessionFacts,
    now: DateTime<Utc>,
) -> Result<&'static str, Problem> {
    let store = deps.store;
    for _ in 0..4 {
        match store.payment_outcome(&facts.session_id).await? {
            Some(PaymentOutcome::Confirmed) => {
                let job = CalendarJob { action: CalendarAction::Write, reservation_id: reservation_id.clone() };
                deps.calendar.enqueue(&job).await?;
                return Ok("confirmed");
            }
            Some(PaymentOutcome::Refunded) => {
                refund(deps, reservation_id, facts, now).await?;
                return Ok("refunded");
            }
            None => {
                let current = store.get_claim(&reservation_id.slot_key()).await?;
                let free_or_mine =
                    current.as_ref().is_none_or(|c| &c.reservation_id == reservation_id || !c.is_live(now));
                let confirmed = claim_for(reservation_id, current, facts, ClaimStatus::Confirmed, now);
                match confirmed {
                    Some(confirmed) if free_or_mine => {
                        if store.confirm_paid(&confirmed, &facts.session_id, now).await? {
                            tracing::info!(slot = %confirmed.slot, "booking confirmed");
                        }
                    }
                    // Someone else has the slot, or (never for sessions slotguard
                    // made) the booking cannot be rebuilt: the money goes back.
                    _ => {
                        if store.decide_refund(&facts.session_id, reservation_id, now).await? {
                            tracing::warn!(session_id = %facts.session_id, "paid after the slot was taken: refunding");
                            crate::metrics::count("GhostPaymentRefunds", &[]);
                        }
                    }
                }
            }
        }
    }
    Err(Problem {
        retry_after: Some(1),
        ..Problem::new(StatusCode::SERVICE_UNAVAILABLE, "conflict", "Conflict", "concurrent updates; retry")
    })
}

async fn refund<S: WebhookStore, P: Payments, Q: CalendarQueue>(
    deps: &WebhookDeps<'_, S, P, Q>,
    reservation_id: &ReservationId,
    facts: &SessionFacts,
    now: DateTime<Utc>,
) -> Result<(), Problem> {
    let Some(payment_intent) = &facts.payment_intent else {
        tracing::error!(session_id = %facts.session_id, "paid session without a payment intent: cannot refund");
        return Err(Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "Internal error",
            "the paid session names no payment",
        ));
    };
    let key = format!("refund-{}", facts.session_id);
    let refund_id = deps.payments.refund_payment(payment_intent, &key, reservation_id, RefundCause::SlotTaken).await?;
    tracing::info!(%refund_id, "payment refunded");
    let record = record_of(reservation_id, facts, ReservationStatus::Refunded, now);
    deps.store.record_reservation(&record).await?;
    Ok(())
}

fn record_of(
    reservation_id: &ReservationId,
    facts: &SessionFacts,
    status: ReservationStatus,
    now: DateTime<Utc>,
) -> ReservationRecord {
    ReservationRecord {
        reservation_id: reservation_id.clone(),
        end: facts.slot_end.unwrap_or_else(|| reservation_id.slot_key().start),
        status,
        amount: facts.amount.unwrap_or_default(),
        currency: facts.currency.clone().unwrap_or_default(),
        recorded_at: now,
    }
}

async fn keep_for_pending_payment<S: WebhookStore>(
    store: &S,
    reservation_id: &ReservationId,
    facts: &SessionFacts,
    now: DateTime<Utc>,
) -> Result<&'static str, Problem> {
    if store.payment_outcome(&facts.session_id).await?.is_some() {
        // The async result already arrived (events come in any order).
        return Ok("already_settled");
    }
    let current = store.get_claim(&reservation_id.slot_key()).await?;
    if current.as_ref().is_some_and(|c| {
        &c.reservation_id == reservation_id && matches!(c.status, ClaimStatus::PaymentPending | ClaimStatus::Confirmed)
    }) {
        return Ok("payment_pending");
    }
    let Some(pending) = claim_for(reservation_id, current, facts, ClaimStatus::PaymentPending, now) else {
        return Ok("ignored");
    };
    if store.hold_for_pending_payment(&pending, now).await? {
        Ok("payment_pending")
    } else {
        // Someone else has the slot; if the payment succeeds, it is refunded then.
        Ok("slot_taken")
    }
}

async fn release<S: WebhookStore>(
    store: &S,
    reservation_id: &ReservationId,
    facts: &SessionFacts,
    now: DateTime<Utc>,
) -> Result<&'static str, Problem> {
    let record = record_of(reservation_id, facts, ReservationStatus::Released, now);
    if store.release(&reservation_id.slot_key(), &record).await? {
        tracing::info!("hold released");
        Ok("released")
    } else {
        // Confirmed, already released, or someone else's: nothing to give up.
        Ok("nothing_to_release")
    }
}
