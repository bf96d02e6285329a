//! HTTP handlers, one module per route, and the one place outcomes become
//! status codes ([`Problem`]).
//!
//! Every handler is a plain `async fn(&deps, Request) -> Response<Body>`: the
//! Lambda binaries hand it to `lambda_http::run`, the local gateway calls it
//! from a hyper server, and tests can call it directly. A handler never returns
//! an error: every failure is a `application/problem+json` response.

pub mod auth;
pub mod availability;
pub mod cancel;
pub mod checkout;
pub mod idempotency;
pub mod put_resource;
pub mod reservation_status;
pub mod reserve;
pub mod stripe_webhook;

use crate::domain::ReservationId;
use crate::ports::StoreError;
use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Serialize;

/// The largest JSON body any route accepts.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// An RFC 9457 problem: the body of every 4xx and 5xx response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// A stable, machine-readable token such as `slot_taken`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// A short human summary of the kind.
    pub title: &'static str,
    pub status: u16,
    /// What was wrong with this request in particular.
    pub detail: String,
    /// Seconds a client should wait before retrying (sent as `Retry-After`).
    #[serde(skip)]
    pub retry_after: Option<u32>,
}

impl Problem {
    pub fn new(status: StatusCode, kind: &'static str, title: &'static str, detail: impl Into<String>) -> Self {
        Self { kind, title, status: status.as_u16(), detail: detail.into(), retry_after: None }
    }

    /// 400: the request could not be understood.
    pub fn bad_request(kind: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, kind, "Bad request", detail)
    }

    /// 422: the request was understood but its content is not acceptable.
    pub fn unprocessable(kind: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, kind, "Unprocessable request", detail)
    }

    /// 409 `request_in_progress`: a concurrent request is changing the same
    /// thing; retrying shortly gets its result.
    pub fn in_progress(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "request_in_progress", "Request in progress", detail)
    }

    pub fn not_found(kind: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, kind, "Not found", detail)
    }

    pub fn into_response(self) -> Response<Body> {
        let body = serde_json::to_string(&self).expect("a problem always serialises");
        let mut response = Response::builder()
            .status(self.status)
            .header(header::CONTENT_TYPE, "application/problem+json")
            .body(Body::Text(body))
            .expect("static parts form a valid response");
        if let Some(secs) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl From<StoreError> for Problem {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable { .. } => {
                tracing::warn!(error = %err, "storage unavailable");
                Problem {
                    retry_after: Some(1),
                    ..Problem::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "service_unavailable",
                        "Service unavailable",
                        "storage is busy or unreachable; retry shortly",
                    )
                }
            }
            StoreError::Corrupt { .. } | StoreError::Failed { .. } => {
                tracing::error!(error = %err, "storage failure");
                Problem::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    "Internal error",
                    "an unexpected error occurred",
                )
            }
        }
    }
}

/// A JSON response with a status.
pub fn json_response(status: StatusCode, body: &impl Serialize) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::Text(serde_json::to_string(body).expect("response bodies always serialise")))
        .expect("static parts form a valid response")
}

/// Parses a JSON request body into `T`, with a problem for each way it can be wrong.
pub fn json_body<T: serde::de::DeserializeOwned>(req: &Request) -> Result<T, Problem> {
    if let Some(content_type) = req.headers().get(header::CONTENT_TYPE) {
        let essence = content_type.to_str().unwrap_or("").split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        if essence != "application/json" && !essence.ends_with("+json") {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Unsupported media type",
                "send the body as application/json",
            ));
        }
    }
    let bytes: &[u8] = req.body().as_ref();
    if bytes.len() > MAX_BODY_BYTES {
        return Err(Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "Payload too large",
            format!("the body is {} bytes; at most {MAX_BODY_BYTES} are accepted", bytes.len()),
        ));
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Problem::bad_request("invalid_json", "a JSON body is required"));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        let kind = if e.is_data() { "invalid_field" } else { "invalid_json" };
        Problem::bad_request(kind, format!("the body is not valid: {e}"))
    })
}

/// A path parameter, or a 404 if the route was reached without it.
pub fn path_param(req: &Request, name: &str) -> Result<String, Problem> {
    req.path_parameters()
        .first(name)
        .map(str::to_owned)
        .ok_or_else(|| Problem::not_found("not_found", format!("missing path parameter {name}")))
}

/// The `{id}` path parameter as a reservation id, or a 404 problem of `kind`
/// (e.g. `reservation_not_found`) naming it as a `what`.
pub fn reservation_id_param(req: &Request, kind: &'static str, what: &str) -> Result<ReservationId, Problem> {
    let raw = path_param(req, "id")?;
    ReservationId::parse(&raw).ok_or_else(|| Problem::not_found(kind, format!("there is no {what} {raw:?}")))
}

/// Runs a handler body and turns its problem into a response.
pub fn respond(result: Result<Response<Body>, Problem>) -> Response<Body> {
    result.unwrap_or_else(Problem::into_response)
}

#[cfg(test)]
mod props;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_are_problem_json_with_retry_after_when_set() {
        let p: Problem = StoreError::Unavailable { op: "x", message: "down".into() }.into();
        let response = p.into_response();
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/problem+json");
        let body: serde_json::Value = serde_json::from_slice(response.body().as_ref()).unwrap();
        assert_eq!(body["type"], "service_unavailable");
        assert_eq!(body["status"], 503);
        assert!(body["title"].is_string() && body["detail"].is_string());
    }

    #[test]
    fn internal_failures_do_not_leak_their_cause() {
        let p: Problem = StoreError::Failed { op: "x", message: "secret table name".into() }.into();
        assert_eq!(p.status, 500);
        assert!(!p.detail.contains("secret"));
    }
}
