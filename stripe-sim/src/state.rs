//! The simulator's memory: sessions, payment intents, refunds, events and
//! idempotency records, and the state changes every route shares.
//!
//! Everything here is synchronous and runs under one mutex, so a request sees
//! and changes the state atomically; webhook deliveries happen afterwards,
//! outside the lock.

use crate::objects;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

/// Seconds since the Unix epoch, by the real clock. The simulator's own
/// notion of now is [`State::now`]: this plus its clock offset.
pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// A Stripe-looking id: `prefix` followed by `len` random alphanumerics.
pub fn new_id(prefix: &str, len: usize) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut out = String::with_capacity(prefix.len() + len);
    out.push_str(prefix);
    while out.len() < prefix.len() + len {
        for b in uuid::Uuid::new_v4().as_bytes() {
            if out.len() == prefix.len() + len {
                break;
            }
            out.push(ALPHABET[(*b as usize) % ALPHABET.len()] as char);
        }
    }
    out
}

/// One line of a session, from `line_items[i][price_data]`.
#[derive(Debug, Clone)]
pub struct LineItem {
    pub name: String,
    pub unit_amount: i64,
    pub quantity: i64,
}

#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    pub created: i64,
    pub expires_at: i64,
    /// `open`, `complete` or `expired`.
    pub status: &'static str,
    /// `unpaid` or `paid`.
    pub payment_status: &'static str,
    /// Completed with a delayed payment method whose outcome is not known yet.
    pub async_pending: bool,
    pub payment_intent: Option<String>,
    pub currency: String,
    pub amount_total: i64,
    pub line_items: Vec<LineItem>,
    pub metadata: BTreeMap<String, String>,
    pub client_reference_id: Option<String>,
    pub customer_email: Option<String>,
    pub success_url: Option<String>,
    pub cancel_url: Option<String>,
    pub locale: Option<String>,
    pub payment_method_types: Vec<String>,
    pub payment_intent_metadata: BTreeMap<String, String>,
    pub idempotency_key: Option<String>,
    /// How many successful responses a create with this session's
    /// idempotency key produced: 1 plus every replay.
    pub create_responses: u32,
}

#[derive(Debug, Clone)]
pub struct PaymentIntent {
    pub charge: String,
    pub amount: i64,
    pub currency: String,
    /// `succeeded`, `processing` (async, pending) or `requires_payment_method`
    /// (async, failed).
    pub status: &'static str,
    pub amount_refunded: i64,
}

#[derive(Debug, Clone)]
pub struct Refund {
    pub id: String,
    pub payment_intent: String,
    pub charge: String,
    pub amount: i64,
    pub currency: String,
    pub reason: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub created: i64,
    pub idempotency_key: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Event {
    pub id: String,
    pub type_: &'static str,
    pub session_id: String,
    pub payment_intent: Option<String>,
    pub created: i64,
    /// The exact JSON every delivery of this event posts.
    pub body: String,
    /// One entry per delivery: the HTTP status the endpoint answered, or 0
    /// when no answer came (connection refused, timeout).
    pub deliveries: Vec<u16>,
}

/// What a request with an idempotency key did the first time.
#[derive(Debug, Clone)]
pub struct IdempotencyRecord {
    pub method: String,
    pub path: String,
    pub params: Value,
    pub status: u16,
    pub body: String,
    pub request_id: String,
    /// Set when the request created a session, to count replays on it.
    pub session_id: Option<String>,
    /// When the record was made, on the simulator's clock ([`State::now`]):
    /// Stripe forgets a key once it is [`State::idempotency_ttl_secs`] old.
    pub created: i64,
}

/// Injected outage: the next `remaining` /v1 requests answer `status`.
#[derive(Debug, Clone, Copy)]
pub struct Failure {
    pub status: u16,
    pub remaining: u32,
}

/// Errors of the control routes and the hosted page: status and message.
#[derive(Debug, Clone)]
pub struct ControlError {
    pub status: u16,
    pub message: String,
}

impl ControlError {
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        Self { status, message: message.into() }
    }
}

/// Who asked for an event, as Stripe records it in `event.request`.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub request_id: Option<String>,
    pub idempotency_key: Option<String>,
}

