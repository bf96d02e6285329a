//! Booking types: what a customer can book of a resource, for how long, at
//! what price, and under which notice, limits and policies.
//!
//! A resource offers one or more types (a 30-minute intro call, a 90-minute
//! session, ...). A type has one or more durations, each with its own price,
//! buffers kept free before and after every booking, a start-time interval
//! independent of the duration, a minimum notice, a rolling advance window,
//! an optional limit of bookings per local day, and the cancellation and
//! reschedule policy its customers agree to when they pay.
//!
//! # The conflict rule and the cell grid
//!
//! Two live bookings of one resource conflict when their *blocked intervals*
//! `[start − buffer_before, end + buffer_after)` overlap, whatever their types.
//! The storage adapter enforces this with one lock item per
//! [`CELL_MINUTES`]-minute UTC cell a blocked interval covers, all written in
//! one transaction, each conditioned on being free (see
//! [`crate::adapters::dynamo`]). Every duration, buffer, interval and opening
//! time is a multiple of [`CELL_MINUTES`], and a start is offered only on the
//! cell grid, so a blocked interval covers whole cells exactly: two blocked
//! intervals overlap if and only if they share a cell. No false conflicts, no
//! missed ones, and a booking keeps the buffers it was made with even after
//! the resource's settings change.

use super::resource::{Price, ResourceError};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// The size of a lock cell, in minutes. Every length in a booking type is a
/// multiple of it.
pub const CELL_MINUTES: u32 = 5;

/// The longest blocked interval (buffer before + duration + buffer after) a
/// type may have, in minutes: 48 cells. A reschedule writes the old and the
/// new cells plus the booking in one `TransactWriteItems`, whose limit is 100
/// items.
pub const MAX_BLOCKED_MINUTES: u32 = 240;

/// The id of the type a resource's shorthand spec (`slot_minutes` + `price`) defines.
pub const DEFAULT_TYPE_ID: &str = "default";

/// One duration a type can be booked for, with its price.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DurationSpec {
    pub minutes: u32,
    pub price: Price,
}

/// What a customer cancelling after the free window gets.
///
/// In JSON (serde's externally tagged form, variant names in snake case):
/// `"late": "refuse"`, or `"late": {"refund": {"percent": 50}}`. serde also
/// reads `{"refuse": null}` and the sequence form `{"refund": [50]}`, and
/// always writes the first two forms. `"refund"` without a percentage, an
/// unknown key next to `percent`, or a percentage above 255 (not a `u8`) is a
/// deserialization error; 101-255 is refused by validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum LateCancellation {
    /// The cancellation is refused (`409 outside_cancellation_window`).
    Refuse,
    /// Cancelled with this percentage of the amount refunded (0-100).
    Refund {
        #[schema(maximum = 100)]
        percent: u8,
    },
}

/// When a customer may cancel, and what they get back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancellationPolicy {
    /// Free cancellation (full refund) until this many hours before the start.
    #[serde(default)]
    pub free_until_hours: u32,
    /// After that.
    #[serde(default = "refuse")]
    pub late: LateCancellation,
}

fn refuse() -> LateCancellation {
    LateCancellation::Refuse
}

impl Default for CancellationPolicy {
    /// Free cancellation until the start.
    fn default() -> Self {
        Self { free_until_hours: 0, late: LateCancellation::Refuse }
    }
}

/// Whether and until when a customer may move a booking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReschedulePolicy {
    #[serde(default = "yes")]
    pub allowed: bool,
    /// Until this many hours before the (current) start.
    #[serde(default)]
    pub until_hours: u32,
}

fn yes() -> bool {
    true
}

impl Default for ReschedulePolicy {
    /// Allowed until the start.
    fn default() -> Self {
        Self { allowed: true, until_hours: 0 }
    }
}

/// A booking type as an admin submits it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BookingTypeSpec {
    /// 1-64 characters of `a-z`, `0-9`, `-`; unique within the resource.
    pub id: String,
    /// Shown to customers; defaults to the resource's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// At least one; distinct minutes.
    pub durations: Vec<DurationSpec>,
    #[serde(default)]
    pub buffer_before_minutes: u32,
    #[serde(default)]
    pub buffer_after_minutes: u32,
    /// Starts are offered every this many minutes from the start of each
    /// opening interval; defaults to the shortest duration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_interval_minutes: Option<u32>,
    /// No slot starting sooner than this is offered or accepted. A hold must
    /// also end before its slot starts, so the effective notice is at least
    /// the resource's `hold_minutes`.
    #[serde(default)]
    pub min_notice_minutes: u32,
    /// Rolling window: no slot starting later than this many days ahead (default 365).
    #[serde(default = "default_advance_days")]
    pub max_advance_days: u32,
    /// At most this many live bookings of this type per local day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_per_day: Option<u32>,
    /// Seats per slot (2-[`MAX_SEATS`]): that many customers can each hold,
    /// pay for and cancel a seat of the same start. None: one booking per slot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seats: Option<u32>,
    #[serde(default)]
    pub cancellation: CancellationPolicy,
    #[serde(default)]
    pub reschedule: ReschedulePolicy,
}

/// The shortest notice of any booking: a Checkout Session created right
/// after the hold lives Stripe's minimum plus slotguard's margin, and the
/// hold outlives it by the grace ([`crate::domain::payment::session_window`]);
/// checkout refuses a slot that starts before then (`422 too_soon`), so no
/// such slot is offered or held.
pub const CHECKOUT_LEAD_MINUTES: u32 = 45;

/// The longest advance window a type may have: ten years.
pub const MAX_ADVANCE_DAYS: u32 = 3650;

