//! Busy time on CalDAV: one `calendar-query` `REPORT` (RFC 4791 §7.8) for
//! the VEVENTs overlapping the window (`time-range`, §9.9), asking the
//! server to expand recurring events into their instances
//! (`<C:expand>`, §9.6.5), then read here:
//! - skipped: `STATUS:CANCELLED`, `TRANSP:TRANSPARENT`, and events carrying
//!   [`MARKER`] with a reservation id of this resource (slotguard's own
//!   booking events; another resource's bookings on a shared calendar are
//!   the host's busy time like any other event);
//! - all-day (`DATE`) and floating times are read in the resource's time
//!   zone, so an all-day event blocks the local day (23 or 25 hours on a
//!   DST day); `TZID` times in their zone;
//! - the end is `DTEND`, else `DTSTART + DURATION`, else the next day for
//!   an all-day event and nothing (zero length) for a timed one (RFC 5545 §3.6.1);
//! - a server that sends an `RRULE` back did not expand: the read fails
//!   (permanent `unexpanded_recurrence`) rather than miss the later instances.

use super::CalDavCalendar;
use super::ics::{ContentLine, unfold, utc_datetime};
use crate::domain::{ReservationId, Resource, ResourceId, Zone};
use crate::ports::{BusyInterval, CalendarError, MARKER};
use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, TimeZone, Utc};

impl CalDavCalendar {
    /// The busy intervals of `resource`'s CalDAV calendar within `[from, to)`.
    pub(crate) async fn busy(
        &self,
        resource: &Resource,
        own: &[ResourceId],
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<BusyInterval>, CalendarError> {
        let collection = self.open(&resource.calendar).await?;
        let responses = self.report(&collection, &busy_query(from, to)).await?;
        let mut busy = Vec::new();
        for data in responses.iter().filter_map(|r| r.calendar_data.as_deref()) {
            let found = busy_in(data, own, &resource.timezone).map_err(|why| CalendarError::Permanent {
                kind: "unexpanded_recurrence",
                message: format!("caldav busy time: {why}"),
            })?;
            busy.extend(found.into_iter().filter(|(s, e)| *s < to && from < *e));
        }
        tracing::debug!(intervals = busy.len(), "caldav: read busy time");
        Ok(busy)
    }
}

/// The `REPORT` body: VEVENTs overlapping `[from, to)`, recurrences
/// expanded into instances within it.
pub(crate) fn busy_query(from: DateTime<Utc>, to: DateTime<Utc>) -> String {
    let (start, end) = (utc_datetime(from), utc_datetime(to));
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
  <D:prop><C:calendar-data><C:expand start="{start}" end="{end}"/></C:calendar-data></D:prop>
  <C:filter>
    <C:comp-filter name="VCALENDAR">
      <C:comp-filter name="VEVENT">
        <C:time-range start="{start}" end="{end}"/>
      </C:comp-filter>
    </C:comp-filter>
  </C:filter>
</C:calendar-query>"#
    )
}

/// The properties of one VEVENT that busy time reads.
#[derive(Default)]
struct VEvent {
    start: Option<ContentLine>,
    end: Option<ContentLine>,
    duration: Option<String>,
    transparent: bool,
    cancelled: bool,
    booking: Option<String>,
    recurring: bool,
}

/// The busy intervals of every VEVENT in one calendar object, for the
/// resource `own` in time zone `zone`. `Err` if the object holds an
/// unexpanded recurrence.
pub fn busy_in(text: &str, own: &[ResourceId], zone: &Zone) -> Result<Vec<BusyInterval>, &'static str> {
    let mut events = Vec::new();
    let mut current: Option<VEvent> = None;
    let mut nested = 0usize;
    for line in unfold(text) {
        let Some(cl) = ContentLine::parse(line.trim_end()) else { continue };
        let upper = cl.value.trim().to_ascii_uppercase();
        match (cl.name.as_str(), current.as_mut()) {
            ("BEGIN", None) if upper == "VEVENT" => current = Some(VEvent::default()),
            ("BEGIN", Some(_)) => nested += 1,
            ("END", Some(_)) if nested > 0 => nested -= 1,
            ("END", Some(_)) if upper == "VEVENT" => events.extend(current.take()),
            (_, Some(ev)) if nested == 0 => match cl.name.as_str() {
                "DTSTART" => ev.start = Some(cl),
                "DTEND" => ev.end = Some(cl),
                "DURATION" => ev.duration = Some(upper),
                "TRANSP" => ev.transparent = upper == "TRANSPARENT",
                "STATUS" => ev.cancelled = upper == "CANCELLED",
                "RRULE" | "RDATE" => ev.recurring = true,
                name if name == MARKER => ev.booking = Some(cl.value.trim().to_owned()),
                _ => {}
            },
            _ => {}
        }
    }
    let mut busy = Vec::new();
    for ev in events {
        if ev.recurring {
            return Err("the server returned a recurring event unexpanded");
        }
        let own_booking = ev
            .booking
            .as_deref()
            .and_then(ReservationId::parse)
            .is_some_and(|rid| own.contains(&rid.slot_key().resource_id));
        if ev.cancelled || ev.transparent || own_booking {
            continue;
        }
        let Some((start, all_day)) = ev.start.as_ref().and_then(|l| instant(l, zone)) else { continue };
        let end = match (&ev.end, &ev.duration) {
            (Some(l), _) => instant(l, zone).map(|(t, _)| t),
            (None, Some(d)) => parse_duration(d).map(|d| start + d),
            (None, None) if all_day => {
                let date = start.with_timezone(zone).date_naive();
                date.succ_opt().and_then(|next| local_midnight(next, zone))
            }
            (None, None) => Some(start),
        };
        if let Some(end) = end.filter(|e| *e > start) {
            busy.push((start, end));
        }
    }
    Ok(busy)
}

