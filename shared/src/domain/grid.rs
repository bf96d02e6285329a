//! The slot grid: which instants a resource can be booked at.
//!
//! Opening hours are local wall-clock times (a date override replaces its
//! weekday's hours). For a booking type and one of its durations, each opening
//! interval offers a start every `start_interval_minutes` from its start; a
//! slot that would run past the end of its interval is not offered. Local times are turned into instants with
//! the resource's timezone, which makes two DST rules necessary:
//!
//! - a local start time that does not exist (the hour skipped when clocks go
//!   forward) is not offered;
//! - a local start time that exists twice (the hour repeated when clocks go
//!   back) is offered once, at its first occurrence;
//! - a slot still running when the wall clock first reads its nominal end is
//!   not offered: across the skipped hour its real minutes end later on the
//!   wall clock, past closing time or into the next slot.
//!
//! A slot always lasts exactly its duration of real time, and starts on the
//! UTC cell grid ([`super::booking_type::CELL_MINUTES`]).

use super::booking_type::{BookingType, on_cell_grid};
use super::resource::{OpeningInterval, Resource};
use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDate, TimeZone, Utc};

/// One bookable slot, as instants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Slot {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// Why a requested start is not a slot of the resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GridError {
    #[error("the start is inside opening hours but not on the slot grid")]
    OffGrid,
    #[error("the start is outside the resource's opening hours")]
    OutsideHours,
}

impl Resource {
    /// The opening intervals of a local date: its override if it has one, else its weekday's.
    pub fn hours_on(&self, date: NaiveDate) -> &[OpeningInterval] {
        match self.date_overrides.get(&date) {
            Some(hours) => hours,
            None => &self.weekly_hours[date.weekday().num_days_from_monday() as usize],
        }
    }

    /// The booking type `id`, or the resource's only type when `id` is `None`.
    pub fn booking_type(&self, id: Option<&str>) -> Option<&BookingType> {
        match id {
            Some(id) => self.booking_types.iter().find(|t| t.id == id),
            None if self.booking_types.len() == 1 => self.booking_types.first(),
            None => None,
        }
    }

    /// The local calendar date of an instant.
    pub fn local_date(&self, t: DateTime<Utc>) -> NaiveDate {
        t.with_timezone(&self.timezone).date_naive()
    }

    /// The slots of `minutes` of type `kind` that start on a local calendar date, in order.
    pub fn slots_on(&self, kind: &BookingType, minutes: u32, date: NaiveDate) -> Vec<Slot> {
        let step = kind.start_interval_minutes;
        let length = Duration::minutes(i64::from(minutes));
        let midnight = date.and_hms_opt(0, 0, 0).expect("midnight exists as a naive time");
        let mut slots = Vec::new();
        for interval in self.hours_on(date) {
            let mut minute = u32::from(interval.start_minute);
            while minute + minutes <= u32::from(interval.end_minute) {
                let local = midnight + Duration::minutes(i64::from(minute));
                let start = match self.timezone.from_local_datetime(&local) {
                    LocalResult::Single(t) => Some(t),
                    LocalResult::Ambiguous(first, _) => Some(first),
                    LocalResult::None => None,
                };
                if let Some(start) = start {
                    let start = start.with_timezone(&Utc);
                    let end = start + length;
                    // The wall clock just before the end must not have reached
                    // the nominal end (offsets are whole seconds).
                    let last_second = (end - Duration::seconds(1)).with_timezone(&self.timezone).naive_local();
                    // Zones with offsets off the cell grid (none today) offer nothing.
                    if last_second < local + length && on_cell_grid(start) {
                        slots.push(Slot { start, end });
                    }
                }
                minute += step;
            }
        }
        slots
    }

