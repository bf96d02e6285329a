//! What a resource's calendar may point at, through the admin route of the
//! real gateway: calendar URLs reaching internal addresses and credentials
//! naming secrets outside the calendar prefix are refused with `422` and
//! nothing is saved, under the local stack's rules and under AWS's.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use slotguard::adapters::calendar_secrets::DEFAULT_PREFIX;
use slotguard::adapters::calendars::CalendarTargetRules;
use slotguard::adapters::outbound::OutboundPolicy;

/// The rules a deployed stack runs with.
fn strict() -> CalendarTargetRules {
    CalendarTargetRules::new(OutboundPolicy::strict(), DEFAULT_PREFIX).unwrap()
}

fn with_calendar(calendar: Value) -> Value {
    let mut spec = open_all_day();
    spec["calendar"] = calendar;
    spec
}

async fn put(app: &TestApp, id: &str, spec: &Value) -> reqwest::Response {
    app.http.put(app.url(&format!("/v1/resources/{id}"))).bearer_auth(ADMIN_TOKEN).json(spec).send().await.unwrap()
}

/// Asserts the PUT is a `422 invalid_resource` whose detail contains
/// `needle`, and that the resource was not saved.
async fn assert_refused(app: &TestApp, calendar: Value, needle: &str) {
    let r = put(app, "room", &with_calendar(calendar.clone())).await;
    let body = assert_problem(r, 422, "invalid_resource").await;
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains(needle), "{calendar}: {detail:?} should mention {needle:?}");
    let stored = app.http.get(app.url("/v1/resources/room")).send().await.unwrap();
    assert_eq!(stored.status(), StatusCode::NOT_FOUND, "{calendar} was saved");
}

#[tokio::test]
async fn calendar_urls_reaching_internal_addresses_are_refused_in_the_local_stack_too() {
    let app = spawn_app().await;
    for url in [
        "http://169.254.169.254/",
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://10.0.0.1/",
        "http://[::ffff:10.0.0.1]/",
        "http://[::ffff:a9fe:a9fe]/",
        "http://[fd00:ec2::254]/",
        "http://172.17.0.1:5232/user/calendars/calendar/",
        "http://192.168.1.10/dav/",
        "http://100.64.0.1/",
        "http://0.0.0.0:5232/",
        "http://[::]:5232/",
        "http://[fe80::1]/",
        "http://[fc00::1]/",
        "http://224.0.0.1/",
        "http://2852039166/",
    ] {
        assert_refused(&app, json!({"type": "caldav", "url": url}), "calendar.url is refused").await;
    }
    // Locally the stack's own CalDAV server, on loopback over http, is fine.
    let xandikos = format!("{}/user/calendars/calendar/", stack_caldav());
    app.put_resource("room", &with_calendar(json!({"type": "caldav", "url": xandikos}))).await;
}

#[tokio::test]
async fn on_aws_only_https_to_public_addresses_is_accepted() {
    let app = spawn_app_with_calendar_rules(strict()).await;
    let xandikos = format!("{}/user/calendars/calendar/", stack_caldav());
    assert_refused(&app, json!({"type": "caldav", "url": xandikos}), "plain http is refused").await;
    // A name that resolves to loopback is as refused as the address.
    assert_refused(&app, json!({"type": "caldav", "url": "https://localhost/dav/"}), "localhost resolves to").await;
    assert_refused(&app, json!({"type": "caldav", "url": "https://127.0.0.1/dav/"}), "loopback").await;
    assert_refused(&app, json!({"type": "caldav", "url": "https://10.0.0.1/dav/"}), "private").await;
    assert_refused(&app, json!({"type": "caldav", "url": "https://calendar.invalid/dav/"}), "does not resolve").await;
    let with_password = json!({"type": "caldav", "url": "https://host:pw@93.184.215.14/dav/"});
    assert_refused(&app, with_password, "credentials do not belong in the URL").await;
    // A public address is fine (nothing is sent to it when saving).
    let public = json!({"type": "caldav", "url": "https://93.184.215.14/dav/", "credentials": "slotguard/calendars/a"});
    app.put_resource("room", &with_calendar(public)).await;
}

#[tokio::test]
async fn credentials_may_only_name_calendar_secrets() {
    let app = spawn_app().await;
    let xandikos = format!("{}/user/calendars/calendar/", stack_caldav());
    let caldav = |credentials: &str| json!({"type": "caldav", "url": xandikos, "credentials": credentials});
    for unlisted in [
        // The stack's own secret with the Stripe keys (scripts/stack sam).
        "slotguard-test-secrets",
        "slotguard/calendars/",
        "slotguard/calendarsx",
        "prod/slotguard/calendars/alice",
        "arn:aws:secretsmanager:eu-central-1:123456789012:secret:StripeSecret-AbCdEf",
    ] {
        assert_refused(&app, caldav(unlisted), "is not a calendar secret").await;
    }
    assert_refused(&app, caldav("not a secret name"), "calendar.credentials").await;
    let google = json!({"type": "google", "calendar_id": "primary", "credentials": "slotguard-test-secrets"});
    assert_refused(&app, google, "is not a calendar secret").await;

    let listed = "slotguard/calendars/alice#work";
    let r = put(&app, "room", &with_calendar(caldav(listed))).await;
    assert_eq!(r.status(), StatusCode::OK);
    let saved: Value = r.json().await.unwrap();
    assert_eq!(saved["calendar"]["credentials"], listed, "{saved}");
}

#[tokio::test]
async fn another_prefix_is_the_only_one_accepted() {
    let rules = CalendarTargetRules::new(OutboundPolicy::local(), "hosts/").unwrap();
    let app = spawn_app_with_calendar_rules(rules).await;
    let xandikos = format!("{}/user/calendars/calendar/", stack_caldav());
    let caldav = |credentials: &str| json!({"type": "caldav", "url": xandikos, "credentials": credentials});
    assert_refused(&app, caldav("slotguard/calendars/alice"), "starts with \"hosts/\"").await;
    app.put_resource("room", &with_calendar(caldav("hosts/alice"))).await;
}

/// The test stack's Xandikos.
fn stack_caldav() -> String {
    std::env::var("SLOTGUARD_TEST_CALDAV_URL").expect("SLOTGUARD_TEST_CALDAV_URL").trim_end_matches('/').to_owned()
}
