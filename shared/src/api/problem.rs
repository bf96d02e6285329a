//! The one place an outcome becomes a status code: every route's error enum
//! says which [`ProblemKind`] each of its variants is, and [`problem`] turns
//! any of them into an RFC 9457 `application/problem+json` response, logging
//! it once with its whole cause chain.
//!
//! For a 4xx the error's own message is the `detail` the client reads. For a
//! 5xx the client gets a fixed sentence per kind: causes (table names, SDK
//! messages, Stripe's answers) go to the log only.

use crate::ports::{PaymentError, QueueError, StoreError};
use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Response};
use serde::Serialize;
use std::error::Error;
use std::fmt;

/// Defines [`ProblemKind`] from one table: variant => (`type`, status, title).
macro_rules! problem_kinds {
    ($($(#[$doc:meta])* $variant:ident => ($type:literal, $status:ident, $title:literal),)*) => {
        /// Every problem slotguard answers with. [`ProblemKind::as_str`] is the
        /// documented `type` token (README, API section), stable across versions.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ProblemKind {
            $($(#[$doc])* $variant,)*
        }

        impl ProblemKind {
            /// Every kind, in the table's order.
            pub const ALL: &[ProblemKind] = &[$(ProblemKind::$variant,)*];

            /// The `type` token of the problem body.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(ProblemKind::$variant => $type,)*
                }
            }

            /// The HTTP status.
            pub const fn status(self) -> StatusCode {
                match self {
                    $(ProblemKind::$variant => StatusCode::$status,)*
                }
            }

            /// A short human summary: the problem body's `title`.
            pub const fn title(self) -> &'static str {
                match self {
                    $(ProblemKind::$variant => $title,)*
                }
            }
        }
    };
}

