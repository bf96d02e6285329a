//! Webhook signatures: only a correctly signed, fresh delivery is acted on,
//! and every refused one leaves the table unchanged.

use crate::helpers::*;
use crate::stripe_helpers::*;
use chrono::Utc;
use serde_json::json;

#[tokio::test]
async fn only_correctly_signed_fresh_deliveries_are_accepted() {
    let app = spawn_app().await;
    app.put_resource("room", &open_all_day()).await;
    let c = app.reserve_and_checkout("room", hour_from_now(30), "ada@example.com").await;
    let mut session = app.stripe_session(&c.session_id).await;
    session["status"] = json!("complete");
    session["payment_status"] = json!("paid");
    session["payment_intent"] = json!("pi_signed");
    let body = event("checkout.session.completed", &session);
    let now = Utc::now().timestamp();
    let good = slotguard::adapters::stripe::sign(&body, WEBHOOK_SECRET, now);
    let good_v1 = good.split_once(",v1=").unwrap().1.to_owned();
    let before = app.scan().await;

    let refused: Vec<(&str, String, Option<String>)> = vec![
        ("missing header", body.clone(), None),
        ("wrong secret", body.clone(), Some(slotguard::adapters::stripe::sign(&body, "whsec_someone_else", now))),
        ("tampered body", body.replace("pi_signed", "pi_forged"), Some(good.clone())),
        ("stale timestamp", body.clone(), Some(slotguard::adapters::stripe::sign(&body, WEBHOOK_SECRET, now - 301))),
        ("malformed header", body.clone(), Some("t=notanumber,v1=abc".into())),
        ("no v1", body.clone(), Some(format!("t={now}"))),
        ("v0 only", body.clone(), Some(format!("t={now},v0={good_v1}"))),
        ("empty header", body.clone(), Some(String::new())),
    ];
    for (name, payload, signature) in refused {
        let r = app.post_webhook(&payload, signature.as_deref()).await;
        assert_eq!(r.status().as_u16(), 400, "{name}");
        assert_problem(r, 400, "invalid_signature").await;
        assert_eq!(app.scan().await, before, "{name}: nothing written");
    }
    assert_eq!(app.status_text(&c.reservation_id).await, "held");

    // Secret rotation: two v1 values, only the second valid.
    let rotated = format!("t={now},v1={},v1={good_v1}", "0".repeat(64));
    let r = app.post_webhook(&body, Some(&rotated)).await;
    assert_eq!(r.status().as_u16(), 200, "{}", r.text().await.unwrap());
    assert_eq!(app.status_text(&c.reservation_id).await, "confirmed");
}

#[tokio::test]
async fn unknown_event_types_are_acknowledged_and_ignored() {
    let app = spawn_app().await;
    let before = app.scan().await;
    let body = json!({
        "id": "evt_unknown_1", "object": "event", "api_version": "2031-01-01.future", "created": Utc::now().timestamp(),
        "livemode": false, "pending_webhooks": 1, "request": {"id": null, "idempotency_key": null},
        "type": "slotguard.future_event", "data": {"object": {"object": "mystery", "id": "my_1"}}
    })
    .to_string();
    let r = app
        .post_webhook(&body, Some(&slotguard::adapters::stripe::sign(&body, WEBHOOK_SECRET, Utc::now().timestamp())))
        .await;
    assert_eq!(r.status().as_u16(), 200);
    let answer: serde_json::Value = r.json().await.unwrap();
    assert!(answer["ignored"].is_string(), "{answer}");
    assert_eq!(app.scan().await, before);
}
