//! [`MemoryStore`]: every storage port in memory, with the semantics of
//! [`DynamoStore`](crate::adapters::dynamo::DynamoStore).
//!
//! All tables sit behind one lock, so each call is atomic the way one
//! conditional write or one `TransactWriteItems` is: a transaction checks
//! every condition first and writes all or nothing. Times are kept as the
//! table reads them back (whole seconds) and conditions compare epoch
//! seconds, as the adapter's do.

use super::{Faults, lock};
use crate::domain::{
    CheckoutLink, CheckoutRecord, CheckoutTerms, Claim, ClaimStatus, Lock, LockKey, PaymentOutcome, ReservationId,
    Resource, ResourceId, SlotKey, WrittenCalendar,
};
use crate::ports::{
    Attention, AttentionStore, BookingStore, ClaimOutcome, ClaimStore, HoldOutcome, IdempotencyStore, IdempotentAnswer,
    KeyUse, PaymentStore, RefundCause, ReservationHistory, ReservationRecord, ResourceCache, ResourceStore,
    SavedResponse, StoreError,
};
use chrono::{DateTime, NaiveDate, Utc};
use std::collections::BTreeMap;
use std::sync::Mutex;

/// A claim item: the claim, and where its calendar event lives once written
/// (attributes only `record_calendar_write` sets; a put of the claim drops them).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ClaimItem {
    pub claim: Claim,
    pub calendar_event: Option<(String, DateTime<Utc>)>,
}

/// An idempotency record: the answer it replays.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct IdempotencyRecord {
    pub payload_hash: String,
    pub response: SavedResponse,
    pub expires_at: DateTime<Utc>,
}

impl IdempotencyRecord {
    /// Live at `now` (the adapter's `#expires_at < :now` frees it).
    fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.timestamp() >= now.timestamp()
    }

    fn key_use(&self, payload_hash: &str) -> KeyUse {
        if self.payload_hash == payload_hash { KeyUse::Replay(self.response.clone()) } else { KeyUse::OtherPayload }
    }
}

/// A session's recorded outcome.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OutcomeItem {
    pub outcome: PaymentOutcome,
    pub reservation_id: ReservationId,
    pub recorded_at: DateTime<Utc>,
}

/// Everything stored, comparable: tests take a [`MemoryStore::snapshot`]
/// before and after a call to see what it wrote.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Tables {
    pub resources: BTreeMap<ResourceId, Resource>,
    /// Booking items, keyed by reservation id as the table's are.
    pub claims: BTreeMap<ReservationId, ClaimItem>,
    /// Lock items (cells and day tokens), keyed by resource and lock.
    pub locks: BTreeMap<(ResourceId, LockKey), Lock>,
    pub records: BTreeMap<ReservationId, ReservationRecord>,
    pub idempotency: BTreeMap<String, IdempotencyRecord>,
    pub checkouts: BTreeMap<ReservationId, CheckoutRecord>,
    /// Keyed by Checkout Session id.
    pub outcomes: BTreeMap<String, OutcomeItem>,
    /// Keyed by reference.
    pub attention: BTreeMap<String, Attention>,
    /// Busy-time snapshots, by resource.
    pub busy: BTreeMap<ResourceId, crate::ports::BusySnapshot>,
    /// The catch-up's cursor.
    pub cursor: Option<crate::ports::EventCursor>,
}

impl Tables {
    /// The booking that holds the cell where `slot` starts and starts there, if any.
    pub fn claim(&self, slot: &SlotKey) -> Option<&Claim> {
        let lock = self.locks.get(&(slot.resource_id.clone(), LockKey::Cell(slot.start)))?;
        self.claim_of(&lock.reservation_id).filter(|c| &c.slot == slot)
    }

    /// The booking item of reservation `id`, if any.
    pub fn claim_item_of(&self, id: &ReservationId) -> Option<&ClaimItem> {
        self.claims.get(id)
    }

    /// The booking of reservation `id`, if any.
    pub fn claim_of(&self, id: &ReservationId) -> Option<&Claim> {
        self.claim_item_of(id).map(|item| &item.claim)
    }

    /// The outcome recorded for a session, if any.
    pub fn outcome(&self, session_id: &str) -> Option<PaymentOutcome> {
        self.outcomes.get(session_id).map(|o| o.outcome)
    }

    /// `attribute_not_exists` on a session's outcome item.
    fn no_outcome(&self, session_id: &str) -> bool {
        !self.outcomes.contains_key(session_id)
    }

