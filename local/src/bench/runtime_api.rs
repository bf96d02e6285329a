//! A minimal stand-in for the Lambda Runtime API, enough for
//! `lambda_runtime`: `GET /2018-06-01/runtime/invocation/next` (long-polls
//! until the bench queues an event), `POST .../invocation/{id}/response`,
//! `POST .../invocation/{id}/error` and `POST /2018-06-01/runtime/init/error`.
//! One per function process, on `127.0.0.1:0`; it notes when the process
//! first asked for work (the end of its init) and when each answer arrived.

use slotguard_serve::{BodyExt, Bytes, Full, Incoming, Request, Response, StatusCode};
use std::sync::{Arc, OnceLock};
use std::time::Instant;
use tokio::sync::mpsc;

/// An event waiting to be handed to the function.
struct Invocation {
    id: String,
    trace_id: String,
    body: Bytes,
    deadline_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyKind {
    Response,
    Error,
    InitError,
}

/// What the function posted back, and when it arrived.
#[derive(Debug)]
pub struct Reply {
    pub kind: ReplyKind,
    pub body: Bytes,
    pub at: Instant,
}

struct Shared {
    function_arn: String,
    first_next: OnceLock<Instant>,
    pending: tokio::sync::Mutex<mpsc::UnboundedReceiver<Invocation>>,
    replies: mpsc::UnboundedSender<Reply>,
}

/// A running stand-in. Dropping it stops handing out events.
pub struct RuntimeApi {
    pub addr: std::net::SocketAddr,
    shared: Arc<Shared>,
    queue: mpsc::UnboundedSender<Invocation>,
    replies: mpsc::UnboundedReceiver<Reply>,
    server: tokio::task::JoinHandle<()>,
    next_id: u64,
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn respond(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let path = req.uri().path().to_owned();
    let rest = path.strip_prefix("/2018-06-01/runtime/").unwrap_or("");
    if req.method() == hyper::Method::GET && rest == "invocation/next" {
        shared.first_next.get_or_init(Instant::now);
        let next = shared.pending.lock().await.recv().await;
        let Some(inv) = next else { return Ok(respond(StatusCode::GONE, "no more events")) };
        let response = Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "application/json")
            .header("Lambda-Runtime-Aws-Request-Id", &inv.id)
            .header("Lambda-Runtime-Deadline-Ms", inv.deadline_ms.to_string())
            .header("Lambda-Runtime-Invoked-Function-Arn", &shared.function_arn)
            .header("Lambda-Runtime-Trace-Id", &inv.trace_id)
            .body(Full::new(inv.body))
            .expect("a valid response");
        return Ok(response);
    }
    if req.method() != hyper::Method::POST {
        return Ok(respond(StatusCode::NOT_FOUND, "unknown route"));
    }
    let kind = if rest == "init/error" {
        ReplyKind::InitError
    } else if rest.starts_with("invocation/") && rest.ends_with("/response") {
        ReplyKind::Response
    } else if rest.starts_with("invocation/") && rest.ends_with("/error") {
        ReplyKind::Error
    } else {
        return Ok(respond(StatusCode::NOT_FOUND, "unknown route"));
    };
    let body = req.into_body().collect().await?.to_bytes();
    let _ = shared.replies.send(Reply { kind, body, at: Instant::now() });
    Ok(respond(StatusCode::ACCEPTED, r#"{"status":"OK"}"#))
}

impl RuntimeApi {
    pub async fn start(function_name: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the runtime API");
        let addr = listener.local_addr().expect("a bound listener has an address");
        let (queue, pending) = mpsc::unbounded_channel();
        let (reply_tx, replies) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            function_arn: format!("arn:aws:lambda:us-east-1:123456789012:function:{function_name}"),
            first_next: OnceLock::new(),
            pending: tokio::sync::Mutex::new(pending),
            replies: reply_tx,
        });
        let s = shared.clone();
        let handler = move |req| handle(s.clone(), req);
        let server = tokio::spawn(slotguard_serve::serve(listener, handler, std::future::pending()));
        Self { addr, shared, queue, replies, server, next_id: 0 }
    }

    /// Queues an event; the function gets it on its next `GET .../next`.
    pub fn push(&mut self, body: impl Into<Bytes>, timeout_secs: i64) {
        self.next_id += 1;
        let n = self.next_id;
        let now = chrono::Utc::now();
        let id = format!("{:08x}-0000-4000-8000-{n:012x}", std::process::id());
        let trace_id = format!("Root=1-{:08x}-{n:024x};Parent={n:016x};Sampled=0", now.timestamp());
        let deadline_ms = now.timestamp_millis() + timeout_secs * 1000;
        let _ = self.queue.send(Invocation { id, trace_id, body: body.into(), deadline_ms });
    }

    /// When the function first asked for an event, if it has.
    pub fn first_next(&self) -> Option<Instant> {
        self.shared.first_next.get().copied()
    }

    /// The next reply, if one arrives within `wait`.
    pub async fn reply(&mut self, wait: std::time::Duration) -> Option<Reply> {
        tokio::time::timeout(wait, self.replies.recv()).await.ok().flatten()
    }
}
