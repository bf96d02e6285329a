//! The DynamoDB adapter: every storage port implemented against one table.

mod busy;
mod cursor;
pub mod items;
mod token;

use crate::domain::{
    CELL_MINUTES, CheckoutLink, CheckoutRecord, CheckoutTerms, Claim, ClaimStatus, Lock, LockKey, PaymentOutcome,
    ReservationId, Resource, ResourceId, WrittenCalendar, rfc3339,
};
use crate::ports::{
    Attention, AttentionStore, BookingStore, ClaimOutcome, ClaimStore, HoldOutcome, IdempotencyStore, IdempotentAnswer,
    KeyUse, PaymentStore, RefundCause, ReservationHistory, ReservationRecord, ResourceCache, ResourceStore,
    SavedResponse, SessionState, StoreError,
};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure;
use aws_sdk_dynamodb::types::{
    AttributeValue, CancellationReason, ConditionCheck, Delete, KeysAndAttributes, Put, TransactWriteItem, Update,
};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use items::*;
use std::collections::HashMap;

/// How long a reservation record outlives the moment it was written.
const RESERVATION_RECORD_DAYS: i64 = 90;

/// Error codes after which the same request may succeed later.
const RETRYABLE_CODES: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
    "TransactionInProgressException",
    // A single-item write that met a transaction on its item: nothing was
    // written, and the same write may go through a moment later.
    "TransactionConflictException",
];

/// Storage on one DynamoDB table. Cheap to clone (clones share the client
/// and the resource cache); build it once per process.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
    resources: ResourceCache,
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into(), resources: ResourceCache::default() }
    }

    /// The client, for adapters and tools that need it directly.
    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn table(&self) -> &str {
        &self.table
    }
}

/// Classifies an SDK error: throttling, timeouts, connection failures and
/// server-side errors are [`StoreError::Unavailable`]; the rest [`StoreError::Failed`].
pub fn store_error<E, R>(op: &'static str, err: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let transient = match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => true,
        SdkError::ServiceError(e) => e.err().code().is_some_and(|c| RETRYABLE_CODES.contains(&c)),
        _ => false,
    };
    let source = Box::new(err);
    if transient { StoreError::Unavailable { op, source } } else { StoreError::Failed { op, source } }
}

fn corrupt(op: &'static str, e: ItemError) -> StoreError {
    StoreError::Corrupt { op, source: e.0.into() }
}

/// Expression attribute names used by the conditions below.
fn names() -> HashMap<String, String> {
    HashMap::from([("#status".into(), "status".into()), ("#expires_at".into(), EXPIRES_AT.into())])
}

/// The condition expressions, each written once. Placeholders: `#status`,
/// `#expires_at` ([`names`]); `:me` (a reservation id), `:held`, `:confirmed`
/// (statuses), `:now` (epoch seconds).
mod condition {
    /// Fragments shared by the conditions below (macros, so `concat!` can join them).
    macro_rules! absent {
        () => {
            "attribute_not_exists(pk)"
        };
    }
    /// A hold's lock past its expiry, or a seat group's cell with no paid
    /// seat whose holds have all lapsed: free, though TTL deletion is lazy
    /// and such items can linger for days.
    macro_rules! expired_hold {
        () => {
            "((#status = :held AND #expires_at <= :now) OR (#status = :seated AND seats_until <= :now AND booked = :zero))"
        };
    }

    /// No item under the key yet.
    pub const ABSENT: &str = absent!();
    /// A lock is free: no item, or an expired hold's.
    pub const LOCK_FREE: &str = concat!(absent!(), " OR ", expired_hold!());
    /// A lock is free, or already `:me`'s (whatever its status).
    pub const LOCK_FREE_OR_MINE: &str = concat!(absent!(), " OR reservation_id = :me OR ", expired_hold!());
    /// A lock is free, or `:me`'s hold.
    pub const LOCK_FREE_OR_MY_HOLD: &str =
        concat!(absent!(), " OR (reservation_id = :me AND #status = :held) OR ", expired_hold!());
    /// A booking item a payment may (re)write: none, or still a hold or a pending payment.
    pub const UNPAID_OR_ABSENT: &str = concat!(absent!(), " OR #status IN (:held, :pending)");
    /// A reservation's checkout record: none yet, or already session `:sid`.
    pub const NO_OTHER_SESSION: &str = concat!(absent!(), " OR session_id = :sid");
    /// A session's outcome: none yet, or an unpaid one (`:failed`, `:expired`)
    /// that a late payment turns into a refund.
    pub const NO_PAID_OUTCOME: &str = concat!(absent!(), " OR outcome IN (:failed, :expired)");
    /// The item (booking or lock) is `:me`'s, whatever its status.
    pub const MINE: &str = "reservation_id = :me";
    /// The booking is `:me`'s and confirmed.
    pub const MY_BOOKING: &str = "reservation_id = :me AND #status = :confirmed";
    /// An idempotency key with no live record: none, or one past its expiry.
    pub const KEY_UNUSED: &str = concat!(absent!(), " OR #expires_at < :now");
    /// A hold that lapsed at `:now`.
    pub const MY_EXPIRED_HOLD: &str = concat!("reservation_id = :me AND ", expired_hold!());
}

/// The values every condition above may name.
fn values(me: &ReservationId, now: DateTime<Utc>) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (":me".into(), s(me.as_str())),
        (":held".into(), s(ClaimStatus::Held.as_str())),
        (":pending".into(), s(ClaimStatus::PaymentPending.as_str())),
        (":confirmed".into(), s(ClaimStatus::Confirmed.as_str())),
        (":seated".into(), s(LOCK_SEATED)),
        (":zero".into(), n(0)),
        (":now".into(), epoch(now)),
    ])
}

