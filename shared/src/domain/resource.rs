//! Bookable resources: who or what is booked, when it is open, and what a slot costs.
//!
//! The wire form ([`ResourceSpec`]) is what an admin `PUT`s and what the table
//! stores; [`Resource::from_spec`] validates it once, so the rest of the crate
//! only ever sees a checked [`Resource`].

use super::booking_type::{
    BookingType, BookingTypeSpec, CELL_MINUTES, DEFAULT_TYPE_ID, DurationSpec, MAX_ADVANCE_DAYS, MAX_BLOCKED_MINUTES,
    check_minutes, check_price,
};
use super::zone::Zone;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Minutes in a day: an opening interval may end at `24:00`.
const DAY_MINUTES: u16 = 24 * 60;

/// A Stripe Checkout Session lives at least 30 minutes, and a hold must outlive
/// its session, so no hold can be shorter.
pub const MIN_HOLD_MINUTES: u32 = 30;
/// A Checkout Session expires at most 24 hours after creation.
pub const MAX_HOLD_MINUTES: u32 = 24 * 60;
/// Default hold length when a spec leaves it out.
pub const DEFAULT_HOLD_MINUTES: u32 = 30;

/// A resource id: 1–64 characters of `a-z`, `0-9` and `-`, starting with a
/// letter or digit. It appears in URLs, table keys and reservation ids, so the
/// alphabet is kept small enough to need no escaping anywhere.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(transparent)]
#[schema(value_type = String, pattern = "^[a-z0-9][a-z0-9-]{0,63}$", example = "dr-weber")]
pub struct ResourceId(String);

impl ResourceId {
    /// Parses and validates a resource id.
    pub fn parse(s: &str) -> Result<Self, ResourceError> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(ResourceError(format!(
                "resource id must be 1-64 characters of a-z, 0-9 and '-', not starting with '-' (got {s:?})"
            )))
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Read back only as a valid id (stored records name their hosts).
impl<'de> Deserialize<'de> for ResourceId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a resource definition was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ResourceError(pub(crate) String);

/// A price in the currency's minor unit (cents for EUR/USD, yen for JPY).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// Amount in minor units, as Stripe takes it.
    pub amount: i64,
    /// ISO 4217 code, lower case (`eur`, `usd`).
    pub currency: String,
}

/// One opening interval on a weekday, in the resource's local wall-clock time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpeningSpec {
    /// `HH:MM`, inclusive.
    #[schema(example = "09:00")]
    pub start: String,
    /// `HH:MM`, exclusive; `24:00` means midnight at the end of the day.
    #[schema(example = "17:00")]
    pub end: String,
}

/// Weekly opening hours, one list of intervals per weekday.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WeeklyHoursSpec {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mon: Vec<OpeningSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tue: Vec<OpeningSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub wed: Vec<OpeningSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub thu: Vec<OpeningSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fri: Vec<OpeningSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sat: Vec<OpeningSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sun: Vec<OpeningSpec>,
}

/// Where confirmed bookings of a resource are written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum CalendarTarget {
    /// Bookings are not written to any calendar.
    #[default]
    None,
    /// A CalDAV calendar collection (RFC 4791), e.g. Fastmail, iCloud, Nextcloud.
    Caldav {
        /// The calendar collection URL, ending in `/`.
        url: String,
        /// The secret holding the server's Basic credentials (JSON
        /// `{"username", "password"}`), as a [`CredentialsRef`]; none: the
        /// server is asked without credentials.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        credentials: Option<String>,
    },
    /// A Google Calendar, through the Calendar REST API.
    Google {
        /// The calendar id (`primary` or an address).
        calendar_id: String,
        /// The secret holding the calendar owner's OAuth refresh token (JSON
        /// `{"refresh_token"}`), as a [`CredentialsRef`]; none: the
        /// deployment's own refresh token, if it has one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        credentials: Option<String>,
    },
}

impl CalendarTarget {
    /// A CalDAV target without credentials.
    pub fn caldav(url: impl Into<String>) -> Self {
        Self::Caldav { url: url.into(), credentials: None }
    }

    /// A Google target on the deployment's own credentials.
    pub fn google(calendar_id: impl Into<String>) -> Self {
        Self::Google { calendar_id: calendar_id.into(), credentials: None }
    }

    /// The target's `type` as resources name it: `none`, `caldav`, `google`
    /// (also the metrics' `Provider` dimension).
    pub fn kind(&self) -> &'static str {
        match self {
            CalendarTarget::None => "none",
            CalendarTarget::Caldav { .. } => "caldav",
            CalendarTarget::Google { .. } => "google",
        }
    }

    /// The secret the target names for its credentials, as written.
    pub fn credentials(&self) -> Option<&str> {
        match self {
            CalendarTarget::None => None,
            CalendarTarget::Caldav { credentials, .. } | CalendarTarget::Google { credentials, .. } => {
                credentials.as_deref()
            }
        }
    }
}

