//! Holds: the race, expiry, availability and the status route.

use crate::helpers::*;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{Duration, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};
use slotguard::domain::{BookingTerms, Claim, Customer, DEFAULT_TYPE_ID, Price, ReservationId, ResourceId, SlotKey};
use slotguard::ports::{ClaimStore, HoldOutcome};
use std::collections::HashMap;

#[tokio::test]
async fn two_hundred_concurrent_reserves_for_ten_slots_yield_exactly_ten_holds() {
    let app = spawn_app().await;
    app.put_resource("race", &open_all_day()).await;
    let slots: Vec<_> = (0..10).map(|i| hour_from_now(24 + i)).collect();

    // 20 clients per slot, all 200 requests in flight at once over real sockets.
    let app = &app;
    let requests = slots.iter().flat_map(|&start| {
        (0..20).map(move |n| async move {
            let r = app.reserve("race", start, &format!("c{n}@example.com")).await;
            let status = r.status();
            let body: Value = r.json().await.unwrap();
            (start, status, body)
        })
    });
    let outcomes = futures::future::join_all(requests).await;

    let mut winners: HashMap<_, Vec<String>> = HashMap::new();
    let (mut created, mut taken) = (0, 0);
    for (start, status, body) in &outcomes {
        match status.as_u16() {
            201 => {
                created += 1;
                winners.entry(*start).or_default().push(body["reservation_id"].as_str().unwrap().to_owned());
            }
            409 => {
                assert_eq!(body["type"], "slot_taken", "{body}");
                taken += 1;
            }
            other => panic!("unexpected status {other}: {body}"),
        }
    }
    assert_eq!((created, taken), (10, 190));
    assert_eq!(winners.len(), 10, "one winner per slot");

    let holds = app.live_holds().await;
    assert_eq!(holds.len(), 10, "the table holds exactly ten live holds");
    for hold in &holds {
        let start = chrono::DateTime::parse_from_rfc3339(&s(hold, "start")).unwrap().with_timezone(&Utc);
        assert_eq!(winners[&start], vec![s(hold, "reservation_id")], "the hold belongs to the 201");
    }
}

/// Writes a hold whose `expires_at` has passed: the item exists, as it does
/// until DynamoDB's TTL sweeper gets to it (up to ~2 days).
async fn lapsed_hold(app: &TestApp, resource: &str, start: chrono::DateTime<Utc>) -> ReservationId {
    let slot = SlotKey { resource_id: ResourceId::parse(resource).unwrap(), start };
    let customer = Customer::parse("Early Bird", "early@example.com").unwrap();
    let price = Price { amount: 2500, currency: "eur".into() };
    let (placed, lapsed) = (Utc::now() - Duration::minutes(31), Utc::now() - Duration::minutes(1));
    let terms = BookingTerms {
        booking_type: DEFAULT_TYPE_ID.into(),
        duration_minutes: 60,
        buffer_before_minutes: 0,
        buffer_after_minutes: 0,
        cancellation: Default::default(),
        reschedule: Default::default(),
        seats: None,
    };
    let claim = Claim::hold(slot, start + Duration::hours(1), terms, customer, &price, placed, lapsed);
    assert!(matches!(app.store.place_hold(&claim, None, Utc::now()).await.unwrap(), HoldOutcome::Placed));
    claim.reservation_id
}

#[tokio::test]
async fn an_expired_hold_still_in_the_table_frees_its_slot() {
    let app = spawn_app().await;
    app.put_resource("room", &open_all_day()).await;
    let start = hour_from_now(30);
    let old = lapsed_hold(&app, "room", start).await;

    let item = app.store.get_claim(&old).await.unwrap().expect("the lapsed item is still readable");
    assert_eq!(item.reservation_id, old);
    assert!(item.expires_at.unwrap() <= Utc::now());

    let open = app.slots("room", start, start + Duration::hours(1)).await;
    assert_eq!(open, vec![rfc3339(start)], "availability shows the lapsed slot as open");
    let (status, body) = app.status_of(old.as_str()).await;
    assert_eq!((status, body["status"].as_str()), (StatusCode::OK, Some("expired")));

    let r = app.reserve("room", start, "late@example.com").await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let new: Value = r.json().await.unwrap();
    assert_ne!(new["reservation_id"].as_str(), Some(old.as_str()));

    let (_, body) = app.status_of(old.as_str()).await;
    assert_eq!(body["status"], "expired", "the overwritten hold still reads expired");
    assert!(app.slots("room", start, start + Duration::hours(1)).await.is_empty());
    assert_eq!(app.live_holds().await.len(), 1);
}

