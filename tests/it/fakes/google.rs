//! A local stand-in for the Google Calendar API v3 and Google's OAuth token
//! endpoint, holding the rules the adapter must live with:
//! - event ids are 5–1024 characters of base32hex (`0-9a-v`), else `400`;
//! - inserting an id that exists (even cancelled) is `409`;
//! - `events.update` (PUT) replaces the whole event, a cancelled one too (so
//!   `status: confirmed` restores it); with `If-Match` it answers `412` unless
//!   the event's current `etag` matches; every write gives the event a new
//!   `etag`;
//! - `sequence` may not go down: an update sending less than the stored one
//!   (a missing one counts as 0) is `400 Invalid sequence value`; an update
//!   that moves the event without raising it gets it raised by one, and a
//!   delete raises it by one, as Google does;
//! - deleting marks the event `cancelled` (Google keeps it); deleting it
//!   again is `410`, an unknown id `404`;
//! - every API call needs `Authorization: Bearer <a token it issued>` (`401`);
//! - the token endpoint takes the `refresh_token` grant, answers `401
//!   invalid_client` for a wrong client and `400 invalid_grant` for a revoked
//!   refresh token;
//! - listing filters by `timeMin`/`timeMax` (overlap, as Google does) and
//!   pages with `pageToken`, [`DEFAULT_PAGE_SIZE`] items a page.
//!
//! Stricter than Google in one way: listing also returns cancelled events,
//! so the adapter's filtering of them is exercised.

use super::{Reply, Request, ServerGuard, json_response};
use chrono::{DateTime, Utc};
use percent_encoding::percent_decode_str;
use serde_json::{Value, json};
use slotguard::adapters::google::{GoogleConfig, GoogleCredentials};
use slotguard::adapters::outbound::OutboundPolicy;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

pub const CLIENT_ID: &str = "fake-client.apps.googleusercontent.com";
pub const CLIENT_SECRET: &str = "fake-client-secret";
pub const REFRESH_TOKEN: &str = "1//fake-refresh-token";
/// Items per listing page unless [`FakeGoogle::set_page_size`] says otherwise:
/// small, so a handful of events spans several pages.
pub const DEFAULT_PAGE_SIZE: usize = 2;
/// The API's path prefix, as on www.googleapis.com.
const API_PREFIX: &str = "/calendar/v3";

struct State {
    refresh_token_revoked: bool,
    issued: HashSet<String>,
    token_requests: usize,
    list_requests: usize,
    page_size: usize,
    /// The last `etag` handed out.
    etags: u64,
    /// How many coming updates find the event edited by someone else first.
    edits_before_updates: usize,
    /// calendar id → event id → event.
    calendars: HashMap<String, BTreeMap<String, Value>>,
}

/// A running stand-in; stops when dropped.
pub struct FakeGoogle {
    /// The Calendar API base URL (`http://127.0.0.1:<port>/calendar/v3`).
    pub api_base: String,
    /// The OAuth token endpoint.
    pub token_url: String,
    state: Arc<Mutex<State>>,
    _server: ServerGuard,
}

