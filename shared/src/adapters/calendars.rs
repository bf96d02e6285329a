//! [`Calendars`]: the one [`Calendar`] handlers hold, handing each call to the
//! adapter the resource's [`CalendarTarget`] names.

use super::caldav::CalDavCalendar;
use super::google::GoogleCalendar;
use crate::domain::{CalendarTarget, ReservationId};
use crate::ports::{BookingEvent, Calendar, CalendarError, DeleteOutcome, FoundEvent, WriteOutcome};
use chrono::{DateTime, Utc};

/// Every calendar adapter, dispatched on the target.
///
/// Google is optional: a deployment without Google credentials still serves
/// CalDAV, and a Google target then fails permanently (`google_not_configured`).
#[derive(Debug, Clone)]
pub struct Calendars {
    pub caldav: CalDavCalendar,
    pub google: Option<GoogleCalendar>,
}

impl Calendars {
    pub fn new(caldav: CalDavCalendar, google: Option<GoogleCalendar>) -> Self {
        Self { caldav, google }
    }

    fn google(&self) -> Result<&GoogleCalendar, CalendarError> {
        self.google.as_ref().ok_or_else(|| CalendarError::Permanent {
            kind: "google_not_configured",
            message: "the resource names a Google calendar but no Google credentials are configured".into(),
        })
    }
}

/// A write or delete for a resource without a calendar: nothing can make it
/// succeed, so it must not be retried.
fn no_calendar() -> CalendarError {
    CalendarError::Permanent { kind: "no_calendar", message: "the resource has no calendar".into() }
}

impl Calendar for Calendars {
    async fn put_event(&self, target: &CalendarTarget, event: &BookingEvent) -> Result<WriteOutcome, CalendarError> {
        match target {
            CalendarTarget::None => Err(no_calendar()),
            CalendarTarget::Caldav { .. } => self.caldav.put_event(target, event).await,
            CalendarTarget::Google { .. } => self.google()?.put_event(target, event).await,
        }
    }

    async fn delete_event(
        &self,
        target: &CalendarTarget,
        reservation_id: &ReservationId,
    ) -> Result<DeleteOutcome, CalendarError> {
        match target {
            CalendarTarget::None => Err(no_calendar()),
            CalendarTarget::Caldav { .. } => self.caldav.delete_event(target, reservation_id).await,
            CalendarTarget::Google { .. } => self.google()?.delete_event(target, reservation_id).await,
        }
    }

    async fn list_events(
        &self,
        target: &CalendarTarget,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<FoundEvent>, CalendarError> {
        match target {
            // No calendar holds no events: reconcile has nothing to compare.
            CalendarTarget::None => Ok(Vec::new()),
            CalendarTarget::Caldav { .. } => self.caldav.list_events(target, from, to).await,
            CalendarTarget::Google { .. } => self.google()?.list_events(target, from, to).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::caldav::CalDavConfig;
    use crate::domain::Customer;

    fn calendars() -> Calendars {
        Calendars::new(CalDavCalendar::new(CalDavConfig::default()).unwrap(), None)
    }

    fn rid() -> ReservationId {
        ReservationId::parse("rsv_demo_20261123T080000_2579e728486449b88d897c1ecf3b632c").unwrap()
    }

    #[tokio::test]
    async fn no_calendar_refuses_writes_and_lists_nothing() {
        let event = BookingEvent {
            reservation_id: rid(),
            summary: "s".into(),
            start: Utc::now(),
            end: Utc::now(),
            customer: Customer::parse("Ada", "ada@example.com").unwrap(),
            description: "d".into(),
            sequence: 0,
        };
        let c = calendars();
        assert_eq!(c.put_event(&CalendarTarget::None, &event).await.unwrap_err().kind(), "no_calendar");
        assert_eq!(c.delete_event(&CalendarTarget::None, &rid()).await.unwrap_err().kind(), "no_calendar");
        assert_eq!(c.list_events(&CalendarTarget::None, Utc::now(), Utc::now()).await.unwrap(), vec![]);
    }

    #[tokio::test]
    async fn google_targets_need_google_credentials() {
        let target = CalendarTarget::Google { calendar_id: "primary".into() };
        let err = calendars().delete_event(&target, &rid()).await.unwrap_err();
        assert_eq!(err.kind(), "google_not_configured");
        assert!(!err.is_transient());
    }
}
