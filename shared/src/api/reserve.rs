//! `POST /v1/reservations`: hold one slot while the customer pays.
//!
//! Body: `{"resource_id", "start", "booking_type"?, "duration_minutes"?,
//! "customer": {"name", "email"}}`. `booking_type` may be left out when the
//! resource has one type, `duration_minutes` to take the type's first
//! duration. The start must be bookable now ([`Resource::bookable_slot`]:
//! notice, advance window, start grid, opening hours). The hold is one
//! `TransactWriteItems`: the booking item and one lock per 5-minute cell of
//! `[start − buffer_before, end + buffer_after)` (plus a day token if the type
//! limits bookings per day), each lock conditioned on being free, all
//! carrying the TTL attribute `expires_at`. Two requests whose intervals
//! overlap can never both get a 201. Optional `Idempotency-Key` header: see
//! [`super::idempotency`].

use super::idempotency::IdempotencyError;
use super::problem::api_error;
use super::{RequestError, from_json, idempotency, json_body, json_response, respond};
use crate::domain::{
    BookingType, Claim, Customer, DayToken, DurationSpec, Lock, LockKey, ReservationId, ReservationStatus, Resource,
    ResourceId, SlotKey, StartError, rfc3339,
};
use crate::ports::{ClaimOutcome, ClaimStore, IdempotencyStore, ReservationHistory, ResourceStore, StoreError};
use chrono::{DateTime, Duration, Utc};
use lambda_http::http::{StatusCode, header};
use lambda_http::{Body, Request, Response};
use serde::{Deserialize, Serialize};

