//! CalDAV adapter (RFC 4791): Fastmail, iCloud, Nextcloud, Google's CalDAV
//! endpoint, Xandikos, Radicale, ... anything that speaks the standard.
//!
//! A booking's event lives at `{collection}{reservation id}.ics` with UID
//! `{reservation id}@slotguard`, so:
//! - a write is one `PUT` with `If-None-Match: *` when the event is new: of
//!   any number of concurrent writers exactly one creates it
//!   ([`WriteOutcome::Created`]); the others get `412` and replace it with a
//!   second, unconditional `PUT` to the same href ([`WriteOutcome::Updated`]),
//!   so a rescheduled booking's event moves under the same href and UID
//!   (concurrent replacements may meet a server's lock, `423`: transient);
//! - delete is one `DELETE` of that href;
//! - list is one `calendar-query` `REPORT` over a time range, keeping the
//!   events that carry [`MARKER`](crate::ports::MARKER).
//!
//! Two places where the obvious reading of a status would lose data:
//! - `409` to a `PUT` is what a server answers when the *collection* does not
//!   exist (RFC 4918 §9.7.1), and `403`/`409` (Xandikos: `412`) with
//!   `no-uid-conflict` is what servers answer when the UID already lives
//!   under another name. So `no-uid-conflict` sends the write to the event
//!   found by its UID, replaced where it lives; a bare 409 or 403 counts as
//!   "the event exists" only if it can be fetched at its href (some servers
//!   answer `409` where RFC 7232 says `412`; it is then replaced there), and
//!   is otherwise a permanent error, so a mistyped calendar URL fails loudly
//!   instead of silently dropping bookings.
//! - `404` to a `DELETE` may mean the server filed the event under another
//!   name (some rename resources after their UID). Before answering
//!   [`DeleteOutcome::AlreadyGone`] the adapter looks the UID up once and
//!   deletes what it finds.
//!
//! Credentials and destinations: each resource names its own credentials
//! (a secret, read through [`CalendarSecrets`]), and they are sent only to
//! the origin (scheme, host, port) of its collection URL. Every request goes
//! to that origin: event hrefs are derived from the collection, redirects
//! are followed only within it, and an href a server returns (a `Location`,
//! a `REPORT` answer) that points elsewhere is refused, never requested.
//! The collection URL itself must pass the [`OutboundPolicy`] before every
//! request and on every connection.

pub mod busy;
pub mod ics;
pub(crate) mod xml;

use super::calendar_secrets::CalendarSecrets;
use super::http;
/// The default connect and request timeout.
pub use super::http::DEFAULT_TIMEOUT;
/// Why an adapter could not be built (shared by both adapters).
pub use super::http::SetupError;
use super::outbound::OutboundPolicy;
use crate::domain::{CalendarTarget, CredentialsRef, ReservationId};
use crate::ports::{BookingEvent, Calendar, CalendarError, DeleteOutcome, FoundEvent, WriteOutcome};
use chrono::{DateTime, Utc};
use reqwest::header::{CONTENT_TYPE, IF_NONE_MATCH, LOCATION};
use reqwest::{Method, Response, StatusCode, Url};
use std::fmt;
use std::time::Duration;
use xml::DavResponse;

/// HTTP Basic credentials for the CalDAV server (an app password, usually).
#[derive(Clone)]
pub struct BasicCredentials {
    username: String,
    password: String,
}

impl BasicCredentials {
    /// Credentials as a server takes them; read from a resource's secret.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self { username: username.into(), password: password.into() }
    }

    /// The user name (shown in debug output; the password never is).
    pub fn username(&self) -> &str {
        &self.username
    }
}

impl fmt::Debug for BasicCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BasicCredentials").field("username", &self.username).field("password", &"<redacted>").finish()
    }
}

/// How to reach CalDAV servers.
#[derive(Debug, Clone)]
pub struct CalDavConfig {
    /// Connect timeout and whole-request timeout.
    pub timeout: Duration,
    /// Where requests may go; strict unless configured otherwise.
    pub outbound: OutboundPolicy,
    /// Where the credentials resources name are read from; by default
    /// nowhere (resources without credentials still work).
    pub secrets: CalendarSecrets,
}

