//! The one HTTP/1.1 accept loop of slotguard's local servers: the local API
//! gateway, the Stripe simulator and the test fakes all hand [`serve`] a bound
//! listener, a handler and a shutdown signal.
//!
//! One loop means one place that gets the edges right: accept errors back off
//! instead of spinning, connection errors go to `tracing` at debug, and
//! shutdown stops accepting at once but lets requests already in flight get
//! their answers (for a bounded time, [`DRAIN_TIMEOUT`]).
//!
//! Slow or stalled clients ([`Limits`]): a client has
//! [`Limits::header_read_timeout`] to send a request's headers, and an idle
//! keep-alive connection is closed after the same time, so connections that
//! dribble headers or never send any are closed; at most
//! [`Limits::max_connections`] connections are served at once, further ones
//! wait in the listen backlog until one closes. Request heads over hyper's
//! buffer (about 400 KiB) get `431`. Bodies are the handler's to bound in
//! size and time: the local gateway does (`local/src/gateway.rs`).
//!
//! The hyper types a handler sees are re-exported, so callers write no
//! `hyper::server` or `hyper_util` code of their own.

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::error::Error;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

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

/// What one server allows its clients: see the crate docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// How long a client may take to send a request's headers, counted from
    /// when the server starts waiting for them; also how long an idle
    /// keep-alive connection is kept. The connection is closed after it.
    pub header_read_timeout: Duration,
    /// Connections served at once; the listener accepts no more until one closes.
    pub max_connections: usize,
}

impl Default for Limits {
    /// 30 s for headers (hyper's own default, which it applies only when
    /// given a timer, as here) and 512 connections, well under the usual
    /// soft limit of 1024 open files.
    fn default() -> Self {
        Self { header_read_timeout: Duration::from_secs(30), max_connections: 512 }
    }
}

/// Serves HTTP/1.1 on `listener` with `handler` until `shutdown` completes;
/// then stops accepting (the listener is closed, so new connections are
/// refused), lets requests in flight finish for up to [`DRAIN_TIMEOUT`], and
/// returns. Connections get the default [`Limits`].
///
/// Each request is answered by `handler`; an `Err` from it closes the
/// connection without a response, which is how a fake plays a crashing server.
pub async fn serve<F, Fut, E>(listener: TcpListener, handler: F, shutdown: impl Future<Output = ()>)
where
    F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<Full<Bytes>>, E>> + Send + 'static,
    E: Into<Box<dyn Error + Send + Sync>>,
{
    serve_with(listener, handler, shutdown, Limits::default()).await;
}

/// [`serve`] with other [`Limits`] (tests of slow clients use short timeouts).
pub async fn serve_with<F, Fut, E>(
    listener: TcpListener,
    handler: F,
    shutdown: impl Future<Output = ()>,
    limits: Limits,
) where
    F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<Full<Bytes>>, E>> + Send + 'static,
    E: Into<Box<dyn Error + Send + Sync>>,
{
    serve_draining(listener, handler, shutdown, limits, DRAIN_TIMEOUT).await;
}

/// [`serve_with`] with the drain bound as a parameter, so tests need not wait
/// [`DRAIN_TIMEOUT`].
async fn serve_draining<F, Fut, E>(
    listener: TcpListener,
    handler: F,
    shutdown: impl Future<Output = ()>,
    limits: Limits,
    drain: Duration,
) where
    F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<Full<Bytes>>, E>> + Send + 'static,
    E: Into<Box<dyn Error + Send + Sync>>,
{
    let handler = Arc::new(handler);
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    tokio::pin!(shutdown);
    loop {
        // A slot first, then the connection: while all are taken, new
        // connections wait in the backlog instead of being read.
        let (slot, stream) = tokio::select! {
            accepted = async {
                let slot = slots.clone().acquire_owned().await.expect("the semaphore is never closed");
                (slot, listener.accept().await)
            } => match accepted {
                (slot, Ok((stream, _))) => (slot, stream),
                (_, Err(e)) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let handler = handler.clone();
        let service = service_fn(move |req| handler(req));
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection closed with an error");
            }
            drop(slot);
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

    /// Reads until the server closes the connection; `true` if it did within 5 s.
    async fn closed_soon(stream: &mut tokio::net::TcpStream) -> bool {
        use tokio::io::AsyncReadExt;
        let mut buf = [0u8; 1024];
        tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await
        .is_ok()
    }

    fn hello(_: Request<Incoming>) -> std::future::Ready<Result<Response<Full<Bytes>>, Infallible>> {
        std::future::ready(Ok(Response::new(Full::from("hello"))))
    }

    #[tokio::test]
    async fn clients_that_stall_in_their_headers_or_idle_are_disconnected() {
        use tokio::io::AsyncWriteExt;
        let (listener, addr) = loopback().await;
        let limits = Limits { header_read_timeout: Duration::from_millis(300), ..Limits::default() };
        tokio::spawn(serve_with(listener, hello, std::future::pending(), limits));
        let mut partial = tokio::net::TcpStream::connect(addr).await.unwrap();
        partial.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ").await.unwrap();
        let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut idle = tokio::net::TcpStream::connect(addr).await.unwrap();
        idle.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();

        let answered = reqwest::get(format!("http://{addr}/")).await.unwrap();
        assert_eq!(answered.text().await.unwrap(), "hello", "others are answered meanwhile");
        assert!(closed_soon(&mut partial).await, "a partial head keeps its connection");
        assert!(closed_soon(&mut silent).await, "a silent client keeps its connection");
        assert!(closed_soon(&mut idle).await, "an idle keep-alive connection stays open");
    }

    #[tokio::test]
    async fn connections_over_the_limit_wait_for_a_free_slot() {
        use tokio::io::AsyncWriteExt;
        let (listener, addr) = loopback().await;
        let limits = Limits { header_read_timeout: Duration::from_secs(1), max_connections: 1 };
        tokio::spawn(serve_with(listener, hello, std::future::pending(), limits));
        let mut stalled = tokio::net::TcpStream::connect(addr).await.unwrap();
        stalled.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;

        let waiting = tokio::spawn(reqwest::get(format!("http://{addr}/")));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!waiting.is_finished(), "served beyond the connection limit");
        let answered = tokio::time::timeout(Duration::from_secs(10), waiting).await.expect("never served").unwrap();
        assert_eq!(answered.unwrap().text().await.unwrap(), "hello", "served once the stalled one was closed");
        assert!(closed_soon(&mut stalled).await);
    }

    #[tokio::test]
    async fn heads_with_too_many_headers_get_431() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (listener, addr) = loopback().await;
        tokio::spawn(serve(listener, hello, std::future::pending()));
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let headers: String = (0..200).map(|i| format!("X-H{i}: {i}\r\n")).collect();
        stream.write_all(format!("GET / HTTP/1.1\r\nHost: x\r\n{headers}\r\n").as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");
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
            Limits::default(),
            Duration::from_millis(200),
        ));
        let _stuck = tokio::spawn(reqwest::get(format!("http://{addr}/never")));
        started.notified().await;
        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), server).await.expect("a stuck handler held serve open").unwrap();
    }
}
