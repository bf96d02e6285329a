//! In-memory fakes of every port, and the `events/` fixtures as requests, for
//! fast unit tests of the handlers and jobs (the integration tests in
//! `tests/it` run the same handlers against the real local stack).
//!
//! - [`MemoryStore`]: every storage trait, on maps behind one lock, with the
//!   conditions and transactions of the DynamoDB adapter.
//! - [`MemoryPayments`]: Checkout Sessions and refunds, idempotent per key
//!   like Stripe; webhooks are read by the real
//!   [`WebhookVerifier`](crate::adapters::stripe::WebhookVerifier) with
//!   [`WEBHOOK_SECRET`].
//! - [`MemoryQueue`]: the calendar queue and its dead-letter queue.
//! - [`MemoryCalendar`]: one or more calendars, keyed by their target.
//! - [`Fixture`]: an `events/` file, edited and turned into what a handler or job takes.
//!
//! Every fake can be told to fail its next call of one operation
//! (`fail_next("place_hold", ...)`); a scripted failure that never happens
//! fails the test, so a misspelt operation cannot pass unnoticed.

mod calendar;
mod fixtures;
mod payments;
mod queue;
mod store;

pub(crate) use calendar::*;
pub(crate) use fixtures::*;
pub(crate) use payments::*;
pub(crate) use queue::*;
pub(crate) use store::*;

use chrono::{DateTime, Utc};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Failures scripted for a fake's next calls, by operation (the port
/// method's name), first scripted first.
pub(crate) struct Faults<E> {
    pending: Mutex<Vec<(&'static str, E)>>,
}

impl<E> Default for Faults<E> {
    fn default() -> Self {
        Self { pending: Mutex::new(Vec::new()) }
    }
}

impl<E> Faults<E> {
    /// Makes the next call of `op` fail with `error`.
    pub(crate) fn push(&self, op: &'static str, error: E) {
        lock(&self.pending).push((op, error));
    }

    /// The failure scripted for this call of `op`, if any.
    pub(crate) fn take(&self, op: &str) -> Result<(), E> {
        let mut pending = lock(&self.pending);
        match pending.iter().position(|(o, _)| *o == op) {
            Some(i) => Err(pending.remove(i).1),
            None => Ok(()),
        }
    }
}

impl<E> Drop for Faults<E> {
    fn drop(&mut self) {
        let left: Vec<&str> = lock(&self.pending).iter().map(|(op, _)| *op).collect();
        if !left.is_empty() && !std::thread::panicking() {
            panic!("scripted failures never happened: {left:?}");
        }
    }
}

/// Locks a fake's state; a test that panicked while holding it has already failed.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// An RFC 3339 instant.
pub(crate) fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).expect("an RFC 3339 instant").with_timezone(&Utc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(expected = "scripted failures never happened: [\"plac_hold\"]")]
    fn a_scripted_failure_that_never_happens_fails_the_test() {
        let store = MemoryStore::new();
        store.fail_next("plac_hold", unavailable("place_hold"));
    }
}
