//! Seats: several customers per slot, each seat held, paid, refunded and
//! cancelled like a booking of its own; seats and single bookings of the same
//! host never overlap.

use crate::helpers::*;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Duration, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// A resource open around the clock (UTC) with a seated 60-minute `class` of
/// `seats` seats and a single 60-minute `private` type, both starting every 30 minutes.
fn seated(seats: u32) -> Value {
    let mut spec = open_all_day();
    spec.as_object_mut().unwrap().remove("slot_minutes");
    spec.as_object_mut().unwrap().remove("price");
    spec["booking_types"] = json!([
        { "id": "class", "durations": [{ "minutes": 60, "price": { "amount": 1500, "currency": "eur" } }],
          "start_interval_minutes": 30, "seats": seats },
        { "id": "private", "durations": [{ "minutes": 60, "price": { "amount": 6000, "currency": "eur" } }],
          "start_interval_minutes": 30 }
    ]);
    spec
}

impl TestApp {
    /// Reserves `booking_type` at `start`; returns the status and body.
    pub(crate) async fn reserve_type(
        &self,
        resource: &str,
        booking_type: &str,
        start: DateTime<Utc>,
        email: &str,
    ) -> (StatusCode, Value) {
        let mut body = Self::reserve_body(resource, start, email);
        body["booking_type"] = json!(booking_type);
        let r = self.http.post(self.url("/v1/reservations")).json(&body).send().await.unwrap();
        let status = r.status();
        let body: Value = r.json().await.unwrap();
        if status == StatusCode::CREATED {
            self.remember(&body);
        }
        (status, body)
    }