/// The advance window when a type does not name one.
pub const DEFAULT_ADVANCE_DAYS: u32 = 365;

fn default_advance_days() -> u32 {
    DEFAULT_ADVANCE_DAYS
}

/// A validated booking type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct BookingType {
    pub id: String,
    pub name: String,
    pub durations: Vec<DurationSpec>,
    pub buffer_before_minutes: u32,
    pub buffer_after_minutes: u32,
    pub start_interval_minutes: u32,
    pub min_notice_minutes: u32,
    pub max_advance_days: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_per_day: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seats: Option<u32>,
    pub cancellation: CancellationPolicy,
    pub reschedule: ReschedulePolicy,
}

impl BookingType {
    /// Validates a spec; `resource_name` is the default display name.
    pub fn from_spec(spec: &BookingTypeSpec, resource_name: &str) -> Result<Self, ResourceError> {
        validate::booking_type(spec, resource_name)
    }

    /// The duration `minutes` (the first one when `None`), or `None` if the type has no such duration.
    pub fn duration(&self, minutes: Option<u32>) -> Option<&DurationSpec> {
        match minutes {
            None => self.durations.first(),
            Some(m) => self.durations.iter().find(|d| d.minutes == m),
        }
    }

    /// The [`BookingTerms`] a booking of `minutes` of this type is made under.
    pub fn terms(&self, minutes: u32) -> BookingTerms {
        BookingTerms {
            booking_type: self.id.clone(),
            duration_minutes: minutes,
            buffer_before_minutes: self.buffer_before_minutes,
            buffer_after_minutes: self.buffer_after_minutes,
            cancellation: self.cancellation,
            reschedule: self.reschedule,
            seats: self.seats,
        }
    }

    /// The instants a new booking may start in at `now`: `[earliest, latest]`.
    /// `earliest` is `now` plus [`BookingType::notice`]; `latest` is `now`
    /// plus `max_advance_days`.
    pub fn window(&self, now: DateTime<Utc>, hold_minutes: u32) -> (DateTime<Utc>, DateTime<Utc>) {
        let notice = self.notice(hold_minutes);
        (now + Duration::minutes(i64::from(notice)), now + Duration::days(i64::from(self.max_advance_days)))
    }

    /// The effective notice in minutes: the largest of the type's minimum
    /// notice, `hold_minutes` (a hold must end before its slot starts) and
    /// [`CHECKOUT_LEAD_MINUTES`] (a hold paid for at once must still be
    /// payable: its Checkout Session and grace end before the start).
    pub fn notice(&self, hold_minutes: u32) -> u32 {
        self.min_notice_minutes.max(hold_minutes).max(CHECKOUT_LEAD_MINUTES)
    }
}

/// What a booking was made under, stored with it so its conflicts and its
/// policies stay the ones the customer paid for, whatever the resource's
/// settings become later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookingTerms {
    pub booking_type: String,
    pub duration_minutes: u32,
    pub buffer_before_minutes: u32,
    pub buffer_after_minutes: u32,
    pub cancellation: CancellationPolicy,
    pub reschedule: ReschedulePolicy,
    /// The type's seats per slot when the booking was made (a seat of a
    /// seated slot); `None` for a booking that has its slot to itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seats: Option<u32>,
}

impl BookingTerms {
    /// The blocked interval of a booking `[start, end)` under these terms.
    pub fn blocked(&self, start: DateTime<Utc>, end: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
        (
            start - Duration::minutes(i64::from(self.buffer_before_minutes)),
            end + Duration::minutes(i64::from(self.buffer_after_minutes)),
        )
    }
}

/// The start of every [`CELL_MINUTES`] cell that `[from, to)` overlaps, in
/// order; none when the interval is empty (`from >= to`).
pub fn cells(from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let mut out = Vec::new();
    if from >= to {
        return out;
    }
    let size = i64::from(CELL_MINUTES) * 60;
    let mut t = DateTime::from_timestamp(from.timestamp().div_euclid(size) * size, 0).expect("inside chrono's range");
    // Compared as instants, not whole seconds: `[09:04:59.5, 09:05:00.5)` touches the 09:05 cell.
    while t < to {
        out.push(t);
        let Some(next) = t.checked_add_signed(Duration::seconds(size)) else { break };
        t = next;
    }
    out
}

/// Whether `t` is on the cell grid.
pub fn on_cell_grid(t: DateTime<Utc>) -> bool {
    t.timestamp_subsec_nanos() == 0 && t.timestamp().rem_euclid(i64::from(CELL_MINUTES) * 60) == 0
}

/// Who is acting on a booking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    /// The customer, with the booking's token.
    Customer,
    /// The host or operator, with admin rights: policies do not apply to them.
    Host,
}

/// What a cancellation returns, or that it is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelDecision {
    /// Cancel and refund `amount` minor units (0 means cancel without refund).
    Refund { amount: i64 },
    /// Outside the window and the policy refuses late cancellations.
    Refuse,
}

impl CancellationPolicy {
    /// What cancelling a booking of `amount` that starts at `start` gives at `now`.
    /// The host always refunds in full; a customer gets a full refund until
    /// `free_until_hours` before the start, then what `late` says until the
    /// start, and cannot cancel a booking that has started. Partial amounts
    /// are rounded down to the minor unit.
    pub fn decide(&self, actor: Actor, amount: i64, start: DateTime<Utc>, now: DateTime<Utc>) -> CancelDecision {
        self.decide_by(actor, amount, start, self.free_until(start), now)
    }

    /// When free cancellation of a booking starting at `start` ends.
    pub fn free_until(&self, start: DateTime<Utc>) -> DateTime<Utc> {
        start - Duration::hours(i64::from(self.free_until_hours))
    }