impl FakeGoogle {
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(State {
            refresh_token_revoked: false,
            issued: HashSet::new(),
            token_requests: 0,
            list_requests: 0,
            page_size: DEFAULT_PAGE_SIZE,
            etags: 0,
            edits_before_updates: 0,
            calendars: HashMap::new(),
        }));
        let (addr, server) = super::serve({
            let state = state.clone();
            move |req| {
                let reply = handle(&state, req);
                async move { Reply::Respond(reply) }
            }
        })
        .await;
        Self {
            api_base: format!("http://{addr}{API_PREFIX}"),
            token_url: format!("http://{addr}/token"),
            state,
            _server: server,
        }
    }

    /// The credentials the stand-in accepts.
    pub fn credentials() -> GoogleCredentials {
        GoogleCredentials::new(CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN)
    }

    /// An adapter configuration pointing at this stand-in (on loopback, so
    /// with the local outbound policy).
    pub fn config(&self) -> GoogleConfig {
        GoogleConfig::new(Self::credentials())
            .with_api_base(&self.api_base)
            .with_token_url(&self.token_url)
            .with_outbound(OutboundPolicy::local())
    }

    pub fn set_page_size(&self, size: usize) {
        self.lock().page_size = size.max(1);
    }

    /// The refresh token stops working (`400 invalid_grant`), as when the
    /// calendar's owner revokes slotguard's access.
    pub fn revoke_refresh_token(&self) {
        self.lock().refresh_token_revoked = true;
    }

    /// Every access token issued so far stops working (`401`).
    pub fn revoke_access_tokens(&self) {
        self.lock().issued.clear();
    }

    /// How many times the token endpoint was asked, successfully or not.
    pub fn token_requests(&self) -> usize {
        self.lock().token_requests
    }

    /// How many listing pages were served.
    pub fn list_requests(&self) -> usize {
        self.lock().list_requests
    }

    /// Every event of a calendar, cancelled ones included, by id.
    pub fn events(&self, calendar_id: &str) -> Vec<Value> {
        self.lock().calendars.get(calendar_id).map(|c| c.values().cloned().collect()).unwrap_or_default()
    }

    /// The calendar's events that are not cancelled.
    pub fn live_events(&self, calendar_id: &str) -> Vec<Value> {
        self.events(calendar_id).into_iter().filter(|e| e["status"] != "cancelled").collect()
    }

    /// One event, cancelled or not.
    pub fn event(&self, calendar_id: &str, id: &str) -> Option<Value> {
        self.lock().calendars.get(calendar_id).and_then(|c| c.get(id)).cloned()
    }

    /// Changes a stored event as the host would in Google's UI (it gets a
    /// new `etag`).
    pub fn edit(&self, calendar_id: &str, id: &str, change: impl FnOnce(&mut Value)) {
        let mut state = self.lock();
        let etag = next_etag(&mut state);
        let event = state.calendars.get_mut(calendar_id).and_then(|c| c.get_mut(id)).expect("the event to edit exists");
        change(event);
        event["etag"] = json!(etag);
    }

    /// The next `count` updates find their event edited since it was read
    /// (it gets a new `etag` just before the update is handled), as when the
    /// host changes it in that moment.
    pub fn edit_before_next_updates(&self, count: usize) {
        self.lock().edits_before_updates = count;
    }

    /// Stores an event as-is (it needs an `id`), e.g. one the host made.
    pub fn put_raw(&self, calendar_id: &str, event: Value) {
        let id = event["id"].as_str().expect("a raw event needs an id").to_owned();
        self.lock().calendars.entry(calendar_id.to_owned()).or_default().insert(id, event);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

fn handle(state: &Mutex<State>, req: Request) -> super::Response {
    let path = req.uri().path().to_owned();
    if path == "/token" && req.method() == "POST" {
        return token(&mut lock(state), req.body());
    }
    let Some(rest) = path.strip_prefix(API_PREFIX) else {
        return api_error(404, "notFound", "Not Found");
    };
    let mut state = lock(state);
    let bearer =
        req.headers().get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    if !bearer.is_some_and(|t| state.issued.contains(t)) {
        return api_error(401, "authError", "Request had invalid authentication credentials.");
    }
    let segments: Vec<String> = rest
        .trim_start_matches('/')
        .split('/')
        .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect();
    let query: HashMap<String, String> =
        form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes()).into_owned().collect();
    match (req.method().as_str(), segments.iter().map(String::as_str).collect::<Vec<_>>().as_slice()) {
        ("POST", ["calendars", cal, "events"]) => insert(&mut state, cal, req.body()),
        ("GET", ["calendars", cal, "events"]) => list(&mut state, cal, &query),
        ("GET", ["calendars", cal, "events", id]) => get(&state, cal, id),
        ("PUT", ["calendars", cal, "events", id]) => {
            let if_match = req.headers().get("if-match").and_then(|v| v.to_str().ok());
            update(&mut state, cal, id, if_match, req.body())
        }
        ("DELETE", ["calendars", cal, "events", id]) => delete(&mut state, cal, id),
        _ => api_error(404, "notFound", "Not Found"),
    }
}

