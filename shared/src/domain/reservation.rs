//! Reservations and the slot claims that enforce "one live claim per slot".

use super::booking_type::{BookingTerms, cells};
use super::payment::CheckoutRecord;
use super::resource::{CalendarTarget, Price, ResourceId};
use super::secret::SecretHash;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde::Serialize;
use std::fmt;

/// The key of one slot of one resource: what a claim locks.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SlotKey {
    pub resource_id: ResourceId,
    pub start: DateTime<Utc>,
}

impl fmt::Display for SlotKey {
    /// `demo@2026-06-10T07:00:00Z`: the form used in logs and Stripe metadata.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.resource_id, rfc3339(self.start))
    }
}

/// Formats an instant the way every API response does: RFC 3339, UTC, whole seconds.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A reservation id: `rsv_{resource}_{yyyymmddThhmmss}_{32 hex random}`.
///
/// The id names its resource and the start it was made for (a reschedule
/// moves the booking, not the id: the booking item, keyed by the id, holds
/// the current interval). The UUIDv4's 122 random bits make it unguessable,
/// so it can be handed to the customer's browser as the handle of their hold.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(into = "String", try_from = "String")]
#[schema(value_type = String, example = "rsv_demo_20261201T090000_6f1c0d2e9b8a4c3d8e7f6a5b4c3d2e1f")]
pub struct ReservationId(String);

impl From<ReservationId> for String {
    fn from(id: ReservationId) -> String {
        id.0
    }
}

impl TryFrom<String> for ReservationId {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s).ok_or_else(|| format!("{s:?} is not a reservation id"))
    }
}

const START_FORMAT: &str = "%Y%m%dT%H%M%S";

impl ReservationId {
    /// A fresh id for a claim on `slot`.
    pub fn new(slot: &SlotKey) -> Self {
        Self(format!("rsv_{}_{}_{}", slot.resource_id, slot.start.format(START_FORMAT), uuid::Uuid::new_v4().simple()))
    }

    /// Parses an id; `None` if it is not one slotguard could have issued.
    pub fn parse(s: &str) -> Option<Self> {
        let rest = s.strip_prefix("rsv_")?;
        let (rest, random) = rest.rsplit_once('_')?;
        let (resource, start) = rest.rsplit_once('_')?;
        ResourceId::parse(resource).ok()?;
        NaiveDateTime::parse_from_str(start, START_FORMAT).ok()?;
        let random_ok = random.len() == 32 && random.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        random_ok.then(|| Self(s.to_owned()))
    }

    /// The resource and the start this reservation was made for (before any reschedule).
    pub fn slot_key(&self) -> SlotKey {
        let rest = &self.0["rsv_".len()..];
        let (rest, _) = rest.rsplit_once('_').expect("validated at construction");
        let (resource, start) = rest.rsplit_once('_').expect("validated at construction");
        SlotKey {
            resource_id: ResourceId::parse(resource).expect("validated at construction"),
            start: NaiveDateTime::parse_from_str(start, START_FORMAT).expect("validated at construction").and_utc(),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ReservationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An e-mail address, checked for the shape Stripe and calendars accept.
///
/// Its `Debug` hides it (`Email(<redacted>)`): addresses are not logged, and
/// a `{:?}` of anything holding one must not log it either.
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Email(<redacted>)")
    }
}

impl Email {
    /// Accepts `local@domain.tld` without spaces or control characters, at most 254 bytes.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let valid = s.len() <= 254
            && !s.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | ';' | '"'))
            && match s.split_once('@') {
                Some((local, domain)) => {
                    !local.is_empty()
                        && local.len() <= 64
                        && !domain.contains('@')
                        && domain.contains('.')
                        && !domain.starts_with('.')
                        && !domain.ends_with('.')
                        && !domain.contains("..")
                }
                None => false,
            };
        if valid { Ok(Self(s.to_owned())) } else { Err(format!("{s:?} is not a valid e-mail address")) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The customer a reservation is for.
///
/// Its `Debug` hides name and address, as [`Email`]'s does.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct Customer {
    pub name: String,
    pub email: Email,
}

