//! Unit tests of the jobs against the in-memory fakes of [`crate::testing`]:
//! the sample SQS batch (`events/sqs-calendar-jobs.json`: a write and a
//! delete job for the sample reservation) through the calendar writer, and
//! reconcile run at the time of the sample schedule event
//! (`events/schedule-reconcile.json`) over the window the reconcile function uses.

use super::calendar_writer::{RetryPolicy, WriterDeps, write_batch};
use super::reconcile::{ReconcileReport, reconcile};
use crate::domain::{
    CalendarAction, CalendarJob, CalendarTarget, Claim, ClaimStatus, ReservationId, Resource, ResourceId, SlotKey,
};
use crate::ports::{BookingEvent, CalendarError};
use crate::testing::*;
use chrono::{DateTime, Duration, Utc};
use tokio::time::Instant;

/// When the sample schedule event fired.
fn now() -> DateTime<Utc> {
    Fixture::load(events::SCHEDULE_RECONCILE).schedule().time.expect("the scheduler sends its time")
}

/// The host's calendar.
fn host_calendar() -> CalendarTarget {
    CalendarTarget::caldav("https://dav.example.com/calendars/host/work/")
}

/// Resource `id`, as the sample resource but writing to `calendar`.
fn resource(id: &str, calendar: CalendarTarget) -> Resource {
    let mut spec = sample_resource().spec;
    spec.calendar = calendar;
    Resource::from_spec(ResourceId::parse(id).unwrap(), spec).unwrap()
}

/// Reservation `id`'s booking.
fn booking(id: &ReservationId, status: ClaimStatus) -> Claim {
    let mut booking = claim(&resource("demo", host_calendar()), id, status, None, now() - Duration::days(1));
    booking.payment_intent = Some("pi_booked".into());
    booking
}

/// An event for a booking, as some earlier write left it.
fn event_of(booking: &Claim) -> BookingEvent {
    BookingEvent {
        reservation_id: booking.reservation_id.clone(),
        summary: "written earlier".into(),
        start: booking.slot.start,
        end: booking.end,
        customer: booking.customer.clone(),
        description: String::new(),
        sequence: 0,
    }
}

/// The writer's fakes: the sample resource with a calendar, and the sample
/// reservation's booking if it has one.
struct Writer {
    store: MemoryStore,
    calendar: MemoryCalendar,
    dead_letters: MemoryQueue,
}

impl Writer {
    fn new(booking_status: Option<ClaimStatus>) -> Self {
        let store = MemoryStore::with_resources([resource("demo", host_calendar())]);
        if let Some(status) = booking_status {
            store.insert_claim(booking(&sample_reservation(), status));
        }
        Self { store, calendar: MemoryCalendar::new(), dead_letters: MemoryQueue::new() }
    }

    /// Runs a batch; the ids of the messages reported as failed.
    async fn run(&self, batch: &Fixture, policy: RetryPolicy) -> Vec<String> {
        let deps =
            WriterDeps { store: &self.store, calendar: &self.calendar, dead_letters: &self.dead_letters, policy };
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        let response = write_batch(&deps, batch.sqs(), deadline).await;
        response.batch_item_failures.into_iter().map(|f| f.item_identifier).collect()
    }
}

/// A transient failure is retried at once.
fn retrying() -> RetryPolicy {
    let quick = std::time::Duration::from_millis(1);
    RetryPolicy { base: quick, cap: quick, attempt_budget: std::time::Duration::ZERO, ..RetryPolicy::default() }
}

/// No retry fits in the invocation: a transient failure ends the attempt.
fn not_retrying() -> RetryPolicy {
    RetryPolicy { attempt_budget: std::time::Duration::from_secs(3600), ..retrying() }
}

/// The sample batch, whose first message is the write job.
fn sample_batch() -> Fixture {
    let batch = Fixture::load(events::SQS_CALENDAR_JOBS);
    let first: CalendarJob = serde_json::from_str(batch.text_at("/Records/0/body")).unwrap();
    assert_eq!(first, CalendarJob { action: CalendarAction::Write, reservation_id: sample_reservation() });
    batch
}

