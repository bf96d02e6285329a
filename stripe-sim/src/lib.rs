//! A local Stripe simulator: the subset of Stripe's HTTP API slotguard uses,
//! a hosted checkout page, and signed webhooks, all in memory.
//!
//! The product talks to it with the real client, only pointed elsewhere:
//!
//! ```no_run
//! # fn f() -> Result<(), Box<dyn std::error::Error>> {
//! let client = stripe::ClientBuilder::new("sk_test_anything")
//!     .url("http://127.0.0.1:12111")
//!     .build()?;
//! # Ok(()) }
//! ```
//!
//! The URL is the simulator's origin, **without** `/v1`: async-stripe
//! rc.10 builds every request URL as `{url as http::Uri}v1{path}`, and an
//! origin displays with a trailing `/`, so `http://127.0.0.1:12111` and
//! `http://127.0.0.1:12111/` both give `http://127.0.0.1:12111/v1/...`,
//! while `http://127.0.0.1:12111/v1` would give `.../v1v1/...`. Plain HTTP
//! works: the client's rustls connector is built with `https_or_http`.
//!
//! # Routes
//!
//! Stripe's (form-encoded bodies with bracket notation, JSON answers, Stripe's
//! error body, `Authorization: Bearer <any non-empty key>` (or Basic auth with
//! the key as user name, as `curl -u sk_test_...:` sends it), `Idempotency-Key`
//! on POST):
//!
//! - `POST /v1/checkout/sessions`, `GET /v1/checkout/sessions/{id}`,
//!   `POST /v1/checkout/sessions/{id}/expire`
//! - `POST /v1/refunds`, `GET /v1/refunds?payment_intent=`, `GET /v1/refunds/{id}`
//! - `GET /v1/events?limit=&starting_after=&ending_before=&type=&types[]=&created=`
//!   (newest first; each element is the JSON its webhook deliveries post),
//!   `GET /v1/events/{id}`
//!
//! The hosted page, at a session's `url`: `GET /c/pay/{id}`, with Pay and
//! Cancel buttons posting to `/c/pay/{id}/pay` and `/c/pay/{id}/cancel`.
//!
//! Control routes for tests and demos, answering JSON (see the `control`
//! module): `POST /_sim/checkout/sessions/{id}/complete?async=&deliveries=&delay_ms=`,
//! `POST /_sim/checkout/sessions/{id}/async_payment?result=succeeded|failed`,
//! `POST /_sim/checkout/sessions/{id}/expire`,
//! `POST /_sim/events/{id}/redeliver?deliveries=`, `POST /_sim/fail?status=&count=`,
//! `POST /_sim/lose_answers?count=`, `POST /_sim/webhooks?down=true|false`,
//! `POST /_sim/idempotency?ttl_secs=`, `POST /_sim/idempotency/forget`,
//! `POST /_sim/clock?advance_secs=`, `GET /_sim/clock`,
//! `GET /_sim/events`, `GET /_sim/refunds`, `GET /_sim/checkout/sessions`,
//! `GET /_sim/health`.
//!
//! # Time
//!
//! The simulator keeps its own clock: the real clock plus an offset
//! ([`SimConfig::clock_offset_secs`], moved by `POST /_sim/clock?advance_secs=N`).
//! Session `created` and the `expires_at` bounds (30 min – 24 h from
//! creation), whether a session can still be paid, the expiry sweep that emits
//! `checkout.session.expired`, the `created` of events and refunds, and the
//! age of idempotency keys (forgotten after
//! [`SimConfig::idempotency_ttl_secs`], 24 h as at Stripe) all read that
//! clock, so a test that drives its own clock forward can keep the
//! simulator in step. Webhook signatures (`t=`) stay on the real clock: the
//! receiver checks them against its own 300 s tolerance.
//!
//! # What it does not do
//!
//! Only `mode=payment` sessions with inline `price_data`; no `expand`; refunds
//! by `payment_intent` only, always `succeeded`, with no refund or charge
//! events; no automatic webhook retries (use the redeliver route); no
//! `delivery_success` filter on the event list, which lists events of any
//! age (Stripe's goes back 30 days); one
//! account, so idempotency keys are not scoped by API key; webhook URLs must be
//! plain `http://`. Parameters it does not model are rejected with Stripe's
//! `parameter_unknown` error rather than ignored.