impl fmt::Debug for Customer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Customer").field("name", &format_args!("<redacted>")).field("email", &self.email).finish()
    }
}

impl Customer {
    /// Validates a name (1–200 printable characters) and an e-mail address.
    pub fn parse(name: &str, email: &str) -> Result<Self, String> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
            return Err("customer.name must be 1-200 printable characters".into());
        }
        Ok(Self { name: name.to_owned(), email: Email::parse(email).map_err(|e| format!("customer.email: {e}"))? })
    }
}

/// The state of a slot claim as stored in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimStatus {
    /// Held while the customer pays; live until `expires_at`.
    Held,
    /// Checkout completed with a delayed payment method (e.g. SEPA debit) that
    /// Stripe accepted but has not settled: live, no expiry, until Stripe says
    /// the payment succeeded or failed.
    PaymentPending,
    /// Paid and booked; never expires.
    Confirmed,
    /// A cancellation of the confirmed booking has started: the refund may or
    /// may not have gone out yet. Still live (the slot stays taken) until the
    /// cancellation finishes; a retry of the cancel completes it.
    Cancelling,
}

impl ClaimStatus {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Held => "HELD",
            Self::PaymentPending => "PAYMENT_PENDING",
            Self::Confirmed => "CONFIRMED",
            Self::Cancelling => "CANCELLING",
        }
    }

    /// A hold or a payment still settling: what a payment's release or refund retires.
    pub fn is_unpaid(self) -> bool {
        matches!(self, Self::Held | Self::PaymentPending)
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "HELD" => Some(Self::Held),
            "PAYMENT_PENDING" => Some(Self::PaymentPending),
            "CONFIRMED" => Some(Self::Confirmed),
            "CANCELLING" => Some(Self::Cancelling),
            _ => None,
        }
    }
}

/// The Stripe Checkout Session attached to a hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutLink {
    pub session_id: String,
    pub url: String,
}

/// One customer's claim on one slot: the item that makes double-booking impossible.
#[derive(Debug, Clone, PartialEq)]
pub struct Claim {
    pub slot: SlotKey,
    pub end: DateTime<Utc>,
    pub reservation_id: ReservationId,
    pub status: ClaimStatus,
    pub customer: Customer,
    pub amount: i64,
    pub currency: String,
    /// When a HELD claim lapses (the table's TTL attribute); `None` once
    /// payment is confirmed or pending.
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// The Checkout Session's parameters (expiry, return URLs), fixed by the
    /// first checkout call so every call for this hold sends Stripe identical
    /// parameters under its one idempotency key.
    pub checkout_terms: Option<CheckoutTerms>,
    /// The Checkout Session, once created.
    pub checkout: Option<CheckoutLink>,
    /// The PaymentIntent that paid for the booking.
    pub payment_intent: Option<String>,
    /// The hash of the reservation's secret (see [`crate::domain::secret`]);
    /// `None` only for items written before secrets existed.
    pub secret_hash: Option<SecretHash>,
    /// The resource's [`Resource::settings_version`](crate::domain::Resource)
    /// the hold was accepted under (read from a cache that may be a minute
    /// old): checkout checks the hold again if the settings changed since.
    pub settings_version: Option<String>,
    /// The type, duration, buffers and policies the booking was made under.
    pub terms: BookingTerms,
    /// The day-limit token the booking holds, if its type limits bookings per day.
    pub day_token: Option<DayToken>,
    /// The seat token's index, for a seat of a seated slot (`terms.seats`).
    pub seat: Option<u32>,
    /// The team members the booking is assigned to (round-robin: one;
    /// collective: all), whose cells it locks; empty when the booking's
    /// resource is itself the host.
    pub hosts: Vec<ResourceId>,
    /// 0 when made, +1 per reschedule: the calendar event's `SEQUENCE`, and
    /// what a reschedule conditions on so two of them cannot both apply.
    pub version: u32,
    /// What a cancellation refunds, decided once when it starts (CANCELLING),
    /// so a retry after the policy's cutoff passed refunds the same amount.
    pub refund_amount: Option<i64>,
    /// Where the writer last put the booking's event. Moving, removing and
    /// reconciling the event go by this record, not by the resource's
    /// current shape (a team that lost the member, a changed calendar).
    pub calendars: Vec<WrittenCalendar>,
    /// When a customer's free cancellation ends, when a customer's move made
    /// after it ended kept it there (`None`: the policy's `free_until_hours`
    /// before the current start). See [`Claim::free_cancel_until`].
    pub free_cancel_until: Option<DateTime<Utc>>,
}

