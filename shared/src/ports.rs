//! What the handlers need from storage, one small trait per concern.
//!
//! Each handler asks only for the traits it uses; [`crate::dynamo::DynamoStore`]
//! implements them all against one DynamoDB table.

use crate::domain::{Claim, ReservationId, ReservationStatus, Resource, ResourceId, SlotKey};
use chrono::{DateTime, NaiveDate, Utc};
use std::future::Future;

/// A storage failure, classified by what the caller should do about it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Throttled, timed out or unreachable: the client should retry later (503).
    #[error("{op}: storage unavailable: {message}")]
    Unavailable { op: &'static str, message: String },
    /// A stored item that this code cannot read: a bug or a manual edit (500).
    #[error("{op}: malformed item: {message}")]
    Corrupt { op: &'static str, message: String },
    /// Any other failure of the storage request (500).
    #[error("{op}: storage request failed: {message}")]
    Failed { op: &'static str, message: String },
}

/// Reads and writes resource definitions.
pub trait ResourceStore: Send + Sync {
    fn get_resource(
        &self,
        id: &ResourceId,
    ) -> impl Future<Output = Result<Option<Resource>, StoreError>> + Send;
    /// Creates or replaces a resource.
    fn put_resource(
        &self,
        resource: &Resource,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The result of trying to hold a slot.
#[derive(Debug)]
pub enum HoldOutcome {
    /// The hold is in place. `replaced` is the expired hold it overwrote, if any.
    Placed { replaced: Option<Claim> },
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
    fn get_claim(
        &self,
        slot: &SlotKey,
    ) -> impl Future<Output = Result<Option<Claim>, StoreError>> + Send;
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
}

/// History of reservations whose claim item was overwritten or removed.
pub trait ReservationHistory: Send + Sync {
    fn record_reservation(
        &self,
        record: &ReservationRecord,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
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
