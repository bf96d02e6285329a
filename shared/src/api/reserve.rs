//! `POST /v1/reservations`: hold one slot while the customer pays.
//!
//! Body: `{"resource_id", "start", "booking_type"?, "duration_minutes"?,
//! "customer": {"name", "email"}}`. `booking_type` may be left out when the
//! resource has one type, `duration_minutes` to take the type's first
//! duration. The start must be bookable now ([`Resource::bookable_slot`]:
//! notice, advance window, start grid, opening hours). The hold is one
//! `TransactWriteItems`: the booking item and one lock per 5-minute cell of
//! `[start − buffer_before, end + buffer_after)` (plus a day token if the type
//! limits bookings per day), each lock conditioned on being free, all
//! carrying the TTL attribute `expires_at`. Two requests whose intervals
//! overlap can never both get a 201. Optional `Idempotency-Key` header: see
//! [`super::idempotency`]; its record is one more item of the same transaction.
//!
//! One round trip: the resource's settings come from an in-process cache
//! ([`ResourceStore::cached_resource`], at most a minute old), so a warm hold
//! is just the transaction. Conflicts never depend on the cache (they are
//! decided by lock items alone); a refusal is decided on the stored
//! settings (read again when the cached ones refuse); and a hold accepted
//! under settings changed since is checked again at checkout
//! ([`still_admits`]) before any money moves.

use super::idempotency::{IdempotencyError, KeyedRequest};
use super::problem::api_error;
use super::{RequestError, from_json, idempotency, json_body, json_response, respond};
use crate::domain::{
    BookingType, Claim, Customer, DayToken, DurationSpec, Lock, LockKey, ReservationId, ReservationSecret,
    ReservationStatus, Resource, ResourceId, SlotKey, StartError, rfc3339,
};
use crate::ports::{
    BusyStore, ClaimStore, HoldOutcome, IdempotencyStore, ReservationHistory, ResourceStore, StoreError,
};
use chrono::{DateTime, Duration, Utc};
use lambda_http::http::{StatusCode, header};
use lambda_http::{Body, Request, Response};
use serde::{Deserialize, Serialize};

/// What a reserve handler needs from storage.
pub trait ReserveStore: ResourceStore + ClaimStore + ReservationHistory + IdempotencyStore + BusyStore {}
impl<T: ResourceStore + ClaimStore + ReservationHistory + IdempotencyStore + BusyStore> ReserveStore for T {}

/// The body of `POST /v1/reservations`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ReserveRequest {
    /// The resource to book.
    resource_id: String,
    /// The slot's start, RFC 3339 (one of the starts availability lists).
    #[schema(format = DateTime)]
    start: String,
    /// The booking type; may be left out when the resource has one.
    #[serde(default)]
    booking_type: Option<String>,
    /// One of the type's durations; default: its first.
    #[serde(default)]
    duration_minutes: Option<u32>,
    customer: CustomerRequest,
}

/// Who books: shown to the host, prefilled on the Checkout page.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CustomerRequest {
    name: String,
    #[schema(format = Email)]
    email: String,
}

