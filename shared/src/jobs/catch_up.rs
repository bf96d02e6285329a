//! Catch-up: settles the Checkout Session events Stripe made, whether or not
//! a webhook delivered them.
//!
//! Stripe retries a failing webhook endpoint for three days and then stops;
//! an endpoint that was down, misconfigured (a signing secret rotated
//! wrongly) or throttled for longer would leave every customer who paid in
//! that time charged, with a hold that lapses: no booking, no refund. So on a
//! schedule (`catch-up`, every 5 minutes) this job reads the events back from
//! Stripe's event list ([`Payments::session_events_since`]), from a cursor in
//! the table ([`CursorStore`]) less [`OVERLAP`], and hands each, oldest
//! first, to [`settle_session_event`]: the webhook's own settlement, which
//! records one outcome per session and so makes an event settled twice (by
//! the webhook and by a run, or by two runs) change nothing more.
//!
//! - **Cursor.** After a run the cursor is the `created` time of the newest
//!   event it settled without error; a run stops at the first event it could
//!   not settle (storage or Stripe down, an event it cannot read), so nothing
//!   after it is skipped: the next run starts there again. Ignored events
//!   (sessions slotguard did not create, `no_payment_required`) count as
//!   settled. The cursor moves only from the value the run read (a
//!   conditional write), so two overlapping runs cannot move it backwards.
//! - **Overlap.** `created` is in whole seconds and an event can be listed a
//!   little after a later one: every run reads the [`OVERLAP`] before the
//!   cursor again. The cursor keeps the ids of the events settled in that
//!   overlap, and a run skips them: without that, a shop with no newer event
//!   would settle its last events again every run (a calendar job, a refund
//!   check each time), harmless but never ending. Events the webhook settled
//!   are settled once more by the first run that reads them (a repeat the
//!   outcome items make harmless).
//! - **First run.** Without a cursor a run reads
//!   [`CatchUpSettings::first_run_lookback`] back (3 days, Stripe's retry
//!   period, by default; at most [`RETENTION`], what Stripe keeps).
//! - **Alarm.** A paid session event of a slotguard reservation at least
//!   [`CatchUpSettings::alarm_after`] old (30 minutes by default) whose
//!   session still has no outcome after the run goes to the operator queue
//!   (kind `unsettled_paid_session`, counted in `NeedsAttention`) and counts
//!   `UnsettledPaidSessions`, every run until it settles.
//! - **Time.** A run settles while its deadline allows and leaves the rest
//!   (not failed) to the next run, the cursor at the last event settled.

use crate::api::problem::Chain;
use crate::api::stripe_webhook::{SettleDeps, WebhookStore, raise, settle_session_event};
use crate::domain::{SessionEvent, SessionEventKind, rfc3339};
use crate::metrics;
use crate::ports::{
    CalendarQueue, CursorStore, Delivery, EventCursor, ListedEvent, PaymentError, Payments, SettledEvent, StoreError,
};
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use std::collections::BTreeSet;
use tokio::time::Instant;

/// How far before the cursor every run reads again.
pub const OVERLAP: Duration = Duration::minutes(5);

/// How long Stripe keeps events: no run reads further back.
pub const RETENTION: Duration = Duration::days(30);

/// How many settled event ids the cursor keeps at most (the newest): past
/// that, older events of the overlap are settled again (harmless).
pub const MAX_RECENT: usize = 1000;

/// What the catch-up needs from storage: the webhook's, and its cursor.
pub trait CatchUpStore: WebhookStore + CursorStore {}
impl<T: WebhookStore + CursorStore> CatchUpStore for T {}

/// How a run looks back and when it raises the alarm
/// ([`crate::config::catch_up_settings`] reads them from the environment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatchUpSettings {
    /// How far back a run reads when there is no cursor yet (the very first run).
    pub first_run_lookback: Duration,
    /// A paid session event at least this old whose session has no outcome
    /// after a run raises the alarm.
    pub alarm_after: Duration,
}

impl Default for CatchUpSettings {
    fn default() -> Self {
        Self { first_run_lookback: Duration::days(3), alarm_after: Duration::minutes(30) }
    }
}

