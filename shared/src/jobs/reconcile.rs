//! Reconcile: compare confirmed bookings with the events slotguard wrote.
//!
//! For a window of slot starts and every resource with a calendar: a confirmed
//! booking without its event is re-enqueued (the writer creates it); a
//! slotguard event of this resource whose booking is not confirmed
//! (cancelled, refunded, gone), looked up again right before the delete, is
//! deleted; two events for one booking are reported. Events of other
//! resources sharing the calendar are left to their own resource. Events without
//! slotguard's marker are never looked at. Run by a schedule and by
//! `slotguard reconcile`.

use crate::domain::{CalendarAction, CalendarJob, CalendarTarget, ClaimStatus, ReservationId, rfc3339};
use crate::metrics;
use crate::ports::{Calendar, FoundEvent};
use crate::ports::{CalendarQueue, ClaimStore, QueueError, ResourceStore, StoreError};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

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
    S: ResourceStore + ClaimStore,
    C: Calendar,
    Q: CalendarQueue,
{
    if from >= to || to - from > MAX_WINDOW {
        return Err(ReconcileError::BadWindow);
    }
    let mut report = ReconcileReport { from: rfc3339(from), to: rfc3339(to), ..Default::default() };
    for resource in store.list_resources().await? {
        if resource.calendar == CalendarTarget::None {
            continue;
        }
        report.resources += 1;
        let mut confirmed = BTreeSet::new();
        for day in days(from, to) {
            for claim in store.claims_on_day(&resource.id, day).await? {
                if claim.status == ClaimStatus::Confirmed && claim.slot.start >= from && claim.slot.start < to {
                    confirmed.insert(claim.reservation_id);
                }
            }
        }
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
        // events are its to judge (the reservation id names its resource).
        for event in events.into_iter().filter(|e| e.reservation_id.slot_key().resource_id == resource.id) {
            by_booking.entry(event.reservation_id.clone()).or_default().push(event);
        }
        report.calendar_events += by_booking.values().map(Vec::len).sum::<usize>();
        for id in confirmed.iter().filter(|id| !by_booking.contains_key(*id)) {
            match enqueue_write(queue, id).await {
                Ok(()) => report.missing.push(id.clone()),
                Err(e) => report.errors.push(format!("{id}: re-enqueue failed: {e}")),
            }
        }
        for (id, found) in &by_booking {
            if found.len() > 1 {
                report.duplicates.push(id.clone());
            }
            if !confirmed.contains(id) {
                match remove_orphan(store, calendar, queue, &resource.calendar, id).await {
                    Ok(true) => report.orphans_removed.push(id.clone()),
                    Ok(false) => {}
                    Err(e) => report.errors.push(format!("{id}: removing the orphan event failed: {e}")),
                }
            }
        }
    }
    for (name, n) in [
        ("ReconcileMissing", report.missing.len()),
        ("ReconcileOrphans", report.orphans_removed.len()),
        ("ReconcileDuplicates", report.duplicates.len()),
    ] {
        metrics::emit(name, n as f64, metrics::Unit::Count, &[]);
    }
    tracing::info!(
        missing = report.missing.len(),
        orphans = report.orphans_removed.len(),
        duplicates = report.duplicates.len(),
        errors = report.errors.len(),
        "reconciled"
    );
    Ok(report)
}

async fn enqueue_write<Q: CalendarQueue>(queue: &Q, id: &ReservationId) -> Result<(), QueueError> {
    queue.enqueue(&CalendarJob { action: CalendarAction::Write, reservation_id: id.clone() }).await
}

/// Removes the event of a booking read as not confirmed, unless it is
/// confirmed by now (the bookings were read before the calendar was listed).
/// A confirmation landing between that last look and the delete gets its
/// write job queued again, so the end state is right either way. `Ok(true)`
/// if the event was removed.
async fn remove_orphan<S: ClaimStore, C: Calendar, Q: CalendarQueue>(
    store: &S,
    calendar: &C,
    queue: &Q,
    target: &CalendarTarget,
    id: &ReservationId,
) -> Result<bool, String> {
    let confirmed = || async {
        let booking = store.confirmed_booking(id).await.map_err(|e| e.to_string())?;
        Ok::<_, String>(booking.is_some())
    };
    if confirmed().await? {
        return Ok(false);
    }
    calendar.delete_event(target, id).await.map_err(|e| e.to_string())?;
    if confirmed().await? {
        enqueue_write(queue, id).await.map_err(|e| e.to_string())?;
    }
    Ok(true)
}

/// The UTC dates whose claim partitions can hold slots starting in `[from, to)`.
fn days(from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<NaiveDate> {
    let last = (to - Duration::nanoseconds(1)).date_naive();
    from.date_naive().iter_days().take_while(|d| *d <= last).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn days_cover_the_window_and_no_more() {
        let d = days(t("2026-06-10T23:00:00Z"), t("2026-06-12T00:00:00Z"));
        assert_eq!(d, [NaiveDate::from_ymd_opt(2026, 6, 10).unwrap(), NaiveDate::from_ymd_opt(2026, 6, 11).unwrap()]);
        assert_eq!(days(t("2026-06-10T10:00:00Z"), t("2026-06-10T10:00:01Z")).len(), 1);
    }
}