impl Default for CalDavConfig {
    fn default() -> Self {
        Self { timeout: DEFAULT_TIMEOUT, outbound: OutboundPolicy::strict(), secrets: CalendarSecrets::default() }
    }
}

impl CalDavConfig {
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn with_outbound(mut self, outbound: OutboundPolicy) -> Self {
        self.outbound = outbound;
        self
    }

    pub fn with_secrets(mut self, secrets: CalendarSecrets) -> Self {
        self.secrets = secrets;
        self
    }
}

/// The CalDAV [`Calendar`]: serves [`CalendarTarget::Caldav`] targets.
#[derive(Debug, Clone)]
pub struct CalDavCalendar {
    http: reqwest::Client,
    outbound: OutboundPolicy,
    secrets: CalendarSecrets,
}

/// One target's collection, and the credentials its resource names, for
/// that collection's origin only.
struct Collection {
    url: Url,
    credentials: Option<(CredentialsRef, BasicCredentials)>,
}

impl CalDavCalendar {
    /// Builds the client once; clone the adapter to share it.
    pub fn new(config: CalDavConfig) -> Result<Self, SetupError> {
        Ok(Self {
            http: http::client(config.timeout, &config.outbound)?,
            outbound: config.outbound,
            secrets: config.secrets,
        })
    }

    /// The URL of a booking's event in the collection at `collection_url`
    /// (with or without its trailing slash). Also the `event_ref` that writes
    /// and lists report.
    pub fn event_url(collection_url: &str, reservation_id: &ReservationId) -> Result<String, CalendarError> {
        Ok(event_url(&parse_collection(collection_url)?, reservation_id).to_string())
    }

    /// The collection of a CalDAV target, checked against the outbound
    /// policy, with the credentials its resource names.
    async fn open(&self, target: &CalendarTarget) -> Result<Collection, CalendarError> {
        let (url, credentials) = match target {
            CalendarTarget::Caldav { url, credentials } => (url, credentials),
            other => {
                return Err(CalendarError::Permanent {
                    kind: "wrong_target",
                    message: format!("the CalDAV adapter cannot write to a {} calendar", other.kind()),
                });
            }
        };
        let url = parse_collection(url)?;
        self.outbound.check_url(&url).map_err(|e| http::refused("caldav", &e))?;
        let credentials = match credentials {
            None => None,
            Some(text) => {
                let reference = CredentialsRef::parse(text)
                    .map_err(|e| CalendarError::Permanent { kind: "credentials_refused", message: e.to_string() })?;
                let basic = self.secrets.basic(&reference).await?;
                Some((reference, basic))
            }
        };
        Ok(Collection { url, credentials })
    }

    /// A request to `url`, which must be on the collection's origin (the
    /// only place its credentials go) and pass the outbound policy.
    fn request(
        &self,
        collection: &Collection,
        method: Method,
        url: Url,
    ) -> Result<reqwest::RequestBuilder, CalendarError> {
        if url.origin() != collection.url.origin() {
            return Err(foreign_href(&url));
        }
        self.outbound.check_url(&url).map_err(|e| http::refused("caldav", &e))?;
        let builder = self.http.request(method, url);
        Ok(match &collection.credentials {
            Some((_, c)) => builder.basic_auth(&c.username, Some(&c.password)),
            None => builder,
        })
    }

    /// Sends a request. A `401` makes the next request read the resource's
    /// secret again, so a rotated password is picked up by the retry.
    async fn send(
        &self,
        op: &str,
        collection: &Collection,
        request: reqwest::RequestBuilder,
    ) -> Result<Response, CalendarError> {
        let response = request.send().await.map_err(|e| http::transport_error(op, e))?;
        if response.status() == StatusCode::UNAUTHORIZED
            && let Some((reference, _)) = &collection.credentials
        {
            self.secrets.forget(reference).await;
        }
        Ok(response)
    }

    /// PUT of the booking's calendar object to `url`, with `If-None-Match: *`
    /// when `only_if_new`.
    async fn put(&self, c: &Collection, url: &Url, body: &str, only_if_new: bool) -> Result<Response, CalendarError> {
        let mut request =
            self.request(c, Method::PUT, url.clone())?.header(CONTENT_TYPE, "text/calendar; charset=utf-8");
        if only_if_new {
            request = request.header(IF_NONE_MATCH, "*");
        }
        self.send("caldav put", c, request.body(body.to_owned())).await
    }