impl CatchUpSettings {
    /// Settings with a first-run window of more than nothing and at most
    /// [`RETENTION`], and an alarm age of at least a minute.
    pub fn new(first_run_lookback: Duration, alarm_after: Duration) -> Result<Self, String> {
        if first_run_lookback <= Duration::zero() || first_run_lookback > RETENTION {
            return Err(format!(
                "the first run's window must be more than 0 and at most {} days",
                RETENTION.num_days()
            ));
        }
        if alarm_after < Duration::minutes(1) {
            return Err("the alarm age must be at least a minute".to_owned());
        }
        Ok(Self { first_run_lookback, alarm_after })
    }
}

/// What a run read, settled and raised (the function's answer, and its log line).
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct CatchUpReport {
    /// Events created from here on were read (RFC 3339).
    pub since: String,
    pub events_read: usize,
    /// Skipped: an earlier run settled them (the cursor's recent events).
    pub seen_before: usize,
    /// Settled without error (acted on, found settled, or ignored).
    pub settled: usize,
    /// Not settled: the event the run stopped at (0 or 1).
    pub failed: usize,
    /// Not tried: after the failure, or past the run's deadline.
    pub not_attempted: usize,
    /// Why the run stopped early, if it did (the failure, scrubbed, or the deadline).
    pub stopped: Option<String>,
    /// Where the cursor is after the run (RFC 3339), if anywhere.
    pub cursor: Option<String>,
    /// Whether this run wrote it (moved it on, or noted more events settled
    /// within the overlap); false also when another run wrote it first.
    pub cursor_moved: bool,
    /// Paid sessions without an outcome, older than the alarm age: raised.
    pub unsettled_paid_sessions: Vec<String>,
}

