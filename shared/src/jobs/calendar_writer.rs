//! The calendar writer: consumes calendar jobs from SQS and writes (or
//! deletes) each booking's calendar event.
//!
//! Per message: load the booking; if it is not confirmed (any more), make
//! sure it has no event; else write the event (idempotent: the event id
//! derives from the booking id), load the booking again and remove the event
//! if it was cancelled meanwhile (a cancel racing a slow write), and note
//! where it lives on the booking. Either way a job that runs to the end
//! leaves the calendar matching the booking, whatever an interrupted earlier
//! attempt left behind. Transient failures (429, 5xx, timeouts)
//! are retried with exponential backoff and full jitter while the invocation
//! has time; a message that still fails is reported as a batch item failure
//! (SQS partial batch response), so only it comes back. A permanent failure
//! (other 4xx: bad credentials, calendar not found) or a message on its last
//! allowed receive goes to the dead-letter queue at once, with its reason.

use crate::domain::{
    CalendarAction, CalendarJob, CalendarTarget, Claim, Customer, ReservationId, Resource, ResourceId, WrittenCalendar,
    rfc3339,
};
use crate::metrics;
use crate::ports::{BookingEvent, Calendar, CalendarError, WriteOutcome};
use crate::ports::{
    BookingStore, ClaimStore, DeadLetterReason, DeadLetters, ReservationHistory, ResourceStore, StoreError,
};
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use chrono::{DateTime, Utc};
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;
use tracing::Instrument;

/// Backoff settings and the receive limit shared with the queue's redrive policy.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Delay cap of the first retry; doubles each attempt.
    pub base: Duration,
    /// Largest delay between attempts.
    pub cap: Duration,
    /// Time one more attempt needs; no retry starts unless it fits before the deadline.
    pub attempt_budget: Duration,
    /// The queue's `maxReceiveCount`: on this receive a failing job is dead-lettered by the
    /// writer itself, with its reason, instead of silently by SQS.
    pub max_receives: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            base: Duration::from_millis(200),
            cap: Duration::from_secs(5),
            attempt_budget: Duration::from_secs(6),
            max_receives: 5,
        }
    }
}

/// Exponential backoff with full jitter: a uniformly random delay in
/// `[0, min(cap, base * 2^attempt))`; `jitter` is the random draw in `[0, 1)`.
pub fn backoff(policy: &RetryPolicy, attempt: u32, jitter: f64) -> Duration {
    let ceiling = policy.base.saturating_mul(2u32.saturating_pow(attempt.min(20))).min(policy.cap);
    ceiling.mul_f64(jitter.clamp(0.0, 1.0))
}

/// What the writer needs from storage.
pub trait WriterStore: ClaimStore + ResourceStore + BookingStore + ReservationHistory {}
impl<T: ClaimStore + ResourceStore + BookingStore + ReservationHistory> WriterStore for T {}

/// Everything the writer talks to.
pub struct WriterDeps<'a, S, C, D> {
    pub store: &'a S,
    pub calendar: &'a C,
    pub dead_letters: &'a D,
    pub policy: RetryPolicy,
}

/// Handles one SQS batch; every message runs concurrently, in its own span,
/// until `deadline` (the invocation's end less a safety margin).
pub async fn write_batch<S: WriterStore, C: Calendar, D: DeadLetters>(
    deps: &WriterDeps<'_, S, C, D>,
    event: SqsEvent,
    deadline: Instant,
) -> SqsBatchResponse {
    let results = futures::future::join_all(event.records.into_iter().map(|message| async move {
        let id = message.message_id.clone().unwrap_or_default();
        let span = tracing::info_span!("calendar_job", message_id = %id);
        let done = handle_message(deps, message, deadline).instrument(span).await;
        (id, done)
    }))
    .await;
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = results
        .into_iter()
        .filter(|(_, done)| !done)
        .map(|(id, _)| {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            failure
        })
        .collect();
    response
}

