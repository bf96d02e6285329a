//! Property tests of the HTTP parsers of outside input: the reserve body and
//! the availability query string. Whatever a client sends, the answer is a
//! success or a 4xx problem, never a panic or a 5xx, and a 4xx writes nothing.
//!
//! The handlers run against a [`MemoryStore`] holding two resources and a
//! few claims, whose snapshots show every write.

use super::availability::availability_at;
use super::idempotency::HEADER as IDEMPOTENCY_KEY;
use super::reserve::reserve_at;
use crate::domain::resource::tests::spec;
use crate::domain::{ClaimStatus, ReservationId, Resource, ResourceId, SlotKey, rfc3339};
use crate::testing::{MemoryStore, claim};
use aws_lambda_events::query_map::QueryMap;
use chrono::{DateTime, Duration, FixedOffset, Utc};
use lambda_http::http::{HeaderValue, Request as HttpRequest, header};
use lambda_http::{Body, Request, RequestExt, Response};
use proptest::prelude::*;
use serde_json::Value;
use std::collections::HashMap;

const CASES: u32 = 256;

/// `CASES` cases, or `PROPTEST_CASES` for a longer run. A failure is reported
/// with its minimal input rather than saved into the source tree.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(CASES);
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

/// The instant every request is handled at: the Friday before Berlin's
/// clocks go forward (2026-03-29) and two weeks after New York's.
fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-27T10:00:00Z").unwrap().with_timezone(&Utc)
}

fn resources() -> Vec<Resource> {
    let berlin = spec("Europe/Berlin", 30, &[("00:00", "03:00"), ("09:00", "12:00"), ("13:00", "24:00")]);
    let new_york = spec("America/New_York", 45, &[("00:00", "24:00")]);
    vec![
        Resource::from_spec(ResourceId::parse("demo").unwrap(), berlin).unwrap(),
        Resource::from_spec(ResourceId::parse("night").unwrap(), new_york).unwrap(),
    ]
}

/// Slots of `demo` in the next days: the first is held, the second has an
/// expired hold still stored, the third is confirmed.
fn fixture_slots() -> Vec<DateTime<Utc>> {
    resources()[0]
        .first_slots_between(now() + Duration::hours(1), now() + Duration::days(4))
        .iter()
        .map(|s| s.start)
        .collect()
}

/// The store every property starts from: the two resources, and on `demo`
/// the fixture slots' claims.
fn fixture_store() -> MemoryStore {
    let resources = resources();
    let demo = &resources[0];
    let slots = fixture_slots();
    let on = |i: usize, status: ClaimStatus, expires_at: Option<DateTime<Utc>>| {
        let id = ReservationId::new(&SlotKey { resource_id: demo.id.clone(), start: slots[i] });
        claim(demo, &id, status, expires_at, now() - Duration::hours(1))
    };
    let fixtures = [
        on(0, ClaimStatus::Held, Some(now() + Duration::minutes(20))),
        on(1, ClaimStatus::Held, Some(now() - Duration::minutes(5))),
        on(2, ClaimStatus::Confirmed, None),
    ];
    let store = MemoryStore::with_resources(resources.clone());
    for c in fixtures {
        store.insert_claim(c);
    }
    store
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(future)
}

/// Checks that a response is a success or a 4xx problem; returns its status and JSON body.
fn check_response(response: &Response<Body>) -> Result<(u16, Value), TestCaseError> {
    let status = response.status().as_u16();
    let body: &[u8] = response.body().as_ref();
    prop_assert!(status < 500, "{} for a client's request: {}", status, String::from_utf8_lossy(body));
    let json: Value =
        serde_json::from_slice(body).map_err(|e| TestCaseError::fail(format!("body is not JSON: {e}")))?;
    if status >= 400 {
        prop_assert_eq!(
            response.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()),
            Some("application/problem+json")
        );
        for field in ["type", "title", "detail"] {
            prop_assert!(json[field].is_string(), "problem without {}: {}", field, json);
        }
        prop_assert_eq!(json["status"].as_u64(), Some(u64::from(status)));
    }
    Ok((status, json))
}

// ---- strategies ----------------------------------------------------------

/// Strings that tend to break parsers.
fn nasty_string() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "\\PC{0,40}",
        "[ -~]{0,40}",
        prop::sample::select(vec![
            "", " ", "\u{0}", "\t\r\n", "null", "true", "-1", "1e999", "\u{feff}", "\u{202e}", "💥", "a\u{0}b", "demo",
            "DEMO", "-demo", "../demo", "demo\n", "%00", "{}", "[]", "\"", "\\", "\\u0000",
        ])
        .prop_map(str::to_owned),
        "\\PC{195,205}",
    ]
}

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f).map(Value::Number)),
        nasty_string().prop_map(Value::String),
    ]
}

