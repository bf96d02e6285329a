//! Orders of events the real world produces, one test each: sessions slotguard
//! did not create, a second payment for one reservation, Stripe's deliveries
//! out of order, a late payment after the slot started, refunds Stripe
//! refuses, retries after crashes, and calendars shared by two resources or
//! slow at the wrong moment. Each of these lost money or blocked a slot
//! before the fix it guards.

use crate::calendar_adapters::{count_events, fresh_collection};
use crate::helpers::*;
use crate::stripe_helpers::*;
use chrono::{DateTime, Duration, Utc};
use lambda_http::RequestExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use slotguard::adapters::caldav::{CalDavCalendar, CalDavConfig};
use slotguard::adapters::sqs::SqsDeadLetters;
use slotguard::adapters::stripe::{StripePayments, WebhookVerifier};
use slotguard::api::stripe_webhook::{WebhookDeps, stripe_webhook_at};
use slotguard::domain::{CalendarTarget, ReservationId};
use slotguard::jobs::calendar_writer::{RetryPolicy, WriterDeps, write_batch};
use slotguard::ports::AttentionStore;
use slotguard::ports::{BookingEvent, Calendar, CalendarError, DeleteOutcome, FoundEvent, WriteOutcome};
use slotguard_local::poller;
use std::sync::Arc;
use tokio::sync::Notify;

async fn app_with_room() -> TestApp {
    let app = spawn_app().await;
    app.put_resource("room", &open_all_day()).await;
    app
}

fn refunds_for(refunds: &[Value], payment_intent: &str) -> Vec<Value> {
    refunds.iter().filter(|r| r["payment_intent"] == payment_intent).cloned().collect()
}

impl TestApp {
    /// A Checkout Session made directly at "Stripe", not through slotguard
    /// (a Payment Link, another integration on the same account), naming
    /// `reservation_id` in its metadata and client reference.
    pub(crate) async fn foreign_session(&self, reservation_id: &str, amount: i64) -> String {
        let form = [
            ("mode", "payment".to_owned()),
            ("line_items[0][price_data][currency]", "eur".to_owned()),
            ("line_items[0][price_data][unit_amount]", amount.to_string()),
            ("line_items[0][price_data][product_data][name]", "Not slotguard".to_owned()),
            ("line_items[0][quantity]", "1".to_owned()),
            ("client_reference_id", reservation_id.to_owned()),
            ("metadata[reservation_id]", reservation_id.to_owned()),
            ("success_url", "https://elsewhere.example/ok".to_owned()),
            ("cancel_url", "https://elsewhere.example/no".to_owned()),
        ];
        let r = self
            .http
            .post(format!("{}/v1/checkout/sessions", self.sim))
            .bearer_auth(STRIPE_KEY)
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned()
    }

    /// The handlers' own view of the webhook, called in-process at `now`
    /// (the signature is still checked against the real clock).
    pub(crate) async fn webhook_at(&self, body: &str, now: DateTime<Utc>) -> (u16, Value) {
        let payments = StripePayments::new(STRIPE_KEY, Some(&self.sim)).unwrap();
        let verifier = WebhookVerifier::new(WEBHOOK_SECRET);
        let deps = WebhookDeps { store: &self.store, payments: &payments, calendar: &self.queue, verifier: &verifier };
        let sig = slotguard::adapters::stripe::sign(body, WEBHOOK_SECRET, Utc::now().timestamp());
        let req = lambda_http::http::Request::builder()
            .method("POST")
            .uri("/webhooks/stripe")
            .header("content-type", "application/json")
            .header("stripe-signature", sig)
            .body(lambda_http::Body::Text(body.to_owned()))
            .unwrap()
            .with_path_parameters(std::collections::HashMap::<String, String>::new());
        let response = stripe_webhook_at(deps, req, now).await;
        let status = response.status().as_u16();
        (status, serde_json::from_slice(response.body().as_ref()).unwrap())
    }

    /// Cancels a booking with the admin token.
    pub(crate) async fn cancel_as_admin(&self, reservation_id: &str) -> reqwest::Response {
        let url = self.url(&format!("/v1/bookings/{reservation_id}/cancel"));
        self.http.post(url).bearer_auth(ADMIN_TOKEN).send().await.unwrap()
    }

    /// Checks out with `body` as the holder of the reservation's secret.
    pub(crate) async fn checkout_with(&self, reservation_id: &str, body: Value) -> reqwest::Response {
        let req = self.http.post(self.url(&format!("/v1/reservations/{reservation_id}/checkout")));
        self.as_holder(reservation_id, req).json(&body).send().await.unwrap()
    }
}

