//! [`BusySource`] on [`Calendars`]: the resource's own calendar target
//! picks the adapter ([`caldav::busy`](super::caldav::busy), Google's
//! `events.list`), with the same HTTP client, credentials and outbound
//! policy as the calendar writes.

use super::calendars::Calendars;
use crate::domain::{CalendarTarget, Resource, ResourceId};
use crate::ports::{BusyInterval, BusySource, CalendarError};
use chrono::{DateTime, Utc};

impl BusySource for Calendars {
    async fn busy_intervals(
        &self,
        resource: &Resource,
        own: &[ResourceId],
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<BusyInterval>, CalendarError> {
        match &resource.calendar {
            CalendarTarget::None => Err(CalendarError::Permanent {
                kind: "no_calendar",
                message: "busy time needs a calendar to read".into(),
            }),
            CalendarTarget::Caldav { .. } => self.caldav.busy(resource, own, from, to).await,
            CalendarTarget::Google { .. } => match &self.google {
                Some(google) => google.busy(resource, own, from, to).await,
                None => Err(CalendarError::Permanent {
                    kind: "google_not_configured",
                    message: "the resource names a Google calendar but no Google OAuth client is configured".into(),
                }),
            },
        }
    }
}