    /// [`Self::decide`] with free cancellation ending at `free_until` (a
    /// booking moved after its window closed keeps the closed window).
    pub fn decide_by(
        &self,
        actor: Actor,
        amount: i64,
        start: DateTime<Utc>,
        free_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> CancelDecision {
        if actor == Actor::Host || now <= free_until {
            return CancelDecision::Refund { amount };
        }
        // A booking that has started is the customer's to attend, not to cancel.
        if now >= start {
            return CancelDecision::Refuse;
        }
        match self.late {
            LateCancellation::Refuse => CancelDecision::Refuse,
            LateCancellation::Refund { percent } => {
                // In i128: no overflow whatever the amount. The quotient is at most `amount`.
                let part = (i128::from(amount) * i128::from(percent.min(100))).div_euclid(100);
                CancelDecision::Refund { amount: i64::try_from(part).expect("at most the amount") }
            }
        }
    }
}

impl ReschedulePolicy {
    /// Whether `actor` may move a booking starting at `start` at `now`. The host always may.
    pub fn allows(&self, actor: Actor, start: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        actor == Actor::Host || (self.allowed && now + Duration::hours(i64::from(self.until_hours)) <= start)
    }
}

/// The checks of a length in minutes and of a price, for a resource's shorthand spec.
pub(crate) use validate::{minutes as check_minutes, price as check_price};

mod validate {
    use super::*;

    fn err(field: &str, message: impl std::fmt::Display) -> ResourceError {
        ResourceError(format!("{field}: {message}"))
    }

    /// A length in minutes: a multiple of the cell size within `range`.
    pub(crate) fn minutes(field: &str, value: u32, range: std::ops::RangeInclusive<u32>) -> Result<u32, ResourceError> {
        if !range.contains(&value) || !value.is_multiple_of(CELL_MINUTES) {
            return Err(err(
                field,
                format!(
                    "must be a multiple of {CELL_MINUTES} minutes between {} and {} (got {value})",
                    range.start(),
                    range.end()
                ),
            ));
        }
        Ok(value)
    }

    pub(crate) fn price(field: &str, price: &Price) -> Result<(), ResourceError> {
        // Stripe's limit for a Checkout Session amount is 8 digits in minor units.
        if !(1..=99_999_999).contains(&price.amount) {
            return Err(err(field, "amount must be between 1 and 99999999 minor units"));
        }
        if price.currency.len() != 3 || !price.currency.bytes().all(|b| b.is_ascii_lowercase()) {
            return Err(err(field, "currency must be a lower-case ISO 4217 code like \"eur\""));
        }
        Ok(())
    }

    pub(super) fn booking_type(spec: &BookingTypeSpec, resource_name: &str) -> Result<BookingType, ResourceError> {
        let id = &spec.id;
        let id_ok = !id.is_empty()
            && id.len() <= 64
            && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !id.starts_with('-');
        if !id_ok {
            return Err(err(
                "booking_types.id",
                format!("must be 1-64 characters of a-z, 0-9 and '-', not starting with '-' (got {id:?})"),
            ));
        }
        let at = |field: &str| format!("booking_types.{id}.{field}");
        let name = spec.name.as_deref().unwrap_or(resource_name).trim();
        if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
            return Err(err(&at("name"), "must be 1-200 printable characters"));
        }
        if spec.durations.is_empty() || spec.durations.len() > 10 {
            return Err(err(&at("durations"), "give 1-10 durations"));
        }
        let before = minutes(&at("buffer_before_minutes"), spec.buffer_before_minutes, 0..=120)?;
        let after = minutes(&at("buffer_after_minutes"), spec.buffer_after_minutes, 0..=120)?;
        for (i, d) in spec.durations.iter().enumerate() {
            minutes(&at("durations.minutes"), d.minutes, CELL_MINUTES..=MAX_BLOCKED_MINUTES)?;
            price(&at("durations.price"), &d.price)?;
            if spec.durations[..i].iter().any(|o| o.minutes == d.minutes) {
                return Err(err(&at("durations"), format!("{} minutes is given twice", d.minutes)));
            }
            if before + d.minutes + after > MAX_BLOCKED_MINUTES {
                return Err(err(
                    &at("durations"),
                    format!(
                        "buffer before + duration + buffer after may be at most {MAX_BLOCKED_MINUTES} minutes \
                         (got {} for {} minutes)",
                        before + d.minutes + after,
                        d.minutes
                    ),
                ));
            }
        }
        let shortest = spec.durations.iter().map(|d| d.minutes).min().expect("at least one duration");
        let interval = minutes(
            &at("start_interval_minutes"),
            spec.start_interval_minutes.unwrap_or(shortest),
            CELL_MINUTES..=1440,
        )?;
        let notice = minutes(&at("min_notice_minutes"), spec.min_notice_minutes, 0..=525_600)?;
        if !(1..=MAX_ADVANCE_DAYS).contains(&spec.max_advance_days) {
            return Err(err(&at("max_advance_days"), format!("must be between 1 and {MAX_ADVANCE_DAYS}")));
        }
        if spec.max_per_day.is_some_and(|n| !(1..=MAX_PER_DAY).contains(&n)) {
            return Err(err(&at("max_per_day"), format!("must be between 1 and {MAX_PER_DAY}")));
        }
        if let Some(seats) = spec.seats {
            if !(2..=MAX_SEATS).contains(&seats) {
                return Err(err(&at("seats"), format!("must be between 2 and {MAX_SEATS}")));
            }
            if spec.max_per_day.is_some() {
                return Err(err(&at("seats"), "a seated type cannot also limit bookings per day (max_per_day)"));
            }
            if spec.durations.len() > 1 {
                return Err(err(
                    &at("seats"),
                    "a seated type has exactly one duration: every seat of a slot ends together",
                ));
            }
        }
        if let LateCancellation::Refund { percent } = spec.cancellation.late
            && percent > 100
        {
            return Err(err(&at("cancellation.late.refund.percent"), "must be between 0 and 100"));
        }
        if spec.cancellation.free_until_hours > MAX_POLICY_HOURS {
            return Err(err(
                &at("cancellation.free_until_hours"),
                format!("hours before the start may be at most {MAX_POLICY_HOURS} (a year)"),
            ));
        }
        if spec.reschedule.until_hours > MAX_POLICY_HOURS {
            return Err(err(
                &at("reschedule.until_hours"),
                format!("hours before the start may be at most {MAX_POLICY_HOURS} (a year)"),
            ));
        }
        Ok(BookingType {
            id: id.clone(),
            name: name.to_owned(),
            durations: spec.durations.clone(),
            buffer_before_minutes: before,
            buffer_after_minutes: after,
            start_interval_minutes: interval,
            min_notice_minutes: notice,
            max_advance_days: spec.max_advance_days,
            max_per_day: spec.max_per_day,
            seats: spec.seats,
            cancellation: spec.cancellation,
            reschedule: spec.reschedule,
        })
    }
}

