//! Hosts' calendars: the port every calendar adapter implements
//! ([`adapters::caldav`](crate::adapters::caldav), [`adapters::google`](crate::adapters::google),
//! and [`adapters::calendars`](crate::adapters::calendars), which picks the one a
//! resource's [`CalendarTarget`] names).
//!
//! Events are keyed by the booking: the event id (CalDAV href and UID, Google
//! event id) is derived from the reservation id, so writing the same booking
//! twice finds the first event instead of making a second one, a rescheduled
//! booking moves its event instead of leaving a copy at the old time, and
//! deleting it needs nothing but the reservation id.

use crate::domain::{CalendarTarget, Customer, ReservationId};
use chrono::{DateTime, Utc};
use std::future::Future;

/// Marks events slotguard wrote (an `X-` property on CalDAV, a private
/// extended property on Google), so reconcile never touches anything else.
pub const MARKER: &str = "X-SLOTGUARD-BOOKING";

/// A booking as it appears on the host's calendar.
#[derive(Debug, Clone, PartialEq)]
pub struct BookingEvent {
    pub reservation_id: ReservationId,
    /// E.g. "Demo coaching call: Ada Lovelace".
    pub summary: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// Added as the event's attendee.
    pub customer: Customer,
    /// Free text; contains the reservation id.
    pub description: String,
    /// The booking's version: 0 when it is confirmed, one more per
    /// reschedule. Written as the iCalendar `SEQUENCE` (RFC 5545 §3.8.7.4),
    /// which attendees' calendar clients compare to accept an update instead
    /// of ignoring it as stale.
    pub sequence: u32,
}

/// A slotguard event found on a calendar.
#[derive(Debug, Clone, PartialEq)]
pub struct FoundEvent {
    pub reservation_id: ReservationId,
    /// Where the event lives: the CalDAV href or the Google event id.
    pub event_ref: String,
    pub start: DateTime<Utc>,
    /// The end, when the calendar gave one slotguard can read.
    pub end: Option<DateTime<Utc>>,
}

/// What a write did. Every variant is a success: the calendar now holds the
/// booking's event, as written, at `event_ref`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOutcome {
    /// The event was not on the calendar and now is (including a deleted
    /// event an adapter brought back under its old id).
    Created { event_ref: String },
    /// The event was there and its content was replaced by the one written.
    /// Adapters that cannot cheaply tell whether the content differed (CalDAV)
    /// report this for a rewrite of identical content too.
    Updated { event_ref: String },
    /// The event was there with exactly this content; nothing was written.
    Unchanged { event_ref: String },
}

impl WriteOutcome {
    /// Where the event lives: the CalDAV href or the Google event id.
    pub fn event_ref(&self) -> &str {
        match self {
            Self::Created { event_ref } | Self::Updated { event_ref } | Self::Unchanged { event_ref } => event_ref,
        }
    }
}

/// What a delete did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteOutcome {
    Deleted,
    /// Nothing was there (404/410): success.
    AlreadyGone,
}

/// Why a calendar call failed, classified by what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    /// 429, 5xx, timeouts, refused connections: retry with backoff.
    #[error("calendar temporarily unavailable ({kind}): {message}")]
    Transient { kind: &'static str, message: String },
    /// Any other 4xx (bad credentials, calendar not found, ...): retrying
    /// will not help; the job goes to the dead-letter queue at once.
    #[error("calendar refused the request ({kind}): {message}")]
    Permanent { kind: &'static str, message: String },
}

impl CalendarError {
    /// A short label for metrics and logs: `timeout`, `http_429`, `http_503`, `http_401`, ...
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Transient { kind, .. } | Self::Permanent { kind, .. } => kind,
        }
    }

    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transient { .. })
    }
}

/// A calendar slotguard can write booking events to.
pub trait Calendar: Send + Sync {
    /// Writes the booking's event: creates it, or replaces the one already
    /// there under the booking's event id (an idempotent upsert). After `Ok`
    /// the calendar holds exactly one event for the booking, under the same
    /// event id (CalDAV href and UID, Google event id) as any earlier write,
    /// whose start, end, summary, description, attendee and sequence are
    /// those of `event`: a rescheduled booking's event moves, a redelivered
    /// write changes nothing, and an event the host edited or deleted by hand
    /// is put back as the booking says.
    fn put_event(
        &self,
        target: &CalendarTarget,
        event: &BookingEvent,
    ) -> impl Future<Output = Result<WriteOutcome, CalendarError>> + Send;
    /// Deletes the booking's event if it exists (idempotent).
    fn delete_event(
        &self,
        target: &CalendarTarget,
        reservation_id: &ReservationId,
    ) -> impl Future<Output = Result<DeleteOutcome, CalendarError>> + Send;
    /// The slotguard events (those carrying [`MARKER`]) starting in `[from, to)`.
    fn list_events(
        &self,
        target: &CalendarTarget,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<FoundEvent>, CalendarError>> + Send;
}

/// Checks a resource's calendar target before the resource is saved: where
/// its requests would go and which credentials it names. The deployment's
/// rules (an outbound URL policy, a secret name prefix) live in the
/// implementation ([`adapters::calendars::CalendarTargetRules`](crate::adapters::calendars::CalendarTargetRules)).
pub trait CalendarTargetCheck: Send + Sync {
    /// `Ok` if the target may be saved; the error is the refusal the admin reads.
    fn check_target(
        &self,
        target: &CalendarTarget,
    ) -> impl Future<Output = Result<(), crate::domain::ResourceError>> + Send;
}