/// Where a resource's calendar credentials are kept: a Secrets Manager
/// secret, by name or ARN, and optionally a key inside its JSON:
/// `slotguard/calendars/alice`, `slotguard/calendars/team#alice`,
/// `arn:aws:secretsmanager:eu-central-1:123456789012:secret:slotguard/calendars/alice-AbCdEf`.
///
/// The secret's value is a JSON object. Without a key, that object holds the
/// credentials' fields; with `#key`, its member `key` does (one secret can
/// then serve several hosts). Which secrets a resource may name at all is the
/// deployment's decision (a name prefix, checked when the resource is saved
/// and again before every read), not the syntax's.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CredentialsRef {
    secret_id: String,
    key: Option<String>,
}

impl CredentialsRef {
    /// Parses a reference: a secret name (1-512 of `A-Z a-z 0-9 / _ + = . @ -`,
    /// what Secrets Manager allows) or a Secrets Manager ARN, then
    /// optionally `#` and a key (1-256 of the same characters).
    pub fn parse(text: &str) -> Result<Self, ResourceError> {
        let bad = |why: &str| ResourceError(format!("calendar.credentials: {why} (got {text:?})"));
        let (secret_id, key) = match text.split_once('#') {
            Some((id, key)) => (id, Some(key)),
            None => (text, None),
        };
        if let Some(key) = key
            && !(1..=256).contains(&key.len())
        {
            return Err(bad("the key after '#' must be 1-256 characters"));
        }
        if key.is_some_and(|k| !k.chars().all(is_secret_name_char)) {
            return Err(bad("the key after '#' may hold only A-Z a-z 0-9 / _ + = . @ -"));
        }
        let name = match secret_id.strip_prefix("arn:") {
            Some(rest) => arn_secret_name(rest).ok_or_else(|| bad("not a Secrets Manager secret ARN"))?,
            None => secret_id,
        };
        if !(1..=512).contains(&name.len()) || !name.chars().all(is_secret_name_char) {
            return Err(bad("a secret name is 1-512 characters of A-Z a-z 0-9 / _ + = . @ -"));
        }
        Ok(Self { secret_id: secret_id.to_owned(), key: key.map(str::to_owned) })
    }

    /// The secret's name or ARN, as Secrets Manager takes it.
    pub fn secret_id(&self) -> &str {
        &self.secret_id
    }

    /// The secret's name: the reference itself, or the name part of an ARN
    /// (with the six characters Secrets Manager appends to it).
    pub fn secret_name(&self) -> &str {
        match self.secret_id.strip_prefix("arn:") {
            Some(rest) => arn_secret_name(rest).unwrap_or(&self.secret_id),
            None => &self.secret_id,
        }
    }

    /// The key inside the secret's JSON, if any.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }
}

impl fmt::Display for CredentialsRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Some(key) => write!(f, "{}#{key}", self.secret_id),
            None => f.write_str(&self.secret_id),
        }
    }
}

fn is_secret_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "/_+=.@-".contains(c)
}

/// The name in `{partition}:secretsmanager:{region}:{account}:secret:{name}`
/// (an ARN without its `arn:`).
fn arn_secret_name(rest: &str) -> Option<&str> {
    let mut parts = rest.splitn(6, ':');
    let (partition, service, region, account, kind, name) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let word = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    let ok = word(partition)
        && service == "secretsmanager"
        && word(region)
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && kind == "secret";
    ok.then_some(name)
}

/// Special hours for one local date: `hours: []` closes the resource that day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DateOverrideSpec {
    /// `YYYY-MM-DD`, in the resource's timezone.
    #[schema(format = Date)]
    pub date: String,
    /// Replaces the weekday's opening hours on that date.
    #[serde(default)]
    pub hours: Vec<OpeningSpec>,
}

/// A resource as an admin submits it and as the table stores it.
///
/// Either `booking_types` (one or more), or the shorthand `slot_minutes` +
/// `price`, which defines one type with id `default`: that one duration,
/// starts every `slot_minutes`, no buffers, no notice beyond the hold, free
/// cancellation and reschedule until the start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourceSpec {
    /// Shown on the Stripe Checkout page and in calendar events.
    pub name: String,
    /// IANA timezone the opening hours are written in, e.g. `Europe/Berlin`.
    pub timezone: String,
    /// Shorthand: length of every slot, in minutes (with `price`, instead of `booking_types`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot_minutes: Option<u32>,
    /// Shorthand: price of one slot (with `slot_minutes`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<Price>,
    /// What can be booked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub booking_types: Vec<BookingTypeSpec>,
    /// How long a hold keeps the slot while the customer pays (default 30, at least 30).
    #[serde(default = "default_hold_minutes")]
    pub hold_minutes: u32,
    /// Opening hours per weekday, in local time.
    pub weekly_hours: WeeklyHoursSpec,
    /// Closed dates and special hours, by local date.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub date_overrides: Vec<DateOverrideSpec>,
    /// Where confirmed bookings go.
    #[serde(default)]
    pub calendar: CalendarTarget,
    /// Makes this resource a team: its bookings are hosted by its members
    /// (other resources), whose own hours, bookings and busy time decide
    /// whether they are free.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<TeamSpec>,
    /// Whether events on that calendar which slotguard did not write block
    /// the slots they overlap (README, "Busy time"). Absent: they do not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub busy_time: Option<BusyTimeSpec>,
}

