//! Hostile requests against the real local gateway and DynamoDB Local: bodies
//! over a route's limit, JSON built to hurt parsers, header, iCalendar,
//! Stripe-form and log-line injection, and clients that stall (slow loris).
//!
//! Every refusal is a problem answer and changes nothing in the table. What
//! HTTP itself cannot parse (a bare CR or a NUL in a header, a folded
//! header) never reaches a route: hyper answers a bare `400` and closes the
//! connection, as API Gateway would answer such a request itself.
//! `bad_input.rs` has the ordinary mistakes; this file the deliberate ones.
//!
//! Names the tests send as customers are in `*_NAMES` lists, which
//! `scripts/check-logs` reads: none of them may reach a log.

use crate::calendar_adapters::fresh_collection;
use crate::calendar_flow::Writer;
use crate::helpers::*;
use reqwest::Method;
use serde_json::{Value, json};
use slotguard::adapters::caldav::ics;
use slotguard_local::gateway::{self, ROUTES, Route};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long any one answer may take before the test calls it a hang: a
/// liveness check, not a speed assertion.
const HANG: Duration = Duration::from_secs(10);

/// Customer names that are valid (printable, at most 200 characters) but
/// full of what would break out of an iCalendar property, a Stripe form
/// field or a log line if it were not escaped.
const HOSTILE_NAMES: [&str; 2] = [
    r#"Mallet "Bobby" O'Hare; Jr., \ ATTENDEE:mailto:evil@example.com END:VEVENT &metadata[reservation_id]=rsv_evil ^n"#,
    "Zoë\u{2028}Ørsted ^^ ^' \\n DESCRIPTION:forged",
];

/// A name sent where an object belongs, so the refusal's message quotes it.
const MISPLACED_NAMES: [&str; 1] = ["Imogen Leak-Test"];

/// Every route of the gateway with its path filled in: resources are `room`,
/// reservations and bookings `reservation`.
fn every_route(reservation: &str) -> Vec<(Method, String, Route)> {
    ROUTES
        .iter()
        .map(|(method, template, route)| {
            let id = if template.starts_with("/v1/resources/") || template.starts_with("/v1/admin/resources/") {
                "room"
            } else {
                reservation
            };
            (Method::from_bytes(method.as_bytes()).unwrap(), template.replace("{id}", id), *route)
        })
        .collect()
}

fn addr(app: &TestApp) -> SocketAddr {
    app.base.trim_start_matches("http://").parse().unwrap()
}

/// An HTTP answer read off a raw connection.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_slice())
    }

    /// Asserts a problem answer of this status and type.
    fn assert_problem(&self, status: u16, kind: &str) -> Value {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(self.header("content-type"), Some(&b"application/problem+json"[..]), "{self:?}");
        let body: Value = serde_json::from_slice(&self.body).expect("a JSON problem body");
        assert_eq!(body["type"], kind, "{body}");
        assert_eq!(body["status"], status, "{body}");
        body
    }
}

/// Parses an answer once its head and (by `Content-Length`, else up to the
/// end of the connection) its body are in; `None` before that.
fn parse_answer(raw: &[u8]) -> Option<Answer> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, Vec<u8>)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().as_bytes().to_vec()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let length = headers.iter().find(|(n, _)| n.eq_ignore_ascii_case("content-length"));
    if let Some(length) = length.and_then(|(_, v)| std::str::from_utf8(v).ok()?.parse::<usize>().ok()) {
        if body.len() < length {
            return None;
        }
        body.truncate(length);
    }
    Some(Answer { status, headers, body })
}