    fn claim_mut(&mut self, id: &ReservationId) -> Option<&mut ClaimItem> {
        self.claims.get_mut(id)
    }

    fn put_claim(&mut self, claim: &Claim) {
        self.claims.insert(claim.reservation_id.clone(), ClaimItem { claim: as_stored(claim), calendar_event: None });
    }

    /// Writes `claim`'s lock items (held or booked as the claim is).
    fn put_locks(&mut self, claim: &Claim) {
        let claim = as_stored(claim);
        for (host, key) in claim.locks() {
            self.locks.insert((host.clone(), key.clone()), lock_of(&claim, host, key));
        }
    }

    /// The first of `claim`'s locks that `allowed` refuses, as it is stored.
    fn blocking_lock(&self, claim: &Claim, allowed: impl Fn(&Lock) -> bool) -> Option<Lock> {
        claim.locks().into_iter().filter_map(|lock| self.locks.get(&lock)).find(|lock| !allowed(lock)).cloned()
    }

    fn put_outcome(&mut self, session_id: &str, outcome: PaymentOutcome, id: &ReservationId, now: DateTime<Utc>) {
        let item = OutcomeItem { outcome, reservation_id: id.clone(), recorded_at: as_stored_time(now) };
        self.outcomes.insert(session_id.to_owned(), item);
    }

    fn put_record(&mut self, record: &ReservationRecord) {
        let record = ReservationRecord { recorded_at: as_stored_time(record.recorded_at), ..record.clone() };
        self.records.insert(record.reservation_id.clone(), record);
    }

    /// The adapter's `retire_items`: whether `claim`'s booking may be
    /// retired from `statuses` at `now`, and then deleting it (with its
    /// locks if it is live; an expired hold's locks are left, free).
    fn may_retire(&self, claim: &Claim, statuses: &[ClaimStatus], now: DateTime<Utc>) -> bool {
        let me = &claim.reservation_id;
        let Some(current) = self.claim_of(me) else { return false };
        if !claim.is_live(now) {
            return expired_hold(current, now);
        }
        statuses.contains(&current.status) && self.blocking_lock(claim, |l| &l.reservation_id == me).is_none()
    }

    fn retire(&mut self, claim: &Claim, record: &ReservationRecord, now: DateTime<Utc>) {
        self.claims.remove(&claim.reservation_id);
        if claim.is_live(now) {
            for lock in claim.locks() {
                self.locks.remove(&lock);
            }
        }
        self.put_record(record);
    }
}

/// `claim`'s lock item for `key`.
fn lock_of(claim: &Claim, host: ResourceId, key: LockKey) -> Lock {
    let held = claim.status == ClaimStatus::Held;
    Lock {
        resource_id: host,
        key,
        reservation_id: claim.reservation_id.clone(),
        booked: !held,
        expires_at: if held { claim.expires_at } else { None },
        booking_type: claim.terms.booking_type.clone(),
        start: claim.slot.start,
        end: claim.end,
        seat_group: None,
    }
}

/// The adapter's `LOCK_FREE`: a hold's lock past its expiry (epoch seconds) is free.
fn lock_free(lock: &Lock, now: DateTime<Utc>) -> bool {
    !lock.booked && lock.expires_at.is_some_and(|t| t.timestamp() <= now.timestamp())
}

/// The claims a payment's release or refund retires.
const HELD_OR_PENDING: &[ClaimStatus] = &[ClaimStatus::Held, ClaimStatus::PaymentPending];

/// An instant as the table reads it back: whole seconds.
fn as_stored_time(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(t.timestamp(), 0).expect("in range")
}

/// A claim as the table reads it back.
fn as_stored(claim: &Claim) -> Claim {
    Claim {
        expires_at: claim.expires_at.map(as_stored_time),
        created_at: as_stored_time(claim.created_at),
        checkout_terms: claim
            .checkout_terms
            .clone()
            .map(|t| CheckoutTerms { expires_at: as_stored_time(t.expires_at), ..t }),
        ..claim.clone()
    }
}

/// A HELD booking past its expiry: `#status = HELD AND #expires_at <= :now`, in epoch seconds.
fn expired_hold(claim: &Claim, now: DateTime<Utc>) -> bool {
    claim.status == ClaimStatus::Held && claim.expires_at.is_some_and(|t| t.timestamp() <= now.timestamp())
}