/// Expression attribute names and values, as the SDK builders take them.
type Placeholders = (Option<HashMap<String, String>>, Option<HashMap<String, AttributeValue>>);

/// Keeps only the names and values an expression uses (DynamoDB refuses unused ones).
fn used_by(
    expression: &str,
    names_: HashMap<String, String>,
    values_: HashMap<String, AttributeValue>,
) -> Placeholders {
    let mentions = |placeholder: &str| {
        expression.match_indices(placeholder).any(|(i, _)| {
            !expression[i + placeholder.len()..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        })
    };
    let names_: HashMap<_, _> = names_.into_iter().filter(|(k, _)| mentions(k)).collect();
    let values_: HashMap<_, _> = values_.into_iter().filter(|(k, _)| mentions(k)).collect();
    ((!names_.is_empty()).then_some(names_), (!values_.is_empty()).then_some(values_))
}

fn build_error(op: &'static str, e: aws_sdk_dynamodb::error::BuildError) -> StoreError {
    StoreError::Failed { op, source: Box::new(e) }
}

impl ResourceStore for DynamoStore {
    async fn get_resource(&self, id: &ResourceId) -> Result<Option<Resource>, StoreError> {
        self.get("get resource", resource_key(id)).await
    }

    async fn cached_resource(&self, id: &ResourceId, now: DateTime<Utc>) -> Result<Option<Resource>, StoreError> {
        self.resources.read_through(self, id, now).await
    }

    async fn put_resource(&self, resource: &Resource) -> Result<(), StoreError> {
        self.resources.forget(&resource.id);
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(resource_item(resource)))
            .send()
            .await
            .map_err(|e| store_error("put resource", e))?;
        Ok(())
    }

    async fn list_resources(&self) -> Result<Vec<Resource>, StoreError> {
        const OP: &str = "list resources";
        let items: Vec<Item> = self
            .client
            .scan()
            .table_name(&self.table)
            .filter_expression("kind = :resource")
            .expression_attribute_values(":resource", s("resource"))
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| store_error(OP, e))?;
        items.iter().map(|item| Resource::try_from(item).map_err(|e| corrupt(OP, e))).collect()
    }
}

impl ClaimStore for DynamoStore {
    async fn place_hold(
        &self,
        claim: &Claim,
        answer: Option<&IdempotentAnswer>,
        now: DateTime<Utc>,
    ) -> Result<HoldOutcome, StoreError> {
        const OP: &str = "place hold";
        let me = &claim.reservation_id;
        // The answer's record first: when its key is used, that is the reason reported.
        let mut items = Vec::new();
        if let Some(answer) = answer {
            items.push(self.put(OP, answer_item(answer), condition::KEY_UNUSED, me, now)?);
        }
        items.push(self.put(OP, claim_item(claim), condition::ABSENT, me, now)?);
        items.extend(self.lock_puts(OP, claim, &claim.locks(), condition::LOCK_FREE, now)?);
        items.extend(self.seat_cell_updates(OP, claim, SeatChange::Hold(claim.expires_at), now).await?);
        // A seat that collides with another seat's transaction chooses again
        // (the other may have taken its seat or set up the group's cells).
        let attempts = if claim.seat.is_some() { 1 } else { TRANSACTION_ATTEMPTS };
        let reasons = match self.transact_until(OP, items, attempts).await? {
            None => return Ok(HoldOutcome::Placed),
            Some(reasons) => reasons,
        };
        if let Some(answer) = answer
            && let Some(record) = reasons.first().filter(|r| r.code() == Some("ConditionalCheckFailed"))
        {
            let record = record.item().cloned().unwrap_or_default();
            return Ok(HoldOutcome::KeyUsed(key_use(OP, &record, &answer.payload_hash)?));
        }
        Ok(match lock_outcome(OP, &reasons, me)? {
            ClaimOutcome::Taken { by } => HoldOutcome::Taken { by },
            _ => HoldOutcome::Stale,
        })
    }

    async fn get_claim(&self, id: &ReservationId) -> Result<Option<Claim>, StoreError> {
        self.get("get booking", claim_key(id)).await
    }

    async fn cells_on_day(&self, resource: &ResourceId, day: NaiveDate) -> Result<Vec<Lock>, StoreError> {
        self.partition("list cells", cell_partition(resource, day)).await
    }

    async fn day_tokens(
        &self,
        resource: &ResourceId,
        booking_type: &str,
        date: NaiveDate,
    ) -> Result<Vec<Lock>, StoreError> {
        self.partition("list day tokens", token_partition(resource, booking_type, date)).await
    }
}

impl ReservationHistory for DynamoStore {
    async fn record_reservation(&self, record: &ReservationRecord) -> Result<(), StoreError> {
        let expires_at = record.recorded_at + Duration::days(RESERVATION_RECORD_DAYS);
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(reservation_record_item(record, expires_at)))
            .send()
            .await
            .map_err(|e| store_error("record reservation", e))?;
        Ok(())
    }

    async fn get_reservation_record(&self, id: &ReservationId) -> Result<Option<ReservationRecord>, StoreError> {
        self.get("get reservation record", reservation_record_key(id)).await
    }
}

/// How long a seat group's cells are kept after the slot's blocked end
/// (the table's TTL then removes them).
const SEAT_CELL_DAYS: i64 = 30;

