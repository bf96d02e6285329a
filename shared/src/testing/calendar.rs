//! [`MemoryCalendar`]: hosts' calendars in memory, keyed by their target.

use super::{Faults, lock};
use crate::domain::{CalendarTarget, ReservationId};
use crate::ports::{BookingEvent, Calendar, CalendarError, DeleteOutcome, FoundEvent, WriteOutcome};
use chrono::{DateTime, Utc};
use std::sync::Mutex;

/// An event on one of the calendars.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StoredEvent {
    pub target: CalendarTarget,
    pub event_ref: String,
    /// The event as last written: a rewrite (a reschedule) replaces its
    /// start, end, sequence and the rest.
    pub event: BookingEvent,
}

/// Calendars in memory. Like the adapters, an event's reference derives from
/// its booking, so writing a booking again finds its event and replaces its
/// content in place (an upsert: [`WriteOutcome::Updated`], or
/// [`WriteOutcome::Unchanged`] when it already said the same, as the Google
/// adapter reports), and deleting needs nothing but the reservation id.
#[derive(Default)]
pub(crate) struct MemoryCalendar {
    events: Mutex<Vec<StoredEvent>>,
    faults: Faults<CalendarError>,
}

/// The deterministic reference of a booking's event.
pub(crate) fn event_ref(id: &ReservationId) -> String {
    format!("{id}.ics")
}

impl MemoryCalendar {
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes the next call of `op` (`put_event`, `delete_event`, `list_events`) fail with `error`.
    pub fn fail_next(&self, op: &'static str, error: CalendarError) {
        self.faults.push(op, error);
    }

    /// Puts an event on `target` as it is, even a second one for the same
    /// booking (setting up a test: drift a person or a bug left behind).
    pub fn insert(&self, target: &CalendarTarget, event: BookingEvent) {
        let mut events = lock(&self.events);
        let copies = events.iter().filter(|e| e.event.reservation_id == event.reservation_id).count();
        let event_ref = match copies {
            0 => event_ref(&event.reservation_id),
            n => format!("{}-copy-{n}", event_ref(&event.reservation_id)),
        };
        events.push(StoredEvent { target: target.clone(), event_ref, event });
    }

    /// Every event on every calendar.
    pub fn events(&self) -> Vec<StoredEvent> {
        lock(&self.events).clone()
    }
}

impl Calendar for MemoryCalendar {
    async fn put_event(&self, target: &CalendarTarget, event: &BookingEvent) -> Result<WriteOutcome, CalendarError> {
        self.faults.take("put_event")?;
        let mut events = lock(&self.events);
        let event_ref = event_ref(&event.reservation_id);
        if let Some(stored) = events.iter_mut().find(|e| &e.target == target && e.event_ref == event_ref) {
            if stored.event == *event {
                return Ok(WriteOutcome::Unchanged { event_ref });
            }
            stored.event = event.clone();
            return Ok(WriteOutcome::Updated { event_ref });
        }
        events.push(StoredEvent { target: target.clone(), event_ref: event_ref.clone(), event: event.clone() });
        Ok(WriteOutcome::Created { event_ref })
    }

    async fn delete_event(
        &self,
        target: &CalendarTarget,
        reservation_id: &ReservationId,
    ) -> Result<DeleteOutcome, CalendarError> {
        self.faults.take("delete_event")?;
        let mut events = lock(&self.events);
        let event_ref = event_ref(reservation_id);
        let before = events.len();
        events.retain(|e| !(&e.target == target && e.event_ref == event_ref));
        Ok(if events.len() < before { DeleteOutcome::Deleted } else { DeleteOutcome::AlreadyGone })
    }

    async fn list_events(
        &self,
        target: &CalendarTarget,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<FoundEvent>, CalendarError> {
        self.faults.take("list_events")?;
        Ok(lock(&self.events)
            .iter()
            .filter(|e| &e.target == target && from <= e.event.start && e.event.start < to)
            .map(|e| FoundEvent {
                reservation_id: e.event.reservation_id.clone(),
                event_ref: e.event_ref.clone(),
                start: e.event.start,
                end: Some(e.event.end),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Customer;
    use crate::testing::at;

    #[tokio::test]
    async fn writing_a_booking_again_replaces_its_event_in_place() {
        let target = CalendarTarget::caldav("https://dav.example.com/cal/");
        let rid = ReservationId::parse("rsv_demo_20261123T080000_2579e728486449b88d897c1ecf3b632c").unwrap();
        let event = BookingEvent {
            reservation_id: rid.clone(),
            summary: "s".into(),
            start: at("2026-11-23T08:00:00Z"),
            end: at("2026-11-23T08:30:00Z"),
            customer: Customer::parse("Ada", "ada@example.com").unwrap(),
            description: "d".into(),
            sequence: 0,
        };
        let calendar = MemoryCalendar::new();
        let event_ref = event_ref(&rid);
        assert_eq!(
            calendar.put_event(&target, &event).await,
            Ok(WriteOutcome::Created { event_ref: event_ref.clone() })
        );
        assert_eq!(
            calendar.put_event(&target, &event).await,
            Ok(WriteOutcome::Unchanged { event_ref: event_ref.clone() })
        );
        let moved =
            BookingEvent { start: at("2026-11-24T10:00:00Z"), end: at("2026-11-24T11:00:00Z"), sequence: 1, ..event };
        assert_eq!(
            calendar.put_event(&target, &moved).await,
            Ok(WriteOutcome::Updated { event_ref: event_ref.clone() })
        );
        let events = calendar.events();
        assert_eq!(events.len(), 1);
        assert_eq!((&events[0].event_ref, &events[0].event), (&event_ref, &moved));
    }
}
