//! The fault layer: [`Faulty<T>`] implements every port trait the handlers,
//! the calendar writer and reconcile use, by handing each call to the real
//! adapter `T` after asking [`hook`] what to do with it.
//!
//! The hook reads the op the call belongs to from a task-local
//! ([`OpCtx`], set by the scheduler around each op task) and takes the next
//! decision of that op's fault script: the n-th port call of an op gets the
//! n-th decision. A call outside any op (setup, the final read-out) or while
//! faults are switched off (the quiesce phase) just proceeds.
//!
//! Covered, by trait (the name in quotes is what step logs show):
//! - `ResourceStore`: "get_resource", "cached_resource", "put_resource", "list_resources"
//! - `ClaimStore`: "place_hold", "get_claim", "cells_on_day", "day_tokens"
//! - `ReservationHistory`: "record_reservation", "get_reservation_record"
//! - `IdempotencyStore`: "key_use"
//! - `PaymentStore`: "start_checkout", "attach_checkout", "checkout_record",
//!   "payment_outcome", "session_state", "confirm_paid", "decide_refund",
//!   "hold_for_pending_payment", "release", "retire_hold", "record_unpaid_outcome"
//! - `BookingStore`: "record_calendar_write", "start_cancel", "cancel_booking",
//!   "reschedule"
//! - `AttentionStore`: "raise_attention", "list_attention"
//! - `CursorStore`: "event_cursor", "advance_event_cursor"
//! - `Payments`: "create_checkout_session", "refund_payment", "refunds_of",
//!   "session_events_since"
//! - `CalendarQueue`: "enqueue"; `DeadLetters`: "send_dead_letter"
//! - `Calendar`: "put_event", "delete_event", "list_events"
//!
//! A new port method needs one more line in the matching `impl` below: the
//! `faulty!` macro takes the name, the real call and the transient error.

use super::sched::Signal;
use chrono::{DateTime, NaiveDate, Utc};
use slotguard::domain::{
    CalendarJob, CalendarTarget, CheckoutLink, CheckoutRecord, CheckoutRequest, CheckoutSession, CheckoutTerms, Claim,
    Lock, PaymentOutcome, ReservationId, Resource, ResourceId, WrittenCalendar,
};
use slotguard::ports::{
    Attention, AttentionStore, BookingStore, CalendarQueue, ClaimOutcome, ClaimStore, CursorStore, DeadLetterReason,
    DeadLetters, EventCursor, HoldOutcome, IdempotencyStore, IdempotentAnswer, KeyUse, ListedEvent, PaymentError,
    PaymentStore, Payments, QueueError, RefundCause, RefundSeen, ReservationHistory, ReservationRecord, ResourceStore,
    SessionState, StoreError,
};
use slotguard::ports::{BookingEvent, Calendar, CalendarError, DeleteOutcome, FoundEvent, WriteOutcome};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};

/// What happens to one port call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Call the real adapter.
    Proceed,
    /// Return the port's transient error without calling (throttling,
    /// unreachable, Stripe 5xx/429, SQS send failure, CalDAV 5xx).
    FailBefore,
    /// Call the real adapter, then return the transient error anyway: a
    /// timeout after the effect happened.
    FailAfter,
    /// Like `FailBefore`, and every later call of the op fails the same way
    /// without effect: the Lambda died here, no cleanup runs.
    Crash,
    /// Park the op here until the scheduler resumes it, then call.
    Pause,
    /// Park the op at its next conditional write (here, or at the first
    /// write after here): the window between a handler's read and the write
    /// that depends on it, where races live.
    PauseAtWrite,
}

impl Decision {
    pub fn is_pause(self) -> bool {
        matches!(self, Decision::Pause | Decision::PauseAtWrite)
    }

    pub fn short(self) -> &'static str {
        match self {
            Decision::Proceed => "ok",
            Decision::FailBefore => "fail-before",
            Decision::FailAfter => "fail-after",
            Decision::Crash => "crash",
            Decision::Pause => "pause",
            Decision::PauseAtWrite => "pause-at-write",
        }
    }
}