/// What happens to a seat that [`DynamoStore::seat_cell_updates`] writes for.
#[derive(Debug, Clone, Copy)]
enum SeatChange {
    /// Held (or its hold extended) until the given instant.
    Hold(Option<DateTime<Utc>>),
    /// Paid (confirmed or payment pending) from a hold or from nothing.
    Pay,
    /// A paid seat leaves (released, refunded or cancelled).
    Leave,
}

/// How often a transaction that only collided with another one (no
/// condition failed) is sent again before the caller gets a 503.
const TRANSACTION_ATTEMPTS: u32 = 8;

impl DynamoStore {
    /// A consistent `GetItem`, read into `T`.
    async fn get<T>(&self, op: &'static str, key: Item) -> Result<Option<T>, StoreError>
    where
        T: for<'a> TryFrom<&'a Item, Error = ItemError>,
    {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error(op, e))?;
        out.item().map(|item| T::try_from(item).map_err(|e| corrupt(op, e))).transpose()
    }

    /// The transaction items retiring `claim`: the booking, if still in one
    /// of `statuses`, and its locks if it is live at `now`. An expired
    /// hold's locks are free already (and may be someone else's by now):
    /// only its booking item goes, conditioned on still being that expired hold.
    async fn retire_items(
        &self,
        op: &'static str,
        claim: &Claim,
        statuses: &[ClaimStatus],
        now: DateTime<Utc>,
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        let me = &claim.reservation_id;
        if !claim.is_live(now) {
            return Ok(vec![self.delete(op, claim_key(me), condition::MY_EXPIRED_HOLD, me, now)?]);
        }
        // A seat leaves its group's `booked` count exactly when it was in it:
        // the condition pins the status it was read in.
        let pinned = [claim.status];
        let statuses = if claim.seat.is_some() && statuses.contains(&claim.status) { &pinned[..] } else { statuses };
        let placeholders: Vec<String> = (0..statuses.len()).map(|i| format!(":s{i}")).collect();
        let mut values = values(me, now);
        values.extend(placeholders.iter().zip(statuses).map(|(p, st)| (p.clone(), s(st.as_str()))));
        let condition = format!("{} AND #status IN ({})", condition::MINE, placeholders.join(", "));
        let (names, values) = used_by(&condition, names(), values);
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(claim_key(me)))
            .condition_expression(condition)
            .set_expression_attribute_names(names)
            .set_expression_attribute_values(values)
            .build()
            .map_err(|e| build_error(op, e))?;
        let mut items = vec![TransactWriteItem::builder().delete(delete).build()];
        for (host, lock) in claim.locks() {
            items.push(self.delete(op, lock_key(&host, &lock), condition::MINE, me, now)?);
        }
        if claim.counts_as_booked() {
            items.extend(self.seat_cell_updates(op, claim, SeatChange::Leave, now).await?);
        }
        Ok(items)
    }

    /// The transaction items writing `claim`'s lock items for `locks`, each on `condition`.
    fn lock_puts(
        &self,
        op: &'static str,
        claim: &Claim,
        locks: &[(ResourceId, LockKey)],
        condition: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        locks
            .iter()
            .map(|(host, lock)| self.put(op, lock_item(claim, host, lock), condition, &claim.reservation_id, now))
            .collect()
    }

    /// The transaction items that keep a seat's group cells right through
    /// `change` (none for a booking that is not a seat). Joining (a hold, a
    /// payment) claims each cell for the group if it is free or already the
    /// group's; a hold raises the cells' expiry to at least its own (read
    /// first: the cells keep the latest expiry of any seat, and the write is
    /// conditioned on nobody having raised it further since). A paid seat
    /// adds one to `booked`, and takes it away again when it leaves.
    async fn seat_cell_updates(
        &self,
        op: &'static str,
        claim: &Claim,
        change: SeatChange,
        now: DateTime<Utc>,
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        let (Some(group), cells) = (claim.seat_group(), claim.seat_cells()) else {
            return Ok(Vec::new());
        };
        if cells.is_empty() {
            return Ok(Vec::new());
        }
        let host = &claim.slot.resource_id;
        let mut cells = cells;
        if let SeatChange::Leave = change {
            // The group's cells carry a TTL (the slot's end + SEAT_CELL_DAYS):
            // a seat that leaves after the table removed them has no count
            // left to lower. Conditioning on them would fail the whole
            // transaction for good, and the booking would never leave.
            let last = *cells.last().expect("a seat has cells") + Duration::minutes(CELL_MINUTES.into());
            let read = self.locks_between(host, cells[0], last).await?;
            cells.retain(|cell| {
                read.iter().any(|l| {
                    matches!(l.key, LockKey::Cell(c) if c == *cell) && l.seat_group.as_deref() == Some(group.as_str())
                })
            });
            if cells.is_empty() {
                return Ok(Vec::new());
            }
        }
        let expiry = match change {
            SeatChange::Hold(Some(expires_at)) => {
                // Rounded up to the minute: a burst of holds writes one value.
                let expires_at = DateTime::from_timestamp((expires_at.timestamp() + 59).div_euclid(60) * 60, 0)
                    .unwrap_or(expires_at);
                let last = *cells.last().expect("a seat has cells") + Duration::minutes(CELL_MINUTES.into());
                let read = self.locks_between(host, cells[0], last).await?;
                let ours: Vec<&Lock> = read
                    .iter()
                    .filter(|l| matches!(l.key, LockKey::Cell(c) if cells.contains(&c)))
                    .filter(|l| l.seat_group.as_deref() == Some(group.as_str()))
                    .collect();
                // Every cell is the group's until after this hold ends: it
                // stays so (the group's expiry never moves back, and its
                // cells are free to others only past it), so the hold needs
                // its seat token alone.
                if ours.len() == cells.len() && ours.iter().all(|l| l.expires_at.is_some_and(|t| t >= expires_at)) {
                    tracing::debug!(group, "seat hold: the group's cells outlive it; token only");
                    return Ok(Vec::new());
                }
                tracing::debug!(group, found = ours.len(), "seat hold: writing the group's cells");
                Some(ours.iter().filter_map(|l| l.expires_at).fold(expires_at, DateTime::max))
            }
            _ => None,
        };
        let me = &claim.reservation_id;
        let mut values = values(me, now);
        values.insert(":g".into(), s(&group));
        values.insert(":one".into(), n(1));
        let names = HashMap::from([
            ("#status".to_owned(), "status".to_owned()),
            ("#expires_at".to_owned(), EXPIRES_AT.to_owned()),
            ("#kind".to_owned(), "kind".to_owned()),
            ("#resource".to_owned(), "resource_id".to_owned()),
            ("#rid".to_owned(), "reservation_id".to_owned()),
            ("#group".to_owned(), "seat_group".to_owned()),
            ("#type".to_owned(), "booking_type".to_owned()),
            ("#start".to_owned(), "start".to_owned()),
            ("#end".to_owned(), "end".to_owned()),
            ("#cell".to_owned(), "cell".to_owned()),
            ("#booked".to_owned(), "booked".to_owned()),
            ("#until".to_owned(), "seats_until".to_owned()),
        ]);
        let (update, condition) = match change {
            SeatChange::Leave => {
                ("SET #booked = #booked - :one".to_owned(), "#group = :g AND #booked >= :one".to_owned())
            }
            SeatChange::Hold(_) | SeatChange::Pay => {
                values.insert(":lock".into(), s("lock"));
                values.insert(":host".into(), s(host.as_str()));
                values.insert(":type".into(), s(&claim.terms.booking_type));
                values.insert(":start".into(), s(rfc3339(claim.slot.start)));
                values.insert(":end".into(), s(rfc3339(claim.end)));
                values.insert(":delta".into(), n(i64::from(matches!(change, SeatChange::Pay))));
                let until = match expiry {
                    Some(t) => {
                        values.insert(":exp".into(), epoch(t));
                        ":exp"
                    }
                    None => "if_not_exists(#until, :now)",
                };
                // The TTL attribute outlives the slot: a paid seat's cells
                // must never be swept while they matter.
                let (_, blocked_end) = claim.blocked();
                values.insert(":ttl".into(), epoch(blocked_end + Duration::days(SEAT_CELL_DAYS)));
                let free = condition::LOCK_FREE;
                let raise = if expiry.is_some() { " AND (attribute_not_exists(#until) OR #until <= :exp)" } else { "" };
                (
                    format!(
                        "SET #kind = :lock, #resource = :host, #rid = :me, #status = :seated, #group = :g, \
                         #type = :type, #start = :start, #end = :end, #cell = :cell, \
                         #booked = if_not_exists(#booked, :zero) + :delta, #until = {until}, #expires_at = :ttl"
                    ),
                    format!("({free} OR #group = :g){raise}"),
                )
            }
        };
        let mut items = Vec::with_capacity(cells.len());
        for cell in cells {
            let mut values = values.clone();
            values.insert(":cell".into(), s(rfc3339(cell)));
            let text = format!("{update} {condition}");
            let (names, values) = used_by(&text, names.clone(), values);
            let built = Update::builder()
                .table_name(&self.table)
                .set_key(Some(lock_key(host, &LockKey::Cell(cell))))
                .update_expression(update.clone())
                .condition_expression(condition.clone())
                .set_expression_attribute_names(names)
                .set_expression_attribute_values(values)
                .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
                .build()
                .map_err(|e| build_error(op, e))?;
            items.push(TransactWriteItem::builder().update(built).build());
        }
        Ok(items)
    }

    /// The transaction items writing `paid` (confirmed or pending) from a
    /// hold or from nothing: the booking, its locks on `lock_condition`, and
    /// for a seat its group's cells with one more paid seat. `None` when
    /// the seat's booking is already paid (the caller read a stale state).
    async fn paid_items(
        &self,
        op: &'static str,
        paid: &Claim,
        lock_condition: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Vec<TransactWriteItem>>, StoreError> {
        let me = &paid.reservation_id;
        let (base, joins) = match paid.seat {
            None => (condition::UNPAID_OR_ABSENT, false),
            Some(_) => match self.seat_payment_base(op, me).await? {
                Some(found) => found,
                None => return Ok(None),
            },
        };
        let mut items = vec![self.put(op, claim_item(paid), base, me, now)?];
        items.extend(self.lock_puts(op, paid, &paid.locks(), lock_condition, now)?);
        if joins {
            items.extend(self.seat_cell_updates(op, paid, SeatChange::Pay, now).await?);
        }
        Ok(Some(items))
    }

    /// For a seat, the booking item's current status (`None`: no item) with
    /// the condition that pins it, and whether a payment moving it to a paid
    /// status adds it to its group's `booked`. `None` when the booking is
    /// already paid for (the caller's state is stale).
    async fn seat_payment_base(
        &self,
        op: &'static str,
        me: &ReservationId,
    ) -> Result<Option<(&'static str, bool)>, StoreError> {
        let current: Option<Claim> = self.get(op, claim_key(me)).await?;
        Ok(match current.map(|c| c.status) {
            None => Some((condition::ABSENT, true)),
            Some(ClaimStatus::Held) => Some(("reservation_id = :me AND #status = :held", true)),
            Some(ClaimStatus::PaymentPending) => Some(("reservation_id = :me AND #status = :pending", false)),
            Some(_) => None,
        })
    }

    /// A session's outcome item, kept [`PAYMENT_RECORD_DAYS`].
    fn outcome_item(
        &self,
        session_id: &str,
        outcome: PaymentOutcome,
        reservation_id: &ReservationId,
        now: DateTime<Utc>,
    ) -> Item {
        let mut item = payment_item(session_id, outcome, reservation_id, now);
        item.insert(EXPIRES_AT.into(), epoch(now + Duration::days(PAYMENT_RECORD_DAYS)));
        item
    }

    /// Every item of partition `pk`, read consistently (one paginated Query) into `T`.
    async fn partition<T>(&self, op: &'static str, pk: String) -> Result<Vec<T>, StoreError>
    where
        T: for<'a> TryFrom<&'a Item, Error = ItemError>,
    {
        let items: Vec<Item> = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(pk))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| store_error(op, e))?;
        items.iter().map(|item| T::try_from(item).map_err(|e| corrupt(op, e))).collect()
    }

    /// Puts `item` if `condition` holds; `Ok(false)` if it did not.
    async fn put_if(
        &self,
        op: &'static str,
        item: Item,
        condition: &str,
        values: HashMap<String, AttributeValue>,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition)
            .set_expression_attribute_values(if values.is_empty() { None } else { Some(values) })
            .send()
            .await;
        conditional(op, result)
    }

    /// The transaction item recording a session's outcome if none is recorded.
    fn outcome_put(
        &self,
        op: &'static str,
        session_id: &str,
        outcome: PaymentOutcome,
        reservation_id: &ReservationId,
        now: DateTime<Utc>,
    ) -> Result<TransactWriteItem, StoreError> {
        let item = self.outcome_item(session_id, outcome, reservation_id, now);
        self.put(op, item, condition::ABSENT, reservation_id, now)
    }

    /// The transaction item writing a reservation record.
    fn record_put(&self, op: &'static str, record: &ReservationRecord) -> Result<TransactWriteItem, StoreError> {
        let expires_at = record.recorded_at + Duration::days(RESERVATION_RECORD_DAYS);
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(reservation_record_item(record, expires_at)))
            .build()
            .map_err(|e| build_error(op, e))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// Runs a transaction: `Ok(true)` when it committed (also when an earlier
    /// attempt of the same transaction did and its answer was lost: see
    /// [`token`]), `Ok(false)` when a condition failed. A collision with
    /// another transaction is not an answer: it is retried within the budget
    /// of [`Self::transact_until`], then [`StoreError::Unavailable`] (503).
    async fn transact(&self, op: &'static str, items: Vec<TransactWriteItem>) -> Result<bool, StoreError> {
        Ok(self.transact_once(op, items).await?.is_none())
    }

    /// Runs a transaction that claims locks for `me`, and says why it did
    /// not commit: a lock held by someone else (read from the failed
    /// condition's old item), or any other condition ([`ClaimOutcome::Stale`]).
    async fn transact_locks(
        &self,
        op: &'static str,
        items: Vec<TransactWriteItem>,
        me: &ReservationId,
    ) -> Result<ClaimOutcome, StoreError> {
        match self.transact_once(op, items).await? {
            None => Ok(ClaimOutcome::Done),
            Some(reasons) => lock_outcome(op, &reasons, me),
        }
    }

    /// Runs a transaction until it commits (`None`) or a condition fails
    /// (`Some`, each item's cancellation reason). A collision with another
    /// transaction on the same items, with no condition failed, is not an
    /// answer: the transaction is sent again (jittered backoff), so a loser
    /// always learns which condition it failed.
    async fn transact_once(
        &self,
        op: &'static str,
        items: Vec<TransactWriteItem>,
    ) -> Result<Option<Vec<CancellationReason>>, StoreError> {
        self.transact_until(op, items, TRANSACTION_ATTEMPTS).await
    }

    /// [`Self::transact_once`] sending the transaction at most `attempts`
    /// times; when the last one only collided, its reasons (no condition
    /// failed) are the answer.
    async fn transact_until(
        &self,
        op: &'static str,
        items: Vec<TransactWriteItem>,
        attempts: u32,
    ) -> Result<Option<Vec<CancellationReason>>, StoreError> {
        let mut conflicts = 0;
        let token = token::request_token(op, &items);
        loop {
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .client_request_token(&token)
                .send()
                .await;
            let cancelled = match result {
                Ok(_) => return Ok(None),
                Err(SdkError::ServiceError(e))
                    if matches!(e.err(), TransactWriteItemsError::TransactionCanceledException(_)) =>
                {
                    let TransactWriteItemsError::TransactionCanceledException(c) = e.into_err() else { unreachable!() };
                    c
                }
                Err(e) => return Err(store_error(op, e)),
            };
            let reasons = cancelled.cancellation_reasons.unwrap_or_default();
            if reasons.iter().any(|r| r.code() == Some("ConditionalCheckFailed")) {
                return Ok(Some(reasons));
            }
            let codes: Vec<&str> = reasons.iter().filter_map(|r| r.code()).collect();
            let collided = codes.iter().all(|c| matches!(*c, "None" | "TransactionConflict"));
            conflicts += 1;
            if collided && conflicts >= attempts && attempts < TRANSACTION_ATTEMPTS {
                return Ok(Some(reasons));
            }
            if !collided || conflicts >= attempts {
                return Err(StoreError::Unavailable { op, source: format!("transaction cancelled: {codes:?}").into() });
            }
            let cap_ms = 10u64 << conflicts.min(6);
            tokio::time::sleep(std::time::Duration::from_millis(fastrand::u64(1..=cap_ms))).await;
        }
    }

    /// A conditional `Put` transaction item; a failed condition returns the old item.
    fn put(
        &self,
        op: &'static str,
        item: Item,
        condition: &str,
        me: &ReservationId,
        now: DateTime<Utc>,
    ) -> Result<TransactWriteItem, StoreError> {
        let (names, values) = used_by(condition, names(), values(me, now));
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition)
            .set_expression_attribute_names(names)
            .set_expression_attribute_values(values)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(|e| build_error(op, e))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// A conditional `Delete` transaction item.
    fn delete(
        &self,
        op: &'static str,
        key: Item,
        condition: &str,
        me: &ReservationId,
        now: DateTime<Utc>,
    ) -> Result<TransactWriteItem, StoreError> {
        let (names, values) = used_by(condition, names(), values(me, now));
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key))
            .condition_expression(condition)
            .set_expression_attribute_names(names)
            .set_expression_attribute_values(values)
            .build()
            .map_err(|e| build_error(op, e))?;
        Ok(TransactWriteItem::builder().delete(delete).build())
    }
}

