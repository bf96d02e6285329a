//! The interpreter: runs one plan against one world, step by step, through
//! the scheduler; keeps the client-side model (reservations, idempotency
//! keys, sessions, the Stripe mailbox, in-flight SQS messages); checks the
//! cheap invariants after every step; then quiesces and runs the final checks.

use super::check::{self, Snapshot, Violation};
use super::faults::{Ctl, Decision};
use super::plan::{Auth, EventPick, KeyMode, PlanStep, Step, UrlVariant};
use super::sched::{Outcome, Ran, Sched};
use super::world::{ADMIN_TOKEN, STRIPE_KEY, VISIBILITY_MINUTES, WEBHOOK_SECRET, World, resource_from_spec};
use crate::fakes::dynamo_wire::WireFault;
use aws_lambda_events::event::sqs::SqsEvent;
use aws_sdk_sqs::types::MessageSystemAttributeName;
use chrono::{DateTime, Duration, Utc};
use lambda_http::{Body, RequestExt, Response};
use serde_json::{Value, json};
use slotguard::adapters::dynamo::DynamoStore;
use slotguard::api::cancel::{CancelDeps, cancel_at};
use slotguard::api::checkout::checkout_at;
use slotguard::api::put_resource::put_resource;
use slotguard::api::reschedule::{RescheduleDeps, reschedule_at};
use slotguard::api::reservation_status::reservation_status_at;
use slotguard::api::reserve::reserve_at;
use slotguard::api::stripe_webhook::{WebhookDeps, stripe_webhook_at};
use slotguard::domain::Resource;
use slotguard::jobs::calendar_writer::{RetryPolicy, WriterDeps, write_batch};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;

pub const CUSTOMERS: [(&str, &str); 3] =
    [("Ada Lovelace", "ada@example.com"), ("Grace Hopper", "grace@example.com"), ("Alan Turing", "alan@example.com")];

/// A reservation the client knows about (it got its id in a 201).
#[derive(Debug, Clone)]
pub struct Res {
    pub id: String,
    pub resource: usize,
    /// Its interval as the client last saw it (a reschedule moves it).
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub booking_type: String,
    pub customer: usize,
    pub amount: i64,
    pub currency: String,
    /// The reservation's secret, from the `201` of its reserve.
    pub secret: Option<String>,
    /// When free cancellation ended, if a customer's move made after that
    /// kept it there (the model of `Claim::free_cancel_until`).
    pub free_until: Option<DateTime<Utc>>,
    /// A move of it ran into a fault or a pause: when it decided is not
    /// known, so either deadline may be the booking's.
    pub free_until_unsure: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    /// Made by slotguard's checkout.
    Own,
    /// Made directly at Stripe for 1.00, naming a reservation.
    Foreign,
    /// Made directly at Stripe for the reservation's own price.
    Second,
}

#[derive(Debug, Clone)]
pub struct Sess {
    pub id: String,
    pub reservation: String,
    pub kind: SessionKind,
}

/// A Stripe event as the harness delivers it.
#[derive(Debug, Clone)]
pub struct Mail {
    pub id: String,
    pub kind: String,
    pub session: String,
    pub body: String,
    /// Some delivery got a 2xx.
    pub acked: bool,
    pub deliveries: u32,
}

/// A cancel request made with the booking's token or as the admin: one of
/// them decides what the cancellation refunds.
#[derive(Debug, Clone)]
pub struct CancelAttempt {
    pub reservation: String,
    pub host: bool,
    pub at: DateTime<Utc>,
}

/// One line of the printed history.
#[derive(Debug, Clone)]
pub struct LogLine {
    /// The plan step, or `None` in the quiesce phase.
    pub step: Option<usize>,
    pub desc: String,
    pub status: String,
    pub faults: Vec<String>,
}

impl std::fmt::Display for LogLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.step {
            Some(i) => write!(f, "{i:>3}  ")?,
            None => write!(f, "  q  ")?,
        }
        write!(f, "{:<70} -> {}", self.desc, self.status)?;
        if !self.faults.is_empty() {
            write!(f, "   [{}]", self.faults.join(" "))?;
        }
        Ok(())
    }
}

/// What to do when an op finishes.
#[derive(Debug, Clone)]
enum Pending {
    Reserve {
        resource: usize,
        start: DateTime<Utc>,
        customer: usize,
    },
    Checkout {
        reservation: String,
    },
    Deliver {
        mail: usize,
    },
    Cancel {
        reservation: String,
        auth: Auth,
        bearer: Option<String>,
        check: Option<PolicyCheck>,
    },
    Reschedule {
        reservation: String,
        auth: Auth,
        bearer: Option<String>,
        body: String,
        check: Option<PolicyCheck>,
        gives_up: bool,
        /// The harness clock when the move was sent (the handler's now).
        at: DateTime<Utc>,
    },
    Calendar {
        receipt: String,
        lose_delete: bool,
    },
    Reconcile,
    CatchUp,
}

impl Pending {
    fn http(&self) -> bool {
        !matches!(self, Pending::Calendar { .. } | Pending::Reconcile | Pending::CatchUp)
    }
}

/// What an unhindered customer request (no fault, no pause) must be answered,
/// as the type's policy says, given the booking as it was just before.
#[derive(Debug, Clone)]
pub enum PolicyCheck {
    /// A cancel of a confirmed booking: refunds this, or is refused (`None`).
    Cancel { refund: Option<i64> },
    /// A move to another time or duration: allowed by the policy, and at the same price.
    Move { allowed: bool, same_price: bool },
}

struct OpRec {
    log: usize,
    desc: String,
    pending: Pending,
    /// How many wire faults had been answered when the op started: any
    /// more by its end may be its own (ops interleave only when parked).
    wire_mark: usize,
}

/// Counters summed over every history for the summary line.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub histories: usize,
    pub steps: usize,
    pub noops: usize,
    pub ops: usize,
    pub fail_before: usize,
    pub fail_after: usize,
    pub crashes: usize,
    pub pauses: usize,
    pub resumed: usize,
    pub faulted_5xx: usize,
    pub paused_503: usize,
    pub holds: usize,
    pub sessions: usize,
    pub paid: usize,
    pub events: usize,
    pub deliveries: usize,
    pub confirmed: usize,
    pub cancelled: usize,
    pub refunds: usize,
    pub calendar_events: usize,
    pub clock_jumps: usize,
    pub moves: usize,
    pub move_refusals: usize,
    pub late_cancels: usize,
    pub settings_changes: usize,
    pub settings_refusals: usize,
    pub seat_holds: usize,
    pub team_holds: usize,
    pub sold_out: usize,
    pub seat_moves_refused: usize,
    pub confirmed_seats: usize,
    pub confirmed_team: usize,
    /// DynamoDB's own failures answered on the wire: conflicts, lost
    /// answers, throttling, unprocessed keys.
    pub wire_conflicts: usize,
    pub wire_lost_answers: usize,
    pub wire_throttles: usize,
    pub wire_unprocessed: usize,
}

impl Stats {
    pub fn add(&mut self, o: &Stats) {
        let Stats {
            histories,
            steps,
            noops,
            ops,
            fail_before,
            fail_after,
            crashes,
            pauses,
            resumed,
            faulted_5xx,
            paused_503,
            holds,
            sessions,
            paid,
            events,
            deliveries,
            confirmed,
            cancelled,
            refunds,
            calendar_events,
            clock_jumps,
            moves,
            move_refusals,
            late_cancels,
            settings_changes,
            settings_refusals,
            seat_holds,
            team_holds,
            sold_out,
            seat_moves_refused,
            confirmed_seats,
            confirmed_team,
            wire_conflicts,
            wire_lost_answers,
            wire_throttles,
            wire_unprocessed,
        } = o;
        self.wire_conflicts += wire_conflicts;
        self.wire_lost_answers += wire_lost_answers;
        self.wire_throttles += wire_throttles;
        self.wire_unprocessed += wire_unprocessed;
        self.histories += histories;
        self.steps += steps;
        self.noops += noops;
        self.ops += ops;
        self.fail_before += fail_before;
        self.fail_after += fail_after;
        self.crashes += crashes;
        self.pauses += pauses;
        self.resumed += resumed;
        self.faulted_5xx += faulted_5xx;
        self.paused_503 += paused_503;
        self.holds += holds;
        self.sessions += sessions;
        self.paid += paid;
        self.events += events;
        self.deliveries += deliveries;
        self.confirmed += confirmed;
        self.cancelled += cancelled;
        self.refunds += refunds;
        self.calendar_events += calendar_events;
        self.clock_jumps += clock_jumps;
        self.moves += moves;
        self.settings_changes += settings_changes;
        self.settings_refusals += settings_refusals;
        self.move_refusals += move_refusals;
        self.late_cancels += late_cancels;
        self.seat_holds += seat_holds;
        self.team_holds += team_holds;
        self.sold_out += sold_out;
        self.seat_moves_refused += seat_moves_refused;
        self.confirmed_seats += confirmed_seats;
        self.confirmed_team += confirmed_team;
    }
}