/// Switches shared by every op of one history.
#[derive(Debug)]
pub struct Ctl {
    /// Off in the quiesce phase: every call proceeds.
    pub faults: AtomicBool,
    /// Off while parked ops are being run to completion.
    pub pauses: AtomicBool,
    /// How many ops are parked right now (kept by the scheduler).
    pub parked: AtomicUsize,
    pub max_parked: usize,
}

impl Ctl {
    pub fn new(max_parked: usize) -> Arc<Self> {
        Arc::new(Self {
            faults: AtomicBool::new(true),
            pauses: AtomicBool::new(true),
            parked: AtomicUsize::new(0),
            max_parked,
        })
    }
}

/// A decision that fired (anything but `Proceed`), for the step log.
#[derive(Debug, Clone)]
pub struct Fired {
    pub call: usize,
    pub port: &'static str,
    pub decision: Decision,
}

impl std::fmt::Display for Fired {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}#{}", self.decision.short(), self.port, self.call + 1)
    }
}

/// The op a port call belongs to.
pub struct OpCtx {
    pub op: usize,
    script: Vec<Decision>,
    calls: AtomicUsize,
    crashed: AtomicBool,
    /// A `PauseAtWrite` met a read: park at the next write.
    armed: AtomicBool,
    pub fired: Mutex<Vec<Fired>>,
    ctl: Arc<Ctl>,
    signal: mpsc::UnboundedSender<Signal>,
}

impl OpCtx {
    pub fn new(op: usize, script: Vec<Decision>, ctl: Arc<Ctl>, signal: mpsc::UnboundedSender<Signal>) -> Self {
        Self {
            op,
            script,
            calls: AtomicUsize::new(0),
            crashed: AtomicBool::new(false),
            armed: AtomicBool::new(false),
            fired: Mutex::new(Vec::new()),
            ctl,
            signal,
        }
    }

    pub fn fired(&self) -> Vec<Fired> {
        self.fired.lock().unwrap().clone()
    }

    /// Whether a failure (not a pause) was injected into this op.
    pub fn failed(&self) -> bool {
        self.fired.lock().unwrap().iter().any(|f| !f.decision.is_pause())
    }

    pub fn paused(&self) -> bool {
        self.fired.lock().unwrap().iter().any(|f| f.decision.is_pause())
    }

    fn note(&self, call: usize, port: &'static str, decision: Decision) {
        self.fired.lock().unwrap().push(Fired { call, port, decision });
    }
}

tokio::task_local! {
    pub static OP: Arc<OpCtx>;
}

/// What a wrapper does after the hook.
pub enum Act {
    Call,
    FailBefore,
    FailAfter,
}

/// The port calls that write conditionally on what the op read before.
const WRITES: &[&str] = &[
    "place_hold",
    "start_checkout",
    "attach_checkout",
    "confirm_paid",
    "decide_refund",
    "hold_for_pending_payment",
    "release",
    "retire_hold",
    "record_unpaid_outcome",
    "start_cancel",
    "cancel_booking",
    "reschedule",
    "record_calendar_write",
    "put_event",
    "delete_event",
    "advance_event_cursor",
];

/// Takes the current op's next decision for a call to `port` (parking here
/// for a `Pause`).
pub async fn hook(port: &'static str) -> Act {
    let Ok(ctx) = OP.try_with(Arc::clone) else {
        return Act::Call;
    };
    let call = ctx.calls.fetch_add(1, Ordering::SeqCst);
    if !ctx.ctl.faults.load(Ordering::SeqCst) {
        return Act::Call;
    }
    if ctx.crashed.load(Ordering::SeqCst) {
        return Act::FailBefore;
    }
    let mut decision = ctx.script.get(call).copied().unwrap_or(Decision::Proceed);
    if decision == Decision::PauseAtWrite || (decision == Decision::Proceed && ctx.armed.load(Ordering::SeqCst)) {
        let write = WRITES.contains(&port);
        ctx.armed.store(!write, Ordering::SeqCst);
        decision = if write { Decision::PauseAtWrite } else { Decision::Proceed };
    }
    match decision {
        Decision::Proceed => Act::Call,
        d @ Decision::FailBefore => {
            ctx.note(call, port, d);
            Act::FailBefore
        }
        d @ Decision::FailAfter => {
            ctx.note(call, port, d);
            Act::FailAfter
        }
        d @ Decision::Crash => {
            ctx.note(call, port, d);
            ctx.crashed.store(true, Ordering::SeqCst);
            Act::FailBefore
        }
        d @ (Decision::Pause | Decision::PauseAtWrite) => {
            if !ctx.ctl.pauses.load(Ordering::SeqCst) || ctx.ctl.parked.load(Ordering::SeqCst) >= ctx.ctl.max_parked {
                return Act::Call;
            }
            ctx.note(call, port, d);
            let (resume, resumed) = oneshot::channel();
            if ctx.signal.send(Signal::Parked { op: ctx.op, resume }).is_ok() {
                // A dropped sender (the history was abandoned) also resumes.
                let _ = resumed.await;
            }
            Act::Call
        }
    }
}