// --- The four sequences of the correctness issue -------------------------

#[tokio::test]
async fn a_session_created_outside_slotguard_never_confirms_and_is_refunded_once() {
    let app = app_with_room().await;
    let c = app.reserve_and_checkout("room", hour_from_now(30), "ada@example.com").await;
    let foreign = app.foreign_session(&c.reservation_id, 100).await;
    let paid = app.pay(&foreign, "").await;
    assert_eq!(paid["deliveries"], json!([200]));
    let pi = paid["payment_intent"].as_str().unwrap();

    assert_eq!(app.status_text(&c.reservation_id).await, "held", "1.00 did not buy a 25.00 booking");
    let refunds = refunds_for(&app.refunds().await, pi);
    assert_eq!(refunds.len(), 1, "the foreign payment is refunded");
    assert_eq!(refunds[0]["amount"], 100, "in full");
    assert_eq!(refunds[0]["idempotency_key"], format!("refund-{foreign}"));
    let event_id = paid["event_id"].as_str().unwrap();
    app.sim_control(&format!("/_sim/events/{event_id}/redeliver?deliveries=3")).await;
    assert_eq!(refunds_for(&app.refunds().await, pi).len(), 1, "exactly once");
    assert!(app.queued_jobs().await.is_empty(), "no calendar job");

    // The reservation's own session still works.
    let own = app.pay(&c.session_id, "").await;
    assert_eq!(app.status_text(&c.reservation_id).await, "confirmed");
    assert!(refunds_for(&app.refunds().await, own["payment_intent"].as_str().unwrap()).is_empty());
}

#[tokio::test]
async fn a_payment_in_the_customers_currency_through_adaptive_pricing_is_the_reservations_own() {
    let app = app_with_room().await;
    let c = app.reserve_and_checkout("room", hour_from_now(30), "ada@example.com").await;
    app.pay(&c.session_id, "deliveries=0").await;
    let mut session = app.stripe_session(&c.session_id).await;
    // Stripe localised the price: 25.00 EUR shown and charged as 27.13 USD.
    session["currency_conversion"] =
        json!({ "amount_subtotal": 2500, "amount_total": 2500, "fx_rate": "1.0852", "source_currency": "eur" });
    session["amount_total"] = json!(2713);
    session["currency"] = json!("usd");
    assert_eq!(app.deliver(&event("checkout.session.completed", &session)).await, StatusCode::OK);
    assert_eq!(app.status_text(&c.reservation_id).await, "confirmed");
    assert!(app.refunds().await.is_empty());

    // The same conversion for another amount than the reservation's is not its payment.
    let d = app.reserve_and_checkout("room", hour_from_now(31), "bob@example.com").await;
    let paid = app.pay(&d.session_id, "deliveries=0").await;
    let mut session = app.stripe_session(&d.session_id).await;
    session["currency_conversion"] =
        json!({ "amount_subtotal": 100, "amount_total": 100, "fx_rate": "1.0852", "source_currency": "eur" });
    session["currency"] = json!("usd");
    assert_eq!(app.deliver(&event("checkout.session.completed", &session)).await, StatusCode::OK);
    assert_eq!(app.status_text(&d.reservation_id).await, "held", "not bought");
    assert_eq!(refunds_for(&app.refunds().await, paid["payment_intent"].as_str().unwrap()).len(), 1, "returned");
}

#[tokio::test]
async fn a_second_paid_session_for_a_confirmed_reservation_is_refunded_not_kept() {
    let app = app_with_room().await;
    let c = app.reserve_and_checkout("room", hour_from_now(30), "ada@example.com").await;
    let first = app.pay(&c.session_id, "").await;
    assert_eq!(app.status_text(&c.reservation_id).await, "confirmed");

    // Same amount, same currency, another session naming the reservation.
    let second = app.foreign_session(&c.reservation_id, 2500).await;
    let paid = app.pay(&second, "").await;
    assert_eq!(paid["deliveries"], json!([200]));
    let refunds = app.refunds().await;
    assert_eq!(refunds_for(&refunds, paid["payment_intent"].as_str().unwrap()).len(), 1, "the second is returned");
    assert!(refunds_for(&refunds, first["payment_intent"].as_str().unwrap()).is_empty(), "the first bought it");
    assert_eq!(app.status_text(&c.reservation_id).await, "confirmed");
    assert_eq!(app.queued_jobs().await.len(), 1, "one calendar job, from the first");
}

