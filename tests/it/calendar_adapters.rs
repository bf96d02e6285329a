//! The calendar adapters against real servers: CalDAV against the Xandikos
//! that `scripts/test` starts (each test in its own calendar collection, made
//! with MKCALENDAR), with a fault-injecting proxy in front of it for the
//! failure cases; Google against the local stand-in in `fakes::google`.

use crate::fakes::fault_proxy::{Fault, FaultProxy};
use crate::fakes::google::FakeGoogle;
use chrono::{DateTime, Duration, TimeZone, Utc};
use futures::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::json;
use slotguard::adapters::caldav::{CalDavCalendar, CalDavConfig};
use slotguard::adapters::calendar_secrets::{CalendarSecrets, DEFAULT_PREFIX};
use slotguard::adapters::calendars::Calendars;
use slotguard::adapters::google::{GoogleCalendar, event_id};
use slotguard::adapters::outbound::OutboundPolicy;
use slotguard::domain::{CalendarTarget, Customer, ReservationId, ResourceId, SlotKey};
use slotguard::ports::{BookingEvent, Calendar, CalendarError, DeleteOutcome, WriteOutcome};
use std::time::Instant;

// ---------------------------------------------------------------------------
// Helpers

/// The Xandikos of the test stack.
fn caldav_server() -> String {
    crate::helpers::init_logs();
    std::env::var("SLOTGUARD_TEST_CALDAV_URL")
        .unwrap_or_else(|_| panic!("SLOTGUARD_TEST_CALDAV_URL is not set: run the tests with scripts/test"))
        .trim_end_matches('/')
        .to_owned()
}

/// A new, empty calendar collection on the test server: its URL, with the
/// trailing slash.
pub(crate) async fn fresh_collection() -> String {
    let url = format!("{}/user/calendars/{}/", caldav_server(), uuid::Uuid::new_v4().simple());
    let http = reqwest::Client::new();
    let mkcalendar = Method::from_bytes(b"MKCALENDAR").unwrap();
    let status = http.request(mkcalendar, &url).send().await.expect("MKCALENDAR reaches the server").status();
    if status == StatusCode::CREATED {
        return url;
    }
    // RFC 5689: servers without MKCALENDAR may take an extended MKCOL.
    let body = r#"<?xml version="1.0" encoding="utf-8"?>
<D:mkcol xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
  <D:set><D:prop><D:resourcetype><D:collection/><C:calendar/></D:resourcetype></D:prop></D:set>
</D:mkcol>"#;
    let mkcol = Method::from_bytes(b"MKCOL").unwrap();
    let response = http.request(mkcol, &url).header("content-type", "application/xml").body(body).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED, "neither MKCALENDAR ({status}) nor MKCOL made {url}");
    url
}

/// GET of one resource: status and body.
async fn get(url: &str) -> (StatusCode, String) {
    let response = reqwest::get(url).await.expect("GET reaches the server");
    (response.status(), response.text().await.unwrap_or_default())
}

/// PUTs a calendar object as another client would.
async fn put_raw(url: &str, ics: &str) {
    let response = reqwest::Client::new()
        .put(url)
        .header("content-type", "text/calendar; charset=utf-8")
        .body(ics.replace('\n', "\r\n"))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "PUT {url}: {}", response.status());
}

/// How many calendar objects the collection holds, by PROPFIND (not by the
/// adapter's own REPORT, which is under test).
pub(crate) async fn count_events(collection: &str) -> usize {
    let propfind = Method::from_bytes(b"PROPFIND").unwrap();
    let body = r#"<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:getetag/></D:prop></D:propfind>"#;
    let response = reqwest::Client::new()
        .request(propfind, collection)
        .header("Depth", "1")
        .header("content-type", "application/xml")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 207);
    response.text().await.unwrap().matches(".ics</").count()
}

/// Unfolded content lines of an iCalendar text.
fn unfolded(ics: &str) -> Vec<String> {
    ics.replace("\r\n", "\n").replace("\n ", "").replace("\n\t", "").lines().map(str::to_owned).collect()
}

/// The CalDAV adapter with the local stack's outbound policy (Xandikos and
/// the proxies listen on loopback, over plain http).
fn caldav_config(timeout_ms: u64) -> CalDavConfig {
    CalDavConfig::default()
        .with_timeout(std::time::Duration::from_millis(timeout_ms))
        .with_outbound(OutboundPolicy::local())
}

fn caldav(timeout_ms: u64) -> CalDavCalendar {
    CalDavCalendar::new(caldav_config(timeout_ms)).unwrap()
}

fn target(url: &str) -> CalendarTarget {
    CalendarTarget::caldav(url)
}

/// A booking on `start` for 30 minutes, with a fresh reservation id.
fn booking(start: DateTime<Utc>) -> BookingEvent {
    let slot = SlotKey { resource_id: ResourceId::parse("room-1").unwrap(), start };
    let reservation_id = ReservationId::new(&slot);
    BookingEvent {
        summary: "Coaching call: Zoë Ørsted, Jr.; (VIP)".into(),
        start,
        end: start + Duration::minutes(30),
        customer: Customer::parse("Zoë Ørsted, Jr.", "zoe@example.com").unwrap(),
        description: format!("Booked with slotguard.\nReservation {reservation_id}"),
        reservation_id,
        sequence: 0,
    }
}

fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
}

/// The same booking (same reservation id) moved to `start`, an hour longer,
/// with everything else it shows changed too: a reschedule.
fn rescheduled(event: &BookingEvent, start: DateTime<Utc>, sequence: u32) -> BookingEvent {
    BookingEvent {
        start,
        end: start + Duration::minutes(60),
        summary: format!("Moved: {}", event.summary),
        description: format!("{}\nRescheduled ({sequence})", event.description),
        customer: Customer::parse("Ada Lovelace", "ada@example.com").unwrap(),
        sequence,
        ..event.clone()
    }
}

/// Every slotguard event of the target in 2030–2032, by the adapter's own
/// listing: (reservation id, start, event ref).
async fn listed(calendar: &impl Calendar, target: &CalendarTarget) -> Vec<(ReservationId, DateTime<Utc>, String)> {
    let found = calendar.list_events(target, at(2030, 1, 1, 0, 0), at(2033, 1, 1, 0, 0)).await.unwrap();
    found.into_iter().map(|e| (e.reservation_id, e.start, e.event_ref)).collect()
}

