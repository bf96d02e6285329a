//! Confirmed bookings on their way to the calendar: the writer against
//! Xandikos (through a fault-injecting proxy), moto's SQS with its
//! dead-letter queue, redrive, partial batches, cancel and reconcile, and
//! calendar credentials read per resource from moto's Secrets Manager.

use crate::calendar_adapters::{count_events, fresh_collection};
use crate::fakes::fault_proxy::{Fault, FaultProxy};
use crate::helpers::*;
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use chrono::{Duration, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};
use slotguard::adapters::caldav::{CalDavCalendar, CalDavConfig};
use slotguard::adapters::calendar_secrets::CalendarSecrets;
use slotguard::adapters::outbound::OutboundPolicy;
use slotguard::adapters::sqs::{Redrive, SqsDeadLetters, list_dead_letters, redrive};
use slotguard::domain::{CalendarAction, CalendarJob, ReservationId};
use slotguard::jobs::calendar_writer::{RetryPolicy, WriterDeps, write_batch};
use slotguard::ports::CalendarQueue;
use slotguard_local::poller;

/// A fast policy: millisecond backoff, no attempt budget, the template's 5 receives.
fn policy() -> RetryPolicy {
    RetryPolicy {
        base: std::time::Duration::from_millis(10),
        cap: std::time::Duration::from_millis(40),
        attempt_budget: std::time::Duration::ZERO,
        max_receives: slotguard_local::dev::MAX_RECEIVES,
    }
}

pub(crate) struct Writer {
    calendar: CalDavCalendar,
    dead_letters: SqsDeadLetters,
}

impl Writer {
    /// A writer for resources without calendar credentials.
    pub(crate) fn new(app: &TestApp) -> Self {
        Self::with_secrets(app, CalendarSecrets::default())
    }

    /// A writer reading calendar credentials from `secrets`; loopback and
    /// plain http allowed, as in the local stack.
    pub(crate) fn with_secrets(app: &TestApp, secrets: CalendarSecrets) -> Self {
        let config = CalDavConfig::default()
            .with_timeout(std::time::Duration::from_secs(2))
            .with_outbound(OutboundPolicy::local())
            .with_secrets(secrets);
        Self {
            calendar: CalDavCalendar::new(config).unwrap(),
            dead_letters: SqsDeadLetters::new(app.queue.client().clone(), app.dlq_url.clone()),
        }
    }

    fn deps<'a>(
        &'a self,
        app: &'a TestApp,
    ) -> WriterDeps<'a, slotguard::adapters::dynamo::DynamoStore, CalDavCalendar, SqsDeadLetters> {
        WriterDeps { store: &app.store, calendar: &self.calendar, dead_letters: &self.dead_letters, policy: policy() }
    }

    /// Plays the SQS event source mapping until the queue stays empty: each
    /// batch gets a second of retries, failures come back after the queue's
    /// 1-second visibility timeout.
    pub(crate) async fn drain(&self, app: &TestApp) {
        let deps = self.deps(app);
        let mut idle = 0;
        for _ in 0..60 {
            let handler =
                |event| write_batch(&deps, event, tokio::time::Instant::now() + std::time::Duration::from_millis(300));
            let n = poller::poll_once(app.queue.client(), app.queue.queue_url(), handler).await.unwrap();
            idle = if n == 0 { idle + 1 } else { 0 };
            if idle >= 2 && queue_is_empty(app).await {
                return;
            }
        }
        panic!("the calendar queue did not drain");
    }
}

async fn queue_is_empty(app: &TestApp) -> bool {
    let attrs = app
        .queue
        .client()
        .get_queue_attributes()
        .queue_url(app.queue.queue_url())
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
        .send()
        .await
        .unwrap();
    let a = attrs.attributes().unwrap();
    let n = |k| a.get(&k).map(|v| v.parse::<u32>().unwrap()).unwrap_or(0);
    use aws_sdk_sqs::types::QueueAttributeName::{ApproximateNumberOfMessages, ApproximateNumberOfMessagesNotVisible};
    n(ApproximateNumberOfMessages) == 0 && n(ApproximateNumberOfMessagesNotVisible) == 0
}