/// Builds the request API Gateway would hand a handler.
fn request(
    method: &str,
    uri: &str,
    id: Option<&str>,
    headers: &[(&str, String)],
    body: Option<String>,
) -> lambda_http::Request {
    let mut builder = lambda_http::http::Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        builder = builder.header(*name, value.as_str());
    }
    let req = builder.body(body.map(Body::Text).unwrap_or(Body::Empty)).unwrap();
    match id {
        Some(id) => req.with_path_parameters(HashMap::from([("id".to_owned(), id.to_owned())])),
        None => req,
    }
}

fn outcome(response: Response<Body>) -> Outcome {
    Outcome { status: response.status().as_u16(), body: String::from_utf8_lossy(response.body().as_ref()).into_owned() }
}

/// The `k`-th most recent of `len` entities.
fn recent(k: usize, len: usize) -> usize {
    len - 1 - (k % len)
}

pub fn short(id: &str) -> String {
    // rsv_ra_20261214T050000_<32 hex>: keep the slot and 6 hex digits.
    if let Some(rest) = id.strip_prefix("rsv_") {
        let (head, random) = rest.rsplit_once('_').unwrap_or((rest, ""));
        return format!("{head}_{}", &random[..random.len().min(6)]);
    }
    if let Some(rest) = id.strip_prefix("cs_test_") {
        return format!("cs_{}", &rest[..rest.len().min(6)]);
    }
    if let Some(rest) = id.strip_prefix("evt_") {
        return format!("evt_{}", &rest[..rest.len().min(6)]);
    }
    id.to_owned()
}

fn policy() -> RetryPolicy {
    RetryPolicy {
        base: std::time::Duration::from_millis(1),
        cap: std::time::Duration::from_millis(5),
        attempt_budget: std::time::Duration::ZERO,
        max_receives: slotguard_local::dev::MAX_RECEIVES,
    }
}

/// How long one calendar writer invocation may retry.
const WRITER_BUDGET: std::time::Duration = std::time::Duration::from_millis(300);

pub struct Runner {
    pub world: Arc<World>,
    sched: Sched,
    ctl: Arc<Ctl>,
    plan: Vec<PlanStep>,
    pub now: DateTime<Utc>,
    sim_offset: i64,
    pub reservations: Vec<Res>,
    keys: Vec<(String, Value)>,
    pub sessions: Vec<Sess>,
    pub mailbox: Vec<Mail>,
    /// Received, never deleted: comes back after the visibility timeout.
    inflight: Vec<(String, DateTime<Utc>)>,
    ops: HashMap<usize, OpRec>,
    next_quiesce_op: usize,
    pub log: Vec<LogLine>,
    cancel_retries: Vec<(String, Auth, Option<String>)>,
    reschedule_retries: Vec<(String, Auth, Option<String>, String)>,
    /// Every cancel request that could decide a refund.
    pub cancels: Vec<CancelAttempt>,
    /// Reservations with a failed reschedule whose client gave up.
    pub abandoned_moves: HashSet<String>,
    /// Every start each reservation was seen at (the status route, the table, a reschedule's answer).
    pub starts_seen: HashMap<String, BTreeSet<DateTime<Utc>>>,
    seen: HashMap<String, String>,
    pub violations: Vec<Violation>,
    pub stats: Stats,
    rng: fastrand::Rng,
    /// The plan step running now (`None` in the quiesce phase).
    current: Option<usize>,
    /// Where the time went, for tuning (`SLOTGUARD_HARNESS_TIMING=1`).
    pub timing: String,
    /// Each resource's settings as the host stored them, with the step from
    /// which each was current (0: as the world made it).
    settings: Vec<Vec<(usize, Resource)>>,
    /// The step of each reservation's first checkout request.
    checkout_since: HashMap<String, usize>,
}

impl Runner {
    pub fn new(seed: u64, world: Arc<World>, plan: Vec<PlanStep>, t0: DateTime<Utc>, sim_offset: i64) -> Self {
        let ctl = Ctl::new(3);
        Self {
            sched: Sched::new(ctl.clone()),
            ctl,
            plan,
            now: t0,
            sim_offset,
            reservations: Vec::new(),
            keys: Vec::new(),
            sessions: Vec::new(),
            mailbox: Vec::new(),
            inflight: Vec::new(),
            ops: HashMap::new(),
            next_quiesce_op: 1_000_000,
            log: Vec::new(),
            cancel_retries: Vec::new(),
            reschedule_retries: Vec::new(),
            cancels: Vec::new(),
            starts_seen: HashMap::new(),
            abandoned_moves: HashSet::new(),
            seen: HashMap::new(),
            violations: Vec::new(),
            stats: Stats { histories: 1, ..Stats::default() },
            rng: fastrand::Rng::with_seed(seed ^ 0x0dd_ba11),
            current: None,
            timing: String::new(),
            settings: world.resources.iter().map(|r| vec![(0, r.resource.clone())]).collect(),
            checkout_since: HashMap::new(),
            world,
        }
    }

    pub fn violate(&mut self, inv: &'static str, detail: String) {
        // One history can keep tripping over one bug: the first few say it.
        if self.violations.len() < 40 {
            self.violations.push(Violation { inv, step: self.current, detail });
        }
    }

    pub fn note(&mut self, desc: String, status: impl Into<String>) {
        self.log.push(LogLine { step: self.current, desc, status: status.into(), faults: Vec::new() });
    }

    fn noop(&mut self, desc: &str) {
        self.stats.noops += 1;
        self.note(desc.to_owned(), "no-op");
    }

    pub async fn run(&mut self) {
        let started = std::time::Instant::now();
        let (mut in_steps, mut in_checks) = (std::time::Duration::ZERO, std::time::Duration::ZERO);
        for i in 0..self.plan.len() {
            self.current = Some(i);
            self.stats.steps += 1;
            let t = std::time::Instant::now();
            self.step(i).await;
            in_steps += t.elapsed();
            let t = std::time::Instant::now();
            self.fetch_mailbox().await;
            self.per_step_checks().await;
            in_checks += t.elapsed();
        }
        self.current = None;
        let t = std::time::Instant::now();
        self.quiesce().await;
        let quiesce = t.elapsed();
        let t = std::time::Instant::now();
        self.final_checks().await;
        self.timing = format!(
            "steps {in_steps:?}, per-step checks {in_checks:?}, quiesce {quiesce:?}, final {:?} (run {:?})",
            t.elapsed(),
            started.elapsed()
        );
    }

    // ---- the Stripe simulator -------------------------------------------------

