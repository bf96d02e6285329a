//! `POST /v1/reservations/{id}/checkout`: the Stripe Checkout Session of a hold.
//!
//! Authorised by the reservation's secret (`Authorization: Bearer rsk_…`),
//! before anything else: the session shows the customer's e-mail address.
//! Optional body `{"success_url", "cancel_url"}` (defaults from configuration).
//! The first call fixes the session's parameters on the hold (its expiry,
//! extending the hold so it outlives the session, Stripe wants 30 min – 24 h;
//! and its return URLs), then creates the session with idempotency key
//! `checkout-{reservation_id}-{expires_at}`, records it as the reservation's own session
//! and stores it on the hold: `201`. Later calls return the same session:
//! `200`; a later call asking for other URLs is `409 checkout_urls_differ`
//! (omitting them is fine). If Stripe is down the answer is `503`, the hold
//! stays, and a retry, or a concurrent call, sends Stripe the very same
//! request under the same key. A retry so late that the fixed expiry is
//! closer than Stripe's 30-minute minimum, refused by Stripe (so no session
//! was made), fixes a new expiry, and with it a new key.
//!
//! Before a session is created the hold is checked against the resource's
//! stored settings ([`still_admits`]): reserve accepts from a cache up to a
//! minute old, and a hold the current settings no longer offer (hours closed,
//! price or buffers changed) is released with `409 settings_changed`.

use super::auth::{AuthError, holds_secret};
use super::problem::api_error;
use super::reserve::{day_still_admits, still_admits};
use super::{RequestError, json_body, json_response, reservation_id_param, respond};
use crate::domain::payment::{SESSION_MIN, session_window};
use crate::domain::{CheckoutLink, CheckoutRequest, CheckoutTerms, Claim, ReservationId, ReservationStatus, rfc3339};
use crate::ports::{
    ClaimStore, PaymentError, PaymentStore, Payments, ReservationHistory, ReservationRecord, ResourceStore, StoreError,
};
use chrono::{DateTime, Duration, Utc};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde::{Deserialize, Serialize};

/// Where Stripe sends the customer back to when the request names no URLs.
/// Both may contain `{RESERVATION_ID}`, which slotguard fills in.
#[derive(Debug, Clone)]
pub struct CheckoutUrls {
    /// May also contain `{CHECKOUT_SESSION_ID}`, which Stripe fills in.
    pub success_url: String,
    pub cancel_url: String,
}

/// What the checkout handler needs from storage.
pub trait CheckoutStore: ClaimStore + PaymentStore + ResourceStore + ReservationHistory {}
impl<T: ClaimStore + PaymentStore + ResourceStore + ReservationHistory> CheckoutStore for T {}

/// Why no Checkout Session was returned.
#[derive(Debug, thiserror::Error)]
pub enum CheckoutError {
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("setting up the checkout")]
    Store(#[from] StoreError),
    #[error("creating the Checkout Session")]
    Payment(#[from] PaymentError),
    #[error("there is no reservation {0}")]
    NotFound(String),
    #[error("the slot starts before a Checkout Session (at least 30 minutes) would end; pick a later slot")]
    StartsTooSoon,
    #[error("this hold has lapsed; reserve the slot again")]
    HoldExpired,
    #[error("this reservation is {}, not awaiting checkout", .0.as_str())]
    NotHeld(ReservationStatus),
    #[error("this reservation's checkout was started with other success_url/cancel_url; send the same URLs, or none")]
    UrlsDiffer,
    #[error("{0} must be an http(s) URL")]
    InvalidUrl(&'static str),
    #[error(
        "the resource's settings changed since this slot was held and no longer offer it as held; \
         the hold is released: reserve again"
    )]
    SettingsChanged,
    /// A concurrent call is setting up (or has set up) this checkout.
    #[error("{0}")]
    InProgress(&'static str),
}

api_error!(CheckoutError {
    wraps: [Request, Auth, Store, Payment],
    Self::NotFound(_) => ReservationNotFound,
    Self::HoldExpired => HoldExpired,
    Self::StartsTooSoon => TooSoon,
    Self::NotHeld(_) => NotHeld,
    Self::UrlsDiffer => CheckoutUrlsDiffer,
    Self::InvalidUrl(_) => InvalidField,
    Self::SettingsChanged => SettingsChanged,
    Self::InProgress(_) => RequestInProgress,
});

/// The optional body of `POST /v1/reservations/{id}/checkout`: where Stripe
/// sends the customer back to (`{RESERVATION_ID}` is filled in).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CheckoutBody {
    #[schema(max_length = 2048)]
    success_url: Option<String>,
    #[schema(max_length = 2048)]
    cancel_url: Option<String>,
}