#[tokio::test]
async fn availability_lists_future_grid_slots_minus_live_claims() {
    let app = spawn_app().await;
    app.put_resource("room", &open_all_day()).await;
    let from = hour_from_now(48);
    let to = from + Duration::hours(6);
    let all = app.slots("room", from, to).await;
    assert_eq!(all.len(), 6);
    assert_eq!(all[0], rfc3339(from));

    let r = app.reserve("room", from + Duration::hours(2), "a@example.com").await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let after = app.slots("room", from, to).await;
    assert_eq!(after.len(), 5);
    assert!(!after.contains(&rfc3339(from + Duration::hours(2))));

    // Slots already started are never offered, whatever `from` says.
    let now_range = app.slots("room", Utc::now() - Duration::hours(5), Utc::now() + Duration::hours(2)).await;
    assert!(now_range.iter().all(|s| s.as_str() > rfc3339(Utc::now()).as_str()), "{now_range:?}");

    // A range across several UTC days: one Query per day, all claims seen.
    let week = app.slots("room", from, from + Duration::days(7)).await;
    assert_eq!(week.len(), 7 * 24 - 1);
}

#[tokio::test]
async fn the_status_route_tells_the_customer_where_their_hold_stands() {
    let app = spawn_app().await;
    app.put_resource("room", &open_all_day()).await;
    let start = hour_from_now(26);
    let r = app.reserve("room", start, "a@example.com").await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let held: Value = r.json().await.unwrap();
    assert_eq!(held["status"], "held");
    assert_eq!(held["amount"], 2500);
    assert_eq!(held["currency"], "eur");
    assert_eq!(held["end"], rfc3339(start + Duration::hours(1)));
    let expires = chrono::DateTime::parse_from_rfc3339(held["expires_at"].as_str().unwrap()).unwrap();
    let hold_for = expires.with_timezone(&Utc) - Utc::now();
    assert!(hold_for > Duration::minutes(29) && hold_for <= Duration::minutes(30), "{hold_for}");

    let id = held["reservation_id"].as_str().unwrap();
    assert_eq!(location, format!("/v1/reservations/{id}"));
    // Whoever has only the id sees the status and the times.
    let (status, public) = app.status_of(id).await;
    assert_eq!(status, StatusCode::OK);
    let times = json!({"reservation_id": id, "resource_id": "room", "status": "held", "start": rfc3339(start), "end": held["end"]});
    assert_eq!(public, times, "the public view");
    // The page that reserved holds the secret, and sees the details.
    let secret = held["reservation_secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("rsk_") && secret.len() > 40, "{secret}");
    app.remember(&held);
    let (status, body) = app.status_of(id).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "held");
    assert_eq!(body["start"], rfc3339(start));
    assert_eq!(body["expires_at"], held["expires_at"]);
    assert_eq!((&body["amount"], &body["currency"]), (&json!(2500), &json!("eur")));
    let items = format!("{:?}", app.scan().await);
    assert!(!items.contains(&secret) && !items.contains(&secret[4..]), "the table keeps the secret in clear");

    let item = app.store.get_claim(&ReservationId::parse(id).unwrap()).await.unwrap().unwrap();
    let ttl = app.scan().await.into_iter().find(|i| s(i, "reservation_id") == id).unwrap()["expires_at"].clone();
    assert_eq!(
        ttl,
        AttributeValue::N(item.expires_at.unwrap().timestamp().to_string()),
        "the hold carries the TTL attribute"
    );
}

#[tokio::test]
async fn storage_down_is_a_503_with_retry_after() {
    // Nothing listens on port 9 of loopback: every call fails to connect.
    let dead =
        slotguard::adapters::dynamo::DynamoStore::new(slotguard_local::dev::dynamodb_client("http://127.0.0.1:9"), "t");
    let app = spawn_app_on(dead).await;
    let r = app.reserve("room", hour_from_now(5), "a@example.com").await;
    assert!(r.headers().get("retry-after").is_some());
    assert_problem(r, 503, "service_unavailable").await;
    let r = app.http.get(app.url("/v1/resources/room/slots")).send().await.unwrap();
    assert_problem(r, 503, "service_unavailable").await;
}
