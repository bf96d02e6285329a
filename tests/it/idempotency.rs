//! `Idempotency-Key` on reserve: replay, payload mismatch, concurrent duplicates.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::Value;

#[tokio::test]
async fn the_same_key_and_body_replays_the_original_reservation() {
    let app = spawn_app().await;
    app.put_resource("room", &open_all_day()).await;
    let body = TestApp::reserve_body("room", hour_from_now(20), "a@example.com");
    let send = || app.http.post(app.url("/v1/reservations")).header("Idempotency-Key", "key-1").json(&body).send();

    let first = send().await.unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first_location = first.headers()["location"].clone();
    let first: Value = first.json().await.unwrap();

    let again = send().await.unwrap();
    assert_eq!(again.status(), StatusCode::CREATED);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.headers()["location"], first_location);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again, first, "the replay is the original response");
    assert_eq!(app.live_holds().await.len(), 1, "still one hold");

    // Without the key, the same body is a new attempt and meets the hold.
    let r = app.http.post(app.url("/v1/reservations")).json(&body).send().await.unwrap();
    assert_problem(r, 409, "slot_taken").await;
}

#[tokio::test]
async fn the_same_key_with_another_body_is_refused() {
    let app = spawn_app().await;
    app.put_resource("room", &open_all_day()).await;
    let post =
        |body: Value| app.http.post(app.url("/v1/reservations")).header("Idempotency-Key", "key-2").json(&body).send();
    let r = post(TestApp::reserve_body("room", hour_from_now(20), "a@example.com")).await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let before = app.scan().await;

    let r = post(TestApp::reserve_body("room", hour_from_now(21), "a@example.com")).await.unwrap();
    assert_problem(r, 422, "idempotency_key_reused").await;
    assert_eq!(app.scan().await, before, "nothing written");
}

#[tokio::test]
async fn a_failed_request_releases_its_key_for_a_retry() {
    let app = spawn_app().await;
    let body = TestApp::reserve_body("later", hour_from_now(20), "a@example.com");
    let send = || app.http.post(app.url("/v1/reservations")).header("Idempotency-Key", "key-3").json(&body).send();
    // The resource does not exist yet: refused, and the key is not burnt.
    assert_problem(send().await.unwrap(), 422, "unknown_resource").await;
    assert!(app.scan().await.is_empty(), "no idempotency record left behind");
    app.put_resource("later", &open_all_day()).await;
    assert_eq!(send().await.unwrap().status(), StatusCode::CREATED);
}

#[tokio::test]
async fn twenty_concurrent_requests_with_one_key_make_one_hold() {
    let app = spawn_app().await;
    app.put_resource("room", &open_all_day()).await;
    let body = TestApp::reserve_body("room", hour_from_now(22), "a@example.com");
    let requests = (0..20).map(|_| async {
        let r = app
            .http
            .post(app.url("/v1/reservations"))
            .header("Idempotency-Key", "key-4")
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json::<Value>().await.unwrap())
    });
    let outcomes = futures::future::join_all(requests).await;

    // The key's record is written with the hold, in one transaction: a
    // duplicate either commits first or finds the record and replays it.
    let mut ids = std::collections::BTreeSet::new();
    for (status, body) in &outcomes {
        assert_eq!(*status, 201, "every duplicate gets the one answer: {body}");
        ids.insert(body["reservation_id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids.len(), 1, "every 201 names the same reservation: {ids:?}");
    let holds = app.live_holds().await;
    assert_eq!(holds.len(), 1, "one hold");
    assert_eq!(s(&holds[0], "reservation_id"), *ids.first().unwrap());
}
