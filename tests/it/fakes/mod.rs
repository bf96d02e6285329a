//! Test-only HTTP servers on `127.0.0.1:0`: a fault-injecting proxy and a
//! Google Calendar stand-in. Each runs until its handle is dropped.

pub mod dynamo_wire;
pub mod fault_proxy;
pub mod google;

use slotguard_serve::{BodyExt, Bytes, Full, Incoming};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// A request with its body read.
pub type Request = slotguard_serve::Request<Bytes>;
/// What a fake answers.
pub type Response = slotguard_serve::Response<Full<Bytes>>;

/// A handler's verdict: answer, or close the connection without a word
/// (what a crashing server or a reset looks like to the client).
pub enum Reply {
    Respond(Response),
    Drop,
}

/// Stops the server when dropped: it accepts no more connections, and
/// requests in flight still get their answers.
pub struct ServerGuard {
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// Serves `handler` on a fresh loopback port.
pub async fn serve<H, F>(handler: H) -> (SocketAddr, ServerGuard)
where
    H: Fn(Request) -> F + Send + Sync + 'static,
    F: Future<Output = Reply> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
    let addr = listener.local_addr().expect("a bound listener has an address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let handler = Arc::new(handler);
    let handler = move |req: slotguard_serve::Request<Incoming>| {
        let handler = handler.clone();
        async move {
            let (parts, body) = req.into_parts();
            let body = body.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
            match handler(slotguard_serve::Request::from_parts(parts, body)).await {
                Reply::Respond(response) => Ok(response),
                Reply::Drop => Err("dropped on purpose"),
            }
        }
    };
    tokio::spawn(slotguard_serve::serve(listener, handler, async {
        let _ = stopped.await;
    }));
    (addr, ServerGuard { _stop: stop })
}

/// A response with a body and content type.
pub fn response(status: u16, content_type: &str, body: impl Into<Bytes>) -> Response {
    slotguard_serve::Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(body.into()))
        .expect("a valid status and header")
}

/// A JSON response.
pub fn json_response(status: u16, value: &serde_json::Value) -> Response {
    response(status, "application/json; charset=utf-8", value.to_string())
}
