//! `GET /v1/reservations/{id}`: what the customer's success page polls.
//!
//! Anyone with the id (it is in the success URL, calendar events, Stripe
//! metadata) sees what a public page may show: the status and the interval.
//! The holder of the reservation's secret (`Authorization: Bearer rsk_…`)
//! also sees the booking type, the price and the hold's expiry; any other
//! `Authorization` is a `401`.
//!
//! The id carries its slot key, so this is one consistent `GetItem` on the
//! claim; only when the claim now belongs to someone else (or is gone) does it
//! read the reservation's record.

use super::auth::{AuthError, holds_secret};
use super::problem::api_error;
use super::{RequestError, json_response, reservation_id_param, respond};
use crate::domain::{ReservationId, ReservationStatus, ResourceId, SecretHash, rfc3339};
use crate::ports::{ClaimStore, ReservationHistory, StoreError};
use chrono::{DateTime, Utc};
use lambda_http::http::{StatusCode, header};
use lambda_http::{Body, Request, Response};
use serde::Serialize;

/// Why no reservation was shown.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("reading the reservation")]
    Store(#[from] StoreError),
    #[error("there is no reservation {0}")]
    NotFound(String),
}

api_error!(StatusError { wraps: [Request, Auth, Store], Self::NotFound(_) => ReservationNotFound });

/// The reservation as the public (anyone with its id) sees it, with
/// [`ReservationDetails`] for the holder of its secret.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReservationView {
    pub reservation_id: ReservationId,
    pub resource_id: ResourceId,
    /// The booking's current interval (a reschedule moves it).
    #[schema(format = DateTime)]
    pub start: String,
    #[schema(format = DateTime)]
    pub end: String,
    pub status: ReservationStatus,
    /// Only for the holder of the reservation's secret.
    #[serde(flatten)]
    pub details: Option<ReservationDetails>,
}

/// What only the holder of a reservation's secret sees.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReservationDetails {
    /// The booking type, while the booking item exists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub booking_type: Option<String>,
    /// When the hold lapses; only while `held`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
    /// In the currency's minor unit (only for the holder of the secret).
    #[schema(required = false)]
    pub amount: i64,
    /// (Only for the holder of the secret.)
    #[schema(required = false)]
    pub currency: String,
}

/// Handles `GET /v1/reservations/{id}`.
#[utoipa::path(
    get,
    path = "/v1/reservations/{id}",
    tag = "booking",
    operation_id = "getReservation",
    summary = "A reservation's status; with its secret also its amount and expiry",
    params(("id" = String, Path, description = "The reservation id")),
    security((), ("reservationSecret" = [])),
    responses((status = 200, description = "The reservation", body = ReservationView)),
)]
pub async fn reservation_status<S: ClaimStore + ReservationHistory>(store: &S, req: Request) -> Response<Body> {
    reservation_status_at(store, req, Utc::now()).await
}

/// [`reservation_status`] at a given instant (tests drive the clock).
pub async fn reservation_status_at<S: ClaimStore + ReservationHistory>(
    store: &S,
    req: Request,
    now: DateTime<Utc>,
) -> Response<Body> {
    respond(run(store, &req, now).await)
}

async fn run<S: ClaimStore + ReservationHistory>(
    store: &S,
    req: &Request,
    now: DateTime<Utc>,
) -> Result<Response<Body>, StatusError> {
    let id = reservation_id_param(req, StatusError::NotFound)?;
    let not_found = || StatusError::NotFound(id.to_string());
    let resource_id = id.slot_key().resource_id;
    // A credential that is sent must be the secret; none gives the public view.
    let holder = |secret: Option<&SecretHash>| match req.headers().get(header::AUTHORIZATION) {
        None => Ok(false),
        Some(_) if holds_secret(req, secret) => Ok(true),
        Some(_) => Err(StatusError::Auth(AuthError::SecretRequired)),
    };
    if let Some(claim) = store.get_claim(&id).await? {
        let status = claim.reservation_status(now);
        let details = holder(claim.secret_hash.as_ref())?.then(|| ReservationDetails {
            booking_type: Some(claim.terms.booking_type.clone()),
            expires_at: claim.expires_at.filter(|_| status == ReservationStatus::Held).map(rfc3339),
            amount: claim.amount,
            currency: claim.currency.clone(),
        });
        let view = ReservationView {
            reservation_id: id,
            resource_id,
            start: rfc3339(claim.slot.start),
            end: rfc3339(claim.end),
            status,
            details,
        };
        return Ok(json_response(StatusCode::OK, &view));
    }
    let record = store.get_reservation_record(&id).await?.ok_or_else(not_found)?;
    let details = holder(record.secret_hash.as_ref())?.then(|| ReservationDetails {
        booking_type: None,
        expires_at: None,
        amount: record.amount,
        currency: record.currency.clone(),
    });
    let view = ReservationView {
        reservation_id: id,
        resource_id,
        start: rfc3339(record.start),
        end: rfc3339(record.end),
        status: record.status,
        details,
    };
    Ok(json_response(StatusCode::OK, &view))
}
