//! A local API Gateway: serves every HTTP route of the template by calling the
//! same handler functions the Lambda binaries hand to `lambda_http::run`.
//!
//! A request becomes a `lambda_http::Request` with its path and query
//! parameters set as API Gateway sets them, so handlers cannot tell the
//! difference. [`serve`] takes its listener and a shutdown signal, so tests run
//! it on `127.0.0.1:0` and talk to it over a real socket.
//!
//! Limits ([`Limits`]): the connection limits of `slotguard-serve` (header
//! read timeout, idle keep-alive, connection count), and for bodies: a route
//! reads at most [`Route::max_body_bytes`] (16 KiB, the handlers' own
//! limit; the Stripe webhook API Gateway's 10 MB), refused with `413
//! payload_too_large` as soon as the `Content-Length` or the bytes received
//! pass it, and the whole body must arrive within
//! [`Limits::body_read_timeout`] or the answer is `408 request_timeout`. Both
//! answers close the connection. After a `413` the rest of the body is read
//! and dropped for a moment (a lingering close), so the client, still
//! sending, reads the answer instead of a reset connection.
//!
//! On AWS, API Gateway enforces its own: 10 MB per request (and Lambda 6 MB
//! per invocation), its own timeouts for slow clients; routes without a body
//! accept (and ignore) one up to those sizes, where this gateway answers 413.
//! The JSON routes' 16 KiB and JSON checks are the handlers' and apply on
//! both.

use http_body_util::{BodyExt, Full};
use hyper::body::{Body as _, Bytes, Incoming};
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, RequestExt};
use slotguard::adapters::calendars::CalendarTargetRules;
use slotguard::adapters::dynamo::DynamoStore;
use slotguard::adapters::sqs::SqsCalendarQueue;
use slotguard::adapters::stripe::{StripePayments, WebhookVerifier};
use slotguard::api::auth::AdminAuth;
use slotguard::api::cancel::CancelDeps;
use slotguard::api::checkout::CheckoutUrls;
use slotguard::api::reschedule::RescheduleDeps;
use slotguard::api::stripe_webhook::WebhookDeps;
use slotguard::api::{
    Problem, ProblemKind, admin_bookings, availability, cancel, checkout, put_resource, reschedule, reservation_status,
    reserve, resource_view, stripe_webhook,
};
use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::time::Instant;

/// API Gateway HTTP APIs refuse payloads over 10 MB.
pub const MAX_PAYLOAD_BYTES: usize = 10 * 1024 * 1024;

/// How much of a refused body is read and dropped after the `413`, at most,
/// so the client sees the answer (a socket closed with unread data resets
/// the connection, and the client may lose the answer with it).
const LINGER_BYTES: usize = 1024 * 1024;

/// How long the local gateway waits for clients: see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Header read timeout, idle keep-alive and connection count.
    pub connection: slotguard_serve::Limits,
    /// How long a request's whole body may take to arrive, from when its
    /// headers were read; also how long a refused body is drained.
    pub body_read_timeout: Duration,
}

impl Default for Limits {
    /// `slotguard-serve`'s defaults and 30 s for a body (as long as API
    /// Gateway gives a function to answer).
    fn default() -> Self {
        Self { connection: slotguard_serve::Limits::default(), body_read_timeout: Duration::from_secs(30) }
    }
}

/// An HTTP route of the product, as `template.yaml` declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Availability,
    PutResource,
    Reserve,
    ReservationStatus,
    Checkout,
    StripeWebhook,
    Cancel,
    Reschedule,
    ResourceView,
    AdminBookings,
}

impl Route {
    /// The largest body this gateway reads for the route: the handlers'
    /// JSON limit, except for Stripe's webhook, whose events slotguard does
    /// not size (a genuine event refused would be retried for days and then
    /// lost), which gets API Gateway's limit.
    pub fn max_body_bytes(self) -> usize {
        match self {
            Route::StripeWebhook => MAX_PAYLOAD_BYTES,
            _ => slotguard::api::MAX_BODY_BYTES,
        }
    }
}

