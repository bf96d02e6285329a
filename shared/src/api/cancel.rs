//! `POST /v1/bookings/{id}/cancel`: cancel a confirmed booking.
//!
//! Authorised by `Authorization: Bearer {cancel_token}` (the token the
//! reservation status shows once confirmed) or by the admin. First records the
//! intent (the booking becomes CANCELLING: still holding its slot, never again
//! confirmable), then refunds the payment in full (idempotency key
//! `cancel-{reservation_id}`; a payment Stripe reports already refunded counts
//! as done), then in one transaction frees the slot and records the
//! reservation as cancelled, then queues the removal of the calendar event.
//! Each step is safe to repeat, so a retry after any failure finishes the
//! job; cancelling twice answers `200` with no second refund. A refund Stripe
//! refuses is a `502` and goes to the operator queue; the booking stays
//! `cancelling`.

use super::auth::{AdminAuth, same_secret};
use super::{Problem, json_response, reservation_id_param, respond};
use crate::domain::{CalendarAction, CalendarJob, ClaimStatus, ReservationId, ReservationStatus};
use crate::ports::{
    AttentionStore, BookingStore, CalendarQueue, ClaimStore, PaymentError, Payments, RefundCause, ReservationHistory,
    ReservationRecord,
};
use chrono::{DateTime, Utc};
use lambda_http::http::{StatusCode, header};
use lambda_http::{Body, Request, Response};
use serde_json::json;

/// What cancel needs from storage.
pub trait CancelStore: ClaimStore + BookingStore + ReservationHistory + AttentionStore {}
impl<T: ClaimStore + BookingStore + ReservationHistory + AttentionStore> CancelStore for T {}

/// Everything the cancel handler talks to.
pub struct CancelDeps<'a, S, P, Q> {
    pub store: &'a S,
    pub payments: &'a P,
    pub calendar: &'a Q,
    pub admin: &'a AdminAuth,
}

/// Handles `POST /v1/bookings/{id}/cancel`.
pub async fn cancel<S: CancelStore, P: Payments, Q: CalendarQueue>(
    deps: CancelDeps<'_, S, P, Q>,
    req: Request,
) -> Response<Body> {
    cancel_at(deps, req, Utc::now()).await
}

/// [`cancel`] at a given instant (tests drive the clock).
pub async fn cancel_at<S: CancelStore, P: Payments, Q: CalendarQueue>(
    deps: CancelDeps<'_, S, P, Q>,
    req: Request,
    now: DateTime<Utc>,
) -> Response<Body> {
    respond(run(&deps, &req, now).await)
}

fn bearer(req: &Request) -> Option<&str> {
    req.headers().get(header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ")
}

async fn run<S: CancelStore, P: Payments, Q: CalendarQueue>(
    deps: &CancelDeps<'_, S, P, Q>,
    req: &Request,
    now: DateTime<Utc>,
) -> Result<Response<Body>, Problem> {
    let id = reservation_id_param(req, "booking_not_found", "booking")?;
    let not_found = || Problem::not_found("booking_not_found", format!("there is no booking {id}"));
    let claim = deps.store.reservation_claim(&id).await?;

    let booking = match claim {
        Some(claim) if matches!(claim.status, ClaimStatus::Confirmed | ClaimStatus::Cancelling) => claim,
        Some(claim) => {
            return Err(not_cancellable(claim.reservation_status(now)));
        }
        None => {
            let record = deps.store.get_reservation_record(&id).await?.ok_or_else(not_found)?;
            if record.status != ReservationStatus::Cancelled {
                return Err(not_cancellable(record.status));
            }
            authorize(deps.admin, req, record.cancel_token.as_deref())?;
            // Cancelled before: finish what a failed earlier attempt may have left.
            enqueue_removal(deps, &id).await?;
            return Ok(answer(&id, None));
        }
    };
    authorize(deps.admin, req, booking.cancel_token.as_deref())?;

    // The intent first: from here on a retry, whatever failed, finishes the
    // cancellation, and the booking can never be both refunded and confirmed.
    if booking.status == ClaimStatus::Confirmed && !deps.store.start_cancel(&booking.slot, &id).await? {
        // Changed meanwhile: a concurrent cancel started (then finish it too), or finished.
        let current = deps.store.reservation_claim(&id).await?;
        if !current.is_some_and(|c| c.status == ClaimStatus::Cancelling) {
            return Err(Problem {
                retry_after: Some(1),
                ..Problem::in_progress("this booking was cancelled concurrently; retry to see the result")
            });
        }
    }
    let refund_id = match &booking.payment_intent {
        Some(payment_intent) => {
            let key = format!("cancel-{id}");
            match deps.payments.refund_payment(payment_intent, &key, &id, RefundCause::Cancelled).await {
                Ok(refund_id) => Some(refund_id),
                // Refunded by an earlier attempt whose key Stripe has forgotten.
                Err(PaymentError::AlreadyRefunded) => None,
                Err(PaymentError::Rejected(message)) => {
                    super::stripe_webhook::raise(deps.store, &key, "refund_rejected", &id, &message, now).await?;
                    return Err(PaymentError::Rejected(message).into());
                }
                Err(e) => return Err(e.into()),
            }
        }
        // Nothing was charged (never for bookings slotguard confirmed): nothing to refund.
        None => None,
    };
    let record = ReservationRecord {
        reservation_id: id.clone(),
        end: booking.end,
        status: ReservationStatus::Cancelled,
        amount: booking.amount,
        currency: booking.currency.clone(),
        recorded_at: now,
        cancel_token: booking.cancel_token.clone(),
    };
    if !deps.store.cancel_booking(&booking.slot, &record).await? {
        // A concurrent cancel got there first; it refunded under the same key.
        tracing::info!(reservation_id = %id, "booking cancelled concurrently");
    }
    enqueue_removal(deps, &id).await?;
    tracing::info!(reservation_id = %id, refund_id = refund_id.as_deref().unwrap_or("-"), "booking cancelled");
    Ok(answer(&id, refund_id.as_deref()))
}

/// Authorised by the booking's cancel token or as the admin, before any side effect.
fn authorize(admin: &AdminAuth, req: &Request, cancel_token: Option<&str>) -> Result<(), Problem> {
    let by_token = match (bearer(req), cancel_token) {
        (Some(given), Some(expected)) => same_secret(given, expected),
        _ => false,
    };
    if by_token || admin.allows(req) {
        return Ok(());
    }
    Err(Problem::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "Unauthorized",
        "send the booking's cancel token as Authorization: Bearer <token>",
    ))
}

async fn enqueue_removal<S, P, Q: CalendarQueue>(
    deps: &CancelDeps<'_, S, P, Q>,
    id: &ReservationId,
) -> Result<(), Problem> {
    let job = CalendarJob { action: CalendarAction::Delete, reservation_id: id.clone() };
    deps.calendar.enqueue(&job).await?;
    Ok(())
}

fn not_cancellable(status: ReservationStatus) -> Problem {
    Problem::new(
        StatusCode::CONFLICT,
        "not_cancellable",
        "Not cancellable",
        format!("only confirmed bookings can be cancelled; this reservation is {}", status.as_str()),
    )
}

fn answer(id: &ReservationId, refund_id: Option<&str>) -> Response<Body> {
    json_response(StatusCode::OK, &json!({ "reservation_id": id, "status": "cancelled", "refund_id": refund_id }))
}