fn created_ref(outcome: Result<WriteOutcome, CalendarError>) -> String {
    match outcome {
        Ok(WriteOutcome::Created { event_ref }) => event_ref,
        other => panic!("expected Created, got {other:?}"),
    }
}

fn assert_error(result: Result<impl std::fmt::Debug, CalendarError>, transient: bool, kind: &str) {
    match result {
        Err(e) => {
            assert_eq!(e.kind(), kind, "{e}");
            assert_eq!(e.is_transient(), transient, "{e}");
        }
        Ok(v) => panic!("expected a {kind} error, got {v:?}"),
    }
}

// ---------------------------------------------------------------------------
// CalDAV against Xandikos

#[tokio::test]
async fn caldav_put_writes_one_event_with_the_booking_details() {
    let collection = fresh_collection().await;
    let event = booking(at(2031, 3, 10, 9, 0));
    // The adapter must cope without the collection's trailing slash.
    let without_slash = collection.trim_end_matches('/');
    let event_ref = created_ref(caldav(5000).put_event(&target(without_slash), &event).await);

    let rid = event.reservation_id.as_str();
    assert_eq!(event_ref, format!("{collection}{rid}.ics"));
    assert_eq!(count_events(&collection).await, 1);
    let (status, ics) = get(&event_ref).await;
    assert_eq!(status, StatusCode::OK);
    let lines = unfolded(&ics);
    for expected in [
        format!("UID:{rid}@slotguard"),
        "DTSTART:20310310T090000Z".to_owned(),
        "DTEND:20310310T093000Z".to_owned(),
        "SEQUENCE:0".to_owned(),
        format!("X-SLOTGUARD-BOOKING:{rid}"),
        r"SUMMARY:Coaching call: Zoë Ørsted\, Jr.\; (VIP)".to_owned(),
    ] {
        assert!(lines.contains(&expected), "missing {expected:?} in {lines:#?}");
    }
    let attendee = lines.iter().find(|l| l.starts_with("ATTENDEE")).expect("an attendee");
    assert!(attendee.ends_with(":mailto:zoe@example.com"), "{attendee}");
    assert!(attendee.contains("ROLE=REQ-PARTICIPANT"), "{attendee}");
    assert!(attendee.contains("Zoë Ørsted, Jr."), "{attendee}");
    let description = lines.iter().find(|l| l.starts_with("DESCRIPTION:")).expect("a description");
    assert!(description.contains(rid), "{description}");
}

#[tokio::test]
async fn caldav_put_is_idempotent_in_sequence_and_concurrently() {
    let collection = fresh_collection().await;
    let calendar = caldav(5000);
    let target = target(&collection);

    let event = booking(at(2031, 3, 10, 10, 0));
    let mut outcomes = Vec::new();
    for _ in 0..5 {
        outcomes.push(calendar.put_event(&target, &event).await.unwrap());
    }
    let href = format!("{collection}{}.ics", event.reservation_id);
    assert_eq!(outcomes[0], WriteOutcome::Created { event_ref: href.clone() });
    assert!(outcomes[1..].iter().all(|o| *o == WriteOutcome::Updated { event_ref: href.clone() }), "{outcomes:?}");
    assert_eq!(count_events(&collection).await, 1);

    let concurrent = booking(at(2031, 3, 10, 11, 0));
    let results = join_all((0..5).map(|_| calendar.put_event(&target, &concurrent))).await;
    // The replacing PUTs may meet the server's lock (Xandikos: 423), a
    // transient error the writer retries, as here.
    let mut outcomes = Vec::new();
    for result in results {
        match result {
            Ok(outcome) => outcomes.push(outcome),
            Err(e) if e.is_transient() => outcomes.push(calendar.put_event(&target, &concurrent).await.unwrap()),
            Err(e) => panic!("a concurrent put failed for good: {e}"),
        }
    }
    let created = outcomes.iter().filter(|o| matches!(o, WriteOutcome::Created { .. })).count();
    assert_eq!(created, 1, "{outcomes:?}");
    assert!(outcomes.iter().all(|o| matches!(o, WriteOutcome::Created { .. } | WriteOutcome::Updated { .. })));
    assert_eq!(count_events(&collection).await, 2);
}

#[tokio::test]
async fn caldav_delete_removes_the_event_once() {
    let collection = fresh_collection().await;
    let (calendar, target) = (caldav(5000), target(&collection));
    let event = booking(at(2031, 3, 11, 9, 0));
    let event_ref = created_ref(calendar.put_event(&target, &event).await);
    let other = booking(at(2031, 3, 11, 10, 0));
    calendar.put_event(&target, &other).await.unwrap();

    assert_eq!(calendar.delete_event(&target, &event.reservation_id).await, Ok(DeleteOutcome::Deleted));
    assert_eq!(get(&event_ref).await.0, StatusCode::NOT_FOUND);
    assert_eq!(calendar.delete_event(&target, &event.reservation_id).await, Ok(DeleteOutcome::AlreadyGone));
    // Only that booking's event went.
    assert_eq!(count_events(&collection).await, 1);
}

/// Puts reservation `rid`'s event (09:00-09:30Z on `day`, `YYYYMMDD`) into
/// `collection` under a name the server chose, not slotguard's; returns its URL.
async fn file_under_another_name(collection: &str, rid: &ReservationId, day: &str) -> String {
    let renamed = format!("{collection}server-chosen-name.ics");
    put_raw(
        &renamed,
        &format!(
            "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//test//EN\nBEGIN:VEVENT\nUID:{rid}@slotguard\nDTSTAMP:20310101T000000Z\n\
             DTSTART:{day}T090000Z\nDTEND:{day}T093000Z\nSUMMARY:x\nX-SLOTGUARD-BOOKING:{rid}\nEND:VEVENT\nEND:VCALENDAR\n"
        ),
    )
    .await;
    renamed
}

#[tokio::test]
async fn caldav_delete_finds_an_event_the_server_filed_under_another_name() {
    let collection = fresh_collection().await;
    let (calendar, target) = (caldav(5000), target(&collection));
    let event = booking(at(2031, 3, 12, 9, 0));
    let rid = &event.reservation_id;
    let renamed = file_under_another_name(&collection, rid, "20310312").await;

    assert_eq!(calendar.delete_event(&target, rid).await, Ok(DeleteOutcome::Deleted));
    assert_eq!(get(&renamed).await.0, StatusCode::NOT_FOUND);
    assert_eq!(calendar.delete_event(&target, rid).await, Ok(DeleteOutcome::AlreadyGone));
}