#[tokio::test]
async fn an_async_failure_delivered_before_the_unpaid_completion_frees_the_slot_for_good() {
    let app = app_with_room().await;
    let c = app.reserve_and_checkout("room", hour_from_now(30), "ada@example.com").await;
    // At Stripe: completed (unpaid), then the delayed payment fails; neither delivered yet.
    let completed = app.pay(&c.session_id, "async=true&deliveries=0").await;
    let failed = app
        .sim_control(&format!("/_sim/checkout/sessions/{}/async_payment?result=failed&deliveries=0", c.session_id))
        .await;
    // Delivered in the other order.
    for event in [&failed, &completed] {
        let id = event["event_id"].as_str().unwrap();
        assert_eq!(app.sim_control(&format!("/_sim/events/{id}/redeliver")).await["deliveries"], json!([200]));
    }
    assert_eq!(app.status_text(&c.reservation_id).await, "released", "not payment_pending forever");
    let r = app.reserve("room", c.start, "b@example.com").await;
    assert_eq!(r.status(), StatusCode::CREATED, "the slot is free again");
    assert!(app.refunds().await.is_empty(), "nothing was charged, nothing refunded");
}

type Hook = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// Keeps its `put_event` waiting until released, and runs a hook before
/// `list_events`: a calendar slow or listed at exactly the wrong moment.
struct SlowCalendar {
    inner: CalDavCalendar,
    hold_puts: bool,
    put_started: Notify,
    release_put: Notify,
    before_list: tokio::sync::Mutex<Option<Hook>>,
}

impl SlowCalendar {
    fn new(hold_puts: bool) -> Self {
        let config = CalDavConfig::default()
            .with_timeout(std::time::Duration::from_secs(2))
            .with_outbound(slotguard::adapters::outbound::OutboundPolicy::local());
        Self {
            inner: CalDavCalendar::new(config).unwrap(),
            hold_puts,
            put_started: Notify::new(),
            release_put: Notify::new(),
            before_list: tokio::sync::Mutex::new(None),
        }
    }
}

impl Calendar for SlowCalendar {
    async fn put_event(&self, target: &CalendarTarget, event: &BookingEvent) -> Result<WriteOutcome, CalendarError> {
        if self.hold_puts {
            self.put_started.notify_one();
            self.release_put.notified().await;
        }
        self.inner.put_event(target, event).await
    }

    async fn delete_event(&self, target: &CalendarTarget, id: &ReservationId) -> Result<DeleteOutcome, CalendarError> {
        self.inner.delete_event(target, id).await
    }