/// How long a reservation's checkout record and its sessions' outcomes are
/// kept: longer than Stripe redelivers (3 days) and than a delayed payment
/// takes to settle (SEPA: up to 14 days).
const PAYMENT_RECORD_DAYS: i64 = 90;

impl PaymentStore for DynamoStore {
    async fn start_checkout(
        &self,
        claim: &Claim,
        terms: &CheckoutTerms,
        hold_expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        const OP: &str = "start checkout";
        let observed = claim.expires_at.map(epoch).unwrap_or_else(|| n(0));
        // First terms: none fixed yet. New terms: the ones read are still
        // there and no session was stored under them.
        let terms_unchanged = match &claim.checkout_terms {
            None => "attribute_not_exists(session_expires_at)".to_owned(),
            Some(_) => "session_expires_at = :observed_terms AND attribute_not_exists(checkout_session_id)".to_owned(),
        };
        let mut values = values(&claim.reservation_id, now);
        values.insert(":hold".into(), epoch(hold_expires_at));
        values.insert(":observed".into(), observed);
        if let Some(observed_terms) = &claim.checkout_terms {
            values.insert(":observed_terms".into(), epoch(observed_terms.expires_at));
        }
        for (name, value) in checkout_terms_attributes(terms) {
            values.insert(format!(":{name}"), value);
        }
        let update = |key: Item, expression: &str, condition: String| -> Result<TransactWriteItem, StoreError> {
            let text = format!("{expression} {condition}");
            let (names, values) = used_by(&text, names(), values.clone());
            let update = Update::builder()
                .table_name(&self.table)
                .set_key(Some(key))
                .update_expression(expression)
                .condition_expression(condition)
                .set_expression_attribute_names(names)
                .set_expression_attribute_values(values)
                .build()
                .map_err(|e| build_error(OP, e))?;
            Ok(TransactWriteItem::builder().update(update).build())
        };
        let mut items = vec![update(
            claim_key(&claim.reservation_id),
            "SET session_expires_at = :session_expires_at, checkout_success_url = :checkout_success_url, \
             checkout_cancel_url = :checkout_cancel_url, #expires_at = :hold",
            format!(
                "reservation_id = :me AND #status = :held AND #expires_at = :observed AND #expires_at > :now \
                 AND {terms_unchanged}"
            ),
        )?];
        // The hold's locks live exactly as long as the hold.
        for (host, lock) in claim.locks() {
            items.push(update(
                lock_key(&host, &lock),
                "SET #expires_at = :hold",
                "reservation_id = :me AND #status = :held".to_owned(),
            )?);
        }
        items.extend(self.seat_cell_updates(OP, claim, SeatChange::Hold(Some(hold_expires_at)), now).await?);
        self.transact(OP, items).await
    }

