//! What DynamoDB does on the wire, in front of the real DynamoDB Local: a
//! proxy that forwards every request and, when told, answers one the way
//! the service itself sometimes does, as the SDK sees it.
//!
//! - [`WireFault::Conflict`]: `TransactWriteItems` cancelled with
//!   `TransactionConflict` (another transaction was on one of its items),
//!   nothing written; on a single-item write, `TransactionConflictException`.
//! - [`WireFault::LoseAnswer`]: the request reaches DynamoDB Local and is
//!   carried out, but the client gets `500 InternalServerError` instead of
//!   the answer: the SDK retries a write that happened.
//! - [`WireFault::Throttle`]: `ThrottlingException`, nothing written (the SDK
//!   retries it; a run of them exhausts its attempts).
//! - [`WireFault::Unprocessed`]: a `BatchGetItem` answered with every key but
//!   the first found one moved to `UnprocessedKeys`.
//!
//! [`DynamoWire::chaos`] draws these at random rates from a seed (the
//! randomized harness's wire layer).
//!
//! A rule names the operation (the `X-Amz-Target` suffix, e.g.
//! `TransactWriteItems`) and, optionally, text the request body must
//! contain (a status value, a key prefix), and applies to the next `times`
//! requests that match; anything else is forwarded untouched. DynamoDB
//! Local does not check SigV4 signatures, so rewriting `Host` is harmless.

use super::{Reply, Request, ServerGuard, response};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// An answer DynamoDB gives on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireFault {
    Conflict,
    LoseAnswer,
    Throttle,
    Unprocessed,
}

#[derive(Debug, Clone)]
struct Rule {
    operation: String,
    contains: Option<String>,
    fault: WireFault,
    remaining: usize,
}

/// A request that got a fault.
#[derive(Debug, Clone)]
pub struct Faulted {
    pub operation: String,
    pub fault: WireFault,
}

/// How often, while chaos is on, a request gets each fault: per mille.
#[derive(Debug, Clone, Copy)]
pub struct Chaos {
    /// `TransactWriteItems` cancelled for a conflict.
    pub conflict: u32,
    /// A write (`TransactWriteItems`, `PutItem`, `UpdateItem`, `DeleteItem`)
    /// carried out with its answer lost.
    pub lose_answer: u32,
    /// A single-item write refused with `TransactionConflictException`.
    pub item_conflict: u32,
    /// Any request throttled.
    pub throttle: u32,
    /// A `BatchGetItem` with keys left unprocessed.
    pub unprocessed: u32,
}

impl Chaos {
    /// Rates a history meets a few times a run, not at every step.
    pub fn moderate() -> Self {
        Self { conflict: 30, lose_answer: 20, item_conflict: 10, throttle: 10, unprocessed: 100 }
    }
}

#[derive(Default)]
struct State {
    rules: Vec<Rule>,
    /// Faults drawn at random, from the history's seed, while set.
    chaos: Option<(Chaos, fastrand::Rng)>,
    faulted: Vec<Faulted>,
    /// Requests seen, by operation.
    seen: Vec<String>,
}

/// A running proxy; stops when dropped.
pub struct DynamoWire {
    /// The endpoint to give the SDK client (`http://127.0.0.1:<port>`).
    pub url: String,
    state: Arc<Mutex<State>>,
    _server: ServerGuard,
}

impl DynamoWire {
    /// Starts a proxy in front of the DynamoDB endpoint `target`.
    pub async fn start(target: &str) -> Self {
        let target = target.trim_end_matches('/').to_owned();
        let state = Arc::new(Mutex::new(State::default()));
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("an HTTP client");
        let (addr, server) = super::serve({
            let state = state.clone();
            move |req| handle(state.clone(), http.clone(), target.clone(), req)
        })
        .await;
        Self { url: format!("http://{addr}"), state, _server: server }
    }

    /// The next `times` requests of `operation` whose body contains
    /// `contains` (any body when `None`) get `fault`.
    pub fn inject(&self, operation: &str, contains: Option<&str>, fault: WireFault, times: usize) {
        self.lock().rules.push(Rule {
            operation: operation.to_owned(),
            contains: contains.map(str::to_owned),
            fault,
            remaining: times,
        });
    }

    /// Drops every rule not used up yet.
    pub fn pass_through(&self) {
        self.lock().rules.clear();
    }

    /// From now on draws faults at `rates` for every request, from `seed`,
    /// until [`Self::calm`].
    pub fn chaos(&self, rates: Chaos, seed: u64) {
        self.lock().chaos = Some((rates, fastrand::Rng::with_seed(seed)));
    }

    /// Stops drawing faults at random (rules still apply).
    pub fn calm(&self) {
        self.lock().chaos = None;
    }

    /// The requests that got a fault, oldest first.
    pub fn faulted(&self) -> Vec<Faulted> {
        self.lock().faulted.clone()
    }

