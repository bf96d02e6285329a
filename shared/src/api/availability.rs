//! `GET /v1/resources/{id}/slots?from=..&to=..`: the open slots of a resource.
//!
//! Query: `from`, `to`, `type` (the booking type; may be left out when the
//! resource has one), `duration` (minutes; defaults to the type's first).
//! Open means exactly what a reserve at this instant would accept: a start
//! [`Resource::bookable_slot`] allows (notice, advance window, start grid,
//! opening hours and date overrides), starting in `[from, to)`, whose blocked
//! interval (with this type's buffers) has no live lock of another booking
//! (of any type; expired holds count as free even before TTL deletes them),
//! on a local day the type's `max_per_day` has not filled. Locks are read with
//! one Query per UTC day the candidates' blocked intervals touch, and one per
//! local day for day tokens, concurrently. `from` defaults to now, `to` to
//! `from` + 7 days; the range may span at most 31 days. The resource's
//! settings come from the same in-process cache reserve uses (at most a
//! minute old), so a warm read of one day is one Query.

use super::problem::api_error;
use super::{RequestError, json_response, path_param, respond};
use crate::domain::{
    Assignment, BookingType, Lock, LockKey, Price, Resource, ResourceId, Slot, cells, rfc3339, seat_group,
};
use crate::ports::{BusyStore, ClaimStore, ResourceStore, StoreError};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Serialize;
use std::collections::BTreeSet;

/// The widest range one request may ask for.
pub const MAX_RANGE: Duration = Duration::days(31);
/// The range used when `to` is not given.
pub const DEFAULT_RANGE: Duration = Duration::days(7);

/// Why no slots were listed.
#[derive(Debug, thiserror::Error)]
pub enum AvailabilityError {
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error("reading slots")]
    Store(#[from] StoreError),
    #[error("there is no resource {0:?}")]
    NotFound(String),
    #[error("{0} must be an RFC 3339 time like 2026-06-10T09:00:00Z")]
    InvalidInstant(&'static str),
    #[error("{0}")]
    InvalidRange(&'static str),
    #[error("the range from..to may span at most 31 days")]
    RangeTooLarge,
    #[error(transparent)]
    Rules(#[from] super::reserve::RuleError),
    #[error("duration must be a whole number of minutes")]
    InvalidDuration,
    #[error(transparent)]
    Busy(#[from] crate::busy::BusyError),
}

api_error!(AvailabilityError {
    wraps: [Request, Store, Busy],
    Self::NotFound(_) => ResourceNotFound,
    Self::InvalidInstant(_) => InvalidQuery,
    Self::InvalidRange(_) => InvalidRange,
    Self::RangeTooLarge => RangeTooLarge,
    Self::Rules(_) | Self::InvalidDuration => InvalidQuery,
});

/// One open slot.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct SlotView {
    #[schema(format = DateTime)]
    start: String,
    #[schema(format = DateTime)]
    end: String,
    /// A seated type's seats not held or booked (at least 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    seats_left: Option<u32>,
}

/// The open slots of one booking type and duration in `[from, to)`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct AvailabilityView<'a> {
    resource_id: &'a ResourceId,
    name: &'a str,
    timezone: &'a str,
    booking_type: &'a str,
    duration_minutes: u32,
    price: &'a Price,
    /// A seated type's seats per slot.
    #[serde(skip_serializing_if = "Option::is_none")]
    seats: Option<u32>,
    #[schema(format = DateTime)]
    from: String,
    #[schema(format = DateTime)]
    to: String,
    slots: Vec<SlotView>,
}

/// Handles `GET /v1/resources/{id}/slots`.
#[utoipa::path(
    get,
    path = "/v1/resources/{id}/slots",
    tag = "booking",
    operation_id = "listSlots",
    summary = "Open slots of a booking type",
    params(
        ("id" = String, Path, example = "demo", description = "The resource id"),
        ("from" = Option<String>, Query, format = DateTime, description = "RFC 3339; default: now (percent-encode a `+` offset)"),
        ("to" = Option<String>, Query, format = DateTime, description = "RFC 3339; default: `from` + 7 days; at most 31 days after `from`"),
        ("type" = Option<String>, Query, description = "The booking type; may be left out when the resource has one"),
        ("duration" = Option<u32>, Query, description = "Minutes, one of the type's durations; default: its first"),
    ),
    responses((status = 200, description = "The open slots", body = AvailabilityView)),
)]
pub async fn availability<S: ResourceStore + ClaimStore + BusyStore>(store: &S, req: Request) -> Response<Body> {
    availability_at(store, req, Utc::now()).await
}