/// The reservation's Stripe Checkout Session.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct CheckoutView {
    reservation_id: ReservationId,
    session_id: String,
    /// Stripe's hosted payment page: send the customer there.
    checkout_url: String,
    /// When the Checkout Session (and so the chance to pay) ends.
    #[schema(format = DateTime)]
    expires_at: Option<String>,
}

/// Handles `POST /v1/reservations/{id}/checkout`.
#[utoipa::path(
    post,
    path = "/v1/reservations/{id}/checkout",
    tag = "booking",
    operation_id = "checkout",
    summary = "Create (or return) the hold's Stripe Checkout Session",
    params(("id" = String, Path, description = "The reservation id")),
    request_body(content = CheckoutBody, description = "Optional: return URLs (default: the deployment's)"),
    security(("reservationSecret" = [])),
    responses(
        (status = 201, description = "Session created", body = CheckoutView),
        (status = 200, description = "The session an earlier call created", body = CheckoutView),
    ),
)]
pub async fn checkout<S: CheckoutStore, P: Payments>(
    store: &S,
    payments: &P,
    urls: &CheckoutUrls,
    req: Request,
) -> Response<Body> {
    checkout_at(store, payments, urls, req, Utc::now()).await
}

/// [`checkout`] at a given instant (tests drive the clock).
pub async fn checkout_at<S: CheckoutStore, P: Payments>(
    store: &S,
    payments: &P,
    urls: &CheckoutUrls,
    req: Request,
    now: DateTime<Utc>,
) -> Response<Body> {
    respond(run(store, payments, urls, &req, now).await)
}

fn checked_url(name: &'static str, url: String) -> Result<String, CheckoutError> {
    let ok = (url.starts_with("https://") || url.starts_with("http://"))
        && url.len() <= 2048
        && !url.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok { Ok(url) } else { Err(CheckoutError::InvalidUrl(name)) }
}

async fn run<S: CheckoutStore, P: Payments>(
    store: &S,
    payments: &P,
    urls: &CheckoutUrls,
    req: &Request,
    now: DateTime<Utc>,
) -> Result<Response<Body>, CheckoutError> {
    let id = reservation_id_param(req, CheckoutError::NotFound)?;
    let mut first = Some(live_hold(store, &id, req, now).await?);
    let body: CheckoutBody =
        if req.body().as_ref().iter().all(u8::is_ascii_whitespace) { CheckoutBody::default() } else { json_body(req)? };
    let fill = |url: String| url.replace("{RESERVATION_ID}", id.as_str());
    let success_url = body.success_url.map(|u| checked_url("success_url", u)).transpose()?.map(fill);
    let cancel_url = body.cancel_url.map(|u| checked_url("cancel_url", u)).transpose()?.map(fill);

    // A few rounds: a concurrent call may fix the session's terms between our
    // read and write, and stale terms are fixed anew once.
    for _ in 0..3 {
        let claim = match first.take() {
            Some(claim) => claim,
            None => live_hold(store, &id, req, now).await?,
        };
        let terms = match &claim.checkout_terms {
            Some(terms) => {
                // Fixed by an earlier call: every call sends Stripe these, so
                // a request asking for other URLs cannot be honoured.
                let differs = |asked: &Option<String>, fixed: &str| asked.as_deref().is_some_and(|a| a != fixed);
                if differs(&success_url, &terms.success_url) || differs(&cancel_url, &terms.cancel_url) {
                    return Err(CheckoutError::UrlsDiffer);
                }
                if let Some(link) = &claim.checkout {
                    return Ok(json_response(StatusCode::OK, &view(&claim, link)));
                }
                terms.clone()
            }
            None => {
                let (session_expires_at, hold) = session_window(claim.expires_at.expect("a hold expires"), now);
                // A hold never outlives its slot's start.
                if hold > claim.slot.start {
                    return Err(CheckoutError::StartsTooSoon);
                }
                let terms = CheckoutTerms {
                    expires_at: session_expires_at,
                    success_url: success_url.clone().unwrap_or_else(|| fill(urls.success_url.clone())),
                    cancel_url: cancel_url.clone().unwrap_or_else(|| fill(urls.cancel_url.clone())),
                };
                if !store.start_checkout(&claim, &terms, hold, now).await? {
                    continue;
                }
                terms
            }
        };
        // The hold may have been accepted under cached settings that have
        // changed since: no payment for what the current ones do not offer.
        let resource = store.get_resource(&claim.slot.resource_id).await?;
        let admitted = match &resource {
            Some(resource) => still_admits(resource, &claim) && day_still_admits(store, resource, &claim, now).await?,
            None => true,
        };
        if !admitted {
            let record = ReservationRecord {
                reservation_id: id.clone(),
                start: claim.slot.start,
                end: claim.end,
                status: ReservationStatus::Released,
                amount: claim.amount,
                currency: claim.currency.clone(),
                recorded_at: now,
                secret_hash: claim.secret_hash.clone(),
                calendars: Vec::new(),
            };
            if !store.retire_hold(&claim, &record, now).await? {
                // The hold changed since it was read (another checkout
                // extended it, or it was paid): read it again and decide
                // from what is there, never answer "released" for a hold
                // that is not.
                continue;
            }
            tracing::info!(reservation_id = %id, "hold released: the resource's settings no longer offer it");
            return Err(CheckoutError::SettingsChanged);
        }
        let product_name = resource.map(|r| r.name).unwrap_or_else(|| claim.slot.resource_id.to_string());
        let request = CheckoutRequest {
            reservation_id: id.clone(),
            slot: claim.slot.clone(),
            slot_end: claim.end,
            product_name,
            amount: claim.amount,
            currency: claim.currency.clone(),
            customer: claim.customer.clone(),
            expires_at: terms.expires_at,
            success_url: terms.success_url.clone(),
            cancel_url: terms.cancel_url.clone(),
        };
        let session = match payments.create_checkout_session(&request).await {
            // Stripe validated a fresh request (a replay of an executed one
            // would have returned its session) and refused it: if the fixed
            // expiry has come closer than Stripe's minimum (a retry long after
            // an outage), no session exists under these terms; fix new ones
            // (a new expiry, so a new idempotency key) and try again.
            Err(PaymentError::Rejected(reason)) if terms.expires_at < now + SESSION_MIN + Duration::minutes(1) => {
                tracing::warn!(
                    reservation_id = %id,
                    reason = %crate::telemetry::scrubbed(&reason),
                    "fixed checkout expiry too close; fixing new terms"
                );
                let (session_expires_at, hold) = session_window(claim.expires_at.expect("a hold expires"), now);
                // New terms pass the same test as the first: the session
                // (and the hold) must end before the slot starts.
                if hold > claim.slot.start {
                    return Err(CheckoutError::StartsTooSoon);
                }
                let fresh = CheckoutTerms { expires_at: session_expires_at, ..terms };
                store.start_checkout(&claim, &fresh, hold, now).await?;
                continue;
            }
            other => other?,
        };
        let link = CheckoutLink { session_id: session.id, url: session.url };
        let record = claim.checkout_record(link.session_id.clone());
        if !store.attach_checkout(&claim, &record, &link).await? {
            tracing::error!(reservation_id = %id, session_id = %link.session_id, "another session is recorded for this hold");
            return Err(CheckoutError::InProgress("another checkout for this reservation was set up; retry to get it"));
        }
        tracing::info!(reservation_id = %id, session_id = %link.session_id, "checkout session created");
        let claim = Claim { checkout_terms: Some(terms), ..claim };
        return Ok(json_response(StatusCode::CREATED, &view(&claim, &link)));
    }
    Err(CheckoutError::InProgress("another checkout for this reservation is being set up; retry shortly"))
}