/// An app whose `room` resource writes to a fresh Xandikos calendar through a
/// fault-injecting proxy. Returns the app, the proxy and the calendar's URL
/// on Xandikos itself.
async fn app_with_calendar() -> (TestApp, FaultProxy, String) {
    let app = spawn_app().await;
    let collection = fresh_collection().await;
    let proxy = FaultProxy::start(&collection).await;
    let mut spec = open_all_day();
    spec["name"] = json!("Coaching");
    spec["calendar"] = json!({ "type": "caldav", "url": proxy.url_for(&collection) });
    app.put_resource("room", &spec).await;
    (app, proxy, collection)
}

/// A paid booking (its calendar job is on the queue).
async fn paid_booking(app: &TestApp, hours_ahead: i64, email: &str) -> String {
    let c = app.reserve_and_checkout("room", hour_from_now(hours_ahead), email).await;
    app.pay(&c.session_id, "").await;
    assert_eq!(app.status_text(&c.reservation_id).await, "confirmed");
    c.reservation_id
}

pub(crate) async fn event_ics(collection: &str, reservation_id: &str) -> (StatusCode, String) {
    let r = reqwest::get(format!("{collection}{reservation_id}.ics")).await.unwrap();
    let status = r.status();
    (status, r.text().await.unwrap())
}

#[tokio::test]
async fn a_confirmed_booking_becomes_exactly_one_event_even_when_its_job_repeats() {
    let (app, _proxy, collection) = app_with_calendar().await;
    let id = paid_booking(&app, 30, "ada@example.com").await;
    let writer = Writer::new(&app);
    writer.drain(&app).await;

    assert_eq!(count_events(&collection).await, 1);
    let (status, ics) = event_ics(&collection, &id).await;
    assert_eq!(status, StatusCode::OK);
    let start = hour_from_now(30);
    assert!(ics.contains(&format!("DTSTART:{}", start.format("%Y%m%dT%H%M%SZ"))), "{ics}");
    assert!(ics.contains(&format!("DTEND:{}", (start + Duration::hours(1)).format("%Y%m%dT%H%M%SZ"))), "{ics}");
    assert!(ics.contains("mailto:ada@example.com"), "{ics}");
    let item = app.claim_item(&id).await.unwrap();
    assert!(s(&item, "calendar_event_ref").ends_with(&format!("{id}.ics")), "the booking notes its event");

    // The same job delivered five more times.
    let job = CalendarJob { action: CalendarAction::Write, reservation_id: ReservationId::parse(&id).unwrap() };
    for _ in 0..5 {
        app.queue.enqueue(&job).await.unwrap();
    }
    writer.drain(&app).await;
    assert_eq!(count_events(&collection).await, 1, "still one event");
}

#[tokio::test]
async fn a_calendar_that_stays_down_sends_the_job_to_the_dlq_and_redrive_recovers_it() {
    let (app, proxy, collection) = app_with_calendar().await;
    proxy.always(Fault::Status(503));
    let id = paid_booking(&app, 30, "ada@example.com").await;
    let writer = Writer::new(&app);
    writer.drain(&app).await;

    let letters = list_dead_letters(app.queue.client(), &app.dlq_url).await.unwrap();
    assert_eq!(letters.len(), 1, "{letters:?}");
    let letter = &letters[0];
    assert_eq!(letter.reservation_id.as_deref(), Some(id.as_str()));
    assert_eq!(letter.failure_kind.as_deref(), Some("http_503"));
    assert!(letter.failure_reason.as_deref().unwrap().contains("503"), "{letter:?}");
    assert_eq!(letter.receive_count.as_deref(), Some("5"), "dead-lettered on the last allowed receive");
    assert!(letter.first_failure_at.is_some());
    assert!(proxy.requests_seen() >= 5, "retried on every receive");
    assert_eq!(app.status_text(&id).await, "confirmed", "the booking stays confirmed");
    assert_eq!(count_events(&collection).await, 0);

    // The calendar is back; redrive.
    proxy.pass_through();
    let moved = redrive(app.queue.client(), &app.dlq_url, app.queue.queue_url()).await.unwrap();
    assert_eq!(moved, Redrive::Copied(1), "moto has no StartMessageMoveTask: moved one by one");
    writer.drain(&app).await;
    assert_eq!(count_events(&collection).await, 1, "exactly one event");
    assert!(list_dead_letters(app.queue.client(), &app.dlq_url).await.unwrap().is_empty(), "DLQ empty");
}

