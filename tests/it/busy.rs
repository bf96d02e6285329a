//! Busy time from the host's calendar (README, "Busy time"): events put
//! directly on Xandikos and on the Google stand-in block the slots they
//! overlap once the refresh (played here by a loop with a 1-second
//! interval, as the scheduler plays it every minute on AWS) has read them;
//! slotguard's own, transparent and cancelled events do not; a failed or
//! late refresh never replaces newer busy time.

use crate::calendar_adapters::{count_events, fresh_collection};
use crate::calendar_flow::Writer;
use crate::fakes::google::FakeGoogle;
use crate::helpers::*;
use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use slotguard::adapters::caldav::{CalDavCalendar, CalDavConfig};
use slotguard::adapters::calendars::Calendars;
use slotguard::adapters::dynamo::DynamoStore;
use slotguard::adapters::google::GoogleCalendar;
use slotguard::adapters::outbound::OutboundPolicy;
use slotguard::busy::{BusySettings, Refreshed, busy_between, refresh};
use slotguard::domain::{Resource, ResourceId};
use slotguard::jobs::busy_refresh::refresh_busy_time;
use slotguard::ports::{BusyInterval, BusySource, BusyStore, CalendarError, ResourceStore};

/// The refresh interval the tests run with.
pub(crate) const INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

pub(crate) fn settings() -> BusySettings {
    BusySettings { refresh_interval: Duration::seconds(1), horizon: Duration::days(10), ..BusySettings::default() }
}

/// The calendar adapters on the local stack (and the Google stand-in, if given).
pub(crate) fn calendars(google: Option<&FakeGoogle>) -> Calendars {
    let caldav =
        CalDavConfig::default().with_timeout(std::time::Duration::from_secs(2)).with_outbound(OutboundPolicy::local());
    Calendars::new(CalDavCalendar::new(caldav).unwrap(), google.map(|g| GoogleCalendar::new(g.config()).unwrap()))
}

/// The scheduler: refreshes due busy time every [`INTERVAL`] until dropped.
pub(crate) struct Scheduler(tokio::task::JoinHandle<()>);