/// A port adapter behind the fault hook.
#[derive(Debug, Clone)]
pub struct Faulty<T>(pub T);

macro_rules! faulty {
    ($port:literal, $call:expr, $err:expr) => {
        match hook($port).await {
            Act::Call => $call.await,
            Act::FailBefore => Err($err),
            Act::FailAfter => {
                let _ = $call.await;
                Err($err)
            }
        }
    };
}

fn store(port: &'static str) -> StoreError {
    StoreError::Unavailable { op: port, source: "injected fault".into() }
}

fn payment(port: &'static str) -> PaymentError {
    PaymentError::Unavailable(format!("{port}: injected fault").into())
}

fn queue(port: &'static str) -> QueueError {
    QueueError(format!("{port}: injected fault").into())
}

fn calendar(port: &'static str) -> CalendarError {
    CalendarError::Transient { kind: "injected", message: format!("{port}: injected fault") }
}

impl<T: ResourceStore> ResourceStore for Faulty<T> {
    async fn get_resource(&self, id: &ResourceId) -> Result<Option<Resource>, StoreError> {
        faulty!("get_resource", self.0.get_resource(id), store("get_resource"))
    }
    async fn cached_resource(&self, id: &ResourceId, now: DateTime<Utc>) -> Result<Option<Resource>, StoreError> {
        faulty!("cached_resource", self.0.cached_resource(id, now), store("cached_resource"))
    }
    async fn put_resource(&self, resource: &Resource) -> Result<(), StoreError> {
        faulty!("put_resource", self.0.put_resource(resource), store("put_resource"))
    }
    async fn list_resources(&self) -> Result<Vec<Resource>, StoreError> {
        faulty!("list_resources", self.0.list_resources(), store("list_resources"))
    }
}

/// Busy time passes straight through (the harness has no busy-time resources).
impl<T: slotguard::ports::BusyStore> slotguard::ports::BusyStore for Faulty<T> {
    async fn busy_snapshot(&self, id: &ResourceId) -> Result<Option<slotguard::ports::BusySnapshot>, StoreError> {
        self.0.busy_snapshot(id).await
    }
    async fn save_busy_snapshot(
        &self,
        snapshot: &slotguard::ports::BusySnapshot,
        expires_at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.0.save_busy_snapshot(snapshot, expires_at).await
    }
}

impl<T: ClaimStore> ClaimStore for Faulty<T> {
    async fn place_hold(
        &self,
        claim: &Claim,
        answer: Option<&IdempotentAnswer>,
        now: DateTime<Utc>,
    ) -> Result<HoldOutcome, StoreError> {
        faulty!("place_hold", self.0.place_hold(claim, answer, now), store("place_hold"))
    }
    async fn get_claim(&self, id: &ReservationId) -> Result<Option<Claim>, StoreError> {
        faulty!("get_claim", self.0.get_claim(id), store("get_claim"))
    }
    async fn cells_on_day(&self, resource: &ResourceId, day: NaiveDate) -> Result<Vec<Lock>, StoreError> {
        faulty!("cells_on_day", self.0.cells_on_day(resource, day), store("cells_on_day"))
    }
    async fn day_tokens(&self, resource: &ResourceId, kind: &str, date: NaiveDate) -> Result<Vec<Lock>, StoreError> {
        faulty!("day_tokens", self.0.day_tokens(resource, kind, date), store("day_tokens"))
    }
}