    /// How many requests of `operation` arrived, faulted or not.
    pub fn seen(&self, operation: &str) -> usize {
        self.lock().seen.iter().filter(|o| *o == operation).count()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

async fn handle(state: Arc<Mutex<State>>, http: reqwest::Client, target: String, req: Request) -> Reply {
    let operation = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.rsplit('.').next())
        .unwrap_or_default()
        .to_owned();
    let body = String::from_utf8_lossy(req.body()).into_owned();
    let fault = {
        let mut state = lock(&state);
        state.seen.push(operation.clone());
        let rule = state.rules.iter_mut().find(|r| {
            r.remaining > 0 && r.operation == operation && r.contains.as_ref().is_none_or(|c| body.contains(c.as_str()))
        });
        let fault = rule.map(|r| {
            r.remaining -= 1;
            r.fault
        });
        let fault = fault.or_else(|| {
            let (rates, rng) = state.chaos.as_mut()?;
            drawn(&operation, *rates, rng)
        });
        if let Some(fault) = fault {
            state.faulted.push(Faulted { operation: operation.clone(), fault });
        }
        fault
    };
    match fault {
        None => super::fault_proxy::forward(&http, &target, "/", req).await,
        Some(WireFault::Conflict) if operation == "TransactWriteItems" => {
            let items = serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|b| b["TransactItems"].as_array().map(Vec::len))
                .unwrap_or(1);
            // The last item met another transaction; the others were fine.
            let reasons: Vec<Value> = (0..items)
                .map(|i| match i + 1 == items {
                    true => json!({"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"}),
                    false => json!({"Code": "None"}),
                })
                .collect();
            let codes: Vec<&str> =
                (0..items).map(|i| if i + 1 == items { "TransactionConflict" } else { "None" }).collect();
            error(
                400,
                "TransactionCanceledException",
                &format!(
                    "Transaction cancelled, please refer cancellation reasons for specific reasons [{}]",
                    codes.join(", ")
                ),
                Some(reasons),
            )
        }
        Some(WireFault::Conflict) => {
            error(400, "TransactionConflictException", "Transaction is ongoing for the item", None)
        }
        Some(WireFault::Throttle) => {
            error(400, "ThrottlingException", "Rate of requests exceeds the allowed throughput.", None)
        }
        Some(WireFault::LoseAnswer) => {
            // Carried out; the answer goes nowhere.
            let _ = super::fault_proxy::forward(&http, &target, "/", req).await;
            error(500, "InternalServerError", "Internal server error", None)
        }
        Some(WireFault::Unprocessed) => unprocessed(&http, &target, req, &body).await,
    }
}

/// A fault for one request of `operation`, drawn at `rates`.
fn drawn(operation: &str, rates: Chaos, rng: &mut fastrand::Rng) -> Option<WireFault> {
    let mut hit = |per_mille: u32| rng.u32(0..1000) < per_mille;
    let write = matches!(operation, "TransactWriteItems" | "PutItem" | "UpdateItem" | "DeleteItem");
    if operation == "TransactWriteItems" && hit(rates.conflict) {
        return Some(WireFault::Conflict);
    }
    if write && operation != "TransactWriteItems" && hit(rates.item_conflict) {
        return Some(WireFault::Conflict);
    }
    if write && hit(rates.lose_answer) {
        return Some(WireFault::LoseAnswer);
    }
    if operation == "BatchGetItem" && hit(rates.unprocessed) {
        return Some(WireFault::Unprocessed);
    }
    if hit(rates.throttle) {
        return Some(WireFault::Throttle);
    }
    None
}

/// A DynamoDB error answer, as the JSON protocol writes it.
fn error(status: u16, code: &str, message: &str, reasons: Option<Vec<Value>>) -> Reply {
    let mut body = json!({"__type": format!("com.amazonaws.dynamodb.v20120810#{code}"), "message": message});
    if let Some(reasons) = reasons {
        body["CancellationReasons"] = Value::Array(reasons);
    }
    let mut answer = response(status, "application/x-amz-json-1.0", body.to_string());
    answer.headers_mut().insert(
        "x-amzn-requestid",
        slotguard_serve::header::HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()).expect("a uuid is ASCII"),
    );
    Reply::Respond(answer)
}

/// Forwards a `BatchGetItem`, then answers only the first item found and
/// hands every other requested key back as unprocessed.
async fn unprocessed(http: &reqwest::Client, target: &str, req: Request, body: &str) -> Reply {
    let headers = req.headers().clone();
    let mut upstream = http.post(format!("{target}/")).body(body.to_owned());
    for (name, value) in &headers {
        if !["host", "content-length", "connection"].contains(&name.as_str()) {
            upstream = upstream.header(name.as_str(), value.as_bytes());
        }
    }
    let Ok(answer) = upstream.send().await else { return error(500, "InternalServerError", "proxy", None) };
    let Ok(mut found) = answer.json::<Value>().await else { return error(500, "InternalServerError", "proxy", None) };
    let request: Value = serde_json::from_str(body).unwrap_or_default();
    let mut unprocessed = serde_json::Map::new();
    if let (Some(asked), Some(responses)) = (request["RequestItems"].as_object(), found["Responses"].as_object_mut()) {
        for (table, spec) in asked {
            let items = responses.get_mut(table).and_then(Value::as_array_mut);
            let Some(items) = items else { continue };
            let kept = items.first().cloned();
            let key_of = |item: &Value| json!({"pk": item["pk"], "sk": item["sk"]});
            let kept_key = kept.as_ref().map(key_of);
            let rest: Vec<Value> = spec["Keys"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|k| Some(*k) != kept_key.as_ref())
                .cloned()
                .collect();
            items.clear();
            items.extend(kept);
            if !rest.is_empty() {
                let mut spec = spec.clone();
                spec["Keys"] = Value::Array(rest);
                unprocessed.insert(table.clone(), spec);
            }
        }
    }
    found["UnprocessedKeys"] = Value::Object(unprocessed);
    Reply::Respond(response(200, "application/x-amz-json-1.0", found.to_string()))
}
