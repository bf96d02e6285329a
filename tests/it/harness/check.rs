//! The invariant checker.
//!
//! After every step (cheap, from one Scan of the table):
//! - I1: claim items agree with one live claim per slot, and a confirmed or
//!   pending claim carries no TTL attribute (DESIGN invariant 2);
//! - I6: a reservation seen confirmed stays confirmed until it is cancelled;
//!   refunded and cancelled are final (DESIGN invariant 9); a live hold or
//!   pending payment never vanishes (nobody takes it over while it lives).
//!
//! After the quiesce phase, from the real servers:
//! - I1: per slot, at most one reservation whose status (the status route at
//!   the harness clock) is held, payment_pending, cancelling or confirmed, and
//!   the slot's claim item is that reservation's;
//! - I2: no ghost payment: every paid session is exactly one confirmed
//!   booking with no refund, or refunded exactly once in full; every
//!   confirmed booking is paid by its own slotguard session at its price;
//! - I3: no reservation stays payment_pending once its session's delayed
//!   payment result was delivered, or with no delayed payment pending at all;
//! - I4: every confirmed booking has exactly one calendar event and nothing
//!   else has one, before and after a reconcile run.
//!
//! I5 (no 5xx without an injected fault, refused cancels change nothing) is
//! checked by the runner as each op finishes.

use super::run::{Runner, SessionKind};
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use serde_json::Value;
use slotguard::ports::Calendar;
use std::collections::{BTreeMap, HashMap};

pub type Item = HashMap<String, AttributeValue>;

#[derive(Debug, Clone)]
pub struct Violation {
    /// `I1`..`I6`.
    pub inv: &'static str,
    /// The plan step after which it was seen; `None`: in the final checks.
    pub step: Option<usize>,
    pub detail: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.step {
            Some(i) => write!(f, "{} (after step {i}): {}", self.inv, self.detail),
            None => write!(f, "{} (final state): {}", self.inv, self.detail),
        }
    }
}

pub fn hhmm(t: DateTime<Utc>) -> String {
    t.format("%m-%dT%H:%M").to_string()
}

pub use crate::helpers::scan_table as scan;

fn attr_text(v: &AttributeValue) -> String {
    match v {
        AttributeValue::S(s) => s.clone(),
        AttributeValue::N(n) => n.clone(),
        AttributeValue::Bool(b) => b.to_string(),
        other => format!("{other:?}"),
    }
}

/// An item as one line, attributes sorted.
pub fn item_text(item: &Item) -> String {
    let sorted: BTreeMap<&String, String> = item.iter().map(|(k, v)| (k, attr_text(v))).collect();
    sorted.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")
}

/// What differs between two `effects` lists.
pub fn diff(before: &[String], after: &[String]) -> String {
    let gone: Vec<&String> = before.iter().filter(|l| !after.contains(l)).collect();
    let new: Vec<&String> = after.iter().filter(|l| !before.contains(l)).collect();
    format!("before: {gone:?}; after: {new:?}")
}

fn s(item: &Item, name: &str) -> Option<String> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Some(v.clone()),
        _ => None,
    }
}

fn n(item: &Item, name: &str) -> Option<i64> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v.parse().ok(),
        _ => None,
    }
}

/// A claim item, read without the product's own parser (so a status it adds,
/// such as `CANCELLING`, reads too).
#[derive(Debug, Clone)]
pub struct RawClaim {
    pub pk: String,
    pub sk: String,
    pub reservation: String,
    pub status: String,
    pub expires_at: Option<i64>,
    pub payment_intent: Option<String>,
    pub amount: i64,
    pub currency: String,
}

pub struct Snapshot {
    pub claims: Vec<RawClaim>,
    /// Reservation records: id → status.
    pub records: HashMap<String, String>,
}

impl Snapshot {
    pub fn from_items(items: &[Item]) -> Self {
        let mut claims = Vec::new();
        let mut records = HashMap::new();
        for item in items {
            match s(item, "kind").as_deref() {
                Some("claim") => claims.push(RawClaim {
                    pk: s(item, "pk").unwrap_or_default(),
                    sk: s(item, "sk").unwrap_or_default(),
                    reservation: s(item, "reservation_id").unwrap_or_default(),
                    status: s(item, "status").unwrap_or_default(),
                    expires_at: n(item, "expires_at"),
                    payment_intent: s(item, "payment_intent"),
                    amount: n(item, "amount").unwrap_or_default(),
                    currency: s(item, "currency").unwrap_or_default(),
                }),
                Some("reservation") => {
                    if let (Some(id), Some(status)) = (s(item, "reservation_id"), s(item, "status")) {
                        records.insert(id, status);
                    }
                }
                _ => {}
            }
        }
        Self { claims, records }
    }

