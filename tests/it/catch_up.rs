//! The catch-up against the real stack: the Stripe simulator with its
//! webhook endpoint down (`POST /_sim/webhooks?down=true`: events are made
//! and listed at `GET /v1/events`, never delivered), DynamoDB Local, the
//! calendar queue on moto. Customers pay, sessions expire, no webhook
//! arrives; the catch-up reads the events back and settles them as the
//! webhook would have.

use crate::helpers::*;
use chrono::{Duration, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};
use slotguard::adapters::stripe::StripePayments;
use slotguard::api::stripe_webhook::SettleDeps;
use slotguard::jobs::catch_up::{CatchUpReport, CatchUpSettings, OVERLAP, catch_up};
use slotguard::ports::{CursorStore, EventCursor, Payments, SettledEvent};
use tokio::time::Instant;

impl TestApp {
    /// Takes the simulator's webhook endpoint down (or back up).
    async fn webhooks_down(&self, down: bool) {
        assert_eq!(self.sim_control(&format!("/_sim/webhooks?down={down}")).await["down"], down);
    }

    /// The Stripe client the functions build, on this app's simulator.
    fn stripe(&self) -> StripePayments {
        StripePayments::new(STRIPE_KEY, Some(&self.sim)).unwrap()
    }

    /// One run of the catch-up, as the scheduled function makes it.
    async fn catch_up(&self) -> CatchUpReport {
        let payments = self.stripe();
        let deps = SettleDeps { store: &self.store, payments: &payments, calendar: &self.queue };
        let deadline = Instant::now() + std::time::Duration::from_secs(60);
        catch_up(&deps, &CatchUpSettings::default(), Utc::now(), deadline).await.expect("a catch-up run")
    }
}

impl TestApp {
    /// Every calendar job on the queue, each once (received, hidden for a
    /// minute so the next receive gets others, until none is left).
    async fn drain_jobs(&self) -> Vec<Value> {
        let mut jobs = Vec::new();
        loop {
            let out = self
                .queue
                .client()
                .receive_message()
                .queue_url(self.queue.queue_url())
                .max_number_of_messages(10)
                .visibility_timeout(60)
                .send()
                .await
                .unwrap();
            if out.messages().is_empty() {
                return jobs;
            }
            jobs.extend(out.messages().iter().map(|m| serde_json::from_str::<Value>(m.body().unwrap()).unwrap()));
        }
    }
}

async fn app_with_room() -> TestApp {
    let app = spawn_app().await;
    app.put_resource("room", &open_all_day()).await;
    app
}

fn write_job(reservation_id: &str) -> Value {
    json!({"action": "write", "reservation_id": reservation_id})
}

#[tokio::test]
async fn a_payment_whose_webhook_never_arrives_is_confirmed_by_the_catch_up_and_queued_for_the_calendar() {
    let app = app_with_room().await;
    let c = app.reserve_and_checkout("room", hour_from_now(30), "ada@example.com").await;
    app.webhooks_down(true).await;

    let paid = app.pay(&c.session_id, "").await;
    assert_eq!(paid["deliveries"], json!([0]), "the endpoint is down: no delivery");
    assert_eq!(app.status_text(&c.reservation_id).await, "held");
    assert!(app.queued_jobs().await.is_empty());

    let report = app.catch_up().await;

    assert_eq!((report.events_read, report.settled, report.failed), (1, 1, 0), "{report:?}");
    assert_eq!(app.status_text(&c.reservation_id).await, "confirmed");
    let booking = app.claim_item(&c.reservation_id).await.unwrap();
    assert_eq!(s(&booking, "status"), "CONFIRMED");
    assert!(!booking.contains_key("expires_at"), "a confirmed booking carries no TTL");
    assert_eq!(app.queued_jobs().await, vec![write_job(&c.reservation_id)]);
    assert!(app.refunds().await.is_empty());
    let cursor = app.store.event_cursor().await.unwrap().expect("the cursor is stored");
    assert_eq!(
        cursor.recent.iter().map(|e| e.event_id.as_str()).collect::<Vec<_>>(),
        [paid["event_id"].as_str().unwrap()]
    );
}

#[tokio::test]
async fn running_the_catch_up_again_or_the_webhook_arriving_after_it_changes_nothing_more() {
    let app = app_with_room().await;
    let c = app.reserve_and_checkout("room", hour_from_now(30), "ada@example.com").await;
    app.webhooks_down(true).await;
    let paid = app.pay(&c.session_id, "").await;
    app.catch_up().await;
    let (table, jobs) = (app.scan().await, app.queued_jobs().await);

    let again = app.catch_up().await;
    assert_eq!((again.events_read, again.seen_before, again.settled), (1, 1, 0), "{again:?}");
    assert!(!again.cursor_moved);
    assert_eq!(app.scan().await, table, "a second run writes nothing");
    assert_eq!(app.queued_jobs().await, jobs, "and queues nothing");

    // The endpoint comes back and Stripe delivers the event after all.
    app.webhooks_down(false).await;
    let event_id = paid["event_id"].as_str().unwrap();
    let late = app.sim_control(&format!("/_sim/events/{event_id}/redeliver?deliveries=2")).await;
    assert_eq!(late["deliveries"], json!([200, 200]));
    assert_eq!(app.scan().await, table, "the webhook finds the outcome recorded: the booking stays as it is");
    assert_eq!(app.status_text(&c.reservation_id).await, "confirmed");
    assert!(app.refunds().await.is_empty());
    // The webhook sends the calendar job again, as for any redelivery: the writer is idempotent.
    assert!(app.queued_jobs().await.iter().all(|job| *job == write_job(&c.reservation_id)));
}

