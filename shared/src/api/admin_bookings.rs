//! `GET /v1/admin/resources/{id}/bookings?from=..&to=..`: the live bookings
//! and holds of a resource starting in `[from, to)` (default: the next 7
//! days; at most 31), with their status, type, interval, customer and
//! payment. Admin only (IAM on AWS, the admin token locally). Found through
//! the resource's cell locks, one Query per UTC day, then read by id.
//! Cancelled, refunded and released reservations are not listed (their
//! records are read by id at `GET /v1/reservations/{id}`).

use super::auth::{AdminAuth, AuthError};
use super::problem::api_error;
use super::{RequestError, json_response, path_param, respond};
use crate::domain::{ReservationId, ReservationStatus, ResourceId, rfc3339};
use crate::ports::{ClaimStore, ResourceStore, StoreError};
use chrono::{DateTime, Duration, Utc};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Serialize;

/// Why no bookings were listed.
#[derive(Debug, thiserror::Error)]
pub enum AdminBookingsError {
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("listing bookings")]
    Store(#[from] StoreError),
    #[error("there is no resource {0:?}")]
    NotFound(String),
    #[error("{0} must be an RFC 3339 time like 2026-06-10T09:00:00Z")]
    InvalidInstant(&'static str),
    #[error("from must be before to, at most 31 days apart")]
    InvalidRange,
}

api_error!(AdminBookingsError {
    wraps: [Request, Auth, Store],
    Self::NotFound(_) => ResourceNotFound,
    Self::InvalidInstant(_) => InvalidQuery,
    Self::InvalidRange => InvalidRange,
});

/// One booking as an operator sees it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BookingRow {
    pub reservation_id: ReservationId,
    pub status: ReservationStatus,
    pub booking_type: String,
    #[schema(format = DateTime)]
    pub start: String,
    #[schema(format = DateTime)]
    pub end: String,
    pub customer_name: String,
    pub customer_email: String,
    pub amount: i64,
    pub currency: String,
    pub checkout_session_id: Option<String>,
    pub payment_intent: Option<String>,
    /// Times it was rescheduled.
    pub version: u32,
}

/// The `200` body: live holds and bookings starting in `[from, to)`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BookingsView<'a> {
    pub resource_id: &'a ResourceId,
    #[schema(format = DateTime)]
    pub from: String,
    #[schema(format = DateTime)]
    pub to: String,
    pub bookings: Vec<BookingRow>,
}

/// Handles `GET /v1/admin/resources/{id}/bookings`.
#[utoipa::path(
    get,
    path = "/v1/admin/resources/{id}/bookings",
    tag = "admin",
    operation_id = "listBookings",
    summary = "A resource's live holds and bookings, with customers",
    params(
        ("id" = String, Path, description = "The resource id"),
        ("from" = Option<String>, Query, format = DateTime, description = "RFC 3339; default: now"),
        ("to" = Option<String>, Query, format = DateTime, description = "RFC 3339; default: `from` + 7 days; at most 31 days after `from`"),
    ),
    security(("adminToken" = []), ("awsSigV4" = [])),
    responses((status = 200, description = "The bookings", body = BookingsView)),
)]
pub async fn admin_bookings<S: ResourceStore + ClaimStore>(
    store: &S,
    admin: &AdminAuth,
    req: Request,
) -> Response<Body> {
    admin_bookings_at(store, admin, req, Utc::now()).await
}

/// [`admin_bookings`] at a given instant (tests drive the clock).
pub async fn admin_bookings_at<S: ResourceStore + ClaimStore>(
    store: &S,
    admin: &AdminAuth,
    req: Request,
    now: DateTime<Utc>,
) -> Response<Body> {
    respond(run(store, admin, &req, now).await)
}

async fn run<S: ResourceStore + ClaimStore>(
    store: &S,
    admin: &AdminAuth,
    req: &Request,
    now: DateTime<Utc>,
) -> Result<Response<Body>, AdminBookingsError> {
    admin.require(req)?;
    let raw_id = path_param(req, "id")?;
    let not_found = || AdminBookingsError::NotFound(raw_id.clone());
    let id = ResourceId::parse(&raw_id).map_err(|_| not_found())?;
    let query = req.query_string_parameters();
    let instant = |name: &'static str, default: DateTime<Utc>| match query.first(name) {
        Some(v) => DateTime::parse_from_rfc3339(&v.replace(' ', "+"))
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| AdminBookingsError::InvalidInstant(name)),
        None => Ok(default),
    };
    let from = instant("from", now)?;
    let to = instant("to", from + Duration::days(7))?;
    if from >= to || to - from > Duration::days(31) {
        return Err(AdminBookingsError::InvalidRange);
    }
    let resource = store.get_resource(&id).await?.ok_or_else(not_found)?;
    // A team's bookings hold its members' cells: found through them.
    let hosts = match &resource.team {
        Some(team) => team.members.clone(),
        None => vec![id.clone()],
    };
    let mut bookings = Vec::new();
    for host in &hosts {
        for booking in store.bookings_between(host, from, to, now).await? {
            let ours = booking.reservation_id.slot_key().resource_id == id;
            if (ours || resource.team.is_none())
                && !bookings.iter().any(|b: &crate::domain::Claim| b.reservation_id == booking.reservation_id)
            {
                bookings.push(booking);
            }
        }
    }
    bookings.sort_by_key(|c| c.slot.start);
    let rows: Vec<BookingRow> = bookings
        .into_iter()
        .map(|c| BookingRow {
            status: c.reservation_status(now),
            booking_type: c.terms.booking_type.clone(),
            start: rfc3339(c.slot.start),
            end: rfc3339(c.end),
            customer_name: c.customer.name.clone(),
            customer_email: c.customer.email.as_str().to_owned(),
            amount: c.amount,
            currency: c.currency.clone(),
            checkout_session_id: c.checkout.as_ref().map(|l| l.session_id.clone()),
            payment_intent: c.payment_intent.clone(),
            version: c.version,
            reservation_id: c.reservation_id,
        })
        .collect();
    let body = BookingsView { resource_id: &id, from: rfc3339(from), to: rfc3339(to), bookings: rows };
    Ok(json_response(StatusCode::OK, &body))
}
