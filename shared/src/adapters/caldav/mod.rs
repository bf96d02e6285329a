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

pub mod ics;
pub(crate) mod xml;

use super::http;
/// The default connect and request timeout.
pub use super::http::DEFAULT_TIMEOUT;
/// Why an adapter could not be built (shared by both adapters).
pub use super::http::SetupError;
use crate::domain::{CalendarTarget, ReservationId};
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
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self { username: username.into(), password: password.into() }
    }

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
    /// Sent preemptively with every request when set.
    pub credentials: Option<BasicCredentials>,
    /// Connect timeout and whole-request timeout.
    pub timeout: Duration,
}

impl Default for CalDavConfig {
    fn default() -> Self {
        Self { credentials: None, timeout: DEFAULT_TIMEOUT }
    }
}

impl CalDavConfig {
    pub fn with_basic_auth(mut self, username: impl Into<String>, password: impl Into<String>) -> Self {
        self.credentials = Some(BasicCredentials::new(username, password));
        self
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// The CalDAV [`Calendar`]: serves [`CalendarTarget::Caldav`] targets.
#[derive(Debug, Clone)]
pub struct CalDavCalendar {
    http: reqwest::Client,
    credentials: Option<BasicCredentials>,
}

impl CalDavCalendar {
    /// Builds the client once; clone the adapter to share it.
    pub fn new(config: CalDavConfig) -> Result<Self, SetupError> {
        Ok(Self { http: http::client(config.timeout)?, credentials: config.credentials })
    }

    /// The URL of a booking's event in the collection at `collection_url`
    /// (with or without its trailing slash). Also the `event_ref` that writes
    /// and lists report.
    pub fn event_url(collection_url: &str, reservation_id: &ReservationId) -> Result<String, CalendarError> {
        Ok(event_url(&parse_collection(collection_url)?, reservation_id).to_string())
    }

    fn request(&self, method: Method, url: Url) -> reqwest::RequestBuilder {
        let builder = self.http.request(method, url);
        match &self.credentials {
            Some(c) => builder.basic_auth(&c.username, Some(&c.password)),
            None => builder,
        }
    }

    async fn send(&self, op: &str, request: reqwest::RequestBuilder) -> Result<Response, CalendarError> {
        request.send().await.map_err(|e| http::transport_error(op, e))
    }

    /// PUT of the booking's calendar object to `url`, with `If-None-Match: *`
    /// when `only_if_new`.
    async fn put(&self, url: &Url, body: &str, only_if_new: bool) -> Result<Response, CalendarError> {
        let mut request = self.request(Method::PUT, url.clone()).header(CONTENT_TYPE, "text/calendar; charset=utf-8");
        if only_if_new {
            request = request.header(IF_NONE_MATCH, "*");
        }
        self.send("caldav put", request.body(body.to_owned())).await
    }

    /// Creates the booking's event, or replaces it where it already is.
    async fn upsert(&self, collection: &Url, event: &BookingEvent) -> Result<WriteOutcome, CalendarError> {
        let url = event_url(collection, &event.reservation_id);
        let body = ics::booking_calendar(event, Utc::now());
        let response = self.put(&url, &body, true).await?;
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
        if status == StatusCode::PRECONDITION_FAILED || self.exists(&url).await? {
            return self.replace(&url, &body).await;
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
    async fn replace(&self, url: &Url, body: &str) -> Result<WriteOutcome, CalendarError> {
        let response = self.put(url, body, false).await?;
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
        collection: &Url,
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
        let outcome = self.replace(&home, body).await?;
        for copy in &found {
            self.delete_at(copy).await?;
        }
        Ok(outcome)
    }

    /// Whether a GET of `url` succeeds; only asked to disambiguate a 409/403.
    async fn exists(&self, url: &Url) -> Result<bool, CalendarError> {
        let response = self.send("caldav get", self.request(Method::GET, url.clone())).await?;
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
    async fn delete_at(&self, url: &Url) -> Result<Option<DeleteOutcome>, CalendarError> {
        let response = self.send("caldav delete", self.request(Method::DELETE, url.clone())).await?;
        let status = response.status();
        if status.is_success() {
            return Ok(Some(DeleteOutcome::Deleted));
        }
        if matches!(status, StatusCode::NOT_FOUND | StatusCode::GONE) {
            return Ok(None);
        }
        Err(http::status_error("caldav delete", status, &http::body_text(response).await))
    }

    async fn delete(&self, collection: &Url, reservation_id: &ReservationId) -> Result<DeleteOutcome, CalendarError> {
        let url = event_url(collection, reservation_id);
        if let Some(outcome) = self.delete_at(&url).await? {
            return Ok(outcome);
        }
        let elsewhere = match self.find_by_uid(collection, &ics::uid(reservation_id)).await {
            Ok(found) => found.into_iter().filter(|u| *u != url).collect::<Vec<_>>(),
            Err(e) if e.is_transient() => return Err(e),
            // A server that cannot search by UID has told us all it can: the
            // event is not under its own name.
            Err(e) => {
                tracing::debug!(kind = e.kind(), "caldav: UID lookup after a 404 delete failed");
                Vec::new()
            }
        };
        let mut outcome = DeleteOutcome::AlreadyGone;
        for other in elsewhere {
            if self.delete_at(&other).await?.is_some() {
                outcome = DeleteOutcome::Deleted;
            }
        }
        Ok(outcome)
    }

    /// The URLs of the collection's events with this UID.
    async fn find_by_uid(&self, collection: &Url, uid: &str) -> Result<Vec<Url>, CalendarError> {
        let responses = self.report(collection, &uid_query(uid)).await?;
        Ok(responses
            .into_iter()
            .filter(|r| match &r.calendar_data {
                // Servers match text case-insensitively by default; only the
                // exact UID is ours.
                Some(data) => ics::parse_event(data).is_some_and(|e| e.uid.as_deref() == Some(uid)),
                None => false,
            })
            .filter_map(|r| collection.join(&r.href).ok())
            .collect())
    }

    async fn report(&self, collection: &Url, body: &str) -> Result<Vec<DavResponse>, CalendarError> {
        let request = self
            .request(Method::from_bytes(b"REPORT").expect("REPORT is a valid method token"), collection.clone())
            .header("Depth", "1")
            .header(CONTENT_TYPE, "application/xml; charset=utf-8")
            .body(body.to_owned());
        let response = self.send("caldav report", request).await?;
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
        collection: &Url,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<FoundEvent>, CalendarError> {
        let responses = self.report(collection, &time_range_query(from, to)).await?;
        Ok(responses
            .into_iter()
            .filter_map(|r| found_event(collection, r))
            .filter(|e| from <= e.start && e.start < to)
            .collect())
    }
}

impl Calendar for CalDavCalendar {
    async fn put_event(&self, target: &CalendarTarget, event: &BookingEvent) -> Result<WriteOutcome, CalendarError> {
        let collection = collection_url(target)?;
        let outcome = self.upsert(&collection, event).await;
        http::log_outcome("caldav", "put", &event.reservation_id, &outcome);
        outcome
    }

    async fn delete_event(
        &self,
        target: &CalendarTarget,
        reservation_id: &ReservationId,
    ) -> Result<DeleteOutcome, CalendarError> {
        let collection = collection_url(target)?;
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
        let collection = collection_url(target)?;
        self.list(&collection, from, to).await
    }
}

fn status_is_transient(status: StatusCode) -> bool {
    http::status_error("", status, "").is_transient()
}

/// The collection URL of a CalDAV target, with its trailing slash.
fn collection_url(target: &CalendarTarget) -> Result<Url, CalendarError> {
    match target {
        CalendarTarget::Caldav { url } => parse_collection(url),
        other => Err(CalendarError::Permanent {
            kind: "wrong_target",
            message: format!("the CalDAV adapter cannot write to a {} calendar", other.kind()),
        }),
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
/// servers may; RFC 7231 `Location` on 201).
fn created_location(requested: &Url, response: &Response) -> Option<String> {
    let location = response.headers().get(LOCATION)?.to_str().ok()?;
    requested.join(location).ok().map(|u| u.to_string())
}

/// The slotguard event in one REPORT response, if it is one.
pub(crate) fn found_event(collection: &Url, response: DavResponse) -> Option<FoundEvent> {
    let parsed = ics::parse_event(response.calendar_data.as_deref()?)?;
    let reservation_id = ReservationId::parse(parsed.booking.as_deref()?.trim())?;
    let Some(start) = parsed.start else {
        tracing::warn!(%reservation_id, "caldav: a slotguard event without a readable DTSTART is skipped");
        return None;
    };
    let event_ref = collection.join(&response.href).ok()?.to_string();
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

    #[test]
    fn other_targets_are_the_wrong_target() {
        for target in [CalendarTarget::None, CalendarTarget::Google { calendar_id: "primary".into() }] {
            let err = collection_url(&target).unwrap_err();
            assert_eq!(err.kind(), "wrong_target");
            assert!(!err.is_transient());
        }
    }

    #[test]
    fn credentials_never_show_in_debug_output() {
        let config = CalDavConfig::default().with_basic_auth("ada", "s3cret-app-password");
        let calendar = CalDavCalendar::new(config.clone()).unwrap();
        for shown in [format!("{config:?}"), format!("{calendar:?}"), format!("{:#?}", config.credentials)] {
            assert!(!shown.contains("s3cret"), "{shown}");
            assert!(shown.contains("ada"), "{shown}");
        }
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
    }
}