    /// The availability answer for `booking_type` in `[from, to)`.
    pub(crate) async fn availability(
        &self,
        resource: &str,
        booking_type: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Value {
        let query = [("from", rfc3339(from)), ("to", rfc3339(to)), ("type", booking_type.to_owned())];
        let r = self.http.get(self.url(&format!("/v1/resources/{resource}/slots"))).query(&query).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        r.json().await.unwrap()
    }

    /// Seat tokens of the table live at `now`, as (reservation id, index).
    async fn live_seat_tokens(&self) -> BTreeSet<(String, i64)> {
        let now = Utc::now().timestamp();
        self.scan()
            .await
            .into_iter()
            .filter(|i| i.contains_key("seat_of"))
            .filter(|i| s(i, "status") == "BOOKED" || number(i, "expires_at").is_some_and(|t| t > now))
            .map(|i| (s(&i, "reservation_id"), number(&i, "token_index").unwrap()))
            .collect()
    }
}

fn number(item: &Item, name: &str) -> Option<i64> {
    match item.get(name) {
        Some(AttributeValue::N(n)) => n.parse().ok(),
        _ => None,
    }
}

fn seats_left(availability: &Value, start: DateTime<Utc>) -> Option<u64> {
    let slots = availability["slots"].as_array().unwrap();
    slots
        .iter()
        .find(|s| s["start"] == rfc3339(start))
        .map(|s| s["seats_left"].as_u64().expect("a seated slot shows seats_left"))
}

#[tokio::test]
async fn two_hundred_holds_on_a_five_seat_slot_give_exactly_five_seats() {
    let app = spawn_app().await;
    app.put_resource("yoga", &seated(5)).await;
    let start = hour_from_now(30);
    let app = &app;
    let outcomes = futures::future::join_all(
        (0..200).map(|n| async move { app.reserve_type("yoga", "class", start, &format!("c{n}@example.com")).await }),
    )
    .await;
    let (mut created, mut sold_out) = (Vec::new(), 0);
    for (status, body) in &outcomes {
        match status.as_u16() {
            201 => created.push(body["reservation_id"].as_str().unwrap().to_owned()),
            409 => {
                assert_eq!(body["type"], "sold_out", "{body}");
                sold_out += 1;
            }
            other => panic!("unexpected status {other}: {body}"),
        }
    }
    assert_eq!((created.len(), sold_out), (5, 195));
    let tokens = app.live_seat_tokens().await;
    assert_eq!(tokens.len(), 5, "exactly five live seat claims: {tokens:?}");
    let holders: BTreeSet<&str> = tokens.iter().map(|(r, _)| r.as_str()).collect();
    let winners: BTreeSet<&str> = created.iter().map(String::as_str).collect();
    assert_eq!(holders, winners, "each seat belongs to a 201");
    let indexes: BTreeSet<i64> = tokens.iter().map(|(_, i)| *i).collect();
    assert_eq!(indexes, (0..5).collect(), "five different seats");
    assert_eq!(app.live_holds().await.len(), 5);
    let shown = app.availability("yoga", "class", start, start + Duration::hours(1)).await;
    assert_eq!(shown["seats"], 5);
    assert_eq!(seats_left(&shown, start), None, "a sold-out slot is not offered");
}

#[tokio::test]
async fn a_lapsed_seat_is_free_again_before_ttl_deletes_it() {
    let app = spawn_app().await;
    app.put_resource("yoga", &seated(2)).await;
    let start = hour_from_now(30);
    let window = (start, start + Duration::minutes(1));
    let (a, first) = app.reserve_type("yoga", "class", start, "a@example.com").await;
    assert_eq!(a, StatusCode::CREATED, "{first}");
    assert_eq!(seats_left(&app.availability("yoga", "class", window.0, window.1).await, start), Some(1));
    let (b, second) = app.reserve_type("yoga", "class", start, "b@example.com").await;
    assert_eq!(b, StatusCode::CREATED, "{second}");
    let (c, refused) = app.reserve_type("yoga", "class", start, "c@example.com").await;
    assert_eq!((c, refused["type"].as_str()), (StatusCode::CONFLICT, Some("sold_out")));

    app.lapse_hold(second["reservation_id"].as_str().unwrap()).await;
    assert_eq!(app.live_seat_tokens().await.len(), 1, "the lapsed seat's token is still stored but not live");
    assert_eq!(seats_left(&app.availability("yoga", "class", window.0, window.1).await, start), Some(1));
    let (d, again) = app.reserve_type("yoga", "class", start, "d@example.com").await;
    assert_eq!(d, StatusCode::CREATED, "{again}");
    assert_eq!(app.live_seat_tokens().await.len(), 2);
}

#[tokio::test]
async fn seats_and_single_bookings_of_one_host_never_overlap() {
    let app = spawn_app().await;
    app.put_resource("yoga", &seated(3)).await;
    // The slots listed below (up to start + 2 h 30) stay inside one day.
    let start = day_after_tomorrow_at(10);
    let (held, seat) = app.reserve_type("yoga", "class", start, "seat@example.com").await;
    assert_eq!(held, StatusCode::CREATED, "{seat}");
    // The same start and a start half an hour later overlap the seat.
    for t in [start, start + Duration::minutes(30), start - Duration::minutes(30)] {
        let (status, body) = app.reserve_type("yoga", "private", t, "single@example.com").await;
        assert_eq!((status, body["type"].as_str()), (StatusCode::CONFLICT, Some("slot_taken")), "{t}");
    }
    let private = app.availability("yoga", "private", start - Duration::hours(1), start + Duration::hours(2)).await;
    let offered: Vec<&str> =
        private["slots"].as_array().unwrap().iter().map(|s| s["start"].as_str().unwrap()).collect();
    let expected = [start - Duration::hours(1), start + Duration::hours(1), start + Duration::minutes(90)];
    assert_eq!(offered, expected.map(rfc3339));

    // Once the only seat lapses, the cells are free for a single booking,
    // which then keeps seats out.
    app.lapse_hold(seat["reservation_id"].as_str().unwrap()).await;
    app.lapse_cells_of_group(start).await;
    let (single, body) = app.reserve_type("yoga", "private", start + Duration::minutes(30), "single@example.com").await;
    assert_eq!(single, StatusCode::CREATED, "{body}");
    let (status, body) = app.reserve_type("yoga", "class", start, "late@example.com").await;
    assert_eq!((status, body["type"].as_str()), (StatusCode::CONFLICT, Some("slot_taken")));

    // A mixed race on a fresh start: either seats or one single booking, never both.
    let t = start + Duration::hours(5);
    let app = &app;
    let outcomes = futures::future::join_all((0..60).map(|n| async move {
        let kind = if n % 2 == 0 { "class" } else { "private" };
        let (status, _) = app.reserve_type("yoga", kind, t, &format!("m{n}@example.com")).await;
        (kind, status.as_u16())
    }))
    .await;
    let won = |k: &str| outcomes.iter().filter(|(kind, s)| *kind == k && *s == 201).count();
    assert!(outcomes.iter().all(|(_, s)| *s == 201 || *s == 409), "{outcomes:?}");
    assert!(
        (won("class") == 0 && won("private") == 1) || (won("class") >= 1 && won("class") <= 3 && won("private") == 0),
        "seats {} and singles {} at once",
        won("class"),
        won("private")
    );
}

impl TestApp {
    /// Lets the cells of the seat group starting at `start` lapse, as the
    /// last seat hold's expiry passing does.
    async fn lapse_cells_of_group(&self, start: DateTime<Utc>) {
        let past = (Utc::now() - Duration::seconds(1)).timestamp().to_string();
        for item in
            self.scan().await.into_iter().filter(|i| s(i, "status") == "SEATED" && s(i, "start") == rfc3339(start))
        {
            let key = [("pk", item["pk"].clone()), ("sk", item["sk"].clone())]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect();
            self.store
                .client()
                .update_item()
                .table_name(self.store.table())
                .set_key(Some(key))
                .update_expression("SET seats_until = :past")
                .expression_attribute_values(":past", AttributeValue::N(past.clone()))
                .send()
                .await
                .unwrap();
        }
    }

