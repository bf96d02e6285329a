//! What the flows need from storage, one small trait per concern.
//!
//! Each flow asks only for the traits it uses;
//! [`DynamoStore`](crate::adapters::dynamo::DynamoStore) implements them all
//! against one DynamoDB table.

use super::Cause;
use crate::domain::{
    CheckoutLink, CheckoutRecord, CheckoutTerms, Claim, ClaimStatus, PaymentOutcome, RefundCause, ReservationId,
    ReservationStatus, Resource, ResourceId, SlotKey,
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
    fn get_resource(&self, id: &ResourceId) -> impl Future<Output = Result<Option<Resource>, StoreError>> + Send;
    /// Creates or replaces a resource.
    fn put_resource(&self, resource: &Resource) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Every resource (a filtered Scan: resources are few, and only
    /// reconcile, a scheduled job, lists them).
    fn list_resources(&self) -> impl Future<Output = Result<Vec<Resource>, StoreError>> + Send;
}

/// The result of trying to hold a slot.
#[derive(Debug)]
pub enum HoldOutcome {
    /// The hold is in place. `replaced` is the expired hold it overwrote, if any.
    Placed { replaced: Option<Box<Claim>> },
    /// Someone else has a live claim on the slot.
    Taken { by: Box<Claim> },
}

/// Slot claims: the items that make double-booking impossible.
pub trait ClaimStore: Send + Sync {
    /// Puts `claim` (status HELD, with `expires_at`) only if the slot has no live
    /// claim at `now`, in one conditional write.
    fn place_hold(
        &self,
        claim: &Claim,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<HoldOutcome, StoreError>> + Send;
    /// The claim on a slot, live or not, read consistently.
    fn get_claim(&self, slot: &SlotKey) -> impl Future<Output = Result<Option<Claim>, StoreError>> + Send;
    /// The claim of a reservation's slot if it is still that reservation's
    /// (the id carries the slot key): one consistent read.
    fn reservation_claim(&self, id: &ReservationId) -> impl Future<Output = Result<Option<Claim>, StoreError>> + Send {
        async move { Ok(self.get_claim(&id.slot_key()).await?.filter(|c| &c.reservation_id == id)) }
    }
    /// The reservation's booking if it is confirmed right now.
    fn confirmed_booking(&self, id: &ReservationId) -> impl Future<Output = Result<Option<Claim>, StoreError>> + Send {
        async move { Ok(self.reservation_claim(id).await?.filter(|c| c.status == ClaimStatus::Confirmed)) }
    }
    /// Every claim on slots of `resource` starting on the UTC date `day`: one Query.
    fn claims_on_day(
        &self,
        resource: &ResourceId,
        day: NaiveDate,
    ) -> impl Future<Output = Result<Vec<Claim>, StoreError>> + Send;
}

/// A reservation that no longer owns its slot's claim item, kept so its
/// customer can still read what became of it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReservationRecord {
    pub reservation_id: ReservationId,
    pub end: DateTime<Utc>,
    pub status: ReservationStatus,
    pub amount: i64,
    pub currency: String,
    pub recorded_at: DateTime<Utc>,
    /// A cancelled booking keeps its cancel token, so a repeated cancel is
    /// authorised like the first one.
    pub cancel_token: Option<String>,
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

/// What an attempt to start an idempotent request found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyStart {
    /// This request owns the key: run it.
    Started,
    /// The key completed earlier with this response: replay it.
    Completed(SavedResponse),
    /// Another request with this key is running.
    InProgress,
    /// The key was used with a different payload.
    PayloadMismatch,
}

/// Idempotency records, with the semantics of Powertools for AWS Lambda:
/// an IN_PROGRESS record with its own short expiry, a COMPLETED record with the
/// saved response, both carrying the payload hash and a TTL.
pub trait IdempotencyStore: Send + Sync {
    /// Claims `key` as IN_PROGRESS until `in_progress_until` unless a live record exists.
    fn start_idempotent(
        &self,
        key: &str,
        payload_hash: &str,
        now: DateTime<Utc>,
        in_progress_until: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> impl Future<Output = Result<IdempotencyStart, StoreError>> + Send;
    /// Marks `key` COMPLETED with the response to replay.
    fn complete_idempotent(
        &self,
        key: &str,
        response: &SavedResponse,
        expires_at: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Deletes the IN_PROGRESS record of a request that failed, so a retry can run.
    fn abandon_idempotent(&self, key: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
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
    /// In one transaction: writes `confirmed` (status CONFIRMED, no TTL) if the
    /// slot is free or already this reservation's, and records the session's
    /// outcome as CONFIRMED if none is recorded. `Ok(false)` if either condition failed.
    fn confirm_paid(
        &self,
        confirmed: &Claim,
        session_id: &str,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
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
    /// if the slot is free or held by this reservation, and only while
    /// `session_id` has no recorded outcome. `Ok(false)` if either failed.
    fn hold_for_pending_payment(
        &self,
        pending: &Claim,
        session_id: &str,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// In one transaction: records `outcome` (FAILED or EXPIRED) for the
    /// session if none is recorded, deletes the slot's claim if it is
    /// `record`'s reservation's and HELD or PAYMENT_PENDING, and writes
    /// `record`. `Ok(false)` if either condition failed (nothing written).
    fn release(
        &self,
        slot: &SlotKey,
        record: &ReservationRecord,
        session_id: &str,
        outcome: PaymentOutcome,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// In one transaction: deletes the slot's claim if it is `record`'s
    /// reservation's and HELD or PAYMENT_PENDING, and writes `record` (a paid
    /// session of the reservation was refunded: its hold must not outlive it).
    /// `Ok(false)` if there was no such claim (nothing written).
    fn retire_hold(
        &self,
        slot: &SlotKey,
        record: &ReservationRecord,
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
        slot: &SlotKey,
        reservation_id: &ReservationId,
        event_ref: &str,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Records the intent to cancel: the claim goes from CONFIRMED to
    /// CANCELLING if it is still this reservation's confirmed booking.
    /// `Ok(false)` if it was not.
    fn start_cancel(
        &self,
        slot: &SlotKey,
        reservation_id: &ReservationId,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// In one transaction: deletes the slot's claim if it is `record`'s
    /// reservation's CANCELLING booking, and writes `record` (status cancelled).
    /// `Ok(false)` if there was no such booking (nothing written).
    fn cancel_booking(
        &self,
        slot: &SlotKey,
        record: &ReservationRecord,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
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