fn token(state: &mut State, body: &[u8]) -> super::Response {
    state.token_requests += 1;
    let form: HashMap<String, String> = form_urlencoded::parse(body).into_owned().collect();
    let field = |k: &str| form.get(k).map(String::as_str);
    if field("client_id") != Some(CLIENT_ID) || field("client_secret") != Some(CLIENT_SECRET) {
        return json_response(
            401,
            &json!({ "error": "invalid_client", "error_description": "The OAuth client was not found." }),
        );
    }
    if field("grant_type") != Some("refresh_token") {
        return json_response(400, &json!({ "error": "unsupported_grant_type" }));
    }
    if field("refresh_token") != Some(REFRESH_TOKEN) || state.refresh_token_revoked {
        return json_response(
            400,
            &json!({ "error": "invalid_grant", "error_description": "Token has been expired or revoked." }),
        );
    }
    let token = format!("ya29.fake-{}", uuid::Uuid::new_v4().simple());
    state.issued.insert(token.clone());
    json_response(
        200,
        &json!({ "access_token": token, "expires_in": 3599, "token_type": "Bearer", "scope": "https://www.googleapis.com/auth/calendar" }),
    )
}

/// Google's rule for client-chosen event ids.
fn valid_event_id(id: &str) -> bool {
    (5..=1024).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'v').contains(&b))
}

fn insert(state: &mut State, cal: &str, body: &[u8]) -> super::Response {
    let Ok(mut event) = serde_json::from_slice::<Value>(body) else {
        return api_error(400, "parseError", "Parse Error");
    };
    let id = match event["id"].as_str() {
        Some(id) if valid_event_id(id) => id.to_owned(),
        Some(_) => return api_error(400, "invalid", "Invalid resource id value."),
        None => uuid::Uuid::new_v4().simple().to_string(),
    };
    if instant(&event["start"]).is_none() || instant(&event["end"]).is_none() {
        return api_error(400, "required", "Missing start or end time.");
    }
    let events = state.calendars.entry(cal.to_owned()).or_default();
    if events.contains_key(&id) {
        return api_error(409, "duplicate", "The requested identifier already exists.");
    }
    event["id"] = json!(id);
    if event.get("status").is_none() {
        event["status"] = json!("confirmed");
    }
    if event.get("sequence").is_none() {
        event["sequence"] = json!(0);
    }
    event["etag"] = json!(next_etag(state));
    state.calendars.entry(cal.to_owned()).or_default().insert(id, event.clone());
    json_response(200, &event)
}

/// A fresh `etag`, quoted as Google's are.
fn next_etag(state: &mut State) -> String {
    state.etags += 1;
    format!("\"{}\"", 3_000_000_000 + state.etags)
}

fn get(state: &State, cal: &str, id: &str) -> super::Response {
    match state.calendars.get(cal).and_then(|c| c.get(id)) {
        Some(event) => json_response(200, event),
        None => api_error(404, "notFound", "Not Found"),
    }
}

fn update(state: &mut State, cal: &str, id: &str, if_match: Option<&str>, body: &[u8]) -> super::Response {
    let Ok(mut event) = serde_json::from_slice::<Value>(body) else {
        return api_error(400, "parseError", "Parse Error");
    };
    if !state.calendars.get(cal).is_some_and(|c| c.contains_key(id)) {
        return api_error(404, "notFound", "Not Found");
    }
    if state.edits_before_updates > 0 {
        state.edits_before_updates -= 1;
        let etag = next_etag(state);
        let stored = state.calendars.get_mut(cal).and_then(|c| c.get_mut(id)).expect("checked above");
        stored["etag"] = json!(etag);
        stored["sequence"] = json!(stored["sequence"].as_u64().unwrap_or(0) + 1);
    }
    let etag = next_etag(state);
    let stored = state.calendars.get_mut(cal).and_then(|c| c.get_mut(id)).expect("checked above");
    if if_match.is_some_and(|tag| tag != "*" && stored["etag"].as_str() != Some(tag)) {
        return api_error(412, "conditionNotMet", "Precondition Failed");
    }
    let (Some(start), Some(end)) = (instant(&event["start"]), instant(&event["end"])) else {
        return api_error(400, "required", "Missing start or end time.");
    };
    let current = stored["sequence"].as_u64().unwrap_or(0);
    let mut sequence = event["sequence"].as_u64().unwrap_or(0);
    if sequence < current {
        return api_error(
            400,
            "invalid",
            "Invalid sequence value. The specified sequence number is below the current sequence number of the resource.",
        );
    }
    let moved = instant(&stored["start"]) != Some(start) || instant(&stored["end"]) != Some(end);
    if moved && sequence == current {
        sequence += 1;
    }
    event["id"] = json!(id);
    if event.get("status").is_none() {
        event["status"] = json!("confirmed");
    }
    event["sequence"] = json!(sequence);
    event["etag"] = json!(etag);
    *stored = event.clone();
    json_response(200, &event)
}