    async fn sim_post(&self, path: &str) -> (u16, Value) {
        let r = self.world.http.post(format!("{}{path}", self.world.sim)).send().await.expect("the simulator answers");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn sim_get(&self, path: &str) -> Value {
        let r = self.world.http.get(format!("{}{path}", self.world.sim)).send().await.expect("the simulator answers");
        r.json().await.expect("the simulator answers JSON")
    }

    /// Keeps the simulator's clock on the harness's (a few seconds ahead at most).
    async fn sync_sim_clock(&mut self, force: bool) {
        let desired = self.now.timestamp() - Utc::now().timestamp();
        let advance = desired - self.sim_offset;
        if advance == 0 || (!force && advance.abs() < 3) {
            return;
        }
        let (status, body) = self.sim_post(&format!("/_sim/clock?advance_secs={advance}")).await;
        assert_eq!(status, 200, "clock: {body}");
        self.sim_offset = body["offset_secs"].as_i64().unwrap();
    }

    /// Fetches events the simulator recorded since the last look.
    async fn fetch_mailbox(&mut self) {
        let events = self.sim_get("/_sim/events").await;
        let events = events["events"].as_array().cloned().unwrap_or_default();
        for e in events.iter().skip(self.mailbox.len()) {
            let id = e["id"].as_str().unwrap().to_owned();
            let r = self
                .world
                .http
                .get(format!("{}/v1/events/{id}", self.world.sim))
                .bearer_auth(STRIPE_KEY)
                .send()
                .await
                .expect("the simulator answers");
            assert_eq!(r.status().as_u16(), 200);
            let body = r.text().await.unwrap();
            self.mailbox.push(Mail {
                id,
                kind: e["type"].as_str().unwrap_or_default().to_owned(),
                session: e["session_id"].as_str().unwrap_or_default().to_owned(),
                body,
                acked: false,
                deliveries: 0,
            });
            self.stats.events += 1;
        }
    }

    // ---- ops ------------------------------------------------------------------

    async fn start_op<F>(&mut self, op: usize, desc: String, pending: Pending, script: Vec<Decision>, fut: F)
    where
        F: std::future::Future<Output = Outcome> + Send + 'static,
    {
        self.stats.ops += 1;
        let log = self.log.len();
        self.log.push(LogLine { step: self.current, desc: desc.clone(), status: "…".into(), faults: Vec::new() });
        let wire_mark = self.world.wire.faulted().len();
        self.ops.insert(op, OpRec { log, desc, pending, wire_mark });
        let ran = self.sched.start(op, script, fut).await;
        self.ran(ran).await;
    }

    async fn ran(&mut self, ran: Ran) {
        match ran {
            Ran::Parked(op) => {
                self.stats.pauses += 1;
                let fired: Vec<String> = self.sched.fired(op).iter().map(ToString::to_string).collect();
                if let Some(rec) = self.ops.get(&op) {
                    let line = &mut self.log[rec.log];
                    line.status = match self.current {
                        Some(i) if line.step != Some(i) => format!("parked again at step {i}"),
                        _ => "parked".into(),
                    };
                    line.faults = fired;
                }
            }
            Ran::Done(op, outcome) => self.complete(op, outcome).await,
        }
        for (op, outcome) in self.sched.take_finished() {
            self.complete(op, outcome).await;
        }
    }

    async fn complete(&mut self, op: usize, outcome: Outcome) {
        let Some(rec) = self.ops.remove(&op) else { return };
        let fired = self.sched.fired(op);
        for f in &fired {
            match f.decision {
                Decision::FailBefore => self.stats.fail_before += 1,
                Decision::FailAfter => self.stats.fail_after += 1,
                Decision::Crash => self.stats.crashes += 1,
                _ => {}
            }
        }
        // DynamoDB's own failures on the wire count as faults of the op.
        let wired: Vec<String> = self.world.wire.faulted()[rec.wire_mark..]
            .iter()
            .map(|f| format!("wire:{}:{:?}", f.operation, f.fault))
            .collect();
        let failed = self.sched.failed(op) || !wired.is_empty();
        let paused = self.sched.paused(op);
        {
            let line = &mut self.log[rec.log];
            let status = if rec.pending.http() {
                outcome.status.to_string()
            } else if outcome.status == 200 {
                "done".to_owned()
            } else {
                "failed".to_owned()
            };
            line.status = match self.current {
                Some(i) if line.step != Some(i) => format!("{status} (finished at step {i})"),
                None if line.step.is_some() => format!("{status} (finished in quiesce)"),
                _ => status,
            };
            if let (Pending::Deliver { .. }, true) = (&rec.pending, (200..300).contains(&outcome.status)) {
                let body: Value = serde_json::from_str(&outcome.body).unwrap_or(Value::Null);
                let said = body["outcome"].as_str().or(body["ignored"].as_str().map(|_| "ignored"));
                if let Some(said) = said {
                    line.status.push_str(&format!(" {said}"));
                }
            }
            if let (Pending::CatchUp, 200) = (&rec.pending, outcome.status) {
                let report: Value = serde_json::from_str(&outcome.body).unwrap_or(Value::Null);
                line.status.push_str(&format!(
                    " read {} seen {} settled {} failed {}",
                    report["events_read"], report["seen_before"], report["settled"], report["failed"]
                ));
            }
            if outcome.status >= 400 && rec.pending.http() {
                let kind = serde_json::from_str::<Value>(&outcome.body)
                    .ok()
                    .and_then(|b| b["type"].as_str().map(str::to_owned));
                if let Some(kind) = kind {
                    line.status.push_str(&format!(" {kind}"));
                }
            }
            line.faults = fired.iter().map(ToString::to_string).chain(wired.iter().cloned()).collect();
        }

        // I5: a 5xx only when a fault was injected into this op (or, as 503,
        // when the op was parked while others changed the world).
        if outcome.status == 999 {
            self.violate("I5", format!("{} panicked: {}", rec.desc, outcome.body));
        } else if rec.pending.http() && outcome.status >= 500 {
            if failed {
                self.stats.faulted_5xx += 1;
            } else if paused && outcome.status == 503 {
                self.stats.paused_503 += 1;
            } else {
                self.violate(
                    "I5",
                    format!(
                        "{} answered {} with no fault injected into it: {}",
                        rec.desc, outcome.status, outcome.body
                    ),
                );
            }
        }

        // I5 for the catch-up: with no fault injected and never parked, a run
        // works and settles every event it reads.
        if let (Pending::CatchUp, false, false) = (&rec.pending, failed, paused) {
            let report: Value = serde_json::from_str(&outcome.body).unwrap_or(Value::Null);
            if outcome.status != 200 || report["failed"] != 0 || report["not_attempted"] != 0 {
                self.violate(
                    "I5",
                    format!("a catch-up with no fault injected did not settle everything: {}", outcome.body),
                );
            }
        }

        match rec.pending {
            Pending::Reserve { resource, start, customer } => {
                if outcome.status == 409 && problem_type(&outcome).as_deref() == Some("sold_out") {
                    self.stats.sold_out += 1;
                }
                if outcome.status == 201 {
                    let body: Value = serde_json::from_str(&outcome.body).unwrap_or(Value::Null);
                    let id = body["reservation_id"].as_str().unwrap_or_default().to_owned();
                    if !id.is_empty() && !self.reservations.iter().any(|r| r.id == id) {
                        self.stats.holds += 1;
                        let info = &self.world.resources[resource];
                        if info.team().is_some() {
                            self.stats.team_holds += 1;
                        }
                        let kind = body["booking_type"].as_str().unwrap_or_default();
                        if info.resource.booking_type(Some(kind)).is_some_and(|t| t.seats.is_some()) {
                            self.stats.seat_holds += 1;
                        }
                        let at = |name: &str| {
                            body[name]
                                .as_str()
                                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                                .map(|t| t.with_timezone(&Utc))
                        };
                        let end = at("end").unwrap_or(start);
                        self.starts_seen.entry(id.clone()).or_default().insert(start);
                        self.reservations.push(Res {
                            id,
                            resource,
                            start,
                            end,
                            booking_type: body["booking_type"].as_str().unwrap_or_default().to_owned(),
                            customer,
                            amount: body["amount"].as_i64().unwrap_or_default(),
                            currency: body["currency"].as_str().unwrap_or_default().to_owned(),
                            secret: body["reservation_secret"].as_str().map(str::to_owned),
                            free_until: None,
                            free_until_unsure: false,
                        });
                    }
                }
            }
            Pending::Checkout { reservation: asked } => {
                if outcome.status == 409 && problem_type(&outcome).as_deref() == Some("settings_changed") {
                    self.stats.settings_refusals += 1;
                }
                if matches!(outcome.status, 200 | 201) {
                    let body: Value = serde_json::from_str(&outcome.body).unwrap_or(Value::Null);
                    let id = body["session_id"].as_str().unwrap_or_default().to_owned();
                    let reservation = body["reservation_id"].as_str().unwrap_or_default().to_owned();
                    if !id.is_empty() && !self.sessions.iter().any(|s| s.id == id) {
                        self.check_session_price(&rec.desc, &asked);
                        self.stats.sessions += 1;
                        self.sessions.push(Sess { id, reservation, kind: SessionKind::Own });
                    }
                }
            }
            Pending::Deliver { mail } => {
                self.stats.deliveries += 1;
                self.mailbox[mail].deliveries += 1;
                if (200..300).contains(&outcome.status) {
                    self.mailbox[mail].acked = true;
                }
            }
            Pending::Cancel { reservation, auth, bearer, check } => {
                let kind = problem_type(&outcome);
                let body: Value = serde_json::from_str(&outcome.body).unwrap_or(Value::Null);
                // I6: a `200` says the booking is cancelled; it must be, now.
                if outcome.status == 200 {
                    let (_, shown) = self.status_of(&reservation).await;
                    if shown["status"] != "cancelled" {
                        self.violate(
                            "I6",
                            format!("{} answered 200 but the reservation reads {}", rec.desc, shown["status"]),
                        );
                    }
                }
                let amount = self.reservations.iter().find(|r| r.id == reservation).map(|r| r.amount);
                if kind.as_deref() == Some("outside_cancellation_window")
                    || (outcome.status == 200 && body["refunded"].as_i64().zip(amount).is_some_and(|(x, a)| x < a))
                {
                    self.stats.late_cancels += 1;
                }
                // I8: an unhindered customer cancel is answered as the policy says.
                if let (Some(PolicyCheck::Cancel { refund }), false, false) = (&check, failed, paused) {
                    let answered = match (outcome.status, kind.as_deref()) {
                        (200, _) => Some(body["refunded"].as_i64()),
                        (409, Some("outside_cancellation_window")) => Some(None),
                        _ => None,
                    };
                    if let Some(answered) = answered
                        && answered != *refund
                    {
                        self.violate(
                            "I8",
                            format!(
                                "{} answered {} (refunded {answered:?}); the policy says {}",
                                rec.desc,
                                outcome.status,
                                match refund {
                                    Some(x) => format!("refund {x}"),
                                    None => "refuse".into(),
                                }
                            ),
                        );
                    }
                }
                if matches!(auth, Auth::Wrong | Auth::Other | Auth::Missing) {
                    let allowed = matches!(outcome.status, 401 | 404) || (failed && outcome.status >= 500);
                    if !allowed {
                        self.violate(
                            "I5",
                            format!(
                                "{} without the reservation's secret answered {} (only 401, or 404 for no such reservation): {}",
                                rec.desc, outcome.status, outcome.body
                            ),
                        );
                    }
                } else if retryable(&outcome) {
                    self.cancel_retries.push((reservation, auth, bearer));
                }
            }
            Pending::Reschedule { reservation, auth, bearer, body, check, gives_up, at: sent_at } => {
                let kind = problem_type(&outcome);
                let answer: Value = serde_json::from_str(&outcome.body).unwrap_or(Value::Null);
                let asked: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                if matches!(
                    kind.as_deref(),
                    Some("outside_reschedule_window" | "price_differs" | "slot_taken" | "day_full")
                ) {
                    self.stats.move_refusals += 1;
                }
                // A seat is never moved: an authorised move is answered 409
                // not_reschedulable (or refused earlier: not confirmed, outside
                // the policy's window; or, to the place it is at, 200 with the
                // seat as it is, version 0: a retry after success), and,
                // refused, changes nothing (I5).
                let seat = self.reservations.iter().find(|r| r.id == reservation).is_some_and(|r| {
                    self.world.resources[r.resource]
                        .resource
                        .booking_type(Some(&r.booking_type))
                        .is_some_and(|t| t.seats.is_some())
                });
                if seat && !matches!(auth, Auth::Wrong | Auth::Other | Auth::Missing) {
                    if kind.as_deref() == Some("not_reschedulable") {
                        self.stats.seat_moves_refused += 1;
                    }
                    let unmoved = outcome.status == 200 && answer["start"] == asked["start"] && answer["version"] == 0;
                    let fine = (outcome.status == 409
                        && matches!(
                            kind.as_deref(),
                            Some("not_reschedulable" | "outside_reschedule_window" | "request_in_progress")
                        ))
                        || unmoved
                        || outcome.status == 404
                        || (outcome.status >= 500 && (failed || paused));
                    if !fine {
                        self.violate(
                            "I5",
                            format!(
                                "{} of a seat answered {} {}: a seat is never moved",
                                rec.desc, outcome.status, outcome.body
                            ),
                        );
                    }
                }
                if outcome.status == 200 {
                    let at = |v: &Value| {
                        v.as_str().and_then(|t| DateTime::parse_from_rfc3339(t).ok()).map(|t| t.with_timezone(&Utc))
                    };
                    let (start, end) = (at(&answer["start"]), at(&answer["end"]));
                    // The answer is the booking where it was asked to be.
                    let minutes = answer["duration_minutes"].as_i64();
                    let fits = start == at(&asked["start"])
                        && asked["duration_minutes"].as_i64().is_none_or(|m| Some(m) == minutes)
                        && answer["status"] == "confirmed";
                    if !fits {
                        self.violate("I8", format!("{} answered 200 with {answer} for {asked}", rec.desc));
                    }
                    if let (Some(start), Some(end)) = (start, end) {
                        self.starts_seen.entry(reservation.clone()).or_default().insert(start);
                        let resources = &self.world.resources;
                        if let Some(res) = self.reservations.iter_mut().find(|r| r.id == reservation) {
                            if (res.start, res.end) != (start, end) {
                                self.stats.moves += 1;
                                // A customer's move after free cancellation ended keeps it ended.
                                let kind = resources[res.resource].resource.booking_type(Some(&res.booking_type));
                                if let Some(kind) = kind {
                                    let deadline = res.free_until.unwrap_or(
                                        res.start - Duration::hours(i64::from(kind.cancellation.free_until_hours)),
                                    );
                                    res.free_until = (auth == Auth::Secret && sent_at > deadline).then_some(deadline);
                                }
                                res.free_until_unsure |= failed || paused;
                            }
                            (res.start, res.end) = (start, end);
                        }
                    }
                }
                // I8: an unhindered customer move is answered as the policy says.
                if let (Some(PolicyCheck::Move { allowed, same_price }), false, false) = (&check, failed, paused) {
                    let wrong = match (outcome.status, kind.as_deref()) {
                        (200, _) => !allowed || !same_price,
                        (409, Some("outside_reschedule_window")) => *allowed,
                        (409, Some("price_differs")) => !allowed || *same_price,
                        _ => false,
                    };
                    if wrong {
                        self.violate(
                            "I8",
                            format!(
                                "{} answered {} {}; the policy {} a customer's move now, the price is {}",
                                rec.desc,
                                outcome.status,
                                kind.unwrap_or_default(),
                                if *allowed { "allows" } else { "refuses" },
                                if *same_price { "the same" } else { "another" }
                            ),
                        );
                    }
                }
                if matches!(auth, Auth::Wrong | Auth::Other | Auth::Missing) {
                    let allowed = matches!(outcome.status, 401 | 404) || (failed && outcome.status >= 500);
                    if !allowed {
                        self.violate(
                            "I5",
                            format!(
                                "{} without the reservation's secret answered {} (only 401, or 404 for no such reservation): {}",
                                rec.desc, outcome.status, outcome.body
                            ),
                        );
                    }
                } else if retryable(&outcome) && gives_up {
                    // Whatever it did stays as it is: the calendar is reconcile's to fix.
                    self.abandoned_moves.insert(reservation);
                } else if retryable(&outcome) {
                    self.reschedule_retries.push((reservation, auth, bearer, body));
                }
            }
            Pending::Calendar { receipt, lose_delete } => {
                let sqs = self.world.sqs();
                let url = self.world.raw_queue.queue_url();
                if outcome.status == 200 {
                    if lose_delete {
                        self.inflight.push((receipt, self.now));
                    } else {
                        sqs.delete_message()
                            .queue_url(url)
                            .receipt_handle(receipt)
                            .send()
                            .await
                            .expect("delete a message");
                    }
                } else {
                    // A batch item failure: SQS makes it visible again (the
                    // harness does not wait out the visibility timeout).
                    sqs.change_message_visibility()
                        .queue_url(url)
                        .receipt_handle(receipt)
                        .visibility_timeout(0)
                        .send()
                        .await
                        .expect("change visibility");
                }
            }
            Pending::Reconcile | Pending::CatchUp => {}
        }
    }

    /// Runs every parked op to completion, pauses off.
    async fn drain_parked(&mut self) {
        self.ctl.pauses.store(false, Ordering::SeqCst);
        while let Some(ran) = self.sched.resume(0).await {
            self.stats.resumed += 1;
            self.ran(ran).await;
        }
        self.ctl.pauses.store(true, Ordering::SeqCst);
    }

    async fn jump(&mut self, minutes: i64) {
        // A Lambda does not outlive minutes of clock: parked ops finish first.
        self.drain_parked().await;
        self.stats.clock_jumps += 1;
        self.now += Duration::minutes(minutes);
        self.sync_sim_clock(true).await;
        // Received-but-never-deleted messages come back once the visibility timeout passed.
        let due: Vec<String> = self
            .inflight
            .iter()
            .filter(|(_, at)| self.now - *at >= Duration::minutes(VISIBILITY_MINUTES))
            .map(|(r, _)| r.clone())
            .collect();
        self.inflight.retain(|(r, _)| !due.contains(r));
        for receipt in due {
            self.make_visible(&receipt).await;
        }
    }

    async fn make_visible(&self, receipt: &str) {
        self.world
            .sqs()
            .change_message_visibility()
            .queue_url(self.world.raw_queue.queue_url())
            .receipt_handle(receipt)
            .visibility_timeout(0)
            .send()
            .await
            .expect("change visibility");
    }

    fn quiesce_op(&mut self) -> usize {
        self.next_quiesce_op += 1;
        self.next_quiesce_op
    }

    // ---- the steps ------------------------------------------------------------

    async fn step(&mut self, i: usize) {
        let PlanStep { step, script } = self.plan[i].clone();
        self.sync_sim_clock(false).await;
        match step {
            Step::Reserve { resource, slot, kind, duration, customer, key } => {
                let r = &self.world.resources[resource % self.world.resources.len()];
                let start = r.slots[slot % r.slots.len()];
                let rid = r.id.clone();
                let types = &r.resource.booking_types;
                let t = &types[kind % types.len()];
                let (type_id, minutes) = (t.id.clone(), t.durations[duration % t.durations.len()].minutes);
                let fresh = |customer: usize| {
                    let (name, email) = CUSTOMERS[customer % CUSTOMERS.len()];
                    json!({
                        "resource_id": rid,
                        "start": slotguard::domain::rfc3339(start),
                        "booking_type": type_id,
                        "duration_minutes": minutes,
                        "customer": { "name": name, "email": email }
                    })
                };
                let (key, body, how) = match key {
                    KeyMode::None => (None, fresh(customer), String::new()),
                    KeyMode::New => {
                        let key = format!("key-{i}");
                        let body = fresh(customer);
                        self.keys.push((key.clone(), body.clone()));
                        (Some(key.clone()), body, format!(" key={key}"))
                    }
                    KeyMode::Replay(_) | KeyMode::Mismatch(_) if self.keys.is_empty() => {
                        return self.noop("reserve with an earlier key (none yet)");
                    }
                    KeyMode::Replay(k) => {
                        let (key, body) = self.keys[recent(k, self.keys.len())].clone();
                        (Some(key.clone()), body, format!(" key={key} (replay)"))
                    }
                    KeyMode::Mismatch(k) => {
                        let (key, old) = self.keys[recent(k, self.keys.len())].clone();
                        let mut body = fresh(customer);
                        if body == old {
                            body = fresh(customer + 1);
                        }
                        (Some(key.clone()), body, format!(" key={key} (other body)"))
                    }
                };
                // A replayed body names its own slot.
                let (resource, start) = {
                    let rid = body["resource_id"].as_str().unwrap();
                    let at = DateTime::parse_from_rfc3339(body["start"].as_str().unwrap()).unwrap().with_timezone(&Utc);
                    (self.world.resources.iter().position(|r| r.id == rid).unwrap(), at)
                };
                let who = CUSTOMERS.iter().position(|(_, e)| *e == body["customer"]["email"]).unwrap_or(customer);
                let desc = format!(
                    "reserve {}@{} {}/{} by c{who}{how}",
                    self.world.resources[resource].id,
                    check::hhmm(start),
                    body["booking_type"].as_str().unwrap_or("?"),
                    body["duration_minutes"],
                );
                let mut headers = vec![("content-type", "application/json".to_owned())];
                if let Some(key) = key {
                    headers.push(("idempotency-key", key));
                }
                let req = request("POST", "/v1/reservations", None, &headers, Some(body.to_string()));
                let (world, now) = (self.world.clone(), self.now);
                self.start_op(i, desc, Pending::Reserve { resource, start, customer: who }, script, async move {
                    outcome(reserve_at(&world.store, req, now).await)
                })
                .await;
            }
            Step::Checkout { reservation, url } => {
                if self.reservations.is_empty() {
                    return self.noop("checkout (no reservation yet)");
                }
                let res = self.reservations[recent(reservation, self.reservations.len())].clone();
                let body = match url {
                    UrlVariant::Default => None,
                    UrlVariant::A => {
                        Some(json!({ "success_url": "https://a.example/ok/{RESERVATION_ID}" }).to_string())
                    }
                    UrlVariant::B => Some(
                        json!({ "success_url": "https://b.example/done", "cancel_url": "https://b.example/back" })
                            .to_string(),
                    ),
                };
                self.checkout_since.entry(res.id.clone()).or_insert(i);
                let desc = format!("checkout {} url={url:?}", short(&res.id));
                let uri = format!("/v1/reservations/{}/checkout", res.id);
                let mut headers = vec![("content-type", "application/json".to_owned())];
                if let Some(secret) = &res.secret {
                    headers.push(("authorization", format!("Bearer {secret}")));
                }
                let req = request("POST", &uri, Some(&res.id), &headers, body);
                let (world, now) = (self.world.clone(), self.now);
                self.start_op(i, desc, Pending::Checkout { reservation: res.id.clone() }, script, async move {
                    outcome(checkout_at(&world.store, &world.payments, &world.urls, req, now).await)
                })
                .await;
            }
            Step::Pay { session, delayed } => {
                if self.sessions.is_empty() {
                    return self.noop("pay (no session yet)");
                }
                let s = self.sessions[recent(session, self.sessions.len())].clone();
                let (status, body) =
                    self.sim_post(&format!("/_sim/checkout/sessions/{}/complete?async={delayed}", s.id)).await;
                if status == 200 {
                    self.stats.paid += 1;
                }
                let what = if delayed { "pays (delayed method)" } else { "pays" };
                self.note(
                    format!("customer {what} {} ({:?}, {})", short(&s.id), s.kind, short(&s.reservation)),
                    sim_status(status, &body),
                );
            }
            Step::Settle { session, succeeded } => {
                if self.sessions.is_empty() {
                    return self.noop("settle (no session yet)");
                }
                let s = self.sessions[recent(session, self.sessions.len())].clone();
                let result = if succeeded { "succeeded" } else { "failed" };
                let (status, body) =
                    self.sim_post(&format!("/_sim/checkout/sessions/{}/async_payment?result={result}", s.id)).await;
                self.note(
                    format!("delayed payment {result} for {} ({:?})", short(&s.id), s.kind),
                    sim_status(status, &body),
                );
            }
            Step::Expire { session } => {
                if self.sessions.is_empty() {
                    return self.noop("expire (no session yet)");
                }
                let s = self.sessions[recent(session, self.sessions.len())].clone();
                let (status, body) = self.sim_post(&format!("/_sim/checkout/sessions/{}/expire", s.id)).await;
                self.note(format!("session {} ({:?}) expires", short(&s.id), s.kind), sim_status(status, &body));
            }
            Step::Foreign { reservation, delayed, own_price } => {
                if self.reservations.is_empty() {
                    return self.noop("foreign session (no reservation yet)");
                }
                let res = self.reservations[recent(reservation, self.reservations.len())].clone();
                self.foreign_session(&res, delayed, own_price).await;
            }
            Step::Deliver { pick } => {
                if self.mailbox.is_empty() {
                    return self.noop("deliver (no event yet)");
                }
                let unacked: Vec<usize> = (0..self.mailbox.len()).filter(|m| !self.mailbox[*m].acked).collect();
                let mail = match pick {
                    EventPick::Unacknowledged(k) if !unacked.is_empty() => unacked[k % unacked.len()],
                    EventPick::Unacknowledged(k) | EventPick::Any(k) => recent(k, self.mailbox.len()),
                };
                self.deliver(i, mail, script).await;
            }
            Step::Cancel { reservation, auth } => {
                if self.reservations.is_empty() {
                    return self.noop("cancel (no reservation yet)");
                }
                // A customer cancels a booking with the secret their reserve
                // got; anyone may try any reservation without it. Mostly a
                // booking the client last saw confirmed.
                let Some(k) = self.pick_booking(reservation, auth, 2) else {
                    return self.noop("cancel with a secret (no reservation has one)");
                };
                let id = self.reservations[k].id.clone();
                // The client reads the status page first.
                let status = self.read_status(k).await;
                let Some(bearer) = self.bearer(k, auth) else {
                    return self.noop(&format!("cancel {} with a secret (none to use)", short(&id)));
                };
                // What the policy gives the customer for the booking as it is now.
                let check = match (auth, status["status"].as_str(), self.booking_now(k, &status)) {
                    (Auth::Secret, Some("confirmed"), Some((start, _, policy)))
                        if !self.reservations[k].free_until_unsure =>
                    {
                        Some(PolicyCheck::Cancel {
                            refund: check::policy_refund(
                                &policy.cancellation,
                                false,
                                self.reservations[k].amount,
                                start,
                                self.reservations[k].free_until,
                                self.now,
                            ),
                        })
                    }
                    _ => None,
                };
                self.cancel(i, id, auth, bearer, check, script).await;
            }
            Step::Reschedule { reservation, slot, duration, auth, gives_up } => {
                if self.reservations.is_empty() {
                    return self.noop("reschedule (no reservation yet)");
                }
                // Mostly a booking the client last saw confirmed (its own, or
                // any as the admin); now and then any other.
                let Some(k) = self.pick_booking(reservation, auth, 3) else {
                    return self.noop("reschedule with a secret (no reservation has one)");
                };
                let id = self.reservations[k].id.clone();
                let status = self.read_status(k).await;
                let Some(bearer) = self.bearer(k, auth) else {
                    return self.noop(&format!("reschedule {} with a secret (none to use)", short(&id)));
                };
                let res = self.reservations[k].clone();
                let info = &self.world.resources[res.resource];
                let target = info.slots[slot % info.slots.len()];
                // The handler prices a move with the settings stored now.
                let Some(kind) = self.settings_now(res.resource).booking_type(Some(&res.booking_type)).cloned() else {
                    return self.noop(&format!("reschedule {} (type {:?} unknown)", short(&id), res.booking_type));
                };
                let asked = duration.map(|d| &kind.durations[d % kind.durations.len()]);
                let mut body = json!({ "start": slotguard::domain::rfc3339(target) });
                if let Some(d) = asked {
                    body["duration_minutes"] = json!(d.minutes);
                }
                // What the policy says of moving the booking as it is now.
                let check = match (auth, status["status"].as_str(), self.booking_now(k, &status)) {
                    (Auth::Secret, Some("confirmed"), Some((start, minutes, policy))) => {
                        let new_minutes = asked.map(|d| d.minutes).unwrap_or(minutes);
                        let same_place = start == target && new_minutes == minutes;
                        let price = kind.duration(Some(new_minutes)).map(|d| d.price.amount);
                        (!same_place).then_some(PolicyCheck::Move {
                            allowed: check::policy_moves(&policy.reschedule, start, self.now),
                            same_price: price == Some(res.amount),
                        })
                    }
                    _ => None,
                };
                self.reschedule(i, id, auth, bearer, body.to_string(), check, gives_up, script).await;
            }
            Step::CalendarWork { lose_delete } => self.calendar_work(i, lose_delete, script).await,
            Step::Reconcile => {
                let (from, to) = self.window();
                let world = self.world.clone();
                self.start_op(i, "reconcile".into(), Pending::Reconcile, script, async move {
                    match slotguard::jobs::reconcile::reconcile(&world.store, &world.calendar, &world.queue, from, to)
                        .await
                    {
                        Ok(report) => Outcome { status: 200, body: serde_json::to_string(&report).unwrap() },
                        Err(e) => Outcome { status: 500, body: e.to_string() },
                    }
                })
                .await;
            }
            Step::CatchUp => self.catch_up(i, script).await,
            Step::ClockJump { minutes } => {
                self.jump(minutes).await;
                let now = self.now;
                self.note(format!("clock +{minutes} min"), format!("now {}", check::hhmm(now)));
            }
            Step::ClockPastSlots { minutes } => {
                let last = self.world.resources.iter().map(|r| r.last_blocked_end()).max().unwrap();
                let target = last + Duration::minutes(minutes);
                if target <= self.now {
                    return self.noop("clock past the slots (already)");
                }
                let jump = (target - self.now).num_minutes();
                self.jump(jump).await;
                let now = self.now;
                self.note(format!("clock past every slot (+{jump} min)"), format!("now {}", check::hhmm(now)));
            }
            Step::Settings { resource, level } => self.change_settings(resource, level).await,
            Step::Resume { parked } => {
                let waiting = self.sched.parked();
                match self.sched.resume(parked).await {
                    None => self.noop("resume (nothing parked)"),
                    Some(ran) => {
                        self.stats.resumed += 1;
                        let op = waiting[parked % waiting.len()];
                        let what = if matches!(ran, Ran::Parked(_)) { "parked again" } else { "finished" };
                        self.note(format!("resume the op of step {op}"), what);
                        self.ran(ran).await;
                    }
                }
            }
        }
    }

    /// The settings of the k-th resource stored last.
    fn settings_now(&self, k: usize) -> &Resource {
        &self.settings[k].last().expect("a resource's first settings").1
    }

    /// The host stores new prices for a resource through another instance's
    /// store (its own resource cache), as `PUT /v1/resources/{id}` does.
    async fn change_settings(&mut self, resource: usize, level: u8) {
        let k = resource % self.world.resources.len();
        let info = &self.world.resources[k];
        let mut spec = info.spec.clone();
        for kind in spec["booking_types"].as_array_mut().expect("booking types") {
            for duration in kind["durations"].as_array_mut().expect("durations") {
                let amount = &mut duration["price"]["amount"];
                *amount = json!(amount.as_i64().expect("an amount") + 100 * i64::from(level));
            }
        }
        let id = info.id.clone();
        let desc = format!("host sets {id}'s prices to level {level}");
        let other_instance = DynamoStore::new(self.world.raw_store.client().clone(), self.world.raw_store.table());
        let bearer = format!("Bearer {ADMIN_TOKEN}");
        let headers = [("content-type", "application/json".to_owned()), ("authorization", bearer)];
        let uri = format!("/v1/resources/{id}");
        let req = request("PUT", &uri, Some(&id), &headers, Some(spec.to_string()));
        let rules = slotguard::adapters::calendars::CalendarTargetRules::local();
        let answer = outcome(put_resource(&other_instance, &self.world.admin, &rules, req).await);
        if answer.status != 200 {
            return self.violate("I5", format!("{desc} answered {}: {}", answer.status, answer.body));
        }
        let stored = resource_from_spec(&id, &spec);
        let step = self.current.unwrap_or(usize::MAX);
        self.settings[k].push((step, stored));
        self.stats.settings_changes += 1;
        self.note(desc, answer.status.to_string());
    }

    /// I9: a session slotguard creates charges what the resource's stored
    /// settings asked for the booking's type and duration at some moment
    /// between the reservation's first checkout request and now, never a
    /// price the host had already changed when the hold was checked out.
    fn check_session_price(&mut self, desc: &str, reservation: &str) {
        let Some(res) = self.reservations.iter().find(|r| r.id == reservation) else { return };
        let since = self.checkout_since.get(reservation).copied().unwrap_or(0);
        let minutes = u32::try_from((res.end - res.start).num_minutes()).unwrap_or(0);
        let versions = &self.settings[res.resource];
        // The version current when the first request came, and every later one.
        let first = versions.iter().rposition(|(from, _)| *from <= since).unwrap_or(0);
        let offered: BTreeSet<i64> = versions[first..]
            .iter()
            .filter_map(|(_, r)| {
                r.booking_type(Some(&res.booking_type))?.duration(Some(minutes)).map(|d| d.price.amount)
            })
            .collect();
        if !offered.contains(&res.amount) {
            let detail = format!(
                "{desc} created a session for {} {}/{minutes} at {}; the settings offered {offered:?} since step {since}",
                short(&res.id),
                res.booking_type,
                res.amount
            );
            self.violate("I9", detail);
        }
    }

    /// The window of slot starts reconcile and the calendar checks look at.
    pub fn window(&self) -> (DateTime<Utc>, DateTime<Utc>) {
        let first = self.world.resources.iter().flat_map(|r| r.slots.iter().copied()).min().unwrap();
        let last = self.world.resources.iter().map(|r| r.last_blocked_end()).max().unwrap();
        (first - Duration::hours(2), last + Duration::hours(2))
    }

    /// The client reads the k-th reservation's status page: where the
    /// booking is now.
    async fn read_status(&mut self, k: usize) -> Value {
        let id = self.reservations[k].id.clone();
        let (_, status) = self.status_of(&id).await;
        if let Some((start, end, _)) = interval_of(&status) {
            self.starts_seen.entry(id).or_default().insert(start);
            (self.reservations[k].start, self.reservations[k].end) = (start, end);
        }
        status
    }

    /// The reservations last seen confirmed that a request with `auth` can name
    /// (with a secret only those whose secret the client has).
    /// The reservation a cancel or reschedule acts on: a booking the client
    /// last saw confirmed when `reservation < confirmed_below` (and there is
    /// one), else with a secret one whose secret the client has (`None` if
    /// none), else any.
    fn pick_booking(&self, reservation: usize, auth: Auth, confirmed_below: usize) -> Option<usize> {
        let confirmed = self.seen_confirmed(auth);
        if !confirmed.is_empty() && reservation < confirmed_below {
            return Some(confirmed[recent(reservation, confirmed.len())]);
        }
        if auth != Auth::Secret {
            return Some(recent(reservation, self.reservations.len()));
        }
        let known: Vec<usize> =
            (0..self.reservations.len()).filter(|k| self.reservations[*k].secret.is_some()).collect();
        (!known.is_empty()).then(|| known[recent(reservation, known.len())])
    }

    fn seen_confirmed(&self, auth: Auth) -> Vec<usize> {
        (0..self.reservations.len())
            .filter(|k| {
                let r = &self.reservations[*k];
                self.seen.get(&r.id).is_some_and(|s| s == "confirmed") && (auth != Auth::Secret || r.secret.is_some())
            })
            .collect()
    }

    /// The `Authorization` bearer a request on the k-th reservation sends;
    /// `None`: there is no such secret to send.
    fn bearer(&self, k: usize, auth: Auth) -> Option<Option<String>> {
        match auth {
            Auth::Secret => self.reservations[k].secret.clone().map(Some),
            Auth::Wrong => Some(Some(format!("rsk_{}", "0".repeat(43)))),
            Auth::Other => {
                let others: Vec<&String> = self
                    .reservations
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != k)
                    .filter_map(|(_, r)| r.secret.as_ref())
                    .collect();
                (!others.is_empty()).then(|| Some(others[k % others.len()].clone()))
            }
            Auth::Admin => Some(Some(ADMIN_TOKEN.to_owned())),
            Auth::Missing => Some(None),
        }
    }