/// [`availability`] at a given instant (tests drive the clock).
pub async fn availability_at<S: ResourceStore + ClaimStore + BusyStore>(
    store: &S,
    req: Request,
    now: DateTime<Utc>,
) -> Response<Body> {
    respond(run(store, &req, now).await)
}

async fn run<S: ResourceStore + ClaimStore + BusyStore>(
    store: &S,
    req: &Request,
    now: DateTime<Utc>,
) -> Result<Response<Body>, AvailabilityError> {
    let raw_id = path_param(req, "id")?;
    let not_found = || AvailabilityError::NotFound(raw_id.clone());
    let resource_id = ResourceId::parse(&raw_id).map_err(|_| not_found())?;
    let query = req.query_string_parameters();
    let from = match query.first("from") {
        Some(v) => parse_instant("from", v)?,
        None => now,
    };
    let to = match query.first("to") {
        Some(v) => parse_instant("to", v)?,
        None => from + DEFAULT_RANGE,
    };
    // Responses show whole seconds and slots start on whole seconds: rounding
    // up changes no slot and makes the range shown the range used.
    let (from, to) = (whole_second_up(from), whole_second_up(to));
    if from >= to {
        return Err(AvailabilityError::InvalidRange("from must be before to"));
    }
    // RFC 3339 years have four digits: keep the range inside years 0000-9999,
    // with a day to spare for the end of the last slot.
    let (first, last) = (DateTime::from_timestamp(-62_167_219_200, 0), DateTime::from_timestamp(253_402_214_400, 0));
    if first.is_some_and(|first| from < first) || last.is_some_and(|last| to > last) {
        return Err(AvailabilityError::InvalidRange("the range must lie within 0000-01-01..9999-12-31"));
    }
    if to - from > MAX_RANGE {
        return Err(AvailabilityError::RangeTooLarge);
    }
    let resource = store.cached_resource(&resource_id, now).await?.ok_or_else(not_found)?;
    let minutes = match query.first("duration") {
        Some(v) => Some(v.parse::<u32>().map_err(|_| AvailabilityError::InvalidDuration)?),
        None => None,
    };
    let (kind, duration) = super::reserve::choose(&resource, query.first("type"), minutes)?;
    let open = open_slots(store, &resource, kind, duration.minutes, from, to, now).await?;
    let view = AvailabilityView {
        resource_id: &resource.id,
        name: &resource.name,
        timezone: resource.timezone.name(),
        booking_type: &kind.id,
        duration_minutes: duration.minutes,
        price: &duration.price,
        seats: kind.seats,
        from: rfc3339(from),
        to: rfc3339(to),
        slots: open
            .into_iter()
            .map(|s| SlotView { start: rfc3339(s.slot.start), end: rfc3339(s.slot.end), seats_left: s.seats_left })
            .collect(),
    };
    Ok(json_response(StatusCode::OK, &view))
}

/// An open slot, with the seats left for a seated type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenSlot {
    pub slot: Slot,
    pub seats_left: Option<u32>,
}

/// The live cells of one host: each with the seat group owning it, if any.
type LiveCells = std::collections::BTreeMap<DateTime<Utc>, Option<String>>;

