//! Checkout, confirmation, late payments and refunds, against the Stripe
//! simulator speaking Stripe's HTTP API to the real async-stripe client.

use crate::helpers::*;
use crate::stripe_helpers::*;
use chrono::Utc;
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn app_with_room() -> TestApp {
    let app = spawn_app().await;
    app.put_resource("room", &open_all_day()).await;
    app
}

fn refunds_for<'a>(refunds: &'a [Value], payment_intent: &str) -> Vec<&'a Value> {
    refunds.iter().filter(|r| r["payment_intent"] == payment_intent).collect()
}

#[tokio::test]
async fn a_paid_booking_is_confirmed_without_ttl_and_queued_for_the_calendar() {
    let app = app_with_room().await;
    let c = app.reserve_and_checkout("room", hour_from_now(30), "ada@example.com").await;

    let session = app.stripe_session(&c.session_id).await;
    assert_eq!(session["client_reference_id"], c.reservation_id.as_str());
    assert_eq!(session["metadata"]["reservation_id"], c.reservation_id.as_str());
    assert_eq!(session["customer_email"], "ada@example.com");
    assert_eq!(session["amount_total"], 2500);
    assert_eq!(session["mode"], "payment");
    let session_expiry = session["expires_at"].as_i64().unwrap();
    assert!(session_expiry - Utc::now().timestamp() >= 30 * 60, "Stripe's 30-minute minimum");
    let hold = app.claim_item(&c.reservation_id).await.unwrap();
    let hold_expiry: i64 = match &hold["expires_at"] {
        aws_sdk_dynamodb::types::AttributeValue::N(n) => n.parse().unwrap(),
        other => panic!("{other:?}"),
    };
    assert!(hold_expiry > session_expiry, "the hold outlives its session");

    let page = app.http.get(&c.checkout_url).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("Pay"));

    let paid = app.pay(&c.session_id, "").await;
    assert_eq!(paid["deliveries"], json!([200]));
    assert_eq!(app.status_text(&c.reservation_id).await, "confirmed");
    let item = app.claim_item(&c.reservation_id).await.unwrap();
    assert_eq!(s(&item, "status"), "CONFIRMED");
    assert!(!item.contains_key("expires_at"), "a confirmed booking never carries the TTL attribute");
    assert_eq!(s(&item, "payment_intent"), paid["payment_intent"].as_str().unwrap());

    let jobs = app.queued_jobs().await;
    assert_eq!(jobs, vec![json!({"action": "write", "reservation_id": c.reservation_id})], "one calendar job");
    assert!(app.refunds().await.is_empty());
}

#[tokio::test]
async fn checkout_twice_returns_the_same_session() {
    let app = app_with_room().await;
    let c = app.reserve_and_checkout("room", hour_from_now(30), "ada@example.com").await;
    let (status, again) = app.checkout(&c.reservation_id).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["session_id"], c.session_id.as_str());
    assert_eq!(again["checkout_url"], c.checkout_url.as_str());
    let sessions = app.sim_get("/_sim/checkout/sessions").await;
    let sessions = sessions["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 1, "one session at Stripe");
    let key = sessions[0]["idempotency_key"].as_str().unwrap();
    let expiry = app.stripe_session(&c.session_id).await["expires_at"].as_i64().unwrap();
    assert_eq!(key, format!("checkout-{}-{expiry}", c.reservation_id), "one key per hold and fixed expiry");
}

