//! The `/_sim` control routes: what a customer or Stripe would do on their
//! own (pay, settle a delayed payment, expire, retry a webhook, be down),
//! triggered by tests and demos, plus read-outs of everything recorded.
//!
//! Answers are JSON; errors are `{"error": "message"}` with 400 (bad query),
//! 404 (unknown id) or 409 (wrong state).
//!
//! An action that emits or re-sends an event answers
//! `200 {"event_id": "evt_...", "payment_intent": "pi_..." | null, "deliveries": [200, ...]}`
//! once every delivery has an answer; each entry is the endpoint's HTTP
//! status, 0 if none came, and the list is empty without a webhook URL.
//!
//! - `POST /_sim/checkout/sessions/{id}/complete?async=true&deliveries=N&delay_ms=M`:
//!   the customer pays (`async=true`: with a delayed method, so the session
//!   completes `unpaid`). Emits `checkout.session.completed` and delivers it
//!   N times at once (default 1, 0 for a lost webhook). With M > 0 it answers
//!   `202 {"event_id", "payment_intent", "deliveries": [], "delay_ms": M}` at
//!   once and delivers M ms later. 409 unless the session is open.
//! - `POST /_sim/checkout/sessions/{id}/async_payment?result=succeeded|failed&deliveries=N`:
//!   the delayed payment settles (`checkout.session.async_payment_succeeded`,
//!   now `paid`, or `..._failed`, still `unpaid`). 409 unless the session
//!   was completed with `async=true` and not settled yet.
//! - `POST /_sim/checkout/sessions/{id}/expire?deliveries=N`: like
//!   `POST /v1/checkout/sessions/{id}/expire` but answered after delivery;
//!   `payment_intent` is null. 409 unless open.
//! - `POST /_sim/events/{id}/redeliver?deliveries=N`: the same event body,
//!   freshly signed, N times at once.
//! - `POST /_sim/fail?status=500&count=N`: the next N `/v1` requests answer
//!   `status` (400–599) with an `api_error` body without running; `count=0`
//!   clears. Answers `{"status", "remaining"}`.
//! - `POST /_sim/lose_answers?count=N`: the next N `/v1` POSTs run as usual
//!   (a refund is made, a session created, the idempotency record saved,
//!   events delivered) but their answer is lost: the connection is closed
//!   without a response, as when Stripe acted and the network dropped its
//!   reply. A retry with the same `Idempotency-Key` then gets the saved
//!   answer, marked `Idempotent-Replayed`. Every POST counts whatever it
//!   answers (an error, a replay, an injected `/_sim/fail`); GETs do not.
//!   A lost session create still counts in its `create_responses`.
//!   `count=0` clears. Answers `{"remaining"}`.
//! - `POST /_sim/webhooks?down=true|false`: the webhook endpoint goes down
//!   or comes back. While down, events are still made and recorded (`GET
//!   /_sim/events`, `GET /v1/events`) but no delivery is attempted: each one
//!   due (from an action, a redeliver, the expiry sweep, a delayed
//!   completion coming due) is recorded on the event as 0 and answered as 0.
//!   Coming back up redelivers nothing (Stripe retries for up to 3 days, the
//!   simulator not at all): a consumer reconciles from `GET /v1/events`, or
//!   a test redelivers. Without a webhook URL nothing is delivered or
//!   recorded either way. Answers `{"down"}`.
//! - `POST /_sim/idempotency?ttl_secs=N`: how long (seconds on the
//!   simulator's clock, 0 or more) an idempotency key is remembered after its
//!   first use; default [`SimConfig::idempotency_ttl_secs`](crate::SimConfig),
//!   24 h like Stripe. A request whose key's record is at least N seconds old
//!   runs afresh, as if the key had never been seen (with `advance_secs` on
//!   the clock, "the same refund POSTed 25 h later refunds again"). The ttl
//!   is applied when a key is next used, so raising it brings back keys not
//!   used since. Answers `{"ttl_secs"}`.
//! - `POST /_sim/idempotency/forget`: forgets every idempotency key at once.
//!   Answers `{"forgotten": count}`.
//! - `POST /_sim/clock?advance_secs=N`: moves the simulator's clock N seconds
//!   later (N may be negative, to step back onto a caller's clock), then at
//!   once expires every open session whose `expires_at` the new now has
//!   reached (as the sweep would within a second) and delivers their
//!   `checkout.session.expired` events. Answers
//!   `{"now", "offset_secs", "expired": ["evt_...", ...], "deliveries": [...]}`.
//! - `GET /_sim/clock`: `{"now", "offset_secs"}`.
//! - `GET /_sim/events`: `{"events": [{"id", "type", "session_id",
//!   "payment_intent", "created", "deliveries": [...]}]}`, oldest first.
//! - `GET /_sim/refunds`: `{"refunds": [{"id", "payment_intent", "amount",
//!   "currency", "reason", "metadata", "idempotency_key", "created"}]}`.
//! - `GET /_sim/checkout/sessions`: `{"sessions": [{"id", "status",
//!   "payment_status", "payment_intent", "amount_total", "currency",
//!   "client_reference_id", "metadata", "payment_intent_metadata",
//!   "expires_at", "url", "idempotency_key", "create_responses"}]}`;
//!   `create_responses` counts the answers a create with that key got (1 +
//!   replays), so "checkout twice → one session" is `len == 1` and `2`.
//! - `GET /_sim/health`: `{"ok": true}`.