fn json_key(known: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop_oneof![3 => prop::sample::select(known).prop_map(str::to_owned), 1 => nasty_string()]
}

/// Any JSON value, with object keys often the ones `known` to the parser.
fn json_value(known: &'static [&'static str]) -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(json_key(known), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

const RESERVE_KEYS: &[&str] = &["resource_id", "start", "customer", "name", "email"];

/// An instant near `now()`, usually on or near some resource's grid.
fn instant_near_now() -> impl Strategy<Value = DateTime<Utc>> {
    prop_oneof![
        4 => (-96i64..(14 * 96)).prop_map(|k| now() + Duration::minutes(15 * k)),
        2 => prop::sample::select(fixture_slots()[..6].to_vec()),
        1 => (-3600i64..(14 * 86400)).prop_map(|s| now() + Duration::seconds(s)),
    ]
}

/// RFC 3339 text for an instant, in some UTC offset and precision.
fn rfc3339_text() -> impl Strategy<Value = String> {
    (instant_near_now(), -86_399i32..86_400, 0u8..4).prop_map(|(t, offset, style)| {
        let offset = FixedOffset::east_opt(if style == 0 { 0 } else { offset / 60 * 60 }).unwrap();
        let local = t.with_timezone(&offset);
        match style {
            0 => rfc3339(t),
            1 => local.to_rfc3339(),
            2 => local.format("%Y-%m-%dT%H:%M:%S%.3f%:z").to_string(),
            _ => local.format("%Y-%m-%dt%H:%M:%S%:z").to_string(),
        }
    })
}

/// A `start` value: valid RFC 3339 around now, edge cases, or anything.
fn start_text() -> impl Strategy<Value = String> {
    prop_oneof![
        12 => rfc3339_text(),
        1 => prop::sample::select(vec![
            "9999-12-31T23:01:00-00:59", // 10000-01-01T00:00:00Z: past what four-digit years can write
            "9999-12-31T23:30:00Z",      // a slot ending in year 10000
            "9999-12-31T22:00:00Z",      // the last slot of `demo`
            "9999-12-30T11:00:00-01:00",
            "9999-12-31T23:59:59-23:59",
            "0000-01-01T00:00:00+23:59",
            "2026-03-29T02:30:00+01:00",
            "2026-03-29T02:30:00",
            "2026-02-30T10:00:00Z",
            "2026-03-28T10:00:60Z",
            "2026-03-28T24:00:00Z",
            "2026-03-28 10:00:00Z",
            "+2026-03-28T10:00:00Z",
            "2026-03-28T10:00:00.999999999999Z",
            "2026-03-28T10:00:00+99:99",
        ])
        .prop_map(str::to_owned),
        1 => "[0-9T:Z.+ -]{0,30}",
        1 => nasty_string(),
    ]
}

/// A reserve body close to a valid one: each field valid, mangled or missing.
fn near_valid_reserve_body() -> impl Strategy<Value = Value> {
    let resource_id = prop_oneof![
        10 => prop::sample::select(vec!["demo", "night"]).prop_map(Value::from),
        1 => "[a-z0-9-]{0,70}".prop_map(Value::from),
        1 => json_leaf(),
    ];
    let start = prop_oneof![12 => start_text().prop_map(Value::from), 1 => json_leaf()];
    let name = prop_oneof![
        10 => "[A-Za-z][A-Za-z .'-]{0,30}".prop_map(Value::from),
        2 => nasty_string().prop_map(Value::from),
        1 => json_leaf(),
    ];
    let email = prop_oneof![
        10 => "[a-z0-9.+_-]{1,20}@[a-z0-9-]{1,10}\\.[a-z]{2,4}".prop_map(Value::from),
        2 => nasty_string().prop_map(Value::from),
        1 => json_leaf(),
    ];
    let extra = prop::option::weighted(0.08, (json_key(RESERVE_KEYS), json_leaf()));
    let drop = prop::option::weighted(0.08, 0usize..5);
    (resource_id, start, name, email, extra, drop).prop_map(|(resource_id, start, name, email, extra, drop)| {
        let mut customer = serde_json::json!({ "name": name, "email": email });
        let mut body = serde_json::json!({ "resource_id": resource_id, "start": start });
        match drop {
            Some(0) => _ = body.as_object_mut().unwrap().remove("resource_id"),
            Some(1) => _ = body.as_object_mut().unwrap().remove("start"),
            Some(2) => _ = customer.as_object_mut().unwrap().remove("name"),
            Some(3) => _ = customer.as_object_mut().unwrap().remove("email"),
            _ => {}
        }
        if drop != Some(4) {
            body["customer"] = customer;
        }
        if let Some((k, v)) = extra {
            body[k] = v;
        }
        body
    })
}

/// Body bytes: arbitrary bytes, any JSON, or a near-valid body, sometimes
/// with surrounding whitespace, a BOM, trailing junk or cut short.
fn reserve_bytes() -> impl Strategy<Value = Vec<u8>> {
    let json = prop_oneof![6 => near_valid_reserve_body(), 1 => json_value(RESERVE_KEYS)];
    prop_oneof![
        2 => prop::collection::vec(any::<u8>(), 0..256),
        20 => (json, 0u8..12, any::<prop::sample::Index>(), prop::collection::vec(any::<u8>(), 0..8)).prop_map(
            |(value, style, cut, junk)| {
                let mut bytes = serde_json::to_vec(&value).unwrap();
                match style {
                    0 => bytes = serde_json::to_vec_pretty(&value).unwrap(),
                    1 => bytes = [b"\xef\xbb\xbf".as_slice(), &bytes].concat(),
                    2 => bytes.extend_from_slice(&junk),
                    3 => bytes.truncate(cut.index(bytes.len() + 1)),
                    4 => bytes = [b" \n\t".as_slice(), &bytes, b"\r\n"].concat(),
                    _ => {}
                }
                bytes
            }
        ),
        1 => (0usize..2).prop_map(|extra| vec![b' '; super::MAX_BODY_BYTES + extra]),
    ]
}

fn content_type() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        20 => Just(Some("application/json".to_owned())),
        1 => prop::sample::select(vec![
            "application/json; charset=utf-8",
            "Application/JSON",
            "application/merge-patch+json",
            "text/plain",
            "application/x-www-form-urlencoded",
            "",
            ";",
        ])
        .prop_map(|s| Some(s.to_owned())),
        1 => Just(None),
        1 => nasty_string().prop_map(Some),
    ]
}

