//! # slotguard
//!
//! Paid time-slot booking that cannot double-book. This crate holds everything
//! the Lambda functions share; each function binary in `functions/` only reads
//! its configuration, builds its clients once and hands a handler from here to
//! the Lambda runtime.
//!
//! Layout (every flow is one step from here):
//! - [`domain`]: pure booking rules, no I/O: resources and their hours, the
//!   slot grid (with its DST rules), reservation ids, claims and when a claim
//!   is live, payments and their outcomes, calendar jobs.
//! - [`ports`]: every trait a flow needs from the outside: storage, the payment
//!   provider and its webhooks, the calendar queues, the hosts' calendars.
//! - [`adapters`]: the ports implemented on DynamoDB, SQS, Stripe, CalDAV and
//!   Google Calendar; the only code importing an SDK or HTTP client.
//! - [`api`]: the HTTP routes, one module per route: [`api::reserve`],
//!   [`api::checkout`], [`api::stripe_webhook`], [`api::cancel`],
//!   [`api::availability`], [`api::reservation_status`], [`api::put_resource`];
//!   with [`api::idempotency`], [`api::auth`], and [`api::problem`], the one
//!   place an outcome becomes a status code and a JSON problem body.
//! - [`jobs`]: the queue and schedule consumers, [`jobs::calendar_writer`],
//!   [`jobs::reconcile`], [`jobs::busy_refresh`] and [`jobs::catch_up`] (the
//!   webhook's settlement, fed from Stripe's event list).
//! - [`busy`]: busy time read from the hosts' calendars, cached per resource.
//! - [`config`]: environment variables and client construction, once per process.
//! - [`metrics`] (CloudWatch embedded metric format) and [`telemetry`] (tracing
//!   set up the Lambda runtime's way).
//!
//! The invariant everything is built around: a slot has at most one live
//! claim. A claim is live when it is confirmed, or held with `expires_at` in the
//! future; holds are placed with one conditional `PutItem`, and every read
//! treats an expired hold as free even while DynamoDB's TTL has not deleted it.

pub mod adapters;
pub mod api;
pub mod busy;
pub mod config;
pub mod domain;
pub mod jobs;
pub mod metrics;
pub mod ports;
pub mod telemetry;
#[cfg(test)]
mod testing;

/// Entry points for the cargo-fuzz targets in `fuzz/`: thin wrappers around
/// readers of outside input that are not public. Only with the `fuzzing` feature.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing {
    /// Reads a CalDAV `REPORT` answer as the adapter does: the multistatus,
    /// then each response's calendar data and href. The number of slotguard
    /// events found, or `None` if the body is not a multistatus.
    pub fn caldav_report(body: &str) -> Option<usize> {
        crate::adapters::caldav::read_report(body)
    }
}