/// Sends `request` on a fresh connection and reads the answer: until it is
/// complete or the server closes. A write the server cut short is not an
/// error: what it answered is.
async fn exchange(addr: SocketAddr, request: &[u8]) -> Answer {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let _ = stream.write_all(request).await;
    let mut raw = Vec::new();
    let read = tokio::time::timeout(HANG, async {
        let mut buf = [0u8; 8192];
        loop {
            if let Some(answer) = parse_answer(&raw) {
                return Some(answer);
            }
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    let answer = read.unwrap_or_else(|_| panic!("no answer within {HANG:?}: the server hangs"));
    answer.unwrap_or_else(|| panic!("not an HTTP answer: {:?}", String::from_utf8_lossy(&raw)))
}

/// A request's bytes: `method path`, `Host`, `Connection: close`, the extra
/// header lines (each ending in CRLF) and the body with its length.
fn request(method: &str, path: &str, headers: &[u8], body: &[u8]) -> Vec<u8> {
    let mut out = format!("{method} {path} HTTP/1.1\r\nHost: slotguard.test\r\nConnection: close\r\n").into_bytes();
    out.extend_from_slice(headers);
    out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body);
    out
}

/// A chunked body of `total` bytes in `chunk`-sized chunks, with its end.
fn chunked(total: usize, chunk: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut left = total;
    while left > 0 {
        let n = left.min(chunk);
        out.extend_from_slice(format!("{n:x}\r\n").as_bytes());
        out.extend(std::iter::repeat_n(b' ', n));
        out.extend_from_slice(b"\r\n");
        left -= n;
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// An app with `room` and a live hold on it; returns the app and the hold's id.
async fn app_with_a_hold() -> (TestApp, String) {
    let app = spawn_app().await;
    app.put_resource("room", &open_all_day()).await;
    let r = app.reserve("room", hour_from_now(30), "holder@example.com").await;
    assert_eq!(r.status(), 201);
    let id = app.remember(&r.json().await.unwrap());
    (app, id)
}

#[tokio::test]
async fn bodies_over_a_routes_limit_get_413_on_every_route_and_change_nothing() {
    let (app, held) = app_with_a_hold().await;
    let before = app.scan().await;
    for (method, path, route) in every_route(&held) {
        let limit = route.max_body_bytes();
        let name = format!("{method} {path}");
        // Declared up front: refused before a byte of the body is read.
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            limit + 1
        );
        let answer = exchange(addr(&app), head.as_bytes()).await;
        answer.assert_problem(413, "payload_too_large");
        assert_eq!(answer.header("connection"), Some(&b"close"[..]), "{name}");
        if limit > 1024 * 1024 {
            continue; // The webhook's 10 MB: the declared length is the case that matters.
        }
        // Sent whole, as a client that does not wait: the answer still arrives.
        let r = app
            .http
            .request(method.clone(), app.url(&path))
            .bearer_auth(ADMIN_TOKEN)
            .header("content-type", "application/json")
            .body(vec![b' '; limit + 1])
            .send()
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_problem(r, 413, "payload_too_large").await;
        // Chunked, no length known: cut off once past the limit.
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n\
             Transfer-Encoding: chunked\r\n\r\n"
        )
        .into_bytes();
        req.extend(chunked(limit * 2, 4096));
        exchange(addr(&app), &req).await.assert_problem(413, "payload_too_large");
    }
    assert_eq!(app.scan().await, before, "the table is unchanged");
    // A body of exactly the limit is read (and refused for what it says).
    let exact = format!("{{\"resource_id\": \"room\"{}}}", " ".repeat(slotguard::api::MAX_BODY_BYTES - 23));
    assert_eq!(exact.len(), slotguard::api::MAX_BODY_BYTES);
    let r = app.http.post(app.url("/v1/reservations")).header("content-type", "application/json").body(exact);
    assert_problem(r.send().await.unwrap(), 400, "invalid_field").await;
}

#[tokio::test]
async fn json_built_to_hurt_parsers_gets_4xx_on_every_json_route() {
    let (app, held) = app_with_a_hold().await;
    let good_start = rfc3339(hour_from_now(40));
    let reserve = |extra: &str| {
        format!(
            r#"{{"resource_id": "room", "start": "{good_start}", "customer": {{"name": "Pat Parser", "email": "pat@example.com"}}{extra}}}"#
        )
    };
    let json_routes = [
        (Method::PUT, "/v1/resources/room".to_owned()),
        (Method::POST, "/v1/reservations".to_owned()),
        (Method::POST, format!("/v1/reservations/{held}/checkout")),
        (Method::POST, format!("/v1/bookings/{held}/reschedule")),
        (Method::POST, format!("/v1/admin/bookings/{held}/reschedule")),
    ];
    let mut invalid_utf8 = b"{\"resource_id\": \"ro".to_vec();
    invalid_utf8.extend_from_slice(&[0xff, 0xfe, 0xc3]);
    invalid_utf8.extend_from_slice(b"om\"}");
    let bodies: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("100 000 [", "[".repeat(100_000).into_bytes(), 413, "payload_too_large"),
        ("16 000 [", "[".repeat(16_000).into_bytes(), 400, "invalid_json"),
        ("3 000 nested objects", "{\"a\":".repeat(3_000).into_bytes(), 400, "invalid_json"),
        ("balanced but 200 deep", format!("{}{}", "[".repeat(200), "]".repeat(200)).into_bytes(), 400, "invalid_json"),
        ("invalid UTF-8", invalid_utf8, 400, "invalid_json"),
        ("a byte order mark", [&[0xef, 0xbb, 0xbf][..], b"{}"].concat(), 400, "invalid_json"),
        ("NaN", b"{\"a\": NaN}".to_vec(), 400, "invalid_json"),
        ("a number beyond f64", b"{\"a\": 1e400}".to_vec(), 400, "invalid_json"),
        ("a lone surrogate", br#"{"a": "\ud800"}"#.to_vec(), 400, "invalid_json"),
        ("a key given twice", br#"{"a": 1, "a": 2}"#.to_vec(), 400, "invalid_field"),
        ("a key given twice, escaped", br#"{"start": 1, "\u0073tart": 2}"#.to_vec(), 400, "invalid_field"),
    ];
    let before = app.scan().await;
    // Checkout is the customer's: the hold's secret; the rest take the admin's.
    let bearer =
        |path: &str| if path.ends_with("/checkout") { app.secret_of(&held).unwrap() } else { ADMIN_TOKEN.to_owned() };
    for (method, path) in &json_routes {
        for (name, body, status, kind) in &bodies {
            let r = app
                .http
                .request(method.clone(), app.url(path))
                .bearer_auth(bearer(path))
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await
                .unwrap();
            let got = r.status().as_u16();
            assert_eq!(got, *status, "{method} {path}: {name}");
            assert_problem(r, *status, kind).await;
        }
        for content_type in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/jsonp",
            "application/json-seq",
            "",
        ] {
            let r = app
                .http
                .request(method.clone(), app.url(path))
                .bearer_auth(bearer(path))
                .header("content-type", content_type)
                .body(reserve(""))
                .send()
                .await
                .unwrap();
            assert_problem(r, 415, "unsupported_media_type").await;
        }
    }

    // Numbers a field cannot hold, and keys that disagree, in bodies that are otherwise right.
    let post = |body: String| {
        app.http.post(app.url("/v1/reservations")).header("content-type", "application/json").body(body).send()
    };
    for (name, body, status, kind) in [
        ("duration beyond u64", reserve(r#", "duration_minutes": 184467440737095516160000"#), 400, "invalid_field"),
        ("duration beyond f64", reserve(r#", "duration_minutes": 1e400"#), 400, "invalid_json"),
        ("negative duration", reserve(r#", "duration_minutes": -60"#), 400, "invalid_field"),
        ("fractional duration", reserve(r#", "duration_minutes": 60.5"#), 400, "invalid_field"),
        ("resource given twice", reserve(r#", "resource_id": "other""#), 400, "invalid_field"),
        (
            "customer given twice",
            reserve(r#", "customer": {"name": "Bea Twice", "email": "bea@example.com"}"#),
            400,
            "invalid_field",
        ),
    ] {
        let r = post(body).await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{name}");
        assert_problem(r, status, kind).await;
    }
    let mut price = open_all_day();
    price["price"]["amount"] = json!(1e30);
    let r = app.http.put(app.url("/v1/resources/room")).bearer_auth(ADMIN_TOKEN).json(&price).send().await.unwrap();
    assert_problem(r, 400, "invalid_field").await;
    assert_eq!(app.scan().await, before, "the table is unchanged");
}

#[tokio::test]
async fn a_signed_webhook_body_too_deep_to_read_is_kept_for_retry_and_an_unsigned_one_refused() {
    let app = spawn_app().await;
    let deep = format!("{}{}", "[".repeat(50_000), "]".repeat(50_000));
    let before = app.scan().await;
    let r = app.post_webhook(&deep, Some("t=1,v1=00")).await;
    assert_problem(r, 400, "invalid_signature").await;
    // Only the signing secret's holder can send it; a genuine event is never
    // dropped: 503, so Stripe would retry, and the unreadable-event alarm.
    let signature = slotguard::adapters::stripe::sign(&deep, WEBHOOK_SECRET, chrono::Utc::now().timestamp());
    let r = app.post_webhook(&deep, Some(&signature)).await;
    assert_problem(r, 503, "unreadable_event").await;
    assert_eq!(app.scan().await, before, "the table is unchanged");
}

#[tokio::test]
async fn header_values_cannot_inject_headers_and_odd_ones_get_problems() {
    let (app, _held) = app_with_a_hold().await;
    let reserve = TestApp::reserve_body("room", hour_from_now(41), "hdr@example.com").to_string();
    let body = reserve.as_bytes();
    let json = b"Content-Type: application/json\r\n";
    let post = |headers: &[u8]| request("POST", "/v1/reservations", &[json, headers].concat(), body);
    let before = app.scan().await;

    // What HTTP/1.1 itself forbids: hyper's own 400, before any route.
    for (name, headers) in [
        ("a bare CR in Idempotency-Key", &b"Idempotency-Key: k\rX-Injected: 1\r\n"[..]),
        ("a NUL in a header", b"Idempotency-Key: k\0X-Injected: 1\r\n"),
        ("a folded header", b"Idempotency-Key: k\r\n X-Injected: 1\r\n"),
        ("a header without a name", b": v\r\n"),
        ("a space before the colon", b"Idempotency-Key : k\r\n"),
    ] {
        let answer = exchange(addr(&app), &post(headers)).await;
        assert_eq!(answer.status, 400, "{name}: {answer:?}");
        assert!(answer.header("x-injected").is_none(), "{name}");
    }

    // Values a route reads, with bytes outside visible ASCII: problems.
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("non-ASCII Idempotency-Key", post("Idempotency-Key: ключ\r\n".as_bytes()), 400, "invalid_idempotency_key"),
        (
            "Idempotency-Key over 255",
            post(format!("Idempotency-Key: {}\r\n", "k".repeat(256)).as_bytes()),
            400,
            "invalid_idempotency_key",
        ),
        (
            "non-ASCII Content-Type",
            request("POST", "/v1/reservations", "Content-Type: application/json; charset=ü\r\n".as_bytes(), body),
            415,
            "unsupported_media_type",
        ),
        (
            "non-ASCII bearer token",
            request("PUT", "/v1/resources/room", "Authorization: Bearer tökén\r\n".as_bytes(), b"{}"),
            401,
            "unauthorized",
        ),
        (
            "a bearer token with a tab",
            request(
                "PUT",
                "/v1/resources/room",
                format!("Authorization: Bearer {ADMIN_TOKEN}\tx\r\n").as_bytes(),
                b"{}",
            ),
            401,
            "unauthorized",
        ),
        (
            "non-ASCII Stripe-Signature",
            request("POST", "/webhooks/stripe", "Stripe-Signature: t=1,v1=ä\r\n".as_bytes(), b"{}"),
            400,
            "invalid_signature",
        ),
        (
            "encoded CRLF in a reservation id",
            request("GET", "/v1/reservations/rsv%0D%0ASet-Cookie:%20a=b%0D%0A", b"", b""),
            404,
            "reservation_not_found",
        ),
        ("encoded CRLF in an unknown path", request("GET", "/v1/x%0D%0ASet-Cookie:%20a=b", b"", b""), 404, "not_found"),
    ];
    for (name, bytes, status, kind) in cases {
        let answer = exchange(addr(&app), &bytes).await;
        let body = answer.assert_problem(status, kind);
        for (header, value) in &answer.headers {
            assert!(value.iter().all(|b| (0x20..0x7f).contains(b)), "{name}: header {header} = {value:?}");
            assert!(!header.eq_ignore_ascii_case("set-cookie") && !header.eq_ignore_ascii_case("x-injected"), "{name}");
        }
        eprintln!("{name}: {status} {}", body["detail"]);
    }
    assert_eq!(app.scan().await, before, "the table is unchanged");

    // A key of odd but visible characters is accepted; what the API echoes
    // into headers (Location) is its own reservation id, on the first
    // answer and on the replay.
    let key = "Idempotency-Key: k\"<script>;,\\%0d%0a\r\n";
    let mut locations = Vec::new();
    for _ in 0..2 {
        let answer = exchange(addr(&app), &post(key.as_bytes())).await;
        assert_eq!(answer.status, 201, "{answer:?}");
        let location = String::from_utf8(answer.header("location").unwrap().to_vec()).unwrap();
        let id = location.strip_prefix("/v1/reservations/").unwrap();
        assert!(slotguard::domain::ReservationId::parse(id).is_some(), "{location}");
        locations.push(location);
    }
    assert_eq!(locations[0], locations[1], "the replay answers the same");
}

#[tokio::test]
async fn customer_fields_that_would_inject_are_refused_and_change_nothing() {
    let app = spawn_app().await;
    app.put_resource("room", &open_all_day()).await;
    let before = app.scan().await;
    let start = rfc3339(hour_from_now(42));
    for (name, email) in [
        ("Rhea Rhodes\r\nATTENDEE:mailto:evil@example.com", "rhea@example.com"),
        ("Rhea Rhodes\nEND:VEVENT", "rhea@example.com"),
        ("Rhea Rhodes\rX", "rhea@example.com"),
        ("Rhea\u{0}Rhodes", "rhea@example.com"),
        ("Rhea\u{85}Rhodes", "rhea@example.com"),
        ("Rhea\u{1b}[31mRhodes", "rhea@example.com"),
        ("Rhea Rhodes", "rhea@example.com\r\nATTENDEE:mailto:evil@example.com"),
        ("Rhea Rhodes", "rhea@example.com;x"),
        ("Rhea Rhodes", "rhea,evil@example.com"),
        ("Rhea Rhodes", "\"rhea\"@example.com"),
        ("Rhea Rhodes", "<rhea@example.com>"),
        ("Rhea Rhodes", "rhea@example.com\u{2028}x"),
        ("Rhea Rhodes", "rhea@exa mple.com"),
    ] {
        let body = json!({ "resource_id": "room", "start": start, "customer": { "name": name, "email": email } });
        let r = app.http.post(app.url("/v1/reservations")).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 422, "{name:?} {email:?}");
        assert_problem(r, 422, "invalid_field").await;
    }
    assert_eq!(app.scan().await, before, "the table is unchanged");
}

#[tokio::test]
async fn hostile_names_stay_inside_their_calendar_property_and_stripe_field() {
    let app = spawn_app().await;
    let collection = fresh_collection().await;
    let mut spec = open_all_day();
    spec["name"] = json!("Coaching");
    spec["calendar"] = json!({ "type": "caldav", "url": collection });
    app.put_resource("room", &spec).await;

    let mut booked = Vec::new();
    for (i, name) in HOSTILE_NAMES.iter().enumerate() {
        let email = format!("hostile{i}@example.com");
        let body = json!({ "resource_id": "room", "start": rfc3339(hour_from_now(30 + i as i64)),
                           "customer": { "name": name, "email": email } });
        let r = app.http.post(app.url("/v1/reservations")).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 201);
        let id = app.remember(&r.json().await.unwrap());
        let (status, checkout) = app.checkout(&id).await;
        assert_eq!(status, 201, "{checkout}");
        let session_id = checkout["session_id"].as_str().unwrap().to_owned();

        // Stripe got the name as one form value: the metadata it keeps is
        // the name, and the reservation id is still the reservation's.
        let session = app.stripe_session(&session_id).await;
        assert_eq!(session["metadata"]["customer_name"], *name);
        assert_eq!(session["metadata"]["reservation_id"], id.as_str());
        assert_eq!(session["client_reference_id"], id.as_str());
        assert_eq!(session["customer_email"], email.as_str());

        app.pay(&session_id, "").await;
        assert_eq!(app.status_text(&id).await, "confirmed");
        booked.push((id, *name, email));
    }
    Writer::new(&app).drain(&app).await;

    for (id, name, email) in booked {
        let text = reqwest::get(format!("{collection}{id}.ics")).await.unwrap().text().await.unwrap();
        let lines = ics::unfold(&text);
        let named = |prop: &str| -> Vec<ics::ContentLine> {
            lines.iter().filter_map(|l| ics::ContentLine::parse(l)).filter(|c| c.name == prop).collect()
        };
        for (prop, n) in [("BEGIN", 2), ("END", 2), ("ATTENDEE", 1), ("SUMMARY", 1), ("DESCRIPTION", 1), ("UID", 1)] {
            assert_eq!(named(prop).len(), n, "{prop} in {text}");
        }
        let attendee = &named("ATTENDEE")[0];
        assert_eq!(attendee.value, format!("mailto:{email}"), "{text}");
        assert_eq!(
            attendee.param("CN").map(slotguard::adapters::caldav::ics::decode_param_value).as_deref(),
            Some(name),
            "{text}"
        );
        assert_eq!(ics::unescape_text(&named("SUMMARY")[0].value), format!("Coaching: {name}"));
        let event = ics::parse_event(&text).expect("one event");
        assert_eq!(event.booking.as_deref(), Some(id.as_str()));
        assert_eq!(event.uid, Some(format!("{id}@slotguard")));
    }
}

/// The log lines of this test binary that contain `needle`.
fn log_lines_with(needle: &str) -> Vec<String> {
    let text = std::fs::read_to_string(log_file()).expect("the captured log");
    text.lines().filter(|l| l.contains(needle)).map(str::to_owned).collect()
}

#[tokio::test]
async fn values_that_reach_a_log_line_stay_on_it_and_names_never_reach_one() {
    let app = spawn_app().await;
    app.put_resource("room", &open_all_day()).await;
    let marker = format!("forged-{}", uuid::Uuid::new_v4().simple());
    let start = rfc3339(hour_from_now(43));

    // An unknown field is named in the refusal, and so in its log line.
    let forged_key = format!("x\n{{\"level\":\"ERROR\",\"fields\":{{\"message\":\"{marker}\"}}}}\r\nERROR {marker}");
    let mut body = json!({ "resource_id": "room", "start": start,
                           "customer": { "name": "Lena Logline", "email": "lena@example.com" } });
    body[&forged_key] = json!(1);
    let r = app.http.post(app.url("/v1/reservations")).json(&body).send().await.unwrap();
    assert_problem(r, 400, "invalid_field").await;
    let lines = log_lines_with(&marker);
    assert_eq!(lines.len(), 1, "one line, not a forged second one: {lines:#?}");
    let line: Value = serde_json::from_str(&lines[0]).expect("a JSON log line");
    let error = line["fields"]["error"].as_str().expect("the refusal's error");
    assert!(error.contains(&marker) && !error.contains('\n') && !error.contains('\r'), "{error}");

    // A name where an object belongs: the refusal quotes it, the log does not.
    for name in MISPLACED_NAMES {
        let body = json!({ "resource_id": "room", "start": start,
                           "customer": format!("{name} <imogen.leak@example.com>") });
        let r = app.http.post(app.url("/v1/reservations")).json(&body).send().await.unwrap();
        let problem = assert_problem(r, 400, "invalid_field").await;
        assert!(problem["detail"].as_str().unwrap().contains(name), "the client reads what it sent: {problem}");
        assert_eq!(log_lines_with(name).len(), 0, "a log line names the customer");
        assert_eq!(log_lines_with("imogen.leak@").len(), 0, "a log line holds the address");
    }
    // A bad address is quoted back to the client, not to the log.
    let body = json!({ "resource_id": "room", "start": start,
                       "customer": { "name": "Lena Logline", "email": "lena.leak@@example.com" } });
    let r = app.http.post(app.url("/v1/reservations")).json(&body).send().await.unwrap();
    assert_problem(r, 422, "invalid_field").await;
    assert_eq!(log_lines_with("lena.leak@").len(), 0, "a log line holds the address");
    assert_eq!(log_lines_with("Lena Logline").len(), 0, "a log line names the customer");
}

/// A connection that sent `bytes` and then stalls.
async fn stalled(addr: SocketAddr, bytes: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    stream
}

/// Reads what the server sends until it closes the connection; panics if
/// it keeps it open past [`HANG`].
async fn closed_by_server(mut stream: impl tokio::io::AsyncRead + Unpin) -> Vec<u8> {
    let mut raw = Vec::new();
    let closed = tokio::time::timeout(HANG, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the server kept a stalled connection open past {HANG:?}");
    raw
}

#[tokio::test]
async fn stalled_clients_neither_hold_up_others_nor_keep_their_connections() {
    let limits = gateway::Limits {
        connection: slotguard_serve::Limits { header_read_timeout: Duration::from_secs(2), max_connections: 512 },
        body_read_timeout: Duration::from_secs(2),
    };
    let app = spawn_app_limited(limits).await;
    app.put_resource("room", &open_all_day()).await;
    let addr = addr(&app);
    let before = app.scan().await;

    let partial_head = b"POST /v1/reservations HTTP/1.1\r\nHost: x\r\nContent-Type: appl";
    let partial_body = b"POST /v1/reservations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                         Content-Length: 1000\r\n\r\n{\"resource_id\":";
    let mut heads = Vec::new();
    let mut bodies = Vec::new();
    let mut silent = Vec::new();
    for _ in 0..50 {
        heads.push(stalled(addr, partial_head).await);
        bodies.push(stalled(addr, partial_body).await);
    }
    for _ in 0..20 {
        silent.push(TcpStream::connect(addr).await.unwrap());
    }

    // Meanwhile, others on fresh connections are answered.
    let fresh = reqwest::Client::builder().pool_max_idle_per_host(0).timeout(HANG).build().unwrap();
    for i in 0..10 {
        let r = fresh.get(app.url("/v1/resources/room")).send().await.expect("answered while others stall");
        assert_eq!(r.status(), 200);
        if i == 0 {
            let body = TestApp::reserve_body("room", hour_from_now(44), "patient@example.com");
            let r = fresh.post(app.url("/v1/reservations")).json(&body).send().await.expect("answered");
            assert_eq!(r.status(), 201);
        }
    }

    // And the server ends every stalled connection: heads without an answer,
    // bodies with 408.
    for stream in heads.into_iter().chain(silent) {
        closed_by_server(stream).await;
    }
    for stream in bodies {
        let raw = closed_by_server(stream).await;
        let answer = parse_answer(&raw).expect("an answer to a stalled body");
        answer.assert_problem(408, "request_timeout");
    }
    assert_eq!(app.live_holds().await.len(), 1, "only the patient client's hold was written");
    assert!(before.iter().all(|item| !item.contains_key("reservation_id")), "no hold before");
}

#[tokio::test]
async fn trickled_bodies_are_cut_off_at_the_limit_or_the_deadline_never_buffered_without_bound() {
    let limits = gateway::Limits { body_read_timeout: Duration::from_secs(2), ..gateway::Limits::default() };
    let app = spawn_app_limited(limits).await;
    let addr = addr(&app);
    let before = app.scan().await;

    // 1 KiB every 20 ms, chunked, far beyond the 16 KiB limit: the answer
    // comes while the client is still sending.
    let stream = stalled(
        addr,
        b"POST /v1/reservations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
    )
    .await;
    let (mut read, mut write) = stream.into_split();
    let answered = tokio::spawn(async move {
        let mut raw = Vec::new();
        let mut buf = [0u8; 4096];
        while !raw.windows(4).any(|w| w == b"\r\n\r\n") {
            match read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
            }
        }
        raw
    });
    let mut sent = 0;
    while !answered.is_finished() && sent < 1024 * 1024 {
        let chunk = format!("400\r\n{}\r\n", " ".repeat(1024));
        if write.write_all(chunk.as_bytes()).await.is_err() {
            break;
        }
        sent += 1024;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let raw = tokio::time::timeout(HANG, answered).await.expect("no answer").unwrap();
    let head = String::from_utf8_lossy(&raw);
    assert!(head.starts_with("HTTP/1.1 413 "), "{head}");
    assert!(sent < 256 * 1024, "the answer came only after {sent} bytes");

    // Byte by byte, within the limit but slower than the deadline: the
    // deadline ends it, with a 408 or (if a byte arrived as the server
    // closed) a reset connection.
    let stream = stalled(
        addr,
        b"POST /v1/reservations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n",
    )
    .await;
    let (read, mut write) = stream.into_split();
    let trickle = tokio::spawn(async move {
        for _ in 0..1000 {
            if write.write_all(b" ").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let raw = closed_by_server(read).await;
    trickle.abort();
    if !raw.is_empty() {
        parse_answer(&raw).expect("an answer").assert_problem(408, "request_timeout");
    }
    assert_eq!(app.scan().await, before, "the table is unchanged");
}