#[tokio::test]
async fn duplicate_and_concurrent_deliveries_make_one_booking_and_no_refund() {
    let app = app_with_room().await;
    let c = app.reserve_and_checkout("room", hour_from_now(30), "ada@example.com").await;
    let paid = app.pay(&c.session_id, "deliveries=3").await;
    let deliveries: Vec<u64> = paid["deliveries"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap()).collect();
    assert_eq!(deliveries.len(), 3);
    assert!(deliveries.contains(&200), "{deliveries:?}");
    assert!(deliveries.iter().all(|d| *d == 200 || *d == 409), "duplicates are answered or deferred: {deliveries:?}");

    let event_id = paid["event_id"].as_str().unwrap();
    let again = app.sim_control(&format!("/_sim/events/{event_id}/redeliver?deliveries=10")).await;
    let statuses = again["deliveries"].as_array().unwrap();
    assert_eq!(statuses.len(), 10);
    assert!(statuses.iter().all(|d| *d == 200), "a processed event is acknowledged: {statuses:?}");

    assert_eq!(app.status_text(&c.reservation_id).await, "confirmed");
    let claims: Vec<_> = app.scan().await.into_iter().filter(|i| s(i, "kind") == "claim").collect();
    assert_eq!(claims.len(), 1);
    assert!(app.refunds().await.is_empty(), "no refund");
}

#[tokio::test]
async fn an_expired_event_after_completion_does_not_release_the_booking() {
    let app = app_with_room().await;
    let c = app.reserve_and_checkout("room", hour_from_now(30), "ada@example.com").await;
    app.pay(&c.session_id, "").await;
    let mut session = app.stripe_session(&c.session_id).await;
    session["status"] = json!("expired");
    assert_eq!(app.deliver(&event("checkout.session.expired", &session)).await, StatusCode::OK);
    assert_eq!(app.status_text(&c.reservation_id).await, "confirmed");
    assert!(app.slots("room", c.start, c.start + chrono::Duration::hours(1)).await.is_empty());
}

#[tokio::test]
async fn a_completion_after_expiry_cannot_resurrect_the_session() {
    let app = app_with_room().await;
    let c = app.reserve_and_checkout("room", hour_from_now(30), "ada@example.com").await;
    let expired = app.sim_control(&format!("/_sim/checkout/sessions/{}/expire", c.session_id)).await;
    assert_eq!(expired["deliveries"], json!([200]));
    assert_eq!(app.status_text(&c.reservation_id).await, "released");
    assert_eq!(app.slots("room", c.start, c.start + chrono::Duration::hours(1)).await.len(), 1, "slot reopened");

    // A paid completion of the same session arrives after all: the session's
    // outcome is recorded (expired), so it cannot buy the slot; its money goes back.
    let mut session = app.stripe_session(&c.session_id).await;
    session["status"] = json!("complete");
    session["payment_status"] = json!("paid");
    session["payment_intent"] = json!("pi_after_expiry");
    let (status, answer) = app.webhook_at(&event("checkout.session.completed", &session), Utc::now()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["outcome"], "needs_attention", "the simulator knows no such payment to refund: {answer}");
    assert_eq!(app.status_text(&c.reservation_id).await, "released");
    assert_eq!(app.slots("room", c.start, c.start + chrono::Duration::hours(1)).await.len(), 1, "still free");
}

#[tokio::test]
async fn a_ghost_payment_is_refunded_exactly_once_and_the_new_holder_keeps_the_slot() {
    let app = app_with_room().await;
    let nine = hour_from_now(33);
    // A holds 9:00 and starts checkout; A's hold lapses; B reserves 9:00.
    let a = app.reserve_and_checkout("room", nine, "a@example.com").await;
    app.lapse_hold(&a.reservation_id).await;
    let r = app.reserve("room", nine, "b@example.com").await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let b: Value = r.json().await.unwrap();
    let b_id = b["reservation_id"].as_str().unwrap();

    // A's payment arrives.
    let paid = app.pay(&a.session_id, "").await;
    assert_eq!(paid["deliveries"], json!([200]));
    let pi = paid["payment_intent"].as_str().unwrap();

    let item = app.claim_item(b_id).await.unwrap();
    assert_eq!(s(&item, "reservation_id"), b_id, "B keeps 9:00");
    assert_eq!(s(&item, "status"), "HELD");
    assert_eq!(app.status_text(&a.reservation_id).await, "refunded");
    let refunds = app.refunds().await;
    let mine = refunds_for(&refunds, pi);
    assert_eq!(mine.len(), 1, "A is refunded once");
    assert_eq!(mine[0]["amount"], 2500);
    assert_eq!(mine[0]["idempotency_key"], format!("refund-{}", a.session_id));

    // The same event again, and a second event about the same payment.
    let event_id = paid["event_id"].as_str().unwrap();
    app.sim_control(&format!("/_sim/events/{event_id}/redeliver?deliveries=3")).await;
    let session = app.stripe_session(&a.session_id).await;
    assert_eq!(app.deliver(&event("checkout.session.completed", &session)).await, StatusCode::OK);
    assert_eq!(refunds_for(&app.refunds().await, pi).len(), 1, "still exactly one refund");
    assert_eq!(app.status_text(&a.reservation_id).await, "refunded");
    assert_eq!(s(&app.claim_item(b_id).await.unwrap(), "reservation_id"), b_id);
    assert!(app.queued_jobs().await.is_empty(), "no calendar job for a refunded payment");
}