    async fn attach_checkout(
        &self,
        claim: &Claim,
        record: &CheckoutRecord,
        link: &CheckoutLink,
    ) -> Result<bool, StoreError> {
        const OP: &str = "attach checkout";
        let expires_at = Utc::now() + Duration::days(PAYMENT_RECORD_DAYS);
        // The record first: once the URL is handed out, a payment must find it.
        let item = checkout_record_item(record, expires_at);
        let same_session = HashMap::from([(":sid".to_owned(), s(&record.session_id))]);
        if !self.put_if(OP, item, condition::NO_OTHER_SESSION, same_session).await? {
            return Ok(false);
        }
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(claim_key(&claim.reservation_id)))
            .update_expression("SET checkout_session_id = :sid, checkout_url = :url")
            .condition_expression(condition::MINE)
            .expression_attribute_values(":sid", s(&link.session_id))
            .expression_attribute_values(":url", s(&link.url))
            .expression_attribute_values(":me", s(claim.reservation_id.as_str()))
            .send()
            .await;
        // The booking is gone meanwhile: the session stays at Stripe and
        // expires there; a payment for it is settled by the webhook.
        conditional(OP, result)?;
        Ok(true)
    }

    async fn checkout_record(&self, reservation_id: &ReservationId) -> Result<Option<CheckoutRecord>, StoreError> {
        self.get("get checkout record", checkout_record_key(reservation_id)).await
    }

    async fn payment_outcome(&self, session_id: &str) -> Result<Option<PaymentOutcome>, StoreError> {
        self.get::<PaymentOutcome>("get payment outcome", payment_key(session_id)).await
    }

    async fn session_state(
        &self,
        reservation_id: &ReservationId,
        session_id: &str,
    ) -> Result<SessionState, StoreError> {
        const OP: &str = "read session state";
        let keys = [checkout_record_key(reservation_id), payment_key(session_id), claim_key(reservation_id)];
        let mut found: Vec<Item> = Vec::with_capacity(keys.len());
        let mut pending = KeysAndAttributes::builder()
            .set_keys(Some(keys.to_vec()))
            .consistent_read(true)
            .build()
            .map_err(|e| build_error(OP, e))?;
        // Keys DynamoDB left unprocessed (throttling) are asked for again.
        for attempt in 0..TRANSACTION_ATTEMPTS {
            let out = self
                .client
                .batch_get_item()
                .request_items(&self.table, pending)
                .send()
                .await
                .map_err(|e| store_error(OP, e))?;
            found.extend(out.responses.and_then(|mut r| r.remove(&self.table)).unwrap_or_default());
            match out.unprocessed_keys.and_then(|mut u| u.remove(&self.table)) {
                Some(rest) if !rest.keys().is_empty() => pending = rest,
                _ => {
                    let named = |key: &Item| found.iter().find(|item| item.get(PK) == key.get(PK));
                    let read = |e: ItemError| corrupt(OP, e);
                    return Ok(SessionState {
                        checkout: named(&keys[0]).map(CheckoutRecord::try_from).transpose().map_err(read)?,
                        outcome: named(&keys[1]).map(PaymentOutcome::try_from).transpose().map_err(read)?,
                        claim: named(&keys[2]).map(Claim::try_from).transpose().map_err(read)?,
                    });
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(fastrand::u64(1..=10u64 << attempt.min(6)))).await;
        }
        Err(StoreError::Unavailable { op: OP, source: "keys left unprocessed".into() })
    }

    async fn confirm_paid(
        &self,
        confirmed: &Claim,
        session_id: &str,
        now: DateTime<Utc>,
    ) -> Result<ClaimOutcome, StoreError> {
        const OP: &str = "confirm paid booking";
        let me = &confirmed.reservation_id;
        let Some(mut items) = self.paid_items(OP, confirmed, condition::LOCK_FREE_OR_MINE, now).await? else {
            return Ok(ClaimOutcome::Stale);
        };
        items.push(self.outcome_put(OP, session_id, PaymentOutcome::Confirmed, me, now)?);
        self.transact_locks(OP, items, me).await
    }

    async fn decide_refund(
        &self,
        session_id: &str,
        reservation_id: &ReservationId,
        cause: RefundCause,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let item = self.outcome_item(session_id, PaymentOutcome::Refunded(cause), reservation_id, now);
        let values = HashMap::from([
            (":failed".to_owned(), s(PaymentOutcome::Failed.as_str())),
            (":expired".to_owned(), s(PaymentOutcome::Expired.as_str())),
        ]);
        self.put_if("decide refund", item, condition::NO_PAID_OUTCOME, values).await
    }

    async fn hold_for_pending_payment(
        &self,
        pending: &Claim,
        session_id: &str,
        now: DateTime<Utc>,
    ) -> Result<ClaimOutcome, StoreError> {
        const OP: &str = "hold for pending payment";
        let me = &pending.reservation_id;
        let Some(mut items) = self.paid_items(OP, pending, condition::LOCK_FREE_OR_MY_HOLD, now).await? else {
            return Ok(ClaimOutcome::Stale);
        };
        let no_outcome = ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(payment_key(session_id)))
            .condition_expression(condition::ABSENT)
            .build()
            .map_err(|e| build_error(OP, e))?;
        items.push(TransactWriteItem::builder().condition_check(no_outcome).build());
        self.transact_locks(OP, items, me).await
    }

    async fn release(
        &self,
        claim: &Claim,
        record: &ReservationRecord,
        session_id: &str,
        outcome: PaymentOutcome,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        const OP: &str = "release hold";
        let mut items = self.retire_items(OP, claim, HELD_OR_PENDING, now).await?;
        items.push(self.record_put(OP, record)?);
        items.push(self.outcome_put(OP, session_id, outcome, &record.reservation_id, now)?);
        self.transact(OP, items).await
    }

    async fn retire_hold(
        &self,
        claim: &Claim,
        record: &ReservationRecord,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        const OP: &str = "retire hold";
        let mut items = self.retire_items(OP, claim, HELD_OR_PENDING, now).await?;
        items.push(self.record_put(OP, record)?);
        self.transact(OP, items).await
    }

    async fn record_unpaid_outcome(
        &self,
        session_id: &str,
        reservation_id: &ReservationId,
        outcome: PaymentOutcome,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let item = self.outcome_item(session_id, outcome, reservation_id, now);
        self.put_if("record session outcome", item, condition::ABSENT, HashMap::new()).await
    }
}