/// Every route the gateway serves: method, path template (API Gateway syntax)
/// and route. The template check test compares this table with `template.yaml`.
pub const ROUTES: &[(&str, &str, Route)] = &[
    ("GET", "/v1/resources/{id}/slots", Route::Availability),
    ("PUT", "/v1/resources/{id}", Route::PutResource),
    ("POST", "/v1/reservations", Route::Reserve),
    ("GET", "/v1/reservations/{id}", Route::ReservationStatus),
    ("POST", "/v1/reservations/{id}/checkout", Route::Checkout),
    ("POST", "/webhooks/stripe", Route::StripeWebhook),
    ("POST", "/v1/bookings/{id}/cancel", Route::Cancel),
    ("POST", "/v1/bookings/{id}/reschedule", Route::Reschedule),
    ("GET", "/v1/resources/{id}", Route::ResourceView),
    ("POST", "/v1/admin/bookings/{id}/cancel", Route::Cancel),
    ("POST", "/v1/admin/bookings/{id}/reschedule", Route::Reschedule),
    ("GET", "/v1/admin/resources/{id}/bookings", Route::AdminBookings),
];

/// Where the gateway serves the OpenAPI document of its routes
/// ([`slotguard::api::openapi`]; committed as `docs/openapi.json`).
pub const OPENAPI_PATH: &str = "/openapi.json";

/// `200` with the OpenAPI document, generated once per process.
fn openapi_document() -> lambda_http::Response<Body> {
    static DOCUMENT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let text = DOCUMENT.get_or_init(slotguard::api::openapi::json);
    lambda_http::Response::builder()
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(hyper::header::CACHE_CONTROL, "no-cache")
        .body(Body::Text(text.clone()))
        .expect("static parts form a valid response")
}

/// What the routes need: built once, shared by every request.
#[derive(Debug, Clone)]
pub struct Gateway {
    pub store: DynamoStore,
    pub admin: AdminAuth,
    /// What a resource's calendar must satisfy to be saved.
    pub calendar_rules: CalendarTargetRules,
    pub payments: Arc<StripePayments>,
    pub checkout_urls: CheckoutUrls,
    pub calendar: SqsCalendarQueue,
    pub verifier: WebhookVerifier,
}

/// Matches a path against a template like `/v1/reservations/{id}`
/// ([`slotguard::api::path_params`]), with its parameters percent-decoded;
/// `None` also when a decoded parameter is not UTF-8.
fn match_path(template: &str, path: &str) -> Option<HashMap<String, String>> {
    slotguard::api::path_params(template, path)?
        .into_iter()
        .map(|(name, raw)| {
            Some((name.to_owned(), percent_encoding::percent_decode_str(raw).decode_utf8().ok()?.into_owned()))
        })
        .collect()
}

/// Finds the route for a request: the route and its path parameters, or the
/// status to answer (404 unknown path, 405 known path with another method).
pub fn route(method: &Method, path: &str) -> Result<(Route, HashMap<String, String>), StatusCode> {
    let mut path_known = false;
    for (m, template, route) in ROUTES {
        if let Some(params) = match_path(template, path) {
            if method.as_str() == *m {
                return Ok((*route, params));
            }
            path_known = true;
        }
    }
    Err(if path_known { StatusCode::METHOD_NOT_ALLOWED } else { StatusCode::NOT_FOUND })
}

/// The methods `path` has routes for (the `Allow` header of a `405`).
pub fn allowed_methods(path: &str) -> Vec<&'static str> {
    ROUTES.iter().filter(|(_, template, _)| match_path(template, path).is_some()).map(|(m, _, _)| *m).collect()
}

/// Why a body was not read to its end.
enum BodyError {
    TooLarge,
    TimedOut,
    /// The client went away or broke the framing: nobody is left to answer.
    Broken,
}

/// Reads a body of at most `limit` bytes until `deadline`. On
/// [`BodyError::TooLarge`] the body is handed back, to be drained.
async fn read_body(
    mut body: Incoming,
    limit: usize,
    deadline: Instant,
) -> Result<Bytes, (BodyError, Option<Incoming>)> {
    // A Content-Length over the limit is refused before a byte is read.
    if body.size_hint().lower() > limit as u64 {
        return Err((BodyError::TooLarge, Some(body)));
    }
    let mut read = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => return Err((BodyError::TimedOut, None)),
            Ok(None) => return Ok(Bytes::from(read)),
            Ok(Some(Err(_))) => return Err((BodyError::Broken, None)),
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    if read.len() + data.len() > limit {
                        return Err((BodyError::TooLarge, Some(body)));
                    }
                    read.extend_from_slice(&data);
                }
            }
        }
    }
}

