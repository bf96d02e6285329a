//! What DynamoDB and Stripe really answer, below the ports: each test puts
//! the real store behind [`DynamoWire`] (a proxy in front of DynamoDB Local
//! that answers some requests as the service sometimes does) or tells the
//! Stripe simulator to forget keys, and checks what a customer would see.
//!
//! | failure | what slotguard does |
//! |---|---|
//! | a transaction cancelled for a conflict | retried in the adapter, then 503; never read as "someone else won" |
//! | a commit whose answer was lost | the SDK's retry carries the same `ClientRequestToken`: answered as committed |
//! | a single-item write meeting a transaction | 503 with `Retry-After`, nothing half-done |
//! | `BatchGetItem` keys left unprocessed | asked for again |
//! | Stripe forgot a refund's idempotency key | the payment's refunds are read first; only what is owed is refunded |

use crate::busy::{Scheduler, busy_spec, calendars, ics_time, put_caldav_event, wait_until_readable};
use crate::calendar_adapters::fresh_collection;
use crate::fakes::dynamo_wire::{DynamoWire, WireFault};
use crate::helpers::*;
use chrono::{DateTime, Duration};
use reqwest::StatusCode;
use serde_json::{Value, json};
use slotguard::adapters::dynamo::DynamoStore;
use slotguard_local::dev;

/// A gateway whose store reaches DynamoDB Local through the wire proxy.
async fn app_on_the_wire() -> (TestApp, DynamoWire) {
    let wire = DynamoWire::start(&dynamodb_endpoint()).await;
    let ddb = dev::dynamodb_client(&wire.url);
    let table = format!("test-{}", uuid::Uuid::new_v4().simple());
    dev::ensure_table(&ddb, &table).await.expect("create the test table");
    let app = spawn_app_on(DynamoStore::new(ddb, table)).await;
    (app, wire)
}

/// A confirmed booking of `resource` at `start`.
async fn paid(app: &TestApp, resource: &str, start: DateTime<chrono::Utc>, email: &str) -> String {
    let c = app.reserve_and_checkout(resource, start, email).await;
    app.pay(&c.session_id, "").await;
    assert_eq!(app.status_text(&c.reservation_id).await, "confirmed");
    c.reservation_id
}

async fn cancel(app: &TestApp, id: &str) -> reqwest::Response {
    let req = app.http.post(app.url(&format!("/v1/bookings/{id}/cancel")));
    app.as_holder(id, req).send().await.unwrap()
}

/// The cancel's final transaction is the one writing the `cancelled` record.
const CANCELLED_RECORD: &str = "\"cancelled\"";

#[tokio::test]
async fn a_cancel_whose_final_transaction_meets_a_conflict_finishes_and_frees_the_slot() {
    let (app, wire) = app_on_the_wire().await;
    app.put_resource("room", &open_all_day()).await;
    let start = hour_from_now(30);
    let id = paid(&app, "room", start, "ada@example.com").await;

    wire.inject("TransactWriteItems", Some(CANCELLED_RECORD), WireFault::Conflict, 1);
    let r = cancel(&app, &id).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(wire.faulted().len(), 1, "the conflict was answered");
    let body: Value = r.json().await.unwrap();
    assert_eq!((body["status"].as_str(), body["refunded"].as_i64()), (Some("cancelled"), Some(2500)));
    assert_eq!(app.status_text(&id).await, "cancelled", "a 200 means cancelled, not stuck cancelling");
    assert_eq!(app.slots("room", start, start + Duration::hours(1)).await, [rfc3339(start)], "offered again");
    assert_eq!(app.reserve("room", start, "bob@example.com").await.status(), 201, "and bookable");
    assert_eq!(app.refunds().await.len(), 1);
}

#[tokio::test]
async fn a_cancel_meeting_conflicts_past_the_budget_is_a_503_and_its_retry_finishes_once() {
    let (app, wire) = app_on_the_wire().await;
    app.put_resource("room", &open_all_day()).await;
    let start = hour_from_now(30);
    let id = paid(&app, "room", start, "ada@example.com").await;

    wire.inject("TransactWriteItems", Some(CANCELLED_RECORD), WireFault::Conflict, 100);
    let r = cancel(&app, &id).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(app.status_text(&id).await, "cancelling", "the slot stays taken until the cancel finishes");
    wire.pass_through();

    let r = cancel(&app, &id).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(app.status_text(&id).await, "cancelled");
    assert_eq!(app.refunds().await.len(), 1, "one refund for both calls");
}