/// A DTSTART/DTEND value as an instant, and whether it was a DATE.
fn instant(line: &ContentLine, zone: &Zone) -> Option<(DateTime<Utc>, bool)> {
    let value = line.value.trim();
    if let Some(utc) = value.strip_suffix('Z').or_else(|| value.strip_suffix('z')) {
        return NaiveDateTime::parse_from_str(utc, "%Y%m%dT%H%M%S").ok().map(|t| (t.and_utc(), false));
    }
    if let Ok(local) = NaiveDateTime::parse_from_str(value, "%Y%m%dT%H%M%S") {
        let tz = match line.param("TZID") {
            Some(tzid) => tzid.trim_start_matches('/').parse::<Zone>().ok()?,
            // Floating time: the host's wall clock.
            None => zone.clone(),
        };
        return local_instant(local, &tz).map(|t| (t, false));
    }
    let date = NaiveDate::parse_from_str(value, "%Y%m%d").ok()?;
    local_midnight(date, zone).map(|t| (t, true))
}

/// A local time as an instant: the earlier of a repeated time, and for a
/// time skipped by a DST change the first instant after the gap.
fn local_instant(local: NaiveDateTime, zone: &Zone) -> Option<DateTime<Utc>> {
    (0..=4).find_map(|quarter| {
        zone.from_local_datetime(&(local + Duration::minutes(15 * quarter))).earliest().map(|t| t.with_timezone(&Utc))
    })
}

pub(crate) fn local_midnight(date: NaiveDate, zone: &Zone) -> Option<DateTime<Utc>> {
    local_instant(date.and_hms_opt(0, 0, 0)?, zone)
}

