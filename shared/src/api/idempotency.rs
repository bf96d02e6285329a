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
//!
//! The record does not give away what it answers: it is stored under the
//! SHA-256 of the client's key, and a reservation secret in the saved answer
//! (field `reservation_secret`) is sealed with a pad only the key yields
//! (HMAC-SHA256 keyed by the client's key). Whoever can read the table but
//! does not know the key (send a random one, as Stripe advises) cannot use
//! the record to act on the reservation; the client retrying with its key
//! gets the same `201`, secret included.

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

/// The field of a saved answer that is stored sealed, never in clear.
pub const SEALED_FIELD: &str = "reservation_secret";
const SEALED_AS: &str = "reservation_secret_sealed";

/// A request's key, scoped to its route, with its payload's hash.
#[derive(Clone)]
pub struct KeyedRequest {
    record_key: String,
    payload_hash: String,
    /// HMAC-SHA256(client's key, "seal"): seals [`SEALED_FIELD`].
    seal_key: [u8; 32],
}

impl std::fmt::Debug for KeyedRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyedRequest").field("record_key", &self.record_key).finish_non_exhaustive()
    }
}

type HmacSha256 = hmac::Hmac<Sha256>;

fn hmac(key: &[u8], message: &[u8]) -> [u8; 32] {
    use hmac::Mac;
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// The key a request's record is stored under: its route's `scope` and the
/// SHA-256 of the client's key (the key itself is not stored).
pub fn record_key(scope: &str, key: &str) -> String {
    format!("{scope}#{}", data_encoding::HEXLOWER.encode(&Sha256::digest(key.as_bytes())))
}

impl KeyedRequest {
    /// The request under `scope` with the client's `key`, if it sent one.
    pub fn new(scope: &str, key: Option<String>, payload: &serde_json::Value) -> Option<Self> {
        key.map(|key| Self {
            record_key: record_key(scope, &key),
            payload_hash: payload_hash(payload),
            seal_key: hmac(key.as_bytes(), b"slotguard idempotent answer seal v1"),
        })
    }

    /// `text` XOR a pad from the seal key (sealing and unsealing are the same).
    fn xor_pad(&self, text: &[u8]) -> Vec<u8> {
        let pad = (0u8..).flat_map(|block| hmac(&self.seal_key, &[block]));
        text.iter().zip(pad).map(|(t, p)| t ^ p).collect()
    }

    /// `body` with [`SEALED_FIELD`] sealed under this request's key.
    fn seal(&self, body: &str) -> String {
        let Ok(serde_json::Value::Object(mut fields)) = serde_json::from_str(body) else { return body.to_owned() };
        let Some(serde_json::Value::String(secret)) = fields.remove(SEALED_FIELD) else { return body.to_owned() };
        let sealed = data_encoding::HEXLOWER.encode(&self.xor_pad(secret.as_bytes()));
        fields.insert(SEALED_AS.into(), sealed.into());
        serde_json::Value::Object(fields).to_string()
    }

    /// A saved `body` as first answered: [`SEALED_FIELD`] unsealed.
    fn unseal(&self, body: String) -> String {
        let Ok(serde_json::Value::Object(mut fields)) = serde_json::from_str(&body) else { return body };
        let Some(serde_json::Value::String(sealed)) = fields.remove(SEALED_AS) else { return body };
        let Some(secret) = data_encoding::HEXLOWER
            .decode(sealed.as_bytes())
            .ok()
            .and_then(|bytes| String::from_utf8(self.xor_pad(&bytes)).ok())
        else {
            return body;
        };
        fields.insert(SEALED_FIELD.into(), secret.into());
        serde_json::Value::Object(fields).to_string()
    }

    /// The record to write with the work whose answer is `response`.
    pub fn answer(&self, response: &Response<Body>, now: DateTime<Utc>) -> IdempotentAnswer {
        IdempotentAnswer {
            key: self.record_key.clone(),
            payload_hash: self.payload_hash.clone(),
            response: SavedResponse {
                status: response.status().as_u16(),
                body: self.seal(&String::from_utf8_lossy(response.body().as_ref())),
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
            Some(found) => self.answer_for(found).map(Some),
        }
    }

    /// What a request whose key was found used answers: the saved response
    /// replayed (secret unsealed), or `422` for another payload.
    pub fn answer_for(&self, found: KeyUse) -> Result<Response<Body>, IdempotencyError> {
        match found {
            KeyUse::Replay(saved) => Ok(replay(SavedResponse { body: self.unseal(saved.body), ..saved })),
            KeyUse::OtherPayload => Err(IdempotencyError::KeyReused),
        }
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

    #[test]
    fn a_saved_secret_is_sealed_under_the_key_and_unsealed_only_by_it() {
        let payload = serde_json::json!({"a": 1});
        let keyed = KeyedRequest::new("reserve", Some("key-1".into()), &payload).unwrap();
        let other = KeyedRequest::new("reserve", Some("key-2".into()), &payload).unwrap();
        let body =
            r#"{"reservation_id":"rsv_x","reservation_secret":"rsk_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"}"#;
        let sealed = keyed.seal(body);
        assert!(!sealed.contains("rsk_"), "stored in clear: {sealed}");
        assert!(!keyed.record_key.contains("key-1"), "the client's key is stored: {}", keyed.record_key);
        let as_json = |b: &str| serde_json::from_str::<serde_json::Value>(b).unwrap();
        assert_eq!(as_json(&keyed.unseal(sealed.clone())), as_json(body));
        assert_ne!(as_json(&other.unseal(sealed.clone()))["reservation_secret"], as_json(body)["reservation_secret"]);
        assert_eq!(keyed.seal(r#"{"no":"secret"}"#), r#"{"no":"secret"}"#, "other answers are kept as they are");
        assert!(!format!("{keyed:?}").contains("seal_key"));
    }
}