    async fn list_events(
        &self,
        target: &CalendarTarget,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<FoundEvent>, CalendarError> {
        if let Some(hook) = self.before_list.lock().await.take() {
            hook.await;
        }
        self.inner.list_events(target, from, to).await
    }
}

fn fast_policy() -> RetryPolicy {
    RetryPolicy {
        base: std::time::Duration::from_millis(10),
        cap: std::time::Duration::from_millis(40),
        attempt_budget: std::time::Duration::ZERO,
        max_receives: slotguard_local::dev::MAX_RECEIVES,
    }
}

/// Runs the calendar writer over `calendar` until the app's queue is empty.
async fn drain<C: Calendar>(app: &TestApp, calendar: &C) {
    let dead_letters = SqsDeadLetters::new(app.queue.client().clone(), app.dlq_url.clone());
    let deps = WriterDeps { store: &app.store, calendar, dead_letters: &dead_letters, policy: fast_policy() };
    let mut idle = 0;
    for _ in 0..30 {
        let handler =
            |event| write_batch(&deps, event, tokio::time::Instant::now() + std::time::Duration::from_secs(2));
        let n = poller::poll_once(app.queue.client(), app.queue.queue_url(), handler).await.unwrap();
        idle = if n == 0 { idle + 1 } else { 0 };
        if idle >= 2 {
            return;
        }
    }
    panic!("the calendar queue did not drain");
}

async fn put_caldav_resource(app: &TestApp, id: &str, collection: &str, price: i64) {
    let mut spec = open_all_day();
    spec["price"]["amount"] = json!(price);
    spec["calendar"] = json!({ "type": "caldav", "url": collection });
    app.put_resource(id, &spec).await;
}

#[tokio::test]
async fn reconcile_leaves_the_events_of_other_resources_on_a_shared_calendar_alone() {
    let app = spawn_app().await;
    let collection = fresh_collection().await;
    put_caldav_resource(&app, "room-a", &collection, 2500).await;
    put_caldav_resource(&app, "room-b", &collection, 4000).await;
    let mut ids = vec![];
    for (resource, hours) in [("room-a", 30), ("room-b", 31)] {
        let c = app.reserve_and_checkout(resource, hour_from_now(hours), "ada@example.com").await;
        app.pay(&c.session_id, "").await;
        ids.push(c.reservation_id);
    }
    let calendar = SlowCalendar::new(false);
    drain(&app, &calendar).await;
    assert_eq!(count_events(&collection).await, 2);

    let calendars = slotguard::adapters::calendars::Calendars::new(calendar.inner.clone(), None);
    let now = Utc::now();
    let report =
        slotguard::jobs::reconcile::reconcile(&app.store, &calendars, &app.queue, now, now + Duration::days(3))
            .await
            .unwrap();
    assert!(report.orphans_removed.is_empty() && report.missing.is_empty(), "{report:?}");
    drain(&app, &calendar).await;
    assert_eq!(count_events(&collection).await, 2, "both bookings keep their events");
    for id in &ids {
        assert_eq!(app.status_text(id).await, "confirmed");
    }
}

// --- The rest of the family ---------------------------------------------

#[tokio::test]
async fn reconcile_keeps_the_event_of_a_booking_confirmed_while_it_runs() {
    let app = spawn_app().await;
    let collection = fresh_collection().await;
    put_caldav_resource(&app, "room", &collection, 2500).await;
    let c = app.reserve_and_checkout("room", hour_from_now(30), "ada@example.com").await;

    // Reconcile reads the bookings (this one is only held), then, before it
    // lists the calendar, the customer pays and the writer puts the event.
    let calendar = SlowCalendar::new(false);
    let (http, sim, session) = (app.http.clone(), app.sim.clone(), c.session_id.clone());
    let (store, queue, dlq) = (app.store.clone(), app.queue.clone(), app.dlq_url.clone());
    *calendar.before_list.lock().await = Some(Box::pin(async move {
        let r = http.post(format!("{sim}/_sim/checkout/sessions/{session}/complete")).send().await.unwrap();
        assert!(r.status().is_success());
        let writer_calendar = SlowCalendar::new(false);
        let dead_letters = SqsDeadLetters::new(queue.client().clone(), dlq);
        let deps = WriterDeps {
            store: &store,
            calendar: &writer_calendar,
            dead_letters: &dead_letters,
            policy: fast_policy(),
        };
        let handler =
            |event| write_batch(&deps, event, tokio::time::Instant::now() + std::time::Duration::from_secs(2));
        assert_eq!(poller::poll_once(queue.client(), queue.queue_url(), handler).await.unwrap(), 1);
    }));
    let now = Utc::now();
    let report = slotguard::jobs::reconcile::reconcile(&app.store, &calendar, &app.queue, now, now + Duration::days(3))
        .await
        .unwrap();
    assert!(report.orphans_removed.is_empty(), "{report:?}");
    assert_eq!(app.status_text(&c.reservation_id).await, "confirmed");
    assert_eq!(count_events(&collection).await, 1, "the fresh event survives");
}

#[tokio::test]
async fn a_cancel_racing_a_slow_calendar_write_leaves_no_event() {
    let app = spawn_app().await;
    let collection = fresh_collection().await;
    put_caldav_resource(&app, "room", &collection, 2500).await;
    let c = app.reserve_and_checkout("room", hour_from_now(30), "ada@example.com").await;
    app.pay(&c.session_id, "").await;
    let token = app.secret_of(&c.reservation_id).unwrap();

    // The writer reads the booking (confirmed) and stalls in the calendar write.
    let slow = Arc::new(SlowCalendar::new(true));
    let dead_letters = SqsDeadLetters::new(app.queue.client().clone(), app.dlq_url.clone());
    let message = app.queue.client().receive_message().queue_url(app.queue.queue_url()).send().await.unwrap();
    let message = message.messages()[0].clone();
    let writer = {
        let (app_store, slow) = (app.store.clone(), slow.clone());
        let event = sqs_event(message.body().unwrap());
        tokio::spawn(async move {
            let deps = WriterDeps {
                store: &app_store,
                calendar: slow.as_ref(),
                dead_letters: &dead_letters,
                policy: fast_policy(),
            };
            write_batch(&deps, event, tokio::time::Instant::now() + std::time::Duration::from_secs(5)).await
        })
    };
    slow.put_started.notified().await;

    // Meanwhile the customer cancels, and the removal job runs first.
    let r = app
        .http
        .post(app.url(&format!("/v1/bookings/{}/cancel", c.reservation_id)))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    app.queue
        .client()
        .delete_message()
        .queue_url(app.queue.queue_url())
        .receipt_handle(message.receipt_handle().unwrap())
        .send()
        .await
        .unwrap();
    drain(&app, &SlowCalendar::new(false)).await;

    // Then the slow write lands.
    slow.release_put.notify_one();
    let response = writer.await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(count_events(&collection).await, 0, "no event for a cancelled booking");
    assert_eq!(app.status_text(&c.reservation_id).await, "cancelled");
}

fn sqs_event(body: &str) -> aws_lambda_events::event::sqs::SqsEvent {
    let mut message = aws_lambda_events::event::sqs::SqsMessage::default();
    message.message_id = Some("m-1".into());
    message.body = Some(body.to_owned());
    message.attributes.insert("ApproximateReceiveCount".into(), "1".into());
    let mut event = aws_lambda_events::event::sqs::SqsEvent::default();
    event.records = vec![message];
    event
}

#[tokio::test]
async fn an_unreadable_checkout_session_event_is_read_leniently_or_retried_never_dropped() {
    let app = app_with_room().await;
    let c = app.reserve_and_checkout("room", hour_from_now(30), "ada@example.com").await;
    let paid = app.pay(&c.session_id, "deliveries=0").await;
    let mut session = app.stripe_session(&c.session_id).await;
    assert_eq!(session["payment_status"], "paid");

    // A payment status this client version does not know: 5xx, nothing written.
    let mut unknown = session.clone();
    unknown["payment_status"] = json!("paid_in_installments");
    let before = app.scan().await;
    let r = app.post_webhook(&event("checkout.session.completed", &unknown), None).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST, "unsigned is still refused");
    let body = event("checkout.session.completed", &unknown);
    let sig = slotguard::adapters::stripe::sign(&body, WEBHOOK_SECRET, Utc::now().timestamp());
    assert_problem(app.post_webhook(&body, Some(&sig)).await, 503, "unreadable_event").await;
    assert_eq!(app.scan().await, before, "nothing written");