    /// The k-th reservation's booking as its status shows it: start, length
    /// in minutes and the type it was booked under.
    fn booking_now(&self, k: usize, status: &Value) -> Option<(DateTime<Utc>, u32, slotguard::domain::BookingType)> {
        let (start, _, minutes) = interval_of(status)?;
        let res = &self.reservations[k];
        let kind = self.world.resources[res.resource].resource.booking_type(Some(&res.booking_type))?;
        Some((start, minutes, kind.clone()))
    }

    /// What the cancellation of `reservation` (paid `amount`) may refund: the
    /// policy's share for each cancel request made for it, at each start the
    /// booking was seen at.
    pub fn cancel_shares(&self, reservation: &str, amount: i64) -> BTreeSet<i64> {
        let Some(res) = self.reservations.iter().find(|r| r.id == reservation) else { return BTreeSet::new() };
        let Some(kind) = self.world.resources[res.resource].resource.booking_type(Some(&res.booking_type)) else {
            return BTreeSet::new();
        };
        let starts = self.starts_seen.get(reservation).cloned().unwrap_or_default();
        // The deadline the booking may have had: its start's, or one a move kept.
        let deadlines: Vec<Option<DateTime<Utc>>> = [None, res.free_until].into_iter().collect();
        self.cancels
            .iter()
            .filter(|c| c.reservation == reservation)
            .flat_map(|c| {
                let deadlines = deadlines.clone();
                starts.iter().flat_map(move |start| {
                    deadlines.clone().into_iter().filter_map(move |free_until| {
                        check::policy_refund(&kind.cancellation, c.host, amount, *start, free_until, c.at)
                    })
                })
            })
            .collect()
    }