fn idempotency_key() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        8 => Just(None),
        8 => prop::sample::select(vec!["k1", "k2"]).prop_map(|s| Some(s.to_owned())),
        1 => nasty_string().prop_map(Some),
        1 => "[!-~]{250,260}".prop_map(Some),
    ]
}

/// One reserve request as a client could send it.
#[derive(Debug, Clone)]
struct ReserveCall {
    body: Vec<u8>,
    content_type: Option<String>,
    idempotency_key: Option<String>,
    as_text: bool,
}

fn reserve_call() -> impl Strategy<Value = ReserveCall> {
    (reserve_bytes(), content_type(), idempotency_key(), any::<bool>()).prop_map(
        |(body, content_type, idempotency_key, as_text)| ReserveCall { body, content_type, idempotency_key, as_text },
    )
}

fn reserve_request(call: &ReserveCall) -> Request {
    let mut builder = HttpRequest::builder().method("POST").uri("/v1/reservations");
    // A header value HTTP cannot carry never reaches the handler.
    if let Some(v) = call.content_type.as_deref().and_then(|v| HeaderValue::from_str(v).ok()) {
        builder = builder.header(header::CONTENT_TYPE, v);
    }
    if let Some(v) = call.idempotency_key.as_deref().and_then(|v| HeaderValue::from_str(v).ok()) {
        builder = builder.header(IDEMPOTENCY_KEY, v);
    }
    // The gateway hands UTF-8 bodies over as text, others as binary.
    let body = match String::from_utf8(call.body.clone()) {
        Ok(text) if call.as_text && !text.is_empty() => Body::from(text),
        Ok(text) if text.is_empty() => Body::Empty,
        _ => Body::from(call.body.clone()),
    };
    builder.body(body).unwrap()
}

/// An availability request: a path id and a raw query string.
fn availability_request(id: &str, query: &str) -> Request {
    let query_map: QueryMap = query.parse().unwrap();
    HttpRequest::builder()
        .method("GET")
        .uri("/v1/resources/x/slots")
        .body(Body::Empty)
        .unwrap()
        .with_path_parameters(HashMap::from([("id".to_owned(), id.to_owned())]))
        .with_query_string_parameters(query_map)
}