/// A calendar a booking's event was written to: whose it is, and the
/// target as it was then.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct WrittenCalendar {
    pub host: ResourceId,
    pub target: CalendarTarget,
}

/// The seat group of a seat `[start, end)` under `terms` (see
/// [`Claim::seat_group`]); `None` when the terms have no seats.
pub fn seat_group(terms: &BookingTerms, start: DateTime<Utc>, end: DateTime<Utc>) -> Option<String> {
    terms.seats?;
    let (from, to) = terms.blocked(start, end);
    let compact = |t: DateTime<Utc>| t.format(START_FORMAT).to_string();
    Some(format!("{}#{}#{}#{}", terms.booking_type, compact(start), compact(from), compact(to)))
}

/// One of the `max_per_day` tokens of a booking type on a local date.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
pub struct DayToken {
    pub date: NaiveDate,
    pub index: u32,
}

/// An item that keeps other bookings out: every booking holds one per cell
/// of its blocked interval, and one day token if its type limits bookings
/// per day. All of a booking's locks are written, extended, confirmed and
/// released in the same transaction as the booking itself.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LockKey {
    /// The [`CELL_MINUTES`](super::booking_type::CELL_MINUTES) cell starting at this instant.
    Cell(DateTime<Utc>),
    /// Token `index` of `booking_type` on the local `date`.
    DayToken { booking_type: String, date: NaiveDate, index: u32 },
    /// Seat `index` of the seat group `group` (see [`Claim::seat_group`]),
    /// whose slot starts at `start`.
    Seat { start: DateTime<Utc>, group: String, index: u32 },
}

/// What a lock says about its holder.
#[derive(Debug, Clone, PartialEq)]
pub struct Lock {
    pub resource_id: ResourceId,
    pub key: LockKey,
    pub reservation_id: ReservationId,
    /// Whether the holder is a booking (paid or being paid), not a hold.
    pub booked: bool,
    /// A hold's expiry: the lock is free from then on.
    pub expires_at: Option<DateTime<Utc>>,
    /// The holder's booking type and interval.
    pub booking_type: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// For a cell owned by a seat group (shared by its seats): the group.
    /// Such a cell is live while any seat of the group is booked (`booked`)
    /// or may still be held (`expires_at`, the latest expiry any seat's
    /// hold was given).
    pub seat_group: Option<String>,
}

impl Lock {
    /// Whether the lock keeps others out at `now` (the lazy TTL rule).
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.booked || self.expires_at.is_some_and(|t| t > now)
    }
}

/// The parameters of a hold's Checkout Session, fixed before Stripe is called.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutTerms {
    /// When the session expires (whole seconds).
    pub expires_at: DateTime<Utc>,
    pub success_url: String,
    pub cancel_url: String,
}