#[tokio::test]
async fn throttling_and_server_errors_are_retried_until_the_write_succeeds() {
    let (app, proxy, collection) = app_with_calendar().await;
    let _id = paid_booking(&app, 30, "ada@example.com").await;
    proxy.inject([Fault::Status(429), Fault::Status(503)]);
    Writer::new(&app).drain(&app).await;
    assert_eq!(count_events(&collection).await, 1);
    let faults: Vec<_> = proxy.requests().into_iter().filter_map(|r| r.fault).collect();
    assert_eq!(faults, [Fault::Status(429), Fault::Status(503)]);
    assert!(list_dead_letters(app.queue.client(), &app.dlq_url).await.unwrap().is_empty());
}

#[tokio::test]
async fn bad_credentials_go_to_the_dlq_without_five_retries() {
    let (app, proxy, collection) = app_with_calendar().await;
    proxy.always(Fault::Status(401));
    let id = paid_booking(&app, 30, "ada@example.com").await;
    Writer::new(&app).drain(&app).await;
    let letters = list_dead_letters(app.queue.client(), &app.dlq_url).await.unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].reservation_id.as_deref(), Some(id.as_str()));
    assert_eq!(letters[0].failure_kind.as_deref(), Some("http_401"));
    assert_eq!(letters[0].receive_count.as_deref(), Some("1"), "sent on at the first receive");
    assert_eq!(proxy.requests_seen(), 1, "one attempt, no retries");
    assert_eq!(count_events(&collection).await, 0);
}

/// An app whose `room` resource writes to a fresh Xandikos calendar behind
/// a proxy that wants `host@example.com`'s Basic credentials, naming the
/// secret `secret` (in moto's Secrets Manager) for them. Returns the app,
/// the proxy and the calendar's URL on Xandikos itself.
async fn app_with_guarded_calendar(secret: &str) -> (TestApp, FaultProxy, String) {
    let app = spawn_app().await;
    let collection = fresh_collection().await;
    let proxy = FaultProxy::start(&collection).await;
    proxy.require_authorization(&host_authorization());
    let mut spec = open_all_day();
    spec["calendar"] = json!({ "type": "caldav", "url": proxy.url_for(&collection), "credentials": secret });
    app.put_resource("room", &spec).await;
    (app, proxy, collection)
}

/// `Basic` of `host@example.com:app-pass:word`.
fn host_authorization() -> String {
    "Basic aG9zdEBleGFtcGxlLmNvbTphcHAtcGFzczp3b3Jk".to_owned()
}

