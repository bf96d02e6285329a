//! HTTP routes, one module per route. Each route has one error enum
//! (`ReserveError`, `CheckoutError`, ...) whose variants keep their causes;
//! [`problem`] is the one place any of them becomes a status code and a
//! problem body ([`ProblemKind`] lists every documented `type`).
//!
//! Every handler is a plain `async fn(&deps, Request) -> Response<Body>`: the
//! Lambda binaries hand it to `lambda_http::run`, the local gateway calls it
//! from a hyper server, and tests can call it directly. A handler never returns
//! an error: every failure is a `application/problem+json` response.

pub mod admin_bookings;
pub mod auth;
pub mod availability;
pub mod cancel;
pub mod checkout;
pub mod idempotency;
pub mod openapi;
pub mod put_resource;
pub mod refunds;
pub mod reschedule;
pub mod reservation_status;
pub mod reserve;
pub mod resource_view;
pub mod stripe_webhook;

pub mod problem;

pub use problem::{ApiError, Problem, ProblemKind, respond};

use crate::domain::ReservationId;
use lambda_http::http::{StatusCode, header};
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Serialize;

/// The largest JSON body any route accepts.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// What can be wrong with a request before any route reads its content.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("send the body as application/json")]
    UnsupportedMediaType,
    #[error("the body is {0} bytes; at most {MAX_BODY_BYTES} are accepted")]
    PayloadTooLarge(usize),
    #[error("a JSON body is required")]
    EmptyBody,
    #[error("the body is not valid: {0}")]
    InvalidJson(#[source] serde_json::Error),
    /// JSON of the wrong shape: a wrong type, a missing or unknown field.
    #[error("the body is not valid: {0}")]
    MalformedField(#[source] serde_json::Error),
    #[error("missing path parameter {0}")]
    MissingPathParam(&'static str),
    #[error("Idempotency-Key must be 1-255 visible ASCII characters")]
    InvalidIdempotencyKey,
}

problem::api_error!(RequestError {
    wraps: [],
    Self::UnsupportedMediaType => UnsupportedMediaType,
    Self::PayloadTooLarge(_) => PayloadTooLarge,
    Self::EmptyBody | Self::InvalidJson(_) => InvalidJson,
    Self::MalformedField(_) => MalformedField,
    Self::MissingPathParam(_) => NotFound,
    Self::InvalidIdempotencyKey => InvalidIdempotencyKey,
});

/// A JSON response with a status.
pub fn json_response(status: StatusCode, body: &impl Serialize) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::Text(serde_json::to_string(body).expect("response bodies always serialise")))
        .expect("static parts form a valid response")
}

/// Parses a JSON request body into `T`, with an error for each way it can be wrong.
pub fn json_body<T: serde::de::DeserializeOwned>(req: &Request) -> Result<T, RequestError> {
    if let Some(content_type) = req.headers().get(header::CONTENT_TYPE) {
        let essence = content_type.to_str().unwrap_or("").split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        if essence != "application/json" && !essence.ends_with("+json") {
            return Err(RequestError::UnsupportedMediaType);
        }
    }
    let bytes: &[u8] = req.body().as_ref();
    if bytes.len() > MAX_BODY_BYTES {
        return Err(RequestError::PayloadTooLarge(bytes.len()));
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(RequestError::EmptyBody);
    }
    serde_json::from_slice::<NoDuplicateKeys>(bytes).map_err(shape_error)?;
    serde_json::from_slice(bytes).map_err(shape_error)
}

/// Reads any JSON and fails on an object that has a key twice, at any depth
/// (serde_json's `Value` keeps the last, a struct refuses only its own
/// fields): which of two values counts is parser folklore, and a body that
/// means different things to different readers is refused instead. Nesting
/// is bounded by serde_json's recursion limit (128), as for every parse.
struct NoDuplicateKeys;

impl<'de> serde::Deserialize<'de> for NoDuplicateKeys {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NoDuplicateKeys)
    }
}