/// Why a job did not complete.
#[derive(Debug, thiserror::Error)]
enum JobError {
    #[error(transparent)]
    Calendar(#[from] CalendarError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("malformed job: {0}")]
    Malformed(String),
}

/// `true` when the message is finished with (done, skipped or dead-lettered).
async fn handle_message<S: WriterStore, C: Calendar, D: DeadLetters>(
    deps: &WriterDeps<'_, S, C, D>,
    message: SqsMessage,
    deadline: Instant,
) -> bool {
    let body = message.body.clone().unwrap_or_default();
    let receive_count: u32 =
        message.attributes.get("ApproximateReceiveCount").and_then(|c| c.parse().ok()).unwrap_or(1);
    let outcome = match serde_json::from_str::<CalendarJob>(&body) {
        Ok(job) => run_job(deps, &job, deadline).await,
        Err(e) => Err(JobError::Malformed(e.to_string())),
    };
    let error = match outcome {
        Ok(done) => {
            tracing::info!(outcome = done, "calendar job done");
            return true;
        }
        Err(error) => error,
    };
    let (kind, permanent) = match &error {
        JobError::Calendar(e) => (e.kind().to_owned(), !e.is_transient()),
        JobError::Store(_) => ("storage".to_owned(), false),
        JobError::Malformed(_) => ("malformed_job".to_owned(), true),
    };
    if !permanent && receive_count < deps.policy.max_receives {
        tracing::warn!(%error, receive_count, "calendar job failed; SQS will deliver it again");
        return false;
    }
    let first_failure_at = message
        .attributes
        .get("ApproximateFirstReceiveTimestamp")
        .and_then(|ms| ms.parse::<i64>().ok())
        .and_then(DateTime::from_timestamp_millis)
        .unwrap_or_else(Utc::now);
    let reason = DeadLetterReason { kind, message: error.to_string(), first_failure_at, receive_count };
    match deps.dead_letters.send_dead_letter(&body, &reason).await {
        Ok(()) => true,
        Err(e) => {
            // Left on the queue: the redrive policy still moves it to the DLQ.
            tracing::error!(error = %e, "could not dead-letter a failed calendar job");
            false
        }
    }
}

async fn run_job<S: WriterStore, C: Calendar, D: DeadLetters>(
    deps: &WriterDeps<'_, S, C, D>,
    job: &CalendarJob,
    deadline: Instant,
) -> Result<&'static str, JobError> {
    let id = &job.reservation_id;
    let mut confirmed = deps.store.confirmed_booking(id).await?;
    let resource_id = &id.slot_key().resource_id;
    let Some(resource) = deps.store.get_resource(resource_id).await? else {
        return Ok("skipped_resource_gone");
    };
    let delete_from = |calendars: Vec<WrittenCalendar>| async move {
        for calendar in &calendars {
            with_retries(&deps.policy, deadline, || deps.calendar.delete_event(&calendar.target, id)).await?;
        }
        Ok::<(), JobError>(())
    };
    // A booking rescheduled while its event was being written is written
    // again: each round writes what it read, then reads again.
    for _ in 0..MAX_WRITE_ROUNDS {
        // Either job makes the calendar match the booking: a write job for a
        // booking that is not confirmed (cancelled meanwhile) removes any event
        // an earlier, interrupted attempt of the same job may have left.
        let booking = match (job.action, confirmed) {
            (CalendarAction::Write, Some(booking)) => booking,
            (CalendarAction::Write, None) => {
                delete_from(removal_targets(deps.store, &resource, id).await?).await?;
                return Ok("removed_not_confirmed");
            }
            // Booked again by the same reservation (never after a cancel): keep it.
            (CalendarAction::Delete, Some(_)) => return Ok("skipped_still_booked"),
            (CalendarAction::Delete, None) => {
                delete_from(removal_targets(deps.store, &resource, id).await?).await?;
                return Ok("deleted");
            }
        };
        let calendars = targets_of(deps.store, &resource, &booking).await?;
        // Where the event was written and no longer belongs (the calendar
        // target changed, the booking changed hands): take it off there.
        let stale: Vec<WrittenCalendar> =
            booking.calendars.iter().filter(|c| !calendars.contains(c)).cloned().collect();
        delete_from(stale).await?;
        let event = booking_event(&resource.name, &booking);
        let mut written = None;
        for calendar in &calendars {
            let started = std::time::Instant::now();
            let put = || async {
                deps.calendar
                    .put_event(&calendar.target, &event)
                    .await
                    .map_err(|e| without_customer(e, &booking.customer))
            };
            let outcome = with_retries(&deps.policy, deadline, put).await?;
            metrics::emit(
                "CalendarWriteLatency",
                started.elapsed().as_secs_f64() * 1000.0,
                metrics::Unit::Milliseconds,
                &[("Provider", calendar.target.kind())],
            );
            written = Some(match outcome {
                WriteOutcome::Created { event_ref } => (event_ref, "created"),
                WriteOutcome::Updated { event_ref } => (event_ref, "updated"),
                WriteOutcome::Unchanged { event_ref } => (event_ref, "unchanged"),
            });
        }
        let Some((event_ref, done)) = written else {
            if !booking.calendars.is_empty() {
                deps.store.record_calendar_write(id, "", &[], Utc::now()).await?;
            }
            return Ok("skipped_no_calendar");
        };
        // The booking may have been cancelled while the write was in flight, and
        // its delete job may have run before the write landed: look again, and
        // take the event back off if so. (If a cancel starts after this read, its
        // delete job runs after it and so after the write; if this look fails,
        // the job comes back and, finding the booking cancelled, removes the event.)
        // Likewise a reschedule whose own job wrote the new time before this
        // write landed the old one: write again.
        confirmed = deps.store.confirmed_booking(id).await?;
        match &confirmed {
            None => {
                let mut targets = removal_targets(deps.store, &resource, id).await?;
                targets.extend(calendars.into_iter().filter(|c| !targets.contains(c)).collect::<Vec<_>>());
                delete_from(targets).await?;
                return Ok("undone_no_longer_confirmed");
            }
            Some(now) if now.version != booking.version => continue,
            Some(_) => {
                deps.store.record_calendar_write(id, &event_ref, &calendars, Utc::now()).await?;
                return Ok(done);
            }
        }
    }
    Err(JobError::Calendar(CalendarError::Transient {
        kind: "booking_changing",
        message: "the booking kept changing while its event was written".into(),
    }))
}