    /// The `booked` count of every cell of the seat group starting at `start`.
    async fn group_booked(&self, start: DateTime<Utc>) -> BTreeSet<i64> {
        self.scan()
            .await
            .iter()
            .filter(|i| s(i, "status") == "SEATED" && s(i, "start") == rfc3339(start))
            .map(|i| number(i, "booked").unwrap())
            .collect()
    }
}

#[tokio::test]
async fn a_seat_is_paid_refunded_late_and_cancelled_like_a_single_booking() {
    let app = spawn_app().await;
    app.put_resource("yoga", &seated(2)).await;
    let start = hour_from_now(30);
    let checkout = |email: &'static str| {
        let app = &app;
        async move {
            let (status, held) = app.reserve_type("yoga", "class", start, email).await;
            assert_eq!(status, StatusCode::CREATED, "{held}");
            let id = held["reservation_id"].as_str().unwrap().to_owned();
            let (status, body) = app.checkout(&id).await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
            (id, body["session_id"].as_str().unwrap().to_owned())
        }
    };
    let (a, a_session) = checkout("a@example.com").await;
    app.pay(&a_session, "").await;
    assert_eq!(app.status_text(&a).await, "confirmed");
    assert_eq!(app.group_booked(start).await, BTreeSet::from([1]), "the paid seat is counted on every cell");

    // B's hold lapses, C takes the seat B had, then B pays: B is refunded.
    let (b, b_session) = checkout("b@example.com").await;
    app.lapse_hold(&b).await;
    let (status, c) = app.reserve_type("yoga", "class", start, "c@example.com").await;
    assert_eq!(status, StatusCode::CREATED, "{c}");
    app.pay(&b_session, "").await;
    assert_eq!(app.status_text(&b).await, "refunded");
    assert_eq!(app.refunds().await.len(), 1, "the late payment is refunded");
    assert_eq!(app.live_seat_tokens().await.len(), 2, "A's booked seat and C's hold");

    // Cancelling A refunds it and frees its seat; the cells count no paid seat.
    let r = app.cancel_as_admin(&a).await;
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    assert_eq!(app.status_text(&a).await, "cancelled");
    assert_eq!(app.refunds().await.len(), 2);
    assert_eq!(app.group_booked(start).await, BTreeSet::from([0]));
    let shown = app.availability("yoga", "class", start, start + Duration::minutes(1)).await;
    assert_eq!(seats_left(&shown, start), Some(1), "C still holds one seat");
    // C's hold still keeps single bookings out.
    let (status, _) = app.reserve_type("yoga", "private", start, "single@example.com").await;
    assert_eq!(status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn a_seat_cancelled_after_its_groups_cells_expired_is_cancelled_not_stuck() {
    let app = spawn_app().await;
    app.put_resource("yoga", &seated(3)).await;
    let start = day_after_tomorrow_at(10);
    let (status, held) = app.reserve_type("yoga", "class", start, "ada@example.com").await;
    assert_eq!(status, StatusCode::CREATED, "{held}");
    let id = held["reservation_id"].as_str().unwrap().to_owned();
    let (status, body) = app.checkout(&id).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    app.pay(body["session_id"].as_str().unwrap(), "").await;
    assert_eq!(app.status_text(&id).await, "confirmed");

    // The group's cells carry a TTL (the slot's end + 30 days): the table
    // has removed them by the time the host cancels an old seat.
    let cells: Vec<Item> = app.scan().await.into_iter().filter(|i| i.contains_key("seat_group")).collect();
    assert!(!cells.is_empty(), "a paid seat's group has cells");
    for cell in &cells {
        let key = [("pk", cell["pk"].clone()), ("sk", cell["sk"].clone())];
        let mut delete = app.store.client().delete_item().table_name(app.store.table());
        for (name, value) in key {
            delete = delete.key(name, value);
        }
        delete.send().await.unwrap();
    }
    let r = app.cancel_as_admin(&id).await;
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    assert_eq!(app.status_text(&id).await, "cancelled", "a 200 means cancelled");
    let left: Vec<Item> = app
        .scan()
        .await
        .into_iter()
        .filter(|i| i.get("reservation_id").and_then(|v| v.as_s().ok()) == Some(&id))
        .filter(|i| matches!(i.get("kind").and_then(|v| v.as_s().ok()).map(String::as_str), Some("claim" | "lock")))
        .collect();
    assert!(left.is_empty(), "the booking and its locks are gone: {left:?}");
}