    /// The reservation's status page, as the holder of its secret sees it.
    pub async fn status_of(&self, id: &str) -> (u16, Value) {
        let secret = self.reservations.iter().find(|r| r.id == id).and_then(|r| r.secret.as_ref());
        let headers: Vec<(&str, String)> =
            secret.map(|s| ("authorization", format!("Bearer {s}"))).into_iter().collect();
        let req = request("GET", &format!("/v1/reservations/{id}"), Some(id), &headers, None);
        let out = outcome(reservation_status_at(&self.world.raw_store, req, self.now).await);
        (out.status, serde_json::from_str(&out.body).unwrap_or(Value::Null))
    }

    async fn deliver(&mut self, op: usize, mail: usize, script: Vec<Decision>) {
        let m = &self.mailbox[mail];
        let desc = format!(
            "deliver {} {} of {}{}",
            short(&m.id),
            m.kind.trim_start_matches("checkout.session."),
            short(&m.session),
            if m.acked { " (again)" } else { "" }
        );
        let body = m.body.clone();
        let signature = slotguard::adapters::stripe::sign(&body, WEBHOOK_SECRET, Utc::now().timestamp());
        let headers = [("stripe-signature", signature), ("content-type", "application/json".to_owned())];
        let req = request("POST", "/webhooks/stripe", None, &headers, Some(body));
        let (world, now) = (self.world.clone(), self.now);
        self.start_op(op, desc, Pending::Deliver { mail }, script, async move {
            let deps = WebhookDeps {
                store: &world.store,
                payments: &world.payments,
                calendar: &world.queue,
                verifier: &world.verifier,
            };
            outcome(stripe_webhook_at(deps, req, now).await)
        })
        .await;
    }