#[tokio::test]
async fn a_late_payment_for_a_still_free_slot_is_confirmed() {
    let app = app_with_room().await;
    let c = app.reserve_and_checkout("room", hour_from_now(30), "ada@example.com").await;
    app.lapse_hold(&c.reservation_id).await;
    assert_eq!(app.status_text(&c.reservation_id).await, "expired");
    app.pay(&c.session_id, "").await;
    assert_eq!(app.status_text(&c.reservation_id).await, "confirmed");
    assert!(app.refunds().await.is_empty());

    // And when TTL has already deleted the lapsed hold.
    let d = app.reserve_and_checkout("room", hour_from_now(31), "bob@example.com").await;
    app.sweep_hold(&d.reservation_id).await;
    app.pay(&d.session_id, "").await;
    assert_eq!(app.status_text(&d.reservation_id).await, "confirmed");
    assert_eq!(s(&app.claim_item(&d.reservation_id).await.unwrap(), "customer_name"), "Test Customer");
    assert!(app.refunds().await.is_empty());
}

#[tokio::test]
async fn a_delayed_payment_keeps_the_slot_until_it_fails() {
    let app = app_with_room().await;
    let c = app.reserve_and_checkout("room", hour_from_now(30), "ada@example.com").await;
    app.pay(&c.session_id, "async=true").await;
    assert_eq!(app.status_text(&c.reservation_id).await, "payment_pending");
    let item = app.claim_item(&c.reservation_id).await.unwrap();
    assert!(!item.contains_key("expires_at"), "a pending payment does not expire");
    let one_hour = c.start + chrono::Duration::hours(1);
    assert!(app.slots("room", c.start, one_hour).await.is_empty());
    assert_problem(app.reserve("room", c.start, "b@example.com").await, 409, "slot_taken").await;

    app.sim_control(&format!("/_sim/checkout/sessions/{}/async_payment?result=failed", c.session_id)).await;
    assert_eq!(app.status_text(&c.reservation_id).await, "released");
    assert_eq!(app.slots("room", c.start, one_hour).await.len(), 1, "the slot reopens at once");
    assert!(app.queued_jobs().await.is_empty());
}

#[tokio::test]
async fn a_delayed_payment_that_succeeds_is_confirmed() {
    let app = app_with_room().await;
    let c = app.reserve_and_checkout("room", hour_from_now(30), "ada@example.com").await;
    app.pay(&c.session_id, "async=true").await;
    app.sim_control(&format!("/_sim/checkout/sessions/{}/async_payment?result=succeeded", c.session_id)).await;
    assert_eq!(app.status_text(&c.reservation_id).await, "confirmed");
    assert_eq!(app.queued_jobs().await.len(), 1);
}