/// What a throttled or unreachable table answers `op` with.
pub(crate) fn unavailable(op: &'static str) -> StoreError {
    StoreError::Unavailable { op, source: "throttled".into() }
}

/// The condition of `start_checkout`: the hold is still `read`'s, HELD,
/// unexpired, unchanged since it was read, and has no terms yet or still the
/// terms read with no session stored under them (re-fixing stale terms).
fn checkout_may_start(current: &Claim, read: &Claim, now: DateTime<Utc>) -> bool {
    let expiry = current.expires_at.map(|e| e.timestamp());
    let terms_unchanged = match &read.checkout_terms {
        None => current.checkout_terms.is_none(),
        Some(terms) => {
            current.checkout_terms.as_ref().map(|c| c.expires_at.timestamp()) == Some(terms.expires_at.timestamp())
                && current.checkout.is_none()
        }
    };
    current.reservation_id == read.reservation_id
        && current.status == ClaimStatus::Held
        && expiry == Some(read.expires_at.map_or(0, |e| e.timestamp()))
        && expiry.is_some_and(|e| e > now.timestamp())
        && terms_unchanged
}

/// Storage in memory. See the module documentation.
#[derive(Default)]
pub(crate) struct MemoryStore {
    tables: Mutex<Tables>,
    faults: Faults<StoreError>,
    /// As the adapter's: what `cached_resource` read, per process.
    resources: ResourceCache,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// A store holding `resources`.
    pub fn with_resources(resources: impl IntoIterator<Item = Resource>) -> Self {
        let store = Self::new();
        lock(&store.tables).resources.extend(resources.into_iter().map(|r| (r.id.clone(), r)));
        store
    }

    /// Stores `resource` as another process would: this store's resource
    /// cache keeps what it read before.
    pub fn put_resource_elsewhere(&self, resource: Resource) {
        lock(&self.tables).resources.insert(resource.id.clone(), resource);
    }

    /// Makes the next call of storage operation `op` (a port method's name,
    /// e.g. `place_hold`) fail with `error`, writing nothing.
    pub fn fail_next(&self, op: &'static str, error: StoreError) {
        self.faults.push(op, error);
    }

    /// Everything stored right now.
    pub fn snapshot(&self) -> Tables {
        lock(&self.tables).clone()
    }

    /// Stores `claim` and its locks as they are, whatever was there (setting up a test).
    pub fn insert_claim(&self, claim: Claim) {
        let mut tables = lock(&self.tables);
        tables.put_claim(&claim);
        tables.put_locks(&claim);
    }

    /// Stores a reservation's checkout record as it is (setting up a test).
    pub fn insert_checkout_record(&self, record: CheckoutRecord) {
        lock(&self.tables).checkouts.insert(record.reservation_id.clone(), record);
    }

    /// Stores a reservation record as it is (setting up a test).
    pub fn insert_reservation_record(&self, record: ReservationRecord) {
        lock(&self.tables).put_record(&record);
    }

    /// Runs `write` on the tables unless a failure is scripted for `op`.
    fn with<T>(&self, op: &'static str, write: impl FnOnce(&mut Tables) -> T) -> Result<T, StoreError> {
        self.faults.take(op)?;
        Ok(write(&mut lock(&self.tables)))
    }

    /// A conditional write or a transaction: `write` runs only if
    /// `condition` holds; `Ok(false)`, nothing written, if it does not.
    fn write_if(
        &self,
        op: &'static str,
        condition: impl FnOnce(&Tables) -> bool,
        write: impl FnOnce(&mut Tables),
    ) -> Result<bool, StoreError> {
        self.with(op, |t| {
            let ok = condition(t);
            if ok {
                write(t);
            }
            ok
        })
    }
}

impl ResourceStore for MemoryStore {
    async fn get_resource(&self, id: &ResourceId) -> Result<Option<Resource>, StoreError> {
        self.with("get_resource", |t| t.resources.get(id).cloned())
    }

    async fn cached_resource(&self, id: &ResourceId, now: DateTime<Utc>) -> Result<Option<Resource>, StoreError> {
        self.resources.read_through(self, id, now).await
    }

    async fn put_resource(&self, resource: &Resource) -> Result<(), StoreError> {
        self.resources.forget(&resource.id);
        self.with("put_resource", |t| {
            t.resources.insert(resource.id.clone(), resource.clone());
        })
    }

