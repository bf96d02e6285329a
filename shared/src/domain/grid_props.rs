//! Property tests of the slot grid: every time zone of the bundled tz database, arbitrary
//! valid booking types (durations, start interval, buffers), weekly hours and
//! date overrides on the 5-minute grid, date ranges around each zone's own DST
//! changes in 2026-2027.
//!
//! For every slot the grid offers, of a type and one of its durations: it is
//! on the UTC cell grid, `slot_at` gives it back, it starts inside the date's
//! opening hours (its override's, else its weekday's) at a multiple of the
//! start interval from its interval's start in local wall-clock time, it ends
//! by the time the wall clock first reads its nominal end (so it neither runs
//! past closing time nor into the next slot), it lasts exactly its duration of
//! real time; the list is sorted, without duplicates, and holds every grid
//! position that exists and obeys those rules.

use super::*;
use crate::domain::booking_type::{BookingTypeSpec, CELL_MINUTES, DEFAULT_ADVANCE_DAYS, DurationSpec};
use crate::domain::resource::{DateOverrideSpec, OpeningSpec, Price, ResourceSpec, WeeklyHoursSpec};
use crate::domain::zone::Zone;
use crate::domain::{CalendarTarget, MAX_BLOCKED_MINUTES, ResourceId};
use chrono::{Days, NaiveDateTime, Offset, Timelike};
use proptest::prelude::*;

const CASES: u32 = 256;

/// `CASES` cases, or `PROPTEST_CASES` for a longer run. A failure is reported
/// with its minimal input rather than saved into the source tree.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(CASES);
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

/// A length in minutes, a multiple of the cell: common ones mostly, any in `cells` cells otherwise.
fn length(cells: std::ops::RangeInclusive<u32>) -> impl Strategy<Value = u32> {
    let common: Vec<u32> = [5u32, 10, 15, 20, 30, 45, 60, 90, 120, 180, 240]
        .into_iter()
        .filter(|m| cells.contains(&(m / CELL_MINUTES)))
        .collect();
    prop_oneof![3 => prop::sample::select(common), 1 => cells.prop_map(|c| c * CELL_MINUTES)]
}

