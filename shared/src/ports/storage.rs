//! What the flows need from storage, one small trait per concern.
//!
//! Each flow asks only for the traits it uses;
//! [`DynamoStore`](crate::adapters::dynamo::DynamoStore) implements them all
//! against one DynamoDB table.

use super::Cause;
use crate::domain::{
    CheckoutLink, CheckoutRecord, CheckoutTerms, Claim, ClaimStatus, Lock, MAX_BLOCKED_MINUTES, PaymentOutcome,
    RefundCause, ReservationId, ReservationStatus, Resource, ResourceId, SecretHash, WrittenCalendar,
};
use chrono::{DateTime, NaiveDate, Utc};
use std::future::Future;

/// A storage failure, classified by what the caller should do about it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Throttled, timed out or unreachable: the client should retry later (503).
    #[error("{op}: storage unavailable")]
    Unavailable {
        op: &'static str,
        #[source]
        source: Cause,
    },
    /// A stored item that this code cannot read: a bug or a manual edit (500).
    #[error("{op}: malformed item")]
    Corrupt {
        op: &'static str,
        #[source]
        source: Cause,
    },
    /// Any other failure of the storage request (500).
    #[error("{op}: storage request failed")]
    Failed {
        op: &'static str,
        #[source]
        source: Cause,
    },
}