/// The bookings a payment's release or refund retires.
const HELD_OR_PENDING: &[ClaimStatus] = &[ClaimStatus::Held, ClaimStatus::PaymentPending];

impl BookingStore for DynamoStore {
    async fn record_calendar_write(
        &self,
        reservation_id: &ReservationId,
        event_ref: &str,
        calendars: &[WrittenCalendar],
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let calendars = serde_json::to_string(calendars).expect("calendars serialise");
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(claim_key(reservation_id)))
            .update_expression("SET calendar_event_ref = :ref, calendar_written_at = :at, calendars = :calendars")
            .expression_attribute_values(":calendars", s(calendars))
            .condition_expression(condition::MY_BOOKING)
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":ref", s(event_ref))
            .expression_attribute_values(":at", s(crate::domain::rfc3339(at)))
            .expression_attribute_values(":me", s(reservation_id.as_str()))
            .expression_attribute_values(":confirmed", s(ClaimStatus::Confirmed.as_str()))
            .send()
            .await;
        // Cancelled meanwhile: the writer's re-check removes the event.
        conditional("record calendar write", result).map(|_| ())
    }

    async fn start_cancel(
        &self,
        reservation_id: &ReservationId,
        version: u32,
        refund_amount: i64,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(claim_key(reservation_id)))
            .update_expression("SET #status = :cancelling, refund_amount = :refund")
            .expression_attribute_values(":refund", n(refund_amount))
            .expression_attribute_values(":version", n(i64::from(version)))
            .condition_expression(format!("{} AND version = :version", condition::MY_BOOKING))
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":cancelling", s(ClaimStatus::Cancelling.as_str()))
            .expression_attribute_values(":me", s(reservation_id.as_str()))
            .expression_attribute_values(":confirmed", s(ClaimStatus::Confirmed.as_str()))
            .send()
            .await;
        conditional("start cancel", result)
    }

    async fn cancel_booking(&self, booking: &Claim, record: &ReservationRecord) -> Result<bool, StoreError> {
        const OP: &str = "cancel booking";
        let mut items = self.retire_items(OP, booking, &[ClaimStatus::Cancelling], Utc::now()).await?;
        items.push(self.record_put(OP, record)?);
        self.transact(OP, items).await
    }

    async fn reschedule(&self, current: &Claim, moved: &Claim, now: DateTime<Utc>) -> Result<ClaimOutcome, StoreError> {
        const OP: &str = "reschedule booking";
        let me = &current.reservation_id;
        let mut values = values(me, now);
        values.insert(":version".into(), n(i64::from(current.version)));
        let condition = "reservation_id = :me AND #status = :confirmed AND version = :version";
        let (names, values) = used_by(condition, names(), values);
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(claim_item(moved)))
            .condition_expression(condition)
            .set_expression_attribute_names(names)
            .set_expression_attribute_values(values)
            .build()
            .map_err(|e| build_error(OP, e))?;
        let mut items = vec![TransactWriteItem::builder().put(put).build()];
        let (old, new) = (current.locks(), moved.locks());
        items.extend(self.lock_puts(OP, moved, &new, condition::LOCK_FREE_OR_MINE, now)?);
        for (host, lock) in old.iter().filter(|l| !new.contains(l)) {
            items.push(self.delete(OP, lock_key(host, lock), condition::MINE, me, now)?);
        }
        self.transact_locks(OP, items, me).await
    }
}

