//! The one HTTP/1.1 accept loop of slotguard's local servers: the local API
//! gateway, the Stripe simulator and the test fakes all hand [`serve`] a bound
//! listener, a handler and a shutdown signal.
//!
//! One loop means one place that gets the edges right: accept errors back off
//! instead of spinning, connection errors go to `tracing` at debug, and
//! shutdown stops accepting at once but lets requests already in flight get
//! their answers (for a bounded time, [`DRAIN_TIMEOUT`]).
//!
//! The hyper types a handler sees are re-exported, so callers write no
//! `hyper::server` or `hyper_util` code of their own.

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use std::error::Error;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

pub use http_body_util::{BodyExt, Full};
pub use hyper::body::{Bytes, Incoming};
pub use hyper::{Request, Response, StatusCode, header};

/// How long shutdown waits for connections still answering a request; after
/// that they are left to the runtime and [`serve`] returns anyway, so a stuck
/// handler cannot hold a process (or a test) open.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// How long to wait after a failed accept: errors such as running out of file
/// descriptors come back at once, and retrying at once would spin a core.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves HTTP/1.1 on `listener` with `handler` until `shutdown` completes;
/// then stops accepting (the listener is closed, so new connections are
/// refused), lets requests in flight finish for up to [`DRAIN_TIMEOUT`], and
/// returns.
///
/// Each request is answered by `handler`; an `Err` from it closes the
/// connection without a response, which is how a fake plays a crashing server.
pub async fn serve<F, Fut, E>(listener: TcpListener, handler: F, shutdown: impl Future<Output = ()>)
where
    F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<Full<Bytes>>, E>> + Send + 'static,
    E: Into<Box<dyn Error + Send + Sync>>,
{
    serve_draining(listener, handler, shutdown, DRAIN_TIMEOUT).await;
}

/// [`serve`] with the drain bound as a parameter, so tests need not wait
/// [`DRAIN_TIMEOUT`].
async fn serve_draining<F, Fut, E>(
    listener: TcpListener,
    handler: F,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) where
    F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<Full<Bytes>>, E>> + Send + 'static,
    E: Into<Box<dyn Error + Send + Sync>>,
{
    let handler = Arc::new(handler);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let handler = handler.clone();
        let service = service_fn(move |req| handler(req));
        let connection = graceful.watch(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection closed with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(drain, graceful.shutdown()).await.is_err() {
        tracing::warn!(drain_secs = drain.as_secs_f64(), "connections still open after the drain; leaving them");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;
    use std::net::SocketAddr;
    use tokio::sync::{Notify, oneshot};

    async fn loopback() -> (TcpListener, SocketAddr) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        (listener, addr)
    }

    /// Whether a new TCP connection to `addr` is refused within a second.
    async fn refused_soon(addr: SocketAddr) -> bool {
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(addr).await.is_err() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    #[tokio::test]
    async fn answers_a_request_over_tcp() {
        let (listener, addr) = loopback().await;
        tokio::spawn(serve(
            listener,
            |req: Request<Incoming>| async move {
                let line = format!("{} {}", req.method(), req.uri().path());
                let body = req.into_body().collect().await?.to_bytes();
                let answer = format!("{line}: {}", String::from_utf8_lossy(&body));
                Ok::<_, hyper::Error>(Response::builder().status(201).body(Full::from(answer)).unwrap())
            },
            std::future::pending(),
        ));
        let response = reqwest::Client::new().post(format!("http://{addr}/echo")).body("hello").send().await.unwrap();
        assert_eq!(response.status(), 201);
        assert_eq!(response.text().await.unwrap(), "POST /echo: hello");
    }

    #[tokio::test]
    async fn a_handler_error_closes_the_connection_unanswered() {
        let (listener, addr) = loopback().await;
        tokio::spawn(serve(listener, |_| async { Err::<Response<Full<Bytes>>, _>("no") }, std::future::pending()));
        let sent = reqwest::get(format!("http://{addr}/")).await;
        assert!(sent.is_err(), "expected no response, got {sent:?}");
    }

    #[tokio::test]
    async fn shutdown_refuses_new_connections_and_lets_a_request_in_flight_finish() {
        let (listener, addr) = loopback().await;
        let (started, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(serve(
            listener,
            {
                let (started, release) = (started.clone(), release.clone());
                move |_| {
                    let (started, release) = (started.clone(), release.clone());
                    async move {
                        started.notify_one();
                        release.notified().await;
                        Ok::<_, Infallible>(Response::new(Full::from("late but answered")))
                    }
                }
            },
            async {
                let _ = stopped.await;
            },
        ));
        let in_flight = tokio::spawn(reqwest::get(format!("http://{addr}/slow")));
        started.notified().await;

        stop.send(()).unwrap();
        assert!(refused_soon(addr).await, "the port still accepts connections after shutdown");
        assert!(!in_flight.is_finished() && !server.is_finished(), "shutdown did not wait for the request in flight");

        release.notify_one();
        let response = in_flight.await.unwrap().unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.unwrap(), "late but answered");
        tokio::time::timeout(Duration::from_secs(5), server).await.expect("serve returns once drained").unwrap();
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    }

    #[tokio::test]
    async fn the_drain_is_bounded() {
        let (listener, addr) = loopback().await;
        let started = Arc::new(Notify::new());
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(serve_draining(
            listener,
            {
                let started = started.clone();
                move |_| {
                    started.notify_one();
                    std::future::pending::<Result<Response<Full<Bytes>>, Infallible>>()
                }
            },
            async {
                let _ = stopped.await;
            },
            Duration::from_millis(200),
        ));
        let _stuck = tokio::spawn(reqwest::get(format!("http://{addr}/never")));
        started.notified().await;
        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), server).await.expect("a stuck handler held serve open").unwrap();
    }
}