    async fn list_resources(&self) -> Result<Vec<Resource>, StoreError> {
        self.with("list_resources", |t| t.resources.values().cloned().collect())
    }
}

impl ClaimStore for MemoryStore {
    async fn place_hold(
        &self,
        claim: &Claim,
        answer: Option<&IdempotentAnswer>,
        now: DateTime<Utc>,
    ) -> Result<HoldOutcome, StoreError> {
        if claim.seat.is_some() {
            // Seat groups share cells through conditional counters only the
            // DynamoDB adapter models; seats are tested against DynamoDB Local.
            return Err(StoreError::Failed { op: "place_hold", source: "seats need the DynamoDB store".into() });
        }
        self.with("place_hold", |t| {
            if let Some(answer) = answer
                && let Some(record) = t.idempotency.get(&answer.key).filter(|r| r.is_live(now))
            {
                return HoldOutcome::KeyUsed(record.key_use(&answer.payload_hash));
            }
            if t.claims.contains_key(&claim.reservation_id) {
                return HoldOutcome::Stale;
            }
            if let Some(by) = t.blocking_lock(claim, |l| lock_free(l, now)) {
                return HoldOutcome::Taken { by: Box::new(by) };
            }
            t.put_claim(claim);
            t.put_locks(claim);
            if let Some(answer) = answer {
                let record = IdempotencyRecord {
                    payload_hash: answer.payload_hash.clone(),
                    response: answer.response.clone(),
                    expires_at: as_stored_time(answer.expires_at),
                };
                t.idempotency.insert(answer.key.clone(), record);
            }
            HoldOutcome::Placed
        })
    }

    async fn get_claim(&self, id: &ReservationId) -> Result<Option<Claim>, StoreError> {
        self.with("get_claim", |t| t.claim_of(id).cloned())
    }

    async fn cells_on_day(&self, resource: &ResourceId, day: NaiveDate) -> Result<Vec<Lock>, StoreError> {
        self.with("cells_on_day", |t| {
            t.locks
                .values()
                .filter(|l| {
                    &l.resource_id == resource
                        && matches!(l.key, LockKey::Cell(c) | LockKey::Seat { start: c, .. } if c.date_naive() == day)
                })
                .cloned()
                .collect()
        })
    }

    async fn day_tokens(
        &self,
        resource: &ResourceId,
        booking_type: &str,
        date: NaiveDate,
    ) -> Result<Vec<Lock>, StoreError> {
        self.with("day_tokens", |t| {
            t.locks
                .values()
                .filter(|l| {
                    &l.resource_id == resource
                        && matches!(&l.key, LockKey::DayToken { booking_type: b, date: d, .. } if b == booking_type && *d == date)
                })
                .cloned()
                .collect()
        })
    }
}

impl ReservationHistory for MemoryStore {
    async fn record_reservation(&self, record: &ReservationRecord) -> Result<(), StoreError> {
        self.with("record_reservation", |t| t.put_record(record))
    }

    async fn get_reservation_record(&self, id: &ReservationId) -> Result<Option<ReservationRecord>, StoreError> {
        self.with("get_reservation_record", |t| t.records.get(id).cloned())
    }
}

impl IdempotencyStore for MemoryStore {
    async fn key_use(&self, key: &str, payload_hash: &str, now: DateTime<Utc>) -> Result<Option<KeyUse>, StoreError> {
        self.with("key_use", |t| t.idempotency.get(key).filter(|r| r.is_live(now)).map(|r| r.key_use(payload_hash)))
    }
}

impl PaymentStore for MemoryStore {
    async fn start_checkout(
        &self,
        claim: &Claim,
        terms: &CheckoutTerms,
        hold_expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let me = &claim.reservation_id;
        let may_start = |t: &Tables| {
            t.claim_of(me).is_some_and(|current| checkout_may_start(current, claim, now))
                && t.blocking_lock(claim, |l| &l.reservation_id == me && !l.booked).is_none()
        };
        self.write_if("start_checkout", may_start, |t| {
            if let Some(item) = t.claim_mut(me) {
                item.claim.checkout_terms = Some(terms.clone());
                item.claim.expires_at = Some(hold_expires_at);
                item.claim = as_stored(&item.claim);
            }
            for key in claim.locks() {
                if let Some(lock) = t.locks.get_mut(&key) {
                    lock.expires_at = Some(as_stored_time(hold_expires_at));
                }
            }
        })
    }

