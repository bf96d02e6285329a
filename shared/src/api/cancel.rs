//! `POST /v1/bookings/{id}/cancel`: cancel a confirmed booking.
//!
//! Authorised by `Authorization: Bearer {reservation secret}` (answered once
//! by `POST /v1/reservations`) or by the admin, before anything else. The booking
//! type's cancellation policy, as it was when the booking was made, decides
//! what a customer gets: a full refund until `free_until_hours` before the
//! start, then a refused cancellation (`409 outside_cancellation_window`) or
//! a partial refund; the host (admin) always refunds in full. First records
//! the intent and the amount (the booking becomes CANCELLING: still holding
//! its slot, never again confirmable; a retry refunds the amount decided
//! then), then refunds (idempotency key `cancel-{reservation_id}`; a payment
//! Stripe reports already refunded counts as done), then in one transaction
//! frees the slot (every lock) and records the reservation as cancelled,
//! then queues the removal of the calendar event.
//! Each step is safe to repeat, so a retry after any failure finishes the
//! job; cancelling twice answers `200` with no second refund. A refund Stripe
//! refuses is a `502` and goes to the operator queue; the booking stays
//! `cancelling`.

use super::auth::{AdminAuth, AuthError, authorize};
use super::problem::api_error;
use super::{RequestError, json_response, reservation_id_param, respond};
use crate::domain::{
    CalendarAction, CalendarJob, CancelDecision, Claim, ClaimStatus, ReservationId, ReservationStatus,
};
use crate::ports::{
    AttentionStore, BookingStore, CalendarQueue, ClaimStore, PaymentError, Payments, QueueError, RefundCause,
    ReservationHistory, ReservationRecord, StoreError,
};
use chrono::{DateTime, Utc};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde::Serialize;

/// What cancel needs from storage.
pub trait CancelStore: ClaimStore + BookingStore + ReservationHistory + AttentionStore {}
impl<T: ClaimStore + BookingStore + ReservationHistory + AttentionStore> CancelStore for T {}

/// Why a booking was not (yet) cancelled.
#[derive(Debug, thiserror::Error)]
pub enum CancelError {
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("cancelling the booking")]
    Store(#[from] StoreError),
    #[error("refunding the booking")]
    Payment(#[from] PaymentError),
    #[error("queueing the calendar event's removal")]
    Queue(#[from] QueueError),
    #[error("there is no booking {0}")]
    NotFound(String),
    #[error("only confirmed bookings can be cancelled; this reservation is {}", .0.as_str())]
    NotCancellable(ReservationStatus),
    #[error("this booking was cancelled concurrently; retry to see the result")]
    CancelledConcurrently,
    #[error("the booking type's policy allows cancelling only until {0} hours before the start")]
    OutsideWindow(u32),
}

api_error!(CancelError {
    wraps: [Request, Auth, Store, Payment, Queue],
    Self::NotFound(_) => BookingNotFound,
    Self::NotCancellable(_) => NotCancellable,
    Self::CancelledConcurrently => RequestInProgress,
    Self::OutsideWindow(_) => OutsideCancellationWindow,
});

/// Everything the cancel handler talks to.
pub struct CancelDeps<'a, S, P, Q> {
    pub store: &'a S,
    pub payments: &'a P,
    pub calendar: &'a Q,
    pub admin: &'a AdminAuth,
}

/// The `200` of a cancellation.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CancelledView<'a> {
    pub reservation_id: &'a ReservationId,
    pub status: ReservationStatus,
    /// The Stripe refund; `null` when Stripe had refunded it already or nothing was refunded.
    pub refund_id: Option<&'a str>,
    /// The amount this call's cancellation refunds, in minor units (`null`
    /// when answering for a cancellation finished earlier).
    pub refunded: Option<i64>,
    pub currency: &'a str,
}

/// Handles `POST /v1/bookings/{id}/cancel` (and, for the host, `POST /v1/admin/bookings/{id}/cancel`).
#[utoipa::path(
    post,
    path = "/v1/bookings/{id}/cancel",
    tag = "booking",
    operation_id = "cancelBooking",
    summary = "Cancel a confirmed booking and refund it under the type's policy",
    params(("id" = String, Path, description = "The reservation id")),
    security(("reservationSecret" = []), ("adminToken" = [])),
    responses((status = 200, description = "Cancelled (also for a repeated call)", body = CancelledView)),
)]
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

