//! Unit tests of the catch-up against the in-memory fakes of
//! [`crate::testing`]: the sample Stripe events of `events/stripe/`, made at
//! the fake Stripe without any webhook delivery, settled by runs at the time
//! of the sample schedule event (`events/schedule-catch-up.json`, the day
//! before the sample slot).

use super::catch_up::{CatchUpReport, CatchUpSettings, OVERLAP, catch_up};
use crate::api::stripe_webhook::{SettleDeps, WebhookDeps, stripe_webhook_at};
use crate::domain::{
    CalendarAction, CalendarJob, Claim, ClaimStatus, PaymentOutcome, RefundCause, ReservationId, ReservationStatus,
};
use crate::ports::{CursorStore, EventCursor, PaymentError, SettledEvent};
use crate::testing::*;
use chrono::{DateTime, Duration, Utc};
use tokio::time::Instant;

/// When the sample schedule event fired.
fn now() -> DateTime<Utc> {
    Fixture::load(events::SCHEDULE_CATCH_UP).schedule().time.expect("the scheduler sends its time")
}

/// The Checkout Session the sample Stripe events are about.
fn sample_session() -> String {
    Fixture::load(events::stripe::COMPLETED).text_at("/data/object/id").to_owned()
}

/// The fakes, with the sample reservation held (20 minutes left) and the
/// sample session recorded as its own, as checkout leaves them.
struct World {
    store: MemoryStore,
    payments: MemoryPayments,
    queue: MemoryQueue,
    settings: CatchUpSettings,
}

impl World {
    fn new() -> Self {
        let world = Self::without_hold();
        world.store.insert_claim(hold());
        world
    }

    /// The sample session recorded as the reservation's own, but no hold.
    fn without_hold() -> Self {
        let store = MemoryStore::with_resources([sample_resource()]);
        store.insert_checkout_record(hold().checkout_record(sample_session()));
        Self { store, payments: MemoryPayments::new(), queue: MemoryQueue::new(), settings: CatchUpSettings::default() }
    }

    /// Makes `event` at Stripe, created `ago` before now, with its own id;
    /// no webhook delivers it. Returns the id.
    fn publish(&self, event: &str, ago: Duration, id: &str) -> String {
        let event = Fixture::load(event).set("/id", id).set("/created", (now() - ago).timestamp());
        self.payments.publish(event.text());
        id.to_owned()
    }

    async fn run_at(&self, at: DateTime<Utc>) -> CatchUpReport {
        let deps = SettleDeps { store: &self.store, payments: &self.payments, calendar: &self.queue };
        let far = Instant::now() + std::time::Duration::from_secs(60);
        catch_up(&deps, &self.settings, at, far).await.expect("the run works")
    }

    async fn run(&self) -> CatchUpReport {
        self.run_at(now()).await
    }

    fn cursor(&self) -> Option<EventCursor> {
        self.store.snapshot().cursor
    }
}

/// The sample reservation's hold, 20 minutes left at [`now`].
fn hold() -> Claim {
    claim(&sample_resource(), &sample_reservation(), ClaimStatus::Held, Some(now() + Duration::minutes(20)), now())
}

fn write_job() -> CalendarJob {
    CalendarJob { action: CalendarAction::Write, reservation_id: sample_reservation() }
}

#[tokio::test]
async fn a_payment_no_webhook_delivered_is_confirmed_queued_and_moves_the_cursor() {
    let world = World::new();
    let paid = world.publish(events::stripe::COMPLETED, Duration::minutes(10), "evt_paid");

    let report = world.run().await;

    assert_eq!((report.events_read, report.settled, report.failed), (1, 1, 0), "{report:?}");
    let tables = world.store.snapshot();
    let booking = tables.claim_of(&sample_reservation()).expect("the booking");
    assert_eq!((booking.status, booking.expires_at), (ClaimStatus::Confirmed, None));
    assert_eq!(tables.outcome(&sample_session()), Some(PaymentOutcome::Confirmed));
    assert_eq!(world.queue.jobs(), vec![write_job()]);
    assert!(world.payments.refunds().is_empty());
    let cursor = world.cursor().expect("the cursor");
    assert_eq!(cursor.settled_through.timestamp(), (now() - Duration::minutes(10)).timestamp());
    assert_eq!(cursor.recent.iter().map(|e| e.event_id.as_str()).collect::<Vec<_>>(), [paid.as_str()]);
    assert!(report.cursor_moved && report.unsettled_paid_sessions.is_empty(), "{report:?}");
}