    async fn attach_checkout(
        &self,
        claim: &Claim,
        record: &CheckoutRecord,
        link: &CheckoutLink,
    ) -> Result<bool, StoreError> {
        self.with("attach_checkout", |t| {
            // The record first (once, or the same session again), then the
            // link on the booking if it still exists.
            if t.checkouts.get(&record.reservation_id).is_some_and(|r| r.session_id != record.session_id) {
                return false;
            }
            t.checkouts.insert(record.reservation_id.clone(), record.clone());
            if let Some(item) = t.claims.get_mut(&claim.reservation_id) {
                item.claim.checkout = Some(link.clone());
            }
            true
        })
    }

    async fn checkout_record(&self, reservation_id: &ReservationId) -> Result<Option<CheckoutRecord>, StoreError> {
        self.with("checkout_record", |t| t.checkouts.get(reservation_id).cloned())
    }

    async fn payment_outcome(&self, session_id: &str) -> Result<Option<PaymentOutcome>, StoreError> {
        self.with("payment_outcome", |t| t.outcome(session_id))
    }

    async fn confirm_paid(
        &self,
        confirmed: &Claim,
        session_id: &str,
        now: DateTime<Utc>,
    ) -> Result<ClaimOutcome, StoreError> {
        let me = &confirmed.reservation_id;
        self.with("confirm_paid", |t| {
            if !unpaid_or_absent(t.claim_of(me)) {
                return ClaimOutcome::Stale;
            }
            if let Some(by) = t.blocking_lock(confirmed, |l| &l.reservation_id == me || lock_free(l, now)) {
                return ClaimOutcome::Taken { by: Box::new(by) };
            }
            if !t.no_outcome(session_id) {
                return ClaimOutcome::Stale;
            }
            t.put_claim(confirmed);
            t.put_locks(confirmed);
            t.put_outcome(session_id, PaymentOutcome::Confirmed, me, now);
            ClaimOutcome::Done
        })
    }

    async fn decide_refund(
        &self,
        session_id: &str,
        reservation_id: &ReservationId,
        cause: RefundCause,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.write_if(
            "decide_refund",
            |t| matches!(t.outcome(session_id), None | Some(PaymentOutcome::Failed | PaymentOutcome::Expired)),
            |t| t.put_outcome(session_id, PaymentOutcome::Refunded(cause), reservation_id, now),
        )
    }

    async fn hold_for_pending_payment(
        &self,
        pending: &Claim,
        session_id: &str,
        now: DateTime<Utc>,
    ) -> Result<ClaimOutcome, StoreError> {
        let me = &pending.reservation_id;
        self.with("hold_for_pending_payment", |t| {
            if !unpaid_or_absent(t.claim_of(me)) {
                return ClaimOutcome::Stale;
            }
            let my_hold_or_free = |l: &Lock| (&l.reservation_id == me && !l.booked) || lock_free(l, now);
            if let Some(by) = t.blocking_lock(pending, my_hold_or_free) {
                return ClaimOutcome::Taken { by: Box::new(by) };
            }
            if !t.no_outcome(session_id) {
                return ClaimOutcome::Stale;
            }
            t.put_claim(pending);
            t.put_locks(pending);
            ClaimOutcome::Done
        })
    }

    async fn release(
        &self,
        claim: &Claim,
        record: &ReservationRecord,
        session_id: &str,
        outcome: PaymentOutcome,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.write_if(
            "release",
            |t| t.may_retire(claim, HELD_OR_PENDING, now) && t.no_outcome(session_id),
            |t| {
                t.retire(claim, record, now);
                t.put_outcome(session_id, outcome, &record.reservation_id, now);
            },
        )
    }

    async fn retire_hold(
        &self,
        claim: &Claim,
        record: &ReservationRecord,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.write_if("retire_hold", |t| t.may_retire(claim, HELD_OR_PENDING, now), |t| t.retire(claim, record, now))
    }

    async fn record_unpaid_outcome(
        &self,
        session_id: &str,
        reservation_id: &ReservationId,
        outcome: PaymentOutcome,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.write_if(
            "record_unpaid_outcome",
            |t| t.no_outcome(session_id),
            |t| t.put_outcome(session_id, outcome, reservation_id, now),
        )
    }
}

/// The adapter's `UNPAID_OR_ABSENT` on a booking item.
fn unpaid_or_absent(current: Option<&Claim>) -> bool {
    current.is_none_or(|c| c.status.is_unpaid())
}

