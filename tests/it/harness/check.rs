//! The invariant checker.
//!
//! After every step, and again on the final state (cheap, from one Scan of
//! the table, reading the booking items, never trusting the locks for it):
//! - I1: no two live bookings of a host have overlapping blocked intervals
//!   `[start − buffer_before, end + buffer_after)`, computed from each
//!   booking item's own `terms` and interval; a host is the booking's
//!   resource, or each team member named in a team booking's `hosts`; seats
//!   of one seat group (same resource, type, start and blocked interval) may
//!   overlap each other, and only each other; a seat group has at most
//!   `terms.seats` live seats, each with its own seat index; a type's
//!   `max_per_day` is never exceeded on a day; a confirmed, pending or
//!   cancelling booking and its locks carry no TTL attribute, a hold and its
//!   locks always do;
//! - I7: every live booking holds exactly its locks, owned by it, booked or
//!   held as it is, expiring with it: one per 5-minute cell of its blocked
//!   interval in each host's cell partition (a team booking: each member's,
//!   never the team's own), or for a seat its seat token
//!   (`CELL#{resource}#{date}` / `SEAT#{group}#{index}`) instead, plus its day
//!   token; every cell of a live seat's blocked interval is `SEATED` for its
//!   group with `booked` equal to the group's paid seats (payment pending,
//!   confirmed, cancelling) and `seats_until` no earlier than any live held
//!   seat's expiry; every seated cell's `booked` is its group's paid seats (a
//!   count that never returns to 0 keeps the cells from everyone); and no
//!   live lock belongs to a reservation whose booking is gone or not live (a
//!   lock nobody would ever free; seated cells are their group's, their
//!   `reservation_id` is only the last writer's);
//! - I12: a seat has a seat index below its `terms.seats`, exactly when its
//!   type is seated; a round-robin team booking has exactly one host, a
//!   member of the team; a collective one has all the team's members as
//!   hosts (and by I7 holds all their cells, or is not there at all); a
//!   booking of a resource that is not a team has no hosts;
//! - I6: a reservation seen confirmed stays confirmed until it is cancelled;
//!   refunded and cancelled are final (DESIGN invariant 9); a live hold or
//!   pending payment never vanishes (nobody takes it over while it lives);
//!   a cancel answered `200` finds the reservation cancelled right after
//!   (checked in `run`, at the answer);
//!
//! After the quiesce phase, from the real servers:
//! - I1: a reservation whose status route shows it live owns its booking item;
//! - I6: no booking is left `cancelling` once every client retry is done;
//! - I2: money: every paid session ends as exactly one confirmed booking with
//!   no refund, or as refunds: in full when the webhook refunds it, or, for
//!   a booking it confirmed that was cancelled since, exactly the share the
//!   type's cancellation policy gives the canceller (full for the host, as
//!   decided by one of the cancel requests made for it; nothing refunded
//!   for a 0% share); never more than was paid; every confirmed booking is
//!   paid by its own slotguard session at its price;
//! - I3: no reservation stays payment_pending once its session's delayed
//!   payment result was delivered, or with no delayed payment pending at all;
//! - I4: every confirmed booking has exactly one calendar event on each
//!   calendar it belongs on (its resource's; a team booking's: each hosting
//!   member's), at its current start and end (after any reschedule), and on
//!   no other; nothing else of slotguard's is on any calendar, before and
//!   after a reconcile run (only after it for a booking whose failed
//!   reschedule its client gave up on: no calendar job may have been queued
//!   for that move); and that reconcile run, with the queue drained, finds
//!   nothing missing, nothing orphaned and nothing moved but those.
//!
//! The runner checks as each op finishes: I5 (no 5xx without an injected
//! fault; a refused cancel or reschedule changes nothing; an authorised
//! reschedule of a seat is refused, `not_reschedulable` or an earlier
//! refusal, or answers a move to where it is with the seat unmoved) and I8 (an
//! unhindered customer cancel or reschedule is answered as the type's policy
//! says: the refund share, a refusal outside the window, same price only) and
//! I9 (a Checkout Session is created only at a price the resource's stored
//! settings asked for the booking at some moment since its first checkout
//! request: a hold taken under cached settings the host has changed since is
//! not charged at the outdated price).

use super::run::{Runner, SessionKind};
use super::world::ResourceInfo;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde_json::Value;
use slotguard::domain::{BookingTerms, CancellationPolicy, LateCancellation, ReschedulePolicy};
use slotguard::ports::{Calendar, ClaimStore};
use std::collections::{BTreeMap, BTreeSet, HashMap};

pub type Item = HashMap<String, AttributeValue>;

#[derive(Debug, Clone)]
pub struct Violation {
    /// `I1`..`I12`, or `harness`.
    pub inv: &'static str,
    /// The plan step after which it was seen; `None`: in the final checks.
    pub step: Option<usize>,
    pub detail: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.step {
            Some(i) => write!(f, "{} (after step {i}): {}", self.inv, self.detail),
            None => write!(f, "{} (final state): {}", self.inv, self.detail),
        }
    }
}

pub fn hhmm(t: DateTime<Utc>) -> String {
    t.format("%m-%dT%H:%M").to_string()
}

pub use crate::helpers::scan_table as scan;

fn attr_text(v: &AttributeValue) -> String {
    match v {
        AttributeValue::S(s) => s.clone(),
        AttributeValue::N(n) => n.clone(),
        AttributeValue::Bool(b) => b.to_string(),
        other => format!("{other:?}"),
    }
}

/// An item as one line, attributes sorted.
pub fn item_text(item: &Item) -> String {
    let sorted: BTreeMap<&String, String> = item.iter().map(|(k, v)| (k, attr_text(v))).collect();
    sorted.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")
}

/// What differs between two `effects` lists.
pub fn diff(before: &[String], after: &[String]) -> String {
    let gone: Vec<&String> = before.iter().filter(|l| !after.contains(l)).collect();
    let new: Vec<&String> = after.iter().filter(|l| !before.contains(l)).collect();
    format!("before: {gone:?}; after: {new:?}")
}

