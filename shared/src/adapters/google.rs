//! Google Calendar adapter: the Calendar REST API v3, authorised with an
//! OAuth 2.0 refresh token (the "installed app"/web-server flow: a client id,
//! its secret and a refresh token the calendar's owner granted once).
//!
//! Service-account credentials (a signed JWT exchanged for a token) are not
//! supported: they need an RSA signer this crate does not carry, and a
//! service account only sees calendars explicitly shared with it. A refresh
//! token for the calendar's owner covers both personal and Workspace
//! calendars.
//!
//! Whose calendar: the OAuth client (id and secret) is the deployment's; the
//! refresh token is the calendar owner's. A resource names the secret
//! holding its host's refresh token (`credentials`, read through
//! [`CalendarSecrets`]); a resource that names none uses the deployment's
//! own refresh token, if one is configured. Access tokens are cached per
//! refresh token. The API base and token URLs are configuration, never a
//! resource's, and must pass the [`OutboundPolicy`] like every connection.
//!
//! A booking's event id is the base32hex encoding of its reservation id (see
//! [`event_id`]), so deleting needs nothing but the reservation id. Events
//! carry the reservation id as the private extended property
//! `slotguardBooking`, the Google form of [`MARKER`](crate::ports::MARKER).
//!
//! A write is an upsert. It starts with `events.insert` under that id: one
//! round trip for a new booking ([`WriteOutcome::Created`]). A `409` says the
//! id is taken; the adapter then reads the event (`events.get`) and
//! - leaves it alone if it already says what the booking says (a redelivered
//!   job: [`WriteOutcome::Unchanged`]);
//! - otherwise `events.update`s it, with the event it read as the base (so
//!   what the host added, like reminders, a colour or a video link, stays)
//!   and slotguard's fields (summary, description, start, end, attendee,
//!   marker, sequence) put over it, guarded by `If-Match` with the ETag it
//!   read ([`WriteOutcome::Updated`]; a rescheduled booking's event moves).
//!
//! Google keeps a deleted event as `status: cancelled` and refuses to insert
//! its id again (`409`). slotguard only writes events for confirmed
//! bookings, so the upsert of a cancelled event restores it: the update sets
//! `status: confirmed` with the booking's times, and the write reports
//! [`WriteOutcome::Created`] (the event was not on the calendar before).
//!
//! Google's `sequence` may never go down (`400 Invalid sequence value`), and
//! Google raises it itself when an update moves an event or a delete cancels
//! it. An update therefore sends the larger of the booking's version and the
//! sequence it read. If the event changes between the read and the update
//! (`412`, or that `400` from a server ignoring `If-Match`), the adapter
//! starts over, a few times, then reports a transient `conflict`.

#[path = "google_busy.rs"]
mod busy;

use super::calendar_secrets::CalendarSecrets;
use super::http;
/// Why an adapter could not be built (shared by both adapters).
pub use super::http::SetupError;
use super::outbound::OutboundPolicy;
use crate::domain::{CalendarTarget, CredentialsRef, ReservationId, rfc3339};
use crate::ports::{BookingEvent, Calendar, CalendarError, DeleteOutcome, FoundEvent, WriteOutcome};
use chrono::{DateTime, NaiveDate, Utc};
use reqwest::header::IF_MATCH;
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// The Calendar API's base URL.
pub const DEFAULT_API_BASE: &str = "https://www.googleapis.com/calendar/v3";
/// Google's OAuth 2.0 token endpoint.
pub const DEFAULT_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";
/// The private extended property holding the reservation id.
pub const BOOKING_PROPERTY: &str = "slotguardBooking";

/// Listing pages are at most 2500 events; this many pages is a runaway.
const MAX_PAGES: usize = 200;

/// How many times a write starts over when the event changes under it.
const WRITE_ATTEMPTS: usize = 3;

/// The fields a write sets on an existing event; the host's others stay.
const OWN_FIELDS: [&str; 5] = ["summary", "description", "start", "end", "attendees"];

/// The deployment's OAuth client, and optionally a refresh token it was
/// granted, used for resources that name no credentials of their own.
#[derive(Clone)]
pub struct GoogleCredentials {
    client_id: String,
    client_secret: String,
    refresh_token: Option<String>,
}

impl GoogleCredentials {
    /// A client and the refresh token of the deployment's own calendar.
    pub fn new(
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
        refresh_token: impl Into<String>,
    ) -> Self {
        Self {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            refresh_token: Some(refresh_token.into()),
        }
    }

    /// A client only: every Google resource names its host's refresh token.
    pub fn client_only(client_id: impl Into<String>, client_secret: impl Into<String>) -> Self {
        Self { client_id: client_id.into(), client_secret: client_secret.into(), refresh_token: None }
    }
}

impl fmt::Debug for GoogleCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GoogleCredentials")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("refresh_token", &"<redacted>")
            .finish()
    }
}