    // A required field missing for the typed client: the booking's fields are still there.
    session.as_object_mut().unwrap().remove("mode");
    session.as_object_mut().unwrap().remove("created");
    session["payment_intent"] = paid["payment_intent"].clone();
    assert_eq!(app.deliver(&event("checkout.session.completed", &session)).await, StatusCode::OK);
    assert_eq!(app.status_text(&c.reservation_id).await, "confirmed");
    assert!(app.refunds().await.is_empty());
}

#[tokio::test]
async fn a_reserve_retried_after_a_lost_answer_gets_its_own_hold_back_and_a_refused_one_burns_no_key() {
    let app = app_with_room().await;
    let body = TestApp::reserve_body("room", hour_from_now(30), "ada@example.com");
    let send = |key: &'static str| {
        app.http.post(app.url("/v1/reservations")).header("idempotency-key", key).json(&body).send()
    };
    let record = |key: &str| {
        let key = slotguard::adapters::dynamo::items::idempotency_key(&slotguard::api::idempotency::record_key(
            "reserve", key,
        ));
        app.store.client().get_item().table_name(app.store.table()).set_key(Some(key)).consistent_read(true).send()
    };
    let first: Value = send("crash-me").await.unwrap().json().await.unwrap();
    // The answer was lost after the commit (the Lambda timed out, the client
    // gave up): the key's record was written in the hold's own transaction.
    assert!(record("crash-me").await.unwrap().item().is_some(), "the record exists with the hold");
    let r = send("crash-me").await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED, "not 409 slot_taken by its own hold");
    assert_eq!(r.headers()["idempotent-replayed"], "true");
    let again: Value = r.json().await.unwrap();
    assert_eq!(again, first);
    assert_eq!(app.live_holds().await.len(), 1);
    // Another customer's key meets a taken slot, and is not burnt by the refusal.
    assert_problem(send("someone-else").await.unwrap(), 409, "slot_taken").await;
    assert!(record("someone-else").await.unwrap().item().is_none(), "a refused hold writes no record");
}

#[tokio::test]
async fn checkout_urls_are_fixed_by_the_first_call() {
    let app = app_with_room().await;
    let r = app.reserve("room", hour_from_now(30), "ada@example.com").await;
    let id = app.remember(&r.json().await.unwrap());
    let a = json!({ "success_url": "https://shop.example/a/ok", "cancel_url": "https://shop.example/a/no" });
    let b = json!({ "success_url": "https://shop.example/b/ok", "cancel_url": "https://shop.example/b/no" });
    let r = app.checkout_with(&id, a.clone()).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let session_id = r.json::<Value>().await.unwrap()["session_id"].as_str().unwrap().to_owned();

    assert_problem(app.checkout_with(&id, b).await, 409, "checkout_urls_differ").await;
    for same in [a, json!({})] {
        let r = app.checkout_with(&id, same).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.json::<Value>().await.unwrap()["session_id"], session_id.as_str());
    }
    let sessions = app.sim_get("/_sim/checkout/sessions").await;
    assert_eq!(sessions["sessions"].as_array().unwrap().len(), 1);
    assert_eq!(app.stripe_session(&session_id).await["success_url"], "https://shop.example/a/ok");
}