#[tokio::test]
async fn caldav_list_finds_slotguard_events_starting_in_the_window() {
    let collection = fresh_collection().await;
    let (calendar, target) = (caldav(5000), target(&collection));
    let (from, to) = (at(2031, 4, 1, 10, 0), at(2031, 4, 1, 14, 0));

    let first = booking(from);
    let last = booking(at(2031, 4, 1, 13, 30));
    let before = booking(at(2031, 4, 1, 9, 0));
    let at_end = booking(to);
    // Overlaps the window but starts before it.
    let straddling = booking(at(2031, 4, 1, 9, 45));
    let mut refs = std::collections::HashMap::new();
    for event in [&first, &last, &before, &at_end, &straddling] {
        refs.insert(event.reservation_id.clone(), created_ref(calendar.put_event(&target, event).await));
    }
    // The host's own event in the window, and one whose marker is not a
    // reservation id.
    put_raw(
        &format!("{collection}dentist.ics"),
        "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//test//EN\nBEGIN:VEVENT\nUID:dentist@example.com\nDTSTAMP:20310101T000000Z\n\
         DTSTART:20310401T110000Z\nDTEND:20310401T120000Z\nSUMMARY:Dentist\nEND:VEVENT\nEND:VCALENDAR\n",
    )
    .await;
    put_raw(
        &format!("{collection}forged.ics"),
        "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//test//EN\nBEGIN:VEVENT\nUID:forged@example.com\nDTSTAMP:20310101T000000Z\n\
         DTSTART:20310401T120000Z\nDTEND:20310401T123000Z\nSUMMARY:x\nX-SLOTGUARD-BOOKING:not-a-reservation\nEND:VEVENT\nEND:VCALENDAR\n",
    )
    .await;
    assert_eq!(count_events(&collection).await, 7);

    let mut found = calendar.list_events(&target, from, to).await.unwrap();
    found.sort_by_key(|e| e.start);
    let summary: Vec<_> = found.iter().map(|e| (e.reservation_id.clone(), e.start, e.event_ref.clone())).collect();
    assert_eq!(
        summary,
        vec![
            (first.reservation_id.clone(), first.start, refs[&first.reservation_id].clone()),
            (last.reservation_id.clone(), last.start, refs[&last.reservation_id].clone()),
        ]
    );
    // A window with nothing in it.
    assert_eq!(calendar.list_events(&target, at(2031, 5, 1, 0, 0), at(2031, 5, 2, 0, 0)).await.unwrap(), vec![]);
}

#[tokio::test]
async fn caldav_put_into_a_missing_collection_fails_instead_of_pretending() {
    // Xandikos answers 409 Conflict, which must not read as "already there".
    let missing = format!("{}/user/calendars/missing-{}/", caldav_server(), uuid::Uuid::new_v4().simple());
    let result = caldav(5000).put_event(&target(&missing), &booking(at(2031, 3, 13, 9, 0))).await;
    assert_error(result, false, "http_409");
}

/// Calendar secrets held in memory, under the default prefix.
fn fixed_secrets(values: &[(&str, serde_json::Value)]) -> CalendarSecrets {
    let values = values.iter().map(|(name, value)| (format!("{DEFAULT_PREFIX}{name}"), value.to_string())).collect();
    CalendarSecrets::fixed(values, DEFAULT_PREFIX).unwrap()
}

#[tokio::test]
async fn caldav_sends_each_resources_own_credentials_to_its_calendar_only() {
    let (alice, bob) = (fresh_collection().await, fresh_collection().await);
    let (alice_proxy, bob_proxy) = (FaultProxy::start(&alice).await, FaultProxy::start(&bob).await);
    let secrets = fixed_secrets(&[
        ("alice", json!({"username": "host@example.com", "password": "app-pass:word"})),
        ("team", json!({"bob": {"username": "bob", "password": "pw-of-bob"}})),
    ]);
    let calendar = CalDavCalendar::new(caldav_config(5000).with_secrets(secrets)).unwrap();
    let with = |url: String, credentials: Option<&str>| CalendarTarget::Caldav {
        url,
        credentials: credentials.map(|c| format!("{DEFAULT_PREFIX}{c}")),
    };
    let on_alice = with(alice_proxy.url_for(&alice), Some("alice"));
    let on_bob = with(bob_proxy.url_for(&bob), Some("team#bob"));
    let anonymous = with(alice_proxy.url_for(&alice), None);
    calendar.put_event(&on_alice, &booking(at(2031, 3, 14, 9, 0))).await.unwrap();
    calendar.put_event(&on_bob, &booking(at(2031, 3, 14, 10, 0))).await.unwrap();
    calendar.put_event(&anonymous, &booking(at(2031, 3, 14, 11, 0))).await.unwrap();

    let basic = |pair: &str| Some(format!("Basic {}", base64(pair)));
    let seen = alice_proxy.requests();
    assert!(seen.iter().all(|r| r.method == "PUT" && r.path.ends_with(".ics")), "{seen:?}");
    let seen: Vec<_> = seen.into_iter().map(|r| r.authorization).collect();
    assert_eq!(seen, [basic("host@example.com:app-pass:word"), None]);
    let seen: Vec<_> = bob_proxy.requests().into_iter().map(|r| r.authorization).collect();
    assert_eq!(seen, [basic("bob:pw-of-bob")]);
    assert_eq!(count_events(&alice).await, 2);
}

#[tokio::test]
async fn caldav_credentials_outside_the_prefix_or_unreadable_are_never_sent() {
    let collection = fresh_collection().await;
    let proxy = FaultProxy::start(&collection).await;
    let secrets = CalendarSecrets::fixed(
        [
            ("slotguard-test-secrets".to_owned(), json!({"username": "sk_test", "password": "whsec"}).to_string()),
            (format!("{DEFAULT_PREFIX}broken"), "not json".to_owned()),
        ]
        .into(),
        DEFAULT_PREFIX,
    )
    .unwrap();
    let calendar = CalDavCalendar::new(caldav_config(5000).with_secrets(secrets)).unwrap();
    let with = |credentials: String| CalendarTarget::Caldav {
        url: proxy.url_for(&collection),
        credentials: Some(credentials),
    };
    let event = booking(at(2031, 3, 15, 9, 0));
    assert_error(
        calendar.put_event(&with("slotguard-test-secrets".into()), &event).await,
        false,
        "credentials_refused",
    );
    let broken = with(format!("{DEFAULT_PREFIX}broken"));
    assert_error(calendar.put_event(&broken, &event).await, true, "credentials_unavailable");
    let missing = with(format!("{DEFAULT_PREFIX}missing"));
    assert_error(calendar.delete_event(&missing, &event.reservation_id).await, true, "credentials_unavailable");
    assert_eq!(proxy.requests_seen(), 0, "nothing was sent");
}