fn s(item: &Item, name: &str) -> Option<String> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Some(v.clone()),
        _ => None,
    }
}

fn n(item: &Item, name: &str) -> Option<i64> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v.parse().ok(),
        _ => None,
    }
}

fn time(item: &Item, name: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(&s(item, name)?).ok().map(|t| t.with_timezone(&Utc))
}

/// A booking item (`kind = claim`), read without the product's own parser
/// (so a status it adds, such as `CANCELLING`, reads too).
#[derive(Debug, Clone)]
pub struct RawBooking {
    pub reservation: String,
    pub resource: String,
    /// As stored: `HELD`, `PAYMENT_PENDING`, `CONFIRMED`, `CANCELLING`.
    pub status: String,
    pub expires_at: Option<i64>,
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    /// `None` when the `terms` attribute is missing or unreadable (an I1 violation).
    pub terms: Option<BookingTerms>,
    /// The day token: its local date and index.
    pub day_token: Option<(NaiveDate, u32)>,
    /// `seat`: the seat token's index (a seat of a seated slot).
    pub seat: Option<u32>,
    /// `terms.seats`, read from the raw terms: the slot's seats when booked.
    pub seats: Option<u32>,
    /// `hosts`: the team members hosting it (empty: its resource hosts it).
    pub hosts: Vec<String>,
    pub payment_intent: Option<String>,
    pub amount: i64,
    pub currency: String,
}

impl RawBooking {
    /// Whether the booking keeps its interval from others at `now`.
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        match self.status.as_str() {
            "HELD" => self.expires_at.is_some_and(|t| t > now.timestamp()),
            _ => true,
        }
    }

    /// Its blocked interval, from its own stored interval and terms.
    pub fn blocked(&self) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        let (start, end, terms) = (self.start?, self.end?, self.terms.as_ref()?);
        Some((
            start - Duration::minutes(i64::from(terms.buffer_before_minutes)),
            end + Duration::minutes(i64::from(terms.buffer_after_minutes)),
        ))
    }

    /// Whose cells it blocks: its team members (`hosts`), or its resource.
    pub fn host_ids(&self) -> Vec<String> {
        if self.hosts.is_empty() { vec![self.resource.clone()] } else { self.hosts.clone() }
    }

    /// Whether it is a seat (its terms have seats).
    pub fn is_seat(&self) -> bool {
        self.seats.is_some()
    }

    /// Its seat group, `{type}#{start}#{blocked from}#{blocked to}` (compact
    /// UTC times), written here from the design, not the product's code.
    pub fn seat_group(&self) -> Option<String> {
        self.seats?;
        let (from, to) = self.blocked()?;
        let compact = |t: DateTime<Utc>| t.format("%Y%m%dT%H%M%S").to_string();
        Some(format!(
            "{}#{}#{}#{}",
            self.terms.as_ref()?.booking_type,
            compact(self.start?),
            compact(from),
            compact(to)
        ))
    }

    /// The starts of the 5-minute UTC cells its blocked interval touches.
    pub fn cells(&self) -> Vec<DateTime<Utc>> {
        let mut cells = Vec::new();
        if let Some((from, to)) = self.blocked() {
            const CELL: i64 = 300;
            let mut t = from.timestamp().div_euclid(CELL) * CELL;
            while t < to.timestamp() {
                cells.push(DateTime::from_timestamp(t, 0).unwrap());
                t += CELL;
            }
        }
        cells
    }

    /// The `(pk, sk)` of every lock it must hold alone: one per 5-minute
    /// UTC cell its blocked interval touches on each host (a seat: its seat
    /// token instead, the cells being its group's), and its day token (see
    /// `items.rs`).
    pub fn lock_keys(&self) -> BTreeSet<(String, String)> {
        let mut keys = BTreeSet::new();
        match (self.seat_group(), self.seat, self.start) {
            (Some(group), Some(index), Some(start)) => {
                keys.insert((
                    format!("CELL#{}#{}", self.resource, start.date_naive()),
                    format!("SEAT#{group}#{index:03}"),
                ));
            }
            _ if self.is_seat() => {}
            _ => {
                for host in self.host_ids() {
                    for cell in self.cells() {
                        keys.insert((format!("CELL#{host}#{}", cell.date_naive()), slotguard::domain::rfc3339(cell)));
                    }
                }
            }
        }
        if let (Some((date, index)), Some(terms)) = (self.day_token, &self.terms) {
            keys.insert((format!("DAYCAP#{}#{}#{date}", self.resource, terms.booking_type), format!("{index:03}")));
        }
        keys
    }
}

/// A lock item (`kind = lock`).
#[derive(Debug, Clone)]
pub struct RawLock {
    pub pk: String,
    pub sk: String,
    pub reservation: String,
    /// `HELD`, `BOOKED`, or `SEATED` (a cell of a seat group).
    pub status: String,
    pub expires_at: Option<i64>,
    /// A seated cell's `seat_group`, `booked` and `seats_until`.
    pub seat_group: Option<String>,
    pub booked: Option<i64>,
    pub seats_until: Option<i64>,
}

impl RawLock {
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        match self.status.as_str() {
            "HELD" => self.expires_at.is_some_and(|t| t > now.timestamp()),
            "SEATED" => self.booked.unwrap_or(0) > 0 || self.seats_until.is_some_and(|t| t > now.timestamp()),
            _ => true,
        }
    }
}

pub struct Snapshot {
    pub bookings: Vec<RawBooking>,
    pub locks: Vec<RawLock>,
    /// Reservation records: id → status.
    pub records: HashMap<String, String>,
    /// Payment outcomes: session id → (outcome, reservation id).
    pub outcomes: HashMap<String, (String, String)>,
}