#[tokio::test]
async fn a_hold_whose_commit_answer_is_lost_is_answered_as_the_hold_it_made() {
    let (app, wire) = app_on_the_wire().await;
    app.put_resource("room", &open_all_day()).await;
    let start = hour_from_now(30);

    // No Idempotency-Key: only the transaction's own token can tell the retry
    // that its first attempt committed.
    wire.inject("TransactWriteItems", None, WireFault::LoseAnswer, 1);
    let r = app.reserve("room", start, "ada@example.com").await;
    assert_eq!(r.status(), StatusCode::CREATED, "a committed hold is a 201");
    let id = app.remember(&r.json().await.unwrap());
    let faulted: Vec<_> = wire.faulted().into_iter().map(|f| (f.operation, f.fault)).collect();
    assert_eq!(faulted, [("TransactWriteItems".to_owned(), WireFault::LoseAnswer)]);
    assert!(wire.seen("TransactWriteItems") >= 2, "the SDK sent it again");
    assert_eq!(app.status_text(&id).await, "held");
    let holds = app.live_holds().await;
    assert_eq!(holds.len(), 1, "one hold, the customer's");
    assert_eq!(s(&holds[0], "reservation_id"), id);
    let (status, _) = app.checkout(&id).await;
    assert_eq!(status, StatusCode::CREATED, "the hold is the customer's to pay");
}

#[tokio::test]
async fn a_reschedule_whose_commit_answer_is_lost_is_a_200_and_queues_the_calendar_update() {
    let (app, wire) = app_on_the_wire().await;
    app.put_resource("room", &open_all_day()).await;
    let (start, to) = (hour_from_now(30), hour_from_now(33));
    let id = paid(&app, "room", start, "ada@example.com").await;
    let jobs_before = app.queued_jobs().await.len();

    wire.inject("TransactWriteItems", None, WireFault::LoseAnswer, 1);
    let req = app.http.post(app.url(&format!("/v1/bookings/{id}/reschedule"))).json(&json!({"start": rfc3339(to)}));
    let r = app.as_holder(&id, req).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "the move happened: {}", r.text().await.unwrap());
    assert_eq!(wire.faulted().len(), 1);
    let (_, status) = app.status_of(&id).await;
    assert_eq!(status["start"], rfc3339(to));
    let jobs = app.queued_jobs().await;
    assert_eq!(jobs.len(), jobs_before + 1, "the event is moved: {jobs:?}");
    assert!(jobs.iter().any(|j| j["action"] == "write" && j["reservation_id"] == id.as_str()));
}

#[tokio::test]
async fn a_single_item_write_meeting_a_transaction_is_a_503_with_retry_after_and_changes_nothing() {
    let (app, wire) = app_on_the_wire().await;
    app.put_resource("room", &open_all_day()).await;
    let id = paid(&app, "room", hour_from_now(30), "ada@example.com").await;

    // The cancel's first write (CONFIRMED -> CANCELLING) meets a transaction on
    // the booking item every time the SDK tries.
    wire.inject("UpdateItem", Some("cancelling"), WireFault::Conflict, 10);
    let r = cancel(&app, &id).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.headers().contains_key("retry-after"));
    assert_problem(r, 503, "service_unavailable").await;
    assert_eq!(app.status_text(&id).await, "confirmed");
    assert!(app.refunds().await.is_empty(), "no refund before the intent is recorded");
    wire.pass_through();
    assert_eq!(cancel(&app, &id).await.status(), StatusCode::OK);
    assert_eq!(app.refunds().await.len(), 1);
}