problem_kinds! {
    /// the body is not JSON, or no body was sent
    InvalidJson => ("invalid_json", BAD_REQUEST, "Bad request"),
    /// the JSON does not have the expected shape (wrong type, missing or unknown field)
    MalformedField => ("invalid_field", BAD_REQUEST, "Bad request"),
    /// `Idempotency-Key` is not 1-255 visible ASCII characters
    InvalidIdempotencyKey => ("invalid_idempotency_key", BAD_REQUEST, "Bad request"),
    /// the webhook signature does not check out
    InvalidSignature => ("invalid_signature", BAD_REQUEST, "Bad request"),
    /// a query parameter cannot be read
    InvalidQuery => ("invalid_query", BAD_REQUEST, "Bad request"),
    /// `from` is not before `to`, or outside years 0000-9999
    InvalidRange => ("invalid_range", BAD_REQUEST, "Bad request"),
    /// the availability range spans more than 31 days
    RangeTooLarge => ("range_too_large", BAD_REQUEST, "Bad request"),
    /// a resource id in the path is not a valid id
    InvalidResourceId => ("invalid_resource_id", BAD_REQUEST, "Bad request"),
    /// credentials are missing or wrong
    Unauthorized => ("unauthorized", UNAUTHORIZED, "Unauthorized"),
    /// admin access is not configured
    Forbidden => ("forbidden", FORBIDDEN, "Forbidden"),
    /// no such route
    NotFound => ("not_found", NOT_FOUND, "Not found"),
    /// no such resource
    ResourceNotFound => ("resource_not_found", NOT_FOUND, "Not found"),
    /// no such reservation
    ReservationNotFound => ("reservation_not_found", NOT_FOUND, "Not found"),
    /// no such booking
    BookingNotFound => ("booking_not_found", NOT_FOUND, "Not found"),
    /// the route exists, not with this method
    MethodNotAllowed => ("method_not_allowed", METHOD_NOT_ALLOWED, "Method not allowed"),
    /// the slot has a live hold or booking
    SlotTaken => ("slot_taken", CONFLICT, "Slot taken"),
    /// a concurrent request is changing the same thing; retrying shortly gets its result
    RequestInProgress => ("request_in_progress", CONFLICT, "Request in progress"),
    /// the reservation is not awaiting checkout
    NotHeld => ("not_held", CONFLICT, "Not held"),
    /// checkout was started with other return URLs
    CheckoutUrlsDiffer => ("checkout_urls_differ", CONFLICT, "Checkout URLs differ"),
    /// only confirmed bookings can be cancelled
    NotCancellable => ("not_cancellable", CONFLICT, "Not cancellable"),
    /// the type's cancellation policy refuses a customer's cancellation this close to the start
    OutsideCancellationWindow => ("outside_cancellation_window", CONFLICT, "Outside cancellation window"),
    /// the type's policy does not let the customer move the booking (any more)
    OutsideRescheduleWindow => ("outside_reschedule_window", CONFLICT, "Outside reschedule window"),
    /// only confirmed bookings can be rescheduled
    NotReschedulable => ("not_reschedulable", CONFLICT, "Not reschedulable"),
    /// the new time or duration has another price than the one paid
    PriceDiffers => ("price_differs", CONFLICT, "Price differs"),
    /// the booking type's limit of bookings for that day is reached
    DayFull => ("day_full", CONFLICT, "Day full"),
    /// every seat of the slot is held or booked
    SoldOut => ("sold_out", CONFLICT, "Sold out"),
    /// the resource's settings changed since the hold and no longer offer it; the hold is released
    SettingsChanged => ("settings_changed", CONFLICT, "Settings changed"),
    /// the host's own calendar has an event overlapping the slot (buffers included)
    HostBusy => ("host_busy", CONFLICT, "Host busy"),
    /// the hold lapsed before checkout
    HoldExpired => ("hold_expired", GONE, "Hold expired"),
    /// the body did not arrive in time (the local gateway; API Gateway times out slow clients itself)
    RequestTimeout => ("request_timeout", REQUEST_TIMEOUT, "Request timeout"),
    /// the body is larger than the route accepts
    PayloadTooLarge => ("payload_too_large", PAYLOAD_TOO_LARGE, "Payload too large"),
    /// the body is not `application/json`
    UnsupportedMediaType => ("unsupported_media_type", UNSUPPORTED_MEDIA_TYPE, "Unsupported media type"),
    /// a field has the right shape but a value that is not acceptable
    InvalidField => ("invalid_field", UNPROCESSABLE_ENTITY, "Unprocessable request"),
    /// the body names a resource that does not exist
    UnknownResource => ("unknown_resource", UNPROCESSABLE_ENTITY, "Unprocessable request"),
    /// the slot starts in the past
    SlotInPast => ("slot_in_past", UNPROCESSABLE_ENTITY, "Unprocessable request"),
    /// the start is not on the resource's slot grid
    OffGrid => ("off_grid", UNPROCESSABLE_ENTITY, "Unprocessable request"),
    /// the start is outside the resource's opening hours
    OutsideOpeningHours => ("outside_opening_hours", UNPROCESSABLE_ENTITY, "Unprocessable request"),
    /// the start is sooner than the booking type's minimum notice (or the hold) allows
    TooSoon => ("too_soon", UNPROCESSABLE_ENTITY, "Unprocessable request"),
    /// the start is beyond the booking type's advance window
    TooFarAhead => ("too_far_ahead", UNPROCESSABLE_ENTITY, "Unprocessable request"),
    /// the resource has no such booking type, or has several and none was named
    UnknownBookingType => ("unknown_booking_type", UNPROCESSABLE_ENTITY, "Unprocessable request"),
    /// the booking type has no such duration
    UnknownDuration => ("unknown_duration", UNPROCESSABLE_ENTITY, "Unprocessable request"),
    /// the `Idempotency-Key` was used with another body
    IdempotencyKeyReused => ("idempotency_key_reused", UNPROCESSABLE_ENTITY, "Unprocessable request"),
    /// the resource definition is not acceptable
    InvalidResource => ("invalid_resource", UNPROCESSABLE_ENTITY, "Unprocessable request"),
    /// a bug or a corrupt item; details are in the log
    InternalError => ("internal_error", INTERNAL_SERVER_ERROR, "Internal error"),
    /// the payment provider refused a request
    PaymentProviderError => ("payment_provider_error", BAD_GATEWAY, "Payment provider error"),
    /// storage is throttled or unreachable
    ServiceUnavailable => ("service_unavailable", SERVICE_UNAVAILABLE, "Service unavailable"),
    /// the payment provider did not answer
    PaymentProviderUnavailable => ("payment_provider_unavailable", SERVICE_UNAVAILABLE, "Payment provider unavailable"),
    /// the calendar queue did not take a job
    QueueUnavailable => ("queue_unavailable", SERVICE_UNAVAILABLE, "Queue unavailable"),
    /// a Checkout Session event could not be read; Stripe keeps it for retry
    UnreadableEvent => ("unreadable_event", SERVICE_UNAVAILABLE, "Unreadable event"),
    /// the host's calendar has not been read recently enough to tell whether the slot is free
    BusyTimeUnavailable => ("busy_time_unavailable", SERVICE_UNAVAILABLE, "Busy time unavailable"),
    /// every attempt found the state changed under it
    ConcurrentUpdate => ("concurrent_update", SERVICE_UNAVAILABLE, "Concurrent update"),
}