#[tokio::test]
async fn the_writer_signs_in_with_the_credentials_in_the_resources_own_secret() {
    let secret = calendar_secret_name();
    put_secret(&secret, &json!({"username": "host@example.com", "password": "app-pass:word"})).await;
    let (app, proxy, collection) = app_with_guarded_calendar(&secret).await;
    // A second resource without credentials, on a calendar of its own.
    let open_collection = fresh_collection().await;
    let open_proxy = FaultProxy::start(&open_collection).await;
    let mut spec = open_all_day();
    spec["calendar"] = json!({ "type": "caldav", "url": open_proxy.url_for(&open_collection) });
    app.put_resource("annex", &spec).await;
    let id = paid_booking(&app, 30, "ada@example.com").await;
    let c = app.reserve_and_checkout("annex", hour_from_now(30), "bob@example.com").await;
    app.pay(&c.session_id, "").await;

    Writer::with_secrets(&app, calendar_secrets()).drain(&app).await;
    assert_eq!(event_ics(&collection, &id).await.0, StatusCode::OK);
    assert_eq!(count_events(&open_collection).await, 1);
    let seen = proxy.requests();
    assert!(!seen.is_empty() && seen.iter().all(|r| r.fault.is_none()), "every request signed in: {seen:?}");
    assert!(open_proxy.requests().iter().all(|r| r.authorization.is_none()), "no credentials to the other calendar");
    assert!(list_dead_letters(app.queue.client(), &app.dlq_url).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_wrong_password_in_the_secret_dead_letters_the_job_until_the_secret_is_fixed() {
    let secret = calendar_secret_name();
    put_secret(&secret, &json!({"username": "host@example.com", "password": "an old password"})).await;
    let (app, proxy, collection) = app_with_guarded_calendar(&secret).await;
    let id = paid_booking(&app, 30, "ada@example.com").await;
    let writer = Writer::with_secrets(&app, calendar_secrets());
    writer.drain(&app).await;
    let letters = list_dead_letters(app.queue.client(), &app.dlq_url).await.unwrap();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].reservation_id.as_deref(), Some(id.as_str()));
    assert_eq!(letters[0].failure_kind.as_deref(), Some("http_401"));
    assert_eq!(letters[0].receive_count.as_deref(), Some("1"), "a refused sign-in is not retried");
    assert!(!letters[0].failure_reason.as_deref().unwrap().contains("old password"), "{:?}", letters[0]);
    assert_eq!(proxy.requests_seen(), 1);
    assert_eq!(count_events(&collection).await, 0);

    // The host rotates the password in the secret; the redriven job uses it
    // (the 401 dropped the cached value).
    put_secret(&secret, &json!({"username": "host@example.com", "password": "app-pass:word"})).await;
    redrive(app.queue.client(), &app.dlq_url, app.queue.queue_url()).await.unwrap();
    writer.drain(&app).await;
    assert_eq!(event_ics(&collection, &id).await.0, StatusCode::OK);
    assert!(list_dead_letters(app.queue.client(), &app.dlq_url).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_missing_secret_is_retried_then_dead_lettered_and_redriven_once_it_exists() {
    let secret = calendar_secret_name();
    let (app, proxy, collection) = app_with_guarded_calendar(&secret).await;
    let id = paid_booking(&app, 30, "ada@example.com").await;
    let writer = Writer::with_secrets(&app, calendar_secrets());
    writer.drain(&app).await;
    let letters = list_dead_letters(app.queue.client(), &app.dlq_url).await.unwrap();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].failure_kind.as_deref(), Some("credentials_unavailable"));
    assert!(letters[0].failure_reason.as_deref().unwrap().contains(&secret), "{:?}", letters[0]);
    assert_eq!(letters[0].receive_count.as_deref(), Some("5"), "retried on every receive");
    assert_eq!(proxy.requests_seen(), 0, "nothing sent without the credentials");

    put_secret(&secret, &json!({"username": "host@example.com", "password": "app-pass:word"})).await;
    redrive(app.queue.client(), &app.dlq_url, app.queue.queue_url()).await.unwrap();
    writer.drain(&app).await;
    assert_eq!(event_ics(&collection, &id).await.0, StatusCode::OK);
    assert_eq!(app.status_text(&id).await, "confirmed");
}