#[tokio::test]
async fn no_payment_required_buys_nothing_and_a_booking_without_payment_can_be_cancelled() {
    let app = app_with_room().await;
    let c = app.reserve_and_checkout("room", hour_from_now(30), "ada@example.com").await;
    let mut session = app.stripe_session(&c.session_id).await;
    session["status"] = json!("complete");
    session["payment_status"] = json!("no_payment_required");
    assert_eq!(app.deliver(&event("checkout.session.completed", &session)).await, StatusCode::OK);
    assert_eq!(app.status_text(&c.reservation_id).await, "held", "nothing was paid");

    // A paid completion that names no payment intent still confirms; it can
    // then be cancelled (nothing to refund) instead of failing forever.
    session["payment_status"] = json!("paid");
    session["payment_intent"] = Value::Null;
    assert_eq!(app.deliver(&event("checkout.session.completed", &session)).await, StatusCode::OK);
    assert_eq!(app.status_text(&c.reservation_id).await, "confirmed");
    let r = app.cancel_as_admin(&c.reservation_id).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(app.status_text(&c.reservation_id).await, "cancelled");
    assert!(app.refunds().await.is_empty());
}

#[tokio::test]
async fn a_payment_arriving_after_the_slot_started_is_refunded_not_confirmed() {
    let app = app_with_room().await;
    let c = app.reserve_and_checkout("room", hour_from_now(30), "ada@example.com").await;
    let paid = app.pay(&c.session_id, "deliveries=0").await;
    let session = app.stripe_session(&c.session_id).await;
    let body = event("checkout.session.completed", &session);
    // Delivered (Stripe retries for days) after the slot's start.
    let (status, answer) = app.webhook_at(&body, c.start + Duration::minutes(10)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["outcome"], "refunded");
    assert_ne!(app.status_text(&c.reservation_id).await, "confirmed");
    let refunds = refunds_for(&app.refunds().await, paid["payment_intent"].as_str().unwrap());
    assert_eq!(refunds.len(), 1);
    assert_eq!(refunds[0]["metadata"]["cause"], "slot_started");
}

#[tokio::test]
async fn a_refund_stripe_refuses_goes_to_the_operator_queue_instead_of_failing_for_days() {
    let app = app_with_room().await;
    let nine = hour_from_now(33);
    let a = app.reserve_and_checkout("room", nine, "a@example.com").await;
    app.lapse_hold(&a.reservation_id).await;
    assert_eq!(app.reserve("room", nine, "b@example.com").await.status(), StatusCode::CREATED);

    // A pays after B took the slot; Stripe refuses the refund (e.g. a disputed charge).
    app.sim_control("/_sim/fail?status=400&count=1").await;
    let paid = app.pay(&a.session_id, "").await;
    assert_eq!(paid["deliveries"], json!([200]), "acknowledged: retrying would not change Stripe's mind");
    let open = app.store.list_attention().await.unwrap();
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0].kind, "refund_rejected");
    assert_eq!(open[0].reference, format!("refund-{}", a.session_id));
    assert_eq!(open[0].reservation_id.as_ref().map(|r| r.as_str()), Some(a.reservation_id.as_str()));
}