mod api;
mod control;
mod form;
mod hosted;
mod objects;
mod state;
mod webhooks;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderValue, LOCATION};
use hyper::{Response, StatusCode};
use state::State;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::net::TcpListener;

/// Stripe refuses request bodies this large long before; so does the simulator.
const MAX_BODY_BYTES: usize = 1024 * 1024;
/// How long one webhook delivery may take before it counts as unanswered (0).
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// How often sessions past their `expires_at` are expired.
const EXPIRY_SWEEP: Duration = Duration::from_secs(1);

/// How the simulator is set up.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Where events are POSTed (`http://` only). `None`: events are recorded
    /// (see `GET /_sim/events`) but not delivered.
    pub webhook_url: Option<String>,
    /// The endpoint's signing secret (`whsec_...`) that signs every delivery.
    pub webhook_secret: String,
    /// The origin sessions' hosted-page `url`s use. `None`: `http://` plus the
    /// listener's local address.
    pub public_url: Option<String>,
    /// Where the simulator's clock starts, in seconds ahead of the real clock
    /// (negative: behind); `POST /_sim/clock?advance_secs=N` moves it later.
    pub clock_offset_secs: i64,
    /// How long, in seconds on the simulator's clock, an idempotency key is
    /// remembered after its first use ([`DEFAULT_IDEMPOTENCY_TTL_SECS`], 24 h,
    /// as Stripe); a request with an older key runs afresh. `POST
    /// /_sim/idempotency?ttl_secs=N` changes it at run time.
    pub idempotency_ttl_secs: i64,
}

/// Stripe forgets an idempotency key 24 hours after its first use.
pub const DEFAULT_IDEMPOTENCY_TTL_SECS: i64 = 24 * 60 * 60;

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            webhook_url: None,
            webhook_secret: "whsec_local_simulator".into(),
            public_url: None,
            clock_offset_secs: 0,
            idempotency_ttl_secs: DEFAULT_IDEMPOTENCY_TTL_SECS,
        }
    }
}

/// The running simulator, shared by every connection.
struct Sim {
    config: SimConfig,
    state: Mutex<State>,
    http: reqwest::Client,
}

impl Sim {
    /// The state lock. A panic while holding it leaves the state consistent
    /// enough for a simulator, so a poisoned lock is used anyway.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Serves the simulator on `listener` until `shutdown` completes, then lets
/// requests in flight finish (see [`slotguard_serve::serve`]).
///
/// # Panics
/// If the listener has no local address or the HTTP client cannot be built
/// (neither happens with a bound `TcpListener`).
pub async fn serve(listener: TcpListener, config: SimConfig, shutdown: impl Future<Output = ()>) {
    let base_url = match &config.public_url {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => format!("http://{}", listener.local_addr().expect("a bound listener has an address")),
    };
    let http = reqwest::Client::builder().timeout(DELIVERY_TIMEOUT).build().expect("a plain HTTP client builds");
    let mut state = State::new(base_url);
    state.clock_offset = config.clock_offset_secs;
    state.idempotency_ttl_secs = config.idempotency_ttl_secs;
    let sim = Arc::new(Sim { config, state: Mutex::new(state), http });

    let sweeper = tokio::spawn(sweep_expired(sim.clone()));
    let handler = move |req| {
        let sim = sim.clone();
        async move { handle(&sim, req).await }
    };
    slotguard_serve::serve(listener, handler, shutdown).await;
    sweeper.abort();
}

/// Expires sessions whose time is up and delivers their events, as Stripe
/// does without being asked.
async fn sweep_expired(sim: Arc<Sim>) {
    let mut tick = tokio::time::interval(EXPIRY_SWEEP);
    loop {
        tick.tick().await;
        let events = {
            let mut st = sim.lock();
            let now = st.now();
            st.expire_due(now)
        };
        webhooks::spawn_deliveries(&sim, events, 1, 0);
    }
}

/// The handler's error: the answer to a `/v1` POST is dropped on purpose
/// (`POST /_sim/lose_answers`). [`slotguard_serve::serve`] closes the
/// connection without a response when the handler fails, which is what a
/// client sees when Stripe acted but its answer never arrived.
#[derive(Debug)]
struct AnswerLost;

impl std::fmt::Display for AnswerLost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("answer dropped on purpose (/_sim/lose_answers)")
    }
}

