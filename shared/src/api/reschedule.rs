//! `POST /v1/bookings/{id}/reschedule`: move a confirmed booking.
//!
//! Body: `{"start", "duration_minutes"?}` (the same booking type; another of
//! its durations if given). Authorised like cancel: the booking's cancel
//! token, or the admin. The type's reschedule policy, as it was when the
//! booking was made, applies to customers (`409 outside_reschedule_window`);
//! the host may always move a booking, also closer than the type's notice.
//! The new start must be bookable as for a reserve, and cost what was paid:
//! a move to another price is refused (`409 price_differs`; cancel and book
//! again instead), so the payment carries over unchanged.
//!
//! The move is one `TransactWriteItems`: the booking at its new interval
//! (conditioned on still being confirmed at the version read), a lock for
//! every cell of the new blocked interval (free or already the booking's),
//! and the deletion of the old cells the new interval does not cover. It
//! happens entirely or not at all: a conflict (`409 slot_taken`) or a failure
//! leaves the booking and its locks as they were. After the commit, a
//! calendar job moves the event in place (same event id). Repeating a
//! reschedule that went through answers `200` again and re-queues the job.

use super::auth::AuthError;
use super::auth::authorize;
use super::problem::api_error;
use super::reserve::{RuleError, choose, free_day_token};
use super::{RequestError, from_json, json_body, json_response, reservation_id_param, respond};
use crate::api::auth::AdminAuth;
use crate::domain::{
    Actor, CalendarAction, CalendarJob, Claim, ClaimStatus, ReservationId, ReservationStatus, SlotKey, rfc3339,
};
use crate::ports::{
    BookingStore, BusyStore, CalendarQueue, ClaimOutcome, ClaimStore, QueueError, ReservationHistory, ResourceStore,
    StoreError,
};
use chrono::{DateTime, Utc};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde::{Deserialize, Serialize};

/// What reschedule needs from storage.
pub trait RescheduleStore: ResourceStore + ClaimStore + BookingStore + ReservationHistory + BusyStore {}
impl<T: ResourceStore + ClaimStore + BookingStore + ReservationHistory + BusyStore> RescheduleStore for T {}

/// The body of a reschedule.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct RescheduleRequest {
    /// The new start, RFC 3339.
    #[schema(format = DateTime)]
    start: String,
    /// Another duration of the same type at the same price; default: the booking's.
    #[serde(default)]
    duration_minutes: Option<u32>,
}

/// Why a booking was not moved.
#[derive(Debug, thiserror::Error)]
pub enum RescheduleError {
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("moving the booking")]
    Store(#[from] StoreError),
    #[error("queueing the calendar update")]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Busy(#[from] crate::busy::BusyError),
    #[error("the new time overlaps an event on the host's calendar")]
    HostBusy,
    #[error("{0}")]
    InvalidField(String),
    #[error("there is no booking {0}")]
    NotFound(String),
    #[error("only confirmed bookings can be rescheduled; this reservation is {}", .0.as_str())]
    NotReschedulable(ReservationStatus),
    #[error("the booking type's policy does not allow customers to reschedule (any more)")]
    OutsideWindow,
    #[error(transparent)]
    Rules(#[from] RuleError),
    #[error("that duration costs {0} {1}, not the {2} {1} paid; cancel and book again instead")]
    PriceDiffers(i64, String, i64),
    #[error("{}", if *.booked { "the new time overlaps a booking" } else { "the new time overlaps another customer's hold" })]
    SlotTaken { booked: bool },
    #[error("the booking type is fully booked on the new day")]
    DayFull,
    #[error("the booking changed while it was being moved; retry to see the result")]
    Concurrent,
    #[error("a seat cannot be moved; cancel it and book a seat of the other slot")]
    SeatNotMovable,
}

api_error!(RescheduleError {
    wraps: [Request, Auth, Store, Queue, Busy],
    Self::HostBusy => HostBusy,
    Self::InvalidField(_) => InvalidField,
    Self::NotFound(_) => BookingNotFound,
    Self::NotReschedulable(_) => NotReschedulable,
    Self::OutsideWindow => OutsideRescheduleWindow,
    Self::Rules(e) => e.kind(),
    Self::PriceDiffers(..) => PriceDiffers,
    Self::SlotTaken { .. } => SlotTaken,
    Self::DayFull => DayFull,
    Self::Concurrent => RequestInProgress,
    Self::SeatNotMovable => NotReschedulable,
});

/// The `200` body.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RescheduledView {
    pub reservation_id: ReservationId,
    pub status: ReservationStatus,
    pub booking_type: String,
    pub duration_minutes: u32,
    #[schema(format = DateTime)]
    pub start: String,
    #[schema(format = DateTime)]
    pub end: String,
    /// 0 when booked, +1 per move.
    pub version: u32,
}

