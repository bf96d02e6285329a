//! Item layout of the single table, and conversions to and from domain types.
//!
//! | item | `pk` | `sk` |
//! |---|---|---|
//! | resource | `RESOURCE#{id}` | `RESOURCE` |
//! | booking (a reservation's claim) | `BOOKING#{reservation id}` | `BOOKING` |
//! | cell lock | `CELL#{resource}#{UTC date}` | cell start, RFC 3339 |
//! | seat token | `CELL#{resource}#{UTC date of the slot's start}` | `SEAT#{seat group}#{index, 3 digits}` |
//! | day token | `DAYCAP#{resource}#{booking type}#{local date}` | token index, 3 digits |
//! | reservation record | `RESERVATION#{id}` | `RESERVATION` |
//! | idempotency record | `IDEMPOTENCY#{key}` | `IDEMPOTENCY` |
//! | payment outcome | `PAYMENT#{checkout session id}` | `PAYMENT` |
//! | a reservation's own Checkout Session | `CHECKOUT#{reservation id}` | `CHECKOUT` |
//! | operator queue | `ATTENTION` | the item's reference |
//! | busy time read from a resource's calendar | `BUSY#{resource}` | `BUSY` |
//! | the catch-up's cursor over Stripe's events | `CURSOR#stripe-session-events` | `CURSOR` |
//!
//! A booking item holds everything about one reservation and is found by its
//! id with one `GetItem`. Its locks (one per 5-minute cell of its blocked
//! interval, plus a day token if its type limits bookings per day) are what
//! conflicts are decided on: the cells of one resource-day share a
//! partition, so availability reads a day with one Query. `expires_at` (epoch
//! seconds) is the table's TTL attribute: set on holds and their locks,
//! idempotency records and reservation records, never on a confirmed booking
//! or its locks.
//!
//! A seat of a seated slot holds its seat token alone; the cells of its
//! blocked interval belong to its *seat group* (status `SEATED`,
//! `seat_group`), shared by all seats of the group: `booked` counts the
//! group's paid seats and `seats_until` is the latest expiry any of its holds
//! was given, so the cells keep single bookings out exactly while a seat may
//! be live (see [`crate::adapters::dynamo`]); their TTL `expires_at` is 30
//! days after the slot.
//!
//! The busy-time item (`adapters/dynamo/busy.rs`, [`crate::busy`]) holds one
//! read of a resource's calendar: `fetched_at` (epoch milliseconds when the
//! read started), `window_from`/`window_to` (epoch seconds: what was read),
//! `source` (a digest of the calendar target read), `intervals` (JSON
//! `[[start, end], ...]`, epoch seconds, merged) and `expires_at` (TTL, a
//! day past its maximum age). It is replaced whole, only by a read that
//! started later (`fetched_at < :mine`).
//!
//! The cursor item (`adapters/dynamo/cursor.rs`, [`crate::jobs::catch_up`])
//! says how far the catch-up has settled Stripe's Checkout Session events:
//! `settled_through` (epoch seconds: the `created` of the newest event
//! settled), `recent` (JSON `[[event id, created], ...]`: the events settled
//! within the overlap before it, which the next run skips), `moved_at`
//! (epoch seconds) and `revision` (a write counter). It never expires; a run
//! replaces it only while it still has the revision the run read, and never
//! with an earlier `settled_through` (`#revision = :read AND #through <= :to`).

use crate::domain::{
    CheckoutLink, CheckoutRecord, CheckoutTerms, Claim, ClaimStatus, Customer, Lock, LockKey, PaymentOutcome,
    ReservationId, ReservationStatus, Resource, ResourceId, ResourceSpec, SecretHash, SlotKey, rfc3339,
};
use crate::ports::{Attention, IdempotentAnswer, ReservationRecord};
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, NaiveDate, Utc};
use std::collections::HashMap;

pub type Item = HashMap<String, AttributeValue>;

pub const PK: &str = "pk";
pub const SK: &str = "sk";
/// The table's TTL attribute.
pub const EXPIRES_AT: &str = "expires_at";

pub fn resource_key(id: &ResourceId) -> Item {
    key(format!("RESOURCE#{id}"), "RESOURCE".into())
}