/// The slots of `minutes` of `kind` starting in `[from, to)` that a reserve
/// would accept at `now`. A seated type's slot is open while its group has
/// a seat left and its cells are free or the group's; a team's while one
/// member (round-robin) or every member (collective) has the slot inside
/// its own hours, its cells and its busy time free (busy time:
/// [`crate::busy::busy_between`]).
pub async fn open_slots<S: ClaimStore + ResourceStore + BusyStore>(
    store: &S,
    resource: &Resource,
    kind: &BookingType,
    minutes: u32,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Vec<OpenSlot>, AvailabilityError> {
    // The grid's slots inside the notice and advance window: exactly the
    // starts `Resource::bookable_slot` accepts (`latest` itself included).
    let (earliest, latest) = kind.window(now, resource.hold_minutes);
    let candidates: Vec<Slot> = resource
        .slots_between(kind, minutes, from.max(earliest), to.min(latest + Duration::seconds(1)))
        .into_iter()
        .filter(|s| s.start > now)
        .collect();
    let terms = kind.terms(minutes);
    let blocked: Vec<(DateTime<Utc>, DateTime<Utc>)> =
        candidates.iter().map(|s| terms.blocked(s.start, s.end)).collect();
    let mut days: BTreeSet<NaiveDate> = BTreeSet::new();
    for (a, b) in &blocked {
        days.extend(a.date_naive().iter_days().take_while(|d| *d <= (*b - Duration::seconds(1)).date_naive()));
    }
    let hosts: Vec<Resource> = match &resource.team {
        None => vec![resource.clone()],
        Some(team) => futures::future::try_join_all(team.members.iter().map(|m| store.cached_resource(m, now)))
            .await?
            .into_iter()
            .flatten()
            .collect(),
    };
    let reads = hosts.iter().map(|host| {
        let days = &days;
        async move {
            let per_day = futures::future::try_join_all(days.iter().map(|d| store.cells_on_day(&host.id, *d))).await?;
            Ok::<_, StoreError>(per_day.into_iter().flatten().filter(|l| l.is_live(now)).collect::<Vec<Lock>>())
        }
    });
    let full_days = full_days(store, resource, kind, &candidates, now);
    // Each host's busy time over the candidates' blocked intervals, read
    // with the cells. A team member whose calendar was not read recently is
    // not free (unknown is never free); a resource of its own answers 503.
    let span = (blocked.iter().map(|b| b.0).min(), blocked.iter().map(|b| b.1).max());
    let busy_reads = hosts.iter().map(|host| async move {
        match span {
            (Some(a), Some(b)) => match crate::busy::busy_between(store, host, a, b, now).await {
                Ok(busy) => Ok(Some(busy)),
                Err(crate::busy::BusyError::Unavailable(_)) if resource.team.is_some() => Ok(None),
                Err(e) => Err(AvailabilityError::from(e)),
            },
            _ => Ok(Some(Vec::new())),
        }
    });
    let cell_reads = async { futures::future::try_join(futures::future::try_join_all(reads), full_days).await };
    let (cell_reads, busy_per_host) =
        futures::future::join(cell_reads, futures::future::try_join_all(busy_reads)).await;
    let ((live_per_host, full_days), busy_per_host) = (cell_reads?, busy_per_host?);
    let cells_per_host: Vec<LiveCells> = live_per_host
        .iter()
        .map(|locks| {
            locks
                .iter()
                .filter_map(|l| match l.key {
                    LockKey::Cell(t) => Some((t, l.seat_group.clone())),
                    _ => None,
                })
                .collect()
        })
        .collect();
    let collective = resource.team.as_ref().is_some_and(|t| t.assignment == Assignment::Collective);
    let mut open = Vec::new();
    for (slot, (a, b)) in candidates.into_iter().zip(blocked) {
        if full_days.contains(&resource.local_date(slot.start)) {
            continue;
        }
        let group = seat_group(&terms, slot.start, slot.end);
        let free_on = |cells_of: &LiveCells| {
            cells(a, b).iter().all(|c| match cells_of.get(c) {
                None => true,
                Some(owner) => group.is_some() && owner == &group,
            })
        };
        let seats_left = match (kind.seats, &group) {
            (Some(seats), Some(group)) => {
                let live = super::reserve::live_seats(&live_per_host[0], group, now).len() as u32;
                Some(seats.saturating_sub(live))
            }
            _ => None,
        };
        let free: Vec<bool> = hosts
            .iter()
            .zip(&cells_per_host)
            .zip(&busy_per_host)
            .map(|((host, cells_of), busy)| {
                (resource.team.is_none() || host.open_during(slot.start, slot.end))
                    && free_on(cells_of)
                    && busy.as_ref().is_some_and(|busy| !crate::busy::overlaps(busy, a, b))
            })
            .collect();
        let is_open = if collective {
            hosts.len() == resource.team.as_ref().map_or(1, |t| t.members.len()) && free.iter().all(|f| *f)
        } else {
            free.iter().any(|f| *f)
        };
        if is_open && seats_left != Some(0) {
            open.push(OpenSlot { slot, seats_left });
        }
    }
    Ok(open)
}

/// The UTC bounds of the local date `t` falls on, in `resource`'s time zone.
pub fn local_day(resource: &Resource, t: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    use chrono::TimeZone;
    let date = resource.local_date(t);
    let start_of = |d: NaiveDate| {
        let midnight = d.and_hms_opt(0, 0, 0).expect("midnight exists as a naive time");
        resource.timezone.from_local_datetime(&midnight).earliest().map(|t| t.with_timezone(&Utc))
    };
    let first = start_of(date).unwrap_or_else(|| t - Duration::hours(24));
    let next = date.succ_opt().and_then(start_of).unwrap_or_else(|| t + Duration::hours(24));
    (first, next)
}

/// The local days among the candidates' on which `kind`'s `max_per_day` is reached.
async fn full_days<S: ClaimStore>(
    store: &S,
    resource: &Resource,
    kind: &BookingType,
    candidates: &[Slot],
    now: DateTime<Utc>,
) -> Result<BTreeSet<NaiveDate>, StoreError> {
    let Some(limit) = kind.max_per_day else {
        return Ok(BTreeSet::new());
    };
    let dates: BTreeSet<NaiveDate> = candidates.iter().map(|s| resource.local_date(s.start)).collect();
    let tokens =
        futures::future::try_join_all(dates.iter().map(|d| store.day_tokens(&resource.id, &kind.id, *d))).await?;
    Ok(dates
        .into_iter()
        .zip(tokens)
        .filter(|(_, tokens)| tokens.iter().filter(|t| t.is_live(now)).count() >= limit as usize)
        .map(|(d, _)| d)
        .collect())
}

/// Rounds an instant up to a whole second (a leap second to the next one).
fn whole_second_up(t: DateTime<Utc>) -> DateTime<Utc> {
    if t.timestamp_subsec_nanos() == 0 {
        return t;
    }
    DateTime::from_timestamp(t.timestamp() + 1, 0).unwrap_or(t)
}

/// Parses an RFC 3339 query value. A `+` offset arrives as a space when the
/// client did not percent-encode it; it is read back as `+`.
fn parse_instant(name: &'static str, value: &str) -> Result<DateTime<Utc>, AvailabilityError> {
    DateTime::parse_from_rfc3339(value)
        .or_else(|e| DateTime::parse_from_rfc3339(&value.replace(' ', "+")).map_err(|_| e))
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| AvailabilityError::InvalidInstant(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_accept_offsets_even_when_plus_was_not_encoded() {
        let expected = DateTime::parse_from_rfc3339("2026-06-10T07:00:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(parse_instant("from", "2026-06-10T09:00:00+02:00").unwrap(), expected);
        assert_eq!(parse_instant("from", "2026-06-10T09:00:00 02:00").unwrap(), expected);
        assert_eq!(parse_instant("from", "2026-06-10T07:00:00Z").unwrap(), expected);
        assert!(matches!(parse_instant("from", "2026-06-10"), Err(AvailabilityError::InvalidInstant("from"))));
    }
}