#[tokio::test]
async fn the_sample_batch_leaves_the_calendar_matching_the_booking_however_often_it_runs() {
    // (case, the booking, an event already there, an event there after)
    let cases = [
        ("confirmed", Some(ClaimStatus::Confirmed), false, true),
        ("confirmed and written before", Some(ClaimStatus::Confirmed), true, true),
        ("being cancelled", Some(ClaimStatus::Cancelling), true, false),
        ("cancelled", None, true, false),
    ];
    let id = sample_reservation();
    let booked = booking(&id, ClaimStatus::Confirmed);
    let demo = resource("demo", host_calendar());
    for (case, status, written_before, on_calendar) in cases {
        let writer = Writer::new(status);
        if written_before {
            writer.calendar.insert(&host_calendar(), event_of(&booked));
        }
        // Twice: SQS delivers at least once.
        for _ in 0..2 {
            assert_eq!(writer.run(&sample_batch(), not_retrying()).await, Vec::<String>::new(), "{case}");
        }
        let events = writer.calendar.events();
        assert_eq!(events.len(), usize::from(on_calendar), "{case}: {events:?}");
        assert!(writer.dead_letters.dead_letters().is_empty(), "{case}");
        let Some(written) = events.first() else { continue };
        assert_eq!((&written.target, &written.event.reservation_id), (&host_calendar(), &id), "{case}");
        assert_eq!((written.event.start, written.event.end), (booked.slot.start, booked.end), "{case}");
        if !written_before {
            assert_eq!(written.event.summary, format!("{}: {}", demo.name, booked.customer.name));
            assert!(written.event.description.contains(id.as_str()));
        }
        let noted = writer.store.snapshot().claim_item_of(&id).and_then(|item| item.calendar_event.clone());
        assert_eq!(
            noted.map(|(event_ref, _)| event_ref),
            Some(written.event_ref.clone()),
            "{case}: noted on the booking"
        );
    }
}

/// What became of the sample batch's write job.
#[derive(Debug, Clone, PartialEq)]
enum Fate {
    Written,
    /// Reported as a batch item failure: SQS delivers it again.
    Redelivered,
    /// Parked on the dead-letter queue with this kind of reason.
    DeadLettered(String),
}

#[tokio::test]
async fn calendar_failures_are_retried_reported_or_dead_lettered() {
    fn transient(w: &Writer) {
        w.calendar.fail_next("put_event", CalendarError::Transient { kind: "http_503", message: "busy".into() });
    }
    fn permanent(w: &Writer) {
        w.calendar.fail_next("put_event", CalendarError::Permanent { kind: "http_401", message: "no".into() });
    }
    type Setup = fn(&Writer);
    let last_receive = RetryPolicy::default().max_receives.to_string();
    let on_last_receive = sample_batch().set("/Records/0/attributes/ApproximateReceiveCount", last_receive.as_str());
    let malformed = sample_batch().set("/Records/0/body", "{\"action\": \"paint\"}");
    let cases: [(&str, Setup, Fixture, RetryPolicy, Fate); 7] = [
        ("a permanent error", permanent, sample_batch(), not_retrying(), Fate::DeadLettered("http_401".into())),
        ("a transient error", transient, sample_batch(), not_retrying(), Fate::Redelivered),
        (
            "a transient error on the last receive",
            transient,
            on_last_receive,
            not_retrying(),
            Fate::DeadLettered("http_503".into()),
        ),
        ("a transient error, then success", transient, sample_batch(), retrying(), Fate::Written),
        (
            "storage down",
            |w| w.store.fail_next("get_claim", unavailable("get_claim")),
            sample_batch(),
            not_retrying(),
            Fate::Redelivered,
        ),
        (
            "a permanent error with the dead-letter queue down",
            |w| {
                permanent(w);
                w.dead_letters.fail_next("send_dead_letter");
            },
            sample_batch(),
            not_retrying(),
            Fate::Redelivered,
        ),
        ("a malformed job", |_| {}, malformed, not_retrying(), Fate::DeadLettered("malformed_job".into())),
    ];
    for (case, setup, batch, policy, fate) in cases {
        let writer = Writer::new(Some(ClaimStatus::Confirmed));
        setup(&writer);
        let write_message = batch.text_at("/Records/0/messageId").to_owned();
        let failures = writer.run(&batch, policy).await;
        let parked = writer.dead_letters.dead_letters();
        let found = match (failures.as_slice(), parked.as_slice(), writer.calendar.events().len()) {
            ([], [], 1) => Some(Fate::Written),
            ([failed], [], 0) if *failed == write_message => Some(Fate::Redelivered),
            ([], [(_, reason)], 0) => Some(Fate::DeadLettered(reason.kind.clone())),
            _ => None,
        };
        assert_eq!(found, Some(fate), "{case}: failures {failures:?}, dead letters {parked:?}");
        if let Some((body, reason)) = parked.first() {
            assert_eq!(body, batch.text_at("/Records/0/body"), "{case}: the job itself is parked");
            let attribute =
                |name: &str| batch.text_at(&format!("/Records/0/attributes/{name}")).parse::<i64>().unwrap();
            assert_eq!(i64::from(reason.receive_count), attribute("ApproximateReceiveCount"), "{case}");
            let first = DateTime::from_timestamp_millis(attribute("ApproximateFirstReceiveTimestamp"));
            assert_eq!(Some(reason.first_failure_at), first, "{case}");
        }
    }
}