impl BookingStore for MemoryStore {
    async fn record_calendar_write(
        &self,
        reservation_id: &ReservationId,
        event_ref: &str,
        calendars: &[WrittenCalendar],
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        // Cancelled meanwhile: nothing to note.
        let confirmed = |t: &Tables| t.claim_of(reservation_id).is_some_and(|c| c.status == ClaimStatus::Confirmed);
        let written = self.write_if("record_calendar_write", confirmed, |t| {
            if let Some(item) = t.claim_mut(reservation_id) {
                item.calendar_event = Some((event_ref.to_owned(), as_stored_time(at)));
                item.claim.calendars = calendars.to_vec();
            }
        });
        written.map(drop)
    }

    async fn start_cancel(
        &self,
        reservation_id: &ReservationId,
        version: u32,
        refund_amount: i64,
    ) -> Result<bool, StoreError> {
        let confirmed = |t: &Tables| {
            t.claim_of(reservation_id).is_some_and(|c| c.status == ClaimStatus::Confirmed && c.version == version)
        };
        self.write_if("start_cancel", confirmed, |t| {
            if let Some(item) = t.claim_mut(reservation_id) {
                item.claim.status = ClaimStatus::Cancelling;
                item.claim.refund_amount = Some(refund_amount);
            }
        })
    }

    async fn cancel_booking(&self, booking: &Claim, record: &ReservationRecord) -> Result<bool, StoreError> {
        let now = Utc::now();
        self.write_if(
            "cancel_booking",
            |t| t.may_retire(booking, &[ClaimStatus::Cancelling], now),
            |t| t.retire(booking, record, now),
        )
    }

    async fn reschedule(&self, current: &Claim, moved: &Claim, now: DateTime<Utc>) -> Result<ClaimOutcome, StoreError> {
        let me = &current.reservation_id;
        self.with("reschedule", |t| {
            let unchanged =
                t.claim_of(me).is_some_and(|c| c.status == ClaimStatus::Confirmed && c.version == current.version);
            if !unchanged {
                return ClaimOutcome::Stale;
            }
            if let Some(by) = t.blocking_lock(moved, |l| &l.reservation_id == me || lock_free(l, now)) {
                return ClaimOutcome::Taken { by: Box::new(by) };
            }
            let new = moved.locks();
            if current
                .locks()
                .iter()
                .filter(|k| !new.contains(k))
                .any(|k| t.locks.get(k).is_none_or(|l| &l.reservation_id != me))
            {
                return ClaimOutcome::Stale;
            }
            for key in current.locks() {
                t.locks.remove(&key);
            }
            t.put_claim(moved);
            t.put_locks(moved);
            ClaimOutcome::Done
        })
    }
}

impl AttentionStore for MemoryStore {
    async fn raise_attention(&self, attention: &Attention) -> Result<(), StoreError> {
        let raised = self.write_if(
            "raise_attention",
            |t| !t.attention.contains_key(&attention.reference),
            |t| _ = t.attention.insert(attention.reference.clone(), attention.clone()),
        );
        raised.map(drop)
    }

    async fn list_attention(&self) -> Result<Vec<Attention>, StoreError> {
        self.with("list_attention", |t| {
            let mut all: Vec<Attention> = t.attention.values().cloned().collect();
            all.sort_by_key(|a| a.raised_at);
            all
        })
    }
}

/// The fake's own conditions, checked against what the port documents:
/// the handler tests trust them.
impl crate::ports::BusyStore for MemoryStore {
    async fn busy_snapshot(&self, id: &ResourceId) -> Result<Option<crate::ports::BusySnapshot>, StoreError> {
        self.with("busy_snapshot", |t| t.busy.get(id).cloned())
    }

    async fn save_busy_snapshot(
        &self,
        snapshot: &crate::ports::BusySnapshot,
        _expires_at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let newer = |t: &Tables| t.busy.get(&snapshot.resource_id).is_none_or(|b| b.fetched_at < snapshot.fetched_at);
        self.write_if("save_busy_snapshot", newer, |t| {
            t.busy.insert(snapshot.resource_id.clone(), snapshot.clone());
        })
    }
}

/// The adapter's condition: the stored cursor still has the revision read
/// (none: there is none), and `to` is not earlier (times as the table keeps
/// them, whole seconds).
impl crate::ports::CursorStore for MemoryStore {
    async fn event_cursor(&self) -> Result<Option<crate::ports::EventCursor>, StoreError> {
        self.with("event_cursor", |t| t.cursor.clone())
    }