impl<T: ReservationHistory> ReservationHistory for Faulty<T> {
    async fn record_reservation(&self, record: &ReservationRecord) -> Result<(), StoreError> {
        faulty!("record_reservation", self.0.record_reservation(record), store("record_reservation"))
    }
    async fn get_reservation_record(&self, id: &ReservationId) -> Result<Option<ReservationRecord>, StoreError> {
        faulty!("get_reservation_record", self.0.get_reservation_record(id), store("get_reservation_record"))
    }
}

impl<T: IdempotencyStore> IdempotencyStore for Faulty<T> {
    async fn key_use(&self, key: &str, payload_hash: &str, now: DateTime<Utc>) -> Result<Option<KeyUse>, StoreError> {
        faulty!("key_use", self.0.key_use(key, payload_hash, now), store("key_use"))
    }
}

impl<T: PaymentStore + ClaimStore> PaymentStore for Faulty<T> {
    async fn start_checkout(
        &self,
        claim: &Claim,
        terms: &CheckoutTerms,
        hold_expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        faulty!("start_checkout", self.0.start_checkout(claim, terms, hold_expires_at, now), store("start_checkout"))
    }
    async fn attach_checkout(
        &self,
        claim: &Claim,
        record: &CheckoutRecord,
        link: &CheckoutLink,
    ) -> Result<bool, StoreError> {
        faulty!("attach_checkout", self.0.attach_checkout(claim, record, link), store("attach_checkout"))
    }
    async fn checkout_record(&self, reservation_id: &ReservationId) -> Result<Option<CheckoutRecord>, StoreError> {
        faulty!("checkout_record", self.0.checkout_record(reservation_id), store("checkout_record"))
    }
    async fn payment_outcome(&self, session_id: &str) -> Result<Option<PaymentOutcome>, StoreError> {
        faulty!("payment_outcome", self.0.payment_outcome(session_id), store("payment_outcome"))
    }
    async fn session_state(
        &self,
        reservation_id: &ReservationId,
        session_id: &str,
    ) -> Result<SessionState, StoreError> {
        faulty!("session_state", self.0.session_state(reservation_id, session_id), store("session_state"))
    }
    async fn confirm_paid(
        &self,
        confirmed: &Claim,
        session_id: &str,
        now: DateTime<Utc>,
    ) -> Result<ClaimOutcome, StoreError> {
        faulty!("confirm_paid", self.0.confirm_paid(confirmed, session_id, now), store("confirm_paid"))
    }
    async fn decide_refund(
        &self,
        session_id: &str,
        reservation_id: &ReservationId,
        cause: RefundCause,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        faulty!("decide_refund", self.0.decide_refund(session_id, reservation_id, cause, now), store("decide_refund"))
    }
    async fn hold_for_pending_payment(
        &self,
        pending: &Claim,
        session_id: &str,
        now: DateTime<Utc>,
    ) -> Result<ClaimOutcome, StoreError> {
        faulty!(
            "hold_for_pending_payment",
            self.0.hold_for_pending_payment(pending, session_id, now),
            store("hold_for_pending_payment")
        )
    }
    async fn release(
        &self,
        claim: &Claim,
        record: &ReservationRecord,
        session_id: &str,
        outcome: PaymentOutcome,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        faulty!("release", self.0.release(claim, record, session_id, outcome, now), store("release"))
    }
    async fn retire_hold(
        &self,
        claim: &Claim,
        record: &ReservationRecord,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        faulty!("retire_hold", self.0.retire_hold(claim, record, now), store("retire_hold"))
    }
    async fn record_unpaid_outcome(
        &self,
        session_id: &str,
        reservation_id: &ReservationId,
        outcome: PaymentOutcome,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        faulty!(
            "record_unpaid_outcome",
            self.0.record_unpaid_outcome(session_id, reservation_id, outcome, now),
            store("record_unpaid_outcome")
        )
    }
}