pub fn claim_key(id: &ReservationId) -> Item {
    key(format!("BOOKING#{id}"), "BOOKING".into())
}

/// The partition holding every cell lock of `resource` on the UTC date `day`.
pub fn cell_partition(resource: &ResourceId, day: NaiveDate) -> String {
    format!("CELL#{resource}#{day}")
}

/// The partition holding the day tokens of a booking type on a local date.
pub fn token_partition(resource: &ResourceId, booking_type: &str, date: NaiveDate) -> String {
    format!("DAYCAP#{resource}#{booking_type}#{date}")
}

pub fn lock_key(resource: &ResourceId, lock: &LockKey) -> Item {
    match lock {
        LockKey::Cell(start) => key(cell_partition(resource, start.date_naive()), rfc3339(*start)),
        LockKey::DayToken { booking_type, date, index } => {
            key(token_partition(resource, booking_type, *date), format!("{index:03}"))
        }
        LockKey::Seat { start, group, index } => {
            key(cell_partition(resource, start.date_naive()), format!("SEAT#{group}#{index:03}"))
        }
    }
}

/// The stored status of a lock: a hold's, or a booking's (never expires).
pub const LOCK_HELD: &str = "HELD";
pub const LOCK_BOOKED: &str = "BOOKED";
/// The status of a cell owned by a seat group.
pub const LOCK_SEATED: &str = "SEATED";

/// `claim`'s lock item for `lock` on `host`: held while the claim is HELD
/// (with its expiry), booked otherwise.
pub fn lock_item(claim: &Claim, host: &ResourceId, lock: &LockKey) -> Item {
    let mut item = lock_key(host, lock);
    let held = claim.status == ClaimStatus::Held;
    let fields = [
        ("kind", s("lock")),
        ("resource_id", s(host.as_str())),
        ("reservation_id", s(claim.reservation_id.as_str())),
        ("status", s(if held { LOCK_HELD } else { LOCK_BOOKED })),
        ("booking_type", s(&claim.terms.booking_type)),
        ("start", s(rfc3339(claim.slot.start))),
        ("end", s(rfc3339(claim.end))),
    ];
    item.extend(fields.into_iter().map(|(k, v)| (k.to_owned(), v)));
    match lock {
        LockKey::Cell(start) => _ = item.insert("cell".into(), s(rfc3339(*start))),
        LockKey::DayToken { date, index, .. } => {
            item.insert("token_date".into(), s(date.to_string()));
            item.insert("token_index".into(), n(i64::from(*index)));
        }
        LockKey::Seat { group, index, .. } => {
            item.insert("seat_of".into(), s(group));
            item.insert("token_index".into(), n(i64::from(*index)));
        }
    }
    if let (true, Some(expires_at)) = (held, claim.expires_at) {
        item.insert(EXPIRES_AT.into(), epoch(expires_at));
    }
    item
}

impl TryFrom<&Item> for Lock {
    type Error = ItemError;

    fn try_from(item: &Item) -> Result<Self, ItemError> {
        let booking_type = get_s(item, "booking_type")?.to_owned();
        let token_index =
            || u32::try_from(get_n(item, "token_index")?).map_err(|_| ItemError("token_index is out of range".into()));
        let key = match (get_s(item, "cell"), get_s(item, "seat_of")) {
            (Ok(_), _) => LockKey::Cell(get_time(item, "cell")?),
            (_, Ok(group)) => {
                LockKey::Seat { start: get_time(item, "start")?, group: group.to_owned(), index: token_index()? }
            }
            _ => LockKey::DayToken {
                booking_type: booking_type.clone(),
                date: NaiveDate::parse_from_str(get_s(item, "token_date")?, "%Y-%m-%d")
                    .map_err(|_| ItemError("token_date is not a date".into()))?,
                index: token_index()?,
            },
        };
        let status = get_s(item, "status")?;
        let seat_group = get_s(item, "seat_group").ok().map(str::to_owned);
        Ok(Lock {
            resource_id: ResourceId::parse(get_s(item, "resource_id")?).map_err(|e| ItemError(e.to_string()))?,
            key,
            reservation_id: ReservationId::parse(get_s(item, "reservation_id")?)
                .ok_or_else(|| ItemError("reservation_id is malformed".into()))?,
            booked: match status {
                LOCK_HELD => false,
                LOCK_BOOKED => true,
                LOCK_SEATED if seat_group.is_some() => get_n(item, "booked")? > 0,
                other => return Err(ItemError(format!("unknown lock status {other:?}"))),
            },
            // A seat group's cell is free to others past `seats_until`; its
            // `expires_at` is only when TTL may remove it.
            expires_at: match seat_group {
                Some(_) => Some(from_epoch(get_n(item, "seats_until")?, "seats_until")?),
                None => get_opt_n(item, EXPIRES_AT)?.map(|t| from_epoch(t, EXPIRES_AT)).transpose()?,
            },
            booking_type,
            start: get_time(item, "start")?,
            end: get_time(item, "end")?,
            seat_group,
        })
    }
}