/// Everything the reschedule handler talks to.
pub struct RescheduleDeps<'a, S, Q> {
    pub store: &'a S,
    pub calendar: &'a Q,
    pub admin: &'a AdminAuth,
}

/// Handles `POST /v1/bookings/{id}/reschedule` (and, for the host, `POST /v1/admin/bookings/{id}/reschedule`).
#[utoipa::path(
    post,
    path = "/v1/bookings/{id}/reschedule",
    tag = "booking",
    operation_id = "rescheduleBooking",
    summary = "Move a confirmed booking to another start (same type and price)",
    params(("id" = String, Path, description = "The reservation id")),
    request_body = RescheduleRequest,
    security(("reservationSecret" = []), ("adminToken" = [])),
    responses((status = 200, description = "Moved (also for the same request again)", body = RescheduledView)),
)]
pub async fn reschedule<S: RescheduleStore, Q: CalendarQueue>(
    deps: RescheduleDeps<'_, S, Q>,
    req: Request,
) -> Response<Body> {
    reschedule_at(deps, req, Utc::now()).await
}

/// [`reschedule`] at a given instant (tests drive the clock).
pub async fn reschedule_at<S: RescheduleStore, Q: CalendarQueue>(
    deps: RescheduleDeps<'_, S, Q>,
    req: Request,
    now: DateTime<Utc>,
) -> Response<Body> {
    respond(run(&deps, &req, now).await)
}