use crate::state::{ControlError, Failure, Origin};
use crate::{Sim, webhooks};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

/// At most this many deliveries per call, to keep a typo from flooding the
/// endpoint.
const MAX_DELIVERIES: usize = 100;
/// At most ten minutes of delay.
const MAX_DELAY_MS: u64 = 600_000;
/// One clock move spans at most a year either way.
const MAX_CLOCK_STEP_SECS: i64 = 366 * 24 * 3600;
/// An idempotency ttl of at most ten years.
const MAX_IDEMPOTENCY_TTL_SECS: i64 = 10 * 366 * 24 * 3600;

/// Serves one `/_sim` request: status and JSON body.
pub async fn handle(sim: &Arc<Sim>, method: &str, path: &str, query: Option<&str>) -> (u16, Value) {
    match dispatch(sim, method, path, query).await {
        Ok(answer) => answer,
        Err(e) => (e.status, json!({ "error": e.message })),
    }
}

async fn dispatch(sim: &Arc<Sim>, method: &str, path: &str, query: Option<&str>) -> Result<(u16, Value), ControlError> {
    let q: HashMap<String, String> = form_urlencoded::parse(query.unwrap_or("").as_bytes()).into_owned().collect();
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    match (method, &segments[..]) {
        ("GET", ["", "_sim", "health"]) => Ok((200, json!({"ok": true}))),
        ("POST", ["", "_sim", "checkout", "sessions", id, "complete"]) => {
            let delayed = flag(&q, "async")?;
            let times = deliveries(&q)?;
            let delay_ms = number(&q, "delay_ms", 0, MAX_DELAY_MS)?;
            let (event, pi) = sim.lock().complete(id, delayed)?;
            if delay_ms > 0 {
                webhooks::spawn_deliveries(sim, vec![event.clone()], times, delay_ms);
                return Ok((
                    202,
                    json!({"event_id": event, "payment_intent": pi, "deliveries": [], "delay_ms": delay_ms}),
                ));
            }
            let statuses = webhooks::deliver(sim, &event, times).await;
            Ok((200, answer(&event, Some(&pi), &statuses)))
        }
        ("POST", ["", "_sim", "checkout", "sessions", id, "async_payment"]) => {
            let succeeded = match q.get("result").map(String::as_str) {
                Some("succeeded") => true,
                Some("failed") => false,
                _ => {
                    return Err(ControlError::new(400, "query parameter result must be succeeded or failed"));
                }
            };
            let times = deliveries(&q)?;
            let (event, pi) = sim.lock().settle_async(id, succeeded)?;
            let statuses = webhooks::deliver(sim, &event, times).await;
            Ok((200, answer(&event, Some(&pi), &statuses)))
        }
        ("POST", ["", "_sim", "checkout", "sessions", id, "expire"]) => {
            let times = deliveries(&q)?;
            let event = sim.lock().expire(id, Origin::default())?;
            let statuses = webhooks::deliver(sim, &event, times).await;
            Ok((200, answer(&event, None, &statuses)))
        }
        ("POST", ["", "_sim", "events", id, "redeliver"]) => {
            let times = deliveries(&q)?;
            let pi = sim
                .lock()
                .event(id)
                .map(|e| e.payment_intent.clone())
                .ok_or_else(|| ControlError::new(404, format!("No such event: '{id}'")))?;
            let statuses = webhooks::deliver(sim, id, times).await;
            Ok((200, answer(id, pi.as_deref(), &statuses)))
        }
        ("POST", ["", "_sim", "fail"]) => {
            let count = number(&q, "count", 1, u64::from(u32::MAX))? as u32;
            let status = number(&q, "status", 500, 599)? as u16;
            if status < 400 {
                return Err(ControlError::new(400, "status must be 400 to 599"));
            }
            sim.lock().failure = (count > 0).then_some(Failure { status, remaining: count });
            Ok((200, json!({"status": status, "remaining": count})))
        }
        ("POST", ["", "_sim", "lose_answers"]) => {
            let count = number(&q, "count", 1, u64::from(u32::MAX))? as u32;
            sim.lock().lost_answers = count;
            Ok((200, json!({"remaining": count})))
        }
        ("POST", ["", "_sim", "webhooks"]) => {
            if !q.contains_key("down") {
                return Err(ControlError::new(400, "query parameter down must be true or false"));
            }
            let down = flag(&q, "down")?;
            sim.lock().webhooks_down = down;
            Ok((200, json!({"down": down})))
        }
        ("POST", ["", "_sim", "idempotency"]) => {
            let ttl = q
                .get("ttl_secs")
                .and_then(|v| v.parse::<i64>().ok())
                .filter(|n| (0..=MAX_IDEMPOTENCY_TTL_SECS).contains(n))
                .ok_or_else(|| {
                    ControlError::new(400, format!("query parameter ttl_secs must be 0 to {MAX_IDEMPOTENCY_TTL_SECS}"))
                })?;
            sim.lock().idempotency_ttl_secs = ttl;
            Ok((200, json!({"ttl_secs": ttl})))
        }
        ("POST", ["", "_sim", "idempotency", "forget"]) => {
            let forgotten = std::mem::take(&mut sim.lock().idempotency).len();
            Ok((200, json!({"forgotten": forgotten})))
        }
        ("GET", ["", "_sim", "clock"]) => {
            let st = sim.lock();
            Ok((200, json!({"now": st.now(), "offset_secs": st.clock_offset})))
        }
        ("POST", ["", "_sim", "clock"]) => {
            let advance = match q.get("advance_secs") {
                Some(v) => v.parse::<i64>().ok().filter(|n| n.abs() <= MAX_CLOCK_STEP_SECS),
                None => None,
            }
            .ok_or_else(|| {
                ControlError::new(
                    400,
                    format!("query parameter advance_secs must be an integer of at most {MAX_CLOCK_STEP_SECS} in size"),
                )
            })?;
            let (now, offset, expired) = {
                let mut st = sim.lock();
                st.clock_offset += advance;
                let now = st.now();
                let expired = st.expire_due(now);
                (now, st.clock_offset, expired)
            };
            let mut statuses = Vec::new();
            for event in &expired {
                statuses.extend(webhooks::deliver(sim, event, 1).await);
            }
            Ok((200, json!({"now": now, "offset_secs": offset, "expired": expired, "deliveries": statuses})))
        }
        ("GET", ["", "_sim", "events"]) => {
            let st = sim.lock();
            let events: Vec<Value> = st
                .events
                .iter()
                .map(|e| {
                    json!({
                        "id": e.id,
                        "type": e.type_,
                        "session_id": e.session_id,
                        "payment_intent": e.payment_intent,
                        "created": e.created,
                        "deliveries": e.deliveries,
                    })
                })
                .collect();
            Ok((200, json!({ "events": events })))
        }
        ("GET", ["", "_sim", "refunds"]) => {
            let st = sim.lock();
            let refunds: Vec<Value> = st
                .refunds
                .iter()
                .map(|r| {
                    json!({
                        "id": r.id,
                        "payment_intent": r.payment_intent,
                        "amount": r.amount,
                        "currency": r.currency,
                        "reason": r.reason,
                        "metadata": r.metadata,
                        "idempotency_key": r.idempotency_key,
                        "created": r.created,
                    })
                })
                .collect();
            Ok((200, json!({ "refunds": refunds })))
        }
        ("GET", ["", "_sim", "checkout", "sessions"]) => {
            let st = sim.lock();
            let sessions: Vec<Value> = st
                .session_order
                .iter()
                .map(|id| {
                    let s = &st.sessions[id];
                    json!({
                        "id": s.id,
                        "status": s.status,
                        "payment_status": s.payment_status,
                        "payment_intent": s.payment_intent,
                        "amount_total": s.amount_total,
                        "currency": s.currency,
                        "client_reference_id": s.client_reference_id,
                        "metadata": s.metadata,
                        "payment_intent_metadata": s.payment_intent_metadata,
                        "expires_at": s.expires_at,
                        "url": crate::objects::hosted_url(&st.base_url, &s.id),
                        "idempotency_key": s.idempotency_key,
                        "create_responses": s.create_responses,
                    })
                })
                .collect();
            Ok((200, json!({ "sessions": sessions })))
        }
        _ => Err(ControlError::new(404, format!("no control route {method} {path}"))),
    }
}

fn answer(event: &str, payment_intent: Option<&str>, deliveries: &[u16]) -> Value {
    json!({"event_id": event, "payment_intent": payment_intent, "deliveries": deliveries})
}

fn flag(q: &HashMap<String, String>, name: &str) -> Result<bool, ControlError> {
    match q.get(name).map(String::as_str) {
        None | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") | Some("") => Ok(true),
        Some(other) => {
            Err(ControlError::new(400, format!("query parameter {name} must be true or false, not {other}")))
        }
    }
}

fn number(q: &HashMap<String, String>, name: &str, default: u64, max: u64) -> Result<u64, ControlError> {
    match q.get(name) {
        None => Ok(default),
        Some(s) => s
            .parse::<u64>()
            .ok()
            .filter(|n| *n <= max)
            .ok_or_else(|| ControlError::new(400, format!("query parameter {name} must be 0 to {max}"))),
    }
}

fn deliveries(q: &HashMap<String, String>) -> Result<usize, ControlError> {
    Ok(number(q, "deliveries", 1, MAX_DELIVERIES as u64)? as usize)
}