/// Percent-encodes a query value the way a careful client does, or leaves a
/// `+` bare the way a careless one does (it arrives as a space).
fn encode(value: &str, careful: bool) -> String {
    if careful {
        value
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b':' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect()
    } else {
        value.to_owned()
    }
}

fn availability_query() -> impl Strategy<Value = String> {
    let value = prop_oneof![4 => rfc3339_text(), 1 => start_text()];
    let param = (prop::sample::select(vec!["from", "to", "from", "to", "x", "FROM", ""]), value, any::<bool>())
        .prop_map(|(k, v, careful)| format!("{k}={}", encode(&v, careful)));
    prop_oneof![
        4 => prop::collection::vec(param, 0..4).prop_map(|ps| ps.join("&")),
        1 => nasty_string(),
        1 => "[a-z=&%0-9A-F+:TZ. -]{0,60}",
    ]
}

fn availability_id() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => prop::sample::select(vec!["demo", "night"]).prop_map(str::to_owned),
        1 => Just("nope".to_owned()),
        1 => nasty_string(),
    ]
}

// ---- properties ----------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    /// Up to four reserve requests in a row against one store: each is a 201
    /// or a 4xx, a 4xx changes nothing, a 201 is a hold on a real slot.
    #[test]
    fn reserve_answers_every_body_with_201_or_a_4xx_that_writes_nothing(
        calls in prop::collection::vec(reserve_call(), 1..=4),
    ) {
        let store = fixture_store();
        let resources = resources();
        for call in &calls {
            let before = store.snapshot();
            let response = block_on(reserve_at(&store, reserve_request(call), now()));
            let (status, body) = check_response(&response)?;
            if status >= 400 {
                prop_assert_eq!(store.snapshot(), before, "a {} wrote to the store: {}", status, body);
                continue;
            }
            prop_assert_eq!(status, 201, "unexpected success status: {}", body);
            // The hold is on a future slot of its resource, and its id reads back.
            let id = body["reservation_id"].as_str().unwrap_or_default();
            let reservation_id = ReservationId::parse(id);
            prop_assert!(reservation_id.is_some(), "the 201 names a reservation id that does not parse: {}", body);
            let claim = reservation_id.as_ref().and_then(|id| store.snapshot().claim_of(id).cloned());
            prop_assert!(claim.is_some(), "the 201 names no stored claim: {}", body);
            let claim = claim.unwrap();
            prop_assert_eq!(reservation_id.unwrap().slot_key(), claim.slot.clone());
            prop_assert!(claim.is_live(now()) && claim.slot.start > now());
            let resource = resources.iter().find(|r| r.id == claim.slot.resource_id).unwrap();
            let slot = resource.first_slot_at(claim.slot.start);
            prop_assert_eq!(slot.map(|s| s.end), Ok(claim.end));
            let start = rfc3339(claim.slot.start);
            prop_assert_eq!(body["start"].as_str(), Some(start.as_str()));
            for field in ["start", "end", "expires_at"] {
                let text = body[field].as_str().unwrap_or_default();
                prop_assert!(DateTime::parse_from_rfc3339(text).is_ok(), "{} {:?} is not RFC 3339", field, text);
            }
        }
    }

    /// Availability answers every query string with a 200 or a 4xx, and a
    /// 200 lists only open future slots of the resource inside the range.
    #[test]
    fn availability_answers_every_query_with_200_or_a_4xx(
        id in availability_id(),
        query in availability_query(),
    ) {
        let store = fixture_store();
        let before = store.snapshot();
        let response = block_on(availability_at(&store, availability_request(&id, &query), now()));
        let (status, body) = check_response(&response)?;
        prop_assert_eq!(store.snapshot(), before, "a GET wrote to the store");
        if status >= 400 {
            return Ok(());
        }
        prop_assert_eq!(status, 200);
        let resource = resources().into_iter().find(|r| r.id.as_str() == id);
        prop_assert!(resource.is_some(), "200 for an unknown resource {:?}", id);
        let resource = resource.unwrap();
        let at = |v: &Value| DateTime::parse_from_rfc3339(v.as_str().unwrap_or_default()).map(|t| t.with_timezone(&Utc));
        let (from, to) = (at(&body["from"]), at(&body["to"]));
        prop_assert!(from.is_ok() && to.is_ok(), "from/to do not read back: {}", body);
        let (from, to) = (from.unwrap(), to.unwrap());
        prop_assert!(from < to && to - from <= super::availability::MAX_RANGE);
        let slots = body["slots"].as_array().cloned().unwrap_or_default();
        for slot in &slots {
            let (start, end) = (at(&slot["start"]), at(&slot["end"]));
            prop_assert!(start.is_ok() && end.is_ok(), "slot does not read back: {}", slot);
            let (start, end) = (start.unwrap(), end.unwrap());
            prop_assert!(start > now() && from <= start && start < to, "{} outside the range {}..{}", start, from, to);
            prop_assert_eq!(resource.first_slot_at(start).map(|s| s.end), Ok(end));
            let slot = SlotKey { resource_id: resource.id.clone(), start };
            let taken = store.snapshot().claim(&slot).is_some_and(|c| c.is_live(now()));
            prop_assert!(!taken, "{} is offered but has a live claim", start);
        }
    }
}