#[tokio::test]
async fn caldav_refuses_calendar_urls_outside_the_outbound_policy_without_connecting() {
    let event = booking(at(2031, 3, 15, 10, 0));
    for url in ["http://169.254.169.254/latest/", "http://10.0.0.1/cal/", "http://[::ffff:10.0.0.1]/cal/"] {
        assert_error(caldav(1000).put_event(&target(url), &event).await, false, "outbound_refused");
    }
    // Strict: plain http, and loopback behind a name, are refused too.
    let strict = CalDavCalendar::new(CalDavConfig::default().with_timeout(std::time::Duration::from_secs(1))).unwrap();
    let collection = fresh_collection().await;
    assert_error(strict.put_event(&target(&collection), &event).await, false, "outbound_refused");
    let by_name = "https://localhost:1/user/calendars/calendar/";
    let err = strict.put_event(&target(by_name), &event).await.unwrap_err();
    assert_eq!((err.kind(), err.is_transient()), ("outbound_refused", false), "{err}");
    assert!(err.to_string().contains("loopback"), "{err}");
}

/// A CalDAV server that has no event under its own name, and whose UID
/// search answers with an href on another origin: that href must never be
/// requested (the resource's credentials would go with it).
#[tokio::test]
async fn caldav_refuses_hrefs_a_server_gives_on_another_origin() {
    use crate::fakes::{Reply, response};
    let elsewhere = FaultProxy::start(&caldav_server()).await;
    let event = booking(at(2031, 3, 15, 11, 0));
    let (rid, uid) = (&event.reservation_id, format!("{}@slotguard", event.reservation_id));
    let foreign = format!("{}/user/calendars/other/victim.ics", elsewhere.base);
    let multistatus = format!(
        r#"<?xml version="1.0"?><D:multistatus xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:response><D:href>{foreign}</D:href><D:propstat><D:prop><C:calendar-data>BEGIN:VCALENDAR&#13;
BEGIN:VEVENT&#13;
UID:{uid}&#13;
DTSTART:20310315T110000Z&#13;
X-SLOTGUARD-BOOKING:{rid}&#13;
END:VEVENT&#13;
END:VCALENDAR&#13;
</C:calendar-data></D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response></D:multistatus>"#
    );
    let (addr, _server) = crate::fakes::serve(move |req| {
        let answer = match req.method().as_str() {
            "REPORT" => response(207, "application/xml; charset=utf-8", multistatus.clone()),
            _ => response(404, "text/plain", "not here"),
        };
        async move { Reply::Respond(answer) }
    })
    .await;
    let secrets = fixed_secrets(&[("alice", json!({"username": "alice", "password": "pw"}))]);
    let calendar = CalDavCalendar::new(caldav_config(5000).with_secrets(secrets)).unwrap();
    let target = CalendarTarget::Caldav {
        url: format!("http://{addr}/user/calendars/alice/"),
        credentials: Some(format!("{DEFAULT_PREFIX}alice")),
    };
    assert_error(calendar.delete_event(&target, &event.reservation_id).await, false, "foreign_href");
    assert_eq!(elsewhere.requests_seen(), 0, "the foreign href was not requested");
    // A listing skips such an event instead of reporting it.
    assert_eq!(calendar.list_events(&target, event.start, event.end).await.unwrap(), vec![]);
}

#[tokio::test]
async fn caldav_put_of_a_rescheduled_booking_moves_its_event_in_place() {
    let collection = fresh_collection().await;
    let (calendar, target) = (caldav(5000), target(&collection));
    let event = booking(at(2031, 3, 20, 9, 0));
    let other = booking(at(2031, 3, 20, 10, 0));
    let event_ref = created_ref(calendar.put_event(&target, &event).await);
    created_ref(calendar.put_event(&target, &other).await);

    let moved = rescheduled(&event, at(2031, 3, 27, 15, 30), 1);
    assert_eq!(calendar.put_event(&target, &moved).await, Ok(WriteOutcome::Updated { event_ref: event_ref.clone() }));
    // Writing the same content again is harmless.
    assert_eq!(calendar.put_event(&target, &moved).await, Ok(WriteOutcome::Updated { event_ref: event_ref.clone() }));

    let mut found = listed(&calendar, &target).await;
    found.sort_by_key(|e| e.1);
    assert_eq!(
        found,
        vec![
            (other.reservation_id.clone(), other.start, format!("{collection}{}.ics", other.reservation_id)),
            (event.reservation_id.clone(), moved.start, event_ref.clone()),
        ]
    );
    assert_eq!(count_events(&collection).await, 2);
    assert_eq!(
        calendar.list_events(&target, event.start, event.end).await.unwrap().len(),
        0,
        "nothing at the old time"
    );
    let (status, ics) = get(&event_ref).await;
    assert_eq!(status, StatusCode::OK);
    let lines = unfolded(&ics);
    let rid = event.reservation_id.as_str();
    for expected in [
        format!("UID:{rid}@slotguard"),
        "DTSTART:20310327T153000Z".to_owned(),
        "DTEND:20310327T163000Z".to_owned(),
        "SEQUENCE:1".to_owned(),
        r"SUMMARY:Moved: Coaching call: Zoë Ørsted\, Jr.\; (VIP)".to_owned(),
        format!("X-SLOTGUARD-BOOKING:{rid}"),
    ] {
        assert!(lines.contains(&expected), "missing {expected:?} in {lines:#?}");
    }
    assert_eq!(lines.iter().filter(|l| l.starts_with("ATTENDEE")).count(), 1, "{lines:#?}");
    assert!(lines.iter().any(|l| l.starts_with("ATTENDEE") && l.ends_with(":mailto:ada@example.com")), "{lines:#?}");
    assert!(lines.iter().any(|l| l.starts_with("DESCRIPTION:") && l.contains("Rescheduled (1)")), "{lines:#?}");
    // The other booking's event was not touched.
    assert!(get(&format!("{collection}{}.ics", other.reservation_id)).await.1.contains("DTSTART:20310320T100000Z"));
}