impl ProblemKind {
    /// Seconds a client should wait before retrying (`Retry-After`), for the
    /// kinds a retry can cure.
    pub const fn retry_after(self) -> Option<u32> {
        use ProblemKind::*;
        match self {
            RequestInProgress | ServiceUnavailable | ConcurrentUpdate => Some(1),
            PaymentProviderUnavailable | QueueUnavailable | BusyTimeUnavailable => Some(5),
            UnreadableEvent => Some(60),
            _ => None,
        }
    }

    /// Whether retrying the same request later may succeed.
    pub const fn is_retryable(self) -> bool {
        self.retry_after().is_some()
    }

    /// For a 5xx, what the client reads instead of the cause (which is logged).
    const fn server_detail(self) -> Option<&'static str> {
        use ProblemKind::*;
        match self {
            InternalError => Some("an unexpected error occurred"),
            PaymentProviderError => Some("the payment provider refused the request"),
            ServiceUnavailable => Some("storage is busy or unreachable; retry shortly"),
            PaymentProviderUnavailable => Some("the payment provider did not answer; retry shortly"),
            QueueUnavailable => Some("the calendar queue did not take the job; retry"),
            UnreadableEvent => Some("this Checkout Session event could not be read; it is kept for retry"),
            ConcurrentUpdate => Some("concurrent updates; retry"),
            BusyTimeUnavailable => Some("the host's calendar has not been read recently; retry shortly"),
            _ => None,
        }
    }
}

impl Serialize for ProblemKind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// An operation's error: each route has one enum implementing this, whose
/// `Display` is the detail a client may read for a 4xx.
pub trait ApiError: Error {
    /// Which problem this is.
    fn kind(&self) -> ProblemKind;
}

/// An RFC 9457 problem: the body of every 4xx and 5xx response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub kind: ProblemKind,
    /// What was wrong with this request in particular.
    pub detail: String,
}

#[derive(Serialize)]
struct ProblemBody<'a> {
    #[serde(rename = "type")]
    kind: ProblemKind,
    title: &'static str,
    status: u16,
    detail: &'a str,
}

impl Problem {
    pub fn new(kind: ProblemKind, detail: impl Into<String>) -> Self {
        Self { kind, detail: detail.into() }
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        self.kind.status().as_u16()
    }

    pub fn into_response(self) -> Response<Body> {
        let body =
            ProblemBody { kind: self.kind, title: self.kind.title(), status: self.status(), detail: &self.detail };
        let mut response = Response::builder()
            .status(self.kind.status())
            .header(header::CONTENT_TYPE, "application/problem+json")
            .body(Body::Text(serde_json::to_string(&body).expect("a problem always serialises")))
            .expect("static parts form a valid response");
        if let Some(secs) = self.kind.retry_after() {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// An error and its causes, `a: b: c`, for logs.
pub struct Chain<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(e) = cause {
            write!(f, ": {e}")?;
            cause = e.source();
        }
        Ok(())
    }
}

/// The problem for `err`, logged once: a 5xx with its cause chain (a warning
/// if a retry can cure it, else an error), a 4xx briefly.
///
/// The logged chain goes through [`crate::telemetry::scrub`]: a message may
/// quote the body it refuses, and with it a customer's name or address.
pub fn problem<E: ApiError + 'static>(err: &E) -> Problem {
    let kind = err.kind();
    let error = crate::telemetry::scrubbed(&Chain(err));
    match kind.server_detail() {
        Some(detail) => {
            if kind.is_retryable() {
                tracing::warn!(problem = kind.as_str(), error = %error, "request failed; retryable");
            } else {
                tracing::error!(problem = kind.as_str(), error = %error, "request failed");
            }
            Problem::new(kind, detail)
        }
        None => {
            // Refused credentials are worth a look: a wrong webhook secret
            // refuses every delivery.
            if matches!(kind, ProblemKind::InvalidSignature | ProblemKind::Unauthorized | ProblemKind::Forbidden) {
                tracing::warn!(problem = kind.as_str(), error = %error, "request refused");
            } else {
                tracing::info!(problem = kind.as_str(), error = %error, "request refused");
            }
            Problem::new(kind, err.to_string())
        }
    }
}