#[test]
fn the_fixture_has_the_claims_it_promises() {
    let store = fixture_store();
    let live: Vec<bool> = store.snapshot().claims.values().map(|item| item.claim.is_live(now())).collect();
    assert_eq!(live.len(), 3);
    assert_eq!(live.iter().filter(|l| **l).count(), 2);
}

// ---- cases the properties found ---------------------------------------------

fn reserve_json(body: &str) -> Request {
    HttpRequest::builder()
        .method("POST")
        .uri("/v1/reservations")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap()
}

/// `9999-12-31T23:01:00-00:59` is 10000-01-01T00:00:00Z, a slot of `demo`. It
/// was held with a 201 naming `rsv_demo_+100000101T000000_...`, an id no route
/// can parse back (and `"start": "+10000-01-01T00:00:00Z"`, not RFC 3339).
#[test]
fn a_slot_past_year_9999_is_refused_without_a_write() {
    // Inside the advance window of the last slots of year 9999.
    let late = crate::testing::at("9999-12-30T00:00:00Z");
    for start in ["9999-12-31T23:01:00-00:59", "9999-12-31T23:30:00Z"] {
        let store = fixture_store();
        let before = store.snapshot();
        let body = format!(
            r#"{{"resource_id":"demo","start":"{start}","customer":{{"name":"Ada","email":"ada@example.com"}}}}"#
        );
        let response = block_on(reserve_at(&store, reserve_json(&body), late));
        assert_eq!(response.status(), 422, "{start}");
        assert_eq!(store.snapshot(), before);
    }
    // The last slot before then is still bookable, and its id reads back.
    let store = fixture_store();
    let body =
        r#"{"resource_id":"demo","start":"9999-12-31T22:00:00Z","customer":{"name":"Ada","email":"ada@example.com"}}"#;
    let response = block_on(reserve_at(&store, reserve_json(body), late));
    assert_eq!(response.status(), 201);
    let body: Value = serde_json::from_slice(response.body().as_ref()).unwrap();
    assert!(ReservationId::parse(body["reservation_id"].as_str().unwrap()).is_some(), "{body}");
}

/// `from=2026-03-28T10:00:00.999999999999Z` made `to` 2026-04-04T10:00:00.999999999Z,
/// shown as `10:00:00Z`, while the 10:00:00 slot was listed: a slot at `to`,
/// which a client paging on with `from={to}` gets twice.
#[test]
fn the_range_shown_is_the_range_used() {
    let store = fixture_store();
    let request = availability_request("night", "from=2026-03-28T10:00:00.999999999999Z");
    let response = block_on(availability_at(&store, request, now()));
    assert_eq!(response.status(), 200);
    let body: Value = serde_json::from_slice(response.body().as_ref()).unwrap();
    assert_eq!(body["from"], "2026-03-28T10:00:01Z");
    assert_eq!(body["to"], "2026-04-04T10:00:01Z");
    let to = body["to"].as_str().unwrap();
    assert!(body["slots"].as_array().unwrap().iter().all(|s| s["start"].as_str().unwrap() < to));
}

/// A range reaching into year 10000 was shown as `+10000-...`, one before
/// year 0 as `-0001-...`: neither is RFC 3339.
#[test]
fn a_range_past_year_9999_is_a_400() {
    let store = fixture_store();
    let queries = [
        "from=9999-12-31T23:59:59-23:59",
        "from=9999-12-30T00:00:00Z",
        "to=9999-12-31T00:00:01Z",
        // -0001-12-31T00:01:00Z, shown as `-0001-...`
        "from=0000-01-01T00:00:00%2B23:59",
    ];
    for query in queries {
        let response = block_on(availability_at(&store, availability_request("demo", query), now()));
        assert_eq!(response.status(), 400, "{query}");
    }
}