#[tokio::test]
async fn caldav_put_replaces_the_event_when_the_server_answers_409_instead_of_412() {
    let collection = fresh_collection().await;
    let proxy = FaultProxy::start(&collection).await;
    let (calendar, target) = (caldav(5000), target(&proxy.url_for(&collection)));
    let event = booking(at(2031, 3, 21, 9, 0));
    let event_ref = created_ref(calendar.put_event(&target, &event).await);

    proxy.inject([Fault::Status(409)]);
    let moved = rescheduled(&event, at(2031, 3, 21, 14, 0), 1);
    assert_eq!(calendar.put_event(&target, &moved).await, Ok(WriteOutcome::Updated { event_ref: event_ref.clone() }));
    let seen: Vec<_> = proxy.requests().into_iter().map(|r| (r.method, r.fault)).collect();
    assert_eq!(
        seen,
        vec![
            ("PUT".to_owned(), None),
            ("PUT".to_owned(), Some(Fault::Status(409))),
            ("GET".to_owned(), None),
            ("PUT".to_owned(), None),
        ]
    );
    assert_eq!(listed(&calendar, &target).await, vec![(event.reservation_id.clone(), moved.start, event_ref)]);
}

#[tokio::test]
async fn caldav_put_replaces_an_event_the_server_filed_under_another_name() {
    let collection = fresh_collection().await;
    let (calendar, target) = (caldav(5000), target(&collection));
    let event = booking(at(2031, 3, 22, 9, 0));
    let rid = &event.reservation_id;
    file_under_another_name(&collection, rid, "20310322").await;

    let moved = rescheduled(&event, at(2031, 3, 22, 11, 0), 1);
    let outcome = calendar.put_event(&target, &moved).await.unwrap();
    let found = listed(&calendar, &target).await;
    assert_eq!(found, vec![(rid.clone(), moved.start, outcome.event_ref().to_owned())], "{outcome:?}");
    assert_eq!(count_events(&collection).await, 1);
}

// ---------------------------------------------------------------------------
// CalDAV failures

#[tokio::test]
async fn caldav_429_and_503_are_transient_then_the_retry_succeeds() {
    let collection = fresh_collection().await;
    let proxy = FaultProxy::start(&collection).await;
    let (calendar, target) = (caldav(5000), target(&proxy.url_for(&collection)));
    let event = booking(at(2031, 3, 15, 9, 0));
    proxy.inject([Fault::Status(429), Fault::Status(503)]);

    assert_error(calendar.put_event(&target, &event).await, true, "http_429");
    assert_error(calendar.put_event(&target, &event).await, true, "http_503");
    created_ref(calendar.put_event(&target, &event).await);
    assert_eq!((proxy.requests_seen(), proxy.requests_forwarded()), (3, 1));
    assert_eq!(count_events(&collection).await, 1);

    proxy.fail_next(502, 1);
    assert_error(calendar.delete_event(&target, &event.reservation_id).await, true, "http_502");
    proxy.fail_next(500, 1);
    assert_error(calendar.list_events(&target, event.start, event.end).await, true, "http_500");
    // A connection dropped mid-request is the network, not the server's verdict.
    proxy.inject([Fault::Drop]);
    assert_error(calendar.put_event(&target, &event).await, true, "network");
    assert_eq!(calendar.delete_event(&target, &event.reservation_id).await, Ok(DeleteOutcome::Deleted));
}

#[tokio::test]
async fn caldav_401_is_permanent_for_every_operation() {
    let collection = fresh_collection().await;
    let proxy = FaultProxy::start(&collection).await;
    let (calendar, target) = (caldav(5000), target(&proxy.url_for(&collection)));
    let event = booking(at(2031, 3, 16, 9, 0));
    proxy.always(Fault::Status(401));

    assert_error(calendar.put_event(&target, &event).await, false, "http_401");
    assert_error(calendar.delete_event(&target, &event.reservation_id).await, false, "http_401");
    assert_error(calendar.list_events(&target, event.start, event.end).await, false, "http_401");
    assert_eq!(proxy.requests_forwarded(), 0);
    proxy.always(Fault::Status(403));
    assert_error(calendar.put_event(&target, &event).await, false, "http_403");
    assert_eq!(count_events(&collection).await, 0);
    proxy.pass_through();
    created_ref(calendar.put_event(&target, &event).await);
}

#[tokio::test]
async fn caldav_refused_connection_is_transient() {
    // A port that was just free: nothing listens on it.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let target = target(&format!("http://127.0.0.1:{port}/user/calendars/calendar/"));
    let event = booking(at(2031, 3, 17, 9, 0));
    assert_error(caldav(1000).put_event(&target, &event).await, true, "connect");
    assert_error(caldav(1000).list_events(&target, event.start, event.end).await, true, "connect");
}

#[tokio::test]
async fn caldav_hanging_server_is_a_transient_timeout() {
    let collection = fresh_collection().await;
    let proxy = FaultProxy::start(&collection).await;
    proxy.always(Fault::Delay(std::time::Duration::from_secs(10)));
    let event = booking(at(2031, 3, 18, 9, 0));
    let started = Instant::now();
    let result = caldav(800).put_event(&target(&proxy.url_for(&collection)), &event).await;
    assert_error(result, true, "timeout");
    assert!(started.elapsed() < std::time::Duration::from_secs(3), "{:?}", started.elapsed());
}

#[tokio::test]
async fn caldav_refuses_other_targets() {
    let event = booking(at(2031, 3, 19, 9, 0));
    let google = CalendarTarget::google("primary");
    assert_error(caldav(1000).put_event(&google, &event).await, false, "wrong_target");
    assert_error(caldav(1000).delete_event(&CalendarTarget::None, &event.reservation_id).await, false, "wrong_target");
}

// ---------------------------------------------------------------------------
// Google against the stand-in

const CAL: &str = "team-room@group.calendar.google.com";

fn google_target() -> CalendarTarget {
    CalendarTarget::google(CAL)
}

#[tokio::test]
async fn google_fake_enforces_the_id_rules() {
    // The stand-in is only worth something if it refuses what Google refuses.
    let fake = FakeGoogle::start().await;
    let token: serde_json::Value = reqwest::Client::new()
        .post(&fake.token_url)
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", crate::fakes::google::CLIENT_ID),
            ("client_secret", crate::fakes::google::CLIENT_SECRET),
            ("refresh_token", crate::fakes::google::REFRESH_TOKEN),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["access_token"].as_str().unwrap().to_owned();
    let insert = |id: String, token: String| {
        let url = format!("{}/calendars/primary/events", fake.api_base);
        async move {
            let body = json!({ "id": id, "start": { "dateTime": "2031-01-01T10:00:00Z" }, "end": { "dateTime": "2031-01-01T11:00:00Z" } });
            reqwest::Client::new().post(url).bearer_auth(token).json(&body).send().await.unwrap().status().as_u16()
        }
    };
    assert_eq!(insert("abcd".into(), token.clone()).await, 400, "too short");
    assert_eq!(insert("abcdw".into(), token.clone()).await, 400, "w is not base32hex");
    assert_eq!(insert("ABCDE".into(), token.clone()).await, 400, "upper case");
    assert_eq!(insert("a".repeat(1025), token.clone()).await, 400, "too long");
    assert_eq!(insert("abcde".into(), "ya29.made-up".into()).await, 401);
    assert_eq!(insert("abcde".into(), token.clone()).await, 200);
    assert_eq!(insert("abcde".into(), token).await, 409);
}