/// Reads and writes resource definitions.
pub trait ResourceStore: Send + Sync {
    /// The resource as stored: one consistent `GetItem`.
    fn get_resource(&self, id: &ResourceId) -> impl Future<Output = Result<Option<Resource>, StoreError>> + Send;
    /// The resource as this process read it at most [`RESOURCE_CACHE_AGE`]
    /// before `now`, else read now (and kept). Only for accepting a hold:
    /// whatever it accepts under settings changed since is checked again,
    /// against the stored settings, before any money moves (checkout).
    fn cached_resource(
        &self,
        id: &ResourceId,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Option<Resource>, StoreError>> + Send {
        let _ = now;
        self.get_resource(id)
    }
    /// Creates or replaces a resource.
    fn put_resource(&self, resource: &Resource) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Every resource (a filtered Scan: resources are few, and only
    /// reconcile, a scheduled job, lists them).
    fn list_resources(&self) -> impl Future<Output = Result<Vec<Resource>, StoreError>> + Send;
}

/// The result of a write that claims locks (a hold, a payment's claim, a reschedule).
#[derive(Debug)]
pub enum ClaimOutcome {
    /// Written.
    Done,
    /// Someone else holds a live lock the booking needs: this one.
    Taken { by: Box<Lock> },
    /// Another condition failed (the booking changed since it was read, or
    /// the session already has an outcome): nothing written; read again.
    Stale,
}

/// The result of [`ClaimStore::place_hold`].
#[derive(Debug)]
pub enum HoldOutcome {
    /// Written: the hold, its locks, and the answer's record.
    Placed,
    /// Someone else holds a live lock the hold needs: this one.
    Taken { by: Box<Lock> },
    /// The idempotency key already has a live record: nothing written.
    KeyUsed(KeyUse),
    /// The booking id is taken (never, for a fresh random id): nothing written.
    Stale,
}

/// Bookings and their locks: the items that make overlapping bookings impossible.
///
/// A booking (its claim item) is found by reservation id. Whether two
/// bookings conflict is decided only by their locks (see [`Claim::locks`]):
/// every write that makes a booking live writes all its locks in the same
/// transaction, each conditioned on being free (absent, or a hold's lock
/// past its expiry) or already the booking's own.
pub trait ClaimStore: Send + Sync {
    /// Writes `claim` (status HELD, with `expires_at`) and all its locks, and
    /// `answer`'s idempotency record if given, in one transaction: only if
    /// every lock is free at `now` and the key has no live record.
    fn place_hold(
        &self,
        claim: &Claim,
        answer: Option<&IdempotentAnswer>,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<HoldOutcome, StoreError>> + Send;
    /// A reservation's booking, live or not, read consistently: one `GetItem`.
    fn get_claim(&self, id: &ReservationId) -> impl Future<Output = Result<Option<Claim>, StoreError>> + Send;
    /// The reservation's booking if it is confirmed right now.
    fn confirmed_booking(&self, id: &ReservationId) -> impl Future<Output = Result<Option<Claim>, StoreError>> + Send {
        async move { Ok(self.get_claim(id).await?.filter(|c| c.status == ClaimStatus::Confirmed)) }
    }
    /// Every cell lock of `resource` on the UTC date `day`, live or not: one Query.
    fn cells_on_day(
        &self,
        resource: &ResourceId,
        day: NaiveDate,
    ) -> impl Future<Output = Result<Vec<Lock>, StoreError>> + Send;
    /// Every day token of `booking_type` on the local `date`, live or not: one Query.
    fn day_tokens(
        &self,
        resource: &ResourceId,
        booking_type: &str,
        date: NaiveDate,
    ) -> impl Future<Output = Result<Vec<Lock>, StoreError>> + Send;
    /// Every lock of `resource` in the UTC days `[from, to)` touches, live or
    /// not: one Query per day, concurrently.
    fn locks_between(
        &self,
        resource: &ResourceId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<Lock>, StoreError>> + Send {
        async move {
            let last = (to - chrono::Duration::seconds(1)).date_naive();
            let days: Vec<NaiveDate> = from.date_naive().iter_days().take_while(|d| *d <= last).collect();
            let read = futures::future::try_join_all(days.iter().map(|d| self.cells_on_day(resource, *d))).await?;
            Ok(read.into_iter().flatten().collect())
        }
    }
    /// The bookings of `resource` live at `now` whose start is in `[from, to)`,
    /// found through their cells (one Query per UTC day), then read by id.
    fn bookings_between(
        &self,
        resource: &ResourceId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<Claim>, StoreError>> + Send {
        async move {
            // A booking's first cell is at most its buffer before its start.
            let first = from - chrono::Duration::minutes(MAX_BLOCKED_MINUTES.into());
            let cells = self.locks_between(resource, first, to + chrono::Duration::seconds(1)).await?;
            let ids: std::collections::BTreeSet<ReservationId> = cells
                .into_iter()
                .filter(|l| l.is_live(now) && l.start >= from && l.start < to)
                .map(|l| l.reservation_id)
                .collect();
            let claims = futures::future::try_join_all(ids.iter().map(|id| self.get_claim(id))).await?;
            let mut claims: Vec<Claim> = claims.into_iter().flatten().filter(|c| c.is_live(now)).collect();
            claims.sort_by_key(|c| c.slot.start);
            Ok(claims)
        }
    }
}

/// A reservation that no longer owns its slot's claim item, kept so its
/// customer can still read what became of it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReservationRecord {
    pub reservation_id: ReservationId,
    /// The booking's last interval (a reschedule moves it from the id's start).
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub status: ReservationStatus,
    pub amount: i64,
    pub currency: String,
    pub recorded_at: DateTime<Utc>,
    /// A cancelled booking keeps its secret's hash, so a repeated cancel is
    /// authorised like the first one.
    pub secret_hash: Option<SecretHash>,
    /// The calendars the booking's event was on when it ended (a cancelled
    /// booking's event is removed from these).
    pub calendars: Vec<WrittenCalendar>,
}

/// History of reservations whose claim item was overwritten or removed.
pub trait ReservationHistory: Send + Sync {
    fn record_reservation(&self, record: &ReservationRecord) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn get_reservation_record(
        &self,
        id: &ReservationId,
    ) -> impl Future<Output = Result<Option<ReservationRecord>, StoreError>> + Send;
}

/// A response saved under an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedResponse {
    pub status: u16,
    pub body: String,
    pub location: Option<String>,
}

/// The answer to an idempotent request, written in the same transaction as
/// the work it answers for: the work and its record exist together or not
/// at all, so there is no IN_PROGRESS state to wait for or to clean up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotentAnswer {
    /// The record's key: scope and the client's key (`reserve#{key}`).
    pub key: String,
    pub payload_hash: String,
    pub response: SavedResponse,
    /// When the key may be used afresh (the table's TTL attribute).
    pub expires_at: DateTime<Utc>,
}

/// What a live idempotency record says about a request with its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyUse {
    /// The same payload completed earlier with this response: replay it.
    Replay(SavedResponse),
    /// The key was used with a different payload.
    OtherPayload,
}

/// Idempotency records, read back: the write is part of the work's own
/// transaction (see [`ClaimStore::place_hold`]).
pub trait IdempotencyStore: Send + Sync {
    /// What the live record of `key` (unexpired at `now`) says about a
    /// request with `payload_hash`; `None` if there is none. One `GetItem`.
    fn key_use(
        &self,
        key: &str,
        payload_hash: &str,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Option<KeyUse>, StoreError>> + Send;
}

/// What a Checkout Session event is decided from, read together: the
/// reservation's checkout record, the session's recorded outcome, and the
/// reservation's booking item.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionState {
    pub checkout: Option<CheckoutRecord>,
    pub outcome: Option<PaymentOutcome>,
    pub claim: Option<Claim>,
}

/// Claim transitions driven by checkout and payment. Every write is
/// conditional on the claim's current owner and state, and every session
/// outcome is written at most once, so running any of them twice, or racing
/// two of them, cannot produce a second owner or a second outcome.
pub trait PaymentStore: Send + Sync {
    /// Fixes the Checkout Session's parameters on a live hold and extends the
    /// hold to `hold_expires_at`: only if the hold is still `claim`'s, HELD,
    /// unexpired at `now`, unchanged since `claim` was read, and either has no
    /// terms yet or still has `claim`'s terms with no session stored under
    /// them (re-fixing stale terms). `Ok(false)` when that condition failed.
    fn start_checkout(
        &self,
        claim: &Claim,
        terms: &CheckoutTerms,
        hold_expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Records the reservation's own Checkout Session (once; the same session
    /// again is a no-op), then stores its link on the claim if the claim is
    /// still the reservation's. `Ok(false)` if another session is already
    /// recorded for the reservation.
    fn attach_checkout(
        &self,
        claim: &Claim,
        record: &CheckoutRecord,
        link: &CheckoutLink,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// The Checkout Session slotguard created for a reservation, if any.
    fn checkout_record(
        &self,
        reservation_id: &ReservationId,
    ) -> impl Future<Output = Result<Option<CheckoutRecord>, StoreError>> + Send;
    /// The outcome already recorded for a session, if any.
    fn payment_outcome(
        &self,
        session_id: &str,
    ) -> impl Future<Output = Result<Option<PaymentOutcome>, StoreError>> + Send;
    /// [`Self::checkout_record`], [`Self::payment_outcome`] and
    /// [`ClaimStore::get_claim`] at once, each read consistently (the table
    /// does it in one `BatchGetItem`).
    fn session_state(
        &self,
        reservation_id: &ReservationId,
        session_id: &str,
    ) -> impl Future<Output = Result<SessionState, StoreError>> + Send
    where
        Self: ClaimStore,
    {
        async move {
            let (checkout, outcome, claim) = futures::future::try_join3(
                self.checkout_record(reservation_id),
                self.payment_outcome(session_id),
                self.get_claim(reservation_id),
            )
            .await?;
            Ok(SessionState { checkout, outcome, claim })
        }
    }
    /// In one transaction: writes `confirmed` (status CONFIRMED, no TTL) and
    /// all its locks if each is free or already this reservation's, and
    /// records the session's outcome as CONFIRMED if none is recorded.
    fn confirm_paid(
        &self,
        confirmed: &Claim,
        session_id: &str,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<ClaimOutcome, StoreError>> + Send;
    /// Records the session's outcome as REFUNDED for `cause` if none is
    /// recorded, or if the recorded one took no money (FAILED, EXPIRED: a
    /// payment that shows up after that is returned, never honoured).
    /// `Ok(false)` otherwise.
    fn decide_refund(
        &self,
        session_id: &str,
        reservation_id: &ReservationId,
        cause: RefundCause,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// In one transaction: writes `pending` (status PAYMENT_PENDING, no TTL)
    /// and all its locks if each is free or held by this reservation, and
    /// only while `session_id` has no recorded outcome.
    fn hold_for_pending_payment(
        &self,
        pending: &Claim,
        session_id: &str,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<ClaimOutcome, StoreError>> + Send;
    /// In one transaction: records `outcome` (FAILED or EXPIRED) for the
    /// session if none is recorded, deletes `claim` (as read) if it is still
    /// HELD or PAYMENT_PENDING, with its locks if it is live at `now` (an
    /// expired hold's locks are free already and may be someone else's),
    /// and writes `record`. `Ok(false)` if a condition failed (nothing written).
    fn release(
        &self,
        claim: &Claim,
        record: &ReservationRecord,
        session_id: &str,
        outcome: PaymentOutcome,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// In one transaction: deletes `claim` if it is still HELD or
    /// PAYMENT_PENDING, with its locks if it is live at `now`, and writes
    /// `record` (a paid session of the reservation was refunded: its hold
    /// must not outlive it). `Ok(false)` if there was no such claim.
    fn retire_hold(
        &self,
        claim: &Claim,
        record: &ReservationRecord,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Records an unpaid `outcome` (FAILED or EXPIRED) for a session whose
    /// reservation has no claim to release. `Ok(false)` if one was recorded.
    fn record_unpaid_outcome(
        &self,
        session_id: &str,
        reservation_id: &ReservationId,
        outcome: PaymentOutcome,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// Bookings after confirmation: their calendar event and their cancellation.
pub trait BookingStore: Send + Sync {
    /// Notes where the booking's calendar event lives; only while the claim
    /// is still this reservation's confirmed booking.
    fn record_calendar_write(
        &self,
        reservation_id: &ReservationId,
        event_ref: &str,
        calendars: &[WrittenCalendar],
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Records the intent to cancel and what it refunds: the booking goes
    /// from CONFIRMED to CANCELLING with `refund_amount` if it is still
    /// confirmed at `version` (not moved since it was read: the amount was
    /// decided from that start). `Ok(false)` if it was not.
    fn start_cancel(
        &self,
        reservation_id: &ReservationId,
        version: u32,
        refund_amount: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// In one transaction: deletes `booking` and its locks if it is
    /// CANCELLING, and writes `record` (status cancelled). `Ok(false)` if
    /// there was no such booking (nothing written).
    fn cancel_booking(
        &self,
        booking: &Claim,
        record: &ReservationRecord,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Moves a confirmed booking in one transaction: writes `moved` (the same
    /// reservation at its new interval, `version` one higher) only if the
    /// booking is still `current` (CONFIRMED at `current.version`), claims
    /// every lock of `moved` that is free or already the booking's, and
    /// deletes the booking's locks `moved` no longer needs. All or nothing.
    fn reschedule(
        &self,
        current: &Claim,
        moved: &Claim,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<ClaimOutcome, StoreError>> + Send;
}

/// Something only a person can settle: a refund Stripe refused, a paid
/// session with nothing to refund. Kept in the table (`slotguard attention`
/// lists them) and counted by the `NeedsAttention` metric, whose alarm pages
/// the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attention {
    /// What the item is about, unique per problem (e.g. `refund-{session}`),
    /// so raising it twice keeps one item.
    pub reference: String,
    /// `refund_rejected`, `paid_without_payment_intent`, ...
    pub kind: String,
    pub reservation_id: Option<ReservationId>,
    pub detail: String,
    pub raised_at: DateTime<Utc>,
}

/// The operator queue.
pub trait AttentionStore: Send + Sync {
    /// Records `attention` unless an item with its reference exists.
    fn raise_attention(&self, attention: &Attention) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Every open item, oldest first.
    fn list_attention(&self) -> impl Future<Output = Result<Vec<Attention>, StoreError>> + Send;
}

/// How long [`ResourceStore::cached_resource`] trusts what it read.
pub const RESOURCE_CACHE_AGE: chrono::Duration = chrono::Duration::seconds(60);

/// Resources read by this process, each kept [`RESOURCE_CACHE_AGE`]; at most
/// [`ResourceCache::CAPACITY`] of them (then it starts over). Clones share it.
#[derive(Debug, Clone, Default)]
pub struct ResourceCache {
    entries: std::sync::Arc<std::sync::Mutex<CachedResources>>,
}

/// Each cached resource with the instant it was read.
type CachedResources = std::collections::HashMap<ResourceId, (DateTime<Utc>, Resource)>;

impl ResourceCache {
    /// How many resources one process keeps.
    pub const CAPACITY: usize = 1024;

    /// `id` as read less than [`RESOURCE_CACHE_AGE`] before `now`.
    pub fn get(&self, id: &ResourceId, now: DateTime<Utc>) -> Option<Resource> {
        let entries = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        entries
            .get(id)
            .filter(|(read_at, _)| now >= *read_at && now - *read_at < RESOURCE_CACHE_AGE)
            .map(|(_, r)| r.clone())
    }

    /// Keeps `resource` as read at `now`.
    pub fn put(&self, resource: &Resource, now: DateTime<Utc>) {
        let mut entries = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if entries.len() >= Self::CAPACITY && !entries.contains_key(&resource.id) {
            entries.clear();
        }
        entries.insert(resource.id.clone(), (now, resource.clone()));
    }

    /// Forgets `id` (this process changed it).
    pub fn forget(&self, id: &ResourceId) {
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(id);
    }

    /// [`ResourceStore::cached_resource`] for a store that keeps this cache.
    pub async fn read_through<S: ResourceStore>(
        &self,
        store: &S,
        id: &ResourceId,
        now: DateTime<Utc>,
    ) -> Result<Option<Resource>, StoreError> {
        if let Some(resource) = self.get(id, now) {
            return Ok(Some(resource));
        }
        let resource = store.get_resource(id).await?;
        if let Some(r) = &resource {
            self.put(r, now);
        }
        Ok(resource)
    }
}