    /// The slots of `minutes` of type `kind` starting in `[from, to)`, in order.
    pub fn slots_between(&self, kind: &BookingType, minutes: u32, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Slot> {
        if from >= to {
            return Vec::new();
        }
        // Local dates can be up to a day away from UTC dates in either direction.
        let first = self.local_date(from).pred_opt().unwrap_or(NaiveDate::MIN);
        let last = self.local_date(to).succ_opt().unwrap_or(NaiveDate::MAX);
        let mut slots: Vec<Slot> = first
            .iter_days()
            .take_while(|d| *d <= last)
            .flat_map(|d| self.slots_on(kind, minutes, d))
            .filter(|s| s.start >= from && s.start < to)
            .collect();
        slots.sort();
        slots.dedup();
        slots
    }

    /// The slot of `minutes` of type `kind` that starts at `start`, or why there is none.
    pub fn slot_at(&self, kind: &BookingType, minutes: u32, start: DateTime<Utc>) -> Result<Slot, GridError> {
        let local = start.with_timezone(&self.timezone);
        if let Some(slot) = self.slots_on(kind, minutes, local.date_naive()).into_iter().find(|s| s.start == start) {
            return Ok(slot);
        }
        let minute = (local.time().num_seconds_from_midnight_u32() / 60) as u16;
        if self.hours_on(local.date_naive()).iter().any(|iv| iv.contains(minute)) {
            Err(GridError::OffGrid)
        } else {
            Err(GridError::OutsideHours)
        }
    }
}

/// `chrono::Timelike::num_seconds_from_midnight` without importing the trait at call sites.
trait SecondsFromMidnight {
    fn num_seconds_from_midnight_u32(&self) -> u32;
}

impl SecondsFromMidnight for chrono::NaiveTime {
    fn num_seconds_from_midnight_u32(&self) -> u32 {
        chrono::Timelike::num_seconds_from_midnight(self)
    }
}

#[cfg(test)]
#[path = "grid_props.rs"]
mod props;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::resource::{Resource, ResourceId, tests::spec};

