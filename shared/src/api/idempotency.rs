//! `Idempotency-Key` handling for POST routes.
//!
//! Follows Powertools for AWS Lambda's contract (replay, `422` for the key
//! with another payload, one execution per key) with one change that makes
//! it cheaper and stricter: the record is written COMPLETED, with the
//! response, in the same transaction as the work itself. The response is
//! known before the write (the handler makes the reservation id), so a
//! first request is one round trip and there is no IN_PROGRESS state: a
//! concurrent duplicate either commits first or finds the record and
//! replays it, and a request that fails writes nothing, so a retry runs afresh.
//! A request refused before its write (the slot taken since, its notice
//! passed) still replays an earlier success of the same key and payload.

use super::RequestError;
use crate::ports::{IdempotencyStore, IdempotentAnswer, KeyUse, SavedResponse, StoreError};
use chrono::{DateTime, Duration, Utc};
use lambda_http::http::{HeaderValue, header};
use lambda_http::{Body, Request, Response};
use sha2::{Digest, Sha256};

/// The request header carrying the client's key.
pub const HEADER: &str = "idempotency-key";
/// Set on a response replayed from an earlier request (as Stripe does).
pub const REPLAYED_HEADER: &str = "idempotent-replayed";
/// How long a completed key replays its response.
pub const RECORD_TTL: Duration = Duration::hours(24);

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
    #[error("this Idempotency-Key was used with a different request body")]
    KeyReused,
    #[error("idempotency record")]
    Store(#[from] StoreError),
}

super::problem::api_error!(IdempotencyError {
    wraps: [Store],
    Self::KeyReused => IdempotencyKeyReused,
});

/// A request's key, scoped to its route, with its payload's hash.
#[derive(Debug, Clone)]
pub struct KeyedRequest {
    record_key: String,
    payload_hash: String,
}

impl KeyedRequest {
    /// The request under `scope` with the client's `key`, if it sent one.
    pub fn new(scope: &str, key: Option<String>, payload: &serde_json::Value) -> Option<Self> {
        key.map(|key| Self { record_key: format!("{scope}#{key}"), payload_hash: payload_hash(payload) })
    }

    /// The record to write with the work whose answer is `response`.
    pub fn answer(&self, response: &Response<Body>, now: DateTime<Utc>) -> IdempotentAnswer {
        IdempotentAnswer {
            key: self.record_key.clone(),
            payload_hash: self.payload_hash.clone(),
            response: SavedResponse {
                status: response.status().as_u16(),
                body: String::from_utf8_lossy(response.body().as_ref()).into_owned(),
                location: response.headers().get(header::LOCATION).and_then(|v| v.to_str().ok()).map(str::to_owned),
            },
            expires_at: now + RECORD_TTL,
        }
    }

    /// The response a live record of this key gives this request: its
    /// replay, or `422` for another payload. `Ok(None)` without a record.
    pub async fn earlier<S: IdempotencyStore>(
        &self,
        store: &S,
        now: DateTime<Utc>,
    ) -> Result<Option<Response<Body>>, IdempotencyError> {
        match store.key_use(&self.record_key, &self.payload_hash, now).await? {
            None => Ok(None),
            Some(found) => answer_for(found).map(Some),
        }
    }
}

/// What a key's record answers: a replay, or `422` for another payload.
pub fn answer_for(found: KeyUse) -> Result<Response<Body>, IdempotencyError> {
    match found {
        KeyUse::Replay(saved) => Ok(replay(saved)),
        KeyUse::OtherPayload => Err(IdempotencyError::KeyReused),
    }
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