impl AttentionStore for DynamoStore {
    async fn raise_attention(&self, attention: &Attention) -> Result<(), StoreError> {
        self.put_if("raise attention", attention_item(attention), condition::ABSENT, HashMap::new()).await?;
        Ok(())
    }

    async fn list_attention(&self) -> Result<Vec<Attention>, StoreError> {
        let mut all: Vec<Attention> = self.partition("list attention", ATTENTION_PARTITION.into()).await?;
        all.sort_by_key(|a| a.raised_at);
        Ok(all)
    }
}

/// Why a transaction claiming locks for `me` failed: the first failed
/// condition's old item names the lock's holder ([`ClaimOutcome::Taken`]),
/// or it was another condition ([`ClaimOutcome::Stale`]).
fn lock_outcome(
    op: &'static str,
    reasons: &[CancellationReason],
    me: &ReservationId,
) -> Result<ClaimOutcome, StoreError> {
    let failed = reasons.iter().find(|r| r.code() == Some("ConditionalCheckFailed"));
    let holder = failed.and_then(|r| r.item()).filter(|item| get_s(item, "kind") == Ok("lock"));
    Ok(match holder.map(Lock::try_from).transpose().map_err(|e| corrupt(op, e))? {
        Some(lock) if &lock.reservation_id != me => ClaimOutcome::Taken { by: Box::new(lock) },
        _ => ClaimOutcome::Stale,
    })
}

