//! Where the catch-up ([`crate::jobs::catch_up`]) has settled Stripe's
//! Checkout Session events up to: one cursor in the table.

use super::StoreError;
use chrono::{DateTime, Utc};
use std::future::Future;

/// An event a run settled, as the cursor remembers it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SettledEvent {
    /// Whole seconds, as Stripe gives it.
    pub created: DateTime<Utc>,
    pub event_id: String,
}

/// How far the catch-up got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventCursor {
    /// The `created` time of the newest event settled: every event listed
    /// before it was settled without error, in order.
    pub settled_through: DateTime<Utc>,
    /// The events settled whose `created` is within the catch-up's overlap
    /// before `settled_through`, oldest first: a run reads that overlap
    /// again (for events listed late) and skips these, so an event is not
    /// settled again on every run while no newer one comes.
    pub recent: Vec<SettledEvent>,
    /// When the run that wrote it started.
    pub moved_at: DateTime<Utc>,
    /// How often it was written; kept by the store (what a write's
    /// condition compares), ignored in what a caller asks to write.
    pub revision: u64,
}

/// The catch-up's cursor.
pub trait CursorStore: Send + Sync {
    /// The cursor as stored (one consistent read); `None` before the first
    /// run that settled an event.
    fn event_cursor(&self) -> impl Future<Output = Result<Option<EventCursor>, StoreError>> + Send;
    /// Replaces the cursor `read` (what [`Self::event_cursor`] returned;
    /// `None`: there was none) by `to`, only if it is still exactly `read`
    /// (same revision) and `to` does not move it back: two runs that read
    /// the same cursor cannot both write, so a slower one never undoes a
    /// faster one's. `Ok(false)` if another run wrote first, or `to` is
    /// earlier than `read` (nothing written).
    fn advance_event_cursor(
        &self,
        read: Option<&EventCursor>,
        to: &EventCursor,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}