impl Snapshot {
    pub fn from_items(items: &[Item]) -> Self {
        let mut bookings = Vec::new();
        let mut locks = Vec::new();
        let mut records = HashMap::new();
        let mut outcomes = HashMap::new();
        for item in items {
            match s(item, "kind").as_deref() {
                Some("claim") => bookings.push(RawBooking {
                    reservation: s(item, "reservation_id").unwrap_or_default(),
                    resource: s(item, "resource_id").unwrap_or_default(),
                    status: s(item, "status").unwrap_or_default(),
                    expires_at: n(item, "expires_at"),
                    start: time(item, "start"),
                    end: time(item, "end"),
                    terms: s(item, "terms").and_then(|t| serde_json::from_str(&t).ok()),
                    day_token: s(item, "day_token").and_then(|t| {
                        let v: Value = serde_json::from_str(&t).ok()?;
                        let date = NaiveDate::parse_from_str(v["date"].as_str()?, "%Y-%m-%d").ok()?;
                        Some((date, u32::try_from(v["index"].as_u64()?).ok()?))
                    }),
                    seat: n(item, "seat").and_then(|i| u32::try_from(i).ok()),
                    seats: s(item, "terms")
                        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
                        .and_then(|v| v["seats"].as_u64())
                        .and_then(|n| u32::try_from(n).ok()),
                    hosts: match item.get("hosts") {
                        Some(AttributeValue::L(list)) => {
                            list.iter().map(|v| v.as_s().cloned().unwrap_or_else(|_| format!("{v:?}"))).collect()
                        }
                        _ => Vec::new(),
                    },
                    payment_intent: s(item, "payment_intent"),
                    amount: n(item, "amount").unwrap_or_default(),
                    currency: s(item, "currency").unwrap_or_default(),
                }),
                Some("lock") => locks.push(RawLock {
                    pk: s(item, "pk").unwrap_or_default(),
                    sk: s(item, "sk").unwrap_or_default(),
                    reservation: s(item, "reservation_id").unwrap_or_default(),
                    status: s(item, "status").unwrap_or_default(),
                    expires_at: n(item, "expires_at"),
                    seat_group: s(item, "seat_group"),
                    booked: n(item, "booked"),
                    seats_until: n(item, "seats_until"),
                }),
                Some("reservation") => {
                    if let (Some(id), Some(status)) = (s(item, "reservation_id"), s(item, "status")) {
                        records.insert(id, status);
                    }
                }
                Some("payment") => {
                    let session = s(item, "pk").unwrap_or_default().trim_start_matches("PAYMENT#").to_owned();
                    if let (Some(outcome), Some(reservation)) = (s(item, "outcome"), s(item, "reservation_id")) {
                        outcomes.insert(session, (outcome, reservation));
                    }
                }
                _ => {}
            }
        }
        Self { bookings, locks, records, outcomes }
    }

    pub fn booking(&self, reservation: &str) -> Option<&RawBooking> {
        self.bookings.iter().find(|b| b.reservation == reservation)
    }

    /// The status the status route would show, from the raw items.
    pub fn status(&self, reservation: &str, now: DateTime<Utc>) -> Option<String> {
        if let Some(b) = self.booking(reservation) {
            return Some(match b.status.as_str() {
                "HELD" if b.is_live(now) => "held".into(),
                "HELD" => "expired".into(),
                other => other.to_ascii_lowercase(),
            });
        }
        self.records.get(reservation).cloned()
    }
}

fn live(status: &str) -> bool {
    matches!(status, "held" | "payment_pending" | "confirmed" | "cancelling")
}

fn short(id: &str) -> String {
    super::run::short(id)
}

fn interval(from: DateTime<Utc>, to: DateTime<Utc>) -> String {
    format!("[{}, {})", from.format("%m-%dT%H:%M"), to.format("%H:%M"))
}

