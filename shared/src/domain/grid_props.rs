//! Property tests of the slot grid: every time zone chrono-tz knows, arbitrary
//! weekly hours and slot lengths, date ranges around each zone's own DST
//! changes in 2026-2027.
//!
//! For every slot the grid offers: it is on the grid (`slot_at` gives it
//! back), it starts inside opening hours on a grid position in local
//! wall-clock time, it ends by the time the wall clock first reads its
//! nominal end (so it neither runs past closing time nor into the next slot),
//! it lasts exactly `slot_minutes` of real time; the list is sorted, without
//! duplicates or overlaps, and holds every grid position that exists.

use super::*;
use crate::domain::resource::{OpeningSpec, Price, ResourceSpec, WeeklyHoursSpec};
use crate::domain::{CalendarTarget, ResourceId};
use chrono::{Days, NaiveDateTime, Offset, Timelike};
use chrono_tz::{TZ_VARIANTS, Tz};
use proptest::prelude::*;

const CASES: u32 = 256;

/// `CASES` cases, or `PROPTEST_CASES` for a longer run. A failure is reported
/// with its minimal input rather than saved into the source tree.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(CASES);
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

/// One weekday's opening intervals as `(start, end)` minutes, `start < end <= 1440`,
/// sorted and disjoint (touching allowed).
fn day_hours() -> impl Strategy<Value = Vec<(u16, u16)>> {
    // Half-hours and whole minutes, with extra weight on the small hours, where DST changes happen.
    let point = prop_oneof![
        2 => (0u16..=48).prop_map(|h| h * 30),
        2 => 0u16..=1440,
        1 => 0u16..=300,
    ];
    (prop::collection::vec(point, 0..=6), any::<bool>()).prop_map(|(mut points, touch)| {
        points.sort_unstable();
        points.dedup();
        let mut intervals: Vec<(u16, u16)> = points.chunks_exact(2).map(|p| (p[0], p[1])).collect();
        if touch && intervals.len() >= 2 {
            // Make the first two intervals touch: 09:00-12:00 and 12:00-13:00 is allowed.
            intervals[1].0 = intervals[0].1;
        }
        intervals
    })
}