/// A JSON-valued attribute.
fn json<T: serde::Serialize>(value: &T) -> AttributeValue {
    s(serde_json::to_string(value).expect("domain values always serialise"))
}

fn get_json<T: serde::de::DeserializeOwned>(item: &Item, name: &str) -> Result<T, ItemError> {
    serde_json::from_str(get_s(item, name)?).map_err(|e| ItemError(format!("attribute {name}: {e}")))
}

fn get_opt_json<T: serde::de::DeserializeOwned>(item: &Item, name: &str) -> Result<Option<T>, ItemError> {
    if item.contains_key(name) { get_json(item, name).map(Some) } else { Ok(None) }
}

pub fn reservation_record_key(id: &ReservationId) -> Item {
    key(format!("RESERVATION#{id}"), "RESERVATION".into())
}

pub fn payment_key(session_id: &str) -> Item {
    key(format!("PAYMENT#{session_id}"), "PAYMENT".into())
}

pub fn checkout_record_key(id: &ReservationId) -> Item {
    key(format!("CHECKOUT#{id}"), "CHECKOUT".into())
}

/// Every operator-queue item shares one partition: there are few, and the
/// operator lists them all with one Query.
pub const ATTENTION_PARTITION: &str = "ATTENTION";

pub fn attention_key(reference: &str) -> Item {
    key(ATTENTION_PARTITION.into(), reference.into())
}

pub fn idempotency_key(key_text: &str) -> Item {
    key(format!("IDEMPOTENCY#{key_text}"), "IDEMPOTENCY".into())
}

/// The COMPLETED idempotency record of an answer, written with its work.
pub fn answer_item(answer: &IdempotentAnswer) -> Item {
    let mut item = idempotency_key(&answer.key);
    item.insert("kind".into(), s("idempotency"));
    item.insert("status".into(), s("COMPLETED"));
    item.insert("payload_hash".into(), s(&answer.payload_hash));
    item.insert("response_status".into(), n(i64::from(answer.response.status)));
    item.insert("response_body".into(), s(&answer.response.body));
    if let Some(location) = &answer.response.location {
        item.insert("response_location".into(), s(location));
    }
    item.insert(EXPIRES_AT.into(), epoch(answer.expires_at));
    item
}

fn key(pk: String, sk: String) -> Item {
    HashMap::from([(PK.into(), AttributeValue::S(pk)), (SK.into(), AttributeValue::S(sk))])
}

pub fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// Why an item could not be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ItemError(pub String);

pub fn get_s<'a>(item: &'a Item, name: &str) -> Result<&'a str, ItemError> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Ok(v),
        _ => Err(ItemError(format!("attribute {name} missing or not a string"))),
    }
}

pub fn get_n(item: &Item, name: &str) -> Result<i64, ItemError> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v.parse().map_err(|_| ItemError(format!("attribute {name} is not an integer"))),
        _ => Err(ItemError(format!("attribute {name} missing or not a number"))),
    }
}

pub fn get_opt_n(item: &Item, name: &str) -> Result<Option<i64>, ItemError> {
    if item.contains_key(name) { get_n(item, name).map(Some) } else { Ok(None) }
}

fn get_time(item: &Item, name: &str) -> Result<DateTime<Utc>, ItemError> {
    let v = get_s(item, name)?;
    DateTime::parse_from_rfc3339(v)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| ItemError(format!("attribute {name} is not an RFC 3339 time")))
}

pub fn epoch(t: DateTime<Utc>) -> AttributeValue {
    n(t.timestamp())
}