#[tokio::test]
async fn google_insert_is_idempotent_and_carries_the_booking() {
    let fake = FakeGoogle::start().await;
    let calendar = GoogleCalendar::new(fake.config()).unwrap();
    let event = booking(at(2031, 6, 2, 8, 0));
    let id = event_id(&event.reservation_id);

    assert_eq!(calendar.put_event(&google_target(), &event).await, Ok(WriteOutcome::Created { event_ref: id.clone() }));
    for _ in 0..3 {
        assert_eq!(
            calendar.put_event(&google_target(), &event).await,
            Ok(WriteOutcome::Unchanged { event_ref: id.clone() })
        );
    }
    let stored = fake.events(CAL);
    assert_eq!(stored.len(), 1, "{stored:#?}");
    let e = &stored[0];
    assert_eq!(e["id"], id);
    assert_eq!(e["start"]["dateTime"], "2031-06-02T08:00:00Z");
    assert_eq!(e["end"]["dateTime"], "2031-06-02T08:30:00Z");
    assert_eq!(e["summary"], event.summary);
    assert_eq!(e["attendees"], json!([{ "email": "zoe@example.com", "displayName": "Zoë Ørsted, Jr." }]));
    assert_eq!(e["extendedProperties"]["private"]["slotguardBooking"], event.reservation_id.as_str());
    assert!(e["description"].as_str().unwrap().contains(event.reservation_id.as_str()));
    assert_eq!(e["sequence"], 0);
}

#[tokio::test]
async fn google_delete_then_already_gone_and_a_rewrite_restores_it() {
    let fake = FakeGoogle::start().await;
    let calendar = GoogleCalendar::new(fake.config()).unwrap();
    let event = booking(at(2031, 6, 3, 8, 0));
    calendar.put_event(&google_target(), &event).await.unwrap();

    assert_eq!(calendar.delete_event(&google_target(), &event.reservation_id).await, Ok(DeleteOutcome::Deleted));
    assert_eq!(fake.live_events(CAL).len(), 0);
    // Google keeps the cancelled event and answers 410 now.
    assert_eq!(calendar.delete_event(&google_target(), &event.reservation_id).await, Ok(DeleteOutcome::AlreadyGone));
    let never_written = booking(at(2031, 6, 3, 9, 0));
    assert_eq!(
        calendar.delete_event(&google_target(), &never_written.reservation_id).await,
        Ok(DeleteOutcome::AlreadyGone)
    );

    // Writing the booking again (its event was deleted by hand, say) brings
    // the event back instead of trusting the 409.
    let id = event_id(&event.reservation_id);
    assert_eq!(calendar.put_event(&google_target(), &event).await, Ok(WriteOutcome::Created { event_ref: id }));
    let live = fake.live_events(CAL);
    assert_eq!(live.len(), 1);
    assert_eq!(live[0]["extendedProperties"]["private"]["slotguardBooking"], event.reservation_id.as_str());
}

#[tokio::test]
async fn google_put_of_a_rescheduled_booking_moves_its_event_in_place() {
    let fake = FakeGoogle::start().await;
    let calendar = GoogleCalendar::new(fake.config()).unwrap();
    let event = booking(at(2031, 6, 4, 8, 0));
    let other = booking(at(2031, 6, 4, 9, 0));
    let id = event_id(&event.reservation_id);
    assert_eq!(calendar.put_event(&google_target(), &event).await, Ok(WriteOutcome::Created { event_ref: id.clone() }));
    calendar.put_event(&google_target(), &other).await.unwrap();

    // Sequence 0 each time (as before the booking version is wired): Google
    // raises the sequence itself when an event moves and refuses a lower one,
    // so the second move must not send 0.
    for (day, sequence) in [(11, 0), (18, 0), (25, 4)] {
        let moved = rescheduled(&event, at(2031, 6, day, 13, 0), sequence);
        assert_eq!(
            calendar.put_event(&google_target(), &moved).await,
            Ok(WriteOutcome::Updated { event_ref: id.clone() }),
            "move to June {day}"
        );
        let mut found = listed(&calendar, &google_target()).await;
        found.sort_by_key(|e| e.1);
        assert_eq!(
            found,
            vec![
                (other.reservation_id.clone(), other.start, event_id(&other.reservation_id)),
                (event.reservation_id.clone(), moved.start, id.clone()),
            ],
            "move to June {day}"
        );
    }
    assert_eq!(fake.events(CAL).len(), 2);
    let stored = fake.event(CAL, &id).unwrap();
    assert_eq!(stored["start"]["dateTime"], "2031-06-25T13:00:00Z");
    assert_eq!(stored["end"]["dateTime"], "2031-06-25T14:00:00Z");
    assert_eq!(stored["summary"], format!("Moved: {}", event.summary));
    assert!(stored["description"].as_str().unwrap().ends_with("Rescheduled (4)"));
    assert_eq!(stored["attendees"], json!([{ "email": "ada@example.com", "displayName": "Ada Lovelace" }]));
    assert_eq!(stored["status"], "confirmed");
    assert_eq!(stored["sequence"], 4);
    assert_eq!(stored["extendedProperties"]["private"]["slotguardBooking"], event.reservation_id.as_str());

    // Writing the same content again writes nothing.
    let last = rescheduled(&event, at(2031, 6, 25, 13, 0), 4);
    assert_eq!(
        calendar.put_event(&google_target(), &last).await,
        Ok(WriteOutcome::Unchanged { event_ref: id.clone() })
    );
    assert_eq!(fake.event(CAL, &id).unwrap()["etag"], stored["etag"]);
    // An older version than Google's sequence still lands (Google's number
    // is kept), rather than failing for good.
    let older = rescheduled(&event, at(2031, 6, 26, 13, 0), 2);
    assert_eq!(calendar.put_event(&google_target(), &older).await, Ok(WriteOutcome::Updated { event_ref: id.clone() }));
    assert_eq!(fake.event(CAL, &id).unwrap()["start"]["dateTime"], "2031-06-26T13:00:00Z");
}