/// A team as an admin submits it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TeamSpec {
    /// 2-[`MAX_TEAM_MEMBERS`] distinct ids of resources that are not teams.
    pub members: Vec<String>,
    pub assignment: Assignment,
}

/// How a team booking is assigned to members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Assignment {
    /// One free member hosts each booking: the one with the fewest live
    /// bookings of the team on that local day, ties broken at random.
    RoundRobin,
    /// Every member hosts each booking; a slot is open only when all are free.
    Collective,
}

/// The most members a team may have.
pub const MAX_TEAM_MEMBERS: usize = 10;

/// A validated team.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Team {
    pub members: Vec<ResourceId>,
    pub assignment: Assignment,
}

/// `busy_time` of a [`ResourceSpec`]: read the resource's own `calendar`
/// for the host's other events (see [`crate::busy`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BusyTimeSpec {
    /// `true`: the host's events block slots; needs a `calendar`.
    pub enabled: bool,
}

fn default_hold_minutes() -> u32 {
    DEFAULT_HOLD_MINUTES
}

/// An opening interval in minutes since local midnight, `start < end <= 1440`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpeningInterval {
    pub start_minute: u16,
    pub end_minute: u16,
}

impl OpeningInterval {
    /// Whether a local minute-of-day falls inside the interval.
    pub fn contains(&self, minute: u16) -> bool {
        (self.start_minute..self.end_minute).contains(&minute)
    }
}

/// A validated bookable resource.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    pub id: ResourceId,
    pub name: String,
    pub timezone: Zone,
    /// At least one; ids unique. The shorthand spec gives one, [`DEFAULT_TYPE_ID`].
    pub booking_types: Vec<BookingType>,
    pub hold_minutes: u32,
    /// Index 0 is Monday, as `chrono::Weekday::num_days_from_monday`.
    pub weekly_hours: [Vec<OpeningInterval>; 7],
    /// Hours that replace the weekday's on a local date (empty: closed).
    pub date_overrides: BTreeMap<NaiveDate, Vec<OpeningInterval>>,
    pub calendar: CalendarTarget,
    /// Set when the resource is a team.
    pub team: Option<Team>,
    /// The spec this resource was built from, kept to store and return it unchanged.
    pub spec: ResourceSpec,
    /// A digest of the spec: equal versions mean equal settings. A hold
    /// notes the version it was accepted under; checkout compares.
    pub settings_version: String,
}

impl Resource {
    /// Whether the host's own calendar events block slots ([`crate::busy`]).
    pub fn busy_time_enabled(&self) -> bool {
        self.spec.busy_time.is_some_and(|b| b.enabled)
    }

    /// Validates a spec into a resource.
    pub fn from_spec(id: ResourceId, spec: ResourceSpec) -> Result<Self, ResourceError> {
        let name = spec.name.trim();
        if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
            return Err(ResourceError("name must be 1-200 printable characters".into()));
        }
        let timezone: Zone = spec
            .timezone
            .parse()
            .map_err(|_| ResourceError(format!("timezone {:?} is not an IANA timezone name", spec.timezone)))?;
        if !(MIN_HOLD_MINUTES..=MAX_HOLD_MINUTES).contains(&spec.hold_minutes) {
            return Err(ResourceError(format!(
                "hold_minutes must be between {MIN_HOLD_MINUTES} and {MAX_HOLD_MINUTES}: \
                 a hold must outlive its Stripe Checkout Session"
            )));
        }
        let booking_types = booking_types(&spec, name)?;
        let h = &spec.weekly_hours;
        let days = [&h.mon, &h.tue, &h.wed, &h.thu, &h.fri, &h.sat, &h.sun];
        let names = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
        let mut weekly_hours: [Vec<OpeningInterval>; 7] = Default::default();
        for (i, day) in days.iter().enumerate() {
            weekly_hours[i] =
                opening_intervals(day).map_err(|e| ResourceError(format!("weekly_hours.{}: {e}", names[i])))?;
        }
        let mut date_overrides = BTreeMap::new();
        for o in &spec.date_overrides {
            // Strictly `YYYY-MM-DD`: chrono alone also takes `2026-1-5` and `+2026-01-05`.
            let date = NaiveDate::parse_from_str(&o.date, "%Y-%m-%d")
                .ok()
                .filter(|d| d.format("%Y-%m-%d").to_string() == o.date)
                .ok_or_else(|| ResourceError(format!("date_overrides: {:?} is not a YYYY-MM-DD date", o.date)))?;
            let intervals =
                opening_intervals(&o.hours).map_err(|e| ResourceError(format!("date_overrides.{date}: {e}")))?;
            if date_overrides.insert(date, intervals).is_some() {
                return Err(ResourceError(format!("date_overrides: {date} is given twice")));
            }
        }
        match &spec.calendar {
            CalendarTarget::Caldav { url, .. } if !(url.starts_with("https://") || url.starts_with("http://")) => {
                return Err(ResourceError("calendar.url must be an http(s) URL".into()));
            }
            CalendarTarget::Google { calendar_id, .. } if calendar_id.trim().is_empty() => {
                return Err(ResourceError("calendar.calendar_id must not be empty".into()));
            }
            _ => {}
        }
        if let Some(credentials) = spec.calendar.credentials() {
            CredentialsRef::parse(credentials)?;
        }
        if spec.busy_time.is_some_and(|b| b.enabled) && spec.calendar == CalendarTarget::None {
            return Err(ResourceError("busy_time.enabled needs a calendar to read busy time from".into()));
        }
        let team = spec.team.as_ref().map(|t| team(&id, t, &spec.calendar, &booking_types)).transpose()?;
        Ok(Self {
            id,
            name: name.to_owned(),
            timezone,
            booking_types,
            hold_minutes: spec.hold_minutes,
            weekly_hours,
            date_overrides,
            calendar: spec.calendar.clone(),
            team,
            settings_version: settings_version(&spec),
            spec,
        })
    }
}