/// The most seats a slot may have: each seat is one token item, and a
/// reserve reads them all with the slot's cells in one Query.
pub const MAX_SEATS: u32 = 50;

/// The most hours before the start a cancellation or reschedule policy may name: a year.
pub const MAX_POLICY_HOURS: u32 = 8760;

/// The highest `max_per_day` a type may set: each live booking of a limited
/// type also takes one of that many day tokens.
pub const MAX_PER_DAY: u32 = 50;

#[cfg(test)]
impl BookingTerms {
    /// Terms of a `minutes` booking of the shorthand type: no buffers, default policies.
    pub(crate) fn plain(minutes: u32) -> Self {
        Self {
            booking_type: DEFAULT_TYPE_ID.into(),
            duration_minutes: minutes,
            buffer_before_minutes: 0,
            buffer_after_minutes: 0,
            cancellation: CancellationPolicy::default(),
            reschedule: ReschedulePolicy::default(),
            seats: None,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A valid type: these durations at 45.00 EUR each, every default.
    pub(crate) fn type_spec(id: &str, durations: &[u32]) -> BookingTypeSpec {
        BookingTypeSpec {
            id: id.into(),
            name: None,
            durations: durations
                .iter()
                .map(|&minutes| DurationSpec { minutes, price: Price { amount: 4500, currency: "eur".into() } })
                .collect(),
            buffer_before_minutes: 0,
            buffer_after_minutes: 0,
            start_interval_minutes: None,
            min_notice_minutes: 0,
            max_advance_days: DEFAULT_ADVANCE_DAYS,
            max_per_day: None,
            seats: None,
            cancellation: CancellationPolicy::default(),
            reschedule: ReschedulePolicy::default(),
        }
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn minutes(n: i64) -> Duration {
        Duration::minutes(n)
    }

    #[test]
    fn a_valid_type_takes_its_defaults() {
        let t = BookingType::from_spec(&type_spec("session", &[90, 45]), "Studio").unwrap();
        assert_eq!(t.name, "Studio", "named after the resource by default");
        assert_eq!(t.start_interval_minutes, 45, "starts every shortest duration by default");
        assert_eq!(t.duration(None).map(|d| d.minutes), Some(90), "the first duration is the default one");
        assert_eq!(t.duration(Some(45)).map(|d| d.minutes), Some(45));
        assert_eq!(t.duration(Some(60)), None);
        let named = BookingTypeSpec { name: Some("  Deep dive ".into()), ..type_spec("session", &[90]) };
        assert_eq!(BookingType::from_spec(&named, "Studio").unwrap().name, "Deep dive");
        // The limits themselves are accepted.
        let edge = BookingTypeSpec {
            id: "x".repeat(64),
            durations: type_spec("", &[5, 200]).durations,
            buffer_before_minutes: 25,
            buffer_after_minutes: 15,
            start_interval_minutes: Some(1440),
            min_notice_minutes: 525_600,
            max_advance_days: 3650,
            max_per_day: Some(MAX_PER_DAY),
            cancellation: CancellationPolicy {
                free_until_hours: MAX_POLICY_HOURS,
                late: LateCancellation::Refund { percent: 100 },
            },
            reschedule: ReschedulePolicy { allowed: false, until_hours: MAX_POLICY_HOURS },
            ..type_spec("x", &[30])
        };
        let t = BookingType::from_spec(&edge, "Studio").unwrap();
        assert_eq!(t.buffer_before_minutes + 200 + t.buffer_after_minutes, MAX_BLOCKED_MINUTES);
        let one = BookingTypeSpec { max_per_day: Some(1), max_advance_days: 1, ..type_spec("0-a", &[240]) };
        assert!(BookingType::from_spec(&one, "Studio").is_ok());
    }

    /// Every refusal names the field at fault, under `booking_types.<id>`.
    #[test]
    fn invalid_types_are_refused_naming_the_field() {
        let ok = type_spec("t", &[30, 60]);
        let with = |f: &dyn Fn(&mut BookingTypeSpec)| {
            let mut spec = ok.clone();
            f(&mut spec);
            spec
        };
        let cases: Vec<(BookingTypeSpec, &str)> = vec![
            (with(&|s| s.id = String::new()), "booking_types.id: must be 1-64 characters"),
            (with(&|s| s.id = "Intro".into()), "booking_types.id"),
            (with(&|s| s.id = "-intro".into()), "booking_types.id"),
            (with(&|s| s.id = "in tro".into()), "booking_types.id"),
            (with(&|s| s.id = "x".repeat(65)), "booking_types.id"),
            (with(&|s| s.name = Some(" ".into())), "booking_types.t.name: must be 1-200 printable characters"),
            (with(&|s| s.name = Some("a\nb".into())), "booking_types.t.name"),
            (with(&|s| s.durations.clear()), "booking_types.t.durations: give 1-10 durations"),
            (
                with(&|s| s.durations = type_spec("", &[5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55]).durations),
                "booking_types.t.durations: give 1-10 durations",
            ),
            (with(&|s| s.durations[1].minutes = 30), "booking_types.t.durations: 30 minutes is given twice"),
            (
                with(&|s| s.durations[1].minutes = 32),
                "booking_types.t.durations.minutes: must be a multiple of 5 minutes between 5 and 240 (got 32)",
            ),
            (with(&|s| s.durations[0].minutes = 0), "booking_types.t.durations.minutes: must be a multiple"),
            (with(&|s| s.durations[0].minutes = 245), "booking_types.t.durations.minutes: must be a multiple"),
            (
                with(&|s| {
                    s.durations[1].minutes = 200;
                    s.buffer_before_minutes = 30;
                    s.buffer_after_minutes = 15;
                }),
                "booking_types.t.durations: buffer before + duration + buffer after may be at most 240 minutes \
                 (got 245 for 200 minutes)",
            ),
            (with(&|s| s.durations[0].price.amount = 0), "booking_types.t.durations.price: amount"),
            (with(&|s| s.durations[0].price.currency = "euro".into()), "booking_types.t.durations.price: currency"),
            (with(&|s| s.buffer_before_minutes = 7), "booking_types.t.buffer_before_minutes: must be a multiple"),
            (with(&|s| s.buffer_before_minutes = 125), "booking_types.t.buffer_before_minutes"),
            (with(&|s| s.buffer_after_minutes = 3), "booking_types.t.buffer_after_minutes: must be a multiple"),
            (with(&|s| s.buffer_after_minutes = 125), "booking_types.t.buffer_after_minutes"),
            (with(&|s| s.start_interval_minutes = Some(0)), "booking_types.t.start_interval_minutes"),
            (with(&|s| s.start_interval_minutes = Some(7)), "booking_types.t.start_interval_minutes"),
            (with(&|s| s.start_interval_minutes = Some(1445)), "booking_types.t.start_interval_minutes"),
            (with(&|s| s.min_notice_minutes = 61), "booking_types.t.min_notice_minutes: must be a multiple"),
            (with(&|s| s.min_notice_minutes = 525_605), "booking_types.t.min_notice_minutes"),
            (with(&|s| s.max_advance_days = 0), "booking_types.t.max_advance_days: must be between 1 and 3650"),
            (with(&|s| s.max_advance_days = 3651), "booking_types.t.max_advance_days"),
            (with(&|s| s.max_per_day = Some(0)), "booking_types.t.max_per_day: must be between 1 and 50"),
            (with(&|s| s.max_per_day = Some(MAX_PER_DAY + 1)), "booking_types.t.max_per_day"),
            (with(&|s| s.seats = Some(1)), "booking_types.t.seats: must be between 2 and 50"),
            (with(&|s| s.seats = Some(MAX_SEATS + 1)), "booking_types.t.seats: must be between 2 and 50"),
            (with(&|s| s.seats = Some(3)), "booking_types.t.seats: a seated type has exactly one duration"),
            (
                with(&|s| {
                    s.durations.truncate(1);
                    s.seats = Some(3);
                    s.max_per_day = Some(2);
                }),
                "booking_types.t.seats: a seated type cannot also limit bookings per day",
            ),
            (
                with(&|s| s.cancellation.late = LateCancellation::Refund { percent: 101 }),
                "booking_types.t.cancellation.late.refund.percent: must be between 0 and 100",
            ),
            (
                with(&|s| s.cancellation.free_until_hours = MAX_POLICY_HOURS + 1),
                "booking_types.t.cancellation.free_until_hours",
            ),
            (with(&|s| s.reschedule.until_hours = MAX_POLICY_HOURS + 1), "booking_types.t.reschedule.until_hours"),
        ];
        for (spec, needle) in cases {
            let err = BookingType::from_spec(&spec, "Studio").unwrap_err().to_string();
            assert!(err.contains(needle), "{err:?} should mention {needle:?}");
        }
    }

    #[test]
    fn a_full_spec_reads_and_writes_back_unchanged() {
        let json = serde_json::json!({
            "id": "session",
            "name": "Deep dive",
            "durations": [
                {"minutes": 45, "price": {"amount": 6000, "currency": "eur"}},
                {"minutes": 90, "price": {"amount": 11000, "currency": "eur"}}
            ],
            "buffer_before_minutes": 10,
            "buffer_after_minutes": 15,
            "start_interval_minutes": 15,
            "min_notice_minutes": 120,
            "max_advance_days": 60,
            "max_per_day": 4,
            "cancellation": {"free_until_hours": 24, "late": {"refund": {"percent": 50}}},
            "reschedule": {"allowed": true, "until_hours": 12}
        });
        let spec: BookingTypeSpec = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(
            spec,
            BookingTypeSpec {
                id: "session".into(),
                name: Some("Deep dive".into()),
                durations: vec![
                    DurationSpec { minutes: 45, price: Price { amount: 6000, currency: "eur".into() } },
                    DurationSpec { minutes: 90, price: Price { amount: 11000, currency: "eur".into() } },
                ],
                buffer_before_minutes: 10,
                buffer_after_minutes: 15,
                start_interval_minutes: Some(15),
                min_notice_minutes: 120,
                max_advance_days: 60,
                max_per_day: Some(4),
                seats: None,
                cancellation: CancellationPolicy {
                    free_until_hours: 24,
                    late: LateCancellation::Refund { percent: 50 }
                },
                reschedule: ReschedulePolicy { allowed: true, until_hours: 12 },
            }
        );
        assert_eq!(serde_json::to_value(&spec).unwrap(), json, "written back as read");
        assert!(BookingType::from_spec(&spec, "Studio").is_ok());

        let unknown = serde_json::json!({"id": "x", "durations": [], "slot_minutes": 30});
        assert!(serde_json::from_value::<BookingTypeSpec>(unknown).is_err(), "unknown fields are refused");
    }

    #[test]
    fn a_minimal_spec_takes_the_serde_defaults() {
        let spec: BookingTypeSpec = serde_json::from_value(serde_json::json!({
            "id": "intro",
            "durations": [{"minutes": 60, "price": {"amount": 100, "currency": "usd"}},
                          {"minutes": 30, "price": {"amount": 60, "currency": "usd"}}]
        }))
        .unwrap();
        assert_eq!(
            spec,
            BookingTypeSpec {
                durations: spec.durations.clone(),
                max_advance_days: 365,
                cancellation: CancellationPolicy { free_until_hours: 0, late: LateCancellation::Refuse },
                reschedule: ReschedulePolicy { allowed: true, until_hours: 0 },
                ..type_spec("intro", &[])
            }
        );
        let t = BookingType::from_spec(&spec, "Coaching").unwrap();
        assert_eq!(t.start_interval_minutes, 30, "the shortest duration, not the first");
        // What is left out is not written either.
        let written = serde_json::to_value(&spec).unwrap();
        for absent in ["name", "start_interval_minutes", "max_per_day"] {
            assert!(written.get(absent).is_none(), "{absent} written: {written}");
        }

        // Policies' own defaults, field by field.
        let c: CancellationPolicy = serde_json::from_str("{}").unwrap();
        assert_eq!(c, CancellationPolicy::default());
        let c: CancellationPolicy = serde_json::from_str(r#"{"free_until_hours": 48}"#).unwrap();
        assert_eq!(c.late, LateCancellation::Refuse);
        let r: ReschedulePolicy = serde_json::from_str("{}").unwrap();
        assert_eq!(r, ReschedulePolicy { allowed: true, until_hours: 0 });
        let r: ReschedulePolicy = serde_json::from_str(r#"{"allowed": false}"#).unwrap();
        assert_eq!(r, ReschedulePolicy { allowed: false, until_hours: 0 });
    }

    /// The JSON forms of `late` (see [`LateCancellation`]).
    #[test]
    fn late_cancellation_reads_its_documented_forms() {
        let read = |j: &str| serde_json::from_str::<LateCancellation>(j);
        assert_eq!(read(r#""refuse""#).unwrap(), LateCancellation::Refuse);
        assert_eq!(read(r#"{"refund": {"percent": 50}}"#).unwrap(), LateCancellation::Refund { percent: 50 });
        // Also accepted by serde, never written.
        assert_eq!(read(r#"{"refuse": null}"#).unwrap(), LateCancellation::Refuse);
        assert_eq!(read(r#"{"refund": [50]}"#).unwrap(), LateCancellation::Refund { percent: 50 });
        for bad in [
            r#""Refuse""#,
            r#""refund""#,
            r#"{"refund": 50}"#,
            r#"{"refund": {}}"#,
            r#"{"refund": {"percent": 50, "of": "amount"}}"#,
            r#"{"refund": {"percent": 256}}"#,
            r#"{"percent": 50}"#,
        ] {
            assert!(read(bad).is_err(), "{bad} accepted");
        }
        assert_eq!(serde_json::to_string(&LateCancellation::Refuse).unwrap(), r#""refuse""#);
        assert_eq!(
            serde_json::to_string(&LateCancellation::Refund { percent: 5 }).unwrap(),
            r#"{"refund":{"percent":5}}"#
        );
    }

    /// The host always refunds in full; a customer in full until the cutoff
    /// (inclusive), then refused or the percentage rounded down.
    #[test]
    fn cancellation_decides_by_actor_and_cutoff() {
        let start = utc("2026-06-10T10:00:00Z");
        let cutoff = start - Duration::hours(24);
        let half = CancellationPolicy { free_until_hours: 24, late: LateCancellation::Refund { percent: 50 } };
        let strict = CancellationPolicy { free_until_hours: 24, late: LateCancellation::Refuse };
        let full = CancelDecision::Refund { amount: 4599 };

        for policy in [half, strict] {
            for now in [cutoff - Duration::days(30), cutoff, cutoff + Duration::seconds(1), start, start + minutes(60)]
            {
                assert_eq!(policy.decide(Actor::Host, 4599, start, now), full, "the host at {now}");
            }
            assert_eq!(policy.decide(Actor::Customer, 4599, start, cutoff - Duration::days(3)), full);
            assert_eq!(policy.decide(Actor::Customer, 4599, start, cutoff), full, "exactly at the cutoff: free");
        }
        let late = cutoff + Duration::seconds(1);
        // 4599 * 50% = 2299.5, rounded down.
        assert_eq!(half.decide(Actor::Customer, 4599, start, late), CancelDecision::Refund { amount: 2299 });
        assert_eq!(
            half.decide(Actor::Customer, 4599, start, start - Duration::seconds(1)),
            CancelDecision::Refund { amount: 2299 }
        );
        assert_eq!(half.decide(Actor::Customer, 4599, start, start), CancelDecision::Refuse, "started: no cancel");
        assert_eq!(strict.decide(Actor::Customer, 4599, start, late), CancelDecision::Refuse);
        assert_eq!(strict.decide(Actor::Customer, 4599, start, start), CancelDecision::Refuse);

        let percent = |p| CancellationPolicy { free_until_hours: 24, late: LateCancellation::Refund { percent: p } };
        assert_eq!(percent(0).decide(Actor::Customer, 4599, start, late), CancelDecision::Refund { amount: 0 });
        assert_eq!(percent(100).decide(Actor::Customer, 4599, start, late), full);
        assert_eq!(percent(33).decide(Actor::Customer, 99, start, late), CancelDecision::Refund { amount: 32 });
        // No overflow, whatever the amount.
        assert_eq!(
            percent(100).decide(Actor::Customer, i64::MAX, start, late),
            CancelDecision::Refund { amount: i64::MAX }
        );

        // The default: free until the start itself, refused after.
        let default = CancellationPolicy::default();
        assert_eq!(default.decide(Actor::Customer, 4599, start, start), full);
        assert_eq!(default.decide(Actor::Customer, 4599, start, start + Duration::seconds(1)), CancelDecision::Refuse);
    }

    /// A customer may reschedule if the policy allows it, until `until_hours`
    /// before the current start (inclusive); the host always may.
    #[test]
    fn reschedule_allows_by_actor_and_cutoff() {
        let start = utc("2026-06-10T10:00:00Z");
        let two_hours = ReschedulePolicy { allowed: true, until_hours: 2 };
        let cutoff = start - Duration::hours(2);
        assert!(two_hours.allows(Actor::Customer, start, cutoff - Duration::days(1)));
        assert!(two_hours.allows(Actor::Customer, start, cutoff), "exactly at the cutoff");
        assert!(!two_hours.allows(Actor::Customer, start, cutoff + Duration::seconds(1)));
        assert!(!two_hours.allows(Actor::Customer, start, start + minutes(5)));

        let never = ReschedulePolicy { allowed: false, until_hours: 0 };
        assert!(!never.allows(Actor::Customer, start, start - Duration::days(30)));
        for policy in [two_hours, never] {
            for now in [start - Duration::days(30), start, start + Duration::days(1)] {
                assert!(policy.allows(Actor::Host, start, now), "the host at {now}");
            }
        }
        let default = ReschedulePolicy::default();
        assert!(default.allows(Actor::Customer, start, start));
        assert!(!default.allows(Actor::Customer, start, start + Duration::seconds(1)));
    }

    #[test]
    fn the_window_opens_after_notice_or_hold_and_closes_after_the_advance_days() {
        let now = utc("2026-06-10T10:00:00Z");
        let t = BookingType::from_spec(
            &BookingTypeSpec { min_notice_minutes: 60, max_advance_days: 30, ..type_spec("t", &[30]) },
            "Studio",
        )
        .unwrap();
        assert_eq!(t.window(now, 30), (now + minutes(60), now + Duration::days(30)));
        assert_eq!(t.window(now, 120).0, now + minutes(120), "a hold must end before its slot starts");
        let no_notice = BookingType { min_notice_minutes: 0, ..t.clone() };
        assert_eq!(no_notice.window(now, 30).0, now + minutes(45), "a hold paid at once must be payable");
        let lead = crate::domain::payment::SESSION_MIN
            + crate::domain::payment::SESSION_MARGIN
            + crate::domain::payment::HOLD_GRACE;
        assert_eq!(i64::from(CHECKOUT_LEAD_MINUTES), lead.num_minutes(), "the lead is the session window's");
    }

    #[test]
    fn terms_carry_the_type_and_block_the_buffers() {
        let spec = BookingTypeSpec {
            buffer_before_minutes: 10,
            buffer_after_minutes: 15,
            cancellation: CancellationPolicy { free_until_hours: 24, late: LateCancellation::Refuse },
            ..type_spec("session", &[45, 90])
        };
        let terms = BookingType::from_spec(&spec, "Studio").unwrap().terms(90);
        assert_eq!(
            terms,
            BookingTerms {
                booking_type: "session".into(),
                duration_minutes: 90,
                buffer_before_minutes: 10,
                buffer_after_minutes: 15,
                cancellation: spec.cancellation,
                reschedule: ReschedulePolicy::default(),
                seats: None,
            }
        );
        let start = utc("2026-06-10T09:00:00Z");
        let blocked = terms.blocked(start, start + minutes(90));
        assert_eq!(blocked, (utc("2026-06-10T08:50:00Z"), utc("2026-06-10T10:45:00Z")));
        assert_eq!(cells(blocked.0, blocked.1).len(), (10 + 90 + 15) / 5);
    }

    #[test]
    fn a_half_hour_at_nine_is_six_cells() {
        let at = utc("2026-06-10T09:00:00Z");
        let got = cells(at, at + minutes(30));
        let want: Vec<DateTime<Utc>> = (0..6).map(|i| at + minutes(5 * i)).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn an_interval_off_the_grid_covers_every_cell_it_touches() {
        let t = |s: &str| utc(&format!("2026-06-10T{s}Z"));
        assert_eq!(cells(t("09:03:00"), t("09:12:00")), [t("09:00:00"), t("09:05:00"), t("09:10:00")]);
        assert_eq!(cells(t("09:03:00"), t("09:05:00")), [t("09:00:00")]);
        assert_eq!(cells(t("09:04:59"), t("09:05:01")), [t("09:00:00"), t("09:05:00")]);
        // Fractions of a second count too.
        let half = Duration::milliseconds(500);
        assert_eq!(cells(t("09:00:00"), t("09:05:00") + half), [t("09:00:00"), t("09:05:00")]);
        assert_eq!(cells(t("09:05:00") - half, t("09:05:00")), [t("09:00:00")]);
        // Before 1970 as well.
        let early = utc("1969-12-31T23:57:00Z");
        assert_eq!(cells(early, early + minutes(5)), [utc("1969-12-31T23:55:00Z"), utc("1970-01-01T00:00:00Z")]);
    }

    #[test]
    fn an_empty_interval_has_no_cells() {
        let t = |s: &str| utc(&format!("2026-06-10T{s}Z"));
        assert!(cells(t("09:00:00"), t("09:00:00")).is_empty());
        assert!(cells(t("09:03:00"), t("09:03:00")).is_empty(), "empty, even off the grid");
        assert!(cells(t("09:30:00"), t("09:00:00")).is_empty(), "reversed");
    }

    #[test]
    fn the_cell_grid_is_every_five_minutes_of_utc() {
        assert!(on_cell_grid(utc("2026-06-10T09:05:00Z")));
        assert!(on_cell_grid(utc("2026-06-10T09:05:00+05:45")), "Kathmandu's 09:05 is 03:20Z");
        assert!(on_cell_grid(utc("1969-12-31T23:55:00Z")));
        assert!(!on_cell_grid(utc("2026-06-10T09:06:00Z")));
        assert!(!on_cell_grid(utc("2026-06-10T09:05:01Z")));
        assert!(!on_cell_grid(utc("2026-06-10T09:05:00Z") + Duration::milliseconds(1)));
        assert!(!on_cell_grid(utc("2026-06-10T09:05:00+05:30") + minutes(1)));
    }

    fn config() -> ProptestConfig {
        let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(1024);
        ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
    }

    /// A booking on the cell grid: start, duration and buffers, all multiples of the cell.
    fn booking() -> impl Strategy<Value = (DateTime<Utc>, BookingTerms)> {
        let base = utc("2026-03-29T00:00:00Z");
        let cell = i64::from(CELL_MINUTES);
        // Starts within a day and a half of each other, so that pairs often overlap or touch.
        (-200i64..200, 1u32..=48, 0u32..=24, 0u32..=24).prop_map(move |(start, length, before, after)| {
            let terms = BookingTerms {
                booking_type: "t".into(),
                duration_minutes: length * CELL_MINUTES,
                buffer_before_minutes: before * CELL_MINUTES,
                buffer_after_minutes: after * CELL_MINUTES,
                cancellation: CancellationPolicy::default(),
                reschedule: ReschedulePolicy::default(),
                seats: None,
            };
            (base + minutes(start * cell), terms)
        })
    }

    fn blocked(start: DateTime<Utc>, terms: &BookingTerms) -> (DateTime<Utc>, DateTime<Utc>) {
        terms.blocked(start, start + minutes(i64::from(terms.duration_minutes)))
    }

    proptest! {
        #![proptest_config(config())]

        /// The foundation of the conflict rule: on the grid, two blocked
        /// intervals share a lock cell if and only if they overlap, and a
        /// blocked interval is exactly the union of its cells.
        #[test]
        fn blocked_intervals_share_a_cell_iff_they_overlap((a, ta) in booking(), (b, tb) in booking()) {
            let (a0, a1) = blocked(a, &ta);
            let (b0, b1) = blocked(b, &tb);
            let (ca, cb) = (cells(a0, a1), cells(b0, b1));
            let overlap = a0 < b1 && b0 < a1;
            let shared = ca.iter().any(|c| cb.contains(c));
            prop_assert_eq!(shared, overlap, "[{}, {}) and [{}, {})", a0, a1, b0, b1);
            for (c, t, (from, to)) in [(&ca, &ta, (a0, a1)), (&cb, &tb, (b0, b1))] {
                let total = t.buffer_before_minutes + t.duration_minutes + t.buffer_after_minutes;
                prop_assert_eq!(c.len(), (total / CELL_MINUTES) as usize);
                prop_assert_eq!(c.first(), Some(&from));
                prop_assert_eq!(*c.last().unwrap() + minutes(i64::from(CELL_MINUTES)), to);
                prop_assert!(c.windows(2).all(|w| w[1] - w[0] == minutes(i64::from(CELL_MINUTES))));
            }
        }

        /// Off the grid too, `cells` lists exactly the cells the interval touches.
        #[test]
        fn cells_are_exactly_the_cells_touched(from in -10_000_000i64..10_000_000, length in -100_000i64..10_000) {
            let from = utc("2026-03-29T00:00:00Z") + Duration::milliseconds(from);
            let to = from + Duration::milliseconds(length * 100);
            let got = cells(from, to);
            let size = minutes(i64::from(CELL_MINUTES));
            let touches = |c: DateTime<Utc>| c < to && from < c + size;
            prop_assert!(got.iter().all(|&c| on_cell_grid(c) && touches(c)), "{:?}", got);
            prop_assert!(got.windows(2).all(|w| w[1] - w[0] == size));
            if let (Some(&first), Some(&last)) = (got.first(), got.last()) {
                prop_assert!(!touches(first - size) && !touches(last + size));
            } else {
                prop_assert!(from >= to, "[{}, {}) has no cells", from, to);
            }
        }
    }
}