#[tokio::test]
async fn a_batch_reports_exactly_the_messages_that_failed() {
    let (app, healthy_proxy, healthy) = app_with_calendar().await;
    // A second resource whose calendar is down.
    let down_collection = fresh_collection().await;
    let down = FaultProxy::start(&down_collection).await;
    down.always(Fault::Status(503));
    let mut spec = open_all_day();
    spec["calendar"] = json!({ "type": "caldav", "url": down.url_for(&down_collection) });
    app.put_resource("annex", &spec).await;

    let mut messages = Vec::new();
    let mut expected_failures = Vec::new();
    for i in 0..10 {
        let resource = if i % 4 == 1 { "annex" } else { "room" };
        let c = app.reserve_and_checkout(resource, hour_from_now(30 + i), &format!("c{i}@example.com")).await;
        app.pay(&c.session_id, "").await;
        let mut m = SqsMessage::default();
        m.message_id = Some(format!("m-{i}"));
        m.body = Some(json!({"action": "write", "reservation_id": c.reservation_id}).to_string());
        m.attributes = [("ApproximateReceiveCount".to_owned(), "1".to_owned())].into();
        if resource == "annex" {
            expected_failures.push(format!("m-{i}"));
        }
        messages.push(m);
    }
    assert_eq!(expected_failures.len(), 3);
    let mut event = SqsEvent::default();
    event.records = messages;
    let writer = Writer::new(&app);
    let response =
        write_batch(&writer.deps(&app), event, tokio::time::Instant::now() + std::time::Duration::from_millis(300))
            .await;
    let mut failed: Vec<String> = response.batch_item_failures.iter().map(|f| f.item_identifier.clone()).collect();
    failed.sort();
    assert_eq!(failed, expected_failures);
    assert_eq!(count_events(&healthy).await, 7);
    assert!(healthy_proxy.requests_seen() >= 7);
    assert_eq!(count_events(&down_collection).await, 0);
}

#[tokio::test]
async fn cancel_refunds_frees_the_slot_and_removes_the_event_once() {
    let (app, _proxy, collection) = app_with_calendar().await;
    let id = paid_booking(&app, 30, "ada@example.com").await;
    let writer = Writer::new(&app);
    writer.drain(&app).await;
    assert_eq!(count_events(&collection).await, 1);
    let token = app.secret_of(&id).expect("the 201 carried the secret");

    let cancel =
        |bearer: String| app.http.post(app.url(&format!("/v1/bookings/{id}/cancel"))).bearer_auth(bearer).send();
    assert_problem(cancel("rsk_wrong".into()).await.unwrap(), 401, "unauthorized").await;
    assert!(app.refunds().await.is_empty(), "a refused cancel refunds nothing");

    let r = cancel(token.clone()).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], "cancelled");
    let refunds = app.refunds().await;
    assert_eq!(refunds.len(), 1);
    assert_eq!(refunds[0]["idempotency_key"], format!("cancel-{id}"));
    assert_eq!(refunds[0]["amount"], 2500);
    assert_eq!(app.status_text(&id).await, "cancelled");
    let start = hour_from_now(30);
    assert_eq!(app.slots("room", start, start + Duration::hours(1)).await.len(), 1, "slot open again");

    writer.drain(&app).await;
    assert_eq!(count_events(&collection).await, 0, "event gone");

    let again = cancel(token).await.unwrap();
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(app.refunds().await.len(), 1, "cancelling twice refunds once");
    writer.drain(&app).await;
    assert_eq!(count_events(&collection).await, 0);
}