/// Validates a team: members, and what its booking types may be.
fn team(
    id: &ResourceId,
    spec: &TeamSpec,
    calendar: &CalendarTarget,
    types: &[BookingType],
) -> Result<Team, ResourceError> {
    let err = |m: String| Err(ResourceError(format!("team.{m}")));
    if !(2..=MAX_TEAM_MEMBERS).contains(&spec.members.len()) {
        return err(format!("members: a team has 2 to {MAX_TEAM_MEMBERS} members"));
    }
    let mut members: Vec<ResourceId> = Vec::new();
    for m in &spec.members {
        let member = ResourceId::parse(m).map_err(|e| ResourceError(format!("team.members: {e}")))?;
        if &member == id || members.contains(&member) {
            return err(format!("members: {m:?} is the team itself or given twice"));
        }
        members.push(member);
    }
    if *calendar != CalendarTarget::None {
        return Err(ResourceError(
            "calendar: a team has no calendar of its own; each member's booking is written to the member's calendar"
                .into(),
        ));
    }
    for kind in types {
        if kind.seats.is_some() {
            return err(format!("a team's booking type cannot have seats ({})", kind.id));
        }
        if spec.assignment == Assignment::Collective {
            // Hold, confirm and cancel are each one transaction of the
            // booking plus every member's cells (at most 100 items, with
            // the idempotency record and a reschedule's old cells).
            let cells = kind
                .durations
                .iter()
                .map(|d| (kind.buffer_before_minutes + d.minutes + kind.buffer_after_minutes) / CELL_MINUTES)
                .max()
                .unwrap_or(0) as usize;
            if members.len() * cells > MAX_COLLECTIVE_CELLS {
                return err(format!(
                    "members: a collective booking locks every member's cells in one transaction; {} members \
                     x {cells} cells of {} exceed {MAX_COLLECTIVE_CELLS}",
                    members.len(),
                    kind.id
                ));
            }
        }
    }
    Ok(Team { members, assignment: spec.assignment })
}

/// The most cells (members x cells of the longest blocked interval) a
/// collective booking may lock: a reschedule writes the old and new ones,
/// the booking and the idempotency record in one transaction of at most 100.
pub const MAX_COLLECTIVE_CELLS: usize = 48;

