//! Teams: round-robin takes one free member atomically, collective takes all
//! of them in one transaction or nothing.

use crate::helpers::*;
use chrono::{Duration, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// Puts members `m1..=m{n}` (open around the clock, one-hour slots) and a
/// team `team` over them.
async fn team_of(app: &TestApp, team: &str, assignment: &str, n: usize) -> Vec<String> {
    let members: Vec<String> = (1..=n).map(|i| format!("m{i}")).collect();
    for m in &members {
        app.put_resource(m, &open_all_day()).await;
    }
    let mut spec = open_all_day();
    spec["name"] = json!("Team");
    spec["team"] = json!({ "members": members, "assignment": assignment });
    app.put_resource(team, &spec).await;
    members
}

/// The members each live booking item of `team` is hosted by.
async fn hosts_by_booking(app: &TestApp, team: &str) -> BTreeMap<String, Vec<String>> {
    let now = Utc::now().timestamp();
    app.scan()
        .await
        .into_iter()
        .filter(|i| s(i, "kind") == "claim" && s(i, "resource_id") == team)
        .filter(|i| match i.get("expires_at") {
            Some(aws_sdk_dynamodb::types::AttributeValue::N(t)) => t.parse::<i64>().unwrap() > now,
            _ => true,
        })
        .map(|i| {
            let hosts = match i.get("hosts") {
                Some(aws_sdk_dynamodb::types::AttributeValue::L(l)) => {
                    l.iter().map(|v| v.as_s().unwrap().clone()).collect()
                }
                _ => Vec::new(),
            };
            (s(&i, "reservation_id"), hosts)
        })
        .collect()
}

/// The reservation ids holding cells of `member`.
async fn cell_holders(app: &TestApp, member: &str) -> BTreeSet<String> {
    app.scan()
        .await
        .iter()
        .filter(|i| s(i, "pk").starts_with(&format!("CELL#{member}#")) && i.contains_key("cell"))
        .map(|i| s(i, "reservation_id"))
        .collect()
}

#[tokio::test]
async fn sixty_round_robin_holds_on_one_start_give_three_members_one_each() {
    let app = spawn_app().await;
    let members = team_of(&app, "rr", "round_robin", 3).await;
    let start = hour_from_now(30);
    let app = &app;
    let outcomes = futures::future::join_all((0..60).map(|n| async move {
        let r = app.reserve("rr", start, &format!("c{n}@example.com")).await;
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap();
        (status, body)
    }))
    .await;
    let winners: Vec<String> = outcomes
        .iter()
        .filter(|(s, _)| *s == 201)
        .map(|(_, b)| b["reservation_id"].as_str().unwrap().to_owned())
        .collect();
    for (status, body) in &outcomes {
        assert!(*status == 201 || (*status == 409 && body["type"] == "slot_taken"), "{status}: {body}");
    }
    assert_eq!(winners.len(), 3, "one winner per member");
    let hosts = hosts_by_booking(app, "rr").await;
    assert_eq!(hosts.keys().cloned().collect::<BTreeSet<_>>(), winners.iter().cloned().collect());
    let assigned: BTreeSet<String> = hosts
        .values()
        .map(|h| {
            assert_eq!(h.len(), 1, "a round-robin booking has one host");
            h[0].clone()
        })
        .collect();
    assert_eq!(assigned, members.iter().cloned().collect(), "three different members");
    for m in &members {
        let holders = cell_holders(app, m).await;
        assert_eq!(holders.len(), 1, "{m}'s cells are one booking's: {holders:?}");
        assert!(winners.contains(holders.first().unwrap()));
    }
    assert!(app.slots("rr", start, start + Duration::minutes(1)).await.is_empty(), "no member left");
    // The host's list of the team's bookings finds them through the members.
    let query = [("from", rfc3339(start - Duration::hours(1))), ("to", rfc3339(start + Duration::hours(1)))];
    let r = app
        .http
        .get(app.url("/v1/admin/resources/rr/bookings"))
        .query(&query)
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let listed: Value = r.json().await.unwrap();
    let ids: BTreeSet<String> = listed["bookings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["reservation_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, winners.iter().cloned().collect(), "{listed}");
}

#[tokio::test]
async fn a_members_own_booking_or_closed_hours_remove_only_that_member() {
    let app = spawn_app().await;
    team_of(&app, "rr", "round_robin", 3).await;
    // `start` and the hour after it are on one UTC day: the load that ranks
    // the members counts bookings of the day (at 23:00 the next hour is a
    // new day, all members tie and m2 may be drawn; found by CI at 17:xx UTC).
    let start = day_after_tomorrow_at(10);
    // m1 is booked directly; m3 is closed at that hour (a date override).
    let r = app.reserve("m1", start, "direct@example.com").await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let mut m3 = open_all_day();
    let date = start.date_naive().to_string();
    let hours = json!([{"start": "00:00", "end": "10:00"}, {"start": "11:00", "end": "24:00"}]);
    m3["date_overrides"] = json!([{ "date": date, "hours": hours }]);
    app.put_resource("m3", &m3).await;

    assert_eq!(app.slots("rr", start, start + Duration::minutes(1)).await, vec![rfc3339(start)], "m2 is free");
    let r = app.reserve("rr", start, "first@example.com").await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let hosts = hosts_by_booking(&app, "rr").await;
    assert_eq!(hosts.values().cloned().collect::<Vec<_>>(), vec![vec!["m2".to_owned()]], "only m2 was free");
    let r = app.reserve("rr", start, "second@example.com").await;
    assert_problem(r, 409, "slot_taken").await;
    assert!(app.slots("rr", start, start + Duration::minutes(1)).await.is_empty());
    // An hour later all three are free again and the load decides: not m2.
    let later = start + Duration::hours(1);
    let r = app.reserve("rr", later, "third@example.com").await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let id = app.remember(&r.json().await.unwrap());
    let hosts = hosts_by_booking(&app, "rr").await;
    assert_ne!(hosts[&id], vec!["m2".to_owned()], "the member with a booking that day goes last");
}

#[tokio::test]
async fn collective_holds_need_every_member_and_never_leave_a_partial_claim() {
    let app = spawn_app().await;
    let members = team_of(&app, "panel", "collective", 3).await;
    let start = hour_from_now(30);
    let r = app.reserve("m2", start, "direct@example.com").await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert!(app.slots("panel", start, start + Duration::minutes(1)).await.is_empty(), "m2 is busy");
    let before = app.scan().await;
    let r = app.reserve("panel", start, "panel@example.com").await;
    assert_problem(r, 409, "slot_taken").await;
    assert_eq!(app.scan().await, before, "the failed condition on m2 left nothing on m1 or m3");

    let later = start + Duration::hours(1);
    assert_eq!(app.slots("panel", later, later + Duration::minutes(1)).await, vec![rfc3339(later)]);
    let r = app.reserve("panel", later, "panel@example.com").await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let id = app.remember(&r.json().await.unwrap());
    for m in &members {
        assert!(cell_holders(&app, m).await.contains(&id), "{m} is claimed");
        let r = app.reserve(m, later, "direct@example.com").await;
        assert_problem(r, 409, "slot_taken").await;
    }

    // A race of collective holds and single holds on the members: every
    // collective booking holds all members' cells, none holds some.
    let t = start + Duration::hours(4);
    let app = &app;
    let outcomes = futures::future::join_all((0..40).map(|n| async move {
        let resource = if n % 2 == 0 { "panel".to_owned() } else { format!("m{}", 1 + n % 3) };
        let r = app.reserve(&resource, t, &format!("r{n}@example.com")).await;
        (resource, r.status().as_u16())
    }))
    .await;
    assert!(outcomes.iter().all(|(_, s)| *s == 201 || *s == 409), "{outcomes:?}");
    let panel_wins = outcomes.iter().filter(|(r, s)| r == "panel" && *s == 201).count();
    let single_wins = outcomes.iter().filter(|(r, s)| r != "panel" && *s == 201).count();
    assert!(
        (panel_wins == 1 && single_wins == 0) || (panel_wins == 0 && (1..=3).contains(&single_wins)),
        "{outcomes:?}"
    );
    let hosts = hosts_by_booking(app, "panel").await;
    for (id, h) in &hosts {
        assert_eq!(h.len(), 3, "{id} hosts {h:?}");
        for m in &members {
            assert!(cell_holders(app, m).await.contains(id), "{id} misses {m}");
        }
    }
}

#[tokio::test]
async fn a_team_resource_is_checked_at_put() {
    let app = spawn_app().await;
    app.put_resource("m1", &open_all_day()).await;
    let put = |spec: Value| {
        let app = &app;
        async move { app.http.put(app.url("/v1/resources/t")).bearer_auth(ADMIN_TOKEN).json(&spec).send().await.unwrap() }
    };
    let team = |members: Value, assignment: &str| {
        let mut spec = open_all_day();
        spec["team"] = json!({ "members": members, "assignment": assignment });
        spec
    };
    for (spec, says) in [
        (team(json!(["m1", "nobody"]), "round_robin"), "no resource nobody"),
        (team(json!(["m1"]), "round_robin"), "2 to 10 members"),
        (team(json!(["m1", "m1"]), "collective"), "given twice"),
    ] {
        let body = assert_problem(put(spec).await, 422, "invalid_resource").await;
        assert!(body["detail"].as_str().unwrap().contains(says), "{body}");
    }
    // Four members x 13 cells (an hour and a 5-minute buffer) is more than one transaction holds.
    app.put_resource("m2", &open_all_day()).await;
    app.put_resource("m3", &open_all_day()).await;
    app.put_resource("m4", &open_all_day()).await;
    let mut wide = team(json!(["m1", "m2", "m3", "m4"]), "collective");
    wide.as_object_mut().unwrap().remove("slot_minutes");
    wide.as_object_mut().unwrap().remove("price");
    wide["booking_types"] = json!([{ "id": "panel", "buffer_after_minutes": 5,
        "durations": [{ "minutes": 60, "price": { "amount": 100, "currency": "eur" } }] }]);
    let body = assert_problem(put(wide).await, 422, "invalid_resource").await;
    assert!(body["detail"].as_str().unwrap().contains("collective"), "{body}");
    // A team of teams is refused.
    app.put_resource("pair", &team(json!(["m1", "m2"]), "round_robin")).await;
    let body = assert_problem(put(team(json!(["pair", "m3"]), "round_robin")).await, 422, "invalid_resource").await;
    assert!(body["detail"].as_str().unwrap().contains("is a team"), "{body}");
}

#[tokio::test]
async fn a_members_own_calendar_event_removes_only_that_member() {
    use crate::busy::{Scheduler, busy_spec, calendars, deadline, ics_time, put_caldav_event, wait_until_readable};
    use crate::calendar_adapters::fresh_collection;
    let app = spawn_app().await;
    let mut collections = Vec::new();
    for m in ["m1", "m2", "m3"] {
        let collection = fresh_collection().await;
        app.put_resource(m, &busy_spec(json!({ "type": "caldav", "url": collection }), "UTC")).await;
        collections.push(collection);
    }
    for (team, assignment) in [("rr", "round_robin"), ("panel", "collective")] {
        let mut spec = open_all_day();
        spec["team"] = json!({ "members": ["m1", "m2", "m3"], "assignment": assignment });
        app.put_resource(team, &spec).await;
    }
    let _scheduler = Scheduler::start(&app.store, calendars(None));
    for m in ["m1", "m2", "m3"] {
        wait_until_readable(&app, m).await;
    }
    let start = hour_from_now(30);
    assert_eq!(app.slots("panel", start, start + Duration::minutes(1)).await, vec![rfc3339(start)]);
    // m1's host puts a private appointment on m1's calendar, and m2 is busy too.
    let props = format!("DTSTART:{}\nDTEND:{}", ics_time(start), ics_time(start + Duration::minutes(20)));
    put_caldav_event(&collections[0], "dentist", &props).await;
    put_caldav_event(&collections[1], "school-run", &props).await;
    let started = std::time::Instant::now();
    while !app.slots("panel", start, start + Duration::minutes(1)).await.is_empty() {
        assert!(started.elapsed() < deadline(), "the collective slot is still offered");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_problem(app.reserve("panel", start, "panel@example.com").await, 409, "host_busy").await;
    // Round-robin still offers the slot (m3 is free) and gives it to m3.
    assert_eq!(app.slots("rr", start, start + Duration::minutes(1)).await, vec![rfc3339(start)]);
    let r = app.reserve("rr", start, "rr@example.com").await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let id = app.remember(&r.json().await.unwrap());
    assert_eq!(hosts_by_booking(&app, "rr").await[&id], vec!["m3".to_owned()]);
    // Paid, its event lands on m3's calendar: m3's own, not busy time.
    let (status, body) = app.checkout(&id).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    app.pay(body["session_id"].as_str().unwrap(), "").await;
    crate::calendar_flow::Writer::new(&app).drain(&app).await;
    assert_eq!(crate::calendar_flow::event_ics(&collections[2], &id).await.0, StatusCode::OK);
    let written = Utc::now();
    let m3 = slotguard::domain::ResourceId::parse("m3").unwrap();
    let mut waited = 0;
    loop {
        let snapshot = slotguard::ports::BusyStore::busy_snapshot(&app.store, &m3).await.unwrap().unwrap();
        if snapshot.fetched_at > written {
            assert!(
                !snapshot.intervals.iter().any(|(s, e)| *s < start + Duration::hours(1) && start < *e),
                "the team booking's own event was read as m3's busy time: {:?}",
                snapshot.intervals
            );
            break;
        }
        waited += 1;
        assert!(waited < 100, "no refresh of m3 after the write");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // With m3 taken, only busy time stands in the way: 409 host_busy.
    assert_problem(app.reserve("rr", start, "again@example.com").await, 409, "host_busy").await;
    // An hour later nobody is busy.
    let later = start + Duration::hours(1);
    assert_eq!(app.reserve("panel", later, "panel@example.com").await.status(), StatusCode::CREATED);
}