#[tokio::test]
async fn google_put_restores_a_cancelled_event_at_the_new_time() {
    let fake = FakeGoogle::start().await;
    let calendar = GoogleCalendar::new(fake.config()).unwrap();
    let event = booking(at(2031, 6, 5, 8, 0));
    let id = event_id(&event.reservation_id);
    calendar.put_event(&google_target(), &event).await.unwrap();
    calendar.delete_event(&google_target(), &event.reservation_id).await.unwrap();
    assert_eq!(fake.event(CAL, &id).unwrap()["status"], "cancelled");
    assert_eq!(listed(&calendar, &google_target()).await, vec![]);

    let moved = rescheduled(&event, at(2031, 6, 6, 16, 0), 0);
    assert_eq!(calendar.put_event(&google_target(), &moved).await, Ok(WriteOutcome::Created { event_ref: id.clone() }));
    assert_eq!(
        listed(&calendar, &google_target()).await,
        vec![(event.reservation_id.clone(), moved.start, id.clone())]
    );
    let stored = fake.event(CAL, &id).unwrap();
    assert_eq!(stored["status"], "confirmed");
    assert_eq!(stored["end"]["dateTime"], "2031-06-06T17:00:00Z");
    assert_eq!(fake.events(CAL).len(), 1);
}

#[tokio::test]
async fn google_put_keeps_what_the_host_added_and_undoes_what_they_moved() {
    let fake = FakeGoogle::start().await;
    let calendar = GoogleCalendar::new(fake.config()).unwrap();
    let event = booking(at(2031, 6, 7, 8, 0));
    let id = event_id(&event.reservation_id);
    calendar.put_event(&google_target(), &event).await.unwrap();
    fake.edit(CAL, &id, |e| {
        e["colorId"] = json!("5");
        e["start"] = json!({ "dateTime": "2031-06-07T12:00:00+02:00", "timeZone": "Europe/Berlin" });
        e["extendedProperties"]["private"]["otherTool"] = json!("x");
        e["sequence"] = json!(1);
    });

    assert_eq!(calendar.put_event(&google_target(), &event).await, Ok(WriteOutcome::Updated { event_ref: id.clone() }));
    let stored = fake.event(CAL, &id).unwrap();
    assert_eq!(stored["start"], json!({ "dateTime": "2031-06-07T08:00:00Z" }));
    assert_eq!(stored["colorId"], "5");
    assert_eq!(stored["extendedProperties"]["private"]["otherTool"], "x");
    assert_eq!(stored["extendedProperties"]["private"]["slotguardBooking"], event.reservation_id.as_str());
    assert_eq!(calendar.put_event(&google_target(), &event).await, Ok(WriteOutcome::Unchanged { event_ref: id }));
}

#[tokio::test]
async fn google_put_starts_over_when_the_event_changes_between_read_and_update() {
    let fake = FakeGoogle::start().await;
    let calendar = GoogleCalendar::new(fake.config()).unwrap();
    let event = booking(at(2031, 6, 8, 8, 0));
    let id = event_id(&event.reservation_id);
    calendar.put_event(&google_target(), &event).await.unwrap();

    fake.edit_before_next_updates(1);
    let moved = rescheduled(&event, at(2031, 6, 8, 10, 0), 1);
    assert_eq!(calendar.put_event(&google_target(), &moved).await, Ok(WriteOutcome::Updated { event_ref: id.clone() }));
    assert_eq!(fake.event(CAL, &id).unwrap()["start"]["dateTime"], "2031-06-08T10:00:00Z");

    // Changed under every attempt: transient, and the retry lands.
    fake.edit_before_next_updates(3);
    let again = rescheduled(&event, at(2031, 6, 8, 12, 0), 2);
    assert_error(calendar.put_event(&google_target(), &again).await, true, "conflict");
    assert_eq!(calendar.put_event(&google_target(), &again).await, Ok(WriteOutcome::Updated { event_ref: id.clone() }));
    assert_eq!(listed(&calendar, &google_target()).await, vec![(event.reservation_id.clone(), again.start, id)]);
}

#[tokio::test]
async fn google_list_follows_pages_and_keeps_standing_slotguard_events_in_the_window() {
    let fake = FakeGoogle::start().await;
    let calendar = GoogleCalendar::new(fake.config()).unwrap();
    let (from, to) = (at(2031, 7, 1, 0, 0), at(2031, 7, 2, 0, 0));
    let inside: Vec<BookingEvent> = (8..13).map(|h| booking(at(2031, 7, 1, h, 0))).collect();
    for event in &inside {
        calendar.put_event(&google_target(), event).await.unwrap();
    }
    let cancelled = booking(at(2031, 7, 1, 14, 0));
    calendar.put_event(&google_target(), &cancelled).await.unwrap();
    calendar.delete_event(&google_target(), &cancelled.reservation_id).await.unwrap();
    calendar.put_event(&google_target(), &booking(at(2031, 7, 2, 0, 0))).await.unwrap();
    calendar.put_event(&google_target(), &booking(at(2031, 6, 30, 23, 45))).await.unwrap();
    fake.put_raw(
        CAL,
        json!({ "id": "hostevent1", "status": "confirmed", "summary": "Lunch",
                "start": { "dateTime": "2031-07-01T12:00:00+02:00" }, "end": { "dateTime": "2031-07-01T13:00:00+02:00" } }),
    );

    let mut found = calendar.list_events(&google_target(), from, to).await.unwrap();
    found.sort_by_key(|e| e.start);
    let expected: Vec<_> =
        inside.iter().map(|e| (e.reservation_id.clone(), e.start, event_id(&e.reservation_id))).collect();
    let got: Vec<_> = found.into_iter().map(|e| (e.reservation_id, e.start, e.event_ref)).collect();
    assert_eq!(got, expected);
    // 8 events overlap the window (the 5, the cancelled one, the one
    // straddling midnight, the host's), 2 a page.
    assert_eq!(fake.list_requests(), 4);
    fake.set_page_size(100);
    assert_eq!(calendar.list_events(&google_target(), from, to).await.unwrap().len(), inside.len());
    assert_eq!(fake.list_requests(), 5);
}