/// How to reach Google (or a stand-in for it).
#[derive(Debug, Clone)]
pub struct GoogleConfig {
    pub credentials: GoogleCredentials,
    /// Calendar API base URL, default [`DEFAULT_API_BASE`].
    pub api_base: String,
    /// OAuth token endpoint, default [`DEFAULT_TOKEN_URL`].
    pub token_url: String,
    /// Connect timeout and whole-request timeout.
    pub timeout: Duration,
    /// Where requests may go; strict unless configured otherwise.
    pub outbound: OutboundPolicy,
    /// Where the refresh tokens resources name are read from.
    pub secrets: CalendarSecrets,
}

impl GoogleConfig {
    /// Google's real endpoints, the default timeout, the strict outbound
    /// policy and no secrets.
    pub fn new(credentials: GoogleCredentials) -> Self {
        Self {
            credentials,
            api_base: DEFAULT_API_BASE.to_owned(),
            token_url: DEFAULT_TOKEN_URL.to_owned(),
            timeout: http::DEFAULT_TIMEOUT,
            outbound: OutboundPolicy::strict(),
            secrets: CalendarSecrets::default(),
        }
    }

    pub fn with_outbound(mut self, outbound: OutboundPolicy) -> Self {
        self.outbound = outbound;
        self
    }

    pub fn with_secrets(mut self, secrets: CalendarSecrets) -> Self {
        self.secrets = secrets;
        self
    }

    pub fn with_api_base(mut self, api_base: impl Into<String>) -> Self {
        self.api_base = api_base.into();
        self
    }