    async fn cancel(
        &mut self,
        op: usize,
        id: String,
        auth: Auth,
        bearer: Option<String>,
        check: Option<PolicyCheck>,
        mut script: Vec<Decision>,
    ) {
        let unauthorised = matches!(auth, Auth::Wrong | Auth::Other | Auth::Missing);
        if !unauthorised {
            self.cancels.push(CancelAttempt { reservation: id.clone(), host: auth == Auth::Admin, at: self.now });
        }
        if unauthorised {
            // Checked by comparing the world before and after: no interleaving.
            script.retain(|d| !d.is_pause());
        }
        let before = if unauthorised { Some(self.effects().await) } else { None };
        let desc = format!("cancel {} auth={auth:?}", short(&id));
        let mut headers = Vec::new();
        if let Some(bearer) = &bearer {
            headers.push(("authorization", format!("Bearer {bearer}")));
        }
        let req = request("POST", &format!("/v1/bookings/{id}/cancel"), Some(&id), &headers, None);
        let (world, now) = (self.world.clone(), self.now);
        let pending = Pending::Cancel { reservation: id, auth, bearer, check };
        self.start_op(op, desc.clone(), pending, script, async move {
            let deps = CancelDeps {
                store: &world.store,
                payments: &world.payments,
                calendar: &world.queue,
                admin: &world.admin,
            };
            outcome(cancel_at(deps, req, now).await)
        })
        .await;
        if let Some(before) = before {
            let after = self.effects().await;
            if before != after {
                self.violate("I5", format!("{desc} changed the world: {}", check::diff(&before, &after)));
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn reschedule(
        &mut self,
        op: usize,
        id: String,
        auth: Auth,
        bearer: Option<String>,
        body: String,
        check: Option<PolicyCheck>,
        gives_up: bool,
        mut script: Vec<Decision>,
    ) {
        let unauthorised = matches!(auth, Auth::Wrong | Auth::Other | Auth::Missing);
        if unauthorised {
            // Checked by comparing the world before and after: no interleaving.
            script.retain(|d| !d.is_pause());
        }
        // A refused move changes nothing: compared whenever nothing can interleave.
        let before = if script.iter().any(|d| d.is_pause()) { None } else { Some(self.effects().await) };
        let asked: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        let desc = format!(
            "reschedule {} to {}{} auth={auth:?}{}",
            short(&id),
            asked["start"]
                .as_str()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| check::hhmm(t.with_timezone(&Utc)))
                .unwrap_or_default(),
            asked["duration_minutes"].as_u64().map(|m| format!(" for {m} min")).unwrap_or_default(),
            if gives_up { " (no retry)" } else { "" },
        );
        let mut headers = vec![("content-type", "application/json".to_owned())];
        if let Some(bearer) = &bearer {
            headers.push(("authorization", format!("Bearer {bearer}")));
        }
        let req = request("POST", &format!("/v1/bookings/{id}/reschedule"), Some(&id), &headers, Some(body.clone()));
        let (world, now) = (self.world.clone(), self.now);
        let pending = Pending::Reschedule { reservation: id, auth, bearer, body, check, gives_up, at: self.now };
        let answered = self.log.len();
        self.start_op(op, desc.clone(), pending, script, async move {
            let deps = RescheduleDeps { store: &world.store, calendar: &world.queue, admin: &world.admin };
            outcome(reschedule_at(deps, req, now).await)
        })
        .await;
        let refused = self.log[answered].status.starts_with('4');
        if let Some(before) = before
            && (unauthorised || refused)
        {
            let after = self.effects().await;
            if before != after {
                self.violate("I5", format!("{desc} changed the world: {}", check::diff(&before, &after)));
            }
        }
    }

    /// What a refused request must not change: the table, the refunds, the calendar queue.
    async fn effects(&self) -> Vec<String> {
        let mut out: Vec<String> = check::scan(&self.world.raw_store).await.iter().map(check::item_text).collect();
        out.sort();
        let refunds = self.sim_get("/_sim/refunds").await;
        out.push(format!("refunds: {}", refunds["refunds"].as_array().map(Vec::len).unwrap_or(0)));
        out.push(format!("calendar queue: {} messages", self.world.queue_depth().await));
        out
    }

    async fn calendar_work(&mut self, op: usize, lose_delete: bool, script: Vec<Decision>) {
        let out = self
            .world
            .sqs()
            .receive_message()
            .queue_url(self.world.raw_queue.queue_url())
            .max_number_of_messages(1)
            .wait_time_seconds(0)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .expect("receive from the calendar queue");
        let Some(m) = out.messages().first().cloned() else {
            return self.noop("calendar writer (queue empty)");
        };
        let record = slotguard_local::poller::lambda_record(&m);
        let job: Value = serde_json::from_str(m.body().unwrap_or("null")).unwrap_or(Value::Null);
        let receives = record.attributes.get("ApproximateReceiveCount").cloned().unwrap_or_default();
        let desc = format!(
            "calendar writer: {} {} (receive {receives}){}",
            job["action"].as_str().unwrap_or("?"),
            short(job["reservation_id"].as_str().unwrap_or("?")),
            if lose_delete { ", delete lost" } else { "" }
        );
        let mut event = SqsEvent::default();
        event.records = vec![record];
        let receipt = m.receipt_handle().unwrap_or_default().to_owned();
        let world = self.world.clone();
        self.start_op(op, desc, Pending::Calendar { receipt, lose_delete }, script, async move {
            let deps = WriterDeps {
                store: &world.store,
                calendar: &world.calendar,
                dead_letters: &world.dead_letters,
                policy: policy(),
            };
            let response = write_batch(&deps, event, tokio::time::Instant::now() + WRITER_BUDGET).await;
            let status = if response.batch_item_failures.is_empty() { 200 } else { 503 };
            Outcome { status, body: String::new() }
        })
        .await;
    }

    /// A Checkout Session made at Stripe without slotguard, naming `res`, then paid.
    async fn foreign_session(&mut self, res: &Res, delayed: bool, own_price: bool) {
        let (amount, currency) = if own_price { (res.amount, res.currency.clone()) } else { (100, "eur".to_owned()) };
        let (name, email) =
            if own_price { CUSTOMERS[res.customer % CUSTOMERS.len()] } else { ("Mallory", "mallory@example.com") };
        let slot_end = slotguard::domain::rfc3339(res.end);
        // On the harness's minute grid, like every expiry slotguard sets.
        let expires_at = (self.now + Duration::hours(23)).timestamp().to_string();
        let form: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("mode", "payment"),
                ("line_items[0][price_data][currency]", currency.as_str()),
                ("line_items[0][price_data][unit_amount]", &amount.to_string()),
                ("line_items[0][price_data][product_data][name]", "Not from slotguard"),
                ("line_items[0][quantity]", "1"),
                ("client_reference_id", res.id.as_str()),
                ("metadata[reservation_id]", res.id.as_str()),
                ("metadata[slot_end]", slot_end.as_str()),
                ("metadata[customer_name]", name),
                ("customer_email", email),
                ("expires_at", expires_at.as_str()),
            ])
            .finish();
        let r = self
            .world
            .http
            .post(format!("{}/v1/checkout/sessions", self.world.sim))
            .bearer_auth(STRIPE_KEY)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await
            .expect("the simulator answers");
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        let kind = if own_price { SessionKind::Second } else { SessionKind::Foreign };
        let desc = format!(
            "{} session for {} ({amount} {currency}) paid{}",
            if own_price { "second" } else { "foreign" },
            short(&res.id),
            if delayed { " (delayed)" } else { "" }
        );
        if status != 200 {
            return self.note(desc, sim_status(status, &body));
        }
        let id = body["id"].as_str().unwrap().to_owned();
        self.stats.sessions += 1;
        self.sessions.push(Sess { id: id.clone(), reservation: res.id.clone(), kind });
        let (status, body) = self.sim_post(&format!("/_sim/checkout/sessions/{id}/complete?async={delayed}")).await;
        if status == 200 {
            self.stats.paid += 1;
        }
        self.note(format!("{desc}: {}", short(&id)), sim_status(status, &body));
    }