async fn run<S: RescheduleStore, Q: CalendarQueue>(
    deps: &RescheduleDeps<'_, S, Q>,
    req: &Request,
    now: DateTime<Utc>,
) -> Result<Response<Body>, RescheduleError> {
    let id = reservation_id_param(req, RescheduleError::NotFound)?;
    // Who is asking first, then what they ask.
    let current = match deps.store.get_claim(&id).await? {
        Some(claim) => claim,
        None => {
            let record = deps.store.get_reservation_record(&id).await?;
            let record = record.ok_or_else(|| RescheduleError::NotFound(id.to_string()))?;
            authorize(deps.admin, req, record.secret_hash.as_ref())?;
            return Err(RescheduleError::NotReschedulable(record.status));
        }
    };
    let actor = authorize(deps.admin, req, current.secret_hash.as_ref())?;
    let body: RescheduleRequest = from_json(json_body(req)?)?;
    let start = DateTime::parse_from_rfc3339(&body.start)
        .map_err(|_| RescheduleError::InvalidField("start must be an RFC 3339 time like 2026-06-10T09:00:00Z".into()))?
        .with_timezone(&Utc);
    if current.status != ClaimStatus::Confirmed {
        return Err(RescheduleError::NotReschedulable(current.reservation_status(now)));
    }
    let minutes = body.duration_minutes.unwrap_or(current.terms.duration_minutes);
    let same_place = current.slot.start == start && current.terms.duration_minutes == minutes;
    if same_place {
        // Moved there already (a retry after success): finish the job.
        enqueue_write(deps, &id).await?;
        return Ok(json_response(StatusCode::OK, &view(&current, now)));
    }
    if !current.terms.reschedule.allows(actor, current.slot.start, now) {
        return Err(RescheduleError::OutsideWindow);
    }
    // A seat shares its group's cells with the other seats (see the DynamoDB
    // adapter): moving one would change two groups' counts on cells the old
    // and new slot may share. Cancel and book again instead.
    if current.seat.is_some() {
        return Err(RescheduleError::SeatNotMovable);
    }
    let resource_id = current.slot.resource_id.clone();
    let resource =
        deps.store.get_resource(&resource_id).await?.ok_or_else(|| RescheduleError::NotFound(id.to_string()))?;
    let (kind, duration) = choose(&resource, Some(&current.terms.booking_type), Some(minutes))?;
    if duration.price.amount != current.amount || !duration.price.currency.eq_ignore_ascii_case(&current.currency) {
        return Err(RescheduleError::PriceDiffers(
            duration.price.amount,
            duration.price.currency.clone(),
            current.amount,
        ));
    }
    let slot = resource.bookable_slot(kind, minutes, start, now, actor == Actor::Customer).map_err(RuleError::from)?;
    // Buffers as the type has them now; the policies the customer paid under stay.
    let terms = crate::domain::BookingTerms {
        cancellation: current.terms.cancellation,
        reschedule: current.terms.reschedule,
        ..kind.terms(minutes)
    };
    let same_day = current.day_token.as_ref().is_some_and(|t| t.date == resource.local_date(slot.start));
    let day_token = match kind.max_per_day {
        Some(_) if same_day => current.day_token.clone(),
        Some(limit) => Some(
            free_day_token(deps.store, &resource, &kind.id, limit, slot.start, now)
                .await?
                .ok_or(RescheduleError::DayFull)?,
        ),
        None => None,
    };
    if kind.seats.is_some() {
        return Err(RescheduleError::SeatNotMovable);
    }
    // The host's own calendar, as reserve reads it: a move onto an event
    // there (or onto busy time not read recently) is refused.
    let (blocked_from, blocked_to) = terms.blocked(slot.start, slot.end);
    if crate::busy::overlaps(
        &crate::busy::busy_between(deps.store, &resource, blocked_from, blocked_to, now).await?,
        blocked_from,
        blocked_to,
    ) {
        return Err(RescheduleError::HostBusy);
    }
    // A team booking keeps its members: each must have the new time inside
    // its own hours (their cells are the transaction's conditions) and free
    // on its own calendar.
    for host in &current.hosts {
        let Some(member) = deps.store.get_resource(host).await? else {
            return Err(RescheduleError::SlotTaken { booked: false });
        };
        if !member.open_during(slot.start, slot.end) {
            return Err(RescheduleError::SlotTaken { booked: false });
        }
        let busy = crate::busy::busy_between(deps.store, &member, blocked_from, blocked_to, now).await?;
        if crate::busy::overlaps(&busy, blocked_from, blocked_to) {
            return Err(RescheduleError::HostBusy);
        }
    }
    let moved = Claim {
        slot: SlotKey { resource_id, start: slot.start },
        end: slot.end,
        terms,
        day_token,
        version: current.version + 1,
        // A customer's move after free cancellation ended keeps it ended:
        // moving is not a way to a full refund. Before the end, or moved by
        // the host, the window follows the new start.
        free_cancel_until: (actor == Actor::Customer && now > current.free_cancel_until())
            .then(|| current.free_cancel_until()),
        ..current.clone()
    };
    match deps.store.reschedule(&current, &moved, now).await? {
        ClaimOutcome::Done => {
            tracing::info!(reservation_id = %id, from = %current.slot, to = %moved.slot, "booking rescheduled");
            enqueue_write(deps, &id).await?;
            Ok(json_response(StatusCode::OK, &view(&moved, now)))
        }
        ClaimOutcome::Taken { by } => {
            crate::metrics::count("RescheduleConflicts", &[]);
            Err(RescheduleError::SlotTaken { booked: by.booked })
        }
        ClaimOutcome::Stale => Err(RescheduleError::Concurrent),
    }
}

async fn enqueue_write<S, Q: CalendarQueue>(
    deps: &RescheduleDeps<'_, S, Q>,
    id: &ReservationId,
) -> Result<(), QueueError> {
    deps.calendar.enqueue(&CalendarJob { action: CalendarAction::Write, reservation_id: id.clone() }).await
}

fn view(claim: &Claim, now: DateTime<Utc>) -> RescheduledView {
    RescheduledView {
        reservation_id: claim.reservation_id.clone(),
        status: claim.reservation_status(now),
        booking_type: claim.terms.booking_type.clone(),
        duration_minutes: claim.terms.duration_minutes,
        start: rfc3339(claim.slot.start),
        end: rfc3339(claim.end),
        version: claim.version,
    }
}