    /// Creates the booking's event, or replaces it where it already is.
    async fn upsert(&self, collection: &Collection, event: &BookingEvent) -> Result<WriteOutcome, CalendarError> {
        let url = event_url(&collection.url, &event.reservation_id);
        let body = ics::booking_calendar(event, Utc::now());
        let response = self.put(collection, &url, &body, true).await?;
        let status = response.status();
        if status.is_success() {
            let event_ref = created_location(&url, &response).unwrap_or_else(|| url.to_string());
            return Ok(WriteOutcome::Created { event_ref });
        }
        if !matches!(status, StatusCode::PRECONDITION_FAILED | StatusCode::CONFLICT | StatusCode::FORBIDDEN) {
            return Err(http::status_error("caldav put", status, &http::body_text(response).await));
        }
        let text = http::body_text(response).await;
        // Xandikos says this with a 412, others with a 403 or 409.
        if text.contains("no-uid-conflict") {
            return self.replace_by_uid(collection, &url, event, &body).await;
        }
        if status == StatusCode::PRECONDITION_FAILED || self.exists(collection, &url).await? {
            return self.replace(collection, &url, &body).await;
        }
        Err(http::status_error("caldav put", status, &text))
    }

    /// Replaces the event at `url` with an unconditional PUT.
    ///
    /// Unconditional rather than `If-Match` with an ETag fetched first: the
    /// href is derived from the reservation id, so nothing but slotguard's
    /// writes of this very booking lives there, and each write carries the
    /// whole event as the booking stood when its writer read it. An `If-Match`
    /// would cost a `GET` (a third round trip) and would only turn a race
    /// between two such writers into a retry that then overwrites just the
    /// same; it cannot tell an older booking version from a newer one (the
    /// writer re-reads the booking for that). Edits the host made by hand are
    /// overwritten on purpose: the event must say what the booking says.
    /// Servers that do not keep unknown properties still get the complete
    /// object, so nothing depends on merging.
    async fn replace(&self, c: &Collection, url: &Url, body: &str) -> Result<WriteOutcome, CalendarError> {
        let response = self.put(c, url, body, false).await?;
        let status = response.status();
        let event_ref = url.to_string();
        match status {
            // Deleted between the two PUTs (a cancel racing the write): it
            // is back now, and the writer's second look takes it off again.
            StatusCode::CREATED => Ok(WriteOutcome::Created { event_ref }),
            s if s.is_success() => Ok(WriteOutcome::Updated { event_ref }),
            s => {
                let text = http::body_text(response).await;
                if text.contains("no-uid-conflict") {
                    // The event moved to another name since the first PUT:
                    // a retry starts over and finds it there.
                    return Err(CalendarError::Transient {
                        kind: "uid_conflict",
                        message: format!("caldav put: the event left {url} while it was being replaced"),
                    });
                }
                Err(http::status_error("caldav put", s, &text))
            }
        }
    }

    /// After `no-uid-conflict`: the server holds the booking's UID under
    /// another name. Replaces it there, and removes any further copies, so
    /// the booking keeps exactly one event.
    async fn replace_by_uid(
        &self,
        collection: &Collection,
        url: &Url,
        event: &BookingEvent,
        body: &str,
    ) -> Result<WriteOutcome, CalendarError> {
        let mut found = self.find_by_uid(collection, &ics::uid(&event.reservation_id)).await?;
        if found.is_empty() {
            // It went between the PUT and the search: a retry creates it.
            return Err(CalendarError::Transient {
                kind: "uid_conflict",
                message: format!("caldav put: the server reported a UID conflict for {url} but holds no such UID"),
            });
        }
        let home = found.remove(found.iter().position(|u| u == url).unwrap_or(0));
        let outcome = self.replace(collection, &home, body).await?;
        for copy in &found {
            self.delete_at(collection, copy).await?;
        }
        Ok(outcome)
    }