    fn resource(tz: &str, slot_minutes: u32, hours: &[(&str, &str)]) -> Resource {
        Resource::from_spec(ResourceId::parse("r").unwrap(), spec(tz, slot_minutes, hours)).unwrap()
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn starts(slots: &[Slot]) -> Vec<String> {
        slots.iter().map(|s| s.start.format("%Y-%m-%dT%H:%MZ").to_string()).collect()
    }

    #[test]
    fn an_ordinary_day_is_cut_into_whole_slots() {
        let r = resource("Europe/Berlin", 45, &[("09:00", "11:00"), ("13:00", "14:00")]);
        let date = NaiveDate::from_ymd_opt(2026, 6, 10).unwrap(); // CEST, UTC+2
        // 09:00, 09:45 fit before 11:00 (10:30 would end 11:15); 13:00 fits before 14:00.
        assert_eq!(starts(&r.slots_on(date)), ["2026-06-10T07:00Z", "2026-06-10T07:45Z", "2026-06-10T11:00Z"]);
        assert!(r.slots_on(date).iter().all(|s| s.end - s.start == Duration::minutes(45)));
    }

    #[test]
    fn spring_forward_skips_the_missing_hour() {
        // Europe/Berlin, 2026-03-29: 02:00 local jumps to 03:00.
        let r = resource("Europe/Berlin", 60, &[("00:00", "06:00")]);
        let slots = r.slots_on(NaiveDate::from_ymd_opt(2026, 3, 29).unwrap());
        assert_eq!(
            starts(&slots),
            // 00:00 and 01:00 CET (UTC+1), no 02:00, then 03:00.. CEST (UTC+2).
            ["2026-03-28T23:00Z", "2026-03-29T00:00Z", "2026-03-29T01:00Z", "2026-03-29T02:00Z", "2026-03-29T03:00Z"]
        );
    }

    #[test]
    fn fall_back_offers_the_repeated_hour_once() {
        // Europe/Berlin, 2026-10-25: 03:00 CEST goes back to 02:00 CET.
        let r = resource("Europe/Berlin", 60, &[("00:00", "06:00")]);
        let slots = r.slots_on(NaiveDate::from_ymd_opt(2026, 10, 25).unwrap());
        assert_eq!(
            starts(&slots),
            [
                "2026-10-24T22:00Z", // 00:00 CEST
                "2026-10-24T23:00Z", // 01:00 CEST
                "2026-10-25T00:00Z", // 02:00 CEST, the first 02:00
                "2026-10-25T02:00Z", // 03:00 CET
                "2026-10-25T03:00Z",
                "2026-10-25T04:00Z",
            ]
        );
        // The second 02:00 (01:00Z) lies inside opening hours but is not a slot.
        assert_eq!(r.slot_at(utc("2026-10-25T01:00:00Z")), Err(GridError::OffGrid));
        assert!(r.slot_at(utc("2026-10-25T00:00:00Z")).is_ok());
    }

    #[test]
    fn new_york_dst_changes_at_its_own_date() {
        // America/New_York springs forward on 2026-03-08 at 02:00.
        let r = resource("America/New_York", 30, &[("01:00", "04:00")]);
        let slots = r.slots_on(NaiveDate::from_ymd_opt(2026, 3, 8).unwrap());
        assert_eq!(
            starts(&slots),
            // 01:00, 01:30 EST (UTC-5); 02:00 and 02:30 do not exist; 03:00, 03:30 EDT (UTC-4).
            ["2026-03-08T06:00Z", "2026-03-08T06:30Z", "2026-03-08T07:00Z", "2026-03-08T07:30Z"]
        );
        // A slot crossing the change lasts 30 real minutes.
        assert_eq!(slots[1].end, slots[2].start);
    }

    #[test]
    fn slots_between_spans_local_and_utc_dates() {
        // Pacific/Kiritimati is UTC+14: local Monday 09:00 is Sunday 19:00 UTC.
        let r = resource("Pacific/Kiritimati", 60, &[("09:00", "11:00")]);
        let slots = r.slots_between(utc("2026-06-07T00:00:00Z"), utc("2026-06-08T00:00:00Z"));
        assert_eq!(starts(&slots), ["2026-06-07T19:00Z", "2026-06-07T20:00Z"]);
        assert!(r.slots_between(utc("2026-06-08T00:00:00Z"), utc("2026-06-07T00:00:00Z")).is_empty());
    }

    #[test]
    fn slot_at_tells_off_grid_from_closed() {
        let r = resource("Europe/Berlin", 30, &[("09:00", "12:00")]);
        assert_eq!(r.slot_at(utc("2026-06-10T07:30:00Z")).unwrap().end, utc("2026-06-10T08:00:00Z"));
        assert_eq!(r.slot_at(utc("2026-06-10T07:10:00Z")), Err(GridError::OffGrid));
        assert_eq!(r.slot_at(utc("2026-06-10T07:30:01Z")), Err(GridError::OffGrid));
        assert_eq!(r.slot_at(utc("2026-06-10T10:00:00Z")), Err(GridError::OutsideHours));
        assert_eq!(r.slot_at(utc("2026-06-10T05:00:00Z")), Err(GridError::OutsideHours));
    }
}

/// Shortcuts for tests of resources with one type and one duration.
#[cfg(test)]
impl Resource {
    pub(crate) fn first_type(&self) -> (&BookingType, u32, &super::resource::Price) {
        let kind = &self.booking_types[0];
        (kind, kind.durations[0].minutes, &kind.durations[0].price)
    }

    pub(crate) fn first_slots_between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Slot> {
        let (kind, minutes, _) = self.first_type();
        self.slots_between(kind, minutes, from, to)
    }

    pub(crate) fn first_slot_at(&self, start: DateTime<Utc>) -> Result<Slot, GridError> {
        let (kind, minutes, _) = self.first_type();
        self.slot_at(kind, minutes, start)
    }
}