fn view(claim: &Claim, link: &CheckoutLink) -> CheckoutView {
    CheckoutView {
        reservation_id: claim.reservation_id.clone(),
        session_id: link.session_id.clone(),
        checkout_url: link.url.clone(),
        expires_at: claim.checkout_terms.as_ref().map(|t| rfc3339(t.expires_at)),
    }
}

/// The reservation's claim if it is a live hold, or the problem saying why not.
async fn live_hold<S: CheckoutStore>(
    store: &S,
    id: &ReservationId,
    req: &Request,
    now: DateTime<Utc>,
) -> Result<Claim, CheckoutError> {
    let claim = store.get_claim(id).await?;
    let (status, secret) = match &claim {
        Some(c) => (c.reservation_status(now), c.secret_hash.clone()),
        None => match store.get_reservation_record(id).await? {
            Some(record) => (record.status, record.secret_hash),
            None => return Err(CheckoutError::NotFound(id.to_string())),
        },
    };
    if !holds_secret(req, secret.as_ref()) {
        return Err(AuthError::SecretRequired.into());
    }
    match status {
        ReservationStatus::Held => Ok(claim.expect("a held status comes from a claim")),
        ReservationStatus::Expired | ReservationStatus::Released => Err(CheckoutError::HoldExpired),
        ReservationStatus::PaymentPending
        | ReservationStatus::Confirmed
        | ReservationStatus::Cancelling
        | ReservationStatus::Refunded
        | ReservationStatus::Cancelled => Err(CheckoutError::NotHeld(status)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ApiError;

    #[test]
    fn urls_are_checked() {
        assert_eq!(checked_url("u", "http://x/ok".into()).unwrap(), "http://x/ok");
        for bad in ["javascript:alert(1)", "ftp://x", "https://a b", ""] {
            assert_eq!(checked_url("u", bad.into()).unwrap_err().kind().status(), 422, "{bad}");
        }
    }
}
