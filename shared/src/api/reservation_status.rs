//! `GET /v1/reservations/{id}`: what the customer's success page polls.
//!
//! The id carries its slot key, so this is one consistent `GetItem` on the
//! claim; only when the claim now belongs to someone else (or is gone) does it
//! read the reservation's record.

use super::problem::api_error;
use super::{RequestError, json_response, reservation_id_param, respond};
use crate::domain::{ReservationId, ReservationStatus, ResourceId, rfc3339};
use crate::ports::{ClaimStore, ReservationHistory, StoreError};
use chrono::{DateTime, Utc};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde::Serialize;

/// Why no reservation was shown.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error("reading the reservation")]
    Store(#[from] StoreError),
    #[error("there is no reservation {0}")]
    NotFound(String),
}

api_error!(StatusError { wraps: [Request, Store], Self::NotFound(_) => ReservationNotFound });

/// The reservation as its customer sees it.
#[derive(Debug, Serialize)]
pub struct ReservationView {
    pub reservation_id: ReservationId,
    pub resource_id: ResourceId,
    /// The booking type, while the booking item exists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub booking_type: Option<String>,
    /// The booking's current interval (a reschedule moves it).
    pub start: String,
    pub end: String,
    pub status: ReservationStatus,
    /// When the hold lapses; only while `held`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    pub amount: i64,
    pub currency: String,
    /// Authorises `POST /v1/bookings/{id}/cancel`; only once confirmed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancel_token: Option<String>,
}

/// Handles `GET /v1/reservations/{id}`.
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
    if let Some(claim) = store.get_claim(&id).await? {
        let status = claim.reservation_status(now);
        let view = ReservationView {
            reservation_id: id,
            resource_id,
            booking_type: Some(claim.terms.booking_type.clone()),
            start: rfc3339(claim.slot.start),
            end: rfc3339(claim.end),
            status,
            expires_at: claim.expires_at.filter(|_| status == ReservationStatus::Held).map(rfc3339),
            amount: claim.amount,
            currency: claim.currency,
            cancel_token: claim
                .cancel_token
                .filter(|_| matches!(status, ReservationStatus::Confirmed | ReservationStatus::Cancelling)),
        };
        return Ok(json_response(StatusCode::OK, &view));
    }
    let record = store.get_reservation_record(&id).await?.ok_or_else(not_found)?;
    let view = ReservationView {
        reservation_id: id,
        resource_id,
        booking_type: None,
        start: rfc3339(record.start),
        end: rfc3339(record.end),
        status: record.status,
        expires_at: None,
        amount: record.amount,
        currency: record.currency,
        cancel_token: None,
    };
    Ok(json_response(StatusCode::OK, &view))
}
