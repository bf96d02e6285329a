//! Reconcile: compare confirmed bookings with the events slotguard wrote.
//!
//! For a window of slot starts and every resource with a calendar: a confirmed
//! booking without its event is re-enqueued (the writer creates it); a
//! slotguard event of this resource whose booking is not confirmed
//! (cancelled, refunded, gone), looked up again right before the delete, is
//! deleted; two events for one booking are reported. Events of other
//! resources sharing the calendar are left to their own resource; a team's
//! bookings are judged on the calendars of its members (where the writer puts
//! them: the team has none of its own). Events without
//! slotguard's marker are never looked at. Run by a schedule and by
//! `slotguard reconcile`.

use crate::domain::{CalendarAction, CalendarJob, CalendarTarget, ClaimStatus, ReservationId, ResourceId, rfc3339};
use crate::metrics;
use crate::ports::{Calendar, FoundEvent};
use crate::ports::{CalendarQueue, ClaimStore, QueueError, ReservationHistory, ResourceStore, StoreError};
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use std::collections::BTreeMap;

/// The widest window one run may cover: claims are read one UTC day per Query.
pub const MAX_WINDOW: Duration = Duration::days(62);

/// What a reconcile run found and did.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct ReconcileReport {
    pub from: String,
    pub to: String,
    pub resources: usize,
    pub confirmed_bookings: usize,
    pub calendar_events: usize,
    /// Bookings whose event was missing: re-enqueued.
    pub missing: Vec<ReservationId>,
    /// Events whose booking is not confirmed: removed.
    pub orphans_removed: Vec<ReservationId>,
    /// Events at another start or end than their (rescheduled) booking: re-enqueued,
    /// the writer moves them.
    pub moved: Vec<ReservationId>,
    /// Bookings with more than one event: reported, left for a human.
    pub duplicates: Vec<ReservationId>,
    /// Resources whose calendar or queue could not be reached, with the reason.
    pub errors: Vec<String>,
}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the window must be non-empty and at most {} days", MAX_WINDOW.num_days())]
    BadWindow,
}