#[tokio::test]
async fn reconcile_restores_missing_events_and_removes_orphans() {
    let (app, _proxy, collection) = app_with_calendar().await;
    let kept = paid_booking(&app, 30, "ada@example.com").await;
    let lost = paid_booking(&app, 31, "bob@example.com").await;
    let writer = Writer::new(&app);
    writer.drain(&app).await;
    assert_eq!(count_events(&collection).await, 2);

    // Someone deletes an event behind slotguard's back...
    let r = reqwest::Client::new().delete(format!("{collection}{lost}.ics")).send().await.unwrap();
    assert!(r.status().is_success());
    // ...and a slotguard event without a booking appears, next to a private one.
    let ghost = format!("rsv_room_{}_{}", hour_from_now(32).format("%Y%m%dT%H%M%S"), "f".repeat(32));
    let dt = hour_from_now(32).format("%Y%m%dT%H%M%SZ");
    let orphan = format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\nUID:{ghost}@slotguard\r\nDTSTAMP:{dt}\r\nDTSTART:{dt}\r\nDTEND:{dt}\r\nSUMMARY:ghost\r\nX-SLOTGUARD-BOOKING:{ghost}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    );
    let private = orphan.replace(&format!("X-SLOTGUARD-BOOKING:{ghost}\r\n"), "").replace(&ghost, "private-lunch");
    for (name, body) in [(format!("{ghost}.ics"), orphan), ("private-lunch.ics".to_owned(), private)] {
        let r = reqwest::Client::new()
            .put(format!("{collection}{name}"))
            .header("content-type", "text/calendar")
            .body(body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.status());
    }
    assert_eq!(count_events(&collection).await, 3);

    let calendars = slotguard::adapters::calendars::Calendars::new(Writer::new(&app).calendar, None);
    let now = Utc::now();
    let report =
        slotguard::jobs::reconcile::reconcile(&app.store, &calendars, &app.queue, now, now + Duration::days(3))
            .await
            .unwrap();
    assert_eq!(report.missing, [ReservationId::parse(&lost).unwrap()]);
    assert_eq!(report.orphans_removed, [ReservationId::parse(&ghost).unwrap()]);
    assert!(report.duplicates.is_empty() && report.errors.is_empty(), "{report:?}");
    assert_eq!(report.confirmed_bookings, 2);

    writer.drain(&app).await;
    assert_eq!(count_events(&collection).await, 3, "the lost event is back, the orphan gone, the private one kept");
    assert_eq!(event_ics(&collection, &lost).await.0, StatusCode::OK);
    assert_eq!(event_ics(&collection, &kept).await.0, StatusCode::OK);
    assert_eq!(event_ics(&collection, &ghost).await.0, StatusCode::NOT_FOUND);
    assert_eq!(event_ics(&collection, "private-lunch").await.0, StatusCode::OK);
}

/// Members `m1`-`m3`, each open all day with a fresh collection of its own (returned in order).
async fn members_with_calendars(app: &TestApp) -> Vec<String> {
    let mut collections = Vec::new();
    for m in ["m1", "m2", "m3"] {
        let collection = fresh_collection().await;
        let mut spec = open_all_day();
        spec["calendar"] = json!({ "type": "caldav", "url": collection });
        app.put_resource(m, &spec).await;
        collections.push(collection);
    }
    collections
}

