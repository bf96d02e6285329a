//! A recording HTTP forwarder: listens on 127.0.0.1, forwards every request
//! unchanged (the `Host` header included, so SigV4 signatures still match)
//! to an upstream server, and records what each request was, so the bench
//! can count a handler's round trips to DynamoDB, SQS or Stripe.

use hyper::http::request::Parts;
use slotguard_serve::{BodyExt, Bytes, Full, Incoming, Request, Response, StatusCode, header};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// What a request was, from its parts and body: `PutItem`, `SendMessage`,
/// `POST /v1/refunds`...
pub type Classify = fn(&Parts, &[u8]) -> String;

/// The requests a proxy has forwarded since it was last [`taken`](Recorder::take).
#[derive(Clone, Default)]
pub struct Recorder(Arc<Mutex<Vec<String>>>);

impl Recorder {
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn push(&self, what: String) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(what);
    }
}

/// Headers that belong to one connection, not to the request.
fn hop_by_hop(name: &header::HeaderName) -> bool {
    matches!(name.as_str(), "connection" | "keep-alive" | "transfer-encoding" | "content-length" | "te" | "upgrade")
}

/// Starts a proxy in front of `upstream` (`http://host:port`); returns its
/// base URL and its recorder. It runs until the process ends.
pub async fn spawn(upstream: &str, classify: Classify) -> (String, Recorder) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
    let base = format!("http://{}", listener.local_addr().expect("a bound listener has an address"));
    let recorder = Recorder::default();
    let http = reqwest::Client::builder().pool_max_idle_per_host(64).build().expect("an HTTP client");
    let upstream = upstream.trim_end_matches('/').to_owned();
    let rec = recorder.clone();
    let handler = move |req: Request<Incoming>| {
        let (http, upstream, rec) = (http.clone(), upstream.clone(), rec.clone());
        async move {
            let (parts, body) = req.into_parts();
            let bytes = body.collect().await?.to_bytes();
            rec.push(classify(&parts, &bytes));
            let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
            let mut forward = http.request(parts.method.clone(), format!("{upstream}{path}")).body(bytes);
            for (name, value) in &parts.headers {
                if !hop_by_hop(name) {
                    forward = forward.header(name, value);
                }
            }
            let answer = match forward.send().await {
                Ok(answer) => answer,
                Err(e) => {
                    let mut r = Response::new(Full::new(Bytes::from(format!("proxy: {e}"))));
                    *r.status_mut() = StatusCode::BAD_GATEWAY;
                    return Ok::<_, Box<dyn std::error::Error + Send + Sync>>(r);
                }
            };
            let mut response = Response::builder().status(answer.status());
            for (name, value) in answer.headers() {
                if !hop_by_hop(name) {
                    response = response.header(name, value);
                }
            }
            let body = answer.bytes().await?;
            Ok(response.body(Full::new(body))?)
        }
    };
    tokio::spawn(slotguard_serve::serve(listener, handler, std::future::pending()));
    (base, recorder)
}

/// The operation of an AWS request: the part after the dot of its
/// `x-amz-target` header (JSON protocols: `DynamoDB_20120810.PutItem`,
/// `AmazonSQS.SendMessage`), or the `Action=` of a query-protocol body.
pub fn aws_operation(req: &Parts, body: &[u8]) -> String {
    if let Some(target) = req.headers.get("x-amz-target").and_then(|v| v.to_str().ok()) {
        return target.rsplit('.').next().unwrap_or(target).to_owned();
    }
    form_urlencoded::parse(body)
        .find(|(k, _)| k == "Action")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| format!("{} {}", req.method, req.uri.path()))
}

/// A Stripe API request as `METHOD /path`, object ids (`cs_...`, `pi_...`)
/// written `{id}`.
pub fn stripe_call(req: &Parts, _body: &[u8]) -> String {
    let path: Vec<&str> = req
        .uri
        .path()
        .split('/')
        .map(|seg| if seg.contains('_') && !seg.starts_with('_') { "{id}" } else { seg })
        .collect();
    format!("{} {}", req.method, path.join("/"))
}

/// `n Name (Op, Op ×2, ...)`: how many requests, and which, in the order
/// first seen; `0 Name` if none.
pub fn summary(service: &str, calls: &[String]) -> String {
    if calls.is_empty() {
        return format!("0 {service}");
    }
    let mut order: Vec<&str> = Vec::new();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for call in calls {
        let n = counts.entry(call.as_str()).or_insert(0);
        if *n == 0 {
            order.push(call);
        }
        *n += 1;
    }
    let ops: Vec<String> = order
        .iter()
        .map(|op| if counts[op] > 1 { format!("{op} ×{}", counts[op]) } else { (*op).to_owned() })
        .collect();
    format!("{} {service} ({})", calls.len(), ops.join(", "))
}