/// I1 and I7 on one snapshot at `now`.
pub fn bookings_and_locks(
    snapshot: &Snapshot,
    now: DateTime<Utc>,
    resources: &[ResourceInfo],
) -> Vec<(&'static str, String)> {
    let mut found = Vec::new();
    let live: Vec<&RawBooking> = snapshot.bookings.iter().filter(|b| b.is_live(now)).collect();

    // I1: TTL attributes.
    for b in &snapshot.bookings {
        match (b.status.as_str(), b.expires_at) {
            ("HELD", None) => {
                found.push(("I1", format!("HELD booking {} has no expires_at: it never lapses", b.reservation)))
            }
            ("HELD", Some(_)) => {}
            (other, Some(_)) => {
                found.push(("I1", format!("{other} booking {} carries the TTL attribute expires_at", b.reservation)))
            }
            _ => {}
        }
        if b.terms.is_none() || b.start.is_none() || b.end.is_none() {
            found.push(("I1", format!("booking {} has no readable terms or interval", b.reservation)));
        }
    }
    // I1: no overlap between the blocked intervals of live bookings of a
    // host (a resource, or a member through team bookings' hosts), but
    // between seats of one group.
    for (i, a) in live.iter().enumerate() {
        for b in &live[i + 1..] {
            let (a_hosts, b_hosts) = (a.host_ids(), b.host_ids());
            let Some(host) = a_hosts.iter().find(|h| b_hosts.contains(h)) else { continue };
            if a.is_seat() && b.is_seat() && a.resource == b.resource && a.seat_group() == b.seat_group() {
                continue;
            }
            if let (Some((a0, a1)), Some((b0, b1))) = (a.blocked(), b.blocked())
                && a0 < b1
                && b0 < a1
            {
                found.push((
                    "I1",
                    format!(
                        "live bookings of {host} overlap: {} {} {} blocks {} and {} {} {} blocks {}",
                        short(&a.reservation),
                        a.status,
                        a.terms.as_ref().map(|t| t.booking_type.as_str()).unwrap_or("?"),
                        interval(a0, a1),
                        short(&b.reservation),
                        b.status,
                        b.terms.as_ref().map(|t| t.booking_type.as_str()).unwrap_or("?"),
                        interval(b0, b1),
                    ),
                ));
            }
        }
    }
    // I1: a type's day limit (the resources are on UTC: the local date is the UTC date).
    let mut per_day: BTreeMap<(&str, &str, NaiveDate), Vec<&str>> = BTreeMap::new();
    for b in &live {
        if let (Some(terms), Some(start)) = (&b.terms, b.start) {
            per_day
                .entry((b.resource.as_str(), terms.booking_type.as_str(), start.date_naive()))
                .or_default()
                .push(b.reservation.as_str());
        }
    }
    for ((resource, kind, date), ids) in &per_day {
        let limit = resources
            .iter()
            .find(|r| r.id == *resource)
            .and_then(|r| r.resource.booking_type(Some(kind)))
            .and_then(|t| t.max_per_day);
        if let Some(limit) = limit
            && ids.len() > limit as usize
        {
            let listed: Vec<String> = ids.iter().map(|id| short(id)).collect();
            found.push((
                "I1",
                format!(
                    "{} live {kind} bookings of {resource} on {date}, limit {limit}: {}",
                    ids.len(),
                    listed.join(", ")
                ),
            ));
        }
    }

    // I1: at most N live seats per seat group, each with its own seat.
    let mut groups: BTreeMap<(String, String), Vec<&RawBooking>> = BTreeMap::new();
    for b in live.iter().filter(|b| b.is_seat()) {
        if let Some(group) = b.seat_group() {
            groups.entry((b.resource.clone(), group)).or_default().push(b);
        }
    }
    for ((resource, group), seats) in &groups {
        let limit = seats.iter().filter_map(|b| b.seats).max().unwrap_or(0) as usize;
        let listed: Vec<String> = seats.iter().map(|b| format!("{}#{:?}", short(&b.reservation), b.seat)).collect();
        if seats.len() > limit {
            found.push((
                "I1",
                format!(
                    "{} live seats of {resource}'s group {group}, {limit} seats: {}",
                    seats.len(),
                    listed.join(", ")
                ),
            ));
        }
        let indexes: BTreeSet<Option<u32>> = seats.iter().map(|b| b.seat).collect();
        if indexes.len() < seats.len() {
            found.push(("I1", format!("live seats of {resource}'s group {group} share a seat: {}", listed.join(", "))));
        }
    }

    // I12: seats and team assignments as the booking's resource and type say.
    for b in &live {
        let info = resources.iter().find(|r| r.id == b.resource);
        let seated_type = info
            .zip(b.terms.as_ref())
            .and_then(|(r, terms)| r.resource.booking_type(Some(&terms.booking_type)))
            .map(|t| t.seats.is_some());
        match (b.seats, b.seat) {
            (Some(n), Some(i)) if i < n => {}
            (None, None) => {}
            (seats, seat) => found.push((
                "I12",
                format!("live {} {} has seat {seat:?} of terms.seats {seats:?}", b.status, short(&b.reservation)),
            )),
        }
        if seated_type.is_some_and(|seated| seated != b.is_seat()) {
            found.push((
                "I12",
                format!(
                    "live {} {} is {}a seat; its type is not",
                    b.status,
                    short(&b.reservation),
                    if b.is_seat() { "" } else { "not " }
                ),
            ));
        }
        let team = info.and_then(|r| r.team());
        let ok = match &team {
            None => b.hosts.is_empty(),
            Some((members, true)) => {
                let mut hosts = b.hosts.clone();
                hosts.sort();
                let mut all = members.clone();
                all.sort();
                hosts == all
            }
            Some((members, false)) => b.hosts.len() == 1 && members.contains(&b.hosts[0]),
        };
        if !ok {
            let should = match &team {
                None => "none (not a team)".to_owned(),
                Some((members, true)) => format!("all of {members:?} (collective)"),
                Some((members, false)) => format!("one of {members:?} (round-robin)"),
            };
            found.push((
                "I12",
                format!(
                    "live {} {} of {} has hosts {:?}; it should have {should}",
                    b.status,
                    short(&b.reservation),
                    b.resource,
                    b.hosts
                ),
            ));
        }
    }

    // I7: every live booking holds exactly its locks, as it is.
    let locks_by_key: HashMap<(&str, &str), &RawLock> =
        snapshot.locks.iter().map(|l| ((l.pk.as_str(), l.sk.as_str()), l)).collect();
    let mut expected_of: HashMap<&str, BTreeSet<(String, String)>> = HashMap::new();
    for b in &live {
        let expected = b.lock_keys();
        let held = b.status == "HELD";
        let mut missing = Vec::new();
        for (pk, sk) in &expected {
            match locks_by_key.get(&(pk.as_str(), sk.as_str())) {
                None => missing.push(format!("{pk} {sk}")),
                Some(l) if l.reservation != b.reservation => found.push((
                    "I7",
                    format!(
                        "live {} {} lacks lock {pk} {sk}: it is {}'s",
                        b.status,
                        short(&b.reservation),
                        short(&l.reservation)
                    ),
                )),
                Some(l) => {
                    let consistent = if held {
                        l.status == "HELD" && l.expires_at == b.expires_at
                    } else {
                        l.status == "BOOKED" && l.expires_at.is_none()
                    };
                    if !consistent {
                        found.push((
                            "I7",
                            format!(
                                "{} booking {} has lock {pk} {sk} as {} (expires_at {:?}, the booking's {:?})",
                                b.status,
                                short(&b.reservation),
                                l.status,
                                l.expires_at,
                                b.expires_at
                            ),
                        ));
                    }
                }
            }
        }
        if !missing.is_empty() {
            found.push((
                "I7",
                format!(
                    "live {} {} is missing {} of its {} locks: {}",
                    b.status,
                    short(&b.reservation),
                    missing.len(),
                    expected.len(),
                    missing.iter().take(4).cloned().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        expected_of.insert(b.reservation.as_str(), expected);
    }
    // I7: a live seat's cells are its group's: SEATED, `booked` its group's
    // paid seats, `seats_until` no earlier than any live held seat's expiry.
    let paid_of = |resource: &str, group: &str| {
        groups
            .get(&(resource.to_owned(), group.to_owned()))
            .map(|seats| seats.iter().filter(|b| b.status != "HELD").count() as i64)
            .unwrap_or(0)
    };
    for ((resource, group), seats) in &groups {
        let paid = paid_of(resource, group);
        let latest_hold = seats.iter().filter(|b| b.status == "HELD").filter_map(|b| b.expires_at).max();
        let mut wrong = Vec::new();
        for cell in seats[0].cells() {
            let key = (format!("CELL#{resource}#{}", cell.date_naive()), slotguard::domain::rfc3339(cell));
            match locks_by_key.get(&(key.0.as_str(), key.1.as_str())) {
                None => wrong.push(format!("{} {} missing", key.0, key.1)),
                Some(l) if l.status != "SEATED" || l.seat_group.as_deref() != Some(group.as_str()) => wrong.push(
                    format!("{} {} is {} {} of {:?}", key.0, key.1, l.status, short(&l.reservation), l.seat_group),
                ),
                Some(l) if l.booked != Some(paid) => wrong
                    .push(format!("{} {} has booked {:?}, the group has {paid} paid seats", key.0, key.1, l.booked)),
                Some(l) if latest_hold.is_some_and(|t| l.seats_until.is_none_or(|u| u < t)) => wrong.push(format!(
                    "{} {} has seats_until {:?}, before a live held seat's expiry {latest_hold:?}",
                    key.0, key.1, l.seats_until
                )),
                Some(_) => {}
            }
        }
        if !wrong.is_empty() {
            let listed: Vec<String> = seats.iter().map(|b| format!("{} {}", short(&b.reservation), b.status)).collect();
            found.push((
                "I7",
                format!(
                    "the cells of {resource}'s seat group {group} (seats {}) are not the group's: {}",
                    listed.join(", "),
                    wrong.iter().take(3).cloned().collect::<Vec<_>>().join("; ")
                ),
            ));
        }
    }
    // I7: a seated cell counts exactly its group's paid seats (a count that
    // never returns to 0 keeps the cells from everyone forever).
    for l in snapshot.locks.iter().filter(|l| l.status == "SEATED") {
        let resource = l.pk.trim_start_matches("CELL#").rsplit_once('#').map(|(r, _)| r).unwrap_or("");
        let paid = l.seat_group.as_deref().map(|g| paid_of(resource, g)).unwrap_or(0);
        if l.booked != Some(paid) {
            found.push((
                "I7",
                format!(
                    "seated cell {} {} of group {:?} has booked {:?}; the group has {paid} paid seats",
                    l.pk, l.sk, l.seat_group, l.booked
                ),
            ));
        }
    }
    // I7: no live lock but the live bookings' own (seated cells are their
    // group's, checked above: their `reservation_id` is the last writer's).
    let mut stray: BTreeMap<(&str, String), Vec<String>> = BTreeMap::new();
    for l in snapshot.locks.iter().filter(|l| l.is_live(now) && l.status != "SEATED") {
        let why = match expected_of.get(l.reservation.as_str()) {
            Some(expected) if expected.contains(&(l.pk.clone(), l.sk.clone())) => continue,
            Some(_) => "a live booking that does not cover it".to_owned(),
            None => match snapshot.booking(&l.reservation) {
                Some(b) => format!("a booking that is not live ({} expired)", b.status),
                None => match snapshot.records.get(&l.reservation) {
                    Some(status) => format!("a booking that is gone ({status})"),
                    None => "a booking that is gone".to_owned(),
                },
            },
        };
        stray.entry((l.reservation.as_str(), why)).or_default().push(format!("{} {}", l.pk, l.sk));
    }
    for ((reservation, why), keys) in stray {
        found.push((
            "I7",
            format!(
                "{} live lock(s) of {} belong to {why}: {}",
                keys.len(),
                short(reservation),
                keys.iter().take(3).cloned().collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    found
}

/// The checks run after every step. `seen` carries the last status seen of
/// each reservation from one step to the next.
pub fn per_step(
    snapshot: &Snapshot,
    now: DateTime<Utc>,
    resources: &[ResourceInfo],
    reservations: &[String],
    seen: &mut HashMap<String, String>,
) -> Vec<(&'static str, String)> {
    let mut found = bookings_and_locks(snapshot, now, resources);
    for id in reservations {
        let now_status = snapshot.status(id, now).unwrap_or_else(|| "gone".into());
        if let Some(before) = seen.get(id) {
            let allowed = match before.as_str() {
                "confirmed" => matches!(now_status.as_str(), "confirmed" | "cancelling" | "cancelled"),
                "cancelling" => matches!(now_status.as_str(), "cancelling" | "cancelled"),
                "cancelled" => now_status == "cancelled",
                "refunded" => now_status == "refunded",
                // A live hold or pending payment ends in a recorded state
                // (expired, released, refunded, confirmed...), never by
                // vanishing: nobody may take it over while it lives.
                "held" | "payment_pending" => now_status != "gone",
                _ => true,
            };
            if !allowed {
                found.push(("I6", format!("{id} went from {before} to {now_status}")));
            }
        }
        seen.insert(id.clone(), now_status);
    }
    found
}

/// What a cancellation by the customer (or, `host`, by the host) of a
/// booking of `amount` starting at `start` refunds at `now` under `policy`;
/// `None`: refused. Written from the policy's documentation, not the product's code.
pub fn policy_refund(
    policy: &CancellationPolicy,
    host: bool,
    amount: i64,
    start: DateTime<Utc>,
    free_until: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Option<i64> {
    let free_until = free_until.unwrap_or(start - Duration::hours(i64::from(policy.free_until_hours)));
    if host || now <= free_until {
        return Some(amount);
    }
    if now >= start {
        return None;
    }
    match policy.late {
        LateCancellation::Refuse => None,
        LateCancellation::Refund { percent } => Some(amount * i64::from(percent.min(100)) / 100),
    }
}

/// Whether a customer may move a booking starting at `start` at `now`.
pub fn policy_moves(policy: &ReschedulePolicy, start: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    policy.allowed && now + Duration::hours(i64::from(policy.until_hours)) <= start
}

/// Reads the final state from the real servers and checks I1-I4, I6, I7.
pub async fn final_checks(r: &mut Runner) {
    let items = scan(&r.world.raw_store).await;
    let snapshot = Snapshot::from_items(&items);

    let mut found: Vec<(&'static str, String)> = bookings_and_locks(&snapshot, r.now, &r.world.resources);
    // Statuses as the status route shows them.
    let mut status: HashMap<String, String> = HashMap::new();
    let ids: Vec<String> = r.reservations.iter().map(|x| x.id.clone()).collect();
    for id in &ids {
        let (code, body) = r.status_of(id).await;
        let shown =
            if code == 200 { body["status"].as_str().unwrap_or("?").to_owned() } else { format!("http_{code}") };
        status.insert(id.clone(), shown);
    }

    // I1: a reservation shown live owns its booking item; I6: no cancel is left half done.
    for res in &r.reservations {
        let shown = &status[&res.id];
        if live(shown) && snapshot.booking(&res.id).is_none() {
            push(&mut found, "I1", format!("{} shows {shown} but owns no booking item", res.id));
        }
        if shown == "cancelling" {
            push(
                &mut found,
                "I6",
                format!("{} is still cancelling after every client retry: its slot is never freed", res.id),
            );
        }
    }

    // I2: money.
    let sessions = r.sim_get("/_sim/checkout/sessions").await["sessions"].as_array().cloned().unwrap_or_default();
    let refunds = r.sim_get("/_sim/refunds").await["refunds"].as_array().cloned().unwrap_or_default();
    let sim_events = r.sim_get("/_sim/events").await["events"].as_array().cloned().unwrap_or_default();
    let confirmed: Vec<&RawBooking> = snapshot
        .bookings
        .iter()
        .filter(|c| c.status == "CONFIRMED" && status.get(&c.reservation).is_none_or(|s| s == "confirmed"))
        .collect();
    let refunds_of = |pi: &str| -> Vec<&Value> { refunds.iter().filter(|f| f["payment_intent"] == pi).collect() };
    // Which sessions slotguard made for a reservation: the ones its checkout
    // answered with (the client's view), or sent under its checkout key.
    let own_ids: Vec<(String, String)> = r
        .sessions
        .iter()
        .filter(|s| s.kind == SessionKind::Own)
        .map(|s| (s.reservation.clone(), s.id.clone()))
        .collect();
    let is_own = |session: &Value, reservation: &str| {
        let id = session["id"].as_str().unwrap_or("");
        own_ids.iter().any(|(r, s)| r == reservation && s == id)
            || session["idempotency_key"].as_str().is_some_and(|k| k.starts_with(&format!("checkout-{reservation}-")))
    };
    let describe = |session: &Value| -> String {
        let reservation = session["metadata"]["reservation_id"].as_str().unwrap_or("?");
        let kind = if is_own(session, reservation) { "slotguard's" } else { "a foreign" };
        format!(
            "{kind} session {} for {reservation} ({} {})",
            session["id"].as_str().unwrap_or("?"),
            session["amount_total"],
            session["currency"].as_str().unwrap_or("")
        )
    };
    let mut paid_pis = Vec::new();
    for session in &sessions {
        if session["payment_status"] != "paid" {
            continue;
        }
        let Some(pi) = session["payment_intent"].as_str() else { continue };
        paid_pis.push(pi.to_owned());
        let total = session["amount_total"].as_i64().unwrap_or_default();
        let booked: Vec<&&RawBooking> = confirmed.iter().filter(|c| c.payment_intent.as_deref() == Some(pi)).collect();
        let refunded = refunds_of(pi);
        let sum: i64 = refunded.iter().map(|f| f["amount"].as_i64().unwrap_or_default()).sum();
        if sum > total {
            push(&mut found, "I2", format!("paid {} is refunded {sum}, more than paid", describe(session)));
            continue;
        }
        let amounts: Vec<i64> = refunded.iter().map(|f| f["amount"].as_i64().unwrap_or_default()).collect();
        let session_id = session["id"].as_str().unwrap_or("");
        let confirmed_for = snapshot
            .outcomes
            .get(session_id)
            .filter(|(outcome, _)| outcome == "CONFIRMED")
            .map(|(_, reservation)| reservation.clone());
        // A session that confirmed a booking which was cancelled since:
        // refunded the policy's share, as one of the cancels decided it.
        if let Some(reservation) = confirmed_for.filter(|_| booked.is_empty()) {
            let shown = status.get(&reservation).cloned().unwrap_or_else(|| "unknown to the client".into());
            if shown != "cancelled" {
                push(
                    &mut found,
                    "I2",
                    format!(
                        "paid {} confirmed {reservation}, which is now {shown}, refunded {amounts:?}",
                        describe(session)
                    ),
                );
                continue;
            }
            let shares = r.cancel_shares(&reservation, total);
            let ok = match amounts.as_slice() {
                [] => shares.contains(&0),
                [one] => *one > 0 && shares.contains(one),
                _ => false,
            };
            if !ok {
                push(
                    &mut found,
                    "I2",
                    format!(
                        "paid {} for {reservation}, cancelled, is refunded {amounts:?}; the cancellation policy's \
                         share for the cancels made is one of {shares:?} (0: no refund)",
                        describe(session)
                    ),
                );
            }
            continue;
        }
        let ok = (booked.len() == 1 && refunded.is_empty()) || (booked.is_empty() && amounts == [total]);
        if !ok {
            let what = match (booked.len(), refunded.len()) {
                (0, 0) => "neither booked nor refunded (a ghost payment)".to_owned(),
                (b, 0) => format!("booked by {b} reservations"),
                (0, n) => format!("refunded {n} times ({amounts:?}), not once in full"),
                (b, n) => format!("booked by {b} reservation(s) and refunded {n} time(s)"),
            };
            push(&mut found, "I2", format!("paid {} is {what}", describe(session)));
        }
    }
    for c in &confirmed {
        let price = r.reservations.iter().find(|x| x.id == c.reservation).map(|x| (x.amount, x.currency.clone()));
        let (amount, currency) = price.unwrap_or((c.amount, c.currency.clone()));
        let paid_by = c.payment_intent.as_deref().and_then(|pi| sessions.iter().find(|s| s["payment_intent"] == pi));
        match paid_by {
            Some(by)
                if is_own(by, &c.reservation)
                    && by["payment_status"] == "paid"
                    && by["amount_total"] == amount
                    && by["currency"] == currency.as_str()
                    && (c.amount, &c.currency) == (amount, &currency) => {}
            Some(by) => push(
                &mut found,
                "I2",
                format!(
                    "{} is confirmed (at {} {}), paid by {} instead of its own session at {amount} {currency}",
                    c.reservation,
                    c.amount,
                    c.currency,
                    describe(by),
                ),
            ),
            None => push(
                &mut found,
                "I2",
                format!(
                    "{} is confirmed without a paid session (payment_intent {:?})",
                    c.reservation, c.payment_intent
                ),
            ),
        }
    }
    for f in &refunds {
        let pi = f["payment_intent"].as_str().unwrap_or("");
        if !paid_pis.iter().any(|p| p == pi) {
            push(&mut found, "I2", format!("refund {} of {pi}, which is not a paid session's payment", f["id"]));
        }
    }

    // I3: nobody waits forever for a payment that has settled (or never will).
    for res in &r.reservations {
        if status[&res.id] != "payment_pending" {
            continue;
        }
        let naming: Vec<&Value> =
            sessions.iter().filter(|s| s["metadata"]["reservation_id"] == res.id.as_str()).collect();
        let result_of = |sid: &str| {
            sim_events.iter().find(|e| {
                e["session_id"] == sid
                    && matches!(
                        e["type"].as_str(),
                        Some("checkout.session.async_payment_succeeded" | "checkout.session.async_payment_failed")
                    )
            })
        };
        if let Some(own) = naming.iter().find(|s| is_own(s, &res.id)) {
            let sid = own["id"].as_str().unwrap_or("");
            let delivered = r.mailbox.iter().any(|m| {
                m.session == sid
                    && m.acked
                    && matches!(
                        m.kind.as_str(),
                        "checkout.session.async_payment_succeeded" | "checkout.session.async_payment_failed"
                    )
            });
            if delivered {
                push(
                    &mut found,
                    "I3",
                    format!("{} is still payment_pending after its session's result was delivered", res.id),
                );
                continue;
            }
        }
        let still_pending = naming.iter().any(|s| {
            s["status"] == "complete"
                && s["payment_status"] == "unpaid"
                && result_of(s["id"].as_str().unwrap_or("")).is_none()
        });
        if !still_pending {
            push(
                &mut found,
                "I3",
                format!("{} is payment_pending but no delayed payment naming it is pending", res.id),
            );
        }
    }

    for (inv, detail) in found {
        r.violate(inv, detail);
    }

    // I4: the calendar, as the writer left it, then after reconcile.
    let intervals: Intervals =
        snapshot.bookings.iter().filter_map(|b| Some((b.reservation.clone(), (b.start?, b.end?)))).collect();
    // The collections each booking's event belongs on: its resource's, or
    // for a team booking those of the members hosting it.
    let calendars_of: HashMap<String, BTreeSet<String>> = snapshot
        .bookings
        .iter()
        .map(|b| {
            let hosts = if r.world.resources.iter().any(|x| x.id == b.resource && x.team().is_some()) {
                b.hosts.clone()
            } else {
                vec![b.resource.clone()]
            };
            let calendars = hosts
                .iter()
                .filter_map(|h| r.world.resources.iter().find(|x| &x.id == h).and_then(|x| x.calendar.clone()))
                .collect();
            (b.reservation.clone(), calendars)
        })
        .collect();
    let intervals = (intervals, calendars_of);
    calendar_check(r, &status, &intervals, "before reconcile").await;
    let (from, to) = r.window();
    let report =
        slotguard::jobs::reconcile::reconcile(&r.world.raw_store, &r.world.raw_calendar, &r.world.raw_queue, from, to)
            .await
            .expect("reconcile with faults off");
    r.note(
        format!(
            "reconcile: missing {}, moved {}, orphans removed {}",
            report.missing.len(),
            report.moved.len(),
            report.orphans_removed.len()
        ),
        "",
    );
    // The writer has drained and every event is checked above: reconcile
    // finds nothing to do but a move whose client gave up.
    let unexpected: Vec<String> = report
        .missing
        .iter()
        .chain(&report.orphans_removed)
        .chain(report.moved.iter().filter(|id| !r.abandoned_moves.contains(id.as_str())))
        .map(|id| id.to_string())
        .collect();
    if !unexpected.is_empty() {
        r.violate(
            "I4",
            format!(
                "reconcile after the calendar queue drained found missing {:?}, orphans {:?}, moved {:?} (unexplained: {unexpected:?})",
                report.missing, report.orphans_removed, report.moved
            ),
        );
    }
    r.drain_calendar().await;
    calendar_check(r, &status, &intervals, "after reconcile").await;

    // Counters for the summary.
    r.stats.confirmed += status.values().filter(|s| *s == "confirmed").count();
    r.stats.cancelled += status.values().filter(|s| *s == "cancelled").count();
    let confirmed_now =
        || snapshot.bookings.iter().filter(|b| status.get(&b.reservation).is_some_and(|s| s == "confirmed"));
    r.stats.confirmed_seats += confirmed_now().filter(|b| b.is_seat()).count();
    r.stats.confirmed_team += confirmed_now().filter(|b| !b.hosts.is_empty()).count();
    r.stats.refunds += refunds.len();
}

fn push(found: &mut Vec<(&'static str, String)>, inv: &'static str, detail: String) {
    found.push((inv, detail));
}

/// DTSTART and DTEND of the calendar object at `url`, as written (UTC).
async fn event_times(r: &Runner, url: &str) -> Result<(Option<DateTime<Utc>>, Option<DateTime<Utc>>), String> {
    use slotguard::adapters::caldav::ics;
    let response = r.world.http.get(url).send().await.map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("GET {url}: {}", response.status()));
    }
    let text = response.text().await.map_err(|e| e.to_string())?;
    let (mut start, mut end) = (None, None);
    let mut in_event = false;
    for line in ics::unfold(&text) {
        let Some(cl) = ics::ContentLine::parse(line.trim_end()) else { continue };
        match cl.name.as_str() {
            "BEGIN" if cl.value.trim().eq_ignore_ascii_case("VEVENT") => in_event = true,
            "END" if cl.value.trim().eq_ignore_ascii_case("VEVENT") => break,
            "DTSTART" if in_event => start = ics::parse_dtstart(&cl),
            "DTEND" if in_event => end = ics::parse_dtstart(&cl),
            _ => {}
        }
    }
    Ok((start, end))
}

/// Each booking's interval, by reservation id.
type Intervals = HashMap<String, (DateTime<Utc>, DateTime<Utc>)>;

async fn calendar_check(
    r: &mut Runner,
    status: &HashMap<String, String>,
    (intervals, calendars_of): &(Intervals, HashMap<String, BTreeSet<String>>),
    when: &str,
) {
    let (from, to) = r.window();
    // Every collection's events, by booking: (collection, event refs).
    let mut per_booking: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for collection in r.world.collections.clone() {
        let target = slotguard::domain::CalendarTarget::caldav(collection.clone());
        let events = match r.world.raw_calendar.list_events(&target, from, to).await {
            Ok(events) => events,
            Err(e) => return r.violate("I4", format!("listing {collection} failed ({when}): {e}")),
        };
        for e in &events {
            per_booking
                .entry(e.reservation_id.to_string())
                .or_default()
                .entry(collection.clone())
                .or_default()
                .insert(e.event_ref.clone());
        }
    }
    if when == "before reconcile" {
        r.stats.calendar_events += per_booking.values().flat_map(|c| c.values()).map(|v| v.len()).sum::<usize>();
    }
    let name = |collection: &str| collection.trim_end_matches('/').rsplit('/').next().unwrap_or("?").to_owned();
    for (id, shown) in status {
        let found = per_booking.get(id).cloned().unwrap_or_default();
        let expected = calendars_of.get(id).cloned().unwrap_or_default();
        let n: usize = found.values().map(BTreeSet::len).sum();
        if shown != "confirmed" {
            if n != 0 {
                r.violate("I4", format!("{id} is {shown} but has {n} calendar event(s) ({when})"));
            }
            continue;
        }
        if expected.is_empty() {
            r.violate("I4", format!("confirmed {id} has no calendar to be written to (its hosts?) ({when})"));
        }
        // The booking's own record of its calendars is where its event is:
        // moving and removing it go by that record.
        let lenient = when == "before reconcile" && r.abandoned_moves.contains(id);
        if let (false, Some(reservation)) = (lenient, slotguard::domain::ReservationId::parse(id))
            && let Ok(Some(claim)) = r.world.raw_store.get_claim(&reservation).await
        {
            let recorded: BTreeSet<String> = claim
                .calendars
                .iter()
                .filter_map(|c| match &c.target {
                    slotguard::domain::CalendarTarget::Caldav { url, .. } => Some(url.clone()),
                    _ => None,
                })
                .collect();
            if recorded != expected {
                let names = |set: &BTreeSet<String>| set.iter().map(|c| name(c)).collect::<Vec<_>>().join(", ");
                r.violate(
                    "I4",
                    format!(
                        "confirmed {id} records its event on [{}], its hosts' calendars are [{}] ({when})",
                        names(&recorded),
                        names(&expected)
                    ),
                );
            }
        }
        for (collection, refs) in &found {
            if !expected.contains(collection) {
                r.violate(
                    "I4",
                    format!(
                        "confirmed {id} has {} event(s) on {}, not one of its hosts' calendars ({when})",
                        refs.len(),
                        name(collection)
                    ),
                );
            }
        }
        for collection in &expected {
            let refs = found.get(collection).cloned().unwrap_or_default();
            if refs.len() != 1 {
                r.violate(
                    "I4",
                    format!("confirmed {id} has {} calendar events on {} ({when})", refs.len(), name(collection)),
                );
                continue;
            }
            // A move whose client gave up after a failure may have left the
            // event behind (no job queued): reconcile's to fix, not the writer's.
            let lenient = when == "before reconcile" && r.abandoned_moves.contains(id);
            if lenient {
                continue;
            }
            let Some(&(start, end)) = intervals.get(id) else { continue };
            let url = refs.first().unwrap().clone();
            match event_times(r, &url).await {
                Ok((s, e)) if s == Some(start) && e == Some(end) => {}
                Ok((s, e)) => r.violate(
                    "I4",
                    format!(
                        "confirmed {id}'s event on {} is at {:?}-{:?}, the booking at {}-{} ({when})",
                        name(collection),
                        s.map(hhmm),
                        e.map(hhmm),
                        hhmm(start),
                        hhmm(end)
                    ),
                ),
                Err(e) => r.violate("I4", format!("reading confirmed {id}'s event failed ({when}): {e}")),
            }
        }
    }
    for id in per_booking.keys() {
        if !status.contains_key(id) {
            r.violate("I4", format!("an event for {id}, which no client ever reserved ({when})"));
        }
    }
}