    /// The status the status route would show, from the raw items.
    pub fn status(&self, reservation: &str, now: DateTime<Utc>) -> Option<String> {
        if let Some(c) = self.claims.iter().find(|c| c.reservation == reservation) {
            return Some(match c.status.as_str() {
                "HELD" if c.expires_at.is_some_and(|t| t > now.timestamp()) => "held".into(),
                "HELD" => "expired".into(),
                other => other.to_ascii_lowercase(),
            });
        }
        self.records.get(reservation).cloned()
    }
}

fn live(status: &str) -> bool {
    matches!(status, "held" | "payment_pending" | "confirmed" | "cancelling")
}

/// The checks run after every step. `seen` carries the last status seen of
/// each reservation from one step to the next.
pub fn per_step(
    snapshot: &Snapshot,
    now: DateTime<Utc>,
    reservations: &[String],
    seen: &mut HashMap<String, String>,
) -> Vec<(&'static str, String)> {
    let mut found = Vec::new();
    let mut per_slot: HashMap<(&str, &str), Vec<&RawClaim>> = HashMap::new();
    for c in &snapshot.claims {
        per_slot.entry((c.pk.as_str(), c.sk.as_str())).or_default().push(c);
        if matches!(c.status.as_str(), "CONFIRMED" | "PAYMENT_PENDING") && c.expires_at.is_some() {
            found.push(("I1", format!("{} claim of {} carries the TTL attribute expires_at", c.status, c.reservation)));
        }
        if c.status == "HELD" && c.expires_at.is_none() {
            found.push(("I1", format!("HELD claim of {} has no expires_at: it never lapses", c.reservation)));
        }
    }
    for ((_, sk), claims) in per_slot {
        if claims.len() > 1 {
            found.push(("I1", format!("{} claim items for slot {sk}", claims.len())));
        }
    }
    for id in reservations {
        let now_status = snapshot.status(id, now).unwrap_or_else(|| "gone".into());
        if let Some(before) = seen.get(id) {
            let allowed = match before.as_str() {
                "confirmed" => matches!(now_status.as_str(), "confirmed" | "cancelling" | "cancelled"),
                "cancelling" => matches!(now_status.as_str(), "cancelling" | "cancelled"),
                "cancelled" => now_status == "cancelled",
                "refunded" => now_status == "refunded",
                // A live hold or pending payment ends in a recorded state
                // (expired, released, refunded, confirmed...), never by
                // vanishing: nobody may take it over while it lives.
                "held" | "payment_pending" => now_status != "gone",
                _ => true,
            };
            if !allowed {
                found.push(("I6", format!("{id} went from {before} to {now_status}")));
            }
        }
        seen.insert(id.clone(), now_status);
    }
    found
}