    // ---- checks ---------------------------------------------------------------

    async fn per_step_checks(&mut self) {
        let items = check::scan(&self.world.raw_store).await;
        let snapshot = Snapshot::from_items(&items);
        for b in &snapshot.bookings {
            if let Some(start) = b.start {
                self.starts_seen.entry(b.reservation.clone()).or_default().insert(start);
            }
        }
        let ids: Vec<String> = self.reservations.iter().map(|r| r.id.clone()).collect();
        let found = check::per_step(&snapshot, self.now, &self.world.resources, &ids, &mut self.seen);
        for (inv, detail) in found {
            self.violate(inv, detail);
        }
    }

    /// One run of the catch-up at the harness's clock, reading back as far
    /// as Stripe keeps events (a history's clock jumps days).
    async fn catch_up(&mut self, op: usize, script: Vec<Decision>) {
        let (world, now) = (self.world.clone(), self.now);
        self.start_op(op, "catch-up".into(), Pending::CatchUp, script, async move {
            let deps = slotguard::api::stripe_webhook::SettleDeps {
                store: &world.store,
                payments: &world.payments,
                calendar: &world.queue,
            };
            let settings = slotguard::jobs::catch_up::CatchUpSettings::new(
                slotguard::jobs::catch_up::RETENTION,
                chrono::Duration::minutes(30),
            )
            .expect("valid settings");
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
            match slotguard::jobs::catch_up::catch_up(&deps, &settings, now, deadline).await {
                Ok(report) => Outcome { status: 200, body: serde_json::to_string(&report).unwrap() },
                Err(e) => Outcome { status: 500, body: e.to_string() },
            }
        })
        .await;
    }