impl<T: BookingStore> BookingStore for Faulty<T> {
    async fn record_calendar_write(
        &self,
        reservation_id: &ReservationId,
        event_ref: &str,
        calendars: &[WrittenCalendar],
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        faulty!(
            "record_calendar_write",
            self.0.record_calendar_write(reservation_id, event_ref, calendars, at),
            store("record_calendar_write")
        )
    }
    async fn start_cancel(
        &self,
        reservation_id: &ReservationId,
        version: u32,
        refund_amount: i64,
    ) -> Result<bool, StoreError> {
        faulty!("start_cancel", self.0.start_cancel(reservation_id, version, refund_amount), store("start_cancel"))
    }
    async fn cancel_booking(&self, booking: &Claim, record: &ReservationRecord) -> Result<bool, StoreError> {
        faulty!("cancel_booking", self.0.cancel_booking(booking, record), store("cancel_booking"))
    }
    async fn reschedule(&self, current: &Claim, moved: &Claim, now: DateTime<Utc>) -> Result<ClaimOutcome, StoreError> {
        faulty!("reschedule", self.0.reschedule(current, moved, now), store("reschedule"))
    }
}

impl<T: AttentionStore> AttentionStore for Faulty<T> {
    async fn raise_attention(&self, attention: &Attention) -> Result<(), StoreError> {
        faulty!("raise_attention", self.0.raise_attention(attention), store("raise_attention"))
    }
    async fn list_attention(&self) -> Result<Vec<Attention>, StoreError> {
        faulty!("list_attention", self.0.list_attention(), store("list_attention"))
    }
}

impl<T: CursorStore> CursorStore for Faulty<T> {
    async fn event_cursor(&self) -> Result<Option<EventCursor>, StoreError> {
        faulty!("event_cursor", self.0.event_cursor(), store("event_cursor"))
    }
    async fn advance_event_cursor(&self, read: Option<&EventCursor>, to: &EventCursor) -> Result<bool, StoreError> {
        faulty!("advance_event_cursor", self.0.advance_event_cursor(read, to), store("advance_event_cursor"))
    }
}

impl<T: Payments> Payments for Faulty<T> {
    async fn create_checkout_session(&self, request: &CheckoutRequest) -> Result<CheckoutSession, PaymentError> {
        faulty!("create_checkout_session", self.0.create_checkout_session(request), payment("create_checkout_session"))
    }
    async fn refund_payment(
        &self,
        payment_intent: &str,
        idempotency_key: &str,
        reservation_id: &ReservationId,
        cause: RefundCause,
        amount: Option<i64>,
    ) -> Result<String, PaymentError> {
        faulty!(
            "refund_payment",
            self.0.refund_payment(payment_intent, idempotency_key, reservation_id, cause, amount),
            payment("refund_payment")
        )
    }
    async fn refunds_of(&self, payment_intent: &str) -> Result<Vec<RefundSeen>, PaymentError> {
        faulty!("refunds_of", self.0.refunds_of(payment_intent), payment("refunds_of"))
    }
    async fn session_events_since(&self, since: DateTime<Utc>) -> Result<Vec<ListedEvent>, PaymentError> {
        faulty!("session_events_since", self.0.session_events_since(since), payment("session_events_since"))
    }
}

impl<T: CalendarQueue> CalendarQueue for Faulty<T> {
    async fn enqueue(&self, job: &CalendarJob) -> Result<(), QueueError> {
        faulty!("enqueue", self.0.enqueue(job), queue("enqueue"))
    }
}

impl<T: DeadLetters> DeadLetters for Faulty<T> {
    async fn send_dead_letter(&self, body: &str, reason: &DeadLetterReason) -> Result<(), QueueError> {
        faulty!("send_dead_letter", self.0.send_dead_letter(body, reason), queue("send_dead_letter"))
    }
}

impl<T: Calendar> Calendar for Faulty<T> {
    async fn put_event(&self, target: &CalendarTarget, event: &BookingEvent) -> Result<WriteOutcome, CalendarError> {
        faulty!("put_event", self.0.put_event(target, event), calendar("put_event"))
    }
    async fn delete_event(
        &self,
        target: &CalendarTarget,
        reservation_id: &ReservationId,
    ) -> Result<DeleteOutcome, CalendarError> {
        faulty!("delete_event", self.0.delete_event(target, reservation_id), calendar("delete_event"))
    }
    async fn list_events(
        &self,
        target: &CalendarTarget,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<FoundEvent>, CalendarError> {
        faulty!("list_events", self.0.list_events(target, from, to), calendar("list_events"))
    }
}