/// The first 16 hex digits of the SHA-256 of the spec's JSON (serialised
/// in field order, dates in order: the same settings give the same version).
fn settings_version(spec: &ResourceSpec) -> String {
    use sha2::Digest;
    let json = serde_json::to_vec(spec).expect("a spec always serialises");
    sha2::Sha256::digest(&json)[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// The booking types a spec defines: its list, or the one its shorthand describes.
fn booking_types(spec: &ResourceSpec, name: &str) -> Result<Vec<BookingType>, ResourceError> {
    let specs = match (&spec.slot_minutes, &spec.price, spec.booking_types.is_empty()) {
        (Some(minutes), Some(price), true) => {
            // Checked here so that a refusal names the fields the admin wrote.
            check_minutes("slot_minutes", *minutes, CELL_MINUTES..=MAX_BLOCKED_MINUTES)?;
            check_price("price", price)?;
            vec![BookingTypeSpec {
                id: DEFAULT_TYPE_ID.into(),
                name: None,
                durations: vec![DurationSpec { minutes: *minutes, price: price.clone() }],
                buffer_before_minutes: 0,
                buffer_after_minutes: 0,
                start_interval_minutes: None,
                min_notice_minutes: 0,
                // The shorthand keeps the old behaviour: any future slot (the longest window a type may have).
                max_advance_days: MAX_ADVANCE_DAYS,
                max_per_day: None,
                seats: None,
                cancellation: Default::default(),
                reschedule: Default::default(),
            }]
        }
        (None, None, false) => spec.booking_types.clone(),
        (None, None, true) => {
            return Err(ResourceError("give booking_types, or the shorthand slot_minutes and price".into()));
        }
        _ => {
            return Err(ResourceError(
                "give either booking_types or the shorthand slot_minutes and price, not a mix".into(),
            ));
        }
    };
    if specs.len() > MAX_BOOKING_TYPES {
        return Err(ResourceError(format!("at most {MAX_BOOKING_TYPES} booking_types")));
    }
    let types = specs.iter().map(|t| BookingType::from_spec(t, name)).collect::<Result<Vec<_>, _>>()?;
    for (i, t) in types.iter().enumerate() {
        if types[..i].iter().any(|other| other.id == t.id) {
            return Err(ResourceError(format!("booking_types: id {:?} is given twice", t.id)));
        }
    }
    Ok(types)
}

/// The most booking types one resource may have.
pub const MAX_BOOKING_TYPES: usize = 20;

/// One day's opening intervals: each on the cell grid, sorted, not overlapping.
fn opening_intervals(day: &[OpeningSpec]) -> Result<Vec<OpeningInterval>, String> {
    let mut intervals = day.iter().map(parse_interval).collect::<Result<Vec<_>, _>>()?;
    intervals.sort_by_key(|iv| iv.start_minute);
    if intervals.windows(2).any(|w| w[0].end_minute > w[1].start_minute) {
        return Err("intervals overlap".into());
    }
    Ok(intervals)
}

fn parse_interval(o: &OpeningSpec) -> Result<OpeningInterval, String> {
    let start_minute = parse_hhmm(&o.start)?;
    let end_minute = parse_hhmm(&o.end)?;
    if start_minute >= end_minute {
        return Err(format!("interval {}-{} must start before it ends", o.start, o.end));
    }
    let cell = CELL_MINUTES as u16;
    if !start_minute.is_multiple_of(cell) || !end_minute.is_multiple_of(cell) {
        return Err(format!("interval {}-{}: times must be multiples of {CELL_MINUTES} minutes", o.start, o.end));
    }
    Ok(OpeningInterval { start_minute, end_minute })
}

/// `HH:MM` → minutes since midnight, `24:00` allowed.
fn parse_hhmm(s: &str) -> Result<u16, String> {
    let bad = || format!("{s:?} is not a HH:MM time");
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let h: u16 = h.parse().map_err(|_| bad())?;
    let m: u16 = m.parse().map_err(|_| bad())?;
    let minutes = h * 60 + m;
    if m >= 60 || minutes > DAY_MINUTES {
        return Err(bad());
    }
    Ok(minutes)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::domain::booking_type::tests::type_spec;

    fn week(day: Vec<OpeningSpec>) -> WeeklyHoursSpec {
        WeeklyHoursSpec {
            mon: day.clone(),
            tue: day.clone(),
            wed: day.clone(),
            thu: day.clone(),
            fri: day.clone(),
            sat: day.clone(),
            sun: day,
        }
    }

    pub(crate) fn opening(hours: &[(&str, &str)]) -> Vec<OpeningSpec> {
        hours.iter().map(|(s, e)| OpeningSpec { start: (*s).into(), end: (*e).into() }).collect()
    }

    /// A valid shorthand spec (one type, `slot_minutes` at 45.00 EUR, the
    /// same hours every day) used across the crate's unit tests.
    pub(crate) fn spec(timezone: &str, slot_minutes: u32, hours: &[(&str, &str)]) -> ResourceSpec {
        ResourceSpec {
            name: "Coaching".into(),
            timezone: timezone.into(),
            slot_minutes: Some(slot_minutes),
            price: Some(Price { amount: 4500, currency: "eur".into() }),
            booking_types: Vec::new(),
            hold_minutes: 30,
            weekly_hours: week(opening(hours)),
            date_overrides: Vec::new(),
            calendar: CalendarTarget::None,
            team: None,
            busy_time: None,
        }
    }

    /// A valid spec with these booking types and the same hours every day.
    pub(crate) fn typed_spec(timezone: &str, types: Vec<BookingTypeSpec>, hours: &[(&str, &str)]) -> ResourceSpec {
        ResourceSpec { slot_minutes: None, price: None, booking_types: types, ..spec(timezone, 30, hours) }
    }

    fn refusal(spec: ResourceSpec) -> String {
        match Resource::from_spec(ResourceId::parse("r").unwrap(), spec) {
            Ok(_) => panic!("accepted"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn teams_are_checked_members_assignment_calendar_seats_and_collective_size() {
        let team = |members: &[&str], assignment: Assignment| ResourceSpec {
            team: Some(TeamSpec { members: members.iter().map(|m| (*m).to_owned()).collect(), assignment }),
            ..spec("UTC", 60, &[("09:00", "17:00")])
        };
        let ok = Resource::from_spec(ResourceId::parse("t").unwrap(), team(&["a", "b"], Assignment::RoundRobin));
        let members: Vec<String> = ok.unwrap().team.unwrap().members.iter().map(|m| m.to_string()).collect();
        assert_eq!(members, ["a", "b"]);
        assert!(refusal(team(&["a"], Assignment::RoundRobin)).contains("2 to 10"));
        assert!(refusal(team(&["a", "a"], Assignment::Collective)).contains("given twice"));
        assert!(refusal(team(&["a", "r"], Assignment::Collective)).contains("the team itself"));
        assert!(refusal(team(&["a", "B"], Assignment::Collective)).contains("team.members"));
        let with_calendar = ResourceSpec {
            calendar: CalendarTarget::caldav("https://dav.example/cal/"),
            ..team(&["a", "b"], Assignment::RoundRobin)
        };
        assert!(refusal(with_calendar).contains("no calendar of its own"));
        let seated = BookingTypeSpec { seats: Some(3), ..type_spec("class", &[60]) };
        let seats_on_team = ResourceSpec {
            booking_types: vec![seated],
            slot_minutes: None,
            price: None,
            ..team(&["a", "b"], Assignment::RoundRobin)
        };
        assert!(refusal(seats_on_team).contains("cannot have seats"));
        // Collective: members x cells of the longest blocked interval <= 48.
        let four_hours = ResourceSpec {
            booking_types: vec![type_spec("panel", &[60])],
            slot_minutes: None,
            price: None,
            ..team(&["a", "b", "c", "d"], Assignment::Collective)
        };
        assert!(Resource::from_spec(ResourceId::parse("t").unwrap(), four_hours.clone()).is_ok(), "4 x 12 = 48");
        let five = ResourceSpec {
            team: Some(TeamSpec {
                members: ["a", "b", "c", "d", "e"].map(String::from).to_vec(),
                assignment: Assignment::Collective,
            }),
            ..four_hours
        };
        assert!(refusal(five).contains("exceed 48"));
    }

    #[test]
    fn resource_ids_use_a_url_safe_alphabet() {
        assert!(ResourceId::parse("demo").is_ok());
        assert!(ResourceId::parse("room-2b").is_ok());
        for bad in ["", "-x", "Demo", "a/b", "a b", "a_b", &"x".repeat(65)] {
            assert!(ResourceId::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn hours_parse_and_allow_end_of_day() {
        assert_eq!(parse_hhmm("00:00"), Ok(0));
        assert_eq!(parse_hhmm("09:30"), Ok(570));
        assert_eq!(parse_hhmm("24:00"), Ok(1440));
        for bad in ["24:01", "9:00", "09:60", "0900", "ab:cd", "25:00"] {
            assert!(parse_hhmm(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn invalid_specs_are_refused_with_a_reason() {
        let id = ResourceId::parse("r").unwrap();
        let ok = spec("Europe/Berlin", 30, &[("09:00", "17:00")]);
        assert!(Resource::from_spec(id.clone(), ok.clone()).is_ok());

        let eur = |amount: i64, currency: &str| Some(Price { amount, currency: currency.into() });
        let cases: Vec<(ResourceSpec, &str)> = vec![
            (ResourceSpec { timezone: "Mars/Olympus".into(), ..ok.clone() }, "timezone"),
            (ResourceSpec { slot_minutes: Some(0), ..ok.clone() }, "slot_minutes"),
            (ResourceSpec { slot_minutes: Some(32), ..ok.clone() }, "slot_minutes: must be a multiple of 5"),
            (ResourceSpec { slot_minutes: Some(245), ..ok.clone() }, "slot_minutes"),
            (ResourceSpec { hold_minutes: 29, ..ok.clone() }, "hold_minutes"),
            (ResourceSpec { hold_minutes: 24 * 60 + 1, ..ok.clone() }, "hold_minutes"),
            (ResourceSpec { price: eur(0, "eur"), ..ok.clone() }, "price: amount"),
            (ResourceSpec { price: eur(100_000_000, "eur"), ..ok.clone() }, "price: amount"),
            (ResourceSpec { price: eur(100, "EUR"), ..ok.clone() }, "price: currency"),
            (ResourceSpec { name: " ".into(), ..ok.clone() }, "name"),
            (
                spec("Europe/Berlin", 30, &[("10:00", "09:00")]),
                "weekly_hours.mon: interval 10:00-09:00 must start before",
            ),
            (
                spec("Europe/Berlin", 30, &[("09:00", "12:00"), ("11:00", "13:00")]),
                "weekly_hours.mon: intervals overlap",
            ),
            (spec("Europe/Berlin", 30, &[("09:02", "12:00")]), "multiples of 5 minutes"),
            (spec("Europe/Berlin", 30, &[("09:00", "11:59")]), "multiples of 5 minutes"),
            (ResourceSpec { calendar: CalendarTarget::caldav("ftp://x"), ..ok.clone() }, "calendar.url"),
            (ResourceSpec { busy_time: Some(BusyTimeSpec { enabled: true }), ..ok.clone() }, "busy_time.enabled"),
            (ResourceSpec { calendar: CalendarTarget::google(" "), ..ok.clone() }, "calendar.calendar_id"),
            (
                ResourceSpec {
                    calendar: CalendarTarget::Caldav {
                        url: "https://dav.example.com/".into(),
                        credentials: Some("stripe keys".into()),
                    },
                    ..ok.clone()
                },
                "calendar.credentials",
            ),
        ];
        for (spec, needle) in cases {
            let err = refusal(spec);
            assert!(err.contains(needle), "{err} should mention {needle}");
        }
    }

    #[test]
    fn the_shorthand_defines_one_default_type() {
        let r = Resource::from_spec(ResourceId::parse("r").unwrap(), spec("UTC", 45, &[("09:00", "17:00")])).unwrap();
        assert_eq!(r.booking_types.len(), 1);
        let t = &r.booking_types[0];
        assert_eq!(t.id, DEFAULT_TYPE_ID);
        assert_eq!(t.name, "Coaching", "a type is named after its resource by default");
        assert_eq!(t.durations, [DurationSpec { minutes: 45, price: Price { amount: 4500, currency: "eur".into() } }]);
        assert_eq!(t.start_interval_minutes, 45);
        assert_eq!((t.buffer_before_minutes, t.buffer_after_minutes, t.min_notice_minutes), (0, 0, 0));
        assert_eq!((t.max_advance_days, t.max_per_day), (MAX_ADVANCE_DAYS, None));
        assert_eq!(t.cancellation, Default::default());
        assert_eq!(t.reschedule, Default::default());
    }

    #[test]
    fn booking_types_or_the_shorthand_but_not_both_nor_neither() {
        let ok = spec("UTC", 30, &[("09:00", "17:00")]);
        let one = vec![type_spec("intro", &[30])];
        let price = ok.price.clone();
        let cases: Vec<(ResourceSpec, &str)> = vec![
            (ResourceSpec { slot_minutes: None, price: None, ..ok.clone() }, "give booking_types, or the shorthand"),
            (ResourceSpec { booking_types: one.clone(), ..ok.clone() }, "not a mix"),
            (ResourceSpec { price: None, booking_types: one.clone(), ..ok.clone() }, "not a mix"),
            (ResourceSpec { slot_minutes: None, ..ok.clone() }, "not a mix"),
            (ResourceSpec { price: None, ..ok.clone() }, "not a mix"),
            (ResourceSpec { slot_minutes: None, price, booking_types: one, ..ok.clone() }, "not a mix"),
            (
                typed_spec("UTC", vec![type_spec("intro", &[30]), type_spec("intro", &[60])], &[("09:00", "17:00")]),
                "booking_types: id \"intro\" is given twice",
            ),
            (
                typed_spec("UTC", (0..=MAX_BOOKING_TYPES).map(|i| type_spec(&format!("t{i}"), &[30])).collect(), &[]),
                "at most 20 booking_types",
            ),
            // A type's own refusal names the type.
            (typed_spec("UTC", vec![type_spec("intro", &[31])], &[]), "booking_types.intro.durations.minutes"),
        ];
        for (spec, needle) in cases {
            let err = refusal(spec);
            assert!(err.contains(needle), "{err} should mention {needle}");
        }
        let two = typed_spec("UTC", vec![type_spec("intro", &[30]), type_spec("session", &[60, 90])], &[]);
        let r = Resource::from_spec(ResourceId::parse("r").unwrap(), two).unwrap();
        let ids: Vec<&str> = r.booking_types.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids, ["intro", "session"], "types keep their order");
    }

    #[test]
    fn date_overrides_are_checked_and_indexed_by_date() {
        let day = |date: &str, hours: &[(&str, &str)]| DateOverrideSpec { date: date.into(), hours: opening(hours) };
        let with = |overrides: Vec<DateOverrideSpec>| ResourceSpec {
            date_overrides: overrides,
            ..spec("Europe/Berlin", 30, &[("09:00", "17:00")])
        };
        let r = Resource::from_spec(
            ResourceId::parse("r").unwrap(),
            with(vec![day("2026-12-31", &[("10:00", "12:00"), ("08:00", "09:00")]), day("2026-12-24", &[])]),
        )
        .unwrap();
        let dec = |d: u32| NaiveDate::from_ymd_opt(2026, 12, d).unwrap();
        assert_eq!(r.date_overrides.keys().copied().collect::<Vec<_>>(), [dec(24), dec(31)]);
        assert!(r.date_overrides[&dec(24)].is_empty(), "no hours: closed");
        let iv = |start_minute, end_minute| OpeningInterval { start_minute, end_minute };
        assert_eq!(r.date_overrides[&dec(31)], [iv(480, 540), iv(600, 720)], "sorted");

        let cases: Vec<(ResourceSpec, &str)> = vec![
            (with(vec![day("2026-02-30", &[])]), "date_overrides: \"2026-02-30\" is not a YYYY-MM-DD date"),
            (with(vec![day("24.12.2026", &[])]), "date_overrides: \"24.12.2026\" is not a YYYY-MM-DD date"),
            (with(vec![day("2026-1-5", &[])]), "is not a YYYY-MM-DD date"),
            (with(vec![day("+2026-01-05", &[])]), "is not a YYYY-MM-DD date"),
            (with(vec![day("2026-12-24", &[]), day("2026-12-24", &[("09:00", "10:00")])]), "2026-12-24 is given twice"),
            (
                with(vec![day("2026-12-24", &[("09:00", "12:00"), ("11:30", "13:00")])]),
                "date_overrides.2026-12-24: intervals overlap",
            ),
            (with(vec![day("2026-12-24", &[("09:00", "09:03")])]), "date_overrides.2026-12-24: interval 09:00-09:03"),
        ];
        for (spec, needle) in cases {
            let err = refusal(spec);
            assert!(err.contains(needle), "{err} should mention {needle}");
        }
    }

    #[test]
    fn hold_minutes_defaults_to_thirty() {
        let json = r#"{"name":"x","timezone":"UTC","slot_minutes":30,"price":{"amount":1,"currency":"usd"},"weekly_hours":{}}"#;
        let spec: ResourceSpec = serde_json::from_str(json).unwrap();
        assert_eq!(spec.hold_minutes, 30);
        assert_eq!(spec.calendar, CalendarTarget::None);
        assert!(spec.booking_types.is_empty() && spec.date_overrides.is_empty());
    }

    #[test]
    fn a_spec_with_types_and_overrides_reads_and_writes_back_unchanged() {
        let json = r#"{
            "name": "Studio",
            "timezone": "Europe/Berlin",
            "booking_types": [
                {"id": "intro", "durations": [{"minutes": 30, "price": {"amount": 0, "currency": "eur"}}]},
                {"id": "session", "durations": [{"minutes": 60, "price": {"amount": 9000, "currency": "eur"}}],
                 "buffer_after_minutes": 15}
            ],
            "weekly_hours": {"mon": [{"start": "09:00", "end": "17:00"}]},
            "date_overrides": [{"date": "2026-12-24"}, {"date": "2026-12-31", "hours": [{"start": "10:00", "end": "12:00"}]}]
        }"#;
        let spec: ResourceSpec = serde_json::from_str(json).unwrap();
        assert_eq!(spec.slot_minutes, None);
        assert!(spec.date_overrides[0].hours.is_empty(), "hours default to none: closed");
        let back: ResourceSpec = serde_json::from_value(serde_json::to_value(&spec).unwrap()).unwrap();
        assert_eq!(back, spec);
        let written = serde_json::to_value(&spec).unwrap();
        assert!(written.get("slot_minutes").is_none() && written.get("price").is_none(), "{written}");
        // The intro's zero price is refused by validation, not by serde.
        assert!(refusal(spec).contains("booking_types.intro.durations.price: amount"));
        assert!(serde_json::from_str::<ResourceSpec>(&json.replace("\"name\"", "\"nmae\": 1, \"name\"")).is_err());
    }

    #[test]
    fn credentials_references_name_a_secret_and_optionally_a_key() {
        let plain = CredentialsRef::parse("slotguard/calendars/alice").unwrap();
        assert_eq!(
            (plain.secret_id(), plain.secret_name(), plain.key()),
            ("slotguard/calendars/alice", "slotguard/calendars/alice", None)
        );
        let keyed = CredentialsRef::parse("slotguard/calendars/team#alice@example.com").unwrap();
        assert_eq!((keyed.secret_name(), keyed.key()), ("slotguard/calendars/team", Some("alice@example.com")));
        assert_eq!(keyed.to_string(), "slotguard/calendars/team#alice@example.com");
        let arn = "arn:aws:secretsmanager:eu-central-1:123456789012:secret:slotguard/calendars/alice-AbCdEf";
        let by_arn = CredentialsRef::parse(arn).unwrap();
        assert_eq!((by_arn.secret_id(), by_arn.secret_name()), (arn, "slotguard/calendars/alice-AbCdEf"));
        let cn = "arn:aws-cn:secretsmanager:cn-north-1:123456789012:secret:x#k";
        assert_eq!(CredentialsRef::parse(cn).unwrap().key(), Some("k"));
        for bad in [
            "",
            "a b",
            "a#",
            "a#b#c",
            "#k",
            "name:with:colons",
            "arn:aws:s3:::bucket",
            "arn:aws:secretsmanager:eu-central-1:1234:secret:x",
            "arn:aws:secretsmanager:eu-central-1:123456789012:parameter:x",
            "arn:aws:secretsmanager:eu-central-1:123456789012:secret:",
            &"x".repeat(513),
        ] {
            assert!(CredentialsRef::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn calendar_targets_read_and_write_their_credentials_only_when_given() {
        let json = r#"{"type":"caldav","url":"https://dav.example.com/cal/","credentials":"slotguard/calendars/a"}"#;
        let target: CalendarTarget = serde_json::from_str(json).unwrap();
        assert_eq!(target.credentials(), Some("slotguard/calendars/a"));
        assert_eq!(serde_json::to_string(&target).unwrap(), json);
        let bare = CalendarTarget::caldav("https://dav.example.com/cal/");
        assert_eq!(
            serde_json::to_value(&bare).unwrap(),
            serde_json::json!({"type":"caldav","url":"https://dav.example.com/cal/"})
        );
        let google: CalendarTarget =
            serde_json::from_str(r#"{"type":"google","calendar_id":"primary","credentials":"slotguard/calendars/g"}"#)
                .unwrap();
        assert_eq!(google.credentials(), Some("slotguard/calendars/g"));
        assert!(
            serde_json::from_str::<CalendarTarget>(r#"{"type":"caldav","url":"https://x/","credential":"x"}"#).is_err()
        );
    }
}
