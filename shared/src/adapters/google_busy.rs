//! Busy time on Google Calendar: `events.list` over the window with
//! `singleEvents=true` (recurring events come as their instances), paged.
//!
//! `events.list` rather than `freeBusy.query`: free/busy answers merged
//! periods without the events, so slotguard's own booking events (which the
//! host's other tools must see as busy) could not be told apart; the event
//! list carries their private extended property, and needs no scope beyond
//! the `calendar.events` one slotguard writes with.
//!
//! Skipped: `status: cancelled`, `transparency: transparent`, invitations the
//! calendar's owner declined (`attendees[self].responseStatus: declined`),
//! and events carrying [`BOOKING_PROPERTY`] with a reservation id of this
//! resource. All-day events (`date`) block the local day in the resource's
//! time zone.

use super::{ApiTime, BOOKING_PROPERTY, ExtendedProperties, GoogleCalendar, calendar_id};
use crate::adapters::caldav::busy::local_midnight;
use crate::domain::{ReservationId, Resource, ResourceId, Zone};
use crate::ports::{BusyInterval, CalendarError};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;

/// The fields a busy read needs (Google's partial response syntax).
const FIELDS: &str =
    "nextPageToken,items(status,transparency,start,end,extendedProperties/private,attendees(self,responseStatus))";

impl GoogleCalendar {
    /// The busy intervals of `resource`'s Google calendar within `[from, to)`.
    pub(crate) async fn busy(
        &self,
        resource: &Resource,
        own: &[ResourceId],
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<BusyInterval>, CalendarError> {
        let calendar_id = calendar_id(&resource.calendar)?;
        let account = self.account(&resource.calendar).await?;
        let items: Vec<BusyItem> =
            self.events_between("google busy", &account, calendar_id, from, to, Some(FIELDS)).await?;
        Ok(items
            .iter()
            .filter_map(|item| busy_interval(item, own, &resource.timezone))
            .filter(|(s, e)| *s < to && from < *e)
            .collect())
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BusyItem {
    status: Option<String>,
    transparency: Option<String>,
    start: Option<ApiTime>,
    end: Option<ApiTime>,
    extended_properties: Option<ExtendedProperties>,
    #[serde(default)]
    attendees: Vec<Attendee>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Attendee {
    #[serde(default, rename = "self")]
    is_self: bool,
    response_status: Option<String>,
}

/// The busy interval of one listed event, if it makes the host busy.
fn busy_interval(item: &BusyItem, own: &[ResourceId], zone: &Zone) -> Option<BusyInterval> {
    if item.status.as_deref() == Some("cancelled") || item.transparency.as_deref() == Some("transparent") {
        return None;
    }
    if item.attendees.iter().any(|a| a.is_self && a.response_status.as_deref() == Some("declined")) {
        return None;
    }
    let marker = item.extended_properties.as_ref().and_then(|p| p.private.get(BOOKING_PROPERTY));
    if marker.and_then(|m| ReservationId::parse(m.trim())).is_some_and(|rid| own.contains(&rid.slot_key().resource_id))
    {
        return None;
    }
    let (start, end) = (instant(item.start.as_ref()?, zone)?, instant(item.end.as_ref()?, zone)?);
    (start < end).then_some((start, end))
}

fn instant(time: &ApiTime, zone: &Zone) -> Option<DateTime<Utc>> {
    if let Some(dt) = &time.date_time {
        return DateTime::parse_from_rfc3339(dt).ok().map(|t| t.with_timezone(&Utc));
    }
    local_midnight(NaiveDate::parse_from_str(time.date.as_deref()?, "%Y-%m-%d").ok()?, zone)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn read(item: serde_json::Value) -> Option<BusyInterval> {
        let item: BusyItem = serde_json::from_value(item).unwrap();
        busy_interval(&item, &[ResourceId::parse("room-1").unwrap()], &"Europe/Berlin".parse().unwrap())
    }

    #[test]
    fn listed_events_are_busy_unless_free_cancelled_declined_or_own() {
        let timed = json!({
            "start": {"dateTime": "2026-11-23T09:00:00+01:00"},
            "end": {"dateTime": "2026-11-23T10:00:00+01:00"}
        });
        let with = |extra: serde_json::Value| {
            let mut item = timed.clone();
            item.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            item
        };
        assert_eq!(read(timed.clone()), Some((at("2026-11-23T08:00:00Z"), at("2026-11-23T09:00:00Z"))));
        assert_eq!(read(with(json!({"status": "cancelled"}))), None);
        assert_eq!(read(with(json!({"transparency": "transparent"}))), None);
        assert!(read(with(json!({"transparency": "opaque", "status": "tentative"}))).is_some());
        assert_eq!(read(with(json!({"attendees": [{"self": true, "responseStatus": "declined"}]}))), None);
        assert!(read(with(json!({"attendees": [{"responseStatus": "declined"}]}))).is_some());
        let own = "rsv_room-1_20261123T080000_2579e728486449b88d897c1ecf3b632c";
        let other = "rsv_room-2_20261123T080000_2579e728486449b88d897c1ecf3b632c";
        assert_eq!(read(with(json!({"extendedProperties": {"private": {BOOKING_PROPERTY: own}}}))), None);
        assert!(read(with(json!({"extendedProperties": {"private": {BOOKING_PROPERTY: other}}}))).is_some());
    }

    #[test]
    fn all_day_events_block_the_local_day() {
        let item = json!({"start": {"date": "2026-11-23"}, "end": {"date": "2026-11-24"}});
        assert_eq!(read(item), Some((at("2026-11-22T23:00:00Z"), at("2026-11-23T23:00:00Z"))));
    }
}