    /// Whether a GET of `url` succeeds; only asked to disambiguate a 409/403.
    async fn exists(&self, c: &Collection, url: &Url) -> Result<bool, CalendarError> {
        let response = self.send("caldav get", c, self.request(c, Method::GET, url.clone())?).await?;
        let status = response.status();
        if status.is_success() {
            return Ok(true);
        }
        if status_is_transient(status) {
            return Err(http::status_error("caldav get", status, &http::body_text(response).await));
        }
        Ok(false)
    }

    /// DELETE; `Ok(None)` when the server has nothing at `url`.
    async fn delete_at(&self, c: &Collection, url: &Url) -> Result<Option<DeleteOutcome>, CalendarError> {
        let response = self.send("caldav delete", c, self.request(c, Method::DELETE, url.clone())?).await?;
        let status = response.status();
        if status.is_success() {
            return Ok(Some(DeleteOutcome::Deleted));
        }
        if matches!(status, StatusCode::NOT_FOUND | StatusCode::GONE) {
            return Ok(None);
        }
        Err(http::status_error("caldav delete", status, &http::body_text(response).await))
    }

    async fn delete(
        &self,
        collection: &Collection,
        reservation_id: &ReservationId,
    ) -> Result<DeleteOutcome, CalendarError> {
        let url = event_url(&collection.url, reservation_id);
        if let Some(outcome) = self.delete_at(collection, &url).await? {
            return Ok(outcome);
        }
        let elsewhere = match self.find_by_uid(collection, &ics::uid(reservation_id)).await {
            Ok(found) => found.into_iter().filter(|u| *u != url).collect::<Vec<_>>(),
            // A server pointing elsewhere is not one that cannot search.
            Err(e) if e.is_transient() || e.kind() == "foreign_href" => return Err(e),
            // A server that cannot search by UID has told us all it can: the
            // event is not under its own name.
            Err(e) => {
                tracing::debug!(kind = e.kind(), "caldav: UID lookup after a 404 delete failed");
                Vec::new()
            }
        };
        let mut outcome = DeleteOutcome::AlreadyGone;
        for other in elsewhere {
            if self.delete_at(collection, &other).await?.is_some() {
                outcome = DeleteOutcome::Deleted;
            }
        }
        Ok(outcome)
    }

    /// The URLs of the collection's events with this UID. They are about to
    /// be written to or deleted, so an href on another origin fails the
    /// lookup (`foreign_href`, permanent) instead of being requested.
    async fn find_by_uid(&self, collection: &Collection, uid: &str) -> Result<Vec<Url>, CalendarError> {
        let responses = self.report(collection, &uid_query(uid)).await?;
        responses
            .into_iter()
            .filter(|r| match &r.calendar_data {
                // Servers match text case-insensitively by default; only the
                // exact UID is ours.
                Some(data) => ics::parse_event(data).is_some_and(|e| e.uid.as_deref() == Some(uid)),
                None => false,
            })
            .filter_map(|r| collection.url.join(&r.href).ok())
            .map(|url| if url.origin() == collection.url.origin() { Ok(url) } else { Err(foreign_href(&url)) })
            .collect()
    }

    async fn report(&self, collection: &Collection, body: &str) -> Result<Vec<DavResponse>, CalendarError> {
        let method = Method::from_bytes(b"REPORT").expect("REPORT is a valid method token");
        let request = self
            .request(collection, method, collection.url.clone())?
            .header("Depth", "1")
            .header(CONTENT_TYPE, "application/xml; charset=utf-8")
            .body(body.to_owned());
        let response = self.send("caldav report", collection, request).await?;
        let status = response.status();
        if !matches!(status.as_u16(), 200 | 207) {
            return Err(http::status_error("caldav report", status, &http::body_text(response).await));
        }
        let text = response.text().await.map_err(|e| http::transport_error("caldav report", e))?;
        xml::parse_multistatus(&text).map_err(|e| CalendarError::Permanent {
            kind: "invalid_response",
            message: format!("caldav report: the answer is not a multistatus ({e}): {}", http::snippet(&text)),
        })
    }