#[tokio::test]
async fn a_session_that_expired_with_the_webhook_down_has_its_hold_released_by_the_catch_up() {
    let app = app_with_room().await;
    let c = app.reserve_and_checkout("room", hour_from_now(30), "ada@example.com").await;
    app.webhooks_down(true).await;
    let expired = app.sim_control(&format!("/_sim/checkout/sessions/{}/expire", c.session_id)).await;
    assert_eq!(expired["deliveries"], json!([0]));
    assert_eq!(app.live_holds().await.len(), 1, "without the webhook, the hold stays");

    let report = app.catch_up().await;

    assert_eq!((report.settled, report.failed), (1, 0), "{report:?}");
    assert_eq!(app.status_text(&c.reservation_id).await, "released");
    assert!(app.live_holds().await.is_empty());
    assert_eq!(app.slots("room", c.start, c.start + Duration::hours(1)).await.len(), 1, "the slot is offered again");
    assert!(app.claim_item(&c.reservation_id).await.is_none());
}

#[tokio::test]
async fn a_late_payment_for_a_taken_slot_is_refunded_once_by_the_catch_up() {
    let app = app_with_room().await;
    let nine = hour_from_now(33);
    // A holds 9:00 and starts checkout; A's hold lapses; B reserves 9:00.
    let a = app.reserve_and_checkout("room", nine, "a@example.com").await;
    app.lapse_hold(&a.reservation_id).await;
    let r = app.reserve("room", nine, "b@example.com").await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let b_id = app.remember(&r.json().await.unwrap());
    app.webhooks_down(true).await;

    let paid = app.pay(&a.session_id, "").await;
    let pi = paid["payment_intent"].as_str().unwrap().to_owned();
    app.catch_up().await;
    app.catch_up().await;

    let refunds: Vec<Value> = app.refunds().await.into_iter().filter(|r| r["payment_intent"] == pi).collect();
    assert_eq!(refunds.len(), 1, "A is refunded once: {refunds:?}");
    assert_eq!(
        (refunds[0]["amount"].as_i64(), refunds[0]["idempotency_key"].as_str()),
        (Some(2500), Some(format!("refund-{}", a.session_id).as_str()))
    );
    assert_eq!(app.status_text(&a.reservation_id).await, "refunded");
    assert_eq!(s(&app.claim_item(&b_id).await.unwrap(), "reservation_id"), b_id, "B keeps 9:00");

    // The webhook comes back and the event arrives after all: still one refund.
    app.webhooks_down(false).await;
    let event_id = paid["event_id"].as_str().unwrap();
    app.sim_control(&format!("/_sim/events/{event_id}/redeliver?deliveries=2")).await;
    assert_eq!(app.refunds().await.iter().filter(|r| r["payment_intent"] == pi).count(), 1);
    assert!(app.queued_jobs().await.is_empty(), "no calendar job for a refunded payment");
}

#[tokio::test]
async fn every_paid_session_settles_with_every_webhook_dropped() {
    let app = app_with_room().await;
    app.webhooks_down(true).await;
    let mut paid = Vec::new();
    for hour in 30..34 {
        let c = app.reserve_and_checkout("room", hour_from_now(hour), &format!("p{hour}@example.com")).await;
        app.pay(&c.session_id, "").await;
        paid.push(c);
    }
    // A delayed payment that succeeds, and one that fails.
    let slow = app.reserve_and_checkout("room", hour_from_now(34), "slow@example.com").await;
    app.pay(&slow.session_id, "async=true").await;
    app.sim_control(&format!("/_sim/checkout/sessions/{}/async_payment?result=succeeded", slow.session_id)).await;
    let failed = app.reserve_and_checkout("room", hour_from_now(35), "failed@example.com").await;
    app.pay(&failed.session_id, "async=true").await;
    app.sim_control(&format!("/_sim/checkout/sessions/{}/async_payment?result=failed", failed.session_id)).await;
    paid.push(slow);
    let delivered: Vec<Value> = app.sim_get("/_sim/events").await["events"].as_array().unwrap().clone();
    assert_eq!(delivered.len(), 8);
    assert!(delivered.iter().all(|e| e["deliveries"] == json!([0])), "no webhook was delivered: {delivered:?}");

    // Two runs at once, as overlapping schedules would, then the next
    // scheduled one (it finishes whatever a collision of the two left).
    let (one, two) = tokio::join!(app.catch_up(), app.catch_up());
    assert!(one.cursor_moved || two.cursor_moved, "{one:?} {two:?}");
    let next = app.catch_up().await;
    assert_eq!(next.failed, 0, "{next:?}");

    for c in &paid {
        assert_eq!(app.status_text(&c.reservation_id).await, "confirmed", "{}", c.reservation_id);
    }
    assert_eq!(app.status_text(&failed.reservation_id).await, "released");
    assert!(app.refunds().await.is_empty());
    let jobs = app.drain_jobs().await;
    for c in &paid {
        assert!(jobs.contains(&write_job(&c.reservation_id)), "a calendar job for {}: {jobs:?}", c.reservation_id);
    }
    // The cursor is at the newest event, and a later run settles nothing again.
    let newest = delivered.iter().map(|e| e["created"].as_i64().unwrap()).max().unwrap();
    let cursor = app.store.event_cursor().await.unwrap().unwrap();
    assert_eq!(cursor.settled_through.timestamp(), newest);
    let later = app.catch_up().await;
    assert_eq!((later.events_read, later.seen_before, later.settled), (8, 8, 0), "{later:?}");
}

