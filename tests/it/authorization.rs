//! Authorisation before any side effect, route by route: every route that
//! needs a credential, called without one, with a made-up one, with another
//! reservation's real secret, with the wrong scheme, and (where it applies)
//! with the secret of a lapsed hold or of a cancelled booking, is refused and
//! changes nothing: not the table, not the calendar queue, not Stripe's
//! sessions or refunds, not the host's calendar.

use crate::calendar_adapters::{count_events, fresh_collection};
use crate::calendar_flow::Writer;
use crate::helpers::*;
use crate::stripe_helpers::event;
use chrono::Utc;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Everything an unauthorised call could change.
#[derive(PartialEq)]
struct Observed {
    table: Vec<Item>,
    queued: (u32, u32),
    sessions: Value,
    refunds: Vec<Value>,
    events: usize,
}

async fn observe(app: &TestApp, collection: &str) -> Observed {
    use aws_sdk_sqs::types::QueueAttributeName::{ApproximateNumberOfMessages, ApproximateNumberOfMessagesNotVisible};
    let attrs = app
        .queue
        .client()
        .get_queue_attributes()
        .queue_url(app.queue.queue_url())
        .attribute_names(ApproximateNumberOfMessages)
        .attribute_names(ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .unwrap();
    let count = |k| attrs.attributes().and_then(|a| a.get(&k)).map(|v| v.parse().unwrap()).unwrap_or(0);
    Observed {
        table: app.scan().await,
        queued: (count(ApproximateNumberOfMessages), count(ApproximateNumberOfMessagesNotVisible)),
        sessions: app.sim_get("/_sim/checkout/sessions").await,
        refunds: app.refunds().await,
        events: count_events(collection).await,
    }
}

/// One refused call: what it was, its answer.
struct Refusal {
    case: String,
    status: u16,
    body: Value,
}

#[tokio::test]
async fn every_route_refuses_missing_wrong_and_foreign_credentials_before_any_side_effect() {
    let app = spawn_app().await;
    let collection = fresh_collection().await;
    let mut spec = open_all_day();
    spec["calendar"] = json!({ "type": "caldav", "url": collection });
    app.put_resource("room", &spec).await;
    let writer = Writer::new(&app);

    // A: a confirmed booking on the calendar. B: a cancelled one. C: a hold
    // with its Checkout Session. D: a hold that lapsed.
    let confirmed = app.reserve_and_checkout("room", hour_from_now(30), "a@example.com").await;
    app.pay(&confirmed.session_id, "").await;
    let cancelled = app.reserve_and_checkout("room", hour_from_now(31), "b@example.com").await;
    app.pay(&cancelled.session_id, "").await;
    let (a, b) = (confirmed.reservation_id.clone(), cancelled.reservation_id.clone());
    let cancel_b = app.as_holder(&b, app.http.post(app.url(&format!("/v1/bookings/{b}/cancel"))));
    assert_eq!(cancel_b.send().await.unwrap().status(), StatusCode::OK);
    let held = app.reserve_and_checkout("room", hour_from_now(32), "c@example.com").await;
    let c = held.reservation_id.clone();
    let r = app.reserve("room", hour_from_now(33), "d@example.com").await;
    let d = app.remember(&r.json().await.unwrap());
    app.lapse_hold(&d).await;
    writer.drain(&app).await;
    assert_eq!(count_events(&collection).await, 1, "A's event");
    assert_eq!(app.status_text(&b).await, "cancelled");

    let secret = |id: &str| app.secret_of(id).unwrap();
    let made_up = format!("rsk_{}", "A".repeat(43));
    // Credentials that are not the reservation's: (label, Authorization header).
    let foreign = |id: &str| -> Vec<(String, Option<String>)> {
        let others = [&a, &b, &c, &d].into_iter().filter(|o| o.as_str() != id);
        let mut v = vec![
            ("no credentials".to_owned(), None),
            ("a made-up secret".to_owned(), Some(format!("Bearer {made_up}"))),
            ("its own secret without Bearer".to_owned(), Some(secret(id))),
            ("its own secret as Basic".to_owned(), Some(format!("Basic {}", secret(id)))),
            ("its own secret with a character more".to_owned(), Some(format!("Bearer {}x", secret(id)))),
        ];
        v.extend(others.map(|o| (format!("the secret of {}", short(o)), Some(format!("Bearer {}", secret(o))))));
        v
    };

    let before = observe(&app, &collection).await;
    let mut refusals = Vec::new();
    let mut call = async |case: String, method: Method, path: String, auth: Option<String>, body: Option<Value>| {
        let mut req = app.http.request(method, app.url(&path));
        if let Some(auth) = auth {
            req = req.header("authorization", auth);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let body = r.json().await.unwrap_or(Value::Null);
        refusals.push(Refusal { case, status, body });
    };
    let move_to = json!({ "start": rfc3339(hour_from_now(40)) });
    for (label, auth) in foreign(&a) {
        if auth.is_some() {
            // Without credentials the status is public (checked below).
            call(format!("status of A, {label}"), Method::GET, format!("/v1/reservations/{a}"), auth.clone(), None)
                .await;
        }
        call(format!("cancel A, {label}"), Method::POST, format!("/v1/bookings/{a}/cancel"), auth.clone(), None).await;
        let path = format!("/v1/bookings/{a}/reschedule");
        call(format!("reschedule A, {label}"), Method::POST, path, auth, Some(move_to.clone())).await;
    }
    for (label, auth) in foreign(&b) {
        // Cancelled already: a repeated cancel must not queue the event's removal again.
        call(format!("cancel B again, {label}"), Method::POST, format!("/v1/bookings/{b}/cancel"), auth.clone(), None)
            .await;
        let path = format!("/v1/bookings/{b}/reschedule");
        call(format!("reschedule B, {label}"), Method::POST, path, auth, Some(move_to.clone())).await;
    }
    let admin = Some(format!("Bearer {ADMIN_TOKEN}"));
    for (label, auth) in foreign(&c).into_iter().chain([("the admin token".to_owned(), admin)]) {
        let path = format!("/v1/reservations/{c}/checkout");
        call(format!("checkout C, {label}"), Method::POST, path, auth, Some(json!({}))).await;
    }
    for (label, auth) in foreign(&d) {
        let path = format!("/v1/reservations/{d}/checkout");
        call(format!("checkout lapsed D, {label}"), Method::POST, path, auth, None).await;
    }
    let not_admin = [
        ("no credentials", None),
        ("a wrong admin token", Some(format!("Bearer {ADMIN_TOKEN}x"))),
        ("a reservation's secret", Some(format!("Bearer {}", secret(&c)))),
        ("the admin token without Bearer", Some(ADMIN_TOKEN.to_owned())),
    ];
    let mut cheaper = spec.clone();
    cheaper["price"]["amount"] = json!(1);
    for (label, auth) in not_admin {
        let path = "/v1/resources/room".to_owned();
        call(format!("put resource, {label}"), Method::PUT, path, auth.clone(), Some(cheaper.clone())).await;
        let path = "/v1/admin/resources/room/bookings".to_owned();
        call(format!("list bookings, {label}"), Method::GET, path, auth, None).await;
    }
    // A "paid" event for C's own session: unsigned, signed with another
    // secret, or signed correctly but too long ago.
    let mut paid = app.stripe_session(&held.session_id).await;
    paid["status"] = json!("complete");
    paid["payment_status"] = json!("paid");
    paid["payment_intent"] = json!("pi_forged");
    let forged = event("checkout.session.completed", &paid);
    let now = Utc::now().timestamp();
    let signatures = [
        ("unsigned", None),
        ("signed with another secret", Some(slotguard::adapters::stripe::sign(&forged, "whsec_other", now))),
        ("signed ten minutes ago", Some(slotguard::adapters::stripe::sign(&forged, WEBHOOK_SECRET, now - 600))),
    ];
    let mut webhook_answers = Vec::new();
    for (label, signature) in signatures {
        let r = app.post_webhook(&forged, signature.as_deref()).await;
        webhook_answers.push((label, r.status().as_u16(), r.json::<Value>().await.unwrap_or(Value::Null)));
    }

    for r in &refusals {
        assert_eq!((r.status, r.body["type"].as_str()), (401, Some("unauthorized")), "{}: {}", r.case, r.body);
        let text = r.body.to_string();
        assert!(!text.contains("@example.com") && !text.contains("rsk_"), "{} leaks: {text}", r.case);
    }
    for (label, status, body) in &webhook_answers {
        assert_eq!((*status, body["type"].as_str()), (400, Some("invalid_signature")), "webhook {label}: {body}");
    }
    assert!(refusals.len() >= 60, "{} calls", refusals.len());
    let after = observe(&app, &collection).await;
    assert_unchanged(&before, &after);

    // Without credentials the status shows only what a public page may.
    let public: Value =
        app.http.get(app.url(&format!("/v1/reservations/{a}"))).send().await.unwrap().json().await.unwrap();
    let mut keys: Vec<&str> = public.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["end", "reservation_id", "resource_id", "start", "status"], "{public}");

    // The same routes with the right credential do act: the test can fail.
    assert_eq!(app.status_of(&a).await.1["amount"], json!(2500), "the holder sees the details");
    let r = app.checkout_raw(&c).await;
    assert_eq!(r.status(), StatusCode::OK, "the holder gets C's session");
    let r = app.as_holder(&a, app.http.post(app.url(&format!("/v1/bookings/{a}/cancel")))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let acted = observe(&app, &collection).await;
    assert!(acted.refunds.len() > before.refunds.len() && acted.table != before.table, "the holder's cancel refunds");
}

/// Names what changed, briefly (the whole table would drown the message).
fn assert_unchanged(before: &Observed, after: &Observed) {
    let changed_items: Vec<String> = after
        .table
        .iter()
        .filter(|i| !before.table.contains(i))
        .chain(before.table.iter().filter(|i| !after.table.contains(i)))
        .map(|i| format!("{} {}", s(i, "pk"), s(i, "sk")))
        .collect();
    assert!(changed_items.is_empty(), "an unauthorised call changed the table: {changed_items:?}");
    assert_eq!(after.queued, before.queued, "an unauthorised call queued a calendar job");
    assert_eq!(after.sessions, before.sessions, "an unauthorised call changed Stripe's sessions");
    assert_eq!(after.refunds, before.refunds, "an unauthorised call refunded");
    assert_eq!(after.events, before.events, "an unauthorised call changed the calendar");
}

fn short(id: &str) -> &str {
    &id[id.len() - 6..]
}