fn from_epoch(secs: i64, name: &str) -> Result<DateTime<Utc>, ItemError> {
    DateTime::from_timestamp(secs, 0).ok_or_else(|| ItemError(format!("attribute {name} is out of range")))
}

/// The one outcome of a paid Checkout Session. Written once, never changed.
pub fn payment_item(
    session_id: &str,
    outcome: PaymentOutcome,
    reservation_id: &ReservationId,
    now: DateTime<Utc>,
) -> Item {
    let mut item = payment_key(session_id);
    item.insert("kind".into(), s("payment"));
    item.insert("outcome".into(), s(outcome.as_str()));
    if let PaymentOutcome::Refunded(cause) = outcome {
        item.insert("refund_cause".into(), s(cause.as_str()));
    }
    item.insert("reservation_id".into(), s(reservation_id.as_str()));
    item.insert("decided_at".into(), s(rfc3339(now)));
    item
}

pub fn resource_item(resource: &Resource) -> Item {
    let mut item = resource_key(&resource.id);
    item.insert("kind".into(), s("resource"));
    item.insert("definition".into(), s(serde_json::to_string(&resource.spec).expect("a spec always serialises")));
    item
}

impl TryFrom<&Item> for PaymentOutcome {
    type Error = ItemError;

    fn try_from(item: &Item) -> Result<Self, ItemError> {
        let outcome = get_s(item, "outcome")?;
        PaymentOutcome::parse(outcome, get_s(item, "refund_cause").ok())
            .ok_or_else(|| ItemError(format!("unknown payment outcome {outcome:?}")))
    }
}

impl TryFrom<&Item> for Resource {
    type Error = ItemError;

    fn try_from(item: &Item) -> Result<Self, ItemError> {
        let pk = get_s(item, PK)?;
        let id = pk
            .strip_prefix("RESOURCE#")
            .and_then(|id| ResourceId::parse(id).ok())
            .ok_or_else(|| ItemError(format!("{pk:?} is not a resource key")))?;
        let spec: ResourceSpec = serde_json::from_str(get_s(item, "definition")?)
            .map_err(|e| ItemError(format!("resource definition: {e}")))?;
        Resource::from_spec(id, spec).map_err(|e| ItemError(format!("resource definition: {e}")))
    }
}

/// The attribute of a booking (and of its final record) naming the
/// calendars its event was written to (JSON, [`crate::domain::WrittenCalendar`]s).
pub const CALENDARS: &str = "calendars";

pub fn claim_item(claim: &Claim) -> Item {
    let mut item = claim_key(&claim.reservation_id);
    let fields = [
        ("kind", s("claim")),
        ("resource_id", s(claim.slot.resource_id.as_str())),
        ("start", s(rfc3339(claim.slot.start))),
        ("end", s(rfc3339(claim.end))),
        ("reservation_id", s(claim.reservation_id.as_str())),
        ("status", s(claim.status.as_str())),
        ("customer_name", s(&claim.customer.name)),
        ("customer_email", s(claim.customer.email.as_str())),
        ("amount", n(claim.amount)),
        ("currency", s(&claim.currency)),
        ("created_at", s(rfc3339(claim.created_at))),
        ("terms", json(&claim.terms)),
        ("version", n(i64::from(claim.version))),
    ];
    item.extend(fields.into_iter().map(|(k, v)| (k.to_owned(), v)));
    if let Some(token) = &claim.day_token {
        item.insert("day_token".into(), json(token));
    }
    put_seat_and_hosts(&mut item, claim.seat, &claim.hosts);
    if let Some(amount) = claim.refund_amount {
        item.insert("refund_amount".into(), n(amount));
    }
    if !claim.calendars.is_empty() {
        item.insert(CALENDARS.into(), json(&claim.calendars));
    }
    if let Some(t) = claim.free_cancel_until {
        item.insert("free_cancel_until".into(), s(rfc3339(t)));
    }
    if let Some(expires_at) = claim.expires_at {
        item.insert(EXPIRES_AT.into(), epoch(expires_at));
    }
    if let Some(terms) = &claim.checkout_terms {
        item.extend(checkout_terms_attributes(terms));
    }
    if let Some(v) = &claim.settings_version {
        item.insert("settings_version".into(), s(v));
    }
    if let Some(link) = &claim.checkout {
        item.insert("checkout_session_id".into(), s(&link.session_id));
        item.insert("checkout_url".into(), s(&link.url));
    }
    if let Some(pi) = &claim.payment_intent {
        item.insert("payment_intent".into(), s(pi));
    }
    put_secret_hash(&mut item, claim.secret_hash.as_ref());
    item
}