/// What a live idempotency record says about a request with `payload_hash`.
fn key_use(op: &'static str, record: &Item, payload_hash: &str) -> Result<KeyUse, StoreError> {
    let bad = |e: ItemError| corrupt(op, e);
    if get_s(record, "payload_hash").map_err(bad)? != payload_hash {
        return Ok(KeyUse::OtherPayload);
    }
    Ok(KeyUse::Replay(SavedResponse {
        status: u16::try_from(get_n(record, "response_status").map_err(bad)?)
            .map_err(|_| corrupt(op, ItemError("response_status out of range".into())))?,
        body: get_s(record, "response_body").map_err(bad)?.to_owned(),
        location: get_s(record, "response_location").ok().map(str::to_owned),
    }))
}

/// `Ok(true)` if a conditional write went through, `Ok(false)` if its
/// condition failed; any other failure is classified by [`store_error`].
fn conditional<T, E, R>(op: &'static str, result: Result<T, SdkError<E, R>>) -> Result<bool, StoreError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match result {
        Ok(_) => Ok(true),
        Err(SdkError::ServiceError(e)) if e.err().code() == Some("ConditionalCheckFailedException") => Ok(false),
        Err(e) => Err(store_error(op, e)),
    }
}

impl IdempotencyStore for DynamoStore {
    async fn key_use(&self, key: &str, payload_hash: &str, now: DateTime<Utc>) -> Result<Option<KeyUse>, StoreError> {
        const OP: &str = "read idempotency record";
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(idempotency_key(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error(OP, e))?;
        // Past its expiry a record is gone, whether or not TTL deleted it yet.
        let live = out.item().filter(|r| get_n(r, EXPIRES_AT).is_ok_and(|at| at >= now.timestamp()));
        live.map(|record| key_use(OP, record, payload_hash)).transpose()
    }
}