/// Where a confirmed booking's event belongs now: a team booking on the
/// calendars of the members hosting it (whatever the team's members are
/// now: the booking keeps its hosts), any other on its resource's.
pub async fn targets_of<S: ResourceStore>(
    store: &S,
    resource: &Resource,
    booking: &Claim,
) -> Result<Vec<WrittenCalendar>, StoreError> {
    let mut calendars = Vec::new();
    match &resource.team {
        None => calendars.push(WrittenCalendar { host: resource.id.clone(), target: resource.calendar.clone() }),
        Some(_) => {
            for host in &booking.hosts {
                if let Some(member) = store.get_resource(host).await? {
                    calendars.push(WrittenCalendar { host: member.id, target: member.calendar });
                }
            }
        }
    }
    calendars.retain(|c| c.target != CalendarTarget::None);
    Ok(calendars)
}

/// Every calendar a booking that is not confirmed may still have an event
/// on: where it was last written (its booking item while CANCELLING, else
/// its final record), where its hosts' calendars are now, and, for bookings
/// written before the calendars were recorded, where the resource's current
/// shape puts its bookings (a team: every member).
async fn removal_targets<S: WriterStore>(
    store: &S,
    resource: &Resource,
    id: &ReservationId,
) -> Result<Vec<WrittenCalendar>, StoreError> {
    let mut targets = Vec::new();
    match store.get_claim(id).await?.filter(|c| &c.reservation_id == id) {
        Some(claim) => {
            targets.extend(targets_of(store, resource, &claim).await?);
            targets.extend(claim.calendars);
        }
        None => {
            if let Some(record) = store.get_reservation_record(id).await? {
                targets.extend(record.calendars);
            }
        }
    }
    let members: Vec<ResourceId> = match &resource.team {
        None => vec![resource.id.clone()],
        Some(team) => team.members.clone(),
    };
    for member in &members {
        let target = match member == &resource.id {
            true => Some(resource.calendar.clone()),
            false => store.get_resource(member).await?.map(|m| m.calendar),
        };
        if let Some(target) = target {
            targets.push(WrittenCalendar { host: member.clone(), target });
        }
    }
    let mut unique: Vec<WrittenCalendar> = Vec::new();
    for target in targets {
        if target.target != CalendarTarget::None && !unique.iter().any(|u| u.target == target.target) {
            unique.push(target);
        }
    }
    Ok(unique)
}

/// How often one job writes a booking that keeps being rescheduled before
/// it gives up and lets the queue bring it back.
const MAX_WRITE_ROUNDS: usize = 3;

/// The calendar event of a confirmed booking of the resource named `resource_name`.
fn booking_event(resource_name: &str, booking: &Claim) -> BookingEvent {
    BookingEvent {
        reservation_id: booking.reservation_id.clone(),
        summary: format!("{}: {}", resource_name, booking.customer.name),
        start: booking.slot.start,
        end: booking.end,
        description: format!(
            "Booked through slotguard.\nReservation: {}\nCustomer: {} <{}>\nStart: {}",
            booking.reservation_id,
            booking.customer.name,
            booking.customer.email.as_str(),
            rfc3339(booking.slot.start)
        ),
        customer: booking.customer.clone(),
        sequence: booking.version,
    }
}