#[derive(Debug, Default)]
pub struct State {
    /// The simulator's own URL, for the sessions' hosted page `url`s.
    pub base_url: String,
    pub sessions: HashMap<String, Session>,
    pub session_order: Vec<String>,
    pub payment_intents: HashMap<String, PaymentIntent>,
    pub refunds: Vec<Refund>,
    pub events: Vec<Event>,
    pub idempotency: HashMap<String, IdempotencyRecord>,
    /// How old, in seconds on the simulator's clock, an idempotency record
    /// may get before its key is forgotten (Stripe: 24 h). Applied when the
    /// key is next used, so raising it brings back keys not reused since.
    pub idempotency_ttl_secs: i64,
    pub failure: Option<Failure>,
    /// Injected lost answers (`POST /_sim/lose_answers?count=N`): the next
    /// this many /v1 POSTs run, and their answer is dropped with the connection.
    pub lost_answers: u32,
    /// The webhook endpoint is down (`POST /_sim/webhooks?down=true`): events
    /// are recorded, deliveries are skipped and recorded as 0.
    pub webhooks_down: bool,
    /// Seconds the simulator's clock runs ahead of the real one (negative:
    /// behind). Session creation times and expiry bounds, the expiry sweep and
    /// `created` timestamps use [`State::now`]; webhook signatures stay on the
    /// real clock, as the receiver checks them against its own.
    pub clock_offset: i64,
}

impl State {
    pub fn new(base_url: String) -> Self {
        Self { base_url, idempotency_ttl_secs: crate::DEFAULT_IDEMPOTENCY_TTL_SECS, ..Self::default() }
    }

    /// The simulator's now: the real clock plus [`State::clock_offset`].
    pub fn now(&self) -> i64 {
        now() + self.clock_offset
    }

    pub fn insert_session(&mut self, session: Session) {
        self.session_order.push(session.id.clone());
        self.sessions.insert(session.id.clone(), session);
    }

    pub fn session_json(&self, id: &str) -> Option<Value> {
        self.sessions.get(id).map(|s| objects::session(s, &self.base_url))
    }

    pub fn event(&self, id: &str) -> Option<&Event> {
        self.events.iter().find(|e| e.id == id)
    }

    pub fn event_mut(&mut self, id: &str) -> Option<&mut Event> {
        self.events.iter_mut().find(|e| e.id == id)
    }

    /// Records an event carrying the session as it is now; returns its id.
    pub fn emit(&mut self, type_: &'static str, session_id: &str, origin: Origin) -> String {
        let created = self.now();
        let session = &self.sessions[session_id];
        let id = new_id("evt_", 24);
        let body = objects::event(&id, type_, created, objects::session(session, &self.base_url), &origin);
        self.events.push(Event {
            id: id.clone(),
            type_,
            session_id: session_id.to_owned(),
            payment_intent: session.payment_intent.clone(),
            created,
            body,
            deliveries: Vec::new(),
        });
        id
    }

    fn open_session(&mut self, id: &str) -> Result<&mut Session, ControlError> {
        let now = self.now();
        let session = self
            .sessions
            .get_mut(id)
            .ok_or_else(|| ControlError::new(404, format!("No such checkout.session: '{id}'")))?;
        if session.status != "open" {
            return Err(ControlError::new(409, format!("Checkout Session {id} is {}, not open", session.status)));
        }
        if session.expires_at <= now {
            return Err(ControlError::new(409, format!("Checkout Session {id} passed its expires_at")));
        }
        Ok(session)
    }

    /// The customer pays: the session completes with a new payment intent.
    /// With `delayed` the payment method is a delayed one (SEPA debit, say):
    /// the session completes `unpaid` and the outcome comes later through
    /// [`State::settle_async`]. Returns the event id and payment intent id.
    pub fn complete(&mut self, id: &str, delayed: bool) -> Result<(String, String), ControlError> {
        let session = self.open_session(id)?;
        let pi = new_id("pi_", 24);
        session.status = "complete";
        session.payment_status = if delayed { "unpaid" } else { "paid" };
        session.async_pending = delayed;
        session.payment_intent = Some(pi.clone());
        let (amount, currency) = (session.amount_total, session.currency.clone());
        self.payment_intents.insert(
            pi.clone(),
            PaymentIntent {
                charge: new_id("ch_", 24),
                amount,
                currency,
                status: if delayed { "processing" } else { "succeeded" },
                amount_refunded: 0,
            },
        );
        let event = self.emit("checkout.session.completed", id, Origin::default());
        Ok((event, pi))
    }