    pub fn with_token_url(mut self, token_url: impl Into<String>) -> Self {
        self.token_url = token_url.into();
        self
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// The Google [`Calendar`]: serves [`CalendarTarget::Google`] targets.
///
/// Clones share the HTTP client and the access-token cache.
#[derive(Clone)]
pub struct GoogleCalendar {
    http: reqwest::Client,
    api_base: String,
    token_url: Url,
    credentials: GoogleCredentials,
    secrets: CalendarSecrets,
    /// Access tokens by the refresh token they came from. One lock around
    /// fetching and reading: concurrent calls with an expired token wait for
    /// one refresh instead of each making their own.
    tokens: Arc<Mutex<HashMap<String, AccessToken>>>,
}

/// Whose calendar a call acts on: the refresh token to use, and the secret
/// it came from (forgotten when Google refuses the token).
struct Account {
    refresh_token: String,
    from: Option<CredentialsRef>,
}

impl fmt::Debug for GoogleCalendar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GoogleCalendar")
            .field("api_base", &self.api_base)
            .field("token_url", &self.token_url.as_str())
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

/// A cached access token and when to stop using it.
struct AccessToken {
    value: String,
    refresh_at: Instant,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

impl GoogleCalendar {
    /// Builds the client once. The endpoints must be http(s) URLs the
    /// outbound policy allows.
    pub fn new(config: GoogleConfig) -> Result<Self, SetupError> {
        let api_base = config.api_base.trim().trim_end_matches('/').to_owned();
        let checked = |raw: &str, what: &'static str| {
            let url = http_url(raw, what)?;
            config.outbound.check_url(&url).map_err(|e| SetupError::Refused { what, reason: e.to_string() })?;
            Ok::<Url, SetupError>(url)
        };
        checked(&api_base, "api_base")?;
        Ok(Self {
            http: http::client(config.timeout, &config.outbound)?,
            token_url: checked(config.token_url.trim(), "token_url")?,
            api_base,
            credentials: config.credentials,
            secrets: config.secrets,
            tokens: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    /// The account a target's calls act on: the refresh token in the secret
    /// it names, or the deployment's own.
    async fn account(&self, target: &CalendarTarget) -> Result<Account, CalendarError> {
        match target.credentials() {
            Some(text) => {
                let reference = CredentialsRef::parse(text)
                    .map_err(|e| CalendarError::Permanent { kind: "credentials_refused", message: e.to_string() })?;
                let refresh_token = self.secrets.refresh_token(&reference).await?;
                Ok(Account { refresh_token, from: Some(reference) })
            }
            None => match &self.credentials.refresh_token {
                Some(token) => Ok(Account { refresh_token: token.clone(), from: None }),
                None => Err(CalendarError::Permanent {
                    kind: "google_not_configured",
                    message: "the resource names no credentials and the deployment has no Google refresh token".into(),
                }),
            },
        }
    }

    /// A valid access token for `account`: the cached one, or a fresh one
    /// from the token endpoint.
    async fn access_token(&self, account: &Account) -> Result<String, CalendarError> {
        let mut cached = self.tokens.lock().await;
        if let Some(token) = cached.get(&account.refresh_token).filter(|t| Instant::now() < t.refresh_at) {
            return Ok(token.value.clone());
        }
        let fresh = match self.fetch_token(&account.refresh_token).await {
            Ok(fresh) => fresh,
            Err(e) => {
                if let (CalendarError::Permanent { kind: "auth", .. }, Some(from)) = (&e, &account.from) {
                    // A revoked token: the next try reads the secret again,
                    // in case the host granted a new one.
                    self.secrets.forget(from).await;
                }
                return Err(e);
            }
        };
        let value = fresh.value.clone();
        cached.insert(account.refresh_token.clone(), fresh);
        Ok(value)
    }

    /// Drops `rejected` from the cache (unless another call already replaced it).
    async fn forget_token(&self, account: &Account, rejected: &str) {
        let mut cached = self.tokens.lock().await;
        if cached.get(&account.refresh_token).is_some_and(|t| t.value == rejected) {
            cached.remove(&account.refresh_token);
        }
    }

    async fn fetch_token(&self, refresh_token: &str) -> Result<AccessToken, CalendarError> {
        let form = [
            ("grant_type", "refresh_token"),
            ("client_id", self.credentials.client_id.as_str()),
            ("client_secret", self.credentials.client_secret.as_str()),
            ("refresh_token", refresh_token),
        ];
        let request = self.http.post(self.token_url.clone()).form(&form);
        let response = request.send().await.map_err(|e| http::transport_error("google token", e))?;
        let status = response.status();
        if !status.is_success() {
            let body = http::body_text(response).await;
            let err = http::status_error("google token", status, &body);
            // 400 invalid_grant (revoked or expired refresh token), 401
            // invalid_client: no retry will fix the credentials.
            return Err(match err {
                CalendarError::Permanent { message, .. } => CalendarError::Permanent { kind: "auth", message },
                transient => transient,
            });
        }
        let parsed: TokenResponse = response.json().await.map_err(|e| invalid_response("google token", e))?;
        if parsed.access_token.is_empty() {
            return Err(CalendarError::Permanent {
                kind: "auth",
                message: "google token: the token endpoint returned an empty access token".into(),
            });
        }
        let lifetime = Duration::from_secs(parsed.expires_in.unwrap_or(3600));
        // Stop using a token a minute before it expires (half its life if it
        // is short), so a request never leaves with a token about to die.
        let margin = (lifetime / 2).min(Duration::from_secs(60));
        tracing::debug!(expires_in = lifetime.as_secs(), "google: fetched an access token");
        Ok(AccessToken { value: parsed.access_token, refresh_at: Instant::now() + lifetime - margin })
    }

    /// Sends an authorised request. A 401 means the cached token died early
    /// (revoked, or the clock lied): fetch a new one and try once more.
    async fn send(
        &self,
        op: &str,
        account: &Account,
        build: impl Fn() -> RequestBuilder,
    ) -> Result<Response, CalendarError> {
        let token = self.access_token(account).await?;
        let response = build().bearer_auth(&token).send().await.map_err(|e| http::transport_error(op, e))?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        self.forget_token(account, &token).await;
        let token = self.access_token(account).await?;
        build().bearer_auth(&token).send().await.map_err(|e| http::transport_error(op, e))
    }

    fn events_url(&self, calendar_id: &str) -> String {
        format!("{}/calendars/{}/events", self.api_base, http::encode_path_segment(calendar_id))
    }

    fn event_url(&self, calendar_id: &str, event_id: &str) -> String {
        format!("{}/{}", self.events_url(calendar_id), http::encode_path_segment(event_id))
    }

    /// Creates the booking's event, or brings the one under its id to what
    /// the booking says (see the module documentation).
    async fn upsert(
        &self,
        account: &Account,
        calendar_id: &str,
        event: &BookingEvent,
    ) -> Result<WriteOutcome, CalendarError> {
        let id = event_id(&event.reservation_id);
        let body = event_json(&id, event);
        for _ in 0..WRITE_ATTEMPTS {
            if let Some(outcome) = self.try_upsert(account, calendar_id, &id, &body).await? {
                return Ok(outcome);
            }
        }
        Err(CalendarError::Transient {
            kind: "conflict",
            message: format!("google update: event {id} changed under every one of {WRITE_ATTEMPTS} attempts"),
        })
    }

    /// One attempt: `None` when the event changed between two calls (gone
    /// after the `409`, or edited between the read and the update).
    async fn try_upsert(
        &self,
        account: &Account,
        calendar_id: &str,
        id: &str,
        body: &Value,
    ) -> Result<Option<WriteOutcome>, CalendarError> {
        let events_url = self.events_url(calendar_id);
        let response = self
            .send("google insert", account, || {
                self.http.request(Method::POST, &events_url).query(&[("sendUpdates", "none")]).json(body)
            })
            .await?;
        match response.status() {
            s if s.is_success() => return Ok(Some(WriteOutcome::Created { event_ref: id.to_owned() })),
            StatusCode::CONFLICT => {}
            s => return Err(google_error("google insert", s, &http::body_text(response).await)),
        }
        let Some(existing) = self.get(account, calendar_id, id).await? else { return Ok(None) };
        let cancelled = existing.get("status").and_then(Value::as_str) == Some("cancelled");
        if !cancelled && says_the_same(&existing, body) {
            return Ok(Some(WriteOutcome::Unchanged { event_ref: id.to_owned() }));
        }
        let replacement = replacement(&existing, body);
        let etag = existing.get("etag").and_then(Value::as_str);
        let url = self.event_url(calendar_id, id);
        let response = self
            .send("google update", account, || {
                let request = self.http.put(&url).query(&[("sendUpdates", "none")]).json(&replacement);
                match etag {
                    Some(etag) => request.header(IF_MATCH, etag),
                    None => request,
                }
            })
            .await?;
        let status = response.status();
        if status.is_success() {
            let event_ref = id.to_owned();
            return Ok(Some(if cancelled {
                WriteOutcome::Created { event_ref }
            } else {
                WriteOutcome::Updated { event_ref }
            }));
        }
        let text = http::body_text(response).await;
        if status == StatusCode::PRECONDITION_FAILED
            || (status == StatusCode::BAD_REQUEST && is_sequence_conflict(&text))
        {
            tracing::debug!(event_id = id, %status, "google: the event changed between read and update; starting over");
            return Ok(None);
        }
        Err(google_error("google update", status, &text))
    }

    /// The event `id` as Google holds it, cancelled or not; `None` if there
    /// is none.
    async fn get(&self, account: &Account, calendar_id: &str, id: &str) -> Result<Option<Value>, CalendarError> {
        let url = self.event_url(calendar_id, id);
        let response = self.send("google get", account, || self.http.get(&url)).await?;
        match response.status() {
            s if s.is_success() => {}
            StatusCode::NOT_FOUND | StatusCode::GONE => return Ok(None),
            s => return Err(google_error("google get", s, &http::body_text(response).await)),
        }
        let event: Value = response.json().await.map_err(|e| invalid_response("google get", e))?;
        if !event.is_object() {
            return Err(CalendarError::Permanent {
                kind: "invalid_response",
                message: format!("google get: the event is not a JSON object: {}", http::snippet(&event.to_string())),
            });
        }
        Ok(Some(event))
    }

    async fn delete(
        &self,
        account: &Account,
        calendar_id: &str,
        reservation_id: &ReservationId,
    ) -> Result<DeleteOutcome, CalendarError> {
        let url = self.event_url(calendar_id, &event_id(reservation_id));
        let response =
            self.send("google delete", account, || self.http.delete(&url).query(&[("sendUpdates", "none")])).await?;
        match response.status() {
            s if s.is_success() => Ok(DeleteOutcome::Deleted),
            StatusCode::NOT_FOUND | StatusCode::GONE => Ok(DeleteOutcome::AlreadyGone),
            s => Err(google_error("google delete", s, &http::body_text(response).await)),
        }
    }

    async fn list(
        &self,
        account: &Account,
        calendar_id: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<FoundEvent>, CalendarError> {
        let items: Vec<ApiEvent> = self.events_between("google list", account, calendar_id, from, to, None).await?;
        Ok(items.into_iter().filter_map(found_event).filter(|e| from <= e.start && e.start < to).collect())
    }

    /// Every instance (`singleEvents`) of the calendar's events overlapping
    /// `[from, to)`, page by page (at most [`MAX_PAGES`]), each read as `T`;
    /// `fields` is a partial-response field list.
    async fn events_between<T: serde::de::DeserializeOwned>(
        &self,
        op: &'static str,
        account: &Account,
        calendar_id: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        fields: Option<&str>,
    ) -> Result<Vec<T>, CalendarError> {
        let url = self.events_url(calendar_id);
        let (time_min, time_max) = (rfc3339(from), rfc3339(to));
        let mut found = Vec::new();
        let mut page_token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let response = self
                .send(op, account, || {
                    let mut query = vec![
                        ("timeMin", time_min.as_str()),
                        ("timeMax", time_max.as_str()),
                        ("singleEvents", "true"),
                        ("maxResults", "2500"),
                    ];
                    if let Some(fields) = fields {
                        query.push(("fields", fields));
                    }
                    if let Some(token) = page_token.as_deref() {
                        query.push(("pageToken", token));
                    }
                    self.http.get(&url).query(&query)
                })
                .await?;
            let status = response.status();
            if !status.is_success() {
                return Err(google_error(op, status, &http::body_text(response).await));
            }
            let page: EventsPage<T> = response.json().await.map_err(|e| invalid_response(op, e))?;
            found.extend(page.items);
            match page.next_page_token.filter(|t| !t.is_empty()) {
                Some(next) => page_token = Some(next),
                None => return Ok(found),
            }
        }
        Err(CalendarError::Permanent {
            kind: "invalid_response",
            message: format!("{op}: more than {MAX_PAGES} pages of events"),
        })
    }
}

impl Calendar for GoogleCalendar {
    async fn put_event(&self, target: &CalendarTarget, event: &BookingEvent) -> Result<WriteOutcome, CalendarError> {
        let calendar_id = calendar_id(target)?;
        let outcome = match self.account(target).await {
            Ok(account) => self.upsert(&account, calendar_id, event).await,
            Err(e) => Err(e),
        };
        http::log_outcome("google", "put", &event.reservation_id, &outcome);
        outcome
    }

    async fn delete_event(
        &self,
        target: &CalendarTarget,
        reservation_id: &ReservationId,
    ) -> Result<DeleteOutcome, CalendarError> {
        let calendar_id = calendar_id(target)?;
        let outcome = match self.account(target).await {
            Ok(account) => self.delete(&account, calendar_id, reservation_id).await,
            Err(e) => Err(e),
        };
        http::log_outcome("google", "delete", reservation_id, &outcome);
        outcome
    }

    async fn list_events(
        &self,
        target: &CalendarTarget,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<FoundEvent>, CalendarError> {
        let calendar_id = calendar_id(target)?;
        self.list(&self.account(target).await?, calendar_id, from, to).await
    }
}

fn calendar_id(target: &CalendarTarget) -> Result<&str, CalendarError> {
    match target {
        CalendarTarget::Google { calendar_id, .. } if !calendar_id.trim().is_empty() => Ok(calendar_id.trim()),
        CalendarTarget::Google { .. } => {
            Err(CalendarError::Permanent { kind: "invalid_calendar_id", message: "empty Google calendar id".into() })
        }
        _ => Err(CalendarError::Permanent {
            kind: "wrong_target",
            message: "the Google adapter only writes to Google calendars".into(),
        }),
    }
}

fn http_url(raw: &str, what: &'static str) -> Result<Url, SetupError> {
    Url::parse(raw)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && !u.cannot_be_a_base())
        .ok_or_else(|| SetupError::InvalidUrl { what, url: raw.to_owned() })
}

fn invalid_response(op: &str, err: reqwest::Error) -> CalendarError {
    // A body cut off mid-way is the network; one that is whole but not what
    // the API documents will not change on retry.
    if err.is_decode() && !err.is_body() {
        CalendarError::Permanent { kind: "invalid_response", message: format!("{op}: unexpected answer: {err}") }
    } else {
        http::transport_error(op, err)
    }
}

/// A `400` refusing a `sequence` below the event's current one.
fn is_sequence_conflict(body: &str) -> bool {
    let Ok(parsed) = serde_json::from_str::<Value>(body) else { return false };
    let message = parsed.pointer("/error/message").and_then(Value::as_str).unwrap_or_default();
    message.to_ascii_lowercase().contains("sequence")
}

/// Google answers rate limiting with 403 as often as with 429 (reasons
/// `rateLimitExceeded`, `userRateLimitExceeded`); those are transient.
fn google_error(op: &str, status: StatusCode, body: &str) -> CalendarError {
    if status == StatusCode::FORBIDDEN && is_rate_limit(body) {
        return CalendarError::Transient { kind: "rate_limited", message: format!("{op}: {}", http::snippet(body)) };
    }
    http::status_error(op, status, body)
}

fn is_rate_limit(body: &str) -> bool {
    let Ok(parsed) = serde_json::from_str::<Value>(body) else { return false };
    let reasons = parsed.pointer("/error/errors").and_then(Value::as_array).into_iter().flatten();
    reasons
        .filter_map(|e| e.get("reason").and_then(Value::as_str))
        .any(|r| matches!(r, "rateLimitExceeded" | "userRateLimitExceeded"))
}

/// The Google event id of a booking: its reservation id's bytes in base32hex
/// (RFC 4648 §7), lower case, unpadded. Google wants ids of 5 to 1024
/// characters from `a-v` and `0-9`; a reservation id of 50 to 120 bytes gives
/// 80 to 192.
pub fn event_id(reservation_id: &ReservationId) -> String {
    base32hex(reservation_id.as_str().as_bytes())
}

/// Lower-case, unpadded base32hex.
pub fn base32hex(bytes: &[u8]) -> String {
    let mut out = data_encoding::BASE32HEX_NOPAD.encode(bytes);
    out.make_ascii_lowercase();
    out
}

/// The insert body: times in UTC, the customer as attendee, the booking's
/// version as sequence, the reservation id as a private extended property.
fn event_json(id: &str, event: &BookingEvent) -> Value {
    json!({
        "id": id,
        "summary": event.summary,
        "description": event.description,
        "start": { "dateTime": rfc3339(event.start) },
        "end": { "dateTime": rfc3339(event.end) },
        "attendees": [{ "email": event.customer.email.as_str(), "displayName": event.customer.name }],
        "sequence": event.sequence,
        "extendedProperties": { "private": { BOOKING_PROPERTY: event.reservation_id.as_str() } },
    })
}

/// Whether the event Google holds already says what the insert body `ours`
/// says: same summary, description, instants, single attendee and marker,
/// and a sequence no lower. Fields only the host set do not count.
fn says_the_same(existing: &Value, ours: &Value) -> bool {
    let instant =
        |v: &Value| v.get("dateTime").and_then(Value::as_str).and_then(|t| DateTime::parse_from_rfc3339(t).ok());
    let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).unwrap_or_default().to_owned();
    let attendee = |v: &Value| match v.get("attendees").and_then(Value::as_array).map(Vec::as_slice) {
        Some([one]) => Some((text(one, "email").to_ascii_lowercase(), text(one, "displayName"))),
        _ => None,
    };
    let marker = |v: &Value| v.pointer(&format!("/extendedProperties/private/{BOOKING_PROPERTY}")).cloned();
    let sequence = |v: &Value| v.get("sequence").and_then(Value::as_u64).unwrap_or(0);
    ["summary", "description"].iter().all(|k| text(existing, k) == text(ours, k))
        && ["start", "end"].iter().all(|k| {
            let (theirs, mine) = (existing.get(*k).and_then(instant), ours.get(*k).and_then(instant));
            theirs.is_some() && theirs == mine
        })
        && attendee(existing).is_some()
        && attendee(existing) == attendee(ours)
        && marker(existing).is_some()
        && marker(existing) == marker(ours)
        && sequence(existing) >= sequence(ours)
}

/// The update body: the event as read, with slotguard's fields from the
/// insert body `ours` over it, `status: confirmed` (restoring a cancelled
/// event), and a sequence that never goes below the one read.
fn replacement(existing: &Value, ours: &Value) -> Value {
    let mut merged = existing.clone();
    for key in OWN_FIELDS {
        merged[key] = ours[key].clone();
    }
    let read = existing.get("sequence").and_then(Value::as_u64).unwrap_or(0);
    let mine = ours.get("sequence").and_then(Value::as_u64).unwrap_or(0);
    merged["sequence"] = json!(read.max(mine));
    merged["status"] = json!("confirmed");
    // Other private properties (another tool's) stay beside the marker.
    let marker = ours.pointer(&format!("/extendedProperties/private/{BOOKING_PROPERTY}")).cloned().unwrap_or_default();
    match merged.pointer_mut("/extendedProperties/private").and_then(Value::as_object_mut) {
        Some(private) => {
            private.insert(BOOKING_PROPERTY.to_owned(), marker);
        }
        None => match merged.get_mut("extendedProperties").and_then(Value::as_object_mut) {
            Some(properties) => {
                properties.insert("private".to_owned(), json!({ BOOKING_PROPERTY: marker }));
            }
            None => merged["extendedProperties"] = ours["extendedProperties"].clone(),
        },
    }
    merged
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EventsPage<T> {
    #[serde(default = "Vec::new")]
    items: Vec<T>,
    next_page_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApiEvent {
    #[serde(default)]
    id: String,
    status: Option<String>,
    start: Option<ApiTime>,
    end: Option<ApiTime>,
    extended_properties: Option<ExtendedProperties>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApiTime {
    date_time: Option<String>,
    date: Option<String>,
}

#[derive(Deserialize)]
struct ExtendedProperties {
    #[serde(default)]
    private: std::collections::HashMap<String, String>,
}

/// The slotguard event an API item is, if it is one and still stands.
fn found_event(item: ApiEvent) -> Option<FoundEvent> {
    if item.status.as_deref() == Some("cancelled") {
        return None;
    }
    let marker = item.extended_properties?.private.remove(BOOKING_PROPERTY)?;
    let reservation_id = ReservationId::parse(marker.trim())?;
    let start = item.start.as_ref().and_then(start_instant);
    let Some(start) = start else {
        tracing::warn!(%reservation_id, "google: a slotguard event without a readable start is skipped");
        return None;
    };
    let end = item.end.as_ref().and_then(start_instant);
    Some(FoundEvent { reservation_id, event_ref: item.id, start, end })
}

fn start_instant(time: &ApiTime) -> Option<DateTime<Utc>> {
    if let Some(dt) = &time.date_time {
        return DateTime::parse_from_rfc3339(dt).ok().map(|t| t.with_timezone(&Utc));
    }
    let date = NaiveDate::parse_from_str(time.date.as_deref()?, "%Y-%m-%d").ok()?;
    date.and_hms_opt(0, 0, 0).map(|t| t.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Customer;

    fn rid() -> ReservationId {
        ReservationId::parse("rsv_demo_20261123T080000_2579e728486449b88d897c1ecf3b632c").unwrap()
    }

    #[test]
    fn base32hex_matches_rfc_4648_vectors() {
        // RFC 4648 §10, BASE32-HEX, lower-cased and without padding.
        for (input, expected) in [
            ("", ""),
            ("f", "co"),
            ("fo", "cpng"),
            ("foo", "cpnmu"),
            ("foob", "cpnmuog"),
            ("fooba", "cpnmuoj1"),
            ("foobar", "cpnmuoj1e8"),
        ] {
            assert_eq!(base32hex(input.as_bytes()), expected, "{input:?}");
        }
    }

    #[test]
    fn event_ids_follow_googles_rules_and_differ_per_booking() {
        let id = event_id(&rid());
        assert!((5..=1024).contains(&id.len()), "{}", id.len());
        assert!(id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'v').contains(&b)), "{id}");
        let other = ReservationId::parse("rsv_demo_20261123T080000_2579e728486449b88d897c1ecf3b632d").unwrap();
        assert_ne!(event_id(&other), id);
    }

    #[test]
    fn inserts_carry_utc_times_attendee_and_marker() {
        let event = BookingEvent {
            reservation_id: rid(),
            summary: "Demo: Ada".into(),
            start: DateTime::parse_from_rfc3339("2026-11-23T09:00:00+01:00").unwrap().with_timezone(&Utc),
            end: DateTime::parse_from_rfc3339("2026-11-23T08:30:00Z").unwrap().with_timezone(&Utc),
            customer: Customer::parse("Ada", "ada@example.com").unwrap(),
            description: format!("Reservation {}", rid()),
            sequence: 3,
        };
        let body = event_json("abcde", &event);
        assert_eq!(body["start"]["dateTime"], "2026-11-23T08:00:00Z");
        assert_eq!(body["end"]["dateTime"], "2026-11-23T08:30:00Z");
        assert_eq!(body["attendees"][0]["email"], "ada@example.com");
        assert_eq!(body["attendees"][0]["displayName"], "Ada");
        assert_eq!(body["extendedProperties"]["private"]["slotguardBooking"], rid().as_str());
        assert_eq!(body["id"], "abcde");
        assert_eq!(body["sequence"], 3);
    }

    fn ours() -> Value {
        let event = BookingEvent {
            reservation_id: rid(),
            summary: "Demo: Ada".into(),
            start: DateTime::parse_from_rfc3339("2026-11-23T08:00:00Z").unwrap().with_timezone(&Utc),
            end: DateTime::parse_from_rfc3339("2026-11-23T08:30:00Z").unwrap().with_timezone(&Utc),
            customer: Customer::parse("Ada", "ada@example.com").unwrap(),
            description: "d".into(),
            sequence: 1,
        };
        event_json("abcde", &event)
    }

    #[test]
    fn an_event_says_the_same_whatever_google_or_the_host_added() {
        let mut existing = ours();
        existing["start"] = json!({ "dateTime": "2026-11-23T09:00:00+01:00", "timeZone": "Europe/Berlin" });
        existing["attendees"][0]["email"] = json!("Ada@Example.com");
        existing["attendees"][0]["responseStatus"] = json!("needsAction");
        existing["sequence"] = json!(2);
        existing["colorId"] = json!("5");
        existing["etag"] = json!("\"1\"");
        existing["extendedProperties"]["private"]["other"] = json!("x");
        assert!(says_the_same(&existing, &ours()));
        for change in [
            json!({ "summary": "Other" }),
            json!({ "description": "other" }),
            json!({ "end": { "dateTime": "2026-11-23T08:45:00Z" } }),
            json!({ "start": { "date": "2026-11-23" } }),
            json!({ "attendees": [] }),
            json!({ "attendees": [{ "email": "ada@example.com", "displayName": "Ada L." }] }),
            json!({ "sequence": 0 }),
            json!({ "extendedProperties": {} }),
        ] {
            let mut changed = existing.clone();
            for (k, v) in change.as_object().unwrap() {
                changed[k] = v.clone();
            }
            assert!(!says_the_same(&changed, &ours()), "{change}");
        }
    }

    #[test]
    fn a_replacement_keeps_the_hosts_fields_and_never_lowers_the_sequence() {
        let existing = json!({
            "id": "abcde", "etag": "\"7\"", "status": "cancelled", "sequence": 4, "colorId": "5",
            "summary": "moved by hand", "start": { "dateTime": "2026-11-24T08:00:00Z", "timeZone": "Europe/Berlin" },
            "attendees": [{ "email": "boss@example.com" }],
            "extendedProperties": { "private": { "other": "x" }, "shared": { "s": "y" } },
        });
        let merged = replacement(&existing, &ours());
        assert_eq!(merged["status"], "confirmed");
        assert_eq!(merged["sequence"], 4);
        assert_eq!(merged["colorId"], "5");
        assert_eq!(merged["summary"], "Demo: Ada");
        assert_eq!(merged["start"], json!({ "dateTime": "2026-11-23T08:00:00Z" }));
        assert_eq!(merged["attendees"], ours()["attendees"]);
        assert_eq!(
            merged["extendedProperties"],
            json!({ "private": { "other": "x", "slotguardBooking": rid().as_str() }, "shared": { "s": "y" } })
        );
        assert_eq!(replacement(&json!({ "sequence": 0 }), &ours())["sequence"], 1);
        let odd = json!({ "extendedProperties": "nonsense" });
        assert_eq!(replacement(&odd, &ours())["extendedProperties"], ours()["extendedProperties"]);
        assert!(says_the_same(&replacement(&existing, &ours()), &ours()));
    }

    #[test]
    fn only_a_sequence_400_is_a_sequence_conflict() {
        let body = r#"{"error":{"code":400,"message":"Invalid sequence value. The specified sequence number is below the current sequence number of the resource.","errors":[{"reason":"invalid"}]}}"#;
        assert!(is_sequence_conflict(body));
        assert!(!is_sequence_conflict(r#"{"error":{"code":400,"message":"Missing end time."}}"#));
        assert!(!is_sequence_conflict("sequence"));
    }

    #[test]
    fn listing_keeps_standing_slotguard_events_only() {
        let item = |v: Value| serde_json::from_value::<ApiEvent>(v).unwrap();
        let private = json!({ "slotguardBooking": rid().as_str() });
        let ours = found_event(item(json!({
            "id": "e1", "status": "confirmed",
            "start": { "dateTime": "2026-11-23T09:00:00+01:00" },
            "extendedProperties": { "private": private },
        })))
        .unwrap();
        assert_eq!(ours.event_ref, "e1");
        assert_eq!(ours.start, DateTime::parse_from_rfc3339("2026-11-23T08:00:00Z").unwrap());
        let cancelled = json!({ "id": "e2", "status": "cancelled", "start": { "dateTime": "2026-11-23T08:00:00Z" },
                                "extendedProperties": { "private": private } });
        assert!(found_event(item(cancelled)).is_none());
        let foreign = json!({ "id": "e3", "start": { "dateTime": "2026-11-23T08:00:00Z" } });
        assert!(found_event(item(foreign)).is_none());
        let bad_id = json!({ "id": "e4", "start": { "date": "2026-11-23" },
                             "extendedProperties": { "private": { "slotguardBooking": "nope" } } });
        assert!(found_event(item(bad_id)).is_none());
        let all_day = found_event(item(json!({ "id": "e5", "start": { "date": "2026-11-23" },
                                               "extendedProperties": { "private": private } })))
        .unwrap();
        assert_eq!(all_day.start, DateTime::parse_from_rfc3339("2026-11-23T00:00:00Z").unwrap());
    }

    #[test]
    fn rate_limit_403s_are_transient_other_403s_are_not() {
        let limited = r#"{"error":{"code":403,"errors":[{"domain":"usageLimits","reason":"rateLimitExceeded"}]}}"#;
        let err = google_error("insert", StatusCode::FORBIDDEN, limited);
        assert!(err.is_transient());
        assert_eq!(err.kind(), "rate_limited");
        let denied = r#"{"error":{"code":403,"errors":[{"domain":"global","reason":"forbiddenForNonOrganizer"}]}}"#;
        assert_eq!(google_error("insert", StatusCode::FORBIDDEN, denied).kind(), "http_403");
        assert!(!google_error("insert", StatusCode::FORBIDDEN, "<html>").is_transient());
        assert_eq!(google_error("insert", StatusCode::TOO_MANY_REQUESTS, "").kind(), "http_429");
    }

    #[test]
    fn targets_other_than_google_are_refused() {
        assert_eq!(calendar_id(&CalendarTarget::None).unwrap_err().kind(), "wrong_target");
        let caldav = CalendarTarget::caldav("https://x/");
        assert_eq!(calendar_id(&caldav).unwrap_err().kind(), "wrong_target");
        let blank = CalendarTarget::google(" ");
        assert_eq!(calendar_id(&blank).unwrap_err().kind(), "invalid_calendar_id");
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let config = GoogleConfig::new(GoogleCredentials::new("client-1", "very-secret", "1//refresh-secret"));
        let calendar = GoogleCalendar::new(config.clone()).unwrap();
        for shown in [format!("{config:?}"), format!("{calendar:?}")] {
            assert!(!shown.contains("very-secret") && !shown.contains("refresh-secret"), "{shown}");
            assert!(shown.contains("client-1"), "{shown}");
        }
    }

    #[test]
    fn endpoints_must_be_http_urls_the_outbound_policy_allows() {
        let creds = GoogleCredentials::new("c", "s", "r");
        assert!(GoogleCalendar::new(GoogleConfig::new(creds.clone()).with_api_base("not a url")).is_err());
        assert!(GoogleCalendar::new(GoogleConfig::new(creds.clone()).with_token_url("ftp://x/token")).is_err());
        let local_fake = GoogleConfig::new(creds).with_api_base("http://127.0.0.1:9/calendar/v3");
        let err = GoogleCalendar::new(local_fake.clone()).unwrap_err().to_string();
        assert!(err.contains("api_base") && err.contains("http"), "{err}");
        assert!(GoogleCalendar::new(local_fake.clone().with_outbound(OutboundPolicy::local())).is_ok());
        let metadata = local_fake.with_outbound(OutboundPolicy::local()).with_token_url("http://169.254.169.254/token");
        assert!(GoogleCalendar::new(metadata).is_err());
    }

    #[tokio::test]
    async fn a_resource_uses_its_own_refresh_token_or_the_deployments() {
        let secrets = CalendarSecrets::fixed(
            [("slotguard/calendars/host".to_owned(), r#"{"refresh_token":"1//host-token"}"#.to_owned())].into(),
            "slotguard/calendars/",
        )
        .unwrap();
        let calendar = GoogleCalendar::new(
            GoogleConfig::new(GoogleCredentials::new("c", "s", "1//own")).with_secrets(secrets.clone()),
        )
        .unwrap();
        let own = calendar.account(&CalendarTarget::google("primary")).await.unwrap();
        assert_eq!((own.refresh_token.as_str(), own.from.is_none()), ("1//own", true));
        let host = CalendarTarget::Google {
            calendar_id: "primary".into(),
            credentials: Some("slotguard/calendars/host".into()),
        };
        assert_eq!(calendar.account(&host).await.unwrap().refresh_token, "1//host-token");
        let client_only =
            GoogleCalendar::new(GoogleConfig::new(GoogleCredentials::client_only("c", "s")).with_secrets(secrets))
                .unwrap();
        let err = client_only.account(&CalendarTarget::google("primary")).await.err().unwrap();
        assert_eq!(err.kind(), "google_not_configured");
        assert_eq!(client_only.account(&host).await.unwrap().refresh_token, "1//host-token");
    }
}