    // ---- quiesce --------------------------------------------------------------

    async fn quiesce(&mut self) {
        self.ctl.faults.store(false, Ordering::SeqCst);
        self.world.wire.calm();
        for faulted in self.world.wire.faulted() {
            match faulted.fault {
                WireFault::Conflict => self.stats.wire_conflicts += 1,
                WireFault::LoseAnswer => self.stats.wire_lost_answers += 1,
                WireFault::Throttle => self.stats.wire_throttles += 1,
                WireFault::Unprocessed => self.stats.wire_unprocessed += 1,
            }
        }
        self.drain_parked().await;
        self.ctl.pauses.store(false, Ordering::SeqCst);

        // Clients retry what failed on the server's side (or was busy with a
        // concurrent request): each answer that is retryable again queues it again.
        for _ in 0..5 {
            let moves = std::mem::take(&mut self.reschedule_retries);
            let cancels = std::mem::take(&mut self.cancel_retries);
            if moves.is_empty() && cancels.is_empty() {
                break;
            }
            for (id, auth, bearer, body) in moves {
                let op = self.quiesce_op();
                self.reschedule(op, id, auth, bearer, body, None, false, Vec::new()).await;
            }
            for (id, auth, bearer) in cancels {
                let op = self.quiesce_op();
                self.cancel(op, id, auth, bearer, None, Vec::new()).await;
            }
        }
        self.reschedule_retries.clear();
        self.cancel_retries.clear();

        // The scheduled catch-up runs before Stripe's retries arrive: what it
        // settles, the deliveries after it must find settled the same way.
        let op = self.quiesce_op();
        self.catch_up(op, Vec::new()).await;

        // Stripe retries every event until it gets a 2xx, then sends some once more.
        self.deliver_until_acknowledged().await;
        let mut all: Vec<usize> = (0..self.mailbox.len()).collect();
        self.rng.shuffle(&mut all);
        for mail in all {
            let op = self.quiesce_op();
            self.deliver(op, mail, Vec::new()).await;
        }
        self.deliver_until_acknowledged().await;
        self.drain_calendar().await;
    }

    async fn deliver_until_acknowledged(&mut self) {
        for round in 0..8 {
            self.fetch_mailbox().await;
            let mut pending: Vec<usize> = (0..self.mailbox.len()).filter(|m| !self.mailbox[*m].acked).collect();
            if pending.is_empty() {
                return;
            }
            if round > 0 {
                // Stripe backs off between retries; an in-progress record of a
                // crashed delivery expires meanwhile.
                self.jump(2).await;
                let now = self.now;
                self.note("clock +2 min (Stripe's retry backoff)".into(), format!("now {}", check::hhmm(now)));
            }
            self.rng.shuffle(&mut pending);
            for mail in pending {
                let op = self.quiesce_op();
                self.deliver(op, mail, Vec::new()).await;
            }
        }
        let stuck: Vec<String> = self
            .mailbox
            .iter()
            .filter(|m| !m.acked)
            .map(|m| format!("{} {} ({} deliveries)", short(&m.id), m.kind, m.deliveries))
            .collect();
        if !stuck.is_empty() {
            self.violate("I5", format!("events never acknowledged after 8 rounds of retries: {}", stuck.join(", ")));
        }
    }

    /// Redrives the DLQ and runs the writer until the queue is empty.
    pub async fn drain_calendar(&mut self) {
        for (receipt, _) in std::mem::take(&mut self.inflight) {
            self.make_visible(&receipt).await;
        }
        for round in 0..4 {
            // `redrive` first tries SQS's message move task, which the local SQS
            // lacks (the SDK retries that for seconds): only when there is something.
            if self.world.dlq_depth().await > 0 {
                let moved = slotguard::adapters::sqs::redrive(
                    self.world.sqs(),
                    &self.world.dlq_url,
                    self.world.raw_queue.queue_url(),
                )
                .await
                .expect("redrive the DLQ");
                self.note("redrive the DLQ".into(), format!("{moved:?}"));
            } else if round > 0 && self.world.queue_depth().await == 0 {
                return;
            }
            for _ in 0..200 {
                let before = self.stats.noops;
                let op = self.quiesce_op();
                self.calendar_work(op, false, Vec::new()).await;
                if self.stats.noops > before {
                    self.log.pop();
                    self.stats.noops -= 1;
                    break;
                }
            }
        }
        self.violate("I4", "the calendar queue did not drain with faults off (3 redrives)".into());
    }

    async fn final_checks(&mut self) {
        check::final_checks(self).await;
    }
}

fn sim_status(status: u16, body: &Value) -> String {
    if status == 200 {
        "ok".into()
    } else {
        format!("{status} {}", body["error"].as_str().unwrap_or_default().chars().take(60).collect::<String>())
    }
}

/// The problem `type` of an error answer.
fn problem_type(outcome: &Outcome) -> Option<String> {
    if outcome.status < 400 {
        return None;
    }
    serde_json::from_str::<Value>(&outcome.body).ok().and_then(|b| b["type"].as_str().map(str::to_owned))
}

/// What a client retries: a 5xx (the server's failure) or `request_in_progress`
/// (a concurrent request on the same booking; its `Retry-After` says to).
fn retryable(outcome: &Outcome) -> bool {
    outcome.status >= 500 || problem_type(outcome).as_deref() == Some("request_in_progress")
}

/// A reservation view's start, end and length in minutes.
fn interval_of(view: &Value) -> Option<(DateTime<Utc>, DateTime<Utc>, u32)> {
    let at = |name: &str| {
        view[name].as_str().and_then(|t| DateTime::parse_from_rfc3339(t).ok()).map(|t| t.with_timezone(&Utc))
    };
    let (start, end) = (at("start")?, at("end")?);
    Some((start, end, u32::try_from((end - start).num_minutes()).ok()?))
}