/// Why a slot was not held.
#[derive(Debug, thiserror::Error)]
pub enum ReserveError {
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error(transparent)]
    Idempotency(#[from] IdempotencyError),
    #[error("holding the slot")]
    Store(#[from] StoreError),
    /// A field of the right type whose value is not acceptable.
    #[error("{0}")]
    InvalidField(String),
    #[error("there is no resource {0:?}")]
    UnknownResource(String),
    #[error(transparent)]
    Rules(#[from] RuleError),
    #[error("{}", if *.booked { "this slot is already booked" } else { "this slot is held by another customer; try another slot" })]
    SlotTaken { booked: bool },
    #[error("this booking type is fully booked on that day")]
    DayFull,
    #[error("every seat of this slot is taken; try another slot")]
    SoldOut,
    #[error("the host is busy at that time (an event on the host's calendar overlaps the slot); choose another slot")]
    HostBusy,
    #[error(transparent)]
    Busy(#[from] crate::busy::BusyError),
}

api_error!(ReserveError {
    wraps: [Request, Idempotency, Store, Busy],
    Self::HostBusy => HostBusy,
    Self::InvalidField(_) => InvalidField,
    Self::UnknownResource(_) => UnknownResource,
    Self::Rules(e) => e.kind(),
    Self::SlotTaken { .. } => SlotTaken,
    Self::DayFull => DayFull,
    Self::SoldOut => SoldOut,
});

/// Why a requested booking (type, duration, start) breaks the resource's
/// rules: shared by reserve and reschedule.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    #[error("booking_type: {0}")]
    UnknownType(String),
    #[error("duration_minutes: the booking type offers {0}")]
    UnknownDuration(String),
    #[error(transparent)]
    Start(#[from] StartError),
}

impl RuleError {
    /// The problem type each rule answers with.
    pub fn kind(&self) -> super::problem::ProblemKind {
        use super::problem::ProblemKind as K;
        match self {
            Self::UnknownType(_) => K::UnknownBookingType,
            Self::UnknownDuration(_) => K::UnknownDuration,
            Self::Start(StartError::InPast) => K::SlotInPast,
            Self::Start(StartError::TooSoon(_)) => K::TooSoon,
            Self::Start(StartError::TooFarAhead(_)) => K::TooFarAhead,
            Self::Start(StartError::OffGrid(_)) => K::OffGrid,
            Self::Start(StartError::OutsideHours) => K::OutsideOpeningHours,
        }
    }
}

/// The booking type and duration a request names (either may be left out:
/// the resource's only type, the type's first duration).
pub fn choose<'r>(
    resource: &'r Resource,
    booking_type: Option<&str>,
    minutes: Option<u32>,
) -> Result<(&'r BookingType, &'r DurationSpec), RuleError> {
    let kind = resource.booking_type(booking_type).ok_or_else(|| {
        let ids: Vec<&str> = resource.booking_types.iter().map(|t| t.id.as_str()).collect();
        RuleError::UnknownType(match booking_type {
            Some(id) => format!("{id:?} is not one of {ids:?}"),
            None => format!("the resource has several booking types; name one of {ids:?}"),
        })
    })?;
    let duration = kind.duration(minutes).ok_or_else(|| {
        let offered: Vec<String> = kind.durations.iter().map(|d| format!("{} minutes", d.minutes)).collect();
        RuleError::UnknownDuration(offered.join(", "))
    })?;
    Ok((kind, duration))
}

/// The 201 body, also what an idempotent replay returns.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HoldView {
    pub reservation_id: ReservationId,
    pub resource_id: ResourceId,
    pub booking_type: String,
    pub duration_minutes: u32,
    #[schema(format = DateTime)]
    pub start: String,
    #[schema(format = DateTime)]
    pub end: String,
    pub status: ReservationStatus,
    /// When the hold lapses unless checkout extends it.
    #[schema(format = DateTime)]
    pub expires_at: String,
    /// In the currency's minor unit.
    pub amount: i64,
    pub currency: String,
    /// The reservation's secret: answered here once (and by an idempotent
    /// replay), stored only as a hash. Its holder sees the reservation's
    /// details, pays, cancels and reschedules it (`Authorization: Bearer`).
    pub reservation_secret: String,
}

/// Handles `POST /v1/reservations`.
#[utoipa::path(
    post,
    path = "/v1/reservations",
    tag = "booking",
    operation_id = "reserve",
    summary = "Hold a slot while the customer pays",
    request_body = ReserveRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "1-255 visible ASCII characters; a retry with the same key and body gets the first answer (with the secret), another body 422 idempotency_key_reused")),
    responses((status = 201, description = "Held; `reservation_secret` is answered only here", body = HoldView,
        headers(("Location" = String, description = "/v1/reservations/{reservation_id}")))),
)]
pub async fn reserve<S: ReserveStore>(store: &S, req: Request) -> Response<Body> {
    reserve_at(store, req, Utc::now()).await
}

/// [`reserve`] at a given instant (tests drive the clock).
pub async fn reserve_at<S: ReserveStore>(store: &S, req: Request, now: DateTime<Utc>) -> Response<Body> {
    respond(run(store, &req, now).await)
}