#[tokio::test]
async fn a_cancel_whose_payment_is_already_refunded_finishes() {
    let app = app_with_room().await;
    let c = app.reserve_and_checkout("room", hour_from_now(30), "ada@example.com").await;
    let paid = app.pay(&c.session_id, "").await;
    let pi = paid["payment_intent"].as_str().unwrap();
    // Refunded already, under a key Stripe no longer remembers (or by hand in the Dashboard).
    let r = app
        .http
        .post(format!("{}/v1/refunds", app.sim))
        .bearer_auth(STRIPE_KEY)
        .form(&[("payment_intent", pi)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = app.cancel_as_admin(&c.reservation_id).await;
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    assert_eq!(app.status_text(&c.reservation_id).await, "cancelled");
    assert_eq!(refunds_for(&app.refunds().await, pi).len(), 1, "no second refund");
}

/// The context of one op whose n-th port call (through `Faulty` adapters,
/// within `OP.scope`) gets the n-th decision of `script`.
fn scripted_op(script: Vec<crate::harness::faults::Decision>) -> Arc<crate::harness::faults::OpCtx> {
    parkable_op(script).0
}

/// [`scripted_op`], with the channel on which the op reports where it parks.
fn parkable_op(
    script: Vec<crate::harness::faults::Decision>,
) -> (Arc<crate::harness::faults::OpCtx>, tokio::sync::mpsc::UnboundedReceiver<crate::harness::sched::Signal>) {
    use crate::harness::faults::{Ctl, OpCtx};
    let (signal, parked) = tokio::sync::mpsc::unbounded_channel();
    (Arc::new(OpCtx::new(0, script, Ctl::new(1), signal)), parked)
}

/// Delivers `body` to the webhook handler in a task of its own that parks at
/// its first conditional write; returns the task and the handle that resumes it.
async fn webhook_parked_at_write(
    app: &TestApp,
    body: String,
) -> (tokio::task::JoinHandle<u16>, tokio::sync::oneshot::Sender<()>) {
    use crate::harness::faults::{Decision, Faulty, OP};
    use crate::harness::sched::Signal;
    let (op, mut parked) = parkable_op(vec![Decision::PauseAtWrite]);
    let (store, queue, sim) = (app.store.clone(), app.queue.clone(), app.sim.clone());
    let task = tokio::spawn(OP.scope(op, async move {
        let (store, queue) = (Faulty(store), Faulty(queue));
        let payments = Faulty(StripePayments::new(STRIPE_KEY, Some(&sim)).unwrap());
        let verifier = WebhookVerifier::new(WEBHOOK_SECRET);
        let deps = WebhookDeps { store: &store, payments: &payments, calendar: &queue, verifier: &verifier };
        let sig = slotguard::adapters::stripe::sign(&body, WEBHOOK_SECRET, Utc::now().timestamp());
        let req = lambda_http::http::Request::builder()
            .method("POST")
            .header("stripe-signature", sig)
            .body(lambda_http::Body::Text(body))
            .unwrap();
        stripe_webhook_at(deps, req, Utc::now()).await.status().as_u16()
    }));
    match parked.recv().await {
        Some(Signal::Parked { resume, .. }) => (task, resume),
        _ => panic!("the delivery never reached a conditional write"),
    }
}

#[tokio::test]
async fn a_slot_taken_while_a_late_payment_is_being_confirmed_stays_taken_and_the_payment_is_refunded() {
    let app = app_with_room().await;
    let nine = hour_from_now(33);
    let a = app.reserve_and_checkout("room", nine, "a@example.com").await;
    let paid = app.pay(&a.session_id, "deliveries=0").await;
    app.lapse_hold(&a.reservation_id).await;
    let completed = event("checkout.session.completed", &app.stripe_session(&a.session_id).await);

    // A's payment is read against a free slot, and parks before confirming...
    let (delivery, resume) = webhook_parked_at_write(&app, completed).await;
    // ...while B takes the slot.
    let r = app.reserve("room", nine, "b@example.com").await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let b = app.remember(&r.json().await.unwrap());
    resume.send(()).unwrap();
    assert_eq!(delivery.await.unwrap(), 200);

    assert_eq!(app.status_text(&b).await, "held", "B keeps the slot");
    assert_ne!(app.status_text(&a.reservation_id).await, "confirmed");
    assert_eq!(refunds_for(&app.refunds().await, paid["payment_intent"].as_str().unwrap()).len(), 1);
}

#[tokio::test]
async fn a_delayed_payment_failing_while_its_completion_is_handled_leaves_nothing_pending() {
    let app = app_with_room().await;
    let c = app.reserve_and_checkout("room", hour_from_now(30), "ada@example.com").await;
    app.pay(&c.session_id, "async=true&deliveries=0").await;
    let completed = event("checkout.session.completed", &app.stripe_session(&c.session_id).await);
    let failed = app
        .sim_control(&format!("/_sim/checkout/sessions/{}/async_payment?result=failed&deliveries=0", c.session_id))
        .await;

    // The unpaid completion reads no outcome and parks before keeping the slot...
    let (delivery, resume) = webhook_parked_at_write(&app, completed).await;
    // ...while the failure is delivered and releases the hold.
    let id = failed["event_id"].as_str().unwrap();
    assert_eq!(app.sim_control(&format!("/_sim/events/{id}/redeliver")).await["deliveries"], json!([200]));
    resume.send(()).unwrap();
    assert_eq!(delivery.await.unwrap(), 200);

    assert_eq!(app.status_text(&c.reservation_id).await, "released", "not payment_pending forever");
    assert_eq!(app.reserve("room", c.start, "b@example.com").await.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn a_cancel_that_dies_after_its_refund_is_cancelling_and_a_retry_finishes_it() {
    use crate::harness::faults::{Decision, Faulty, OP};
    use slotguard::api::auth::AdminAuth;
    use slotguard::api::cancel::{CancelDeps, cancel_at};

    let app = app_with_room().await;
    let c = app.reserve_and_checkout("room", hour_from_now(30), "ada@example.com").await;
    app.pay(&c.session_id, "").await;

    // Port calls of a cancel: read the booking, mark it cancelling, read the
    // payment's refunds, refund, free the slot. The Lambda dies at the
    // fifth: after the refund.
    let op =
        scripted_op(vec![Decision::Proceed, Decision::Proceed, Decision::Proceed, Decision::Proceed, Decision::Crash]);
    let (store, queue) = (Faulty(app.store.clone()), Faulty(app.queue.clone()));
    let payments = Faulty(StripePayments::new(STRIPE_KEY, Some(&app.sim)).unwrap());
    let admin = AdminAuth::Token(ADMIN_TOKEN.into());
    let req = lambda_http::http::Request::builder()
        .method("POST")
        .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
        .body(lambda_http::Body::Empty)
        .unwrap()
        .with_path_parameters(std::collections::HashMap::from([("id".to_owned(), c.reservation_id.clone())]));
    let deps = CancelDeps { store: &store, payments: &payments, calendar: &queue, admin: &admin };
    let response = OP.scope(op.clone(), cancel_at(deps, req, Utc::now())).await;
    assert_eq!(response.status(), 503);
    assert_eq!(op.fired().len(), 1, "the crash fired: {:?}", op.fired());

    assert_eq!(app.refunds().await.len(), 1, "the refund went out");
    assert_eq!(app.status_text(&c.reservation_id).await, "cancelling", "never refunded yet confirmed");
    assert!(app.slots("room", c.start, c.start + Duration::hours(1)).await.is_empty(), "still held until finished");

    let r = app.cancel_as_admin(&c.reservation_id).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(app.status_text(&c.reservation_id).await, "cancelled");
    assert_eq!(app.refunds().await.len(), 1, "the retry refunded nothing more");
    assert_eq!(app.slots("room", c.start, c.start + Duration::hours(1)).await.len(), 1, "slot free");
}

#[tokio::test]
async fn a_checkout_retried_with_other_urls_after_stripe_made_the_session_gets_a_4xx_then_that_session() {
    use crate::harness::faults::{Decision, Faulty, OP};
    use slotguard::api::checkout::{CheckoutUrls, checkout_at};

    let app = app_with_room().await;
    let r = app.reserve("room", hour_from_now(30), "ada@example.com").await;
    let id = app.remember(&r.json().await.unwrap());

    // Port calls of a checkout: read the hold, fix the terms, read the
    // resource, create the session at Stripe: which answers, but the answer
    // is lost (a timeout after the effect).
    let op = scripted_op(vec![Decision::Proceed, Decision::Proceed, Decision::Proceed, Decision::FailAfter]);
    let store = Faulty(app.store.clone());
    let payments = Faulty(StripePayments::new(STRIPE_KEY, Some(&app.sim)).unwrap());
    let urls =
        CheckoutUrls { success_url: "https://shop.example/ok".into(), cancel_url: "https://shop.example/no".into() };
    let body = json!({ "success_url": "https://shop.example/a/ok", "cancel_url": "https://shop.example/a/no" });
    let req = lambda_http::http::Request::builder()
        .method("POST")
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {}", app.secret_of(&id).unwrap()))
        .body(lambda_http::Body::Text(body.to_string()))
        .unwrap()
        .with_path_parameters(std::collections::HashMap::from([("id".to_owned(), id.clone())]));
    let response = OP.scope(op.clone(), checkout_at(&store, &payments, &urls, req, Utc::now())).await;
    assert_eq!(response.status(), 503);
    assert_eq!(app.sim_get("/_sim/checkout/sessions").await["sessions"].as_array().unwrap().len(), 1, "made at Stripe");

    // The client retries with other URLs: a documented 4xx, not a 502.
    let other = json!({ "success_url": "https://shop.example/b/ok", "cancel_url": "https://shop.example/b/no" });
    assert_problem(app.checkout_with(&id, other).await, 409, "checkout_urls_differ").await;
    // With the same URLs, or none, it gets the session Stripe made.
    let r = app.checkout_with(&id, json!({})).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let sessions = app.sim_get("/_sim/checkout/sessions").await;
    let sessions = sessions["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 1, "still one session");
    assert_eq!(r.json::<Value>().await.unwrap()["session_id"], sessions[0]["id"]);
}