#[tokio::test]
async fn google_token_is_fetched_once_and_reused() {
    let fake = FakeGoogle::start().await;
    let calendar = GoogleCalendar::new(fake.config()).unwrap();
    // Concurrent first calls share one token fetch.
    let events: Vec<BookingEvent> = (0..8).map(|i| booking(at(2031, 8, 1, 8 + i, 0))).collect();
    let target = google_target();
    let results = join_all(events.iter().map(|e| calendar.put_event(&target, e))).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    calendar.list_events(&google_target(), at(2031, 8, 1, 0, 0), at(2031, 8, 2, 0, 0)).await.unwrap();
    calendar.delete_event(&google_target(), &events[0].reservation_id).await.unwrap();
    // Clones share the cache.
    calendar.clone().delete_event(&google_target(), &events[1].reservation_id).await.unwrap();
    assert_eq!(fake.token_requests(), 1);
}

#[tokio::test]
async fn google_rejected_access_token_is_refreshed_once() {
    let fake = FakeGoogle::start().await;
    let calendar = GoogleCalendar::new(fake.config()).unwrap();
    calendar.put_event(&google_target(), &booking(at(2031, 8, 2, 8, 0))).await.unwrap();
    fake.revoke_access_tokens();
    calendar.put_event(&google_target(), &booking(at(2031, 8, 2, 9, 0))).await.unwrap();
    assert_eq!(fake.token_requests(), 2);
    assert_eq!(fake.live_events(CAL).len(), 2);
}

#[tokio::test]
async fn google_revoked_refresh_token_is_permanent() {
    let fake = FakeGoogle::start().await;
    fake.revoke_refresh_token();
    let calendar = GoogleCalendar::new(fake.config()).unwrap();
    let event = booking(at(2031, 8, 3, 8, 0));
    assert_error(calendar.put_event(&google_target(), &event).await, false, "auth");
    assert_error(calendar.delete_event(&google_target(), &event.reservation_id).await, false, "auth");

    // A wrong client secret (401 invalid_client) is just as final.
    let wrong_client = fake.config();
    let wrong_client = slotguard::adapters::google::GoogleConfig {
        credentials: slotguard::adapters::google::GoogleCredentials::new(
            crate::fakes::google::CLIENT_ID,
            "not-the-secret",
            crate::fakes::google::REFRESH_TOKEN,
        ),
        ..wrong_client
    };
    let calendar = GoogleCalendar::new(wrong_client).unwrap();
    assert_error(calendar.list_events(&google_target(), event.start, event.end).await, false, "auth");
    assert!(fake.live_events(CAL).is_empty());
}

#[tokio::test]
async fn google_uses_the_hosts_refresh_token_from_the_resources_secret() {
    let fake = FakeGoogle::start().await;
    let secrets = fixed_secrets(&[("host", json!({"refresh_token": crate::fakes::google::REFRESH_TOKEN}))]);
    // The deployment's own refresh token is not one the stand-in accepts.
    let own = slotguard::adapters::google::GoogleCredentials::new(
        crate::fakes::google::CLIENT_ID,
        crate::fakes::google::CLIENT_SECRET,
        "1//not-the-hosts",
    );
    let config = slotguard::adapters::google::GoogleConfig { credentials: own, ..fake.config() }.with_secrets(secrets);
    let calendar = GoogleCalendar::new(config).unwrap();
    let hosts = CalendarTarget::Google { calendar_id: CAL.into(), credentials: Some(format!("{DEFAULT_PREFIX}host")) };
    let event = booking(at(2031, 8, 5, 8, 0));
    created_ref(calendar.put_event(&hosts, &event).await);
    assert_eq!(fake.live_events(CAL).len(), 1);
    assert_error(calendar.put_event(&google_target(), &event).await, false, "auth");
    let elsewhere = CalendarTarget::Google { calendar_id: CAL.into(), credentials: Some("prod/stripe".into()) };
    assert_error(calendar.delete_event(&elsewhere, &event.reservation_id).await, false, "credentials_refused");
    assert_eq!(fake.live_events(CAL).len(), 1);
}

#[tokio::test]
async fn google_errors_are_classified_like_caldav() {
    let fake = FakeGoogle::start().await;
    let proxy = FaultProxy::start(&fake.api_base).await;
    let config = fake.config().with_api_base(proxy.url_for(&fake.api_base));
    let calendar = GoogleCalendar::new(config).unwrap();
    let event = booking(at(2031, 8, 4, 8, 0));

    proxy.inject([Fault::Status(429), Fault::Status(503)]);
    assert_error(calendar.put_event(&google_target(), &event).await, true, "http_429");
    assert_error(calendar.put_event(&google_target(), &event).await, true, "http_503");
    created_ref(calendar.put_event(&google_target(), &event).await);
    proxy.fail_next(404, 1);
    assert_error(calendar.list_events(&google_target(), event.start, event.end).await, false, "http_404");
    // The token endpoint is not behind the proxy: 3 puts and a list, one token.
    assert_eq!(fake.token_requests(), 1);
    assert_eq!(proxy.requests_seen(), 4);

    // Unreachable token endpoint: transient.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let calendar = GoogleCalendar::new(fake.config().with_token_url(format!("http://127.0.0.1:{port}/token"))).unwrap();
    assert_error(calendar.put_event(&google_target(), &event).await, true, "connect");
}

// ---------------------------------------------------------------------------
// The router

#[tokio::test]
async fn calendars_route_each_target_to_its_adapter() {
    let collection = fresh_collection().await;
    let fake = FakeGoogle::start().await;
    let calendars = Calendars::new(caldav(5000), Some(GoogleCalendar::new(fake.config()).unwrap()));
    let on_caldav = booking(at(2031, 9, 1, 8, 0));
    let on_google = booking(at(2031, 9, 1, 9, 0));

    calendars.put_event(&target(&collection), &on_caldav).await.unwrap();
    calendars.put_event(&google_target(), &on_google).await.unwrap();
    assert_eq!(count_events(&collection).await, 1);
    assert_eq!(fake.live_events(CAL).len(), 1);
    assert_error(calendars.put_event(&CalendarTarget::None, &on_google).await, false, "no_calendar");
    assert_eq!(calendars.list_events(&CalendarTarget::None, on_caldav.start, on_google.end).await, Ok(vec![]));

    let without_google = Calendars::new(caldav(5000), None);
    assert_error(without_google.put_event(&google_target(), &on_google).await, false, "google_not_configured");
}

/// Standard base64, for the expected Basic credentials.
fn base64(input: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.as_bytes().chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}