async fn run<S: ReserveStore>(store: &S, req: &Request, now: DateTime<Utc>) -> Result<Response<Body>, ReserveError> {
    let key = idempotency::key_of(req)?;
    let payload: serde_json::Value = json_body(req)?;
    let body: ReserveRequest = from_json(payload.clone())?;
    let keyed = KeyedRequest::new("reserve", key, &payload);
    match hold(store, body, keyed.as_ref(), now).await {
        // A retry of a request that succeeded earlier gets that answer, even
        // though the request would be refused now (its own hold has the slot,
        // its notice has passed since).
        Err(refused) if refused.is_refusal() => match &keyed {
            Some(keyed) => keyed.earlier(store, now).await?.ok_or(refused),
            None => Err(refused),
        },
        other => other,
    }
}

impl ReserveError {
    /// Refused for what was asked (not for a failure of ours).
    fn is_refusal(&self) -> bool {
        matches!(
            self,
            Self::InvalidField(_)
                | Self::UnknownResource(_)
                | Self::Rules(_)
                | Self::SlotTaken { .. }
                | Self::DayFull
                | Self::SoldOut
                | Self::HostBusy
        )
    }
}

/// What a resource's settings make of a request: the type, duration and slot it asks for.
struct Admitted {
    kind: BookingType,
    duration: DurationSpec,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

/// Checks a request for `start` against `resource` at `now`.
fn admit(
    resource: Option<&Resource>,
    id: &ResourceId,
    body: &ReserveRequest,
    start: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Admitted, ReserveError> {
    let resource = resource.ok_or_else(|| ReserveError::UnknownResource(id.to_string()))?;
    let (kind, duration) = choose(resource, body.booking_type.as_deref(), body.duration_minutes)?;
    let slot = resource.bookable_slot(kind, duration.minutes, start, now, true).map_err(RuleError::from)?;
    // RFC 3339 years have four digits: a slot ending after 9999 fits in no
    // reservation id, response or calendar event.
    if chrono::Datelike::year(&slot.end) > 9999 {
        return Err(ReserveError::InvalidField("start is too far in the future".into()));
    }
    Ok(Admitted { kind: kind.clone(), duration: duration.clone(), start: slot.start, end: slot.end })
}

/// Whether `resource`'s settings still accept `claim` as it was held: true
/// if they are the ones it was held under; otherwise the same type,
/// duration, buffers, policies and price must still be offered, and its
/// start must have been bookable when it was held. Checkout asks this
/// before creating a payment.
pub fn still_admits(resource: &Resource, claim: &Claim) -> bool {
    if claim.settings_version.as_deref() == Some(resource.settings_version.as_str()) {
        return true;
    }
    let terms = &claim.terms;
    let Ok((kind, duration)) = choose(resource, Some(&terms.booking_type), Some(terms.duration_minutes)) else {
        return false;
    };
    kind.terms(duration.minutes) == *terms
        && duration.price.amount == claim.amount
        && duration.price.currency == claim.currency
        && kind.max_per_day.is_some() == claim.day_token.is_some()
        && resource.bookable_slot(kind, duration.minutes, claim.slot.start, claim.created_at, true).is_ok()
}

/// [`still_admits`] for the part only the table knows: after a settings
/// change, a hold with a day token must still fit the type's current daily
/// limit: no more than `max_per_day` live tokens that day, itself included,
/// as a hold taken now would find (lowering a limit cancels no booking; while
/// more are live, the day is full). A hold under the settings it was taken
/// with fits by construction.
pub async fn day_still_admits<S: ClaimStore>(
    store: &S,
    resource: &Resource,
    claim: &Claim,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let Some(token) = &claim.day_token else { return Ok(true) };
    if claim.settings_version.as_deref() == Some(resource.settings_version.as_str()) {
        return Ok(true);
    }
    let Ok((kind, _)) = choose(resource, Some(&claim.terms.booking_type), Some(claim.terms.duration_minutes)) else {
        return Ok(false);
    };
    let Some(limit) = kind.max_per_day else { return Ok(false) };
    let tokens = store.day_tokens(&resource.id, &claim.terms.booking_type, token.date).await?;
    let live = tokens.iter().filter(|t| t.is_live(now)).count();
    Ok(live <= limit as usize)
}

async fn hold<S: ReserveStore>(
    store: &S,
    body: ReserveRequest,
    keyed: Option<&KeyedRequest>,
    now: DateTime<Utc>,
) -> Result<Response<Body>, ReserveError> {
    let invalid = ReserveError::InvalidField;
    let resource_id = ResourceId::parse(&body.resource_id).map_err(|e| invalid(format!("resource_id: {e}")))?;
    let start = DateTime::parse_from_rfc3339(&body.start)
        .map_err(|_| invalid("start must be an RFC 3339 time like 2026-06-10T09:00:00Z".into()))?
        .with_timezone(&Utc);
    let customer = Customer::parse(&body.customer.name, &body.customer.email).map_err(invalid)?;
    let mut resource = store.cached_resource(&resource_id, now).await?;
    let mut admitted = admit(resource.as_ref(), &resource_id, &body, start, now);
    if admitted.is_err() {
        // The cached settings may be a minute old: refuse only on the stored ones.
        let stored = store.get_resource(&resource_id).await?;
        if stored.as_ref().map(|r| &r.settings_version) != resource.as_ref().map(|r| &r.settings_version) {
            admitted = admit(stored.as_ref(), &resource_id, &body, start, now);
            resource = stored;
        }
    }
    let Admitted { kind, duration, start, end } = admitted?;
    let resource = resource.expect("admitted by a resource");
    // The host's own calendar (cached busy time), before anything is written.
    let (blocked_from, blocked_to) = kind.terms(duration.minutes).blocked(start, end);
    let busy = crate::busy::busy_between(store, &resource, blocked_from, blocked_to, now).await?;
    if crate::busy::overlaps(&busy, blocked_from, blocked_to) {
        tracing::info!(resource_id = %resource.id, "slot overlaps the host's busy time");
        return Err(ReserveError::HostBusy);
    }
    let key = SlotKey { resource_id, start };
    let expires_at = now + Duration::minutes(i64::from(resource.hold_minutes));
    let secret = ReservationSecret::generate();
    let hold = Claim {
        settings_version: Some(resource.settings_version.clone()),
        secret_hash: Some(secret.hash()),
        ..Claim::hold(key, end, kind.terms(duration.minutes), customer, &duration.price, now, expires_at)
    };
    let members = match &resource.team {
        Some(team) => Some(team_members(store, &resource, team, &hold, now).await?),
        None => None,
    };
    let mut tried_members = 0;
    // A day token or a seat can be taken between the read and the write, and
    // a round-robin member by another hold: choose again.
    for _ in 0..HOLD_ATTEMPTS {
        let day_token = match kind.max_per_day {
            Some(limit) => Some(
                free_day_token(store, &resource, &kind.id, limit, start, now).await?.ok_or(ReserveError::DayFull)?,
            ),
            None => None,
        };
        let seat = match kind.seats {
            // Read each round: a seat lost means others were taken too.
            Some(seats) => {
                let free = seats_free(store, &hold, seats, now).await?;
                if free.is_empty() {
                    return Err(ReserveError::SoldOut);
                }
                Some(free[fastrand::usize(..free.len())])
            }
            None => None,
        };
        let hosts = match &members {
            None => Vec::new(),
            Some(Members::All(all)) => all.clone(),
            Some(Members::OneOf(order)) => {
                let member = order.get(tried_members).ok_or(ReserveError::SlotTaken { booked: false })?;
                vec![member.clone()]
            }
        };
        let claim = Claim { day_token, seat, hosts, ..hold.clone() };
        let response = created(&claim, &secret, now);
        let answer = keyed.map(|k| k.answer(&response, now));
        match store.place_hold(&claim, answer.as_ref(), now).await? {
            HoldOutcome::Placed => {
                tracing::info!(reservation_id = %claim.reservation_id, slot = %claim.slot, "slot held");
                return Ok(response);
            }
            HoldOutcome::KeyUsed(found) => {
                tracing::info!("the same Idempotency-Key was answered before");
                let keyed = keyed.expect("a key is found used only when one was sent");
                return Ok(keyed.answer_for(found)?);
            }
            HoldOutcome::Taken { by } if matches!(by.key, LockKey::DayToken { .. } | LockKey::Seat { .. }) => continue,
            // Another seat of the same group moved the cells' expiry on: read again.
            HoldOutcome::Taken { by } if by.seat_group.is_some() && by.seat_group == claim.seat_group() => continue,
            HoldOutcome::Taken { by } if matches!(members, Some(Members::OneOf(_))) => {
                tracing::info!(slot = %claim.slot, booked = by.booked, "team member taken; trying the next");
                tried_members += 1;
            }
            HoldOutcome::Taken { by } => {
                tracing::info!(slot = %claim.slot, "slot taken");
                crate::metrics::count("ReservationConflicts", &[]);
                return Err(ReserveError::SlotTaken { booked: by.booked });
            }
            // A seat's transaction collided with another seat's: choose again.
            HoldOutcome::Stale if claim.seat.is_some() => {
                tokio::time::sleep(std::time::Duration::from_millis(fastrand::u64(5..=50))).await;
            }
            HoldOutcome::Stale => {
                return Err(
                    StoreError::Failed { op: "place hold", source: "a fresh booking id was taken".into() }.into()
                );
            }
        }
    }
    match (kind.max_per_day, kind.seats) {
        (Some(_), _) => Err(ReserveError::DayFull),
        // Every round lost a seat to another hold: sold out if a fresh read
        // says so, else too contended to tell (503: retry).
        (_, Some(seats)) if seats_free(store, &hold, seats, now).await?.is_empty() => Err(ReserveError::SoldOut),
        (_, Some(_)) => {
            Err(StoreError::Unavailable { op: "hold a seat", source: "every seat tried was taken meanwhile".into() }
                .into())
        }
        _ => Err(ReserveError::SlotTaken { booked: false }),
    }
}

/// How often a hold chooses again after losing a day token, a seat or a
/// round-robin member to a concurrent hold. Each loss means another hold
/// committed, so a slot with free capacity is rarely lost this way.
const HOLD_ATTEMPTS: usize = 24;

/// Which members of a team a hold may take.
enum Members {
    /// Collective: all of them, in one transaction.
    All(Vec<ResourceId>),
    /// Round-robin: one, tried in this order.
    OneOf(Vec<ResourceId>),
}

/// The members of `team` that may host `hold`: collective, all of them if
/// each one's opening hours hold the slot (else none: the slot is not
/// open); round-robin, those whose hours hold it and whose cells are free,
/// fewest live bookings of the team on the slot's local day first, ties
/// in random order. Freedom read here is a preference; the hold's
/// transaction decides.
async fn team_members<S: ReserveStore>(
    store: &S,
    team_resource: &Resource,
    team: &crate::domain::Team,
    hold: &Claim,
    now: DateTime<Utc>,
) -> Result<Members, ReserveError> {
    let (from, to) = hold.blocked();
    let collective = team.assignment == crate::domain::Assignment::Collective;
    let mut open = Vec::new();
    let mut busy = false;
    for member in &team.members {
        let Some(resource) = store.cached_resource(member, now).await? else { continue };
        if !resource.open_during(hold.slot.start, hold.end) {
            continue;
        }
        // The member's own calendar: busy (or not read recently) removes
        // that member only; for a collective booking it refuses the slot.
        match crate::busy::busy_between(store, &resource, from, to, now).await {
            Ok(intervals) if !crate::busy::overlaps(&intervals, from, to) => open.push(member.clone()),
            Ok(_) => busy = true,
            Err(e) if collective => return Err(e.into()),
            Err(_) => {}
        }
    }
    if collective {
        return match open.len() == team.members.len() {
            true => Ok(Members::All(open)),
            false if busy => Err(ReserveError::HostBusy),
            false => Err(ReserveError::SlotTaken { booked: false }),
        };
    }
    let day = super::availability::local_day(team_resource, hold.slot.start);
    let mut ranked = Vec::new();
    for member in open {
        let locks = store.locks_between(&member, from.min(day.0), to.max(day.1)).await?;
        let taken = locks.iter().any(|l| l.is_live(now) && matches!(l.key, LockKey::Cell(c) if c >= from && c < to));
        if taken {
            continue;
        }
        let load = team_load(&locks, team_resource, day, now);
        ranked.push((load, fastrand::u32(..), member));
    }
    ranked.sort();
    if ranked.is_empty() && busy {
        return Err(ReserveError::HostBusy);
    }
    Ok(Members::OneOf(ranked.into_iter().map(|(_, _, m)| m).collect()))
}

/// How many live bookings of `team` a member's `locks` show starting in
/// the local `day` (the round-robin fairness count).
pub fn team_load(locks: &[Lock], team: &Resource, day: (DateTime<Utc>, DateTime<Utc>), now: DateTime<Utc>) -> usize {
    let ids: std::collections::BTreeSet<&ReservationId> = locks
        .iter()
        .filter(|l| l.is_live(now) && l.start >= day.0 && l.start < day.1)
        .filter(|l| l.reservation_id.slot_key().resource_id == team.id)
        .map(|l| &l.reservation_id)
        .collect();
    ids.len()
}

/// The seats of `hold`'s group that no live hold or booking has (none when
/// `seats` or more are live). Read with one Query; that a seat is still
/// free is the hold's write condition. Concurrent holds take them in
/// random order, which spreads them over the free seats.
pub async fn seats_free<S: ClaimStore>(
    store: &S,
    hold: &Claim,
    seats: u32,
    now: DateTime<Utc>,
) -> Result<Vec<u32>, StoreError> {
    let group = hold.seat_group().expect("a seated hold has a group");
    let locks = store.cells_on_day(&hold.slot.resource_id, hold.slot.start.date_naive()).await?;
    let live = live_seats(&locks, &group, now);
    // Lowering the seats never cancels bookings: while as many are live, it is sold out.
    if live.len() >= seats as usize {
        return Ok(Vec::new());
    }
    Ok((0..seats).filter(|i| !live.contains(i)).collect())
}

/// The indexes of `group`'s seats that are live at `now` among `locks`.
pub fn live_seats(locks: &[Lock], group: &str, now: DateTime<Utc>) -> std::collections::BTreeSet<u32> {
    locks
        .iter()
        .filter(|l| l.is_live(now))
        .filter_map(|l| match &l.key {
            LockKey::Seat { group: g, index, .. } if g == group => Some(*index),
            _ => None,
        })
        .collect()
}

/// A day token of `booking_type` on the local date of `start` that no live
/// booking holds; `None` when the day is full. Which one is free is read
/// (one Query); that it is still free is the hold's write condition.
pub async fn free_day_token<S: ClaimStore>(
    store: &S,
    resource: &Resource,
    booking_type: &str,
    limit: u32,
    start: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Option<DayToken>, StoreError> {
    let date = resource.local_date(start);
    let tokens = store.day_tokens(&resource.id, booking_type, date).await?;
    let live: Vec<&Lock> = tokens.iter().filter(|t| t.is_live(now)).collect();
    // Lowering a limit never cancels bookings: while more than `limit` are
    // live, the day is full.
    if live.len() >= limit as usize {
        return Ok(None);
    }
    let taken = |i: u32| live.iter().any(|t| matches!(&t.key, LockKey::DayToken { index, .. } if *index == i));
    Ok((0..limit).find(|i| !taken(*i)).map(|index| DayToken { date, index }))
}

/// The `201` for a hold (also what an idempotent replay returns).
fn created(claim: &Claim, secret: &ReservationSecret, now: DateTime<Utc>) -> Response<Body> {
    let view = HoldView {
        reservation_id: claim.reservation_id.clone(),
        resource_id: claim.slot.resource_id.clone(),
        booking_type: claim.terms.booking_type.clone(),
        duration_minutes: claim.terms.duration_minutes,
        start: rfc3339(claim.slot.start),
        end: rfc3339(claim.end),
        status: claim.reservation_status(now),
        expires_at: claim.expires_at.map(rfc3339).unwrap_or_default(),
        amount: claim.amount,
        currency: claim.currency.clone(),
        reservation_secret: secret.expose().to_owned(),
    };
    let mut response = json_response(StatusCode::CREATED, &view);
    let location = format!("/v1/reservations/{}", claim.reservation_id);
    response.headers_mut().insert(header::LOCATION, location.parse().expect("ids are URL-safe"));
    response
}