/// One day's opening intervals as `(start, end)` minutes, multiples of 5,
/// `start < end <= 1440`, sorted and disjoint (touching allowed).
fn day_hours() -> impl Strategy<Value = Vec<(u16, u16)>> {
    // Half-hours and 5-minute steps, with extra weight on the small hours, where DST changes happen.
    let point = prop_oneof![
        2 => (0u16..=48).prop_map(|h| h * 30),
        2 => (0u16..=288).prop_map(|m| m * 5),
        1 => (0u16..=60).prop_map(|m| m * 5),
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

/// A valid booking type: 1-3 durations, a start interval (or the default),
/// buffers when they fit in [`MAX_BLOCKED_MINUTES`].
fn booking_type() -> impl Strategy<Value = BookingTypeSpec> {
    (
        prop::collection::btree_set(length(1..=48), 1..=3),
        prop_oneof![1 => Just(None), 3 => length(1..=288).prop_map(Some)],
        (0u32..=6, 0u32..=6),
    )
        .prop_map(|(durations, start_interval_minutes, (before, after))| {
            let longest = *durations.last().expect("at least one");
            let (before, after) = (before * 3 * CELL_MINUTES, after * 3 * CELL_MINUTES);
            let fits = before + longest + after <= MAX_BLOCKED_MINUTES;
            BookingTypeSpec {
                id: "t".into(),
                name: None,
                durations: durations
                    .into_iter()
                    .rev()
                    .map(|minutes| DurationSpec { minutes, price: Price { amount: 100, currency: "eur".into() } })
                    .collect(),
                buffer_before_minutes: if fits { before } else { 0 },
                buffer_after_minutes: if fits { after } else { 0 },
                start_interval_minutes,
                min_notice_minutes: 0,
                max_advance_days: DEFAULT_ADVANCE_DAYS,
                max_per_day: None,
                seats: None,
                cancellation: Default::default(),
                reschedule: Default::default(),
            }
        })
}

fn hhmm(minutes: u16) -> String {
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

fn opening(hours: &[(u16, u16)]) -> Vec<OpeningSpec> {
    // Written in reverse: validation sorts them.
    hours.iter().rev().map(|(s, e)| OpeningSpec { start: hhmm(*s), end: hhmm(*e) }).collect()
}

fn resource(s: &Scenario) -> Resource {
    let day = |i: usize| opening(&s.week[i]);
    let spec = ResourceSpec {
        name: "Props".into(),
        timezone: s.tz.name().into(),
        slot_minutes: None,
        price: None,
        booking_types: vec![s.kind.clone()],
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
        date_overrides: s
            .overrides
            .iter()
            .map(|(date, hours)| DateOverrideSpec { date: date.to_string(), hours: opening(hours) })
            .collect(),
        calendar: CalendarTarget::None,
        team: None,
        busy_time: None,
    };
    Resource::from_spec(ResourceId::parse("props").unwrap(), spec).expect("generated specs are valid")
}

/// The local dates of 2026-2027 on which `tz` changes its UTC offset.
fn offset_changes(tz: &Zone) -> Vec<NaiveDate> {
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
fn first_reading(tz: &Zone, local: NaiveDateTime) -> DateTime<Utc> {
    let mut t = local;
    for _ in 0..=(26 * 60) {
        if let Some(found) = tz.from_local_datetime(&t).earliest() {
            return found.with_timezone(&Utc);
        }
        t += Duration::minutes(1);
    }
    panic!("no instant reads {local} in {tz}")
}

/// A zone, a booking type and the duration under test, weekly hours (per
/// weekday, minute ranges), date overrides near the range, and a UTC range.
#[derive(Debug, Clone)]
struct Scenario {
    tz: Zone,
    kind: BookingTypeSpec,
    minutes: u32,
    week: Vec<Vec<(u16, u16)>>,
    overrides: Vec<(NaiveDate, Vec<(u16, u16)>)>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
}

/// A time zone, a type, weekly hours, a few date overrides and a UTC range
/// `[from, to)` spanning 1 minute to 3 days, half the time around one of the
/// zone's offset changes.
fn scenario() -> impl Strategy<Value = Scenario> {
    (
        prop::sample::select(Zone::all()),
        booking_type(),
        any::<prop::sample::Index>(),
        prop::collection::vec(day_hours(), 7),
        prop::collection::vec((-2i64..=3, day_hours()), 0..=2),
        (any::<bool>(), any::<prop::sample::Index>(), 0u64..730, -2i64..=1),
        0i64..1440,
        1i64..=(3 * 1440),
    )
        .prop_map(|(tz, kind, which_duration, week, overrides, (near_change, which, day, shift), minute, span)| {
            let changes = offset_changes(&tz);
            let base = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
            let date = if near_change && !changes.is_empty() {
                *which.get(&changes) + Duration::days(shift)
            } else {
                base + Days::new(day)
            };
            let from = date.and_hms_opt(0, 0, 0).unwrap().and_utc() + Duration::minutes(minute - 720);
            let minutes = which_duration.get(&kind.durations).minutes;
            // One override a date; the first wins.
            let mut by_date = std::collections::BTreeMap::new();
            for (offset, hours) in overrides {
                by_date.entry(date + Duration::days(offset)).or_insert(hours);
            }
            Scenario {
                tz,
                kind,
                minutes,
                week,
                overrides: by_date.into_iter().collect(),
                from,
                to: from + Duration::minutes(span),
            }
        })
}

/// The resource's type, with the duration under test.
fn kind(r: &Resource) -> &BookingType {
    r.booking_type(None).expect("one type")
}

/// Checks one offered slot against the resource's definition, and against `slot_at`.
fn check_slot(r: &Resource, minutes: u32, slot: &Slot) -> Result<(), TestCaseError> {
    prop_assert_eq!(r.slot_at(kind(r), minutes, slot.start), Ok(*slot), "slot_at disagrees with the offered slot");
    check_rules(r, minutes, slot)
}

/// Whether a slot obeys the rules of the grid (see the module docs), computed
/// from the resource's definition alone.
fn check_rules(r: &Resource, minutes: u32, slot: &Slot) -> Result<(), TestCaseError> {
    let step = kind(r).start_interval_minutes;
    let length = Duration::minutes(i64::from(minutes));
    prop_assert_eq!(slot.end - slot.start, length, "slot {:?} does not last {} minutes", slot, minutes);
    prop_assert!(on_cell_grid(slot.start), "{:?} starts off the cell grid", slot);

    let local = slot.start.with_timezone(&r.timezone);
    let date = local.date_naive();
    prop_assert_eq!(local.second(), 0);
    let minute = (local.hour() * 60 + local.minute()) as u16;
    let interval = r.hours_on(date).iter().find(|iv| iv.contains(minute));
    let Some(interval) = interval else {
        return Err(TestCaseError::fail(format!("{slot:?} starts at local {local}, outside opening hours")));
    };
    let offset = u32::from(minute - interval.start_minute);
    prop_assert_eq!(offset % step, 0, "{:?} starts at local {}, off the start grid", slot, local);
    let nominal_end = u32::from(minute) + minutes;
    prop_assert!(nominal_end <= u32::from(interval.end_minute), "{:?} runs past its interval", slot);
    // The start is the first instant reading its local time (a repeated time is offered once, first).
    prop_assert_eq!(
        first_reading(&r.timezone, local.naive_local()),
        slot.start,
        "{:?} is a repeated time's second occurrence",
        slot
    );
    // In wall-clock time, the slot is over when the clock first reads its nominal end.
    let midnight = date.and_hms_opt(0, 0, 0).unwrap();
    let ends_by = first_reading(&r.timezone, midnight + Duration::minutes(i64::from(nominal_end)));
    prop_assert!(
        slot.end <= ends_by,
        "{:?} (local start {}) ends at local {}, after the wall clock read its nominal end {} at {}",
        slot,
        local,
        slot.end.with_timezone(&r.timezone),
        hhmm(nominal_end as u16),
        ends_by
    );
    let closes = first_reading(&r.timezone, midnight + Duration::minutes(i64::from(interval.end_minute)));
    prop_assert!(slot.end <= closes, "{:?} runs past closing time {}", slot, closes);
    Ok(())
}

/// Every start-grid position in `[from, to)` whose local time exists,
/// computed independently of `slots_on`.
fn expected_starts(r: &Resource, minutes: u32, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let step = kind(r).start_interval_minutes;
    let first = from.date_naive() - Duration::days(2);
    let last = to.date_naive() + Duration::days(2);
    let mut starts = Vec::new();
    for date in first.iter_days().take_while(|d| *d <= last) {
        for iv in r.hours_on(date) {
            let mut minute = u32::from(iv.start_minute);
            while minute + minutes <= u32::from(iv.end_minute) {
                let local = date.and_hms_opt(0, 0, 0).unwrap() + Duration::minutes(i64::from(minute));
                if let Some(t) = r.timezone.from_local_datetime(&local).earliest() {
                    let t = t.with_timezone(&Utc);
                    if from <= t && t < to {
                        starts.push(t);
                    }
                }
                minute += step;
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
    fn every_offered_slot_is_a_true_slot_of_the_resource(s in scenario()) {
        let r = resource(&s);
        let slots = r.slots_between(kind(&r), s.minutes, s.from, s.to);
        for pair in slots.windows(2) {
            prop_assert!(pair[0].start < pair[1].start, "not sorted or duplicated: {:?}", pair);
        }
        for slot in &slots {
            prop_assert!(s.from <= slot.start && slot.start < s.to, "{:?} outside [{}, {})", slot, s.from, s.to);
            check_slot(&r, s.minutes, slot)?;
        }
        // Nothing on the grid is left out, except slots the DST rules refuse
        // (those whose real end passes the moment the wall clock reads their nominal end).
        let offered: Vec<DateTime<Utc>> = slots.iter().map(|s| s.start).collect();
        for start in expected_starts(&r, s.minutes, s.from, s.to) {
            if !offered.contains(&start) {
                let refused = Slot { start, end: start + Duration::minutes(i64::from(s.minutes)) };
                prop_assert!(
                    check_rules(&r, s.minutes, &refused).is_err(),
                    "grid position {} (local {}) is a valid slot but was not offered",
                    start,
                    start.with_timezone(&s.tz)
                );
            }
        }
    }

    /// With starts every duration (the shorthand's grid), slots never overlap,
    /// even across a skipped hour.
    #[test]
    fn back_to_back_slots_never_overlap(s in scenario()) {
        let kind = BookingTypeSpec { start_interval_minutes: Some(s.minutes), ..s.kind.clone() };
        let r = resource(&Scenario { kind, ..s.clone() });
        let slots = r.slots_between(self::kind(&r), s.minutes, s.from, s.to);
        for pair in slots.windows(2) {
            prop_assert!(pair[0].end <= pair[1].start, "overlapping slots in {}: {:?}", s.tz, pair);
        }
    }

    #[test]
    fn slots_between_splits_at_any_instant(s in scenario(), cut in 0.0f64..=1.0) {
        let r = resource(&s);
        let span = (s.to - s.from).num_minutes();
        let mid = s.from + Duration::minutes((span as f64 * cut) as i64);
        let mut joined = r.slots_between(kind(&r), s.minutes, s.from, mid);
        joined.extend(r.slots_between(kind(&r), s.minutes, mid, s.to));
        prop_assert_eq!(r.slots_between(kind(&r), s.minutes, s.from, s.to), joined);
    }

    #[test]
    fn slot_at_accepts_exactly_the_offered_starts(
        s in scenario(),
        probes in prop::collection::vec((0.0f64..1.0, 0i64..60), 1..16),
    ) {
        let r = resource(&s);
        let slots = r.slots_between(kind(&r), s.minutes, s.from, s.to);
        let span = (s.to - s.from).num_seconds();
        for (at, second) in probes {
            // Minute-aligned probes mostly, some with seconds.
            let t = s.from + Duration::seconds(((span as f64 * at) as i64) / 60 * 60);
            let t = if second % 4 == 0 { t + Duration::seconds(second) } else { t };
            if t >= s.to {
                continue;
            }
            let offered = slots.iter().find(|slot| slot.start == t);
            match r.slot_at(kind(&r), s.minutes, t) {
                Ok(slot) => prop_assert_eq!(Some(&slot), offered, "slot_at({}) accepted a start the grid does not offer", t),
                Err(e) => {
                    prop_assert!(offered.is_none(), "slot_at({}) refused an offered slot: {:?}", t, e);
                    let local = t.with_timezone(&s.tz);
                    let minute = (local.hour() * 60 + local.minute()) as u16;
                    let open = r.hours_on(local.date_naive()).iter().any(|iv| iv.contains(minute));
                    let expected = if open { GridError::OffGrid } else { GridError::OutsideHours };
                    prop_assert_eq!(e, expected, "slot_at({}) at local {}", t, local);
                }
            }
        }
    }

    /// Every duration of a type is offered at the same starts, save those a
    /// longer slot does not fit after (closing time or a DST change): a
    /// longer duration's starts are a subset of a shorter one's.
    #[test]
    fn longer_durations_start_at_a_subset_of_the_shorter_ones(s in scenario()) {
        let r = resource(&s);
        let starts = |minutes: u32| -> Vec<DateTime<Utc>> {
            r.slots_between(kind(&r), minutes, s.from, s.to).iter().map(|slot| slot.start).collect()
        };
        let mut lengths: Vec<u32> = kind(&r).durations.iter().map(|d| d.minutes).collect();
        lengths.sort_unstable();
        for pair in lengths.windows(2) {
            let (short, long) = (starts(pair[0]), starts(pair[1]));
            prop_assert!(long.iter().all(|t| short.contains(t)), "{} vs {} minutes", pair[1], pair[0]);
        }
    }
}

// ---- cases the properties found ---------------------------------------------

fn shorthand(tz: &str, slot_minutes: u32, hours: (&str, &str)) -> Resource {
    use crate::domain::resource::tests::spec;
    Resource::from_spec(ResourceId::parse("r").unwrap(), spec(tz, slot_minutes, &[hours])).unwrap()
}

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// Europe/Athens, 2027-03-28: 03:00 EET jumps to 04:00 EEST. Open until
/// 03:30, which never happens that night: the doors close at 04:00 EEST
/// (01:00Z). The 10-minute grid from 00:05 has a slot at 02:55 EET whose
/// 10 real minutes end at 04:05 EEST, past closing time.
#[test]
fn a_slot_across_the_skipped_hour_does_not_run_past_closing_time() {
    let r = shorthand("Europe/Athens", 10, ("00:05", "03:30"));
    let slots = r.first_slots_between(utc("2027-03-27T22:00:00Z"), utc("2027-03-28T02:00:00Z"));
    assert!(slots.iter().all(|s| s.end <= utc("2027-03-28T01:00:00Z")), "{:?}", slots.last());
    assert_eq!(slots.last().map(|s| s.start), Some(utc("2027-03-28T00:45:00Z"))); // 02:45 EET
    assert_eq!(r.first_slot_at(utc("2027-03-28T00:55:00Z")), Err(GridError::OffGrid));
}

/// Europe/Berlin, 2026-03-29, 90-minute slots from 00:00: the 01:30 CET slot
/// lasts until 04:00 CEST on the wall clock, so it would overlap the 03:00
/// CEST slot. The grid keeps the 03:00 slot and drops the one across the gap.
#[test]
fn a_slot_across_the_skipped_hour_does_not_overlap_the_next_one() {
    let r = shorthand("Europe/Berlin", 90, ("00:00", "06:00"));
    let (kind, minutes, _) = r.first_type();
    let slots = r.slots_on(kind, minutes, NaiveDate::from_ymd_opt(2026, 3, 29).unwrap());
    assert!(slots.windows(2).all(|w| w[0].end <= w[1].start), "{slots:?}");
    let starts: Vec<DateTime<Utc>> = slots.iter().map(|s| s.start).collect();
    // 00:00 CET, then 03:00 and 04:30 CEST; 01:30 CET is not offered.
    assert_eq!(starts, [utc("2026-03-28T23:00:00Z"), utc("2026-03-29T01:00:00Z"), utc("2026-03-29T02:30:00Z")]);
}
