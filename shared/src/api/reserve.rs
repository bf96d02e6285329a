//! `POST /v1/reservations`: hold one slot while the customer pays.
//!
//! Body: `{"resource_id", "start", "customer": {"name", "email"}}`. The start
//! must be a future slot of the resource. The hold is one conditional
//! `PutItem` carrying the TTL attribute `expires_at`; it succeeds only if the
//! slot has no live claim, so two concurrent requests for one slot can never
//! both get a 201. Optional `Idempotency-Key` header: see [`super::idempotency`].

use super::idempotency::IdempotencyError;
use super::problem::api_error;
use super::{RequestError, from_json, idempotency, json_body, json_response, respond};
use crate::domain::{
    Claim, ClaimStatus, Customer, GridError, ReservationId, ReservationStatus, ResourceId, SlotKey, rfc3339,
};
use crate::ports::{
    ClaimStore, HoldOutcome, IdempotencyStore, ReservationHistory, ReservationRecord, ResourceStore, StoreError,
};
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
    #[error("start must be in the future")]
    SlotInPast,
    #[error("start is not on the resource's {0}-minute slot grid")]
    OffGrid(u32),
    #[error(transparent)]
    OutsideHours(GridError),
    #[error("{}", if *.booked { "this slot is already booked" } else { "this slot is held by another customer; try another slot" })]
    SlotTaken { booked: bool },
}

api_error!(ReserveError {
    wraps: [Request, Idempotency, Store],
    Self::InvalidField(_) => InvalidField,
    Self::UnknownResource(_) => UnknownResource,
    Self::SlotInPast => SlotInPast,
    Self::OffGrid(_) => OffGrid,
    Self::OutsideHours(_) => OutsideOpeningHours,
    Self::SlotTaken { .. } => SlotTaken,
});

/// The 201 body, also what an idempotent replay returns.
#[derive(Debug, Serialize)]
pub struct HoldView {
    pub reservation_id: ReservationId,
    pub resource_id: ResourceId,
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
    if start <= now {
        return Err(ReserveError::SlotInPast);
    }
    let slot = resource
        .slot_at(&resource.booking_types[0], resource.booking_types[0].durations[0].minutes, start)
        .map_err(|e| match e {
            GridError::OffGrid => ReserveError::OffGrid(resource.booking_types[0].start_interval_minutes),
            GridError::OutsideHours => ReserveError::OutsideHours(e),
        })?;
    // RFC 3339 years have four digits: a slot ending after 9999 fits in no
    // reservation id, response or calendar event.
    if chrono::Datelike::year(&slot.end) > 9999 {
        return Err(invalid("start is too far in the future".into()));
    }

    let key = SlotKey { resource_id, start: slot.start };
    let expires_at = now + Duration::minutes(i64::from(resource.hold_minutes));
    let claim = Claim {
        request_ref,
        ..Claim::hold(key, slot.end, customer, &resource.booking_types[0].durations[0].price, now, expires_at)
    };
    match store.place_hold(&claim, now).await? {
        HoldOutcome::Placed { replaced } => {
            if let Some(old) = replaced {
                keep_record_of_expired(store, &old, now).await;
            }
            tracing::info!(reservation_id = %claim.reservation_id, slot = %claim.slot, "slot held");
            Ok(created(&claim, now))
        }
        HoldOutcome::Taken { by } if by.request_ref.is_some() && by.request_ref == claim.request_ref => {
            tracing::info!(reservation_id = %by.reservation_id, "the same request's hold, placed by an earlier attempt");
            Ok(created(&by, now))
        }
        HoldOutcome::Taken { by } => {
            tracing::info!(slot = %claim.slot, "slot taken");
            crate::metrics::count("ReservationConflicts", &[]);
            Err(ReserveError::SlotTaken { booked: by.status != ClaimStatus::Held })
        }
    }
}

/// The `201` for a hold (also what an idempotent replay returns).
fn created(claim: &Claim, now: DateTime<Utc>) -> Response<Body> {
    let view = HoldView {
        reservation_id: claim.reservation_id.clone(),
        resource_id: claim.slot.resource_id.clone(),
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

/// Keeps an overwritten, expired hold readable at its status route. Best
/// effort: the new hold is already in place and must not fail because of it.
async fn keep_record_of_expired<S: ReservationHistory>(store: &S, old: &Claim, now: DateTime<Utc>) {
    let record = ReservationRecord {
        reservation_id: old.reservation_id.clone(),
        end: old.end,
        status: ReservationStatus::Expired,
        amount: old.amount,
        currency: old.currency.clone(),
        recorded_at: now,
        cancel_token: None,
    };
    if let Err(e) = store.record_reservation(&record).await {
        tracing::warn!(error = %e, reservation_id = %old.reservation_id, "could not record the expired hold");
    }
}