impl TryFrom<&Item> for Claim {
    type Error = ItemError;

    fn try_from(item: &Item) -> Result<Self, ItemError> {
        let resource_id = ResourceId::parse(get_s(item, "resource_id")?).map_err(|e| ItemError(e.to_string()))?;
        let reservation_id = ReservationId::parse(get_s(item, "reservation_id")?)
            .ok_or_else(|| ItemError("reservation_id is malformed".into()))?;
        let status = get_s(item, "status")?;
        let status = ClaimStatus::parse(status).ok_or_else(|| ItemError(format!("unknown claim status {status:?}")))?;
        let customer =
            Customer::parse(get_s(item, "customer_name")?, get_s(item, "customer_email")?).map_err(ItemError)?;
        let expires_at = get_opt_n(item, EXPIRES_AT)?.map(|t| from_epoch(t, EXPIRES_AT)).transpose()?;
        let checkout_terms = match get_opt_n(item, "session_expires_at")? {
            Some(t) => Some(CheckoutTerms {
                expires_at: from_epoch(t, "session_expires_at")?,
                success_url: get_s(item, "checkout_success_url")?.to_owned(),
                cancel_url: get_s(item, "checkout_cancel_url")?.to_owned(),
            }),
            None => None,
        };
        let checkout = match (get_s(item, "checkout_session_id"), get_s(item, "checkout_url")) {
            (Ok(session_id), Ok(url)) => Some(CheckoutLink { session_id: session_id.to_owned(), url: url.to_owned() }),
            _ => None,
        };
        Ok(Claim {
            slot: SlotKey { resource_id, start: get_time(item, "start")? },
            end: get_time(item, "end")?,
            reservation_id,
            status,
            customer,
            amount: get_n(item, "amount")?,
            currency: get_s(item, "currency")?.to_owned(),
            expires_at,
            created_at: get_time(item, "created_at")?,
            checkout_terms,
            checkout,
            payment_intent: get_s(item, "payment_intent").ok().map(str::to_owned),
            secret_hash: get_secret_hash(item)?,
            settings_version: get_s(item, "settings_version").ok().map(str::to_owned),
            terms: get_json(item, "terms")?,
            day_token: get_opt_json(item, "day_token")?,
            seat: get_seat(item)?,
            hosts: get_hosts(item)?,
            version: u32::try_from(get_n(item, "version")?).map_err(|_| ItemError("version is out of range".into()))?,
            refund_amount: get_opt_n(item, "refund_amount")?,
            calendars: get_opt_json(item, CALENDARS)?.unwrap_or_default(),
            free_cancel_until: match item.get("free_cancel_until") {
                Some(_) => Some(get_time(item, "free_cancel_until")?),
                None => None,
            },
        })
    }
}

/// The claim attributes holding a hold's fixed Checkout Session parameters.
pub fn checkout_terms_attributes(terms: &CheckoutTerms) -> [(String, AttributeValue); 3] {
    [
        ("session_expires_at".into(), epoch(terms.expires_at)),
        ("checkout_success_url".into(), s(&terms.success_url)),
        ("checkout_cancel_url".into(), s(&terms.cancel_url)),
    ]
}

pub fn checkout_record_item(record: &CheckoutRecord, expires_at: DateTime<Utc>) -> Item {
    let mut item = checkout_record_key(&record.reservation_id);
    let fields = [
        ("kind", s("checkout")),
        ("reservation_id", s(record.reservation_id.as_str())),
        ("session_id", s(&record.session_id)),
        ("amount", n(record.amount)),
        ("currency", s(&record.currency)),
        ("end", s(rfc3339(record.end))),
        ("customer_name", s(&record.customer.name)),
        ("customer_email", s(record.customer.email.as_str())),
        ("terms", json(&record.terms)),
        (EXPIRES_AT, epoch(expires_at)),
    ];
    item.extend(fields.into_iter().map(|(k, v)| (k.to_owned(), v)));
    if let Some(token) = &record.day_token {
        item.insert("day_token".into(), json(token));
    }
    put_seat_and_hosts(&mut item, record.seat, &record.hosts);
    put_secret_hash(&mut item, record.secret_hash.as_ref());
    item
}

