//! HTTP plumbing both calendar adapters share: one way to build a client and
//! one table that turns HTTP outcomes into [`CalendarError`]s, so CalDAV and
//! Google fail the same way for the same reason.

use super::outbound::{OutboundPolicy, OutboundRefused, PolicyResolver, is_refusal};
use crate::ports::CalendarError;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use std::time::Duration;

/// Connect and whole-request timeout unless configured otherwise: a calendar
/// call runs inside a Lambda invocation, so it must give up well before the
/// function's own timeout and leave the retry to the queue.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why an adapter could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The HTTP client could not be created (TLS backend initialisation).
    #[error("cannot build the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    /// A configured endpoint is not an absolute http(s) URL.
    #[error("invalid URL for {what}: {url:?}")]
    InvalidUrl { what: &'static str, url: String },
    /// A configured endpoint is one the outbound policy refuses.
    #[error("the outbound policy refuses {what}: {reason}")]
    Refused { what: &'static str, reason: String },
}

/// A client with `timeout` for connecting and for the whole exchange.
///
/// Redirects: only 307/308 to the same origin are followed. A 301/302 on a
/// `PUT` or `REPORT` would be replayed as a `GET` (that is what HTTP clients do
/// with them), which turns a write into a read and its answer into nonsense;
/// a redirect to another host would drop the credentials. Both surface as a
/// permanent `http_3xx` error telling the admin to configure the final URL.
///
/// TLS: the process's shared configuration ([`crate::adapters::tls`]).
///
/// Destinations: `outbound` decides ([`crate::adapters::outbound`]). Every
/// name is resolved by a [`PolicyResolver`], which keeps only the addresses
/// the policy allows; a redirect is followed only if the policy allows its
/// URL too (it is on the same origin, so this only matters for the scheme
/// and an IP literal). No proxy is used, not even one named by
/// `HTTPS_PROXY`: through a proxy the resolver would see the proxy's name,
/// not the calendar's. Callers check IP-literal URLs themselves before each
/// request ([`OutboundPolicy::check_url`]), since the client connects to
/// those without asking the resolver.
pub fn client(timeout: Duration, outbound: &OutboundPolicy) -> Result<reqwest::Client, SetupError> {
    let policy = outbound.clone();
    let redirects = reqwest::redirect::Policy::custom(move |attempt| {
        let same_origin = attempt.previous().last().is_some_and(|prev| prev.origin() == attempt.url().origin());
        let replays_body = matches!(attempt.status().as_u16(), 307 | 308);
        let allowed = policy.check_url(attempt.url()).is_ok();
        if replays_body && same_origin && allowed && attempt.previous().len() <= 5 {
            attempt.follow()
        } else {
            attempt.stop()
        }
    });
    reqwest::Client::builder()
        .use_preconfigured_tls(crate::adapters::tls::client_config().as_ref().clone())
        .no_proxy()
        .dns_resolver(std::sync::Arc::new(PolicyResolver::new(outbound.clone())))
        .connect_timeout(timeout)
        .timeout(timeout)
        .redirect(redirects)
        .user_agent(concat!("slotguard/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(SetupError::Client)
}

/// The permanent error of a request the outbound policy refuses: the URL
/// will not become acceptable by retrying; the admin has to change it.
pub fn refused(op: &str, err: &OutboundRefused) -> CalendarError {
    CalendarError::Permanent { kind: "outbound_refused", message: format!("{op}: {err}") }
}

/// Classifies a response status that the caller did not expect.
///
/// Transient (retry with backoff): 408, 423 (a WebDAV lock that will be
/// released), 429 and 5xx except 501/505, which say the server does not
/// implement what we ask and never will. Everything else is permanent.
pub fn status_error(op: &str, status: reqwest::StatusCode, body: &str) -> CalendarError {
    let code = status.as_u16();
    let kind = status_kind(code);
    let message = match snippet(body) {
        s if s.is_empty() => format!("{op}: HTTP {status}"),
        s => format!("{op}: HTTP {status}: {s}"),
    };
    let transient = matches!(code, 408 | 423 | 429) || (status.is_server_error() && !matches!(code, 501 | 505));
    if transient { CalendarError::Transient { kind, message } } else { CalendarError::Permanent { kind, message } }
}

/// Classifies a failure to get any response: timeouts and network trouble are
/// transient, a request that cannot even be built is permanent.
pub fn transport_error(op: &str, err: reqwest::Error) -> CalendarError {
    // The URL is left out of the message: ours carry no secrets, but a
    // misconfigured one could (user:password@host).
    let err = err.without_url();
    let message = format!("{op}: {}", error_chain(&err));
    if is_refusal(&err) {
        // The resolver found only addresses the outbound policy refuses.
        CalendarError::Permanent { kind: "outbound_refused", message }
    } else if err.is_timeout() {
        CalendarError::Transient { kind: "timeout", message }
    } else if err.is_connect() {
        CalendarError::Transient { kind: "connect", message }
    } else if err.is_builder() {
        CalendarError::Permanent { kind: "invalid_request", message }
    } else if err.is_redirect() {
        CalendarError::Permanent { kind: "redirect", message }
    } else {
        // Reset connections, truncated bodies, protocol errors: the network.
        CalendarError::Transient { kind: "network", message }
    }
}

/// `err` and its sources on one line: reqwest's own message is often just
/// "error sending request", the useful part (refused, reset) is a source.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// The first 200 characters of a response body, on one line, for messages,
/// [scrubbed](crate::telemetry::scrub): these messages are logged and kept
/// with dead-lettered jobs, and a server may quote back what it was sent.
pub fn snippet(body: &str) -> String {
    let one_line: String = crate::telemetry::scrub(&body.split_whitespace().collect::<Vec<_>>().join(" "));
    match one_line.char_indices().nth(200) {
        Some((cut, _)) => format!("{}...", &one_line[..cut]),
        None => one_line,
    }
}

/// The metrics label of a status. Kinds are `&'static str`, so uncommon codes
/// share a label per class.
pub fn status_kind(code: u16) -> &'static str {
    exact_kind(code).unwrap_or(match code / 100 {
        3 => "http_3xx",
        4 => "http_4xx",
        5 => "http_5xx",
        _ => "http_other",
    })
}

fn exact_kind(code: u16) -> Option<&'static str> {
    Some(match code {
        301 => "http_301",
        302 => "http_302",
        303 => "http_303",
        307 => "http_307",
        308 => "http_308",
        400 => "http_400",
        401 => "http_401",
        403 => "http_403",
        404 => "http_404",
        405 => "http_405",
        406 => "http_406",
        408 => "http_408",
        409 => "http_409",
        410 => "http_410",
        411 => "http_411",
        412 => "http_412",
        413 => "http_413",
        415 => "http_415",
        422 => "http_422",
        423 => "http_423",
        424 => "http_424",
        429 => "http_429",
        500 => "http_500",
        501 => "http_501",
        502 => "http_502",
        503 => "http_503",
        504 => "http_504",
        505 => "http_505",
        507 => "http_507",
        _ => return None,
    })
}

/// Reads a response body for an error message; a body that cannot be read
/// only costs the message its detail.
pub async fn body_text(response: reqwest::Response) -> String {
    response.text().await.unwrap_or_default()
}

/// Everything but RFC 3986 unreserved characters (`A-Z a-z 0-9 - . _ ~`).
const NOT_UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Percent-encodes everything but RFC 3986 unreserved characters, for one
/// path segment (a Google calendar id may hold `@`, `#` or `/`).
pub fn encode_path_segment(segment: &str) -> String {
    utf8_percent_encode(segment, NOT_UNRESERVED).to_string()
}

/// Logs the outcome of a calendar call at debug level, `{provider} {op}`.
pub fn log_outcome<T: std::fmt::Debug>(
    provider: &str,
    op: &str,
    reservation_id: &crate::domain::ReservationId,
    outcome: &Result<T, CalendarError>,
) {
    match outcome {
        Ok(o) => tracing::debug!(%reservation_id, ?o, "{provider} {op}"),
        Err(e) => tracing::debug!(%reservation_id, kind = e.kind(), error = %e, "{provider} {op} failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::StatusCode;

    fn classify(code: u16) -> CalendarError {
        status_error("put", StatusCode::from_u16(code).unwrap(), "")
    }

    #[test]
    fn retryable_statuses_are_transient_with_their_code_as_kind() {
        for (code, kind) in
            [(429, "http_429"), (500, "http_500"), (502, "http_502"), (503, "http_503"), (504, "http_504")]
        {
            let err = classify(code);
            assert!(err.is_transient(), "{code}");
            assert_eq!(err.kind(), kind);
        }
        assert!(classify(408).is_transient());
        assert!(classify(423).is_transient());
        assert_eq!(classify(599).kind(), "http_5xx");
    }

    #[test]
    fn client_errors_are_permanent() {
        for (code, kind) in
            [(400, "http_400"), (401, "http_401"), (403, "http_403"), (404, "http_404"), (418, "http_4xx")]
        {
            let err = classify(code);
            assert!(!err.is_transient(), "{code}");
            assert_eq!(err.kind(), kind);
        }
        // The server will never implement the method.
        assert!(!classify(501).is_transient());
        assert!(!classify(301).is_transient());
        assert_eq!(classify(301).kind(), "http_301");
    }

    #[test]
    fn messages_carry_a_short_one_line_body() {
        let body = format!("line one\n  line two {}", "x".repeat(500));
        let err = status_error("put", StatusCode::FORBIDDEN, &body);
        let CalendarError::Permanent { message, .. } = err else { panic!("expected permanent") };
        assert!(message.starts_with("put: HTTP 403 Forbidden: line one line two xxx"), "{message}");
        assert!(message.len() < 260, "{}", message.len());
        assert!(message.ends_with("..."));
    }

    #[test]
    fn messages_do_not_quote_addresses_back() {
        let body = r#"<error>ATTENDEE "mailto:ada@example.com" refused for Ada@Example.com</error>"#;
        let CalendarError::Permanent { message, .. } = status_error("put", StatusCode::BAD_REQUEST, body) else {
            panic!("expected permanent")
        };
        assert!(!message.to_lowercase().contains("ada@"), "{message}");
    }

    #[test]
    fn path_segments_keep_only_unreserved_characters() {
        assert_eq!(encode_path_segment("primary"), "primary");
        assert_eq!(encode_path_segment("a.b_c-d~e"), "a.b_c-d~e");
        assert_eq!(encode_path_segment("team@group.calendar.google.com"), "team%40group.calendar.google.com");
        assert_eq!(encode_path_segment("a/b#c d?é"), "a%2Fb%23c%20d%3F%C3%A9");
    }
}