    async fn list(
        &self,
        collection: &Collection,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<FoundEvent>, CalendarError> {
        let responses = self.report(collection, &time_range_query(from, to)).await?;
        Ok(responses
            .into_iter()
            .filter_map(|r| found_event(&collection.url, r))
            .filter(|e| from <= e.start && e.start < to)
            .collect())
    }
}

impl Calendar for CalDavCalendar {
    async fn put_event(&self, target: &CalendarTarget, event: &BookingEvent) -> Result<WriteOutcome, CalendarError> {
        let collection = self.open(target).await?;
        let outcome = self.upsert(&collection, event).await;
        http::log_outcome("caldav", "put", &event.reservation_id, &outcome);
        outcome
    }

    async fn delete_event(
        &self,
        target: &CalendarTarget,
        reservation_id: &ReservationId,
    ) -> Result<DeleteOutcome, CalendarError> {
        let collection = self.open(target).await?;
        let outcome = self.delete(&collection, reservation_id).await;
        http::log_outcome("caldav", "delete", reservation_id, &outcome);
        outcome
    }

    async fn list_events(
        &self,
        target: &CalendarTarget,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<FoundEvent>, CalendarError> {
        let collection = self.open(target).await?;
        self.list(&collection, from, to).await
    }
}

fn status_is_transient(status: StatusCode) -> bool {
    http::status_error("", status, "").is_transient()
}

/// An href a server gave that leaves the collection's origin: never
/// requested (the resource's credentials would go with it).
fn foreign_href(url: &Url) -> CalendarError {
    CalendarError::Permanent {
        kind: "foreign_href",
        message: format!(
            "caldav: the server pointed to {}, outside the calendar's origin",
            url.origin().ascii_serialization()
        ),
    }
}

fn parse_collection(raw: &str) -> Result<Url, CalendarError> {
    let invalid = |why: &str| CalendarError::Permanent {
        kind: "invalid_url",
        message: format!("the CalDAV collection URL {why}"),
    };
    let mut url = Url::parse(raw.trim()).map_err(|e| invalid(&format!("does not parse: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
        return Err(invalid("is not an http(s) URL"));
    }
    // Without the slash, joining "x.ics" would replace the collection's last
    // segment instead of going inside it.
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    url.set_query(None);
    url.set_fragment(None);
    Ok(url)
}

fn event_url(collection: &Url, reservation_id: &ReservationId) -> Url {
    // Reservation ids are [a-z0-9_T-]: nothing to escape, no dot segments.
    collection.join(&format!("{reservation_id}.ics")).expect("a reservation id is a valid relative URL")
}

/// A server that renamed the resource says where it put it (RFC 4791 §5.3.4
/// servers may; RFC 7231 `Location` on 201). Only a location on the
/// collection's origin is taken.
fn created_location(requested: &Url, response: &Response) -> Option<String> {
    let location = response.headers().get(LOCATION)?.to_str().ok()?;
    let url = requested.join(location).ok().filter(|u| u.origin() == requested.origin())?;
    Some(url.to_string())
}

/// The slotguard event in one REPORT response, if it is one.
pub(crate) fn found_event(collection: &Url, response: DavResponse) -> Option<FoundEvent> {
    let parsed = ics::parse_event(response.calendar_data.as_deref()?)?;
    let reservation_id = ReservationId::parse(parsed.booking.as_deref()?.trim())?;
    let Some(start) = parsed.start else {
        tracing::warn!(%reservation_id, "caldav: a slotguard event without a readable DTSTART is skipped");
        return None;
    };
    let href = collection.join(&response.href).ok()?;
    if href.origin() != collection.origin() {
        tracing::warn!(%reservation_id, "caldav: an event listed outside the calendar's origin is skipped");
        return None;
    }
    let event_ref = href.to_string();
    Some(FoundEvent { reservation_id, event_ref, start, end: parsed.end })
}

/// A calendar-query (RFC 4791 §7.8) returning the calendar data of the
/// VEVENTs that match `vevent_filter`.
fn calendar_query(vevent_filter: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
  <D:prop><D:getetag/><C:calendar-data/></D:prop>
  <C:filter>
    <C:comp-filter name="VCALENDAR">
      <C:comp-filter name="VEVENT">
        {vevent_filter}
      </C:comp-filter>
    </C:comp-filter>
  </C:filter>
</C:calendar-query>"#
    )
}

/// VEVENTs overlapping `[from, to)` (RFC 4791 §9.9).
fn time_range_query(from: DateTime<Utc>, to: DateTime<Utc>) -> String {
    calendar_query(&format!(r#"<C:time-range start="{}" end="{}"/>"#, ics::utc_datetime(from), ics::utc_datetime(to)))
}

/// VEVENTs whose UID is `uid` (RFC 4791 §7.8.6).
fn uid_query(uid: &str) -> String {
    calendar_query(&format!(
        r#"<C:prop-filter name="UID"><C:text-match collation="i;octet">{}</C:text-match></C:prop-filter>"#,
        xml_escape(uid)
    ))
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Reads a CalDAV `REPORT` answer as the adapter does (the multistatus,
/// then each response's calendar data and href), for the fuzz target. The
/// number of slotguard events found, or `None` if the body is not a multistatus.
#[cfg(feature = "fuzzing")]
pub fn read_report(body: &str) -> Option<usize> {
    let collection = reqwest::Url::parse("https://dav.example.com/calendars/me/work/").expect("a valid URL");
    let responses = xml::parse_multistatus(body).ok()?;
    let mut found = 0;
    for response in responses {
        if let Some(data) = &response.calendar_data {
            let _ = ics::parse_event(data);
        }
        found += usize::from(found_event(&collection, response).is_some());
    }
    Some(found)
}

#[cfg(test)]
mod props;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::MARKER;

    fn rid() -> ReservationId {
        ReservationId::parse("rsv_room-1_20261123T080000_2579e728486449b88d897c1ecf3b632c").unwrap()
    }

    #[test]
    fn hrefs_are_inside_the_collection_with_or_without_its_slash() {
        let expected =
            "https://dav.example.com/cal/me/work/rsv_room-1_20261123T080000_2579e728486449b88d897c1ecf3b632c.ics";
        assert_eq!(CalDavCalendar::event_url("https://dav.example.com/cal/me/work/", &rid()).unwrap(), expected);
        assert_eq!(CalDavCalendar::event_url("https://dav.example.com/cal/me/work", &rid()).unwrap(), expected);
        assert_eq!(
            CalDavCalendar::event_url(" https://dav.example.com/cal/me/work/?x=1#f ", &rid()).unwrap(),
            expected
        );
    }

    #[test]
    fn bad_collection_urls_are_permanent() {
        for url in ["", "not a url", "ftp://x/cal/", "mailto:a@b.c"] {
            let err = CalDavCalendar::event_url(url, &rid()).unwrap_err();
            assert_eq!(err.kind(), "invalid_url", "{url}");
            assert!(!err.is_transient());
        }
    }

    #[tokio::test]
    async fn other_targets_are_the_wrong_target() {
        let calendar = CalDavCalendar::new(CalDavConfig::default()).unwrap();
        for target in [CalendarTarget::None, CalendarTarget::google("primary")] {
            let err = calendar.open(&target).await.err().unwrap();
            assert_eq!(err.kind(), "wrong_target");
            assert!(!err.is_transient());
        }
    }

    #[test]
    fn credentials_never_show_in_debug_output() {
        let credentials = BasicCredentials::new("ada", "s3cret-app-password");
        for shown in [format!("{credentials:?}"), format!("{credentials:#?}")] {
            assert!(!shown.contains("s3cret"), "{shown}");
            assert!(shown.contains("ada"), "{shown}");
        }
    }

    fn secrets() -> CalendarSecrets {
        let value = r#"{"username":"ada","password":"s3cret"}"#.to_owned();
        CalendarSecrets::fixed([("slotguard/calendars/ada".to_owned(), value)].into(), "slotguard/calendars/").unwrap()
    }

    #[tokio::test]
    async fn a_collection_carries_the_credentials_its_resource_names() {
        let calendar = CalDavCalendar::new(CalDavConfig::default().with_secrets(secrets())).unwrap();
        let target = CalendarTarget::Caldav {
            url: "https://dav.example.com/cal/".into(),
            credentials: Some("slotguard/calendars/ada".into()),
        };
        let collection = calendar.open(&target).await.unwrap();
        assert_eq!(collection.credentials.as_ref().map(|(_, c)| c.username()), Some("ada"));
        let anonymous = calendar.open(&CalendarTarget::caldav("https://dav.example.com/cal/")).await.unwrap();
        assert!(anonymous.credentials.is_none());
        let stripe = CalendarTarget::Caldav {
            url: "https://dav.example.com/cal/".into(),
            credentials: Some("slotguard-secrets".into()),
        };
        assert_eq!(calendar.open(&stripe).await.err().unwrap().kind(), "credentials_refused");
    }

    #[tokio::test]
    async fn requests_stay_on_the_collections_origin_and_inside_the_policy() {
        let calendar = CalDavCalendar::new(CalDavConfig::default().with_secrets(secrets())).unwrap();
        let target = CalendarTarget::Caldav {
            url: "https://dav.example.com/cal/".into(),
            credentials: Some("slotguard/calendars/ada".into()),
        };
        let collection = calendar.open(&target).await.unwrap();
        let same = Url::parse("https://dav.example.com/other/x.ics").unwrap();
        let request = calendar.request(&collection, Method::DELETE, same).unwrap().build().unwrap();
        assert!(request.headers().contains_key("authorization"));
        for foreign in [
            "https://evil.example/cal/x.ics",
            "http://dav.example.com/cal/x.ics",
            "https://dav.example.com:8443/cal/x.ics",
            "https://169.254.169.254/latest/",
        ] {
            let err = calendar.request(&collection, Method::DELETE, Url::parse(foreign).unwrap()).err().unwrap();
            assert_eq!(err.kind(), "foreign_href", "{foreign}");
            assert!(!err.is_transient());
        }
        for refused in ["http://dav.example.com/cal/", "https://10.0.0.1/cal/", "https://[::ffff:a9fe:a9fe]/"] {
            let err = calendar.open(&CalendarTarget::caldav(refused)).await.err().unwrap();
            assert_eq!(err.kind(), "outbound_refused", "{refused}");
        }
        let local = CalDavCalendar::new(CalDavConfig::default().with_outbound(OutboundPolicy::local())).unwrap();
        assert!(local.open(&CalendarTarget::caldav("http://127.0.0.1:5232/user/cal/")).await.is_ok());
        let err = local.open(&CalendarTarget::caldav("http://10.0.0.1/cal/")).await.err().unwrap();
        assert_eq!(err.kind(), "outbound_refused");
    }

    #[test]
    fn queries_ask_for_the_window_in_utc() {
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let q = time_range_query(at("2026-11-23T00:00:00+01:00"), at("2026-11-24T00:00:00Z"));
        assert!(q.contains(r#"<C:time-range start="20261122T230000Z" end="20261124T000000Z"/>"#), "{q}");
        assert!(uid_query("a<b>&c").contains(">a&lt;b&gt;&amp;c</C:text-match>"));
    }

    #[test]
    fn found_events_need_the_marker_a_valid_id_and_a_start() {
        let collection = parse_collection("http://h/cal/x/").unwrap();
        let event = |extra: &str| DavResponse {
            href: "/cal/x/e.ics".into(),
            calendar_data: Some(format!(
                "BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:e\nDTSTART:20261123T080000Z\n{extra}END:VEVENT\nEND:VCALENDAR\n"
            )),
        };
        let found = found_event(&collection, event(&format!("{MARKER}:{}\n", rid()))).unwrap();
        assert_eq!(found.reservation_id, rid());
        assert_eq!(found.event_ref, "http://h/cal/x/e.ics");
        assert_eq!(found.start, DateTime::parse_from_rfc3339("2026-11-23T08:00:00Z").unwrap().with_timezone(&Utc));
        assert_eq!(found_event(&collection, event("")), None);
        assert_eq!(found_event(&collection, event(&format!("{MARKER}:rsv_not-an-id\n"))), None);
        let no_start = DavResponse {
            href: "/cal/x/e.ics".into(),
            calendar_data: Some(format!("BEGIN:VEVENT\n{MARKER}:{}\nEND:VEVENT\n", rid())),
        };
        assert_eq!(found_event(&collection, no_start), None);
        let elsewhere =
            DavResponse { href: "https://evil.example/cal/x/e.ics".into(), ..event(&format!("{MARKER}:{}\n", rid())) };
        assert_eq!(found_event(&collection, elsewhere), None, "an href on another origin is skipped");
    }
}
