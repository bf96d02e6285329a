//! # slotguard
//!
//! Paid time-slot booking that cannot double-book. This crate holds everything
//! the Lambda functions share; each function binary in `functions/` only reads
//! its configuration, builds its clients once and hands a handler from here to
//! the Lambda runtime.
//!
//! Layout:
//! - [`domain`]: pure booking logic: resources, the slot grid (with its DST
//!   rules), reservation ids, claims and when a claim is live.
//! - [`ports`]: the traits handlers need from storage, one per concern.
//! - [`dynamo`]: the DynamoDB adapter implementing every port on one table,
//!   with the item layout in [`dynamo::items`].
//! - [`api`]: one module per HTTP route, the idempotency wrapper, and
//!   [`api::Problem`], the one place outcomes become status codes.
//! - [`config`]: environment variables and client construction.
//! - [`telemetry`]: tracing set up the Lambda runtime's way.
//!
//! The invariant everything is built around: a slot has at most one live
//! claim. A claim is live when it is confirmed, or held with `expires_at` in the
//! future; holds are placed with one conditional `PutItem`, and every read
//! treats an expired hold as free even while DynamoDB's TTL has not deleted it.

pub mod api;
pub mod calendar;
pub mod calendar_writer;
pub mod config;
pub mod domain;
pub mod dynamo;
pub mod metrics;
pub mod ports;
pub mod reconcile;
pub mod sqs;
pub mod stripe;
pub mod telemetry;

/// Entry points for the cargo-fuzz targets in `fuzz/`: thin wrappers around
/// readers of outside input that are not public. Only with the `fuzzing` feature.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing {
    /// Reads a CalDAV `REPORT` answer as the adapter does: the multistatus,
    /// then each response's calendar data and href. The number of slotguard
    /// events found, or `None` if the body is not a multistatus.
    pub fn caldav_report(body: &str) -> Option<usize> {
        use crate::calendar::{caldav, ics, xml};
        let collection = reqwest::Url::parse("https://dav.example.com/calendars/me/work/").expect("a valid URL");
        let responses = xml::parse_multistatus(body).ok()?;
        let mut found = 0;
        for response in responses {
            if let Some(data) = &response.calendar_data {
                let _ = ics::parse_event(data);
            }
            found += usize::from(caldav::found_event(&collection, response).is_some());
        }
        Some(found)
    }
}