/// Reads the final state from the real servers and checks I1-I4.
pub async fn final_checks(r: &mut Runner) {
    let items = scan(&r.world.raw_store).await;
    let snapshot = Snapshot::from_items(&items);

    let mut found: Vec<(&'static str, String)> = Vec::new();
    // Statuses as the status route shows them.
    let mut status: HashMap<String, String> = HashMap::new();
    let ids: Vec<String> = r.reservations.iter().map(|x| x.id.clone()).collect();
    for id in &ids {
        let (code, body) = r.status_of(id).await;
        let shown =
            if code == 200 { body["status"].as_str().unwrap_or("?").to_owned() } else { format!("http_{code}") };
        status.insert(id.clone(), shown);
    }

    // I1: one live reservation per slot, and its claim item is its own.
    let mut live_per_slot: BTreeMap<(usize, DateTime<Utc>), Vec<&str>> = BTreeMap::new();
    for res in &r.reservations {
        if live(&status[&res.id]) {
            live_per_slot.entry((res.resource, res.start)).or_default().push(res.id.as_str());
            let own = snapshot.claims.iter().any(|c| c.reservation == res.id);
            if !own && status[&res.id] != "cancelling" {
                push(&mut found, "I1", format!("{} shows {} but owns no claim item", res.id, status[&res.id]));
            }
        }
    }
    for ((resource, start), ids) in &live_per_slot {
        if ids.len() > 1 {
            let listed: Vec<String> = ids.iter().map(|id| format!("{id} ({})", status[*id])).collect();
            let name = r.world.resources[*resource].id.clone();
            push(
                &mut found,
                "I1",
                format!("slot {name}@{start} has {} live reservations: {}", ids.len(), listed.join(", ")),
            );
        }
    }

    // I2: no ghost payment.
    let sessions = r.sim_get("/_sim/checkout/sessions").await["sessions"].as_array().cloned().unwrap_or_default();
    let refunds = r.sim_get("/_sim/refunds").await["refunds"].as_array().cloned().unwrap_or_default();
    let sim_events = r.sim_get("/_sim/events").await["events"].as_array().cloned().unwrap_or_default();
    let confirmed: Vec<&RawClaim> = snapshot
        .claims
        .iter()
        .filter(|c| c.status == "CONFIRMED" && status.get(&c.reservation).is_none_or(|s| s == "confirmed"))
        .collect();
    let refunds_of = |pi: &str| -> Vec<&Value> { refunds.iter().filter(|f| f["payment_intent"] == pi).collect() };
    // Which sessions slotguard made for a reservation: the ones its checkout
    // answered with (the client's view), or sent under its checkout key.
    let own_ids: Vec<(String, String)> = r
        .sessions
        .iter()
        .filter(|s| s.kind == SessionKind::Own)
        .map(|s| (s.reservation.clone(), s.id.clone()))
        .collect();
    let is_own = |session: &Value, reservation: &str| {
        let id = session["id"].as_str().unwrap_or("");
        own_ids.iter().any(|(r, s)| r == reservation && s == id)
            || session["idempotency_key"].as_str().is_some_and(|k| k.starts_with(&format!("checkout-{reservation}-")))
    };
    let describe = |session: &Value| -> String {
        let reservation = session["metadata"]["reservation_id"].as_str().unwrap_or("?");
        let kind = if is_own(session, reservation) { "slotguard's" } else { "a foreign" };
        format!(
            "{kind} session {} for {reservation} ({} {})",
            session["id"].as_str().unwrap_or("?"),
            session["amount_total"],
            session["currency"].as_str().unwrap_or("")
        )
    };
    let mut paid_pis = Vec::new();
    for session in &sessions {
        if session["payment_status"] != "paid" {
            continue;
        }
        let Some(pi) = session["payment_intent"].as_str() else { continue };
        paid_pis.push(pi.to_owned());
        let booked: Vec<&&RawClaim> = confirmed.iter().filter(|c| c.payment_intent.as_deref() == Some(pi)).collect();
        let refunded = refunds_of(pi);
        let ok = (booked.len() == 1 && refunded.is_empty())
            || (booked.is_empty() && refunded.len() == 1 && refunded[0]["amount"] == session["amount_total"]);
        if !ok {
            let what = match (booked.len(), refunded.len()) {
                (0, 0) => "neither booked nor refunded (a ghost payment)".to_owned(),
                (b, 0) => format!("booked by {b} reservations"),
                (0, n) => {
                    let amounts: Vec<String> = refunded.iter().map(|f| f["amount"].to_string()).collect();
                    format!("refunded {n} times ({})", amounts.join(", "))
                }
                (b, n) => format!("booked by {b} reservation(s) and refunded {n} time(s)"),
            };
            push(&mut found, "I2", format!("paid {} is {what}", describe(session)));
        }
    }
    for c in &confirmed {
        let price = r.reservations.iter().find(|x| x.id == c.reservation).map(|x| (x.amount, x.currency.clone()));
        let (amount, currency) = price.unwrap_or((c.amount, c.currency.clone()));
        let paid_by = c.payment_intent.as_deref().and_then(|pi| sessions.iter().find(|s| s["payment_intent"] == pi));
        match paid_by {
            Some(by)
                if is_own(by, &c.reservation)
                    && by["payment_status"] == "paid"
                    && by["amount_total"] == amount
                    && by["currency"] == currency.as_str()
                    && (c.amount, &c.currency) == (amount, &currency) => {}
            Some(by) => push(
                &mut found,
                "I2",
                format!(
                    "{} is confirmed (at {} {}), paid by {} instead of its own session at {amount} {currency}",
                    c.reservation,
                    c.amount,
                    c.currency,
                    describe(by),
                ),
            ),
            None => push(
                &mut found,
                "I2",
                format!(
                    "{} is confirmed without a paid session (payment_intent {:?})",
                    c.reservation, c.payment_intent
                ),
            ),
        }
    }
    for f in &refunds {
        let pi = f["payment_intent"].as_str().unwrap_or("");
        if !paid_pis.iter().any(|p| p == pi) {
            push(&mut found, "I2", format!("refund {} of {pi}, which is not a paid session's payment", f["id"]));
        }
    }

    // I3: nobody waits forever for a payment that has settled (or never will).
    for res in &r.reservations {
        if status[&res.id] != "payment_pending" {
            continue;
        }
        let naming: Vec<&Value> =
            sessions.iter().filter(|s| s["metadata"]["reservation_id"] == res.id.as_str()).collect();
        let result_of = |sid: &str| {
            sim_events.iter().find(|e| {
                e["session_id"] == sid
                    && matches!(
                        e["type"].as_str(),
                        Some("checkout.session.async_payment_succeeded" | "checkout.session.async_payment_failed")
                    )
            })
        };
        if let Some(own) = naming.iter().find(|s| is_own(s, &res.id)) {
            let sid = own["id"].as_str().unwrap_or("");
            let delivered = r.mailbox.iter().any(|m| {
                m.session == sid
                    && m.acked
                    && matches!(
                        m.kind.as_str(),
                        "checkout.session.async_payment_succeeded" | "checkout.session.async_payment_failed"
                    )
            });
            if delivered {
                push(
                    &mut found,
                    "I3",
                    format!("{} is still payment_pending after its session's result was delivered", res.id),
                );
                continue;
            }
        }
        let still_pending = naming.iter().any(|s| {
            s["status"] == "complete"
                && s["payment_status"] == "unpaid"
                && result_of(s["id"].as_str().unwrap_or("")).is_none()
        });
        if !still_pending {
            push(
                &mut found,
                "I3",
                format!("{} is payment_pending but no delayed payment naming it is pending", res.id),
            );
        }
    }

    for (inv, detail) in found {
        r.violate(inv, detail);
    }

    // I4: the calendar, as the writer left it, then after reconcile.
    calendar_check(r, &status, "before reconcile").await;
    let (from, to) = r.window();
    let report =
        slotguard::jobs::reconcile::reconcile(&r.world.raw_store, &r.world.raw_calendar, &r.world.raw_queue, from, to)
            .await
            .expect("reconcile with faults off");
    r.note(
        format!("reconcile: missing {}, orphans removed {}", report.missing.len(), report.orphans_removed.len()),
        "",
    );
    r.drain_calendar().await;
    calendar_check(r, &status, "after reconcile").await;

    // Counters for the summary.
    r.stats.confirmed += status.values().filter(|s| *s == "confirmed").count();
    r.stats.cancelled += status.values().filter(|s| *s == "cancelled").count();
    r.stats.refunds += refunds.len();
}

fn push(found: &mut Vec<(&'static str, String)>, inv: &'static str, detail: String) {
    found.push((inv, detail));
}

async fn calendar_check(r: &mut Runner, status: &HashMap<String, String>, when: &str) {
    let (from, to) = r.window();
    let events = match r.world.raw_calendar.list_events(&r.world.target, from, to).await {
        Ok(events) => events,
        Err(e) => return r.violate("I4", format!("listing the calendar failed ({when}): {e}")),
    };
    let mut per_booking: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
    for e in &events {
        per_booking.entry(e.reservation_id.to_string()).or_default().insert(e.event_ref.clone());
    }
    if when == "before reconcile" {
        r.stats.calendar_events += per_booking.values().map(|v| v.len()).sum::<usize>();
    }
    for (id, shown) in status {
        let n = per_booking.get(id).map(|v| v.len()).unwrap_or(0);
        if shown == "confirmed" && n != 1 {
            r.violate("I4", format!("confirmed {id} has {n} calendar events ({when})"));
        }
        if shown != "confirmed" && n != 0 {
            r.violate("I4", format!("{id} is {shown} but has {n} calendar event(s) ({when})"));
        }
    }
    for id in per_booking.keys() {
        if !status.contains_key(id) {
            r.violate("I4", format!("an event for {id}, which no client ever reserved ({when})"));
        }
    }
}