/// Runs a handler body and turns its error into a problem response.
pub fn respond<E: ApiError + 'static>(result: Result<Response<Body>, E>) -> Response<Body> {
    result.unwrap_or_else(|e| problem(&e).into_response())
}

impl ApiError for StoreError {
    fn kind(&self) -> ProblemKind {
        match self {
            StoreError::Unavailable { .. } => ProblemKind::ServiceUnavailable,
            StoreError::Corrupt { .. } | StoreError::Failed { .. } => ProblemKind::InternalError,
        }
    }
}

impl ApiError for PaymentError {
    fn kind(&self) -> ProblemKind {
        match self {
            PaymentError::Unavailable(_) => ProblemKind::PaymentProviderUnavailable,
            PaymentError::Rejected(_) | PaymentError::AlreadyRefunded => ProblemKind::PaymentProviderError,
        }
    }
}

impl ApiError for QueueError {
    fn kind(&self) -> ProblemKind {
        ProblemKind::QueueUnavailable
    }
}

/// Implements [`ApiError`] for an operation's error enum: each listed variant
/// wraps an error that is itself an [`ApiError`]; every other variant is
/// mapped by the given match arms.
macro_rules! api_error {
    ($name:ident { wraps: [$($wrapped:ident),* $(,)?] $(, $pat:pat => $kind:expr)* $(,)? }) => {
        impl $crate::api::problem::ApiError for $name {
            fn kind(&self) -> $crate::api::problem::ProblemKind {
                #[allow(unused_imports)]
                use $crate::api::problem::ProblemKind::*;
                match self {
                    $(Self::$wrapped(e) => $crate::api::problem::ApiError::kind(e),)*
                    $($pat => $kind,)*
                }
            }
        }
    };
}
pub(crate) use api_error;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_are_problem_json_with_retry_after_when_retryable() {
        let p = problem(&StoreError::Unavailable { op: "x", source: "down".into() });
        let response = p.into_response();
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/problem+json");
        let body: serde_json::Value = serde_json::from_slice(response.body().as_ref()).unwrap();
        assert_eq!(body["type"], "service_unavailable");
        assert_eq!(body["status"], 503);
        assert!(body["title"].is_string() && body["detail"].is_string());
        let refused = Problem::new(ProblemKind::SlotTaken, "taken").into_response();
        assert!(refused.headers().get(header::RETRY_AFTER).is_none());
    }

    #[test]
    fn internal_failures_do_not_leak_their_cause() {
        let p = problem(&StoreError::Failed { op: "x", source: "secret table name".into() });
        assert_eq!(p.status(), 500);
        assert!(!p.detail.contains("secret"));
    }

    #[test]
    fn only_the_log_line_is_scrubbed_the_client_reads_what_it_sent() {
        let quoted = serde_json::from_str::<u32>(r#""ada@example.com""#).unwrap_err();
        let refused = crate::api::RequestError::InvalidJson(quoted);
        assert!(problem(&refused).detail.contains("ada@example.com"));
    }

    #[test]
    fn chains_show_every_cause() {
        let err = StoreError::Unavailable { op: "place_hold", source: "connection refused".into() };
        assert_eq!(Chain(&err).to_string(), "place_hold: storage unavailable: connection refused");
    }

    #[test]
    fn every_server_kind_has_a_fixed_detail_and_only_those() {
        for &kind in ProblemKind::ALL {
            assert_eq!(kind.server_detail().is_some(), kind.status().is_server_error(), "{kind:?}");
            assert!(kind.status().is_client_error() || kind.status().is_server_error(), "{kind:?}");
            assert!(!kind.as_str().is_empty() && !kind.title().is_empty());
        }
    }
}