/// A calendar that drifted from the bookings, over `demo` and `other` (a
/// resource writing to no calendar, whose event sits on demo's calendar):
/// the bookings missing an event, with two events, and the orphan event;
/// the event of `other`.
struct Drift {
    store: MemoryStore,
    calendar: MemoryCalendar,
    queue: MemoryQueue,
    missing: ReservationId,
    twice: ReservationId,
    orphan: ReservationId,
    others: ReservationId,
}

impl Drift {
    fn new() -> Self {
        let (demo, other) = (resource("demo", host_calendar()), resource("other", CalendarTarget::None));
        let store = MemoryStore::with_resources([demo.clone(), other.clone()]);
        let calendar = MemoryCalendar::new();
        let slots = demo.first_slots_between(now(), now() + Duration::days(7));
        let on = |resource: &Resource, i: usize| {
            ReservationId::new(&SlotKey { resource_id: resource.id.clone(), start: slots[i].start })
        };
        let (missing, fine, twice, orphan, others) =
            (on(&demo, 0), on(&demo, 1), on(&demo, 2), on(&demo, 3), on(&other, 4));
        for id in [&missing, &fine, &twice] {
            store.insert_claim(booking(id, ClaimStatus::Confirmed));
        }
        for id in [&fine, &twice, &twice, &orphan, &others] {
            calendar.insert(&host_calendar(), event_of(&booking(id, ClaimStatus::Confirmed)));
        }
        Self { store, calendar, queue: MemoryQueue::new(), missing, twice, orphan, others }
    }

    /// Reconciles the window the reconcile function takes at the sample
    /// schedule's time (a day back, 30 days ahead by default).
    async fn reconcile(&self) -> ReconcileReport {
        let now = now();
        let window = (now - Duration::days(1), now + Duration::days(30));
        reconcile(&self.store, &self.calendar, &self.queue, window.0, window.1).await.expect("a valid window")
    }
}

#[tokio::test]
async fn reconcile_requeues_missing_events_removes_orphans_and_reports_duplicates() {
    let drift = Drift::new();
    let before = drift.calendar.events();
    let report = drift.reconcile().await;
    assert_eq!((report.resources, report.confirmed_bookings, report.calendar_events), (1, 3, 4), "{report:?}");
    assert_eq!(report.missing, vec![drift.missing.clone()]);
    assert_eq!(report.orphans_removed, vec![drift.orphan.clone()]);
    assert_eq!(report.duplicates, vec![drift.twice.clone()]);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(drift.queue.jobs(), [CalendarJob { action: CalendarAction::Write, reservation_id: drift.missing }]);
    let left: Vec<_> = before.into_iter().filter(|e| e.event.reservation_id != drift.orphan).collect();
    assert_eq!(drift.calendar.events(), left, "only the orphan is removed; the other resource's event stays");
    assert!(left.iter().any(|e| e.event.reservation_id == drift.others));
}

#[tokio::test]
async fn reconcile_reports_what_it_could_not_reach_and_carries_on() {
    type Setup = fn(&Drift);
    type Named = fn(&Drift) -> String;
    let calendar_down: Setup = |d| {
        d.calendar.fail_next("list_events", CalendarError::Transient { kind: "timeout", message: "no answer".into() });
    };
    // (case, setup, what the error names, events left on the calendar)
    let cases: [(&str, Setup, Named, usize); 2] = [
        ("calendar down", calendar_down, |_| "demo: listing the calendar failed".into(), 5),
        ("queue down", |d| d.queue.fail_next("enqueue"), |d| d.missing.to_string(), 4),
    ];
    for (case, setup, named, events_left) in cases {
        let drift = Drift::new();
        setup(&drift);
        let report = drift.reconcile().await;
        assert_eq!(report.errors.len(), 1, "{case}: {:?}", report.errors);
        assert!(report.errors[0].contains(&named(&drift)), "{case}: {:?}", report.errors);
        assert!(report.missing.is_empty() && drift.queue.jobs().is_empty(), "{case}: nothing re-enqueued");
        assert_eq!(drift.calendar.events().len(), events_left, "{case}");
    }
}