#[tokio::test]
async fn team_bookings_are_written_to_the_calendars_of_the_members_hosting_them() {
    let app = spawn_app().await;
    let collections = members_with_calendars(&app).await;
    for (team, assignment) in [("rr", "round_robin"), ("panel", "collective")] {
        let mut spec = open_all_day();
        spec["name"] = json!("Team");
        spec["team"] = json!({ "members": ["m1", "m2", "m3"], "assignment": assignment });
        app.put_resource(team, &spec).await;
    }
    let rr = app.reserve_and_checkout("rr", hour_from_now(30), "rr@example.com").await;
    app.pay(&rr.session_id, "").await;
    let panel = app.reserve_and_checkout("panel", hour_from_now(32), "panel@example.com").await;
    app.pay(&panel.session_id, "").await;
    let writer = Writer::new(&app);
    writer.drain(&app).await;

    let host = app.claim_item(&rr.reservation_id).await.unwrap();
    let host = match host.get("hosts") {
        Some(aws_sdk_dynamodb::types::AttributeValue::L(l)) => l[0].as_s().unwrap().clone(),
        other => panic!("a round-robin booking names its host: {other:?}"),
    };
    for (member, collection) in ["m1", "m2", "m3"].iter().zip(&collections) {
        let (rr_status, _) = event_ics(collection, &rr.reservation_id).await;
        let expected = if *member == host { StatusCode::OK } else { StatusCode::NOT_FOUND };
        assert_eq!(rr_status, expected, "the round-robin event on {member}'s calendar");
        let (panel_status, ics) = event_ics(collection, &panel.reservation_id).await;
        assert_eq!(panel_status, StatusCode::OK, "the collective event on {member}'s calendar");
        assert!(
            ics.contains(&format!("X-SLOTGUARD-BOOKING:{}", panel.reservation_id))
                || ics.contains(&panel.reservation_id)
        );
    }

    // Cancelling the collective booking takes its event off every member's calendar.
    let r = app.cancel_as_admin(&panel.reservation_id).await;
    assert_eq!(r.status(), StatusCode::OK);
    writer.drain(&app).await;
    for collection in &collections {
        assert_eq!(event_ics(collection, &panel.reservation_id).await.0, StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn a_member_removed_from_the_team_keeps_its_bookings_events_until_they_end() {
    let app = spawn_app().await;
    let collections = members_with_calendars(&app).await;
    let mut team = open_all_day();
    team["team"] = json!({ "members": ["m1", "m2", "m3"], "assignment": "collective" });
    app.put_resource("panel", &team).await;
    let panel = app.reserve_and_checkout("panel", hour_from_now(30), "panel@example.com").await;
    app.pay(&panel.session_id, "").await;
    let writer = Writer::new(&app);
    writer.drain(&app).await;
    for collection in &collections {
        assert_eq!(event_ics(collection, &panel.reservation_id).await.0, StatusCode::OK);
    }

    // m3 leaves the team; the booking it hosts stays its own.
    team["team"] = json!({ "members": ["m1", "m2"], "assignment": "collective" });
    app.put_resource("panel", &team).await;
    let calendars = slotguard::adapters::calendars::Calendars::new(Writer::new(&app).calendar, None);
    let now = Utc::now();
    for run in ["first", "second"] {
        let report =
            slotguard::jobs::reconcile::reconcile(&app.store, &calendars, &app.queue, now, now + Duration::days(3))
                .await
                .unwrap();
        assert!(
            report.missing.is_empty() && report.orphans_removed.is_empty() && report.errors.is_empty(),
            "{run} run: the event on m3's calendar is the booking's own: {report:?}"
        );
    }
    assert_eq!(event_ics(&collections[2], &panel.reservation_id).await.0, StatusCode::OK);

    // Cancelled: the event leaves every calendar it was written to, m3's too.
    assert_eq!(app.cancel_as_admin(&panel.reservation_id).await.status(), StatusCode::OK);
    writer.drain(&app).await;
    for (member, collection) in ["m1", "m2", "m3"].iter().zip(&collections) {
        assert_eq!(event_ics(collection, &panel.reservation_id).await.0, StatusCode::NOT_FOUND, "{member}");
    }
}

#[tokio::test]
async fn a_changed_calendar_target_moves_the_event_and_a_cancel_removes_it_where_it_is() {
    let app = spawn_app().await;
    let (old, new) = (fresh_collection().await, fresh_collection().await);
    let mut spec = open_all_day();
    spec["calendar"] = json!({ "type": "caldav", "url": old });
    app.put_resource("room", &spec).await;
    let id = paid_booking(&app, 30, "ada@example.com").await;
    let writer = Writer::new(&app);
    writer.drain(&app).await;
    assert_eq!(event_ics(&old, &id).await.0, StatusCode::OK);

    // The host points the resource at another calendar, then moves the booking.
    spec["calendar"] = json!({ "type": "caldav", "url": new });
    app.put_resource("room", &spec).await;
    let to = hour_from_now(33);
    let req = app.http.post(app.url(&format!("/v1/bookings/{id}/reschedule"))).json(&json!({"start": rfc3339(to)}));
    assert_eq!(app.as_holder(&id, req).send().await.unwrap().status(), StatusCode::OK);
    writer.drain(&app).await;
    assert_eq!(event_ics(&old, &id).await.0, StatusCode::NOT_FOUND, "not left behind on the old calendar");
    let (status, ics) = event_ics(&new, &id).await;
    assert_eq!(status, StatusCode::OK);
    assert!(ics.contains(&format!("DTSTART:{}", to.format("%Y%m%dT%H%M%SZ"))), "{ics}");

    assert_eq!(app.cancel_as_admin(&id).await.status(), StatusCode::OK);
    writer.drain(&app).await;
    assert_eq!(
        (event_ics(&old, &id).await.0, event_ics(&new, &id).await.0),
        (StatusCode::NOT_FOUND, StatusCode::NOT_FOUND)
    );
}