#[tokio::test]
async fn stripe_down_is_a_503_that_keeps_the_hold_and_a_retry_succeeds() {
    let app = app_with_room().await;
    let r = app.reserve("room", hour_from_now(30), "ada@example.com").await;
    let id = app.remember(&r.json().await.unwrap());

    app.sim_control("/_sim/fail?status=500&count=100").await;
    let r = app.checkout_raw(&id).await;
    assert!(r.headers().get("retry-after").is_some());
    assert_problem(r, 503, "payment_provider_unavailable").await;
    assert_eq!(app.status_text(&id).await, "held", "the hold is kept");

    app.sim_control("/_sim/fail?count=0").await;
    let (status, body) = app.checkout(&id).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let sessions = app.sim_get("/_sim/checkout/sessions").await;
    let sessions = sessions["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0]["create_responses"], 1, "one session made");
    let expiry = app.stripe_session(body["session_id"].as_str().unwrap()).await["expires_at"].as_i64().unwrap();
    assert_eq!(sessions[0]["idempotency_key"], format!("checkout-{id}-{expiry}"), "the retry used the fixed terms");
}

#[tokio::test]
async fn stripe_unreachable_is_a_503() {
    // A simulator listener that is bound but whose address the client is not
    // given: the client dials a port nothing listens on.
    let ddb = slotguard_local::dev::dynamodb_client(&dynamodb_endpoint());
    let table = format!("test-{}", uuid::Uuid::new_v4().simple());
    slotguard_local::dev::ensure_table(&ddb, &table).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app =
        spawn_app_with(slotguard::adapters::dynamo::DynamoStore::new(ddb, table), listener, "http://127.0.0.1:9").await;
    app.put_resource("room", &open_all_day()).await;
    let r = app.reserve("room", hour_from_now(30), "ada@example.com").await;
    let id = app.remember(&r.json().await.unwrap());
    let r = app.checkout_raw(&id).await;
    assert_problem(r, 503, "payment_provider_unavailable").await;
    assert_eq!(app.status_text(&id).await, "held");
}

#[tokio::test]
async fn checkout_refuses_what_is_not_a_live_hold() {
    let app = app_with_room().await;
    let c = app.reserve_and_checkout("room", hour_from_now(30), "ada@example.com").await;
    app.pay(&c.session_id, "").await;
    assert_problem(app.checkout_raw(&c.reservation_id).await, 409, "not_held").await;

    let r = app.reserve("room", hour_from_now(31), "b@example.com").await;
    let id = app.remember(&r.json().await.unwrap());
    app.lapse_hold(&id).await;
    assert_problem(app.checkout_raw(&id).await, 410, "hold_expired").await;
    let unknown = format!("rsv_room_20300101T000000_{}", "a".repeat(32));
    assert_problem(app.checkout_raw(&unknown).await, 404, "reservation_not_found").await;
}

#[tokio::test]
async fn a_calendar_queue_outage_makes_stripe_redeliver_and_the_redelivery_queues_the_job() {
    let app = app_with_room().await;
    let c = app.reserve_and_checkout("room", hour_from_now(30), "ada@example.com").await;
    let sqs = app.queue.client();
    sqs.delete_queue().queue_url(app.queue.queue_url()).send().await.unwrap();

    let paid = app.pay(&c.session_id, "").await;
    assert_eq!(paid["deliveries"], json!([503]), "the webhook fails so Stripe tries again");
    assert_eq!(app.status_text(&c.reservation_id).await, "confirmed", "the confirmation itself stands");

    let name = app.queue.queue_url().rsplit('/').next().unwrap().to_owned();
    sqs.create_queue().queue_name(name).send().await.unwrap();
    let event_id = paid["event_id"].as_str().unwrap();
    let again = app.sim_control(&format!("/_sim/events/{event_id}/redeliver")).await;
    assert_eq!(again["deliveries"], json!([200]));
    assert_eq!(app.queued_jobs().await, vec![json!({"action": "write", "reservation_id": c.reservation_id})]);
    assert!(app.refunds().await.is_empty());
}