    /// The delayed payment of an async-completed session succeeds or fails.
    pub fn settle_async(&mut self, id: &str, succeeded: bool) -> Result<(String, String), ControlError> {
        let session = self
            .sessions
            .get_mut(id)
            .ok_or_else(|| ControlError::new(404, format!("No such checkout.session: '{id}'")))?;
        if !session.async_pending {
            return Err(ControlError::new(409, format!("Checkout Session {id} has no pending delayed payment")));
        }
        session.async_pending = false;
        let pi = session.payment_intent.clone().expect("an async-completed session has a payment intent");
        let type_ = if succeeded {
            session.payment_status = "paid";
            "checkout.session.async_payment_succeeded"
        } else {
            "checkout.session.async_payment_failed"
        };
        if let Some(intent) = self.payment_intents.get_mut(&pi) {
            intent.status = if succeeded { "succeeded" } else { "requires_payment_method" };
        }
        let event = self.emit(type_, id, Origin::default());
        Ok((event, pi))
    }

    /// Expires an open session; returns the `checkout.session.expired` event.
    pub fn expire(&mut self, id: &str, origin: Origin) -> Result<String, ControlError> {
        let session = self
            .sessions
            .get_mut(id)
            .ok_or_else(|| ControlError::new(404, format!("No such checkout.session: '{id}'")))?;
        if session.status != "open" {
            return Err(ControlError::new(
                409,
                format!(
                    "Only Checkout Sessions with a status in [\"open\"] can be expired. \
                     This Checkout Session has a status of \"{}\".",
                    session.status
                ),
            ));
        }
        session.status = "expired";
        Ok(self.emit("checkout.session.expired", id, origin))
    }

    /// Expires every open session whose `expires_at` has passed, as Stripe
    /// does on its own; returns the events to deliver.
    pub fn expire_due(&mut self, now: i64) -> Vec<String> {
        let due: Vec<String> = self
            .session_order
            .iter()
            .filter(|id| {
                let s = &self.sessions[*id];
                s.status == "open" && s.expires_at <= now
            })
            .cloned()
            .collect();
        due.iter().filter_map(|id| self.expire(id, Origin::default()).ok()).collect()
    }

    /// Takes one injected failure, if any is left.
    pub fn take_failure(&mut self) -> Option<u16> {
        let failure = self.failure.as_mut()?;
        failure.remaining -= 1;
        let status = failure.status;
        if failure.remaining == 0 {
            self.failure = None;
        }
        Some(status)
    }

    /// Takes one injected lost answer, if any is left.
    pub fn take_lost_answer(&mut self) -> bool {
        let lost = self.lost_answers > 0;
        self.lost_answers = self.lost_answers.saturating_sub(1);
        lost
    }

    /// The saved result of `key`, unless it is old enough that Stripe would
    /// have forgotten it; a forgotten record is dropped, so the key is new
    /// again.
    pub fn idempotency_record(&mut self, key: &str) -> Option<&IdempotencyRecord> {
        let now = self.now();
        let ttl = self.idempotency_ttl_secs;
        if self.idempotency.get(key).is_some_and(|r| now - r.created >= ttl) {
            self.idempotency.remove(key);
        }
        self.idempotency.get(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_the_prefix_and_length_asked_for() {
        let id = new_id("cs_test_", 58);
        assert!(id.starts_with("cs_test_"));
        assert_eq!(id.len(), 8 + 58);
        assert!(id[8..].bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(new_id("pi_", 24), new_id("pi_", 24));
    }

    fn session(id: &str, expires_at: i64) -> Session {
        Session {
            id: id.into(),
            created: expires_at - 1800,
            expires_at,
            status: "open",
            payment_status: "unpaid",
            async_pending: false,
            payment_intent: None,
            currency: "eur".into(),
            amount_total: 4500,
            line_items: vec![LineItem { name: "Slot".into(), unit_amount: 4500, quantity: 1 }],
            metadata: BTreeMap::new(),
            client_reference_id: None,
            customer_email: None,
            success_url: None,
            cancel_url: None,
            locale: None,
            payment_method_types: vec!["card".into()],
            payment_intent_metadata: BTreeMap::new(),
            idempotency_key: None,
            create_responses: 1,
        }
    }

    #[test]
    fn sessions_past_expires_at_expire_on_their_own_once() {
        let mut st = State::new("http://sim".into());
        st.insert_session(session("cs_due", 1_000));
        st.insert_session(session("cs_later", 2_000));
        let events = st.expire_due(1_000);
        assert_eq!(events.len(), 1);
        assert_eq!(st.sessions["cs_due"].status, "expired");
        assert_eq!(st.sessions["cs_later"].status, "open");
        let event = st.event(&events[0]).unwrap();
        assert_eq!(event.type_, "checkout.session.expired");
        assert_eq!(event.session_id, "cs_due");
        assert!(st.expire_due(1_500).is_empty());
        // A session past its time cannot be paid even before the sweep.
        assert_eq!(st.complete("cs_later", false).unwrap_err().status, 409);
    }
}
