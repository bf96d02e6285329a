//! Consumers of queues and schedules (the HTTP routes are in [`crate::api`]).
//!
//! - [`calendar_writer`]: takes calendar jobs off the SQS queue and writes or
//!   deletes the booking's event, retrying with backoff and parking jobs that
//!   keep failing on the dead-letter queue.
//! - [`busy_refresh`]: on a schedule, reads the calendars of resources with
//!   busy time enabled into their cached busy time.
//! - [`reconcile`]: on a schedule, compares each resource's calendar with its
//!   bookings and repairs the difference.
//! - [`catch_up`]: on a schedule, reads Stripe's Checkout Session events back
//!   and settles them as the webhook does, so a paid session settles even if
//!   no webhook ever arrives.

pub mod busy_refresh;
pub mod calendar_writer;
pub mod catch_up;
pub mod reconcile;

#[cfg(test)]
mod catch_up_tests;
#[cfg(test)]
mod job_tests;