async fn run<S: CancelStore, P: Payments, Q: CalendarQueue>(
    deps: &CancelDeps<'_, S, P, Q>,
    req: &Request,
    now: DateTime<Utc>,
) -> Result<Response<Body>, CancelError> {
    let id = reservation_id_param(req, CancelError::NotFound)?;
    let not_found = || CancelError::NotFound(id.to_string());
    let claim = deps.store.get_claim(&id).await?;

    // Who is asking is decided before anything else, also what the
    // reservation's state is: that is the secret holder's business.
    let (booking, actor) = match claim {
        Some(claim) => {
            let actor = authorize(deps.admin, req, claim.secret_hash.as_ref())?;
            if !matches!(claim.status, ClaimStatus::Confirmed | ClaimStatus::Cancelling) {
                return Err(CancelError::NotCancellable(claim.reservation_status(now)));
            }
            (claim, actor)
        }
        None => {
            let record = deps.store.get_reservation_record(&id).await?.ok_or_else(not_found)?;
            authorize(deps.admin, req, record.secret_hash.as_ref())?;
            if record.status != ReservationStatus::Cancelled {
                return Err(CancelError::NotCancellable(record.status));
            }
            // Cancelled before: finish what a failed earlier attempt may have left.
            enqueue_removal(deps, &id).await?;
            return Ok(answer(&id, None, None, &record.currency));
        }
    };
    // The intent and the amount first: from here on a retry, whatever
    // failed, finishes the cancellation with the same refund, and the
    // booking can never be both refunded and confirmed.
    // The amount is decided from the booking as it is when the intent is
    // recorded: a reschedule landing in between is seen, and decided again.
    let mut booking = booking;
    let mut rounds = 0;
    while booking.status == ClaimStatus::Confirmed {
        rounds += 1;
        let policy = booking.terms.cancellation;
        let amount = match policy.decide_by(actor, booking.amount, booking.slot.start, booking.free_cancel_until(), now)
        {
            CancelDecision::Refund { amount } => amount,
            CancelDecision::Refuse => return Err(CancelError::OutsideWindow(policy.free_until_hours)),
        };
        if deps.store.start_cancel(&id, booking.version, amount).await? {
            booking = Claim { status: ClaimStatus::Cancelling, refund_amount: Some(amount), ..booking };
            break;
        }
        // Changed meanwhile: moved (decide again), a concurrent cancel
        // started (then finish it too), or finished.
        match deps.store.get_claim(&id).await? {
            Some(current)
                if matches!(current.status, ClaimStatus::Confirmed | ClaimStatus::Cancelling) && rounds < 4 =>
            {
                booking = current;
            }
            _ => return Err(CancelError::CancelledConcurrently),
        }
    }
    let refund = booking.refund_amount.unwrap_or(booking.amount);
    // What this cancellation gives back: nothing when nothing was charged
    // (never for bookings slotguard confirmed) or the policy refunds nothing.
    let (refund_id, refunded) = match &booking.payment_intent {
        Some(payment_intent) if refund > 0 => {
            let key = format!("cancel-{id}");
            let partial = (refund < booking.amount).then_some(refund);
            match super::refunds::refund_once(deps.payments, payment_intent, &key, &id, RefundCause::Cancelled, partial)
                .await
            {
                Ok(refund_id) => (Some(refund_id), refund),
                // Refunded in full by an earlier attempt whose key Stripe has forgotten.
                Err(PaymentError::AlreadyRefunded) => (None, refund),
                Err(e @ PaymentError::Rejected(_)) => {
                    let detail = super::problem::Chain(&e).to_string();
                    super::stripe_webhook::raise(deps.store, &key, "refund_rejected", &id, &detail, now).await?;
                    return Err(e.into());
                }
                Err(e) => return Err(e.into()),
            }
        }
        _ => (None, 0),
    };
    finish_cancel(deps.store, booking.clone(), now).await?;
    enqueue_removal(deps, &id).await?;
    tracing::info!(reservation_id = %id, refund_id = refund_id.as_deref().unwrap_or("-"), refunded, "booking cancelled");
    Ok(answer(&id, refund_id.as_deref(), Some(refunded), &booking.currency))
}

/// Frees a CANCELLING booking's slot and records it cancelled, in one
/// transaction. A failed condition is not taken for "someone else did it":
/// the booking is read again, and the cancellation is finished from what is
/// there (a concurrent cancel that finished first is success; a booking
/// still CANCELLING is retired again from its current item). Only what is
/// read decides the answer, so a `200` always means the booking is cancelled.
async fn finish_cancel<S: CancelStore>(store: &S, mut booking: Claim, now: DateTime<Utc>) -> Result<(), CancelError> {
    let id = booking.reservation_id.clone();
    for _ in 0..4 {
        let record = ReservationRecord {
            reservation_id: id.clone(),
            start: booking.slot.start,
            end: booking.end,
            status: ReservationStatus::Cancelled,
            amount: booking.amount,
            currency: booking.currency.clone(),
            recorded_at: now,
            secret_hash: booking.secret_hash.clone(),
            calendars: booking.calendars.clone(),
        };
        if store.cancel_booking(&booking, &record).await? {
            return Ok(());
        }
        match store.get_claim(&id).await? {
            Some(current) if current.status == ClaimStatus::Cancelling => booking = current,
            Some(_) => return Err(CancelError::CancelledConcurrently),
            None => {
                let record = store.get_reservation_record(&id).await?;
                if record.is_some_and(|r| r.status == ReservationStatus::Cancelled) {
                    tracing::info!(reservation_id = %id, "booking cancelled concurrently");
                    return Ok(());
                }
                return Err(CancelError::CancelledConcurrently);
            }
        }
    }
    Err(CancelError::CancelledConcurrently)
}

async fn enqueue_removal<S, P, Q: CalendarQueue>(
    deps: &CancelDeps<'_, S, P, Q>,
    id: &ReservationId,
) -> Result<(), QueueError> {
    let job = CalendarJob { action: CalendarAction::Delete, reservation_id: id.clone() };
    deps.calendar.enqueue(&job).await
}

/// The `200`: `refunded` is the amount this call's cancellation refunds
/// (`null` when answering for a cancellation finished earlier).
fn answer(id: &ReservationId, refund_id: Option<&str>, refunded: Option<i64>, currency: &str) -> Response<Body> {
    json_response(
        StatusCode::OK,
        &CancelledView { reservation_id: id, status: ReservationStatus::Cancelled, refund_id, refunded, currency },
    )
}
