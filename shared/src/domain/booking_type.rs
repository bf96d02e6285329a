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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DurationSpec {
    pub minutes: u32,
    pub price: Price,
}

/// What a customer cancelling after the free window gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum LateCancellation {
    /// The cancellation is refused (`409 outside_cancellation_window`).
    Refuse,
    /// Cancelled with this percentage of the amount refunded (0-100).
    Refund { percent: u8 },
}

/// When a customer may cancel, and what they get back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    #[serde(default)]
    pub cancellation: CancellationPolicy,
    #[serde(default)]
    pub reschedule: ReschedulePolicy,
}

/// The advance window when a type does not name one.
pub const DEFAULT_ADVANCE_DAYS: u32 = 365;

fn default_advance_days() -> u32 {
    DEFAULT_ADVANCE_DAYS
}

/// A validated booking type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
        }
    }

    /// The instants a new booking may start in at `now`: `[earliest, latest]`.
    /// `earliest` is `now` plus the larger of the minimum notice and
    /// `hold_minutes` (a hold must end before its slot starts); `latest` is
    /// `now` plus `max_advance_days`.
    pub fn window(&self, now: DateTime<Utc>, hold_minutes: u32) -> (DateTime<Utc>, DateTime<Utc>) {
        let notice = self.min_notice_minutes.max(hold_minutes);
        (now + Duration::minutes(i64::from(notice)), now + Duration::days(i64::from(self.max_advance_days)))
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

/// The start of every [`CELL_MINUTES`] cell that `[from, to)` overlaps, in order.
pub fn cells(from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let size = i64::from(CELL_MINUTES) * 60;
    let first = from.timestamp().div_euclid(size) * size;
    let mut out = Vec::new();
    let mut t = first;
    while t < to.timestamp() {
        out.push(DateTime::from_timestamp(t, 0).expect("inside chrono's range"));
        t += size;
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
    /// `free_until_hours` before the start, then what `late` says. Partial
    /// amounts are rounded down to the minor unit.
    pub fn decide(&self, actor: Actor, amount: i64, start: DateTime<Utc>, now: DateTime<Utc>) -> CancelDecision {
        if actor == Actor::Host || now + Duration::hours(i64::from(self.free_until_hours)) <= start {
            return CancelDecision::Refund { amount };
        }
        match self.late {
            LateCancellation::Refuse => CancelDecision::Refuse,
            LateCancellation::Refund { percent } => {
                CancelDecision::Refund { amount: amount * i64::from(percent.min(100)) / 100 }
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

mod validate {
    use super::*;

    fn err(field: &str, message: impl std::fmt::Display) -> ResourceError {
        ResourceError(format!("{field}: {message}"))
    }

    /// A length in minutes: a multiple of the cell size within `range`.
    fn minutes(field: &str, value: u32, range: std::ops::RangeInclusive<u32>) -> Result<u32, ResourceError> {
        if !range.contains(&value) || value % CELL_MINUTES != 0 {
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

    pub(super) fn price(field: &str, price: &Price) -> Result<(), ResourceError> {
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
        if !(1..=3650).contains(&spec.max_advance_days) {
            return Err(err(&at("max_advance_days"), "must be between 1 and 3650"));
        }
        if spec.max_per_day.is_some_and(|n| !(1..=MAX_PER_DAY).contains(&n)) {
            return Err(err(&at("max_per_day"), format!("must be between 1 and {MAX_PER_DAY}")));
        }
        if let LateCancellation::Refund { percent } = spec.cancellation.late
            && percent > 100
        {
            return Err(err(&at("cancellation.late.refund.percent"), "must be between 0 and 100"));
        }
        if spec.cancellation.free_until_hours > 8760 || spec.reschedule.until_hours > 8760 {
            return Err(err(&at("cancellation"), "hours before the start may be at most 8760 (a year)"));
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
            cancellation: spec.cancellation,
            reschedule: spec.reschedule,
        })
    }
}

/// The highest `max_per_day` a type may set: each live booking of a limited
/// type also takes one of that many day tokens.
pub const MAX_PER_DAY: u32 = 50;