impl std::error::Error for AnswerLost {}

async fn handle(sim: &Arc<Sim>, req: hyper::Request<Incoming>) -> Result<Response<Full<Bytes>>, AnswerLost> {
    let started = std::time::Instant::now();
    let (parts, body) = req.into_parts();
    let (method, path) = (parts.method.as_str().to_owned(), parts.uri.path().to_owned());
    let query = parts.uri.query();
    let response = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Err(_) => json_response(
            413,
            &objects::error("invalid_request_error", "Request body too large.", None, None).to_string(),
        ),
        Ok(collected) => {
            let body = collected.to_bytes();
            if path.starts_with("/v1/") {
                let outcome = api::handle(&sim.state, &method, &path, query, &parts.headers, &body);
                // Stripe acted, so its events go out even when the answer does not.
                webhooks::spawn_deliveries(sim, outcome.deliver, 1, 0);
                if outcome.lost {
                    tracing::info!(%method, %path, status = outcome.response.status, "answer lost on purpose: closing the connection");
                    return Err(AnswerLost);
                }
                api_response(outcome.response)
            } else if path.starts_with("/_sim/") {
                let (status, value) = control::handle(sim, &method, &path, query).await;
                json_response(status, &value.to_string())
            } else if path.starts_with("/c/pay/") {
                let page = hosted::handle(sim, &method, &path).await;
                let mut response = response(page.status, "text/html; charset=utf-8", page.html);
                if let Some(location) = page.location.and_then(|l| HeaderValue::try_from(l).ok()) {
                    response.headers_mut().insert(LOCATION, location);
                }
                response
            } else {
                // Most likely a client whose url ends in `/v1` (it then asks
                // for `/v1v1/...`): answer in Stripe's shape so the client
                // surfaces the hint.
                let message = format!(
                    "Unrecognized request URL ({method}: {path}). Point the client at the \
                     simulator's origin, without /v1 (e.g. {}).",
                    sim.lock().base_url
                );
                json_response(404, &objects::error("invalid_request_error", &message, None, None).to_string())
            }
        }
    };
    tracing::info!(%method, %path, status = response.status().as_u16(), elapsed_ms = started.elapsed().as_millis() as u64, "request");
    Ok(response)
}

fn response(status: u16, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn json_response(status: u16, body: &str) -> Response<Full<Bytes>> {
    response(status, "application/json", body.to_owned())
}

fn api_response(r: api::ApiResponse) -> Response<Full<Bytes>> {
    let mut response = json_response(r.status, &r.body);
    let headers = response.headers_mut();
    let mut set = |name: &'static str, value: &str| {
        if let Ok(value) = HeaderValue::try_from(value) {
            headers.insert(name, value);
        }
    };
    set("request-id", &r.request_id);
    set("stripe-version", objects::api_version());
    if let Some(key) = &r.idempotency_key {
        set("idempotency-key", key);
    }
    if r.replayed {
        set("idempotent-replayed", "true");
    }
    response
}