/// Stores a booking's seat index and team members (when it has them).
fn put_seat_and_hosts(item: &mut Item, seat: Option<u32>, hosts: &[ResourceId]) {
    if let Some(index) = seat {
        item.insert("seat".into(), n(i64::from(index)));
    }
    if !hosts.is_empty() {
        item.insert("hosts".into(), AttributeValue::L(hosts.iter().map(|h| s(h.as_str())).collect()));
    }
}

fn get_seat(item: &Item) -> Result<Option<u32>, ItemError> {
    get_opt_n(item, "seat")?.map(|i| u32::try_from(i).map_err(|_| ItemError("seat is out of range".into()))).transpose()
}

fn get_hosts(item: &Item) -> Result<Vec<ResourceId>, ItemError> {
    match item.get("hosts") {
        None => Ok(Vec::new()),
        Some(AttributeValue::L(list)) => list
            .iter()
            .map(|v| match v {
                AttributeValue::S(id) => ResourceId::parse(id).map_err(|e| ItemError(format!("hosts: {e}"))),
                _ => Err(ItemError("hosts holds a non-string".into())),
            })
            .collect(),
        Some(_) => Err(ItemError("hosts is not a list".into())),
    }
}

/// Stores a reservation secret's hash (never the secret) as `secret_hash`.
fn put_secret_hash(item: &mut Item, hash: Option<&SecretHash>) {
    if let Some(hash) = hash {
        item.insert("secret_hash".into(), s(hash.as_str()));
    }
}

/// The `secret_hash` of an item; items from before secrets have none (their
/// bookings answer to the admin only: the old cancel tokens were public).
fn get_secret_hash(item: &Item) -> Result<Option<SecretHash>, ItemError> {
    match get_s(item, "secret_hash") {
        Ok(hex) => SecretHash::parse(hex).map(Some).ok_or_else(|| ItemError("secret_hash is malformed".into())),
        Err(_) => Ok(None),
    }
}

impl TryFrom<&Item> for CheckoutRecord {
    type Error = ItemError;

    fn try_from(item: &Item) -> Result<Self, ItemError> {
        Ok(CheckoutRecord {
            reservation_id: ReservationId::parse(get_s(item, "reservation_id")?)
                .ok_or_else(|| ItemError("reservation_id is malformed".into()))?,
            session_id: get_s(item, "session_id")?.to_owned(),
            amount: get_n(item, "amount")?,
            currency: get_s(item, "currency")?.to_owned(),
            end: get_time(item, "end")?,
            customer: Customer::parse(get_s(item, "customer_name")?, get_s(item, "customer_email")?)
                .map_err(ItemError)?,
            terms: get_json(item, "terms")?,
            day_token: get_opt_json(item, "day_token")?,
            seat: get_seat(item)?,
            hosts: get_hosts(item)?,
            secret_hash: get_secret_hash(item)?,
        })
    }
}

pub fn attention_item(attention: &Attention) -> Item {
    let mut item = attention_key(&attention.reference);
    let fields = [
        ("kind", s("attention")),
        ("attention_kind", s(&attention.kind)),
        ("detail", s(&attention.detail)),
        ("raised_at", s(rfc3339(attention.raised_at))),
    ];
    item.extend(fields.into_iter().map(|(k, v)| (k.to_owned(), v)));
    if let Some(id) = &attention.reservation_id {
        item.insert("reservation_id".into(), s(id.as_str()));
    }
    item
}

impl TryFrom<&Item> for Attention {
    type Error = ItemError;

    fn try_from(item: &Item) -> Result<Self, ItemError> {
        Ok(Attention {
            reference: get_s(item, SK)?.to_owned(),
            kind: get_s(item, "attention_kind")?.to_owned(),
            reservation_id: get_s(item, "reservation_id").ok().and_then(ReservationId::parse),
            detail: get_s(item, "detail")?.to_owned(),
            raised_at: get_time(item, "raised_at")?,
        })
    }
}

