//! A programmable HTTP proxy in front of a real server: it answers with
//! injected faults (a status, a delay, a dropped connection) before letting
//! requests through, and counts what it saw.
//!
//! ```ignore
//! let proxy = FaultProxy::start("http://127.0.0.1:15232").await;
//! proxy.fail_next(503, 2);                 // the next two requests get 503
//! let url = proxy.url_for(&collection);    // same path, through the proxy
//! // ... run the code under test against `url` ...
//! assert_eq!(proxy.requests_seen(), 3);
//! proxy.always(Fault::Status(401));        // until pass_through()
//! proxy.require_authorization("Basic ..."); // 401 for any other credentials
//! ```

use super::{Reply, Request, ServerGuard, response};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// What the proxy does to a request instead of (or before) forwarding it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status (429 and 503 come with `Retry-After: 1`).
    Status(u16),
    /// Wait, then forward: a slow server, or a hanging one if the delay
    /// outlasts the client's timeout.
    Delay(Duration),
    /// Close the connection without answering.
    Drop,
}

/// A request as the proxy saw it.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    pub method: String,
    /// Path and query.
    pub path: String,
    pub authorization: Option<String>,
    /// `None` if forwarded, else the fault it got.
    pub fault: Option<Fault>,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Fault>,
    always: Option<Fault>,
    /// The `Authorization` a request must carry to be forwarded.
    required_authorization: Option<String>,
    seen: Vec<SeenRequest>,
}

/// A running proxy; stops when dropped.
pub struct FaultProxy {
    /// The proxy's origin, e.g. `http://127.0.0.1:41234`.
    pub base: String,
    target: String,
    state: Arc<Mutex<State>>,
    _server: ServerGuard,
}

impl FaultProxy {
    /// Starts a proxy forwarding to `target` (an origin such as
    /// `http://127.0.0.1:15232`; a path in it is ignored).
    pub async fn start(target: &str) -> Self {
        let target = origin(target);
        let state = Arc::new(Mutex::new(State::default()));
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .expect("a plain HTTP client builds");
        let (addr, server) = super::serve({
            let (state, target) = (state.clone(), target.clone());
            move |req| handle(state.clone(), http.clone(), target.clone(), req)
        })
        .await;
        Self { base: format!("http://{addr}"), target, state, _server: server }
    }

    /// `url` (on the target) rewritten to go through the proxy.
    pub fn url_for(&self, url: &str) -> String {
        match url.strip_prefix(&self.target) {
            Some(rest) => format!("{}{rest}", self.base),
            None => panic!("{url} is not on the proxied server {}", self.target),
        }
    }

    /// The next `count` requests get `status`.
    pub fn fail_next(&self, status: u16, count: usize) {
        self.inject(std::iter::repeat_n(Fault::Status(status), count));
    }

    /// Queues faults for the next requests, one each, in order.
    pub fn inject(&self, faults: impl IntoIterator<Item = Fault>) {
        self.lock().queue.extend(faults);
    }

    /// Every request gets `fault` (after the queue runs out) until
    /// [`pass_through`](Self::pass_through).
    pub fn always(&self, fault: Fault) {
        self.lock().always = Some(fault);
    }

    /// From now on, a request without exactly this `Authorization` header
    /// gets `401`, as a server checking Basic credentials answers (not
    /// cleared by [`pass_through`](Self::pass_through)).
    pub fn require_authorization(&self, value: &str) {
        self.lock().required_authorization = Some(value.to_owned());
    }

    /// Forgets queued and permanent faults: every request is forwarded.
    pub fn pass_through(&self) {
        let mut state = self.lock();
        state.queue.clear();
        state.always = None;
    }

    /// How many requests arrived, faulted or not.
    pub fn requests_seen(&self) -> usize {
        self.lock().seen.len()
    }

    /// How many requests reached the target.
    pub fn requests_forwarded(&self) -> usize {
        self.lock().seen.iter().filter(|r| r.fault.is_none() || matches!(r.fault, Some(Fault::Delay(_)))).count()
    }

    /// Every request so far, oldest first.
    pub fn requests(&self) -> Vec<SeenRequest> {
        self.lock().seen.clone()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

fn origin(url: &str) -> String {
    let parsed = reqwest::Url::parse(url).unwrap_or_else(|e| panic!("proxy target {url:?}: {e}"));
    parsed.origin().ascii_serialization()
}

async fn handle(state: Arc<Mutex<State>>, http: reqwest::Client, target: String, req: Request) -> Reply {
    let path = req.uri().path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "/".into());
    let fault = {
        let mut state = lock(&state);
        let authorization = req.headers().get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let unauthorised = state.required_authorization.is_some() && state.required_authorization != authorization;
        let fault = state
            .queue
            .pop_front()
            .or_else(|| state.always.clone())
            .or_else(|| unauthorised.then_some(Fault::Status(401)));
        let seen =
            SeenRequest { method: req.method().to_string(), path: path.clone(), authorization, fault: fault.clone() };
        state.seen.push(seen);
        fault
    };
    match fault {
        Some(Fault::Status(status)) => Reply::Respond(injected(status)),
        Some(Fault::Drop) => Reply::Drop,
        Some(Fault::Delay(delay)) => {
            tokio::time::sleep(delay).await;
            forward(&http, &target, &path, req).await
        }
        None => forward(&http, &target, &path, req).await,
    }
}

fn injected(status: u16) -> super::Response {
    let mut response = response(status, "text/plain", format!("fault injected by the test proxy: {status}"));
    if matches!(status, 429 | 503) {
        response.headers_mut().insert("retry-after", slotguard_serve::header::HeaderValue::from_static("1"));
    }
    response
}

/// Hop-by-hop headers, and the ones the client and server recompute.
const SKIPPED_HEADERS: [&str; 6] =
    ["host", "connection", "content-length", "transfer-encoding", "keep-alive", "upgrade"];

pub(super) async fn forward(http: &reqwest::Client, target: &str, path: &str, req: Request) -> Reply {
    let (parts, body) = req.into_parts();
    let method = reqwest::Method::from_bytes(parts.method.as_str().as_bytes()).expect("hyper checked the method");
    let mut upstream = http.request(method, format!("{target}{path}")).body(body.to_vec());
    for (name, value) in &parts.headers {
        if !SKIPPED_HEADERS.contains(&name.as_str()) {
            upstream = upstream.header(name.as_str(), value.as_bytes());
        }
    }
    let Ok(answer) = upstream.send().await else { return Reply::Respond(injected(502)) };
    let status = answer.status().as_u16();
    let headers = answer.headers().clone();
    let body = answer.bytes().await.unwrap_or_default();
    let mut response = slotguard_serve::Response::builder().status(status);
    for (name, value) in &headers {
        if !SKIPPED_HEADERS.contains(&name.as_str()) {
            response = response.header(name.as_str(), value.as_bytes());
        }
    }
    Reply::Respond(response.body(slotguard_serve::Full::new(body)).expect("headers copied from a valid response"))
}