#[tokio::test]
async fn a_second_run_and_a_late_webhook_change_nothing_more() {
    let world = World::new();
    world.publish(events::stripe::COMPLETED, Duration::minutes(2), "evt_paid");
    world.run().await;
    let (tables, jobs) = (world.store.snapshot(), world.queue.jobs());

    // A run a minute later reads the same event again (it is within the overlap).
    let again = world.run_at(now() + Duration::minutes(1)).await;
    assert_eq!((again.events_read, again.seen_before, again.settled), (1, 1, 0), "{again:?}");
    assert!(!again.cursor_moved);
    assert_eq!(world.store.snapshot(), tables);
    assert_eq!(world.queue.jobs(), jobs, "nothing is queued again");

    // The webhook comes back and Stripe delivers the event late.
    let body = Fixture::load(events::stripe::COMPLETED).set("/id", "evt_paid").text();
    let request = Fixture::load(events::STRIPE_WEBHOOK).header("stripe-signature", &signature(&body)).body(body);
    let deps =
        WebhookDeps { store: &world.store, payments: &world.payments, calendar: &world.queue, verifier: &verifier() };
    let response = stripe_webhook_at(deps, request.request(), now() + Duration::minutes(2)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(world.store.snapshot(), tables, "the booking, its outcome and the cursor are as the catch-up left them");
    assert!(world.payments.refunds().is_empty());
    // The webhook sends the calendar job again (as for any redelivery): the writer is idempotent.
    assert!(world.queue.jobs().iter().all(|j| *j == write_job()));
}

#[tokio::test]
async fn a_session_that_expired_while_no_webhook_came_releases_its_hold() {
    let world = World::new();
    world.publish(events::stripe::EXPIRED, Duration::minutes(1), "evt_expired");

    let report = world.run().await;

    assert_eq!((report.settled, report.failed), (1, 0), "{report:?}");
    let tables = world.store.snapshot();
    assert!(tables.claim_of(&sample_reservation()).is_none(), "the hold is released");
    assert!(tables.locks.is_empty(), "with its locks");
    assert_eq!(tables.outcome(&sample_session()), Some(PaymentOutcome::Expired));
    assert_eq!(tables.records[&sample_reservation()].status, ReservationStatus::Released);
}

#[tokio::test]
async fn a_late_payment_for_a_slot_someone_else_booked_is_refunded_once() {
    let world = World::without_hold();
    let theirs = claim(&sample_resource(), &sample_reservation(), ClaimStatus::Confirmed, None, now());
    let theirs = Claim { reservation_id: ReservationId::new(&theirs.slot), ..theirs };
    world.store.insert_claim(theirs.clone());
    world.publish(events::stripe::COMPLETED, Duration::minutes(3), "evt_late");

    world.run().await;
    world.run_at(now() + Duration::minutes(1)).await;

    let refunds = world.payments.refunds();
    assert_eq!(refunds.len(), 1, "{refunds:?}");
    assert_eq!((refunds[0].cause, refunds[0].key.as_str()), (RefundCause::SlotTaken, "refund-cs_test_a1b2c3"));
    let tables = world.store.snapshot();
    assert_eq!(tables.outcome(&sample_session()), Some(PaymentOutcome::Refunded(RefundCause::SlotTaken)));
    assert_eq!(tables.claim_of(&theirs.reservation_id), Some(&theirs), "the booking that had the slot keeps it");
}

#[tokio::test]
async fn a_run_stops_at_the_first_event_it_cannot_settle_and_the_next_run_starts_there() {
    let world = World::new();
    // Not a slotguard session: settled by being ignored.
    let foreign = Fixture::load(events::stripe::EXPIRED)
        .remove("/data/object/metadata/reservation_id")
        .set("/data/object/client_reference_id", serde_json::Value::Null)
        .set("/data/object/id", "cs_test_not_ours")
        .set("/id", "evt_foreign")
        .set("/created", (now() - Duration::minutes(30)).timestamp());
    world.payments.publish(foreign.text());
    world.publish(events::stripe::COMPLETED, Duration::minutes(20), "evt_paid");
    world.publish(events::stripe::ASYNC_SUCCEEDED, Duration::minutes(10), "evt_after");
    world.store.fail_next("checkout_record", unavailable("checkout_record"));

    let first = world.run().await;

    assert_eq!((first.settled, first.failed, first.not_attempted), (1, 1, 1), "{first:?}");
    assert!(first.stopped.as_deref().is_some_and(|why| why.contains("storage unavailable")), "{first:?}");
    let cursor = world.cursor().expect("moved to the ignored event");
    assert_eq!(cursor.settled_through.timestamp(), (now() - Duration::minutes(30)).timestamp());
    assert_eq!(world.store.snapshot().claim_of(&sample_reservation()).map(|c| c.status), Some(ClaimStatus::Held));
    assert!(world.queue.jobs().is_empty(), "nothing after the failure was settled");

    let second = world.run_at(now() + Duration::minutes(5)).await;

    assert_eq!((second.seen_before, second.settled, second.failed), (1, 2, 0), "{second:?}");
    assert_eq!(world.store.snapshot().claim_of(&sample_reservation()).map(|c| c.status), Some(ClaimStatus::Confirmed));
    assert_eq!(world.cursor().unwrap().settled_through.timestamp(), (now() - Duration::minutes(10)).timestamp());
}

#[tokio::test]
async fn an_event_it_cannot_read_stops_the_run_without_moving_the_cursor() {
    let world = World::new();
    let odd = Fixture::load(events::stripe::COMPLETED)
        .set("/data/object/payment_status", "a_status_from_the_future")
        .set("/id", "evt_odd")
        .set("/created", (now() - Duration::minutes(5)).timestamp());
    world.payments.publish(odd.text());
    world.publish(events::stripe::EXPIRED, Duration::minutes(1), "evt_expired");

    let report = world.run().await;

    assert_eq!((report.settled, report.failed, report.not_attempted), (0, 1, 1), "{report:?}");
    assert!(report.stopped.as_deref().is_some_and(|why| why.contains("unreadable")), "{report:?}");
    assert_eq!(world.cursor(), None);
    assert!(world.store.snapshot().claim_of(&sample_reservation()).is_some(), "the later expiry waits its turn");
}

#[tokio::test]
async fn the_first_run_reads_back_the_configured_window_later_runs_from_the_cursor_less_the_overlap() {
    let world = World::new();
    let foreign = |id: &str, ago: Duration| {
        Fixture::load(events::stripe::EXPIRED)
            .remove("/data/object/metadata/reservation_id")
            .set("/data/object/client_reference_id", serde_json::Value::Null)
            .set("/id", id)
            .set("/created", (now() - ago).timestamp())
            .text()
    };
    world.payments.publish(foreign("evt_4_days", Duration::days(4)));
    world.payments.publish(foreign("evt_2_days", Duration::days(2)));

    let first = world.run().await;
    assert_eq!(first.since, crate::domain::rfc3339(now() - Duration::days(3)));
    assert_eq!(first.events_read, 1, "the default window is 3 days: {first:?}");

    // A cursor two days back: only from 5 minutes before it.
    world.payments.publish(foreign("evt_before_overlap", Duration::days(2) + OVERLAP + Duration::seconds(1)));
    let later = world.run().await;
    assert_eq!(later.since, crate::domain::rfc3339(now() - Duration::days(2) - OVERLAP));
    assert_eq!((later.events_read, later.seen_before), (1, 1), "{later:?}");

    // Another deployment, configured to look back 5 days on its first run.
    let wide =
        World { settings: CatchUpSettings::new(Duration::days(5), Duration::minutes(30)).unwrap(), ..World::new() };
    wide.payments.publish(foreign("evt_4_days", Duration::days(4)));
    assert_eq!(wide.run().await.events_read, 1);
    assert!(CatchUpSettings::new(Duration::days(31), Duration::minutes(30)).is_err(), "Stripe keeps 30 days");
    assert!(CatchUpSettings::new(Duration::zero(), Duration::minutes(30)).is_err());
}

#[tokio::test]
async fn a_paid_session_still_without_an_outcome_after_the_alarm_age_raises_the_alarm_once_per_session() {
    let world = World::new();
    world.publish(events::stripe::COMPLETED, Duration::minutes(40), "evt_paid");
    world.publish(events::stripe::ASYNC_SUCCEEDED, Duration::minutes(35), "evt_paid_again");

    // Twice, storage failing each time it settles: not settled, alarmed.
    for _ in 0..2 {
        world.store.fail_next("checkout_record", unavailable("checkout_record"));
        let report = world.run().await;
        assert_eq!(report.failed, 1, "{report:?}");
        assert_eq!(report.unsettled_paid_sessions, vec![sample_session()], "{report:?}");
    }
    let attention = world.store.snapshot().attention;
    assert_eq!(attention.len(), 1, "one operator item per session: {attention:?}");
    let item = &attention[&format!("unsettled-{}", sample_session())];
    assert_eq!(
        (item.kind.as_str(), item.reservation_id.as_ref()),
        ("unsettled_paid_session", Some(&sample_reservation()))
    );

    // Once it settles, a run raises nothing.
    let report = world.run().await;
    assert_eq!((report.settled, report.unsettled_paid_sessions.len()), (2, 0), "{report:?}");
}

#[tokio::test]
async fn a_recent_or_unpaid_or_foreign_session_without_an_outcome_raises_nothing() {
    let world = World::new();
    // Paid 10 minutes ago: under the alarm age.
    world.publish(events::stripe::COMPLETED, Duration::minutes(10), "evt_recent");
    // Unpaid (a delayed payment pending), an hour ago.
    world.publish(events::stripe::COMPLETED_UNPAID, Duration::hours(1), "evt_unpaid");
    // Paid two hours ago, but not a session slotguard made: not slotguard's to settle.
    let foreign = Fixture::load(events::stripe::COMPLETED)
        .remove("/data/object/metadata/reservation_id")
        .set("/data/object/client_reference_id", serde_json::Value::Null)
        .set("/data/object/id", "cs_test_not_ours")
        .set("/id", "evt_foreign")
        .set("/created", (now() - Duration::hours(2)).timestamp());
    world.payments.publish(foreign.text());
    world.store.fail_next("checkout_record", unavailable("checkout_record"));

    let report = world.run().await;

    assert_eq!(report.failed, 1, "{report:?}");
    assert!(report.unsettled_paid_sessions.is_empty(), "{report:?}");
    assert!(world.store.snapshot().attention.is_empty());
}

#[tokio::test]
async fn past_its_deadline_a_run_settles_nothing_more_and_leaves_the_rest_to_the_next() {
    let world = World::new();
    world.publish(events::stripe::COMPLETED, Duration::minutes(10), "evt_paid");
    let deps = SettleDeps { store: &world.store, payments: &world.payments, calendar: &world.queue };

    let report = catch_up(&deps, &world.settings, now(), Instant::now()).await.unwrap();

    assert_eq!((report.settled, report.not_attempted, report.stopped.as_deref()), (0, 1, Some("deadline")));
    assert_eq!(world.cursor(), None);
    assert_eq!(world.run().await.settled, 1, "the next run settles it");
}

#[tokio::test]
async fn a_run_that_cannot_list_or_read_the_cursor_fails_and_writes_nothing() {
    let world = World::new();
    world.publish(events::stripe::COMPLETED, Duration::minutes(10), "evt_paid");
    let deps = SettleDeps { store: &world.store, payments: &world.payments, calendar: &world.queue };
    let far = Instant::now() + std::time::Duration::from_secs(60);
    let before = world.store.snapshot();

    world.payments.fail_next("session_events_since", PaymentError::Unavailable("Stripe is down".into()));
    assert!(catch_up(&deps, &world.settings, now(), far).await.is_err());
    world.store.fail_next("event_cursor", unavailable("event_cursor"));
    assert!(catch_up(&deps, &world.settings, now(), far).await.is_err());

    assert_eq!(world.store.snapshot(), before);
}

#[tokio::test]
async fn the_cursor_moves_only_from_the_revision_read_and_never_back() {
    let store = MemoryStore::new();
    let at = |minutes: i64| now() + Duration::minutes(minutes);
    let cursor = |minutes: i64| EventCursor {
        settled_through: at(minutes),
        recent: vec![SettledEvent { created: at(minutes), event_id: format!("evt_{minutes}") }],
        moved_at: now(),
        revision: 0,
    };
    assert!(store.advance_event_cursor(None, &cursor(1)).await.unwrap());
    assert!(!store.advance_event_cursor(None, &cursor(2)).await.unwrap(), "someone wrote it since");
    let read = store.event_cursor().await.unwrap().unwrap();
    assert_eq!(read.revision, 1);
    // Two runs read the same cursor: the first to write wins, the other writes nothing.
    assert!(store.advance_event_cursor(Some(&read), &cursor(5)).await.unwrap());
    assert!(!store.advance_event_cursor(Some(&read), &cursor(3)).await.unwrap());
    let read = store.event_cursor().await.unwrap().unwrap();
    assert_eq!((read.settled_through, read.revision), (at(5), 2));
    assert!(!store.advance_event_cursor(Some(&read), &cursor(4)).await.unwrap(), "never backwards");
    assert_eq!(store.event_cursor().await.unwrap().unwrap().settled_through, at(5));
}