    async fn advance_event_cursor(
        &self,
        read: Option<&crate::ports::EventCursor>,
        to: &crate::ports::EventCursor,
    ) -> Result<bool, StoreError> {
        let allowed = |t: &Tables| match (&t.cursor, read) {
            (None, None) => true,
            (Some(stored), Some(read)) => {
                stored.revision == read.revision && stored.settled_through.timestamp() <= to.settled_through.timestamp()
            }
            _ => false,
        };
        let to = crate::ports::EventCursor {
            settled_through: as_stored_time(to.settled_through),
            moved_at: as_stored_time(to.moved_at),
            revision: read.map_or(1, |r| r.revision + 1),
            ..to.clone()
        };
        self.write_if("advance_event_cursor", allowed, |t| t.cursor = Some(to))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ReservationStatus;
    use crate::testing::{at, claim, record, sample_reservation, sample_resource};
    use chrono::Duration;

    fn now() -> DateTime<Utc> {
        at("2030-01-06T12:00:00Z")
    }

    /// The sample reservation's claim in `status`, a hold lapsing at `now() + lapses_in`.
    fn mine(status: ClaimStatus, lapses_in: Duration) -> Claim {
        let expires_at = (status == ClaimStatus::Held).then(|| now() + lapses_in);
        claim(&sample_resource(), &sample_reservation(), status, expires_at, now())
    }

    /// Another reservation's claim on the same slot.
    fn theirs(status: ClaimStatus, lapses_in: Duration) -> Claim {
        let claim = mine(status, lapses_in);
        Claim { reservation_id: ReservationId::new(&claim.slot), ..claim }
    }

    /// A store holding `claim` and, for session `cs_1`, `outcome`.
    fn store_with(claim: Option<Claim>, outcome: Option<PaymentOutcome>) -> MemoryStore {
        let store = MemoryStore::new();
        let mut tables = lock(&store.tables);
        if let Some(claim) = claim {
            tables.put_claim(&claim);
            tables.put_locks(&claim);
        }
        if let Some(outcome) = outcome {
            tables.put_outcome("cs_1", outcome, &sample_reservation(), now());
        }
        drop(tables);
        store
    }

    #[tokio::test]
    async fn a_hold_goes_only_on_free_or_lapsed_locks() {
        let minute = Duration::minutes(1);
        // (the slot's claim, placed)
        let cases = [
            (None, true),
            (Some(theirs(ClaimStatus::Held, minute)), false),
            (Some(theirs(ClaimStatus::Held, Duration::zero())), true),
            (Some(theirs(ClaimStatus::Held, -minute)), true),
            (Some(theirs(ClaimStatus::PaymentPending, -minute)), false),
            (Some(theirs(ClaimStatus::Confirmed, -minute)), false),
        ];
        for (existing, placed) in cases {
            let store = store_with(existing.clone(), None);
            let hold = mine(ClaimStatus::Held, Duration::minutes(30));
            let outcome = store.place_hold(&hold, None, now()).await.unwrap();
            let stored = store.snapshot().claim(&hold.slot).cloned();
            match outcome {
                HoldOutcome::Placed => {
                    assert!(placed, "{existing:?}");
                    assert_eq!(stored, Some(hold), "the new hold owns the start cell");
                }
                HoldOutcome::Taken { by } => {
                    assert!(!placed, "{existing:?}");
                    let existing = existing.unwrap();
                    assert_eq!(
                        (by.reservation_id, by.booked),
                        (existing.reservation_id.clone(), existing.status != ClaimStatus::Held)
                    );
                    assert_eq!(stored, Some(existing), "nothing written");
                }
                other => panic!("a fresh id with no key: {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn a_hold_overlapping_any_cell_of_a_buffered_booking_is_refused() {
        let mut booked = theirs(ClaimStatus::Confirmed, Duration::zero());
        booked.terms.buffer_after_minutes = 15;
        let store = store_with(Some(booked.clone()), None);
        // Starting 10 minutes after the booking ends: inside its buffer.
        let mut hold = mine(ClaimStatus::Held, Duration::minutes(30));
        hold.slot.start = booked.end + Duration::minutes(10);
        hold.end = hold.slot.start + Duration::minutes(30);
        let outcome = store.place_hold(&hold, None, now()).await.unwrap();
        assert!(matches!(outcome, HoldOutcome::Taken { by } if by.reservation_id == booked.reservation_id));
        // Starting when the buffer ends: free.
        hold.slot.start = booked.end + Duration::minutes(15);
        hold.end = hold.slot.start + Duration::minutes(30);
        assert!(matches!(store.place_hold(&hold, None, now()).await.unwrap(), HoldOutcome::Placed));
    }

    /// The payment transactions of the sample reservation's session `cs_1`.
    #[derive(Debug, Clone, Copy)]
    enum Transaction {
        ConfirmPaid,
        HoldForPendingPayment,
        Release,
    }

    impl Transaction {
        async fn run(self, store: &MemoryStore) -> bool {
            let record = record(&sample_resource(), &sample_reservation(), ReservationStatus::Released, now());
            let (confirmed, pending) =
                (mine(ClaimStatus::Confirmed, Duration::zero()), mine(ClaimStatus::PaymentPending, Duration::zero()));
            let done = |o: Result<ClaimOutcome, StoreError>| matches!(o.unwrap(), ClaimOutcome::Done);
            match self {
                Self::ConfirmPaid => done(store.confirm_paid(&confirmed, "cs_1", now()).await),
                Self::HoldForPendingPayment => done(store.hold_for_pending_payment(&pending, "cs_1", now()).await),
                Self::Release => {
                    // Release retires the claim as the handler read it.
                    let Some(read) = store.snapshot().claim_of(&sample_reservation()).cloned() else { return false };
                    store.release(&read, &record, "cs_1", PaymentOutcome::Expired, now()).await.unwrap()
                }
            }
        }

        /// The slot's claim and the session's outcome once it has written.
        fn writes(self) -> (Option<ClaimStatus>, Option<PaymentOutcome>) {
            match self {
                Self::ConfirmPaid => (Some(ClaimStatus::Confirmed), Some(PaymentOutcome::Confirmed)),
                Self::HoldForPendingPayment => (Some(ClaimStatus::PaymentPending), None),
                Self::Release => (None, Some(PaymentOutcome::Expired)),
            }
        }
    }

    #[tokio::test]
    async fn payment_transactions_write_all_or_nothing() {
        use Transaction::*;
        let minutes = Duration::minutes;
        let failed = Some(PaymentOutcome::Failed);
        // (the transaction, the slot's claim, the session's outcome, whether it writes)
        let cases = [
            (ConfirmPaid, Some(mine(ClaimStatus::Held, minutes(5))), None, true),
            (ConfirmPaid, Some(theirs(ClaimStatus::Held, minutes(-5))), None, true),
            (ConfirmPaid, Some(theirs(ClaimStatus::Held, minutes(5))), None, false),
            (ConfirmPaid, Some(mine(ClaimStatus::Held, minutes(5))), failed, false),
            (HoldForPendingPayment, Some(mine(ClaimStatus::Held, minutes(5))), None, true),
            (HoldForPendingPayment, None, None, true),
            (HoldForPendingPayment, Some(theirs(ClaimStatus::Held, minutes(5))), None, false),
            (HoldForPendingPayment, Some(mine(ClaimStatus::Confirmed, minutes(0))), None, false),
            (HoldForPendingPayment, Some(mine(ClaimStatus::Held, minutes(5))), failed, false),
            (Release, Some(mine(ClaimStatus::Held, minutes(5))), None, true),
            (Release, Some(mine(ClaimStatus::PaymentPending, minutes(0))), None, true),
            (Release, Some(mine(ClaimStatus::Confirmed, minutes(0))), None, false),
            (Release, Some(theirs(ClaimStatus::Held, minutes(5))), None, false),
            (Release, Some(mine(ClaimStatus::Held, minutes(5))), failed, false),
        ];
        let slot = sample_reservation().slot_key();
        for (transaction, existing, outcome, writes) in cases {
            let case = format!("{transaction:?} over {:?} with {outcome:?}", existing.as_ref().map(|c| c.status));
            let store = store_with(existing, outcome);
            let before = store.snapshot();
            assert_eq!(transaction.run(&store).await, writes, "{case}");
            let after = store.snapshot();
            if writes {
                let written = (after.claim(&slot).map(|c| c.status), after.outcome("cs_1"));
                assert_eq!(written, transaction.writes(), "{case}");
            } else {
                assert_eq!(after, before, "{case}: nothing written");
            }
        }
    }
}