/// The error of writing a booking's event without the customer's name or
/// address, in the forms a server may quote them back in (as sent,
/// iCalendar-escaped, JSON-escaped): its message is logged and kept with a
/// dead-lettered job.
fn without_customer(error: CalendarError, customer: &Customer) -> CalendarError {
    let name = customer.name.as_str();
    let ics = name.replace('\\', "\\\\").replace(';', "\\;").replace(',', "\\,");
    let json = serde_json::to_string(name).expect("a string serialises");
    let collapsed = name.split_whitespace().collect::<Vec<_>>().join(" ");
    let forms = [name, &ics, &json[1..json.len() - 1], &collapsed, customer.email.as_str()];
    let redact = |message: String| {
        forms.iter().fold(message, |message, form| crate::telemetry::redact_word(&message, form, "<customer>"))
    };
    match error {
        CalendarError::Transient { kind, message } => CalendarError::Transient { kind, message: redact(message) },
        CalendarError::Permanent { kind, message } => CalendarError::Permanent { kind, message: redact(message) },
    }
}

/// Runs `call` until it succeeds, fails permanently, or no further attempt
/// fits before `deadline`; sleeps a jittered backoff between attempts.
pub async fn with_retries<T, F, Fut>(policy: &RetryPolicy, deadline: Instant, mut call: F) -> Result<T, CalendarError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, CalendarError>>,
{
    let mut attempt = 0;
    loop {
        let error = match call().await {
            Ok(value) => return Ok(value),
            Err(error) => error,
        };
        metrics::count("CalendarWriteFailures", &[("Kind", error.kind())]);
        if !error.is_transient() {
            return Err(error);
        }
        let delay = backoff(policy, attempt, fastrand::f64());
        if Instant::now() + delay + policy.attempt_budget > deadline {
            return Err(error);
        }
        tracing::info!(%error, attempt, delay_ms = delay.as_millis() as u64, "calendar busy; retrying");
        tokio::time::sleep(delay).await;
        attempt += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn backoff_grows_exponentially_up_to_the_cap_with_full_jitter() {
        let p = RetryPolicy::default();
        assert_eq!(backoff(&p, 0, 0.999_999), Duration::from_millis(200).mul_f64(0.999_999));
        assert_eq!(backoff(&p, 3, 0.5), Duration::from_millis(800));
        assert_eq!(backoff(&p, 10, 0.5), Duration::from_millis(2500), "capped at 5 s");
        assert_eq!(backoff(&p, 40, 1.0), Duration::from_secs(5), "no overflow");
        assert_eq!(backoff(&p, 5, 0.0), Duration::ZERO, "full jitter reaches zero");
    }

    fn transient() -> CalendarError {
        CalendarError::Transient { kind: "http_503", message: "busy".into() }
    }

    fn fast() -> RetryPolicy {
        RetryPolicy {
            base: Duration::from_millis(1),
            cap: Duration::from_millis(2),
            attempt_budget: Duration::ZERO,
            max_receives: 5,
        }
    }

    #[tokio::test]
    async fn transient_failures_are_retried_until_success() {
        let calls = AtomicU32::new(0);
        let result = with_retries(&fast(), Instant::now() + Duration::from_secs(5), || async {
            if calls.fetch_add(1, Ordering::SeqCst) < 3 { Err(transient()) } else { Ok("written") }
        })
        .await;
        assert_eq!(result, Ok("written"));
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn permanent_failures_are_not_retried() {
        let calls = AtomicU32::new(0);
        let result: Result<(), _> = with_retries(&fast(), Instant::now() + Duration::from_secs(5), || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(CalendarError::Permanent { kind: "http_401", message: "no".into() })
        })
        .await;
        assert_eq!(result.unwrap_err().kind(), "http_401");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn retries_stop_when_the_invocation_has_no_time_left() {
        let calls = AtomicU32::new(0);
        let policy = RetryPolicy { attempt_budget: Duration::from_secs(10), ..fast() };
        let result: Result<(), _> = with_retries(&policy, Instant::now() + Duration::from_secs(1), || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(transient())
        })
        .await;
        assert!(result.unwrap_err().is_transient());
        assert_eq!(calls.load(Ordering::SeqCst), 1, "no attempt fits in the remaining second");
    }

    #[test]
    fn calendar_errors_lose_the_customer() {
        let customer = Customer::parse("Zoë  Ørsted, Jr.", "zoe@example.com").unwrap();
        let quoted =
            r#"409: SUMMARY:Room: Zoë  Ørsted\, Jr. "Zoë  Ørsted, Jr." Zoë Ørsted, Jr. mailto:zoe@example.com"#;
        let error = without_customer(CalendarError::Permanent { kind: "http_409", message: quoted.into() }, &customer);
        let CalendarError::Permanent { kind, message } = error else { panic!("kind kept") };
        assert_eq!(kind, "http_409");
        assert!(!message.contains("Zoë") && !message.contains("zoe@"), "{message}");
        assert!(message.starts_with("409: SUMMARY:Room: <customer>"), "{message}");
    }
}