impl Claim {
    /// A new hold of `slot` (ending at `end`, under `terms`) for `customer` at `price`,
    /// lapsing at `expires_at`, with a fresh reservation id and no secret yet (reserve gives it one).
    pub fn hold(
        slot: SlotKey,
        end: DateTime<Utc>,
        terms: BookingTerms,
        customer: Customer,
        price: &Price,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Self {
        Self {
            terms,
            day_token: None,
            seat: None,
            hosts: Vec::new(),
            version: 0,
            refund_amount: None,
            calendars: Vec::new(),
            free_cancel_until: None,
            reservation_id: ReservationId::new(&slot),
            slot,
            end,
            status: ClaimStatus::Held,
            customer,
            amount: price.amount,
            currency: price.currency.clone(),
            expires_at: Some(expires_at),
            created_at: now,
            checkout_terms: None,
            checkout: None,
            payment_intent: None,
            secret_hash: None,
            settings_version: None,
        }
    }

    /// The claim a payment rebuilds from its reservation's checkout record
    /// when the hold's item is gone: `status`, without expiry.
    pub fn from_checkout(record: &CheckoutRecord, status: ClaimStatus, now: DateTime<Utc>) -> Self {
        let price = Price { amount: record.amount, currency: record.currency.clone() };
        let hold = Self::hold(
            record.reservation_id.slot_key(),
            record.end,
            record.terms.clone(),
            record.customer.clone(),
            &price,
            now,
            now,
        );
        Self {
            reservation_id: record.reservation_id.clone(),
            status,
            expires_at: None,
            day_token: record.day_token.clone(),
            seat: record.seat,
            hosts: record.hosts.clone(),
            secret_hash: record.secret_hash.clone(),
            ..hold
        }
    }

    /// The checkout record of this hold's Checkout Session `session_id`:
    /// what a payment needs to rebuild it ([`Claim::from_checkout`]).
    pub fn checkout_record(&self, session_id: impl Into<String>) -> CheckoutRecord {
        CheckoutRecord {
            reservation_id: self.reservation_id.clone(),
            session_id: session_id.into(),
            amount: self.amount,
            currency: self.currency.clone(),
            end: self.end,
            customer: self.customer.clone(),
            terms: self.terms.clone(),
            day_token: self.day_token.clone(),
            seat: self.seat,
            hosts: self.hosts.clone(),
            secret_hash: self.secret_hash.clone(),
        }
    }

    /// The interval the booking keeps free of other bookings: its own plus its buffers.
    pub fn blocked(&self) -> (DateTime<Utc>, DateTime<Utc>) {
        self.terms.blocked(self.slot.start, self.end)
    }

    /// The resources whose cells the booking locks: its assigned team
    /// members, or its own resource.
    pub fn hosts(&self) -> Vec<ResourceId> {
        if self.hosts.is_empty() { vec![self.slot.resource_id.clone()] } else { self.hosts.clone() }
    }

    /// The seat group a seat belongs to: every seat of one type, start and
    /// blocked interval of one host shares its cells. The blocked interval
    /// is part of it, so seats held under other buffers form another group
    /// (which conflicts with this one on the cells).
    /// When a customer's free cancellation of this booking ends: the
    /// policy's `free_until_hours` before the start, unless a customer's move
    /// made after that moment kept it there (a move does not reopen a
    /// window that had closed: moving 20 hours before the start and then
    /// cancelling gets the late share, as cancelling at once would).
    pub fn free_cancel_until(&self) -> DateTime<Utc> {
        self.free_cancel_until.unwrap_or_else(|| self.terms.cancellation.free_until(self.slot.start))
    }

    pub fn seat_group(&self) -> Option<String> {
        seat_group(&self.terms, self.slot.start, self.end)
    }

    /// Every lock this booking holds alone, with the resource it is on: its
    /// cells on each host (a seat: its seat token instead, the cells being
    /// its group's, see [`Self::seat_cells`]), then its day token.
    pub fn locks(&self) -> Vec<(ResourceId, LockKey)> {
        let (from, to) = self.blocked();
        let mut locks: Vec<(ResourceId, LockKey)> = Vec::new();
        match (self.seat_group(), self.seat) {
            (Some(group), Some(index)) => {
                locks.push((self.slot.resource_id.clone(), LockKey::Seat { start: self.slot.start, group, index }));
            }
            _ => {
                for host in self.hosts() {
                    locks.extend(cells(from, to).into_iter().map(|c| (host.clone(), LockKey::Cell(c))));
                }
            }
        }
        if let Some(token) = &self.day_token {
            locks.push((
                self.slot.resource_id.clone(),
                LockKey::DayToken {
                    booking_type: self.terms.booking_type.clone(),
                    date: token.date,
                    index: token.index,
                },
            ));
        }
        locks
    }

    /// A seat's group cells (shared with the other seats of its group); none
    /// for a booking that is not a seat.
    pub fn seat_cells(&self) -> Vec<DateTime<Utc>> {
        if self.seat.is_none() || self.terms.seats.is_none() {
            return Vec::new();
        }
        let (from, to) = self.blocked();
        cells(from, to)
    }

    /// Whether the booking counts in its seat group's `booked` (paid or
    /// being paid, not a hold).
    pub fn counts_as_booked(&self) -> bool {
        !matches!(self.status, ClaimStatus::Held)
    }

    /// Whether the claim still keeps others off the slot at `now`.
    ///
    /// TTL deletion is lazy, so a HELD claim past its expiry is free even while
    /// its item is still readable.
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        match self.status {
            ClaimStatus::Held => self.expires_at.is_some_and(|t| t > now),
            ClaimStatus::PaymentPending | ClaimStatus::Confirmed | ClaimStatus::Cancelling => true,
        }
    }