/// Reads and drops what is left of a refused body, up to [`LINGER_BYTES`] or
/// `deadline`, in the background, while the answer is sent.
fn drain(mut body: Incoming, deadline: Instant) {
    tokio::spawn(async move {
        let mut left = LINGER_BYTES;
        while let Ok(Some(Ok(frame))) = tokio::time::timeout_at(deadline, body.frame()).await {
            let n = frame.data_ref().map_or(0, Bytes::len);
            if n >= left {
                break;
            }
            left -= n;
        }
    });
}

/// A problem answer after which the connection is closed.
fn closing(problem: Problem) -> lambda_http::Response<Body> {
    let mut response = problem.into_response();
    response.headers_mut().insert(hyper::header::CONNECTION, hyper::header::HeaderValue::from_static("close"));
    response
}

impl Gateway {
    /// Turns one HTTP request into a Lambda request, runs its handler, and
    /// turns the answer back, with the default [`Limits`].
    pub async fn handle(&self, req: hyper::Request<Incoming>) -> hyper::Response<Full<Bytes>> {
        self.handle_within(req, Limits::default().body_read_timeout).await
    }

    /// [`Gateway::handle`] with another body read timeout.
    pub async fn handle_within(
        &self,
        req: hyper::Request<Incoming>,
        body_read_timeout: Duration,
    ) -> hyper::Response<Full<Bytes>> {
        let started = std::time::Instant::now();
        let (method, path) = (req.method().clone(), slotguard::telemetry::scrub(req.uri().path()));
        let response = self.dispatch(req, Instant::now() + body_read_timeout).await;
        tracing::info!(%method, %path, status = response.status().as_u16(), elapsed_ms = started.elapsed().as_millis() as u64, "request");
        let (parts, body) = response.into_parts();
        hyper::Response::from_parts(parts, Full::new(Bytes::copy_from_slice(body.as_ref())))
    }

    async fn dispatch(&self, req: hyper::Request<Incoming>, deadline: Instant) -> lambda_http::Response<Body> {
        if req.method() == Method::GET && req.uri().path() == OPENAPI_PATH {
            return openapi_document();
        }
        // The booking page (web/): served here, not an API route of the template.
        if let Some(page) = crate::book_page::answer(req.method(), req.uri().path()) {
            return page;
        }
        let (route, params) = match route(req.method(), req.uri().path()) {
            Ok(found) => found,
            Err(status) => {
                let kind =
                    if status == StatusCode::NOT_FOUND { ProblemKind::NotFound } else { ProblemKind::MethodNotAllowed };
                let problem = Problem::new(kind, format!("no route for {} {}", req.method(), req.uri().path()));
                // RFC 9110 15.5.6: a 405 lists the methods the resource has.
                let allow =
                    (status == StatusCode::METHOD_NOT_ALLOWED).then(|| allowed_methods(req.uri().path()).join(", "));
                let body = req.into_body();
                let mut response = if body.is_end_stream() {
                    problem.into_response()
                } else {
                    drain(body, deadline);
                    closing(problem)
                };
                if let Some(allow) = allow {
                    let allow = hyper::header::HeaderValue::from_str(&allow).expect("method names are header-safe");
                    response.headers_mut().insert(hyper::header::ALLOW, allow);
                }
                return response;
            }
        };
        let (parts, body) = req.into_parts();
        let limit = route.max_body_bytes();
        let bytes = match read_body(body, limit, deadline).await {
            Ok(bytes) => bytes,
            Err((BodyError::TooLarge, rest)) => {
                // A client that waits for `100 Continue` has sent nothing
                // yet: dropping the body tells it not to.
                let waits = parts.headers.get(hyper::header::EXPECT).is_some();
                if let Some(rest) = rest.filter(|_| !waits) {
                    drain(rest, deadline);
                }
                let detail = format!("the body is larger than the {limit} bytes this route accepts");
                return closing(Problem::new(ProblemKind::PayloadTooLarge, detail));
            }
            Err((BodyError::TimedOut, _)) => {
                let detail = "the request body did not arrive in time";
                return closing(Problem::new(ProblemKind::RequestTimeout, detail));
            }
            Err((BodyError::Broken, _)) => {
                return closing(Problem::new(ProblemKind::InvalidJson, "the request body could not be read"));
            }
        };
        let body = match String::from_utf8(bytes.to_vec()) {
            Ok(text) if text.is_empty() => Body::Empty,
            Ok(text) => Body::Text(text),
            Err(e) => Body::Binary(e.into_bytes()),
        };
        let mut query: HashMap<String, Vec<String>> = HashMap::new();
        for (k, v) in form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes()) {
            query.entry(k.into_owned()).or_default().push(v.into_owned());
        }
        let request = lambda_http::Request::from_parts(parts, body)
            .with_path_parameters(params)
            .with_query_string_parameters(query);
        match route {
            Route::Availability => availability::availability(&self.store, request).await,
            Route::PutResource => {
                put_resource::put_resource(&self.store, &self.admin, &self.calendar_rules, request).await
            }
            Route::Reserve => reserve::reserve(&self.store, request).await,
            Route::ReservationStatus => reservation_status::reservation_status(&self.store, request).await,
            Route::Checkout => {
                checkout::checkout(&self.store, self.payments.as_ref(), &self.checkout_urls, request).await
            }
            Route::StripeWebhook => {
                let deps = WebhookDeps {
                    store: &self.store,
                    payments: self.payments.as_ref(),
                    calendar: &self.calendar,
                    verifier: &self.verifier,
                };
                stripe_webhook::stripe_webhook(deps, request).await
            }
            Route::Cancel => {
                let deps = CancelDeps {
                    store: &self.store,
                    payments: self.payments.as_ref(),
                    calendar: &self.calendar,
                    admin: &self.admin,
                };
                cancel::cancel(deps, request).await
            }
            Route::Reschedule => {
                let deps = RescheduleDeps { store: &self.store, calendar: &self.calendar, admin: &self.admin };
                reschedule::reschedule(deps, request).await
            }
            Route::ResourceView => resource_view::resource_view(&self.store, request).await,
            Route::AdminBookings => admin_bookings::admin_bookings(&self.store, &self.admin, request).await,
        }
    }
}