impl Scheduler {
    pub(crate) fn start(store: &DynamoStore, calendars: Calendars) -> Self {
        let store = store.clone();
        Self(tokio::spawn(async move {
            loop {
                let _ = refresh_busy_time(&store, &calendars, None, &settings()).await;
                tokio::time::sleep(INTERVAL).await;
            }
        }))
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// `spec` with busy time read from `calendar`.
pub(crate) fn busy_spec(calendar: Value, timezone: &str) -> Value {
    let mut spec = open_all_day();
    spec["timezone"] = json!(timezone);
    spec["calendar"] = calendar;
    spec["busy_time"] = json!({ "enabled": true });
    spec
}

/// PUTs a VEVENT directly on a CalDAV collection, as the host's calendar app would.
pub(crate) async fn put_caldav_event(collection: &str, uid: &str, props: &str) {
    let body = format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//host//EN\r\nBEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nSUMMARY:Dentist\r\n{}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
        props.trim().replace('\n', "\r\n")
    );
    let r = reqwest::Client::new()
        .put(format!("{collection}{uid}.ics"))
        .header("content-type", "text/calendar")
        .body(body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "PUT event: {}", r.status());
}

pub(crate) fn ics_time(t: DateTime<Utc>) -> String {
    t.format("%Y%m%dT%H%M%SZ").to_string()
}

/// Whether `slot` is offered, over a two-day window around it.
pub(crate) async fn offered(app: &TestApp, resource: &str, slot: DateTime<Utc>) -> bool {
    app.slots(resource, slot - Duration::hours(12), slot + Duration::hours(12)).await.contains(&rfc3339(slot))
}

/// Polls availability until `slot` is gone; the time it took. Fails after `deadline`.
pub(crate) async fn wait_until_gone(
    app: &TestApp,
    resource: &str,
    slot: DateTime<Utc>,
    deadline: std::time::Duration,
) -> std::time::Duration {
    let started = std::time::Instant::now();
    while offered(app, resource, slot).await {
        assert!(started.elapsed() < deadline, "{slot} still offered after {deadline:?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    started.elapsed()
}

/// Waits until a refresh that started after `after` has landed.
async fn wait_for_refresh(store: &DynamoStore, resource: &str, after: DateTime<Utc>) {
    let id = ResourceId::parse(resource).unwrap();
    for _ in 0..100 {
        if store.busy_snapshot(&id).await.unwrap().is_some_and(|s| s.fetched_at > after) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("no refresh of {resource} after {after}");
}

/// Waits until availability of `resource` answers (its first refresh landed).
pub(crate) async fn wait_until_readable(app: &TestApp, resource: &str) {
    for _ in 0..100 {
        let r = app
            .http
            .get(app.url(&format!("/v1/resources/{resource}/slots")))
            .query(&[("from", rfc3339(hour_from_now(1)))])
            .send()
            .await
            .unwrap();
        if r.status() == 200 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("busy time of {resource} never became readable");
}

/// The deadline for a change to show: the refresh interval, plus slack for
/// the read and this machine's load.
pub(crate) fn deadline() -> std::time::Duration {
    INTERVAL + std::time::Duration::from_secs(5)
}

#[tokio::test]
async fn an_event_put_on_xandikos_removes_its_slots_and_makes_reserve_409() {
    let app = spawn_app().await;
    let collection = fresh_collection().await;
    app.put_resource("room", &busy_spec(json!({ "type": "caldav", "url": collection }), "UTC")).await;

    // No busy time read yet: never "free".
    let r = app.http.get(app.url("/v1/resources/room/slots")).send().await.unwrap();
    assert_problem(r, 503, "busy_time_unavailable").await;
    assert_problem(app.reserve("room", hour_from_now(30), "a@example.com").await, 503, "busy_time_unavailable").await;

    let _scheduler = Scheduler::start(&app.store, calendars(None));
    wait_until_readable(&app, "room").await;
    let (busy, free) = (hour_from_now(30), hour_from_now(32));
    assert!(offered(&app, "room", busy).await && offered(&app, "room", free).await);

    // 15 minutes inside the 30th hour: that one slot goes.
    let props =
        format!("DTSTART:{}\nDTEND:{}", ics_time(busy + Duration::minutes(15)), ics_time(busy + Duration::minutes(45)));
    put_caldav_event(&collection, "dentist", &props).await;
    wait_until_gone(&app, "room", busy, deadline()).await;
    assert!(offered(&app, "room", free).await, "a slot the event does not overlap stays");
    assert!(
        offered(&app, "room", busy - Duration::hours(1)).await
            && offered(&app, "room", busy + Duration::hours(1)).await
    );

    assert_problem(app.reserve("room", busy, "a@example.com").await, 409, "host_busy").await;
    assert!(app.live_holds().await.is_empty(), "a refused reserve writes nothing");
    assert_eq!(app.reserve("room", free, "b@example.com").await.status(), 201);

    // The host removes the event: the slot comes back.
    reqwest::Client::new().delete(format!("{collection}dentist.ics")).send().await.unwrap();
    let start = std::time::Instant::now();
    while !offered(&app, "room", busy).await {
        assert!(start.elapsed() < deadline(), "the slot did not come back");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn own_transparent_and_cancelled_events_are_not_busy_on_xandikos() {
    let app = spawn_app().await;
    let collection = fresh_collection().await;
    app.put_resource("room", &busy_spec(json!({ "type": "caldav", "url": collection }), "UTC")).await;
    let _scheduler = Scheduler::start(&app.store, calendars(None));
    wait_until_readable(&app, "room").await;

    // A paid booking, written to the calendar by the writer.
    let own = hour_from_now(40);
    let c = app.reserve_and_checkout("room", own, "ada@example.com").await;
    app.pay(&c.session_id, "").await;
    assert_eq!(app.status_text(&c.reservation_id).await, "confirmed");
    Writer::new(&app).drain(&app).await;
    assert_eq!(count_events(&collection).await, 1, "the booking's event is on the calendar");

    let (transparent, cancelled, opaque) = (hour_from_now(42), hour_from_now(43), hour_from_now(44));
    let timed = |t: DateTime<Utc>| format!("DTSTART:{}\nDTEND:{}", ics_time(t), ics_time(t + Duration::hours(1)));
    put_caldav_event(&collection, "free", &format!("{}\nTRANSP:TRANSPARENT", timed(transparent))).await;
    put_caldav_event(&collection, "off", &format!("{}\nSTATUS:CANCELLED", timed(cancelled))).await;
    put_caldav_event(&collection, "busy", &timed(opaque)).await;
    let written = Utc::now();
    wait_for_refresh(&app.store, "room", written).await;

    // The opaque event is read (so the refresh did see the calendar) ...
    assert!(!offered(&app, "room", opaque).await);
    // ... the others are not busy time.
    assert!(offered(&app, "room", transparent).await, "a transparent event is not busy");
    assert!(offered(&app, "room", cancelled).await, "a cancelled event is not busy");
    let resource = app.store.get_resource(&ResourceId::parse("room").unwrap()).await.unwrap().unwrap();
    let busy = busy_between(&app.store, &resource, own, own + Duration::hours(1), Utc::now()).await.unwrap();
    assert_eq!(busy, vec![], "slotguard's own booking event is not busy time");
    // The booking still holds its slot by its own lock, not by busy time.
    assert!(!offered(&app, "room", own).await);
}

#[tokio::test]
async fn an_all_day_event_blocks_the_local_day() {
    let app = spawn_app().await;
    let collection = fresh_collection().await;
    app.put_resource("berlin", &busy_spec(json!({ "type": "caldav", "url": collection }), "Europe/Berlin")).await;
    let _scheduler = Scheduler::start(&app.store, calendars(None));
    wait_until_readable(&app, "berlin").await;

    let zone: slotguard::domain::Zone = "Europe/Berlin".parse().unwrap();
    let day = (Utc::now() + Duration::days(3)).with_timezone(&zone).date_naive();
    let midnight = |d: chrono::NaiveDate| {
        use chrono::TimeZone;
        zone.from_local_datetime(&d.and_hms_opt(0, 0, 0).unwrap()).earliest().unwrap().with_timezone(&Utc)
    };
    let (first, next_day) = (midnight(day), midnight(day.succ_opt().unwrap()));
    let props = format!(
        "DTSTART;VALUE=DATE:{}\nDTEND;VALUE=DATE:{}",
        day.format("%Y%m%d"),
        day.succ_opt().unwrap().format("%Y%m%d")
    );
    put_caldav_event(&collection, "holiday", &props).await;
    wait_until_gone(&app, "berlin", first, deadline()).await;
    let slots = app.slots("berlin", first - Duration::hours(2), next_day + Duration::hours(2)).await;
    assert_eq!(
        slots,
        vec![
            rfc3339(first - Duration::hours(2)),
            rfc3339(first - Duration::hours(1)),
            rfc3339(next_day),
            rfc3339(next_day + Duration::hours(1))
        ],
        "every slot of the local day is gone, none around it"
    );
}

#[tokio::test]
async fn an_event_on_the_google_stand_in_removes_its_slot_and_own_free_and_cancelled_do_not() {
    let google = FakeGoogle::start().await;
    let app = spawn_app().await;
    let calendar_id = "host@example.com";
    app.put_resource("groom", &busy_spec(json!({ "type": "google", "calendar_id": calendar_id }), "UTC")).await;
    let _scheduler = Scheduler::start(&app.store, calendars(Some(&google)));
    wait_until_readable(&app, "groom").await;

    let (busy, own, transparent, cancelled, free) =
        (hour_from_now(30), hour_from_now(31), hour_from_now(32), hour_from_now(33), hour_from_now(34));
    let event = |id: &str, t: DateTime<Utc>, extra: Value| {
        let mut e = json!({
            "id": id,
            "status": "confirmed",
            "start": { "dateTime": rfc3339(t) },
            "end": { "dateTime": rfc3339(t + Duration::hours(1)) },
        });
        e.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        e
    };
    let own_id = format!("rsv_groom_{}_2579e728486449b88d897c1ecf3b632c", own.format("%Y%m%dT%H%M%S"));
    google.put_raw(
        calendar_id,
        event("own00", own, json!({"extendedProperties": {"private": {"slotguardBooking": own_id}}})),
    );
    google.put_raw(calendar_id, event("free0", transparent, json!({"transparency": "transparent"})));
    google.put_raw(calendar_id, event("gone0", cancelled, json!({"status": "cancelled"})));
    google.put_raw(calendar_id, event("busy0", busy, json!({})));
    wait_until_gone(&app, "groom", busy, deadline()).await;
    wait_for_refresh(&app.store, "groom", Utc::now()).await;
    for (slot, what) in [(own, "own"), (transparent, "transparent"), (cancelled, "cancelled"), (free, "unrelated")] {
        assert!(offered(&app, "groom", slot).await, "the {what} event's slot stays open");
    }
    assert_problem(app.reserve("groom", busy, "a@example.com").await, 409, "host_busy").await;
    assert_eq!(app.reserve("groom", free, "b@example.com").await.status(), 201);
}

/// A calendar answering fixed intervals, or failing.
struct Scripted(Result<Vec<BusyInterval>, CalendarError>);

impl BusySource for Scripted {
    async fn busy_intervals(
        &self,
        _: &Resource,
        _: &[ResourceId],
        _: DateTime<Utc>,
        _: DateTime<Utc>,
    ) -> Result<Vec<BusyInterval>, CalendarError> {
        self.0.clone()
    }
}

async fn scripted_resource(app: &TestApp) -> Resource {
    app.put_resource("room", &busy_spec(json!({ "type": "caldav", "url": "http://127.0.0.1:9/cal/" }), "UTC")).await;
    app.store.get_resource(&ResourceId::parse("room").unwrap()).await.unwrap().unwrap()
}

#[tokio::test]
async fn a_failed_refresh_leaves_the_cached_busy_time() {
    let app = spawn_app().await;
    let resource = scripted_resource(&app).await;
    let slot = hour_from_now(30);
    let now = Utc::now();
    let one = Scripted(Ok(vec![(slot, slot + Duration::hours(1))]));
    assert_eq!(
        refresh(&app.store, &one, &resource, std::slice::from_ref(&resource.id), now, &settings()).await.unwrap(),
        Refreshed::Stored
    );
    let before = app.store.busy_snapshot(&resource.id).await.unwrap().unwrap();
    assert!(!offered(&app, "room", slot).await);

    let down = Scripted(Err(CalendarError::Transient { kind: "http_503", message: "down".into() }));
    assert!(
        refresh(
            &app.store,
            &down,
            &resource,
            std::slice::from_ref(&resource.id),
            now + Duration::seconds(5),
            &settings()
        )
        .await
        .is_err()
    );
    assert_eq!(app.store.busy_snapshot(&resource.id).await.unwrap().unwrap(), before, "the old snapshot stays");
    assert!(!offered(&app, "room", slot).await, "and still blocks its slot");
    // The scheduled job reports it and leaves the cache too.
    let report = refresh_busy_time(&app.store, &down, Some(&resource.id), &settings()).await.unwrap();
    assert_eq!(report.errors.len(), 1, "{report:?}");
    assert_eq!(app.store.busy_snapshot(&resource.id).await.unwrap().unwrap(), before);
}

#[tokio::test]
async fn an_older_refresh_never_overwrites_a_newer_one() {
    let app = spawn_app().await;
    let resource = scripted_resource(&app).await;
    let (old_slot, new_slot) = (hour_from_now(30), hour_from_now(31));
    let now = Utc::now();
    let newer = Scripted(Ok(vec![(new_slot, new_slot + Duration::hours(1))]));
    let older = Scripted(Ok(vec![(old_slot, old_slot + Duration::hours(1))]));
    assert_eq!(
        refresh(&app.store, &newer, &resource, std::slice::from_ref(&resource.id), now, &settings()).await.unwrap(),
        Refreshed::Stored
    );
    // A read that started a second earlier finishes later: dropped.
    let late = refresh(
        &app.store,
        &older,
        &resource,
        std::slice::from_ref(&resource.id),
        now - Duration::seconds(1),
        &settings(),
    )
    .await
    .unwrap();
    assert_eq!(late, Refreshed::Superseded);
    let stored = app.store.busy_snapshot(&resource.id).await.unwrap().unwrap();
    assert_eq!(stored.intervals, vec![(new_slot, new_slot + Duration::hours(1))]);
    assert!(offered(&app, "room", old_slot).await && !offered(&app, "room", new_slot).await);
    // The same start again is not newer either; a later one replaces it.
    assert_eq!(
        refresh(&app.store, &older, &resource, std::slice::from_ref(&resource.id), now, &settings()).await.unwrap(),
        Refreshed::Superseded
    );
    let later = now + Duration::milliseconds(1);
    assert_eq!(
        refresh(&app.store, &older, &resource, std::slice::from_ref(&resource.id), later, &settings()).await.unwrap(),
        Refreshed::Stored
    );
    assert!(!offered(&app, "room", old_slot).await && offered(&app, "room", new_slot).await);
}

#[tokio::test]
async fn busy_time_settings_are_checked_when_the_resource_is_saved() {
    let app = spawn_app().await;
    let put = |spec: Value| app.http.put(app.url("/v1/resources/room")).bearer_auth(ADMIN_TOKEN).json(&spec).send();
    let mut no_calendar = open_all_day();
    no_calendar["busy_time"] = json!({ "enabled": true });
    let body = assert_problem(put(no_calendar).await.unwrap(), 422, "invalid_resource").await;
    assert!(body["detail"].as_str().unwrap().contains("busy_time"), "{body}");
    let mut unknown = busy_spec(json!({ "type": "caldav", "url": "http://127.0.0.1:9/cal/" }), "UTC");
    unknown["busy_time"] = json!({ "enabled": true, "calendars": [] });
    let r = put(unknown).await.unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());
    let mut off = open_all_day();
    off["busy_time"] = json!({ "enabled": false });
    assert_eq!(put(off).await.unwrap().status(), 200, "disabled needs no calendar");
}

/// The window that remains, measured (run by `scripts/bench`, section
/// `busy`; ignored in normal runs): over 20 trials per calendar, the time
/// from the PUT of an event on the calendar to its slot gone from
/// availability, with the scheduler refreshing every [`INTERVAL`]. Events
/// are put at random phases of the refresh cycle.
pub(crate) mod window {
    use super::*;

    const TRIALS: usize = 20;

    fn percentiles(mut ms: Vec<u128>) -> String {
        ms.sort();
        let at = |p: f64| ms[((ms.len() as f64 * p).ceil() as usize).clamp(1, ms.len()) - 1];
        format!("p50 {} ms, p95 {} ms, max {} ms ({} trials)", at(0.5), at(0.95), ms[ms.len() - 1], ms.len())
    }

    async fn jitter() {
        tokio::time::sleep(std::time::Duration::from_millis(fastrand::u64(0..INTERVAL.as_millis() as u64))).await;
    }

    #[tokio::test]
    #[ignore = "a measurement: scripts/bench runs it"]
    async fn busy_window() {
        let google = FakeGoogle::start().await;
        let app = spawn_app().await;
        let collection = fresh_collection().await;
        app.put_resource("room", &busy_spec(json!({ "type": "caldav", "url": collection }), "UTC")).await;
        app.put_resource("groom", &busy_spec(json!({ "type": "google", "calendar_id": "host" }), "UTC")).await;
        let _scheduler = Scheduler::start(&app.store, calendars(Some(&google)));
        wait_until_readable(&app, "room").await;
        wait_until_readable(&app, "groom").await;
        let (mut caldav, mut gcal) = (Vec::new(), Vec::new());
        for i in 0..TRIALS {
            let slot = hour_from_now(30 + i as i64);
            jitter().await;
            let props = format!("DTSTART:{}\nDTEND:{}", ics_time(slot), ics_time(slot + Duration::minutes(30)));
            let t = std::time::Instant::now();
            put_caldav_event(&collection, &format!("w{i}"), &props).await;
            wait_until_gone(&app, "room", slot, deadline()).await;
            caldav.push(t.elapsed().as_millis());

            jitter().await;
            let event = json!({
                "id": format!("w{i:04}"),
                "start": { "dateTime": rfc3339(slot) },
                "end": { "dateTime": rfc3339(slot + Duration::minutes(30)) },
            });
            let t = std::time::Instant::now();
            google.put_raw("host", event);
            wait_until_gone(&app, "groom", slot, deadline()).await;
            gcal.push(t.elapsed().as_millis());
        }
        println!("\nbusy window, refresh every {} ms, availability polled every 50 ms:", INTERVAL.as_millis());
        println!("  xandikos:            {}", percentiles(caldav));
        println!("  google stand-in:     {}", percentiles(gcal));
    }
}

#[tokio::test]
async fn a_recurring_event_on_xandikos_blocks_every_instance() {
    let app = spawn_app().await;
    let collection = fresh_collection().await;
    app.put_resource("room", &busy_spec(json!({ "type": "caldav", "url": collection }), "UTC")).await;
    let _scheduler = Scheduler::start(&app.store, calendars(None));
    wait_until_readable(&app, "room").await;
    let first = hour_from_now(30);
    let props = format!(
        "DTSTART:{}\nDTEND:{}\nRRULE:FREQ=DAILY;COUNT=3",
        ics_time(first),
        ics_time(first + Duration::minutes(30))
    );
    put_caldav_event(&collection, "standup", &props).await;
    wait_until_gone(&app, "room", first, deadline()).await;
    for day in 1..3 {
        assert!(!offered(&app, "room", first + Duration::days(day)).await, "instance {day} blocks its slot");
    }
    assert!(offered(&app, "room", first + Duration::days(3)).await, "COUNT=3: the fourth day is free");
    assert!(offered(&app, "room", first + Duration::hours(1)).await);
}