fn delete(state: &mut State, cal: &str, id: &str) -> super::Response {
    let etag = next_etag(state);
    match state.calendars.get_mut(cal).and_then(|c| c.get_mut(id)) {
        None => api_error(404, "notFound", "Not Found"),
        Some(event) if event["status"] == "cancelled" => api_error(410, "deleted", "Resource has been deleted"),
        Some(event) => {
            event["status"] = json!("cancelled");
            event["sequence"] = json!(event["sequence"].as_u64().unwrap_or(0) + 1);
            event["etag"] = json!(etag);
            super::response(204, "text/plain", "")
        }
    }
}

fn list(state: &mut State, cal: &str, query: &HashMap<String, String>) -> super::Response {
    state.list_requests += 1;
    let bound = |k: &str| query.get(k).map(|v| DateTime::parse_from_rfc3339(v).map(|t| t.with_timezone(&Utc)));
    let (time_min, time_max) = match (bound("timeMin").transpose(), bound("timeMax").transpose()) {
        (Ok(min), Ok(max)) => (min, max),
        _ => return api_error(400, "badRequest", "Bad Request"),
    };
    let offset: usize = match query.get("pageToken").map(|t| t.parse()) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => return api_error(400, "invalid", "Invalid page token."),
    };
    let max_results = query.get("maxResults").and_then(|m| m.parse::<usize>().ok()).unwrap_or(250);
    let page_size = state.page_size.min(max_results);
    let mut matching: Vec<(DateTime<Utc>, Value)> = state
        .calendars
        .get(cal)
        .into_iter()
        .flat_map(|c| c.values())
        .filter_map(|e| Some((instant(&e["start"])?, instant(&e["end"])?, e)))
        .filter(|(start, end, _)| time_min.is_none_or(|min| *end > min) && time_max.is_none_or(|max| *start < max))
        .map(|(start, _, e)| (start, e.clone()))
        .collect();
    matching.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1["id"].as_str().cmp(&b.1["id"].as_str())));
    let items: Vec<Value> = matching.iter().skip(offset).take(page_size).map(|(_, e)| e.clone()).collect();
    let mut page = json!({ "kind": "calendar#events", "items": items });
    if offset + page_size < matching.len() {
        page["nextPageToken"] = json!((offset + page_size).to_string());
    }
    json_response(200, &page)
}

/// `start`/`end` of an event: `dateTime`, or an all-day `date`.
fn instant(time: &Value) -> Option<DateTime<Utc>> {
    if let Some(dt) = time["dateTime"].as_str() {
        return DateTime::parse_from_rfc3339(dt).ok().map(|t| t.with_timezone(&Utc));
    }
    let date = chrono::NaiveDate::parse_from_str(time["date"].as_str()?, "%Y-%m-%d").ok()?;
    Some(date.and_hms_opt(0, 0, 0)?.and_utc())
}

/// Google's error body shape.
fn api_error(status: u16, reason: &str, message: &str) -> super::Response {
    json_response(
        status,
        &json!({ "error": { "code": status, "message": message, "errors": [{ "domain": "global", "reason": reason, "message": message }] } }),
    )
}
