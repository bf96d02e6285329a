//! The slot grid: which instants a resource can be booked at.
//!
//! Opening hours are local wall-clock times (a date override replaces its
//! weekday's hours). For a booking type and one of its durations, each opening
//! interval offers a start every `start_interval_minutes` from its start; a
//! slot that would run past the end of its interval is not offered. Local
//! times are turned into instants with the resource's timezone, which makes
//! three DST rules necessary (the `dst_*` tests in this module show each one
//! in Europe/Berlin and America/New_York):
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
//! UTC cell grid ([`super::booking_type::CELL_MINUTES`]); a start off it (only
//! possible with a historical offset such as UTC-00:44:30) is not offered.

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

    /// Whether `[start, end)` lies inside one opening interval of its local
    /// date (a team member is free only inside its own hours).
    pub fn open_during(&self, start: DateTime<Utc>, end: DateTime<Utc>) -> bool {
        let first = start.with_timezone(&self.timezone).naive_local();
        let last = (end - Duration::seconds(1)).with_timezone(&self.timezone).naive_local();
        if first.date() != last.date() {
            return false;
        }
        let (a, b) = (first.time().num_seconds_from_midnight_u32(), last.time().num_seconds_from_midnight_u32());
        self.hours_on(first.date())
            .iter()
            .any(|iv| u32::from(iv.start_minute) * 60 <= a && b < u32::from(iv.end_minute) * 60)
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

#[cfg(test)]
#[path = "grid_props.rs"]
mod props;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::booking_type::{BookingTypeSpec, tests::type_spec};
    use crate::domain::resource::tests::{opening, spec, typed_spec};
    use crate::domain::resource::{DateOverrideSpec, ResourceId, ResourceSpec};

    fn build(spec: ResourceSpec) -> Resource {
        Resource::from_spec(ResourceId::parse("r").unwrap(), spec).unwrap()
    }

    /// A shorthand resource: one type, one duration, starts every `slot_minutes`.
    fn resource(tz: &str, slot_minutes: u32, hours: &[(&str, &str)]) -> Resource {
        build(spec(tz, slot_minutes, hours))
    }

    fn typed(tz: &str, types: Vec<BookingTypeSpec>, hours: &[(&str, &str)]) -> Resource {
        build(typed_spec(tz, types, hours))
    }

    /// One type `session` of 45 and 90 minutes, starting every 45 minutes (its
    /// shortest duration, the default), open 00:00-06:00 or as given.
    fn session(tz: &str, hours: &[(&str, &str)]) -> Resource {
        typed(tz, vec![type_spec("session", &[45, 90])], hours)
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn a_member_is_open_during_an_interval_only_inside_one_opening_interval_of_its_local_day() {
        // Berlin, 09:00-12:00 and 13:00-17:00 local; on 2026-03-29 clocks go forward at 02:00.
        let r = resource("Europe/Berlin", 60, &[("09:00", "12:00"), ("13:00", "17:00")]);
        let open = |a: &str, b: &str| r.open_during(utc(a), utc(b));
        assert!(open("2026-06-10T07:00:00Z", "2026-06-10T10:00:00Z"), "09:00-12:00 local");
        assert!(!open("2026-06-10T09:30:00Z", "2026-06-10T10:30:00Z"), "11:30-12:30 crosses the lunch break");
        assert!(!open("2026-06-10T06:55:00Z", "2026-06-10T07:30:00Z"), "starts before opening");
        assert!(open("2026-06-10T14:00:00Z", "2026-06-10T15:00:00Z"), "16:00-17:00 ends at closing");
        assert!(!open("2026-06-10T14:30:00Z", "2026-06-10T15:30:00Z"), "ends after closing");
        assert!(open("2026-03-29T07:00:00Z", "2026-03-29T08:00:00Z"), "09:00 CEST on the change day");
        let closed = build(ResourceSpec {
            date_overrides: vec![DateOverrideSpec { date: "2026-06-10".into(), hours: Vec::new() }],
            ..spec("Europe/Berlin", 60, &[("09:00", "17:00")])
        });
        assert!(!closed.open_during(utc("2026-06-10T08:00:00Z"), utc("2026-06-10T09:00:00Z")), "closed date");
        assert!(closed.open_during(utc("2026-06-11T08:00:00Z"), utc("2026-06-11T09:00:00Z")));
    }

    fn starts(slots: &[Slot]) -> Vec<String> {
        slots.iter().map(|s| s.start.format("%Y-%m-%dT%H:%MZ").to_string()).collect()
    }

    /// `(start, end)` of each slot, in UTC.
    fn spans(slots: &[Slot]) -> Vec<(String, String)> {
        let f = |t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%MZ").to_string();
        slots.iter().map(|s| (f(s.start), f(s.end))).collect()
    }

    /// The slots of `minutes` of the resource's only type on a local date.
    fn day(r: &Resource, minutes: u32, on: NaiveDate) -> Vec<Slot> {
        r.slots_on(r.booking_type(None).unwrap(), minutes, on)
    }

    fn all_last(slots: &[Slot], minutes: i64) -> bool {
        slots.iter().all(|s| s.end - s.start == Duration::minutes(minutes))
    }

    #[test]
    fn an_ordinary_day_is_cut_into_whole_slots() {
        let r = resource("Europe/Berlin", 45, &[("09:00", "11:00"), ("13:00", "14:00")]);
        let on = date(2026, 6, 10); // CEST, UTC+2
        // 09:00, 09:45 fit before 11:00 (10:30 would end 11:15); 13:00 fits before 14:00.
        assert_eq!(starts(&day(&r, 45, on)), ["2026-06-10T07:00Z", "2026-06-10T07:45Z", "2026-06-10T11:00Z"]);
        assert!(all_last(&day(&r, 45, on), 45));
    }

    /// Rule: starts are cut every `start_interval_minutes` from the start of
    /// each opening interval, whatever the duration; a slot must fit in its interval.
    #[test]
    fn the_start_interval_is_independent_of_the_duration() {
        let hourly = BookingTypeSpec { start_interval_minutes: Some(15), ..type_spec("t", &[60]) };
        let r = typed("UTC", vec![hourly], &[("09:00", "11:00")]);
        let slots = day(&r, 60, date(2026, 6, 10));
        assert_eq!(
            spans(&slots),
            [
                ("2026-06-10T09:00Z".into(), "2026-06-10T10:00Z".into()),
                ("2026-06-10T09:15Z".into(), "2026-06-10T10:15Z".into()),
                ("2026-06-10T09:30Z".into(), "2026-06-10T10:30Z".into()),
                ("2026-06-10T09:45Z".into(), "2026-06-10T10:45Z".into()),
                ("2026-06-10T10:00Z".into(), "2026-06-10T11:00Z".into()),
            ]
        );
        // A start interval longer than the duration leaves gaps.
        let sparse = BookingTypeSpec { start_interval_minutes: Some(45), ..type_spec("t", &[30]) };
        let r = typed("UTC", vec![sparse], &[("09:00", "11:00")]);
        assert_eq!(
            starts(&day(&r, 30, date(2026, 6, 10))),
            ["2026-06-10T09:00Z", "2026-06-10T09:45Z", "2026-06-10T10:30Z"]
        );
        // Each interval starts its own count: 13:10 is a start, not 13:15.
        let r = typed(
            "UTC",
            vec![BookingTypeSpec { start_interval_minutes: Some(15), ..type_spec("t", &[30]) }],
            &[("13:10", "14:00")],
        );
        assert_eq!(starts(&day(&r, 30, date(2026, 6, 10))), ["2026-06-10T13:10Z", "2026-06-10T13:25Z"]);
    }

    /// Rule: each duration of a type has its own slots on the type's start grid.
    #[test]
    fn each_duration_of_a_type_is_cut_on_the_same_starts() {
        let t = BookingTypeSpec { start_interval_minutes: Some(30), ..type_spec("t", &[30, 60, 90]) };
        let r = typed("UTC", vec![t], &[("09:00", "11:00"), ("14:00", "15:00")]);
        let on = date(2026, 6, 10);
        let s30 = day(&r, 30, on);
        let s60 = day(&r, 60, on);
        let s90 = day(&r, 90, on);
        let at = |h: &str| format!("2026-06-10T{h}Z");
        assert_eq!(starts(&s30), [at("09:00"), at("09:30"), at("10:00"), at("10:30"), at("14:00"), at("14:30")]);
        assert_eq!(starts(&s60), [at("09:00"), at("09:30"), at("10:00"), at("14:00")]);
        assert_eq!(starts(&s90), [at("09:00"), at("09:30")]);
        assert!(all_last(&s30, 30) && all_last(&s60, 60) && all_last(&s90, 90));
        let kind = r.booking_type(None).unwrap();
        assert_eq!(r.slot_at(kind, 90, utc("2026-06-10T09:30:00Z")).unwrap().end, utc("2026-06-10T11:00:00Z"));
        // 10:00 is a 60-minute start but a 90-minute slot there would end after 11:00.
        assert_eq!(r.slot_at(kind, 90, utc("2026-06-10T10:00:00Z")), Err(GridError::OffGrid));
    }

    #[test]
    fn types_are_found_by_id_or_as_the_only_one() {
        let r = typed("UTC", vec![type_spec("intro", &[30]), type_spec("session", &[60])], &[("09:00", "10:00")]);
        assert_eq!(r.booking_type(Some("session")).map(|t| t.id.as_str()), Some("session"));
        assert_eq!(r.booking_type(Some("other")), None);
        assert_eq!(r.booking_type(None), None, "with two types, one must be named");
        let on = date(2026, 6, 10);
        let intro = r.slots_on(r.booking_type(Some("intro")).unwrap(), 30, on);
        let session = r.slots_on(r.booking_type(Some("session")).unwrap(), 60, on);
        assert_eq!((starts(&intro).len(), starts(&session).len()), (2, 1));
        let one = resource("UTC", 30, &[("09:00", "10:00")]);
        assert_eq!(one.booking_type(None).map(|t| t.id.as_str()), Some("default"));
    }

    /// Rule: a date override replaces its weekday's hours on that local date;
    /// no hours closes the date.
    #[test]
    fn date_overrides_close_a_date_or_give_it_special_hours() {
        let overrides = vec![
            DateOverrideSpec { date: "2026-12-24".into(), hours: Vec::new() },
            DateOverrideSpec { date: "2026-12-31".into(), hours: opening(&[("10:00", "12:00")]) },
        ];
        let r = build(ResourceSpec { date_overrides: overrides, ..spec("Europe/Berlin", 60, &[("09:00", "12:00")]) });
        let kind = r.booking_type(None).unwrap();
        // Thursday 2026-12-24: closed.
        assert!(r.hours_on(date(2026, 12, 24)).is_empty());
        assert!(day(&r, 60, date(2026, 12, 24)).is_empty());
        assert_eq!(r.slot_at(kind, 60, utc("2026-12-24T08:00:00Z")), Err(GridError::OutsideHours));
        // Thursday 2026-12-31: 10:00-12:00 CET instead of 09:00-12:00.
        assert_eq!(starts(&day(&r, 60, date(2026, 12, 31))), ["2026-12-31T09:00Z", "2026-12-31T10:00Z"]);
        assert_eq!(r.slot_at(kind, 60, utc("2026-12-31T08:00:00Z")), Err(GridError::OutsideHours));
        // The days around keep their weekday's hours.
        for d in [23, 25, 30] {
            assert_eq!(day(&r, 60, date(2026, 12, d)).len(), 3, "2026-12-{d}");
        }
        let week = r.slots_between(kind, 60, utc("2026-12-23T00:00:00Z"), utc("2027-01-01T00:00:00Z"));
        assert_eq!(week.len(), 7 * 3 + 2, "nine days, one closed, one short");
        assert!(week.iter().all(|s| r.local_date(s.start) != date(2026, 12, 24)));
    }

    #[test]
    fn spring_forward_skips_the_missing_hour() {
        // Europe/Berlin, 2026-03-29: 02:00 local jumps to 03:00.
        let r = resource("Europe/Berlin", 60, &[("00:00", "06:00")]);
        let slots = day(&r, 60, date(2026, 3, 29));
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
        let slots = day(&r, 60, date(2026, 10, 25));
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
        assert_eq!(r.first_slot_at(utc("2026-10-25T01:00:00Z")), Err(GridError::OffGrid));
        assert!(r.first_slot_at(utc("2026-10-25T00:00:00Z")).is_ok());
    }

    #[test]
    fn new_york_dst_changes_at_its_own_date() {
        // America/New_York springs forward on 2026-03-08 at 02:00.
        let r = resource("America/New_York", 30, &[("01:00", "04:00")]);
        let slots = day(&r, 30, date(2026, 3, 8));
        assert_eq!(
            starts(&slots),
            // 01:00, 01:30 EST (UTC-5); 02:00 and 02:30 do not exist; 03:00, 03:30 EDT (UTC-4).
            ["2026-03-08T06:00Z", "2026-03-08T06:30Z", "2026-03-08T07:00Z", "2026-03-08T07:30Z"]
        );
        // A slot crossing the change lasts 30 real minutes.
        assert_eq!(slots[1].end, slots[2].start);
    }

    // ---- DST acceptance: 45- and 90-minute durations, starts every 45 minutes,
    // open 00:00-06:00 local across each change. Local grid: 00:00, 00:45,
    // 01:30, 02:15, 03:00, 03:45, 04:30, 05:15 (the last one 45 minutes only).

    /// Europe/Berlin, spring forward 2026-03-29, 02:00 CET → 03:00 CEST (01:00Z).
    ///
    /// Rules: a slot lasts its duration of real time; a start in the skipped
    /// hour (02:15) is not offered; a slot whose real minutes would still be
    /// running when the wall clock first reads its nominal end is not offered
    /// (45 min from 01:30 CET ends 03:15 CEST, past its nominal 02:15; 90 min
    /// from 00:45 and 01:30 CET likewise), so the slots across the gap never
    /// overlap the next start's slot on the wall clock.
    #[test]
    fn dst_berlin_spring_forward_45_and_90() {
        let r = session("Europe/Berlin", &[("00:00", "06:00")]);
        let on = date(2026, 3, 29);
        let s45 = day(&r, 45, on);
        let s90 = day(&r, 90, on);
        let pair = |a: &str, b: &str| (a.to_owned(), b.to_owned());
        assert_eq!(
            spans(&s45),
            [
                pair("2026-03-28T23:00Z", "2026-03-28T23:45Z"), // 00:00-00:45 CET
                pair("2026-03-28T23:45Z", "2026-03-29T00:30Z"), // 00:45-01:30 CET
                // 01:30 CET would end 03:15 CEST; 02:15 does not exist.
                pair("2026-03-29T01:00Z", "2026-03-29T01:45Z"), // 03:00-03:45 CEST
                pair("2026-03-29T01:45Z", "2026-03-29T02:30Z"),
                pair("2026-03-29T02:30Z", "2026-03-29T03:15Z"),
                pair("2026-03-29T03:15Z", "2026-03-29T04:00Z"), // 05:15-06:00 CEST
            ]
        );
        assert_eq!(
            spans(&s90),
            [
                pair("2026-03-28T23:00Z", "2026-03-29T00:30Z"), // 00:00-01:30 CET
                // 00:45 CET would end 03:15 CEST, 01:30 CET 04:00 CEST; 02:15 does not exist.
                pair("2026-03-29T01:00Z", "2026-03-29T02:30Z"), // 03:00-04:30 CEST
                pair("2026-03-29T01:45Z", "2026-03-29T03:15Z"),
                pair("2026-03-29T02:30Z", "2026-03-29T04:00Z"), // 04:30-06:00 CEST
            ]
        );
        assert!(all_last(&s45, 45) && all_last(&s90, 90));
        let kind = r.booking_type(None).unwrap();
        // 01:30 CET (00:30Z) is inside opening hours: on the start grid, refused by the DST rule.
        assert_eq!(r.slot_at(kind, 45, utc("2026-03-29T00:30:00Z")), Err(GridError::OffGrid));
        assert_eq!(r.slot_at(kind, 90, utc("2026-03-29T00:30:00Z")), Err(GridError::OffGrid));
        assert_eq!(r.slot_at(kind, 90, utc("2026-03-29T01:00:00Z")), Ok(s90[1]));
    }

    /// Europe/Berlin, fall back 2026-10-25, 03:00 CEST → 02:00 CET (01:00Z).
    ///
    /// Rules: a start in the repeated hour (02:15) is offered once, at its
    /// first occurrence (CEST); its second occurrence (CET, 01:15Z) is not a
    /// slot; slots crossing the change last their real minutes (90 from 01:30
    /// CEST ends at 02:00 CET: the wall clock shows 30 minutes).
    #[test]
    fn dst_berlin_fall_back_45_and_90() {
        let r = session("Europe/Berlin", &[("00:00", "06:00")]);
        let on = date(2026, 10, 25);
        let s45 = day(&r, 45, on);
        let s90 = day(&r, 90, on);
        let pair = |a: &str, b: &str| (a.to_owned(), b.to_owned());
        assert_eq!(
            spans(&s45),
            [
                pair("2026-10-24T22:00Z", "2026-10-24T22:45Z"), // 00:00 CEST
                pair("2026-10-24T22:45Z", "2026-10-24T23:30Z"),
                pair("2026-10-24T23:30Z", "2026-10-25T00:15Z"), // 01:30 CEST
                pair("2026-10-25T00:15Z", "2026-10-25T01:00Z"), // 02:15 CEST, the first 02:15
                pair("2026-10-25T02:00Z", "2026-10-25T02:45Z"), // 03:00 CET
                pair("2026-10-25T02:45Z", "2026-10-25T03:30Z"),
                pair("2026-10-25T03:30Z", "2026-10-25T04:15Z"),
                pair("2026-10-25T04:15Z", "2026-10-25T05:00Z"), // 05:15-06:00 CET
            ]
        );
        assert_eq!(
            spans(&s90),
            [
                pair("2026-10-24T22:00Z", "2026-10-24T23:30Z"), // 00:00 CEST
                pair("2026-10-24T22:45Z", "2026-10-25T00:15Z"),
                pair("2026-10-24T23:30Z", "2026-10-25T01:00Z"), // 01:30 CEST - 02:00 CET
                pair("2026-10-25T00:15Z", "2026-10-25T01:45Z"), // 02:15 CEST - 02:45 CET
                pair("2026-10-25T02:00Z", "2026-10-25T03:30Z"), // 03:00 CET
                pair("2026-10-25T02:45Z", "2026-10-25T04:15Z"),
                pair("2026-10-25T03:30Z", "2026-10-25T05:00Z"), // 04:30-06:00 CET
            ]
        );
        assert!(all_last(&s45, 45) && all_last(&s90, 90));
        let kind = r.booking_type(None).unwrap();
        for minutes in [45, 90] {
            assert_eq!(r.slot_at(kind, minutes, utc("2026-10-25T01:15:00Z")), Err(GridError::OffGrid), "second 02:15");
            assert!(r.slot_at(kind, minutes, utc("2026-10-25T00:15:00Z")).is_ok(), "first 02:15");
        }
    }

    /// America/New_York, spring forward 2026-03-08, 02:00 EST → 03:00 EDT (07:00Z).
    ///
    /// Rules: as in Berlin, at New York's own date and offsets: no start in
    /// the skipped hour (02:15); a slot still running when the wall clock
    /// first reads its nominal end is not offered (45 from 01:30 EST, 90 from
    /// 00:45 and 01:30 EST).
    #[test]
    fn dst_new_york_spring_forward_45_and_90() {
        let r = session("America/New_York", &[("00:00", "06:00")]);
        let on = date(2026, 3, 8);
        let s45 = day(&r, 45, on);
        let s90 = day(&r, 90, on);
        let pair = |a: &str, b: &str| (a.to_owned(), b.to_owned());
        assert_eq!(
            spans(&s45),
            [
                pair("2026-03-08T05:00Z", "2026-03-08T05:45Z"), // 00:00 EST
                pair("2026-03-08T05:45Z", "2026-03-08T06:30Z"), // 00:45-01:30 EST
                // 01:30 EST would end 03:15 EDT; 02:15 does not exist.
                pair("2026-03-08T07:00Z", "2026-03-08T07:45Z"), // 03:00 EDT
                pair("2026-03-08T07:45Z", "2026-03-08T08:30Z"),
                pair("2026-03-08T08:30Z", "2026-03-08T09:15Z"),
                pair("2026-03-08T09:15Z", "2026-03-08T10:00Z"), // 05:15-06:00 EDT
            ]
        );
        assert_eq!(
            spans(&s90),
            [
                pair("2026-03-08T05:00Z", "2026-03-08T06:30Z"), // 00:00-01:30 EST
                pair("2026-03-08T07:00Z", "2026-03-08T08:30Z"), // 03:00 EDT
                pair("2026-03-08T07:45Z", "2026-03-08T09:15Z"),
                pair("2026-03-08T08:30Z", "2026-03-08T10:00Z"), // 04:30-06:00 EDT
            ]
        );
        assert!(all_last(&s45, 45) && all_last(&s90, 90));
    }

    /// America/New_York, fall back 2026-11-01, 02:00 EDT → 01:00 EST (06:00Z).
    ///
    /// Rules: the repeated hour is 01:00-02:00; its start 01:30 is offered
    /// once, at its first occurrence (EDT, 05:30Z), not at 06:30Z; slots last
    /// their real minutes across the change.
    #[test]
    fn dst_new_york_fall_back_45_and_90() {
        let r = session("America/New_York", &[("00:00", "06:00")]);
        let on = date(2026, 11, 1);
        let s45 = day(&r, 45, on);
        let s90 = day(&r, 90, on);
        let pair = |a: &str, b: &str| (a.to_owned(), b.to_owned());
        assert_eq!(
            spans(&s45),
            [
                pair("2026-11-01T04:00Z", "2026-11-01T04:45Z"), // 00:00 EDT
                pair("2026-11-01T04:45Z", "2026-11-01T05:30Z"),
                pair("2026-11-01T05:30Z", "2026-11-01T06:15Z"), // 01:30 EDT - 01:15 EST
                pair("2026-11-01T07:15Z", "2026-11-01T08:00Z"), // 02:15 EST
                pair("2026-11-01T08:00Z", "2026-11-01T08:45Z"),
                pair("2026-11-01T08:45Z", "2026-11-01T09:30Z"),
                pair("2026-11-01T09:30Z", "2026-11-01T10:15Z"),
                pair("2026-11-01T10:15Z", "2026-11-01T11:00Z"), // 05:15-06:00 EST
            ]
        );
        assert_eq!(
            spans(&s90),
            [
                pair("2026-11-01T04:00Z", "2026-11-01T05:30Z"), // 00:00 EDT
                pair("2026-11-01T04:45Z", "2026-11-01T06:15Z"), // 00:45 EDT - 01:15 EST
                pair("2026-11-01T05:30Z", "2026-11-01T07:00Z"), // 01:30 EDT - 02:00 EST
                pair("2026-11-01T07:15Z", "2026-11-01T08:45Z"), // 02:15 EST
                pair("2026-11-01T08:00Z", "2026-11-01T09:30Z"),
                pair("2026-11-01T08:45Z", "2026-11-01T10:15Z"),
                pair("2026-11-01T09:30Z", "2026-11-01T11:00Z"), // 04:30-06:00 EST
            ]
        );
        assert!(all_last(&s45, 45) && all_last(&s90, 90));
        let kind = r.booking_type(None).unwrap();
        for minutes in [45, 90] {
            assert_eq!(r.slot_at(kind, minutes, utc("2026-11-01T06:30:00Z")), Err(GridError::OffGrid), "second 01:30");
        }
    }

    /// Rule: a slot must be over when the wall clock first reads closing time.
    /// Closing at 02:30 (Berlin, New York) or 03:00 (Berlin) on a spring-forward
    /// night: the doors close when the clock jumps to 03:00. The 45-minute slot
    /// from 01:30 fits on paper (nominal end 02:15) and the 90-minute slot from
    /// 01:30 CET ends at 03:00 on paper, but their real minutes end at 03:15
    /// and 04:00 on the wall clock, past closing: not offered.
    #[test]
    fn dst_a_slot_ending_past_closing_time_on_the_wall_clock_is_not_offered() {
        let berlin = session("Europe/Berlin", &[("00:00", "02:30")]);
        let on = date(2026, 3, 29);
        assert_eq!(starts(&day(&berlin, 45, on)), ["2026-03-28T23:00Z", "2026-03-28T23:45Z"]);
        assert_eq!(starts(&day(&berlin, 90, on)), ["2026-03-28T23:00Z"]);

        let berlin = session("Europe/Berlin", &[("00:00", "03:00")]);
        // 01:30 CET + 90 real minutes = 04:00 CEST, an hour after closing (03:00 CEST, 01:00Z).
        assert_eq!(starts(&day(&berlin, 90, on)), ["2026-03-28T23:00Z"]);
        assert!(day(&berlin, 45, on).iter().all(|s| s.end <= utc("2026-03-29T01:00:00Z")));

        let new_york = session("America/New_York", &[("00:00", "02:30")]);
        let on = date(2026, 3, 8);
        assert_eq!(starts(&day(&new_york, 45, on)), ["2026-03-08T05:00Z", "2026-03-08T05:45Z"]);
        assert_eq!(starts(&day(&new_york, 90, on)), ["2026-03-08T05:00Z"]);
    }

    #[test]
    fn slots_between_spans_local_and_utc_dates() {
        // Pacific/Kiritimati is UTC+14: local Monday 09:00 is Sunday 19:00 UTC.
        let r = resource("Pacific/Kiritimati", 60, &[("09:00", "11:00")]);
        let slots = r.first_slots_between(utc("2026-06-07T00:00:00Z"), utc("2026-06-08T00:00:00Z"));
        assert_eq!(starts(&slots), ["2026-06-07T19:00Z", "2026-06-07T20:00Z"]);
        assert_eq!(r.local_date(slots[0].start), date(2026, 6, 8));
        assert!(r.first_slots_between(utc("2026-06-08T00:00:00Z"), utc("2026-06-07T00:00:00Z")).is_empty());
    }

    #[test]
    fn slot_at_tells_off_grid_from_closed() {
        let r = resource("Europe/Berlin", 30, &[("09:00", "12:00")]);
        assert_eq!(r.first_slot_at(utc("2026-06-10T07:30:00Z")).unwrap().end, utc("2026-06-10T08:00:00Z"));
        assert_eq!(r.first_slot_at(utc("2026-06-10T07:10:00Z")), Err(GridError::OffGrid));
        assert_eq!(r.first_slot_at(utc("2026-06-10T07:30:01Z")), Err(GridError::OffGrid));
        assert_eq!(r.first_slot_at(utc("2026-06-10T10:00:00Z")), Err(GridError::OutsideHours));
        assert_eq!(r.first_slot_at(utc("2026-06-10T05:00:00Z")), Err(GridError::OutsideHours));
    }

    /// Rule: a start is offered only on the 5-minute UTC cell grid. Every
    /// zone's offset is a multiple of 5 minutes today, so this only shows up
    /// in history: Africa/Monrovia was UTC-00:44:30 until 1972.
    #[test]
    fn starts_off_the_cell_grid_are_not_offered() {
        let r = resource("Africa/Monrovia", 30, &[("09:00", "10:00")]);
        assert!(day(&r, 30, date(1970, 6, 10)).is_empty(), "{:?}", day(&r, 30, date(1970, 6, 10)));
        assert_eq!(day(&r, 30, date(2026, 6, 10)).len(), 2);
    }
}