    /// What the customer sees of this claim at `now`.
    pub fn reservation_status(&self, now: DateTime<Utc>) -> ReservationStatus {
        match self.status {
            ClaimStatus::Held if self.is_live(now) => ReservationStatus::Held,
            ClaimStatus::Held => ReservationStatus::Expired,
            ClaimStatus::PaymentPending => ReservationStatus::PaymentPending,
            ClaimStatus::Confirmed => ReservationStatus::Confirmed,
            ClaimStatus::Cancelling => ReservationStatus::Cancelling,
        }
    }
}

/// The status a reservation shows its customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReservationStatus {
    /// The slot is held while the customer pays.
    Held,
    /// The hold lapsed without payment.
    Expired,
    /// Paid with a delayed method; the slot stays reserved until it settles.
    PaymentPending,
    /// Paid and booked.
    Confirmed,
    /// The hold was given up: the Checkout Session expired or the payment failed.
    Released,
    /// Paid after the slot went to someone else: the payment was refunded.
    Refunded,
    /// A cancellation is under way (refund sent or about to be); the slot is
    /// freed when it finishes.
    Cancelling,
    /// Cancelled after confirmation: refunded, slot freed, calendar event removed.
    Cancelled,
}

impl ReservationStatus {
    const ALL: [Self; 8] = [
        Self::Held,
        Self::Expired,
        Self::PaymentPending,
        Self::Confirmed,
        Self::Released,
        Self::Refunded,
        Self::Cancelling,
        Self::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Held => "held",
            Self::Expired => "expired",
            Self::PaymentPending => "payment_pending",
            Self::Confirmed => "confirmed",
            Self::Released => "released",
            Self::Refunded => "refunded",
            Self::Cancelling => "cancelling",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn slot() -> SlotKey {
        SlotKey {
            resource_id: ResourceId::parse("room-2").unwrap(),
            start: DateTime::parse_from_rfc3339("2026-06-10T07:30:00Z").unwrap().with_timezone(&Utc),
        }
    }

    #[test]
    fn reservation_ids_round_trip_their_slot() {
        let id = ReservationId::new(&slot());
        assert!(id.as_str().starts_with("rsv_room-2_20260610T073000_"));
        let parsed = ReservationId::parse(id.as_str()).unwrap();
        assert_eq!(parsed.slot_key(), slot());
        assert_ne!(ReservationId::new(&slot()), id, "ids must be unique per claim");
    }

    #[test]
    fn foreign_ids_are_refused() {
        let good = ReservationId::new(&slot()).to_string();
        for bad in [
            "",
            "rsv_",
            "abc",
            &good.replace("rsv_", "res_"),
            &good.replace("20260610T073000", "20261310T073000"),
            &good.replace("room-2", "Room"),
            &good[..good.len() - 1],
            &format!("{good}0"),
            &good.replace("rsv_room-2", "rsv_room/2"),
        ] {
            assert!(ReservationId::parse(bad).is_none(), "{bad:?} accepted");
        }
    }

    #[test]
    fn emails_are_checked() {
        for ok in ["a@b.co", "jane.doe+tag@example.com", " x@y.org "] {
            assert!(Email::parse(ok).is_ok(), "{ok:?} refused");
        }
        for bad in ["", "a", "a@", "@b.co", "a@b", "a@@b.co", "a b@c.de", "a@b..co", "a@.b.co", "a@b.co.", "<a@b.co>"] {
            assert!(Email::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(Email::parse(&format!("{}@b.co", "a".repeat(65))).is_err());
    }

    #[test]
    fn debug_output_hides_the_customer() {
        let customer = Customer::parse("Jane Q. Public", "jane.public@example.com").unwrap();
        let price = Price { amount: 100, currency: "eur".into() };
        let now = Utc::now();
        let claim = Claim::hold(slot(), slot().start, BookingTerms::plain(30), customer.clone(), &price, now, now);
        for shown in [format!("{customer:?}"), format!("{:?}", customer.email), format!("{claim:#?}")] {
            assert!(!shown.contains("Jane") && !shown.contains("public@"), "{shown}");
            assert!(shown.contains("<redacted>"), "{shown}");
        }
        assert_eq!(customer.email.as_str(), "jane.public@example.com", "only Debug hides it");
    }

    #[test]
    fn a_claim_rebuilt_from_its_checkout_record_is_that_reservations() {
        let now = Utc::now();
        let id = ReservationId::new(&slot());
        let record = CheckoutRecord {
            reservation_id: id.clone(),
            session_id: "cs_1".into(),
            amount: 4500,
            currency: "eur".into(),
            end: slot().start + Duration::minutes(45),
            customer: Customer::parse("Jane", "jane@example.com").unwrap(),
            terms: BookingTerms::plain(45),
            day_token: None,
            seat: None,
            hosts: Vec::new(),
            secret_hash: Some(crate::domain::ReservationSecret::generate().hash()),
        };
        let claim = Claim::from_checkout(&record, ClaimStatus::Confirmed, now);
        assert_eq!(claim.reservation_id, id, "not a fresh id");
        assert_eq!((claim.slot, claim.end, claim.status), (slot(), record.end, ClaimStatus::Confirmed));
        assert_eq!((claim.amount, claim.currency.as_str(), claim.expires_at), (4500, "eur", None));
        assert_eq!(claim.secret_hash, record.secret_hash, "the customer's secret still admits");
    }

    #[test]
    fn a_held_claim_is_live_only_before_it_expires() {
        let now = Utc::now();
        let customer = Customer::parse("Jane", "jane@example.com").unwrap();
        let price = Price { amount: 100, currency: "eur".into() };
        let end = slot().start + Duration::minutes(30);
        let mut claim =
            Claim::hold(slot(), end, BookingTerms::plain(30), customer, &price, now, now + Duration::seconds(1));
        assert!(claim.is_live(now));
        assert_eq!(claim.reservation_status(now), ReservationStatus::Held);
        claim.expires_at = Some(now);
        assert!(!claim.is_live(now), "expires_at <= now is free");
        assert_eq!(claim.reservation_status(now), ReservationStatus::Expired);
        claim.status = ClaimStatus::Confirmed;
        claim.expires_at = None;
        assert!(claim.is_live(now + Duration::days(400)));
        claim.status = ClaimStatus::PaymentPending;
        assert!(claim.is_live(now + Duration::days(10)), "a pending payment keeps the slot");
        assert_eq!(claim.reservation_status(now), ReservationStatus::PaymentPending);
    }

    #[test]
    fn statuses_round_trip_their_text() {
        for status in ReservationStatus::ALL {
            assert_eq!(ReservationStatus::parse(status.as_str()), Some(status));
            assert_eq!(serde_json::to_value(status).unwrap(), status.as_str());
        }
        for status in [ClaimStatus::Held, ClaimStatus::PaymentPending, ClaimStatus::Confirmed, ClaimStatus::Cancelling]
        {
            assert_eq!(ClaimStatus::parse(status.as_str()), Some(status));
        }
    }
}