/// Reconciles bookings starting in `[from, to)` with their calendars.
pub async fn reconcile<S, C, Q>(
    store: &S,
    calendar: &C,
    queue: &Q,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<ReconcileReport, ReconcileError>
where
    S: ResourceStore + ClaimStore + ReservationHistory,
    C: Calendar,
    Q: CalendarQueue,
{
    if from >= to || to - from > MAX_WINDOW {
        return Err(ReconcileError::BadWindow);
    }
    let mut report = ReconcileReport { from: rfc3339(from), to: rfc3339(to), ..Default::default() };
    let resources = store.list_resources().await?;
    for resource in &resources {
        if resource.calendar == CalendarTarget::None {
            continue;
        }
        report.resources += 1;
        let confirmed: BTreeMap<ReservationId, (DateTime<Utc>, DateTime<Utc>)> = store
            .bookings_between(&resource.id, from, to, Utc::now())
            .await?
            .into_iter()
            .filter(|c| c.status == ClaimStatus::Confirmed)
            .map(|c| (c.reservation_id, (c.slot.start, c.end)))
            .collect();
        report.confirmed_bookings += confirmed.len();
        let events = match calendar.list_events(&resource.calendar, from, to).await {
            Ok(events) => events,
            Err(e) => {
                report.errors.push(format!("{}: listing the calendar failed: {e}", resource.id));
                continue;
            }
        };
        let mut by_booking: BTreeMap<ReservationId, Vec<FoundEvent>> = BTreeMap::new();
        // Several resources may write to one calendar: only this resource's
        // events are its to judge (the reservation id names its resource),
        // and those of the teams it is a member of (the writer puts a team
        // booking on its hosting members' calendars; the bookings read from
        // this resource's cells include them).
        let teams: Vec<&ResourceId> = resources
            .iter()
            .filter(|t| t.team.as_ref().is_some_and(|team| team.members.contains(&resource.id)))
            .map(|t| &t.id)
            .collect();
        // A team booking's event stays this resource's to judge after the
        // resource left the team (or the team became a plain resource): the
        // booking still locks this resource's cells while it is confirmed,
        // and its record names this resource's calendar after it ended.
        let judged = |owner: &ResourceId| *owner == resource.id || teams.contains(&owner);
        for event in events {
            let id = &event.reservation_id;
            let owner = &id.slot_key().resource_id;
            let ours = judged(owner)
                || confirmed.contains_key(id)
                || (resources.iter().any(|r| &r.id == owner && r.id != resource.id)
                    && recorded_here(store, id, &resource.id).await?);
            if ours {
                by_booking.entry(id.clone()).or_default().push(event);
            }
        }
        report.calendar_events += by_booking.values().map(Vec::len).sum::<usize>();
        for id in confirmed.keys().filter(|id| !by_booking.contains_key(*id)) {
            match enqueue_write(queue, id).await {
                Ok(()) => report.missing.push(id.clone()),
                Err(e) => report.errors.push(format!("{id}: re-enqueue failed: {e}")),
            }
        }
        for (id, found) in &by_booking {
            if found.len() > 1 {
                report.duplicates.push(id.clone());
            }
            match confirmed.get(id) {
                Some(at) if found.iter().any(|e| elsewhere(e, *at)) => match enqueue_write(queue, id).await {
                    Ok(()) => report.moved.push(id.clone()),
                    Err(e) => report.errors.push(format!("{id}: re-enqueue failed: {e}")),
                },
                Some(_) => {}
                None => match remove_orphan(store, calendar, queue, &resource.calendar, id, &found[0]).await {
                    Ok(Some(fix)) => fix.note(&mut report, id),
                    Ok(None) => {}
                    Err(e) => report.errors.push(format!("{id}: removing the orphan event failed: {e}")),
                },
            }
        }
    }
    for (name, n) in [
        ("ReconcileMissing", report.missing.len()),
        ("ReconcileOrphans", report.orphans_removed.len()),
        ("ReconcileMoved", report.moved.len()),
        ("ReconcileDuplicates", report.duplicates.len()),
    ] {
        metrics::emit(name, n as f64, metrics::Unit::Count, &[]);
    }
    tracing::info!(
        missing = report.missing.len(),
        orphans = report.orphans_removed.len(),
        moved = report.moved.len(),
        duplicates = report.duplicates.len(),
        errors = report.errors.len(),
        "reconciled"
    );
    Ok(report)
}

/// Whether the booking `id` (while it lasts) or its final record names
/// `host`'s calendar as one its event was written to.
async fn recorded_here<S: ClaimStore + ReservationHistory>(
    store: &S,
    id: &ReservationId,
    host: &ResourceId,
) -> Result<bool, StoreError> {
    let calendars = match store.get_claim(id).await?.filter(|c| &c.reservation_id == id) {
        Some(claim) => claim.calendars,
        None => store.get_reservation_record(id).await?.map(|r| r.calendars).unwrap_or_default(),
    };
    Ok(calendars.iter().any(|c| &c.host == host))
}

async fn enqueue_write<Q: CalendarQueue>(queue: &Q, id: &ReservationId) -> Result<(), QueueError> {
    queue.enqueue(&CalendarJob { action: CalendarAction::Write, reservation_id: id.clone() }).await
}

/// Whether an event is at another time than its booking's `(start, end)`
/// (an end the calendar did not give is not held against it).
fn elsewhere(event: &FoundEvent, (start, end): (DateTime<Utc>, DateTime<Utc>)) -> bool {
    event.start != start || event.end.is_some_and(|e| e != end)
}

/// What [`remove_orphan`] did.
enum OrphanFix {
    Removed,
    /// The booking is confirmed at another time (rescheduled out of the
    /// window): its write job is queued, the writer moves the event.
    Moved,
}

impl OrphanFix {
    fn note(self, report: &mut ReconcileReport, id: &ReservationId) {
        match self {
            Self::Removed => report.orphans_removed.push(id.clone()),
            Self::Moved => report.moved.push(id.clone()),
        }
    }
}

/// Removes the event of a booking read as not confirmed in the window,
/// unless it is confirmed by now (the bookings were read before the
/// calendar was listed) or confirmed at another time (then its event is
/// moved). A confirmation landing between that last look and the delete
/// gets its write job queued again, so the end state is right either way.
async fn remove_orphan<S: ClaimStore, C: Calendar, Q: CalendarQueue>(
    store: &S,
    calendar: &C,
    queue: &Q,
    target: &CalendarTarget,
    id: &ReservationId,
    found: &FoundEvent,
) -> Result<Option<OrphanFix>, String> {
    let confirmed = || async { store.confirmed_booking(id).await.map_err(|e| e.to_string()) };
    if let Some(booking) = confirmed().await? {
        if !elsewhere(found, (booking.slot.start, booking.end)) {
            return Ok(None);
        }
        enqueue_write(queue, id).await.map_err(|e| e.to_string())?;
        return Ok(Some(OrphanFix::Moved));
    }
    calendar.delete_event(target, id).await.map_err(|e| e.to_string())?;
    if confirmed().await?.is_some() {
        enqueue_write(queue, id).await.map_err(|e| e.to_string())?;
    }
    Ok(Some(OrphanFix::Removed))
}