/// Why a run could not do its work at all (the function fails; the
/// scheduler runs it again in 5 minutes).
#[derive(Debug, thiserror::Error)]
pub enum CatchUpError {
    #[error("storage (the cursor, or a session's outcome)")]
    Store(#[from] StoreError),
    #[error("listing Stripe's Checkout Session events")]
    Payments(#[from] PaymentError),
}

/// Runs the catch-up once at `now`, settling events until `deadline`.
pub async fn catch_up<S, P, Q>(
    deps: &SettleDeps<'_, S, P, Q>,
    settings: &CatchUpSettings,
    now: DateTime<Utc>,
    deadline: Instant,
) -> Result<CatchUpReport, CatchUpError>
where
    S: CatchUpStore,
    P: Payments,
    Q: CalendarQueue,
{
    let cursor = deps.store.event_cursor().await?;
    let since = match &cursor {
        Some(c) => c.settled_through - OVERLAP,
        None => now - settings.first_run_lookback,
    }
    .max(now - RETENTION);
    let events = deps.payments.session_events_since(since).await?;
    let mut report = CatchUpReport {
        since: rfc3339(since),
        events_read: events.len(),
        cursor: cursor.as_ref().map(|c| rfc3339(c.settled_through)),
        ..CatchUpReport::default()
    };

    let seen: BTreeSet<&str> = cursor.iter().flat_map(|c| &c.recent).map(|e| e.event_id.as_str()).collect();
    let mut settled_now: Vec<SettledEvent> = Vec::new();
    for (i, listed) in events.iter().enumerate() {
        if seen.contains(listed.event_id.as_str()) {
            report.seen_before += 1;
            continue;
        }
        if Instant::now() >= deadline {
            report.stopped = Some("deadline".to_owned());
            report.not_attempted = events[i..].iter().filter(|e| !seen.contains(e.event_id.as_str())).count();
            break;
        }
        match settle(deps, listed, now).await {
            Ok(()) => {
                report.settled += 1;
                settled_now.push(SettledEvent { created: listed.created, event_id: listed.event_id.clone() });
            }
            Err(why) => {
                tracing::warn!(
                    event_id = %listed.event_id,
                    created = %rfc3339(listed.created),
                    error = %crate::telemetry::scrub(&why),
                    "session event not settled: the next run starts here again"
                );
                report.failed = 1;
                report.not_attempted = events[i + 1..].iter().filter(|e| !seen.contains(e.event_id.as_str())).count();
                report.stopped = Some(crate::telemetry::scrub(&why));
                break;
            }
        }
    }

    if let Some(to) = moved(cursor.as_ref(), settled_now, now) {
        report.cursor_moved = deps.store.advance_event_cursor(cursor.as_ref(), &to).await?;
        if report.cursor_moved {
            report.cursor = Some(rfc3339(to.settled_through));
        } else {
            tracing::info!("another run moved the event cursor first; left as it is");
        }
    }

    report.unsettled_paid_sessions = raise_unsettled(deps.store, &events, settings, now).await?;
    tracing::info!(
        since = %report.since,
        events_read = report.events_read,
        seen_before = report.seen_before,
        settled = report.settled,
        failed = report.failed,
        not_attempted = report.not_attempted,
        cursor = report.cursor.as_deref().unwrap_or("none"),
        cursor_moved = report.cursor_moved,
        alarms = report.unsettled_paid_sessions.len(),
        "caught up with Stripe's session events"
    );
    Ok(report)
}

/// The cursor after a run that settled `settled_now` (in order, none
/// skipped before the first failure): at the newest event settled, or where
/// it was, remembering the events settled within [`OVERLAP`] before it.
/// `None` when the run settled nothing (nothing to write).
fn moved(read: Option<&EventCursor>, settled_now: Vec<SettledEvent>, now: DateTime<Utc>) -> Option<EventCursor> {
    let newest = settled_now.iter().map(|e| e.created).max()?;
    let settled_through = read.map_or(newest, |c| c.settled_through.max(newest));
    let mut recent: Vec<SettledEvent> = read.map(|c| c.recent.clone()).unwrap_or_default();
    recent.extend(settled_now);
    recent.retain(|e| e.created >= settled_through - OVERLAP);
    recent.sort();
    recent.dedup();
    let drop = recent.len().saturating_sub(MAX_RECENT);
    recent.drain(..drop);
    Some(EventCursor { settled_through, recent, moved_at: now, revision: 0 })
}

/// Settles one listed event as the webhook would have; `Err` with the reason
/// if it is not settled.
async fn settle<S, P, Q>(deps: &SettleDeps<'_, S, P, Q>, listed: &ListedEvent, now: DateTime<Utc>) -> Result<(), String>
where
    S: CatchUpStore,
    P: Payments,
    Q: CalendarQueue,
{
    match &listed.delivery {
        Delivery::Session(event) => match settle_session_event(deps, event, now).await {
            Ok(_) => Ok(()),
            Err(e) => Err(Chain(&e).to_string()),
        },
        Delivery::Ignored { reason, .. } => {
            tracing::debug!(event_id = %listed.event_id, %reason, "listed event ignored");
            Ok(())
        }
        Delivery::Unreadable { reason, .. } => {
            metrics::count("UnreadableSessionEvents", &[]);
            Err(format!("Checkout Session event unreadable: {reason}"))
        }
    }
}

/// Whether the event says the session's money was taken.
fn is_paid(event: &SessionEvent) -> bool {
    matches!(event.kind, SessionEventKind::Completed { paid: true } | SessionEventKind::AsyncPaymentSucceeded)
}

/// Raises the alarm for every paid session of a slotguard reservation among
/// `events` that is at least the alarm age old and has no outcome: one
/// operator item per session (raised again, it stays one), and one
/// `UnsettledPaidSessions` per session and run. The sessions raised, sorted.
async fn raise_unsettled<S: CatchUpStore>(
    store: &S,
    events: &[ListedEvent],
    settings: &CatchUpSettings,
    now: DateTime<Utc>,
) -> Result<Vec<String>, StoreError> {
    let mut seen = BTreeSet::new();
    let mut raised = Vec::new();
    for listed in events.iter().filter(|e| e.created <= now - settings.alarm_after) {
        let Delivery::Session(event) = &listed.delivery else { continue };
        let (Some(reservation_id), true) = (&event.session.reservation_id, is_paid(event)) else { continue };
        let session_id = &event.session.session_id;
        if !seen.insert(session_id.clone()) || store.payment_outcome(session_id).await?.is_some() {
            continue;
        }
        let detail = format!(
            "session {session_id} was paid (event {}, {}) and has no outcome: no booking, no refund. \
             Check the webhook endpoint and the catch-up's log; the catch-up retries every run",
            listed.event_id,
            rfc3339(listed.created)
        );
        raise(store, &format!("unsettled-{session_id}"), "unsettled_paid_session", reservation_id, &detail, now)
            .await?;
        metrics::count("UnsettledPaidSessions", &[]);
        raised.push(session_id.clone());
    }
    raised.sort();
    Ok(raised)
}