pub fn reservation_record_item(record: &ReservationRecord, expires_at: DateTime<Utc>) -> Item {
    let mut item = reservation_record_key(&record.reservation_id);
    let fields = [
        ("kind", s("reservation")),
        ("reservation_id", s(record.reservation_id.as_str())),
        ("start", s(rfc3339(record.start))),
        ("end", s(rfc3339(record.end))),
        ("status", s(record.status.as_str())),
        ("amount", n(record.amount)),
        ("currency", s(&record.currency)),
        ("recorded_at", s(rfc3339(record.recorded_at))),
        (EXPIRES_AT, epoch(expires_at)),
    ];
    item.extend(fields.into_iter().map(|(k, v)| (k.to_owned(), v)));
    put_secret_hash(&mut item, record.secret_hash.as_ref());
    if !record.calendars.is_empty() {
        item.insert(CALENDARS.into(), json(&record.calendars));
    }
    item
}

impl TryFrom<&Item> for ReservationRecord {
    type Error = ItemError;

    fn try_from(item: &Item) -> Result<Self, ItemError> {
        let status = get_s(item, "status")?;
        Ok(ReservationRecord {
            reservation_id: ReservationId::parse(get_s(item, "reservation_id")?)
                .ok_or_else(|| ItemError("reservation_id is malformed".into()))?,
            start: get_time(item, "start")?,
            end: get_time(item, "end")?,
            status: ReservationStatus::parse(status)
                .ok_or_else(|| ItemError(format!("unknown reservation status {status:?}")))?,
            amount: get_n(item, "amount")?,
            currency: get_s(item, "currency")?.to_owned(),
            recorded_at: get_time(item, "recorded_at")?,
            secret_hash: get_secret_hash(item)?,
            calendars: get_opt_json(item, CALENDARS)?.unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Price;
    use crate::domain::resource::tests::spec;
    use chrono::Duration;

    fn claim(status: ClaimStatus, expires_at: Option<DateTime<Utc>>) -> Claim {
        let slot = SlotKey {
            resource_id: ResourceId::parse("demo").unwrap(),
            start: DateTime::parse_from_rfc3339("2026-06-10T23:30:00Z").unwrap().with_timezone(&Utc),
        };
        let customer = Customer::parse("Jane Doe", "jane@example.com").unwrap();
        let price = Price { amount: 4500, currency: "eur".into() };
        let now = DateTime::from_timestamp(1_780_000_000, 0).unwrap();
        let terms = crate::domain::BookingTerms::plain(30);
        let hold = Claim::hold(slot.clone(), slot.start + Duration::minutes(30), terms, customer, &price, now, now);
        Claim {
            status,
            expires_at,
            secret_hash: Some(SecretHash::of("rsk_1")),
            day_token: Some(crate::domain::DayToken { date: slot.start.date_naive(), index: 2 }),
            version: 3,
            refund_amount: Some(1200),
            ..hold
        }
    }

    #[test]
    fn a_hold_round_trips_and_carries_the_ttl() {
        let c = claim(ClaimStatus::Held, DateTime::from_timestamp(1_780_000_900, 0));
        let item = claim_item(&c);
        assert_eq!(item[EXPIRES_AT], AttributeValue::N("1780000900".into()));
        assert_eq!(item[PK], s(format!("BOOKING#{}", c.reservation_id)));
        assert_eq!(item[SK], s("BOOKING"));
        assert_eq!(Claim::try_from(&item).unwrap(), c);
    }

    #[test]
    fn checkout_and_payment_fields_round_trip() {
        let mut c = claim(ClaimStatus::PaymentPending, None);
        c.checkout_terms = Some(CheckoutTerms {
            expires_at: DateTime::from_timestamp(1_780_001_800, 0).unwrap(),
            success_url: "https://shop.example/ok".into(),
            cancel_url: "https://shop.example/back".into(),
        });
        c.checkout = Some(CheckoutLink { session_id: "cs_test_1".into(), url: "https://checkout/x".into() });
        c.payment_intent = Some("pi_1".into());
        c.settings_version = Some("0123456789abcdef".into());
        assert_eq!(Claim::try_from(&claim_item(&c)).unwrap(), c);
        let cancelling = Claim { status: ClaimStatus::Cancelling, ..c };
        assert_eq!(Claim::try_from(&claim_item(&cancelling)).unwrap(), cancelling);
    }

    #[test]
    fn checkout_records_and_attention_items_round_trip() {
        let c = claim(ClaimStatus::Held, None);
        let record = CheckoutRecord {
            reservation_id: c.reservation_id.clone(),
            session_id: "cs_test_1".into(),
            amount: 4500,
            currency: "eur".into(),
            end: c.end,
            customer: c.customer.clone(),
            terms: c.terms.clone(),
            day_token: c.day_token.clone(),
            seat: c.seat,
            hosts: c.hosts.clone(),
            secret_hash: c.secret_hash.clone(),
        };
        let item = checkout_record_item(&record, DateTime::from_timestamp(1_790_000_000, 0).unwrap());
        assert_eq!(CheckoutRecord::try_from(&item).unwrap(), record);
        let attention = Attention {
            reference: "refund-cs_test_1".into(),
            kind: "refund_rejected".into(),
            reservation_id: Some(c.reservation_id),
            detail: "status 400".into(),
            raised_at: DateTime::from_timestamp(1_780_000_000, 0).unwrap(),
        };
        assert_eq!(Attention::try_from(&attention_item(&attention)).unwrap(), attention);
    }

    #[test]
    fn a_confirmed_claim_has_no_ttl_attribute() {
        let c = claim(ClaimStatus::Confirmed, None);
        let item = claim_item(&c);
        assert!(!item.contains_key(EXPIRES_AT));
        assert_eq!(Claim::try_from(&item).unwrap(), c);
    }

    #[test]
    fn malformed_claims_are_reported_not_guessed() {
        let good = claim_item(&claim(ClaimStatus::Held, DateTime::from_timestamp(1_780_000_900, 0)));
        for (attr, value) in [
            ("status", s("MAYBE")),
            ("amount", s("12")),
            (EXPIRES_AT, AttributeValue::N("soon".into())),
            ("start", s("yesterday")),
            ("reservation_id", s("rsv_x")),
        ] {
            let mut item = good.clone();
            item.insert(attr.into(), value);
            assert!(Claim::try_from(&item).is_err(), "{attr} accepted");
        }
    }

    #[test]
    fn payment_outcomes_round_trip() {
        let id = claim(ClaimStatus::Confirmed, None).reservation_id;
        for outcome in [
            PaymentOutcome::Confirmed,
            PaymentOutcome::Refunded(crate::domain::RefundCause::NotOwnSession),
            PaymentOutcome::Failed,
            PaymentOutcome::Expired,
        ] {
            let item = payment_item("cs_test_1", outcome, &id, DateTime::from_timestamp(0, 0).unwrap());
            assert_eq!(PaymentOutcome::try_from(&item).unwrap(), outcome);
        }
        let mut item =
            payment_item("cs_test_1", PaymentOutcome::Confirmed, &id, DateTime::from_timestamp(0, 0).unwrap());
        item.insert("outcome".into(), s("MAYBE"));
        assert!(PaymentOutcome::try_from(&item).is_err());
    }

    #[test]
    fn resources_round_trip_through_their_spec() {
        let r =
            Resource::from_spec(ResourceId::parse("demo").unwrap(), spec("Europe/Berlin", 30, &[("09:00", "17:00")]))
                .unwrap();
        assert_eq!(Resource::try_from(&resource_item(&r)).unwrap(), r);
    }

    #[test]
    fn reservation_records_round_trip() {
        let c = claim(ClaimStatus::Held, None);
        let record = ReservationRecord {
            reservation_id: c.reservation_id.clone(),
            start: c.slot.start,
            end: c.end,
            status: ReservationStatus::Expired,
            amount: 4500,
            currency: "eur".into(),
            recorded_at: c.created_at,
            secret_hash: Some(SecretHash::of("rsk_1")),
            calendars: vec![crate::domain::WrittenCalendar {
                host: c.slot.resource_id.clone(),
                target: crate::domain::CalendarTarget::caldav("https://cal.example/a/"),
            }],
        };
        let item = reservation_record_item(&record, c.created_at + Duration::days(90));
        assert_eq!(ReservationRecord::try_from(&item).unwrap(), record);
    }
}