#[tokio::test]
async fn the_event_list_is_read_page_by_page_oldest_first_from_the_time_asked() {
    let app = spawn_app().await;
    app.webhooks_down(true).await;
    let expire_one = || async {
        let r = app
            .http
            .post(format!("{}/v1/checkout/sessions", app.sim))
            .bearer_auth(STRIPE_KEY)
            .form(&[
                ("mode", "payment"),
                ("line_items[0][price_data][currency]", "eur"),
                ("line_items[0][price_data][unit_amount]", "100"),
                ("line_items[0][price_data][product_data][name]", "Listing test"),
                ("line_items[0][quantity]", "1"),
                ("expires_at", &(Utc::now() + Duration::hours(1)).timestamp().to_string()),
                ("success_url", "https://shop.example/ok"),
            ])
            .send()
            .await
            .unwrap();
        let id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
        app.sim_control(&format!("/_sim/checkout/sessions/{id}/expire")).await["event_id"].as_str().unwrap().to_owned()
    };
    let start = Utc::now() - Duration::seconds(1);
    let mut early = Vec::new();
    for _ in 0..130 {
        early.push(expire_one().await);
    }
    // Later, on the simulator's clock.
    app.sim_control("/_sim/clock?advance_secs=600").await;
    let late = vec![expire_one().await, expire_one().await];

    let all = app.stripe().session_events_since(start).await.unwrap();
    let ids: Vec<&str> = all.iter().map(|e| e.event_id.as_str()).collect();
    let expected: Vec<&str> = early.iter().chain(&late).map(String::as_str).collect();
    assert_eq!(ids, expected, "two pages of 100 and more, oldest first");
    assert!(all.windows(2).all(|w| w[0].created <= w[1].created));
    assert!(all.iter().all(|e| matches!(e.delivery, slotguard::ports::Delivery::Session(_))));

    let recent = app.stripe().session_events_since(Utc::now() + Duration::seconds(300)).await.unwrap();
    assert_eq!(
        recent.iter().map(|e| e.event_id.as_str()).collect::<Vec<_>>(),
        late.iter().map(String::as_str).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn the_stored_cursor_moves_only_from_the_revision_read_and_never_back() {
    let app = spawn_app().await;
    let at = |minutes: i64| chrono::DateTime::from_timestamp(1_900_000_000 + minutes * 60, 0).unwrap();
    let cursor = |minutes: i64| EventCursor {
        settled_through: at(minutes),
        recent: vec![
            SettledEvent { created: at(minutes) - OVERLAP, event_id: format!("evt_{minutes}_a") },
            SettledEvent { created: at(minutes), event_id: format!("evt_{minutes}_b") },
        ],
        moved_at: at(minutes + 1),
        revision: 0,
    };
    let store = &app.store;
    assert_eq!(store.event_cursor().await.unwrap(), None);
    assert!(store.advance_event_cursor(None, &cursor(10)).await.unwrap());
    assert!(!store.advance_event_cursor(None, &cursor(20)).await.unwrap(), "written since");
    let read = store.event_cursor().await.unwrap().unwrap();
    assert_eq!(read, EventCursor { revision: 1, ..cursor(10) });

    // Two runs that read the same cursor: the first write wins, the second writes nothing.
    assert!(store.advance_event_cursor(Some(&read), &cursor(30)).await.unwrap());
    assert!(!store.advance_event_cursor(Some(&read), &cursor(40)).await.unwrap());
    let read = store.event_cursor().await.unwrap().unwrap();
    assert_eq!((read.settled_through, read.revision), (at(30), 2));
    assert!(!store.advance_event_cursor(Some(&read), &cursor(20)).await.unwrap(), "never backwards");
    assert!(store.advance_event_cursor(Some(&read), &cursor(30)).await.unwrap(), "the same time, more events");
    assert_eq!(store.event_cursor().await.unwrap().unwrap().revision, 3);
}