/// Serves the gateway on `listener` until `shutdown` completes, then lets
/// requests in flight finish (see [`slotguard_serve::serve`]), with the
/// default [`Limits`].
pub async fn serve(listener: TcpListener, gateway: Gateway, shutdown: impl Future<Output = ()>) {
    serve_with(listener, gateway, shutdown, Limits::default()).await;
}

/// [`serve`] with other [`Limits`] (tests of slow clients use short ones).
pub async fn serve_with(listener: TcpListener, gateway: Gateway, shutdown: impl Future<Output = ()>, limits: Limits) {
    let gateway = Arc::new(gateway);
    let handler = move |req| {
        let gateway = gateway.clone();
        async move { Ok::<_, Infallible>(gateway.handle_within(req, limits.body_read_timeout).await) }
    };
    slotguard_serve::serve_with(listener, handler, shutdown, limits.connection).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_templates_and_extract_parameters() {
        let (r, p) = route(&Method::GET, "/v1/resources/demo/slots").unwrap();
        assert_eq!(r, Route::Availability);
        assert_eq!(p["id"], "demo");
        let (r, p) = route(&Method::GET, "/v1/reservations/rsv_a%2Fb").unwrap();
        assert_eq!(r, Route::ReservationStatus);
        assert_eq!(p["id"], "rsv_a/b");
        assert_eq!(route(&Method::POST, "/v1/reservations").unwrap().0, Route::Reserve);
        assert_eq!(route(&Method::DELETE, "/v1/reservations").unwrap_err(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(allowed_methods("/v1/reservations"), ["POST"]);
        assert_eq!(allowed_methods("/v1/resources/demo"), ["PUT", "GET"]);
        assert_eq!(route(&Method::GET, "/v1/nothing").unwrap_err(), StatusCode::NOT_FOUND);
        assert_eq!(route(&Method::GET, "/v1/resources//slots").unwrap_err(), StatusCode::NOT_FOUND);
    }

    /// Every sample API Gateway event in `events/` parses as Lambda would
    /// parse it and names a route the gateway serves, with the same parameters.
    #[test]
    fn sample_events_match_the_routes() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../events");
        let mut seen = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if !name.starts_with("apigw-") {
                continue;
            }
            let req = lambda_http::request::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            let (found, params) = route(req.method(), req.uri().path()).unwrap_or_else(|s| panic!("{name}: {s}"));
            for (k, v) in &params {
                assert_eq!(req.path_parameters().first(k), Some(v.as_str()), "{name}: {k}");
            }
            if matches!(found, Route::PutResource | Route::AdminBookings) {
                assert!(AdminAuth::Iam.allows(&req), "{name}: carries an IAM identity");
            }
            seen.push(found);
        }
        for (_, _, r) in ROUTES {
            assert!(seen.contains(r), "no sample event for {r:?}");
        }
    }
}