fn hhmm(minutes: u16) -> String {
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

fn resource(tz: Tz, slot_minutes: u32, week: &[Vec<(u16, u16)>]) -> Resource {
    let day = |i: usize| -> Vec<OpeningSpec> {
        // Written in reverse: validation sorts them.
        week[i].iter().rev().map(|(s, e)| OpeningSpec { start: hhmm(*s), end: hhmm(*e) }).collect()
    };
    let spec = ResourceSpec {
        name: "Props".into(),
        timezone: tz.name().into(),
        slot_minutes,
        price: Price { amount: 100, currency: "eur".into() },
        hold_minutes: 30,
        weekly_hours: WeeklyHoursSpec {
            mon: day(0),
            tue: day(1),
            wed: day(2),
            thu: day(3),
            fri: day(4),
            sat: day(5),
            sun: day(6),
        },
        calendar: CalendarTarget::None,
    };
    Resource::from_spec(ResourceId::parse("props").unwrap(), spec).expect("generated specs are valid")
}

/// The local dates of 2026-2027 on which `tz` changes its UTC offset.
fn offset_changes(tz: Tz) -> Vec<NaiveDate> {
    let start = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
    let offset_at = |d: NaiveDate| tz.offset_from_utc_datetime(&d.and_hms_opt(12, 0, 0).unwrap()).fix();
    start
        .iter_days()
        .take(2 * 366)
        .collect::<Vec<_>>()
        .windows(2)
        .filter(|w| offset_at(w[0]) != offset_at(w[1]))
        .map(|w| w[1])
        .collect()
}

/// The first instant at which the wall clock in `tz` reads `local` or later:
/// the instant itself, its first occurrence when repeated, the end of the gap
/// when skipped.
fn first_reading(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    let mut t = local;
    for _ in 0..=(26 * 60) {
        if let Some(found) = tz.from_local_datetime(&t).earliest() {
            return found.with_timezone(&Utc);
        }
        t += Duration::minutes(1);
    }
    panic!("no instant reads {local} in {tz}")
}

/// A time zone, a slot length in minutes, weekly hours (per weekday, from
/// Monday) and a UTC range `[from, to)`.
type Scenario = (Tz, u32, Vec<Vec<(u16, u16)>>, DateTime<Utc>, DateTime<Utc>);

/// A [`Scenario`] whose range spans 1 minute to 3 days, half the time around
/// one of the zone's offset changes.
fn scenario() -> impl Strategy<Value = Scenario> {
    let slot_minutes = prop_oneof![
        3 => prop::sample::select(vec![5u32, 10, 15, 20, 30, 45, 60, 90, 120, 180]),
        1 => 5u32..=720,
    ];
    (
        prop::sample::select(&TZ_VARIANTS[..]),
        slot_minutes,
        prop::collection::vec(day_hours(), 7),
        any::<bool>(),
        any::<prop::sample::Index>(),
        0u64..730,
        -2i64..=1,
        0i64..1440,
        1i64..=(3 * 1440),
    )
        .prop_map(|(tz, slot_minutes, week, near_change, which, day, shift, minute, span)| {
            let changes = offset_changes(tz);
            let base = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
            let date = if near_change && !changes.is_empty() {
                *which.get(&changes) + Duration::days(shift)
            } else {
                base + Days::new(day)
            };
            let from = date.and_hms_opt(0, 0, 0).unwrap().and_utc() + Duration::minutes(minute - 720);
            (tz, slot_minutes, week, from, from + Duration::minutes(span))
        })
}

/// Checks one offered slot against the resource's definition, and against `slot_at`.
fn check_slot(r: &Resource, slot: &Slot) -> Result<(), TestCaseError> {
    prop_assert_eq!(r.slot_at(slot.start), Ok(*slot), "slot_at disagrees with the offered slot");
    check_rules(r, slot)
}

/// Whether a slot obeys the rules of the grid (see the module docs), computed
/// from the resource's definition alone.
fn check_rules(r: &Resource, slot: &Slot) -> Result<(), TestCaseError> {
    let length = Duration::minutes(i64::from(r.slot_minutes));
    prop_assert_eq!(slot.end - slot.start, length, "slot {:?} does not last {} minutes", slot, r.slot_minutes);

    let local = slot.start.with_timezone(&r.timezone);
    let date = local.date_naive();
    prop_assert_eq!(local.second(), 0);
    let minute = (local.hour() * 60 + local.minute()) as u16;
    let weekday = date.weekday().num_days_from_monday() as usize;
    let interval = r.weekly_hours[weekday].iter().find(|iv| iv.contains(minute));
    let Some(interval) = interval else {
        return Err(TestCaseError::fail(format!("{slot:?} starts at local {local}, outside opening hours")));
    };
    let offset = u32::from(minute - interval.start_minute);
    prop_assert_eq!(offset % r.slot_minutes, 0, "{:?} starts at local {}, off the grid", slot, local);
    let nominal_end = u32::from(minute) + r.slot_minutes;
    prop_assert!(nominal_end <= u32::from(interval.end_minute), "{:?} runs past its interval", slot);
    // The start is the first instant reading its local time (a repeated time is offered once, first).
    prop_assert_eq!(
        first_reading(r.timezone, local.naive_local()),
        slot.start,
        "{:?} is a repeated time's second occurrence",
        slot
    );
    // In wall-clock time, the slot is over when the clock first reads its nominal end.
    let midnight = date.and_hms_opt(0, 0, 0).unwrap();
    let ends_by = first_reading(r.timezone, midnight + Duration::minutes(i64::from(nominal_end)));
    prop_assert!(
        slot.end <= ends_by,
        "{:?} (local start {}) ends at local {}, after the wall clock read its nominal end {} at {}",
        slot,
        local,
        slot.end.with_timezone(&r.timezone),
        hhmm(nominal_end as u16),
        ends_by
    );
    let closes = first_reading(r.timezone, midnight + Duration::minutes(i64::from(interval.end_minute)));
    prop_assert!(slot.end <= closes, "{:?} runs past closing time {}", slot, closes);
    Ok(())
}

/// Every grid position in `[from, to)` whose local time exists, computed
/// independently of `slots_on`.
fn expected_starts(r: &Resource, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let first = from.date_naive() - Duration::days(2);
    let last = to.date_naive() + Duration::days(2);
    let mut starts = Vec::new();
    for date in first.iter_days().take_while(|d| *d <= last) {
        let weekday = date.weekday().num_days_from_monday() as usize;
        for iv in &r.weekly_hours[weekday] {
            let mut minute = u32::from(iv.start_minute);
            while minute + r.slot_minutes <= u32::from(iv.end_minute) {
                let local = date.and_hms_opt(0, 0, 0).unwrap() + Duration::minutes(i64::from(minute));
                if let Some(t) = r.timezone.from_local_datetime(&local).earliest() {
                    let t = t.with_timezone(&Utc);
                    if from <= t && t < to {
                        starts.push(t);
                    }
                }
                minute += r.slot_minutes;
            }
        }
    }
    starts.sort();
    starts.dedup();
    starts
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn every_offered_slot_is_a_true_slot_of_the_resource((tz, slot_minutes, week, from, to) in scenario()) {
        let r = resource(tz, slot_minutes, &week);
        let slots = r.slots_between(from, to);
        for pair in slots.windows(2) {
            prop_assert!(pair[0].start < pair[1].start, "not sorted or duplicated: {:?}", pair);
            prop_assert!(pair[0].end <= pair[1].start, "overlapping slots in {}: {:?}", tz, pair);
        }
        for slot in &slots {
            prop_assert!(from <= slot.start && slot.start < to, "{:?} outside [{}, {})", slot, from, to);
            check_slot(&r, slot)?;
        }
        // Nothing on the grid is left out, except slots the DST rules refuse
        // (those whose real end passes the moment the wall clock reads their nominal end).
        let offered: Vec<DateTime<Utc>> = slots.iter().map(|s| s.start).collect();
        for start in expected_starts(&r, from, to) {
            if !offered.contains(&start) {
                let refused = Slot { start, end: start + Duration::minutes(i64::from(slot_minutes)) };
                prop_assert!(
                    check_rules(&r, &refused).is_err(),
                    "grid position {} (local {}) is a valid slot but was not offered",
                    start,
                    start.with_timezone(&tz)
                );
            }
        }
    }

    #[test]
    fn slots_between_splits_at_any_instant(
        (tz, slot_minutes, week, from, to) in scenario(),
        cut in 0.0f64..=1.0,
    ) {
        let r = resource(tz, slot_minutes, &week);
        let span = (to - from).num_minutes();
        let mid = from + Duration::minutes((span as f64 * cut) as i64);
        let mut joined = r.slots_between(from, mid);
        joined.extend(r.slots_between(mid, to));
        prop_assert_eq!(r.slots_between(from, to), joined);
    }

    #[test]
    fn slot_at_accepts_exactly_the_offered_starts(
        (tz, slot_minutes, week, from, to) in scenario(),
        probes in prop::collection::vec((0.0f64..1.0, 0i64..60), 1..16),
    ) {
        let r = resource(tz, slot_minutes, &week);
        let slots = r.slots_between(from, to);
        let span = (to - from).num_seconds();
        for (at, second) in probes {
            // Minute-aligned probes mostly, some with seconds.
            let t = from + Duration::seconds(((span as f64 * at) as i64) / 60 * 60);
            let t = if second % 4 == 0 { t + Duration::seconds(second) } else { t };
            if t >= to {
                continue;
            }
            let offered = slots.iter().find(|s| s.start == t);
            match r.slot_at(t) {
                Ok(slot) => prop_assert_eq!(Some(&slot), offered, "slot_at({}) accepted a start the grid does not offer", t),
                Err(e) => {
                    prop_assert!(offered.is_none(), "slot_at({}) refused an offered slot: {:?}", t, e);
                    let local = t.with_timezone(&tz);
                    let minute = (local.hour() * 60 + local.minute()) as u16;
                    let open = r.weekly_hours[local.weekday().num_days_from_monday() as usize]
                        .iter()
                        .any(|iv| iv.contains(minute));
                    let expected = if open { GridError::OffGrid } else { GridError::OutsideHours };
                    prop_assert_eq!(e, expected, "slot_at({}) at local {}", t, local);
                }
            }
        }
    }
}

// ---- cases the properties found ---------------------------------------------

fn berlin_like(tz: &str, slot_minutes: u32, hours: (&str, &str)) -> Resource {
    use crate::domain::resource::tests::spec;
    Resource::from_spec(ResourceId::parse("r").unwrap(), spec(tz, slot_minutes, &[hours])).unwrap()
}

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// Europe/Athens, 2027-03-28: 03:00 EET jumps to 04:00 EEST. Open until
/// 03:30, which never happens that night: the doors close at 04:00 EEST
/// (01:00Z). The 5-minute grid from 00:01 has a slot at 02:56 EET whose
/// 5 real minutes end at 04:01 EEST, past closing time.
#[test]
fn a_slot_across_the_skipped_hour_does_not_run_past_closing_time() {
    let r = berlin_like("Europe/Athens", 5, ("00:01", "03:30"));
    let slots = r.slots_between(utc("2027-03-27T22:00:00Z"), utc("2027-03-28T02:00:00Z"));
    assert!(slots.iter().all(|s| s.end <= utc("2027-03-28T01:00:00Z")), "{:?}", slots.last());
    assert_eq!(slots.last().map(|s| s.start), Some(utc("2027-03-28T00:51:00Z"))); // 02:51 EET
    assert_eq!(r.slot_at(utc("2027-03-28T00:56:00Z")), Err(GridError::OffGrid));
}

/// Europe/Berlin, 2026-03-29, 90-minute slots from 00:00: the 01:30 CET slot
/// lasts until 04:00 CEST on the wall clock, so it would overlap the 03:00
/// CEST slot. The grid keeps the 03:00 slot and drops the one across the gap.
#[test]
fn a_slot_across_the_skipped_hour_does_not_overlap_the_next_one() {
    let r = berlin_like("Europe/Berlin", 90, ("00:00", "06:00"));
    let slots = r.slots_on(NaiveDate::from_ymd_opt(2026, 3, 29).unwrap());
    assert!(slots.windows(2).all(|w| w[0].end <= w[1].start), "{slots:?}");
    let starts: Vec<DateTime<Utc>> = slots.iter().map(|s| s.start).collect();
    // 00:00 CET, then 03:00 and 04:30 CEST; 01:30 CET is not offered.
    assert_eq!(starts, [utc("2026-03-28T23:00:00Z"), utc("2026-03-29T01:00:00Z"), utc("2026-03-29T02:30:00Z")]);
}
