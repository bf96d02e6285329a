//! Bad input: every malformed request gets a 4xx problem body and the table is
//! unchanged afterwards.

use crate::helpers::*;
use chrono::Duration;
use serde_json::{Value, json};

#[tokio::test]
async fn malformed_requests_get_problems_and_change_nothing() {
    let app = spawn_app().await;
    app.put_resource("room", &open_all_day()).await;
    let mut limited = open_all_day();
    for day in ["mon", "tue", "wed", "thu", "fri", "sat", "sun"] {
        limited["weekly_hours"][day] = json!([{"start": "09:00", "end": "17:00"}]);
    }
    app.put_resource("office", &limited).await;
    let tomorrow = hour_from_now(48).date_naive().and_hms_opt(0, 0, 0).unwrap().and_utc();
    let good_start = hour_from_now(30);
    let good = TestApp::reserve_body("room", good_start, "a@example.com");
    let with = |path: &str, value: Value| {
        let mut body = good.clone();
        body[path] = value;
        body
    };
    let before = app.scan().await;

    let post_raw = |body: String| {
        app.http.post(app.url("/v1/reservations")).header("content-type", "application/json").body(body).send()
    };
    let post = |body: Value| app.http.post(app.url("/v1/reservations")).json(&body).send();
    let get = |path: String| app.http.get(app.url(&path)).send();
    let slots = |q: &str| get(format!("/v1/resources/room/slots?{q}"));

    let mut cases: Vec<(&str, reqwest::Response, u16, &str)> = vec![
        ("bad JSON", post_raw("{\"resource_id\": ".into()).await.unwrap(), 400, "invalid_json"),
        ("empty body", post_raw(String::new()).await.unwrap(), 400, "invalid_json"),
        ("JSON array", post_raw("[1,2]".into()).await.unwrap(), 400, "invalid_field"),
        (
            "missing customer",
            post(json!({"resource_id": "room", "start": rfc3339(good_start)})).await.unwrap(),
            400,
            "invalid_field",
        ),
        ("start is a number", post(with("start", json!(1_700_000_000))).await.unwrap(), 400, "invalid_field"),
        ("unknown field", post(with("coupon", json!("FREE"))).await.unwrap(), 400, "invalid_field"),
        ("start not a time", post(with("start", json!("tomorrow 9am"))).await.unwrap(), 422, "invalid_field"),
        ("unknown resource", post(with("resource_id", json!("nope"))).await.unwrap(), 422, "unknown_resource"),
        ("bad resource id", post(with("resource_id", json!("../etc"))).await.unwrap(), 422, "invalid_field"),
        (
            "start off the grid",
            post(with("start", json!(rfc3339(good_start + Duration::minutes(30))))).await.unwrap(),
            422,
            "off_grid",
        ),
        (
            "start in the past",
            post(with("start", json!(rfc3339(hour_from_now(-2))))).await.unwrap(),
            422,
            "slot_in_past",
        ),
        (
            "outside opening hours",
            post(TestApp::reserve_body("office", tomorrow + Duration::hours(20), "a@example.com")).await.unwrap(),
            422,
            "outside_opening_hours",
        ),
        (
            "bad email",
            post(with("customer", json!({"name": "Abel Bad-Email", "email": "not-an-email"}))).await.unwrap(),
            422,
            "invalid_field",
        ),
        (
            "empty name",
            post(with("customer", json!({"name": " ", "email": "a@example.com"}))).await.unwrap(),
            422,
            "invalid_field",
        ),
        (
            "huge body",
            post_raw(format!("{{\"pad\":\"{}\"}}", "x".repeat(200_000))).await.unwrap(),
            413,
            "payload_too_large",
        ),
        (
            "not JSON content type",
            app.http
                .post(app.url("/v1/reservations"))
                .header("content-type", "text/plain")
                .body(good.to_string())
                .send()
                .await
                .unwrap(),
            415,
            "unsupported_media_type",
        ),
        (
            "bad idempotency key",
            app.http.post(app.url("/v1/reservations")).header("Idempotency-Key", "").json(&good).send().await.unwrap(),
            400,
            "invalid_idempotency_key",
        ),
        (
            "range over 31 days",
            slots(&format!("from={}&to={}", rfc3339(tomorrow), rfc3339(tomorrow + Duration::days(32)))).await.unwrap(),
            400,
            "range_too_large",
        ),
        (
            "from after to",
            slots(&format!("from={}&to={}", rfc3339(tomorrow + Duration::days(1)), rfc3339(tomorrow))).await.unwrap(),
            400,
            "invalid_range",
        ),
        ("from not a time", slots("from=yesterday").await.unwrap(), 400, "invalid_query"),
        ("slots of unknown resource", get("/v1/resources/nope/slots".into()).await.unwrap(), 404, "resource_not_found"),
        (
            "unknown reservation",
            get(format!("/v1/reservations/rsv_room_20300101T000000_{}", "0".repeat(32))).await.unwrap(),
            404,
            "reservation_not_found",
        ),
        ("malformed reservation id", get("/v1/reservations/12345".into()).await.unwrap(), 404, "reservation_not_found"),
        (
            "admin route without token",
            app.http.put(app.url("/v1/resources/x")).json(&open_all_day()).send().await.unwrap(),
            401,
            "unauthorized",
        ),
        (
            "resource with a short hold",
            app.http
                .put(app.url("/v1/resources/x"))
                .bearer_auth(ADMIN_TOKEN)
                .json(&{
                    let mut spec = open_all_day();
                    spec["hold_minutes"] = json!(10);
                    spec
                })
                .send()
                .await
                .unwrap(),
            422,
            "invalid_resource",
        ),
        ("unknown route", get("/v1/coupons".into()).await.unwrap(), 404, "not_found"),
        ("wrong method", app.http.delete(app.url("/v1/reservations")).send().await.unwrap(), 405, "method_not_allowed"),
    ];
    assert!(cases.len() >= 15);
    for (name, response, status, kind) in cases.drain(..) {
        let got = response.status().as_u16();
        assert_eq!(got, status, "{name}");
        let body = assert_problem(response, status, kind).await;
        eprintln!("{name}: {status} {}", body["detail"]);
    }
    assert_eq!(app.scan().await, before, "the table is unchanged");
}
