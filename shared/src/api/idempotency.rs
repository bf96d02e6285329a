//! `Idempotency-Key` handling for POST routes.
//!
//! Follows Powertools for AWS Lambda: the first request with a key writes an
//! IN_PROGRESS record (conditional put) holding a hash of its payload; when it
//! succeeds the record becomes COMPLETED with the response, which later
//! requests with the same key and payload get back unchanged. A request that
//! fails deletes its record, so a retry runs afresh. The same key with another
//! payload is a 422; the same key while the first is still running is a 409.

use super::RequestError;
use crate::ports::{IdempotencyStart, IdempotencyStore, SavedResponse, StoreError};
use chrono::{DateTime, Duration, Utc};
use lambda_http::http::{HeaderValue, header};
use lambda_http::{Body, Request, Response};
use sha2::{Digest, Sha256};
use std::future::Future;

/// The request header carrying the client's key.
pub const HEADER: &str = "idempotency-key";
/// Set on a response replayed from an earlier request (as Stripe does).
pub const REPLAYED_HEADER: &str = "idempotent-replayed";
/// How long a completed key replays its response.
pub const RECORD_TTL: Duration = Duration::hours(24);
/// How long an IN_PROGRESS record blocks its key if its request never finishes:
/// longer than any function timeout.
pub const IN_PROGRESS_TTL: Duration = Duration::seconds(60);

/// The client's idempotency key for `req`, validated; `None` if absent.
pub fn key_of(req: &Request) -> Result<Option<String>, RequestError> {
    let Some(value) = req.headers().get(HEADER) else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| b.is_ascii_graphic()));
    key.map(|k| Some(k.to_owned())).ok_or(RequestError::InvalidIdempotencyKey)
}

/// A stable hash of a JSON payload: object keys are sorted, so the same
/// payload hashes the same whatever order the client wrote its fields in.
pub fn payload_hash(payload: &serde_json::Value) -> String {
    let canonical = serde_json::to_vec(payload).expect("a JSON value always serialises");
    Sha256::digest(&canonical).iter().map(|b| format!("{b:02x}")).collect()
}

/// Why a request with an `Idempotency-Key` was not run.
#[derive(Debug, thiserror::Error)]
pub enum IdempotencyError {
    #[error("a request with this Idempotency-Key is still being processed; retry shortly")]
    InProgress,
    #[error("this Idempotency-Key was used with a different request body")]
    KeyReused,
    #[error("idempotency record")]
    Store(#[from] StoreError),
}

super::problem::api_error!(IdempotencyError {
    wraps: [Store],
    Self::InProgress => RequestInProgress,
    Self::KeyReused => IdempotencyKeyReused,
});

/// Runs `operation` at most once per `(scope, key)`, replaying its successful
/// response to later requests with the same key and payload.
pub async fn run_once<S, F, Fut, E>(
    store: &S,
    scope: &str,
    key: Option<String>,
    payload: &serde_json::Value,
    now: DateTime<Utc>,
    operation: F,
) -> Result<Response<Body>, E>
where
    S: IdempotencyStore,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Response<Body>, E>>,
    E: From<IdempotencyError>,
{
    let Some(key) = key else {
        return operation().await;
    };
    let record_key = format!("{scope}#{key}");
    let hash = payload_hash(payload);
    let start = store.start_idempotent(&record_key, &hash, now, now + IN_PROGRESS_TTL, now + RECORD_TTL).await;
    match start.map_err(IdempotencyError::Store)? {
        IdempotencyStart::Started => {}
        IdempotencyStart::Completed(saved) => return Ok(replay(saved)),
        IdempotencyStart::InProgress => return Err(IdempotencyError::InProgress.into()),
        IdempotencyStart::PayloadMismatch => return Err(IdempotencyError::KeyReused.into()),
    }
    let outcome = operation().await;
    match &outcome {
        Ok(response) if response.status().is_success() => {
            let saved = SavedResponse {
                status: response.status().as_u16(),
                body: String::from_utf8_lossy(response.body().as_ref()).into_owned(),
                location: response.headers().get(header::LOCATION).and_then(|v| v.to_str().ok()).map(str::to_owned),
            };
            if let Err(e) = store.complete_idempotent(&record_key, &saved, now + RECORD_TTL).await {
                // The work is done; the client gets its answer. A retry within
                // IN_PROGRESS_TTL sees 409, later it re-runs and meets its own claim.
                tracing::warn!(error = %e, "could not save the idempotent response");
            }
        }
        _ => {
            if let Err(e) = store.abandon_idempotent(&record_key).await {
                tracing::warn!(error = %e, "could not release the idempotency key");
            }
        }
    }
    outcome
}

fn replay(saved: SavedResponse) -> Response<Body> {
    let mut response = Response::builder()
        .status(saved.status)
        .header(header::CONTENT_TYPE, "application/json")
        .header(REPLAYED_HEADER, "true")
        .body(Body::Text(saved.body))
        .expect("saved parts form a valid response");
    if let Some(location) = saved.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_hash_ignores_key_order_but_not_values() {
        let a: serde_json::Value = serde_json::from_str(r#"{"a":1,"b":{"x":"y","z":2}}"#).unwrap();
        let b: serde_json::Value = serde_json::from_str(r#"{"b":{"z":2,"x":"y"},"a":1}"#).unwrap();
        let c: serde_json::Value = serde_json::from_str(r#"{"a":2,"b":{"x":"y","z":2}}"#).unwrap();
        assert_eq!(payload_hash(&a), payload_hash(&b));
        assert_ne!(payload_hash(&a), payload_hash(&c));
        assert_eq!(payload_hash(&a).len(), 64);
    }

    #[test]
    fn keys_are_validated() {
        let req = |v: &str| lambda_http::http::Request::builder().header(HEADER, v).body(Body::Empty).unwrap();
        assert_eq!(key_of(&req("abc-123")).unwrap().as_deref(), Some("abc-123"));
        assert!(key_of(&req("has space")).is_err());
        assert!(key_of(&req(&"k".repeat(256))).is_err());
        let none = lambda_http::http::Request::builder().body(Body::Empty).unwrap();
        assert_eq!(key_of(&none).unwrap(), None);
    }
}