/// What a reserve handler needs from storage.
pub trait ReserveStore: ResourceStore + ClaimStore + ReservationHistory + IdempotencyStore {}
impl<T: ResourceStore + ClaimStore + ReservationHistory + IdempotencyStore> ReserveStore for T {}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReserveRequest {
    resource_id: String,
    start: String,
    #[serde(default)]
    booking_type: Option<String>,
    #[serde(default)]
    duration_minutes: Option<u32>,
    customer: CustomerRequest,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CustomerRequest {
    name: String,
    email: String,
}

/// Why a slot was not held.
#[derive(Debug, thiserror::Error)]
pub enum ReserveError {
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error(transparent)]
    Idempotency(#[from] IdempotencyError),
    #[error("holding the slot")]
    Store(#[from] StoreError),
    /// A field of the right type whose value is not acceptable.
    #[error("{0}")]
    InvalidField(String),
    #[error("there is no resource {0:?}")]
    UnknownResource(String),
    #[error(transparent)]
    Rules(#[from] RuleError),
    #[error("{}", if *.booked { "this slot is already booked" } else { "this slot is held by another customer; try another slot" })]
    SlotTaken { booked: bool },
    #[error("this booking type is fully booked on that day")]
    DayFull,
}

api_error!(ReserveError {
    wraps: [Request, Idempotency, Store],
    Self::InvalidField(_) => InvalidField,
    Self::UnknownResource(_) => UnknownResource,
    Self::Rules(e) => e.kind(),
    Self::SlotTaken { .. } => SlotTaken,
    Self::DayFull => DayFull,
});

/// Why a requested booking (type, duration, start) breaks the resource's
/// rules: shared by reserve and reschedule.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    #[error("booking_type: {0}")]
    UnknownType(String),
    #[error("duration_minutes: the booking type offers {0}")]
    UnknownDuration(String),
    #[error(transparent)]
    Start(#[from] StartError),
}

impl RuleError {
    /// The problem type each rule answers with.
    pub fn kind(&self) -> super::problem::ProblemKind {
        use super::problem::ProblemKind as K;
        match self {
            Self::UnknownType(_) => K::UnknownBookingType,
            Self::UnknownDuration(_) => K::UnknownDuration,
            Self::Start(StartError::InPast) => K::SlotInPast,
            Self::Start(StartError::TooSoon(_)) => K::TooSoon,
            Self::Start(StartError::TooFarAhead(_)) => K::TooFarAhead,
            Self::Start(StartError::OffGrid(_)) => K::OffGrid,
            Self::Start(StartError::OutsideHours) => K::OutsideOpeningHours,
        }
    }
}

/// The booking type and duration a request names (either may be left out:
/// the resource's only type, the type's first duration).
pub fn choose<'r>(
    resource: &'r Resource,
    booking_type: Option<&str>,
    minutes: Option<u32>,
) -> Result<(&'r BookingType, &'r DurationSpec), RuleError> {
    let kind = resource.booking_type(booking_type).ok_or_else(|| {
        let ids: Vec<&str> = resource.booking_types.iter().map(|t| t.id.as_str()).collect();
        RuleError::UnknownType(match booking_type {
            Some(id) => format!("{id:?} is not one of {ids:?}"),
            None => format!("the resource has several booking types; name one of {ids:?}"),
        })
    })?;
    let duration = kind.duration(minutes).ok_or_else(|| {
        let offered: Vec<String> = kind.durations.iter().map(|d| format!("{} minutes", d.minutes)).collect();
        RuleError::UnknownDuration(offered.join(", "))
    })?;
    Ok((kind, duration))
}

/// The 201 body, also what an idempotent replay returns.
#[derive(Debug, Serialize)]
pub struct HoldView {
    pub reservation_id: ReservationId,
    pub resource_id: ResourceId,
    pub booking_type: String,
    pub duration_minutes: u32,
    pub start: String,
    pub end: String,
    pub status: ReservationStatus,
    pub expires_at: String,
    pub amount: i64,
    pub currency: String,
}

/// Handles `POST /v1/reservations`.
pub async fn reserve<S: ReserveStore>(store: &S, req: Request) -> Response<Body> {
    reserve_at(store, req, Utc::now()).await
}

/// [`reserve`] at a given instant (tests drive the clock).
pub async fn reserve_at<S: ReserveStore>(store: &S, req: Request, now: DateTime<Utc>) -> Response<Body> {
    respond(run(store, &req, now).await)
}

async fn run<S: ReserveStore>(store: &S, req: &Request, now: DateTime<Utc>) -> Result<Response<Body>, ReserveError> {
    let key = idempotency::key_of(req)?;
    let payload: serde_json::Value = json_body(req)?;
    let body: ReserveRequest = from_json(payload.clone())?;
    // Marks the hold with its request, so a retry of the same request after a
    // crash (its key's record lost or released) gets this hold back.
    let request_ref =
        key.as_ref().map(|k| idempotency::payload_hash(&serde_json::json!({ "key": k, "body": payload })));
    idempotency::run_once(store, "reserve", key, &payload, now, || hold(store, body, request_ref, now)).await
}

async fn hold<S: ReserveStore>(
    store: &S,
    body: ReserveRequest,
    request_ref: Option<String>,
    now: DateTime<Utc>,
) -> Result<Response<Body>, ReserveError> {
    let invalid = ReserveError::InvalidField;
    let resource_id = ResourceId::parse(&body.resource_id).map_err(|e| invalid(format!("resource_id: {e}")))?;
    let start = DateTime::parse_from_rfc3339(&body.start)
        .map_err(|_| invalid("start must be an RFC 3339 time like 2026-06-10T09:00:00Z".into()))?
        .with_timezone(&Utc);
    let customer = Customer::parse(&body.customer.name, &body.customer.email).map_err(invalid)?;
    let resource = store
        .get_resource(&resource_id)
        .await?
        .ok_or_else(|| ReserveError::UnknownResource(resource_id.to_string()))?;
    let (kind, duration) = choose(&resource, body.booking_type.as_deref(), body.duration_minutes)?;
    let slot = resource.bookable_slot(kind, duration.minutes, start, now, true).map_err(RuleError::from)?;
    // RFC 3339 years have four digits: a slot ending after 9999 fits in no
    // reservation id, response or calendar event.
    if chrono::Datelike::year(&slot.end) > 9999 {
        return Err(invalid("start is too far in the future".into()));
    }
    let key = SlotKey { resource_id, start: slot.start };
    let expires_at = now + Duration::minutes(i64::from(resource.hold_minutes));
    let hold = Claim::hold(key, slot.end, kind.terms(duration.minutes), customer, &duration.price, now, expires_at);
    // A day token can be taken between the read and the write: choose again.
    for _ in 0..DAY_TOKEN_ATTEMPTS {
        let day_token = match kind.max_per_day {
            Some(limit) => Some(
                free_day_token(store, &resource, &kind.id, limit, slot.start, now)
                    .await?
                    .ok_or(ReserveError::DayFull)?,
            ),
            None => None,
        };
        let claim = Claim { request_ref: request_ref.clone(), day_token, ..hold.clone() };
        match store.place_hold(&claim, now).await? {
            ClaimOutcome::Done => {
                tracing::info!(reservation_id = %claim.reservation_id, slot = %claim.slot, "slot held");
                return Ok(created(&claim, now));
            }
            ClaimOutcome::Taken { by } => {
                if claim.request_ref.is_some()
                    && let Some(earlier) = store.get_claim(&by.reservation_id).await?
                    && earlier.request_ref == claim.request_ref
                {
                    tracing::info!(reservation_id = %earlier.reservation_id, "the same request's hold, placed by an earlier attempt");
                    return Ok(created(&earlier, now));
                }
                if matches!(by.key, LockKey::DayToken { .. }) {
                    continue;
                }
                tracing::info!(slot = %claim.slot, "slot taken");
                crate::metrics::count("ReservationConflicts", &[]);
                return Err(ReserveError::SlotTaken { booked: by.booked });
            }
            ClaimOutcome::Stale => {
                return Err(
                    StoreError::Failed { op: "place hold", source: "a fresh booking id was taken".into() }.into()
                );
            }
        }
    }
    Err(ReserveError::DayFull)
}

/// How often a hold tries another day token after losing one to a concurrent hold.
const DAY_TOKEN_ATTEMPTS: usize = 3;

/// A day token of `booking_type` on the local date of `start` that no live
/// booking holds; `None` when the day is full. Which one is free is read
/// (one Query); that it is still free is the hold's write condition.
pub async fn free_day_token<S: ClaimStore>(
    store: &S,
    resource: &Resource,
    booking_type: &str,
    limit: u32,
    start: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Option<DayToken>, StoreError> {
    let date = resource.local_date(start);
    let tokens = store.day_tokens(&resource.id, booking_type, date).await?;
    let live: Vec<&Lock> = tokens.iter().filter(|t| t.is_live(now)).collect();
    // Lowering a limit never cancels bookings: while more than `limit` are
    // live, the day is full.
    if live.len() >= limit as usize {
        return Ok(None);
    }
    let taken = |i: u32| live.iter().any(|t| matches!(&t.key, LockKey::DayToken { index, .. } if *index == i));
    Ok((0..limit).find(|i| !taken(*i)).map(|index| DayToken { date, index }))
}

/// The `201` for a hold (also what an idempotent replay returns).
fn created(claim: &Claim, now: DateTime<Utc>) -> Response<Body> {
    let view = HoldView {
        reservation_id: claim.reservation_id.clone(),
        resource_id: claim.slot.resource_id.clone(),
        booking_type: claim.terms.booking_type.clone(),
        duration_minutes: claim.terms.duration_minutes,
        start: rfc3339(claim.slot.start),
        end: rfc3339(claim.end),
        status: claim.reservation_status(now),
        expires_at: claim.expires_at.map(rfc3339).unwrap_or_default(),
        amount: claim.amount,
        currency: claim.currency.clone(),
    };
    let mut response = json_response(StatusCode::CREATED, &view);
    let location = format!("/v1/reservations/{}", claim.reservation_id);
    response.headers_mut().insert(header::LOCATION, location.parse().expect("ids are URL-safe"));
    response
}