impl<'de> serde::de::Visitor<'de> for NoDuplicateKeys {
    type Value = NoDuplicateKeys;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self, E> {
        Ok(self)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self, E> {
        Ok(self)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self, E> {
        Ok(self)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self, E> {
        Ok(self)
    }

    fn visit_str<E>(self, _: &str) -> Result<Self, E> {
        Ok(self)
    }

    fn visit_unit<E>(self) -> Result<Self, E> {
        Ok(self)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self, A::Error> {
        while seq.next_element::<NoDuplicateKeys>()?.is_some() {}
        Ok(self)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self, A::Error> {
        let mut seen = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            map.next_value::<NoDuplicateKeys>()?;
            if let Some(key) = seen.replace(key) {
                return Err(serde::de::Error::custom(format_args!("duplicate field `{key}`")));
            }
        }
        Ok(self)
    }
}

/// A JSON value read into `T`: an error means the body has the wrong shape.
pub fn from_json<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Result<T, RequestError> {
    serde_json::from_value(value).map_err(RequestError::MalformedField)
}

fn shape_error(e: serde_json::Error) -> RequestError {
    if e.is_data() { RequestError::MalformedField(e) } else { RequestError::InvalidJson(e) }
}

/// A path parameter (the router guarantees it; its absence is a 404).
pub fn path_param(req: &Request, name: &'static str) -> Result<String, RequestError> {
    req.path_parameters().first(name).map(str::to_owned).ok_or(RequestError::MissingPathParam(name))
}

/// The `{id}` path parameter as a reservation id; `not_found(raw)` when it
/// cannot name one.
pub fn reservation_id_param<E: From<RequestError>>(
    req: &Request,
    not_found: impl FnOnce(String) -> E,
) -> Result<ReservationId, E> {
    let raw = path_param(req, "id")?;
    ReservationId::parse(&raw).ok_or_else(|| not_found(raw))
}

/// The path parameters of `path` as an instance of a route template like
/// `/v1/reservations/{id}`: each `{name}` segment with its raw (still
/// percent-encoded) value, or `None` when `path` is not one. A trailing `/`
/// is ignored; a parameter is never empty. The local gateway routes with it
/// (and decodes the values); [`openapi::documents`] finds an operation with it.
pub fn path_params<'a>(template: &'a str, path: &'a str) -> Option<Vec<(&'a str, &'a str)>> {
    let mut params = Vec::new();
    let mut t = template.trim_matches('/').split('/');
    let mut p = path.trim_end_matches('/').trim_start_matches('/').split('/');
    loop {
        match (t.next(), p.next()) {
            (None, None) => return Some(params),
            (Some(seg), Some(value)) if seg.starts_with('{') && seg.ends_with('}') && !value.is_empty() => {
                params.push((&seg[1..seg.len() - 1], value));
            }
            (Some(seg), Some(value)) if seg == value => {}
            _ => return None,
        }
    }
}

#[cfg(test)]
mod handler_tests;
#[cfg(test)]
mod props;

#[cfg(test)]
mod body_tests {
    use super::*;

    #[test]
    fn path_params_match_whole_segments_and_keep_values_raw() {
        let t = "/v1/reservations/{id}/checkout";
        assert_eq!(path_params(t, "/v1/reservations/rsv_a%2Fb/checkout"), Some(vec![("id", "rsv_a%2Fb")]));
        assert_eq!(path_params(t, "/v1/reservations/rsv_a/checkout/"), Some(vec![("id", "rsv_a")]));
        assert_eq!(path_params(t, "/v1/reservations//checkout"), None, "a parameter is never empty");
        assert_eq!(path_params(t, "/v1/reservations/rsv_a"), None);
        assert_eq!(path_params(t, "/v1/reservations/rsv_a/checkout/x"), None);
        assert_eq!(path_params("/v1/reservations", "/v1/reservations"), Some(vec![]));
        assert_eq!(path_params("/v1/reservations", "/v1/reservation"), None);
    }

    fn parse(body: &str) -> Result<serde_json::Value, RequestError> {
        let req = lambda_http::http::Request::builder().body(Body::Text(body.to_owned())).unwrap();
        json_body(&req)
    }

    #[test]
    fn a_key_given_twice_is_refused_at_any_depth() {
        for body in [
            r#"{"a": 1, "a": 2}"#,
            r#"{"x": {"name": "A", "name": "B"}}"#,
            r#"[{"k": [], "k": null}]"#,
            r#"{"a": 1, "\u0061": 2}"#,
        ] {
            let err = parse(body).unwrap_err();
            assert!(matches!(err, RequestError::MalformedField(_)), "{body}: {err:?}");
            assert!(err.to_string().contains("duplicate field"), "{err}");
        }
        assert!(parse(r#"{"a": {"a": 1}, "b": [{"a": 2}, {"a": 3}]}"#).is_ok(), "same key in different objects");
    }

    #[test]
    fn deep_nesting_is_a_parse_error_not_a_stack_overflow() {
        for open in ["[", "{\"a\":"] {
            let body = open.repeat(MAX_BODY_BYTES / open.len());
            assert!(matches!(parse(&body), Err(RequestError::InvalidJson(_))), "{open}");
        }
        let deep_but_fine = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert!(parse(&deep_but_fine).is_ok());
    }

    #[test]
    fn numbers_beyond_any_type_are_refused_or_rounded_never_a_panic() {
        assert!(matches!(parse("1e400"), Err(RequestError::InvalidJson(_))));
        assert!(parse(&"9".repeat(30)).unwrap().is_f64(), "a long integer reads as a float");
        let req = lambda_http::http::Request::builder().body(Body::Text("99999999999999999999".into())).unwrap();
        assert!(matches!(json_body::<u32>(&req), Err(RequestError::MalformedField(_))));
    }

    #[test]
    fn bodies_that_are_not_utf8_are_invalid_json() {
        let req =
            lambda_http::http::Request::builder().body(Body::Binary(b"{\"name\": \"\xff\xfe\"}".to_vec())).unwrap();
        assert!(matches!(json_body::<serde_json::Value>(&req), Err(RequestError::InvalidJson(_))));
    }
}