#[tokio::test]
async fn a_webhook_whose_batch_read_comes_back_partly_unprocessed_still_confirms() {
    let (app, wire) = app_on_the_wire().await;
    app.put_resource("room", &open_all_day()).await;
    let c = app.reserve_and_checkout("room", hour_from_now(30), "ada@example.com").await;
    wire.inject("BatchGetItem", None, WireFault::Unprocessed, 1);
    app.pay(&c.session_id, "").await;
    assert_eq!(wire.faulted().len(), 1);
    assert!(wire.seen("BatchGetItem") >= 2, "the unprocessed keys were asked for again");
    assert_eq!(app.status_text(&c.reservation_id).await, "confirmed");
}

/// A type refunding half after `free_until_hours` 24.
fn half_refund_late() -> Value {
    let mut spec = open_all_day();
    spec.as_object_mut().unwrap().remove("slot_minutes");
    spec.as_object_mut().unwrap().remove("price");
    spec["booking_types"] = json!([{
        "id": "session",
        "name": "Session",
        "durations": [{ "minutes": 60, "price": { "amount": 3000, "currency": "eur" } }],
        "start_interval_minutes": 60,
        "cancellation": { "free_until_hours": 24, "late": { "refund": { "percent": 50 } } }
    }]);
    spec
}

#[tokio::test]
async fn a_late_cancel_retried_after_stripe_forgot_its_key_refunds_the_share_once() {
    let (app, wire) = app_on_the_wire().await;
    app.put_resource("room", &half_refund_late()).await;
    // Inside the late window: half of 3000.
    let id = paid(&app, "room", hour_from_now(10), "ada@example.com").await;

    // The refund goes through at Stripe; the write that finishes the cancel
    // is throttled past the SDK's attempts, again and again.
    wire.inject("TransactWriteItems", Some(CANCELLED_RECORD), WireFault::Throttle, 1000);
    for _ in 0..3 {
        assert_eq!(cancel(&app, &id).await.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(app.status_text(&id).await, "cancelling");
        // A day later Stripe has forgotten every key.
        app.sim_control("/_sim/idempotency/forget").await;
    }
    wire.pass_through();
    let r = cancel(&app, &id).await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["refunded"].as_i64(), Some(1500));
    let refunds = app.refunds().await;
    let total: i64 = refunds.iter().map(|r| r["amount"].as_i64().unwrap()).sum();
    assert_eq!((refunds.len(), total), (1, 1500), "one refund of the policy's share: {refunds:?}");
    assert_eq!(refunds[0]["metadata"]["slotguard_step"], format!("cancel-{id}"));
    assert_eq!(app.status_text(&id).await, "cancelled");
}

#[tokio::test]
async fn a_move_onto_the_hosts_busy_time_is_refused_like_a_hold() {
    let app = spawn_app().await;
    let collection = fresh_collection().await;
    app.put_resource("room", &busy_spec(json!({ "type": "caldav", "url": collection }), "UTC")).await;
    let _scheduler = Scheduler::start(&app.store, calendars(None));
    wait_until_readable(&app, "room").await;
    let (start, busy, free) = (hour_from_now(30), hour_from_now(34), hour_from_now(36));
    let id = paid(&app, "room", start, "ada@example.com").await;

    let props =
        format!("DTSTART:{}\nDTEND:{}", ics_time(busy + Duration::minutes(15)), ics_time(busy + Duration::minutes(45)));
    put_caldav_event(&collection, "dentist", &props).await;
    crate::busy::wait_until_gone(&app, "room", busy, crate::busy::deadline()).await;

    let reschedule = |to: DateTime<chrono::Utc>| {
        let req = app.http.post(app.url(&format!("/v1/bookings/{id}/reschedule"))).json(&json!({"start": rfc3339(to)}));
        app.as_holder(&id, req).send()
    };
    assert_problem(reschedule(busy).await.unwrap(), 409, "host_busy").await;
    let (_, status) = app.status_of(&id).await;
    assert_eq!(status["start"], rfc3339(start), "the refused move changed nothing");
    let by_host = app
        .http
        .post(app.url(&format!("/v1/bookings/{id}/reschedule")))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"start": rfc3339(busy)}));
    assert_problem(by_host.send().await.unwrap(), 409, "host_busy").await;
    assert_eq!(reschedule(free).await.unwrap().status(), StatusCode::OK, "a free time is fine");
}