/// An RFC 5545 §3.3.6 duration (`PT1H30M`, `P1D`, `P2W`), non-negative.
fn parse_duration(text: &str) -> Option<Duration> {
    let body = text.trim().strip_prefix('+').unwrap_or(text.trim()).strip_prefix('P')?;
    let (mut total, mut number, mut in_time) = (Duration::zero(), String::new(), false);
    for c in body.chars() {
        match c {
            '0'..='9' => number.push(c),
            'T' if number.is_empty() => in_time = true,
            unit => {
                let n: i64 = number.parse().ok()?;
                number.clear();
                total += match (unit, in_time) {
                    ('W', false) => Duration::weeks(n),
                    ('D', false) => Duration::days(n),
                    ('H', true) => Duration::hours(n),
                    ('M', true) => Duration::minutes(n),
                    ('S', true) => Duration::seconds(n),
                    _ => return None,
                };
            }
        }
    }
    number.is_empty().then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn cal(events: &[&str]) -> String {
        let mut out = String::from("BEGIN:VCALENDAR\r\nVERSION:2.0\r\n");
        for e in events {
            out.push_str(&format!("BEGIN:VEVENT\r\nUID:x\r\n{}\r\nEND:VEVENT\r\n", e.replace('\n', "\r\n")));
        }
        out + "END:VCALENDAR\r\n"
    }

    fn own() -> ResourceId {
        ResourceId::parse("room-1").unwrap()
    }

    fn berlin() -> Zone {
        "Europe/Berlin".parse().unwrap()
    }

    fn busy(events: &[&str]) -> Vec<BusyInterval> {
        busy_in(&cal(events), &[own()], &berlin()).unwrap()
    }

    #[test]
    fn opaque_events_are_busy_in_every_time_form() {
        assert_eq!(
            busy(&["DTSTART:20261123T080000Z\nDTEND:20261123T090000Z"]),
            vec![(at("2026-11-23T08:00:00Z"), at("2026-11-23T09:00:00Z"))]
        );
        assert_eq!(
            busy(&["DTSTART;TZID=America/New_York:20261123T080000\nDURATION:PT1H30M"]),
            vec![(at("2026-11-23T13:00:00Z"), at("2026-11-23T14:30:00Z"))]
        );
        // Floating: the resource's wall clock.
        assert_eq!(
            busy(&["DTSTART:20261123T090000\nDTEND:20261123T100000"]),
            vec![(at("2026-11-23T08:00:00Z"), at("2026-11-23T09:00:00Z"))]
        );
        assert_eq!(
            busy(&["DTSTART:20261123T080000Z\nTRANSP:OPAQUE\nSTATUS:TENTATIVE\nDURATION:P1W"]),
            vec![(at("2026-11-23T08:00:00Z"), at("2026-11-30T08:00:00Z"))]
        );
        assert_eq!(busy(&["DTSTART:20261123T080000Z"]), vec![], "a timed event without an end takes no time");
    }

    #[test]
    fn all_day_events_block_the_local_day_dst_included() {
        assert_eq!(
            busy(&["DTSTART;VALUE=DATE:20261123\nDTEND;VALUE=DATE:20261124"]),
            vec![(at("2026-11-22T23:00:00Z"), at("2026-11-23T23:00:00Z"))]
        );
        assert_eq!(
            busy(&["DTSTART;VALUE=DATE:20261025"]),
            vec![(at("2026-10-24T22:00:00Z"), at("2026-10-25T23:00:00Z"))],
            "25 hours on the day summer time ends"
        );
    }

    #[test]
    fn cancelled_transparent_and_own_events_are_not_busy() {
        let rid = "rsv_room-1_20261123T080000_2579e728486449b88d897c1ecf3b632c";
        let other = "rsv_room-2_20261123T080000_2579e728486449b88d897c1ecf3b632c";
        let timed = "DTSTART:20261123T080000Z\nDTEND:20261123T090000Z";
        assert_eq!(busy(&[&format!("{timed}\nSTATUS:CANCELLED")]), vec![]);
        assert_eq!(busy(&[&format!("{timed}\nTRANSP:TRANSPARENT")]), vec![]);
        assert_eq!(busy(&[&format!("{timed}\n{MARKER}:{rid}")]), vec![]);
        assert_eq!(busy(&[&format!("{timed}\n{MARKER}:{other}")]).len(), 1, "another resource's booking is busy");
        assert_eq!(busy(&[&format!("{timed}\n{MARKER}:not-an-id")]).len(), 1);
        let alarm = format!("{timed}\nBEGIN:VALARM\nTRIGGER:-PT5M\nSTATUS:CANCELLED\nEND:VALARM");
        assert_eq!(busy(&[&alarm]).len(), 1, "a VALARM's properties are not the event's");
    }

    #[test]
    fn expanded_instances_are_each_busy_and_unexpanded_rules_fail() {
        let instances = busy(&[
            "DTSTART:20261123T080000Z\nDTEND:20261123T090000Z\nRECURRENCE-ID:20261123T080000Z",
            "DTSTART:20261130T080000Z\nDTEND:20261130T090000Z\nRECURRENCE-ID:20261130T080000Z",
        ]);
        assert_eq!(instances.len(), 2);
        let master = cal(&["DTSTART:20261123T080000Z\nDTEND:20261123T090000Z\nRRULE:FREQ=WEEKLY;COUNT=3"]);
        assert!(busy_in(&master, &[own()], &berlin()).is_err());
    }

    #[test]
    fn durations_follow_rfc_5545() {
        assert_eq!(parse_duration("PT1H30M"), Some(Duration::minutes(90)));
        assert_eq!(parse_duration("P1DT2H"), Some(Duration::hours(26)));
        assert_eq!(parse_duration("+P2W"), Some(Duration::weeks(2)));
        assert_eq!(parse_duration("PT15"), None);
        assert_eq!(parse_duration("1H"), None);
        assert_eq!(parse_duration("P1H"), None);
    }

    #[test]
    fn the_query_expands_over_the_window_in_utc() {
        let q = busy_query(at("2026-11-23T00:00:00+01:00"), at("2026-11-24T00:00:00Z"));
        assert!(q.contains(r#"<C:expand start="20261122T230000Z" end="20261124T000000Z"/>"#), "{q}");
        assert!(q.contains(r#"<C:time-range start="20261122T230000Z" end="20261124T000000Z"/>"#), "{q}");
    }
}
