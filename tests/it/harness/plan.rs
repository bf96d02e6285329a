//! The plan: generated up front from the seed, a list of abstract steps whose
//! arguments name entities by index (the k-th most recent reservation or
//! session, the k-th unacknowledged or any event, the k-th parked op), taken
//! modulo how many exist when the step runs; a step with nothing to refer to
//! does nothing. Each step
//! carries its fault script: one decision per port call it makes.

use super::faults::Decision;
use fastrand::Rng;

/// The `Idempotency-Key` a reserve sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyMode {
    None,
    /// A key never used before.
    New,
    /// The k-th key used before, with the body it was used with.
    Replay(usize),
    /// The k-th key used before, with another body.
    Mismatch(usize),
}

/// The checkout body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlVariant {
    /// No body: the configured URLs.
    Default,
    /// A custom `success_url`.
    A,
    /// Custom `success_url` and `cancel_url`, different from A's.
    B,
}

/// How a cancel or a reschedule authorises itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// The reservation's secret, as the `201` of its reserve gave it.
    Secret,
    /// A made-up secret.
    Wrong,
    /// Another reservation's (real) secret.
    Other,
    Admin,
    /// No `Authorization` header.
    Missing,
}

/// Which Stripe event a delivery takes from the mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventPick {
    /// The k-th event that no delivery has got a 2xx for yet (as Stripe retries).
    Unacknowledged(usize),
    /// The k-th event of all: a duplicate, or an old event arriving late.
    Any(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// A hold of `resource`'s `slot`-th candidate start, for its `kind`-th
    /// booking type's `duration`-th duration (each taken modulo how many there are).
    Reserve {
        resource: usize,
        slot: usize,
        kind: usize,
        duration: usize,
        customer: usize,
        key: KeyMode,
    },
    Checkout {
        reservation: usize,
        url: UrlVariant,
    },
    /// The customer pays the k-th session (`delayed`: with a delayed payment method).
    Pay {
        session: usize,
        delayed: bool,
    },
    /// A delayed payment settles.
    Settle {
        session: usize,
        succeeded: bool,
    },
    /// The session expires (as if its time had run out, or the customer left).
    Expire {
        session: usize,
    },
    /// A Checkout Session made directly at Stripe, not by slotguard, naming the
    /// k-th reservation, then paid: `own_price` false: 1.00 (a foreign session);
    /// true: the reservation's own amount and currency (a second paid session).
    Foreign {
        reservation: usize,
        delayed: bool,
        own_price: bool,
    },
    Deliver {
        pick: EventPick,
    },
    Cancel {
        reservation: usize,
        auth: Auth,
    },
    /// Moves the k-th reservation to its resource's `slot`-th candidate start,
    /// keeping its type; `duration`: `None` sends none (the booking's own),
    /// `Some(d)` the type's d-th duration (maybe another price: refused).
    /// `gives_up`: the client never retries a failed answer (what reconcile is for).
    Reschedule {
        reservation: usize,
        slot: usize,
        duration: Option<usize>,
        auth: Auth,
        gives_up: bool,
    },
    /// The SQS event source mapping hands one message to the calendar writer;
    /// `lose_delete`: the delete after success is lost, so SQS delivers it again.
    CalendarWork {
        lose_delete: bool,
    },
    Reconcile,
    /// A run of the scheduled catch-up: Stripe's event list, settled as the webhook does.
    CatchUp,
    ClockJump {
        minutes: i64,
    },
    /// The clock jumps past every slot's end (a late payment for a slot in the past).
    ClockPastSlots {
        minutes: i64,
    },
    Resume {
        parked: usize,
    },
    /// The host changes the k-th resource's prices (every duration of every
    /// type: the original amount plus `level` × 1.00; level 0 restores them)
    /// through another function instance, so the handlers' resource cache
    /// still holds the old settings for up to its maximum age.
    Settings {
        resource: usize,
        level: u8,
    },
}

#[derive(Debug, Clone)]
pub struct PlanStep {
    pub step: Step,
    pub script: Vec<Decision>,
}

impl std::fmt::Display for PlanStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.step)?;
        if !self.script.is_empty() {
            let script: Vec<&str> = self.script.iter().map(|d| d.short()).collect();
            write!(f, " script=[{}]", script.join(","))?;
        }
        Ok(())
    }
}

/// How many steps a plan has unless `SLOTGUARD_HARNESS_STEPS` says otherwise.
pub const DEFAULT_STEPS: usize = 60;

/// The plan of `seed`.
///
/// Steps are drawn with weights that follow what the plan has set up so far
/// (no checkout before a reserve, no delivery before anything emitted an
/// event, a checkout likely right after a reserve, a payment after a
/// checkout, ...), so few steps find nothing to act on and most histories
/// reach payments, refunds, cancels and calendar writes.
///
/// `SLOTGUARD_HARNESS_WITHOUT` (comma-separated) leaves kinds of steps out
/// (`reserve`, `checkout`, `pay`, `settle`, `expire`, `foreign`, `deliver`,
/// `cancel`, `reschedule`, `calendar`, `reconcile`, `catchup`, `clock`, `resume`, `settings`) or faults (`faults`:
/// no fault scripts; `pauses`: no pauses), to focus on the rest, e.g. while a
/// known bug is being fixed.
pub fn generate(seed: u64, steps: usize) -> Vec<PlanStep> {
    let mut rng = Rng::with_seed(seed);
    let without: Vec<String> = std::env::var("SLOTGUARD_HARNESS_WITHOUT")
        .unwrap_or_default()
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    let mut g = Gen { without: without.clone(), ..Gen::default() };
    (0..steps)
        .map(|_| {
            let step = g.next(&mut rng);
            let script = match step {
                // Harness-only actions (Stripe's side, the clock) make no port calls.
                Step::Pay { .. }
                | Step::Settle { .. }
                | Step::Expire { .. }
                | Step::Foreign { .. }
                | Step::ClockJump { .. }
                | Step::ClockPastSlots { .. }
                | Step::Resume { .. }
                | Step::Settings { .. } => Vec::new(),
                _ => script(&mut rng),
            };
            let script = if without.iter().any(|w| w == "faults") {
                Vec::new()
            } else if without.iter().any(|w| w == "pauses") {
                script.into_iter().map(|d| if d.is_pause() { Decision::Proceed } else { d }).collect()
            } else {
                script
            };
            let pauses = script.iter().filter(|d| d.is_pause()).count();
            g.pauses += pauses;
            if pauses > 0 {
                // Let a few steps run past a parked op before it may resume,
                // most likely ones that touch what it touches.
                g.hold_resume = 2;
                g.parked_kind = g.last;
                g.contend = 3;
            } else {
                g.hold_resume = g.hold_resume.saturating_sub(1);
                g.contend = g.contend.saturating_sub(1);
            }
            PlanStep { step, script }
        })
        .collect()
}

/// What the plan has set up so far, as far as the generator can tell.
#[derive(Default)]
struct Gen {
    reserves: usize,
    checkouts: usize,
    delayed: usize,
    emitted: usize,
    delivered: usize,
    pauses: usize,
    resumes: usize,
    keys: usize,
    /// Steps to go before a resume may be drawn.
    hold_resume: usize,
    /// Kinds of steps left out.
    without: Vec<String>,
    last: Option<&'static str>,
    /// The kind of the step whose script parks last, and for how many more
    /// steps the steps that race it are favoured.
    parked_kind: Option<&'static str>,
    contend: usize,
    /// The slot of the last reserve step.
    last_slot: Option<(usize, usize)>,
}

/// What races a parked op of a kind: the steps favoured while it waits
/// (cancel vs calendar write, two checkouts, concurrent deliveries, ...).
fn rivals(kind: &str) -> &'static [(&'static str, u32)] {
    match kind {
        "calendar" => &[("cancel", 15), ("calendar", 15), ("reschedule", 12), ("deliver", 5)],
        // A delivery parked between its read and its write races another
        // delivery of the session, a cancel, or (once the hold lapsed) a new hold.
        "deliver" => &[("deliver", 12), ("cancel", 8), ("expire", 4), ("settle", 4), ("reserve", 8), ("clock", 6)],
        "checkout" => &[("checkout", 15), ("pay", 5), ("deliver", 5), ("settings", 4)],
        "cancel" => &[("cancel", 10), ("calendar", 10), ("reschedule", 15), ("deliver", 5)],
        // A move parked between its read and its transaction races another
        // move, a cancel, the writer (version re-check) and new holds.
        "reschedule" => &[("reschedule", 12), ("cancel", 10), ("calendar", 10), ("reserve", 6), ("deliver", 3)],
        "reserve" => &[("reserve", 15), ("checkout", 5), ("settings", 4)],
        "reconcile" => &[("calendar", 10), ("deliver", 10), ("cancel", 6), ("reschedule", 6)],
        // A catch-up parked between a session's read and its write races the
        // webhook's delivery of the same event, another run, and new holds.
        "catchup" => &[("deliver", 14), ("catchup", 8), ("expire", 4), ("settle", 4), ("reserve", 6), ("clock", 4)],
        _ => &[],
    }
}

impl Gen {
    fn next(&mut self, rng: &mut Rng) -> Step {
        let after = |name: &str, last: Option<&str>| if last == Some(name) { 10 } else { 0 };
        let last = self.last;
        let ready = |n: usize, w: u32| if n > 0 { w } else { 0 };
        let table: [(&'static str, u32); 15] = [
            ("reserve", 10),
            ("checkout", ready(self.reserves, 9) + after("reserve", last)),
            ("pay", ready(self.checkouts, 8) + after("checkout", last)),
            ("settle", ready(self.delayed, 5)),
            ("expire", ready(self.checkouts, 2)),
            ("foreign", ready(self.reserves, 3)),
            ("deliver", ready(self.emitted, 16) + after("pay", last) + after("foreign", last) + after("settle", last)),
            ("cancel", ready(self.delivered, 6)),
            ("reschedule", ready(self.delivered, 12) + after("reschedule", last) / 2),
            ("calendar", ready(self.delivered, 8)),
            ("reconcile", ready(self.delivered, 2)),
            ("catchup", ready(self.emitted, 3)),
            ("clock", 5),
            ("resume", if self.pauses > self.resumes && self.hold_resume == 0 { 6 } else { 0 }),
            // Most likely between a hold and its checkout: the stale-cache window.
            ("settings", 2 + after("reserve", last) / 3),
        ];
        let boost = |n: &str| match (self.contend > 0, self.parked_kind) {
            (true, Some(kind)) => rivals(kind).iter().find(|(r, _)| *r == n).map(|(_, w)| *w).unwrap_or(0),
            _ => 0,
        };
        let table = table.map(|(n, w)| {
            let w = if w > 0 || matches!(n, "reserve" | "clock") { w + boost(n) } else { w };
            (n, if self.without.iter().any(|x| x == n) { 0 } else { w })
        });
        let total: u32 = table.iter().map(|(_, w)| w).sum();
        let mut x = rng.u32(0..total.max(1));
        let mut name = "reserve";
        for (n, w) in table {
            if x < w {
                name = n;
                break;
            }
            x -= w;
        }
        self.last = Some(name);
        match name {
            "reserve" => {
                self.reserves += 1;
                let key = match rng.u32(0..10) {
                    0..=3 => KeyMode::None,
                    7..=8 if self.keys > 0 => KeyMode::Replay(pick(rng)),
                    9 if self.keys > 0 => KeyMode::Mismatch(pick(rng)),
                    _ => {
                        self.keys += 1;
                        KeyMode::New
                    }
                };
                // Often the slot of an earlier hold: contention is the point.
                // The rooms ra, rb (0, 1) as before, the seated room rs (2),
                // the members m1..m3 (3..=5) and the teams rr, co (6, 7).
                let (resource, slot) = match self.last_slot {
                    Some(same) if rng.u32(0..10) < 4 => same,
                    _ => {
                        let resource = match rng.u32(0..20) {
                            0..=5 => rng.usize(0..2),
                            6..=11 => 2,
                            12..=14 => rng.usize(3..6),
                            _ => rng.usize(6..8),
                        };
                        (resource, rng.usize(0..5))
                    }
                };
                self.last_slot = Some((resource, slot));
                // Of the resource's types and their durations (taken modulo
                // how many); on rs mostly its seated type, so groups fill up.
                let (kind, duration) = (rng.usize(0..2), rng.usize(0..2));
                let kind = if resource == 2 && rng.u32(0..4) > 0 { 0 } else { kind };
                Step::Reserve { resource, slot, kind, duration, customer: rng.usize(0..3), key }
            }
            "checkout" => {
                self.checkouts += 1;
                let url = match rng.u32(0..10) {
                    0..=6 => UrlVariant::Default,
                    7..=8 => UrlVariant::A,
                    _ => UrlVariant::B,
                };
                Step::Checkout { reservation: pick(rng), url }
            }
            "pay" => {
                let delayed = rng.u32(0..10) < 3;
                self.delayed += usize::from(delayed);
                self.emitted += 1;
                Step::Pay { session: pick(rng), delayed }
            }
            "settle" => {
                self.emitted += 1;
                Step::Settle { session: pick(rng), succeeded: rng.bool() }
            }
            "expire" => {
                self.emitted += 1;
                Step::Expire { session: pick(rng) }
            }
            "foreign" => {
                self.emitted += 1;
                let delayed = rng.u32(0..4) == 0;
                self.delayed += usize::from(delayed);
                Step::Foreign { reservation: pick(rng), delayed, own_price: rng.bool() }
            }
            "deliver" => {
                self.delivered += 1;
                let pick_ =
                    if rng.u32(0..10) < 7 { EventPick::Unacknowledged(pick(rng)) } else { EventPick::Any(pick(rng)) };
                Step::Deliver { pick: pick_ }
            }
            "cancel" => {
                let auth = match rng.u32(0..20) {
                    0..=10 => Auth::Secret,
                    11..=12 => Auth::Wrong,
                    13 => Auth::Other,
                    14..=16 => Auth::Admin,
                    _ => Auth::Missing,
                };
                Step::Cancel { reservation: pick(rng), auth }
            }
            "reschedule" => {
                let auth = match rng.u32(0..20) {
                    0..=11 => Auth::Secret,
                    12 => Auth::Wrong,
                    13 => Auth::Other,
                    14..=18 => Auth::Admin,
                    _ => Auth::Missing,
                };
                let duration = if rng.u32(0..3) == 0 { Some(rng.usize(0..2)) } else { None };
                let gives_up = rng.u32(0..5) == 0;
                Step::Reschedule { reservation: pick(rng), slot: rng.usize(0..5), duration, auth, gives_up }
            }
            "calendar" => Step::CalendarWork { lose_delete: rng.u32(0..8) == 0 },
            "reconcile" => Step::Reconcile,
            "catchup" => Step::CatchUp,
            "clock" => {
                // Session expiry (40+ min ahead) makes the sweep emit events.
                if self.checkouts > 0 {
                    self.emitted += 1;
                }
                match rng.u32(0..40) {
                    0 => Step::ClockPastSlots { minutes: rng.i64(1..180) },
                    1..=7 => Step::ClockJump { minutes: rng.i64(24 * 60..3 * 24 * 60) },
                    _ => Step::ClockJump { minutes: rng.i64(1..46) },
                }
            }
            "settings" => Step::Settings { resource: rng.usize(0..8), level: rng.u8(0..3) },
            _ => {
                self.resumes += 1;
                Step::Resume { parked: rng.usize(0..3) }
            }
        }
    }
}

/// An entity pick: counted from the most recent one (0 = the newest) and
/// taken modulo how many exist, so most steps act on what just happened and
/// plans tell coherent stories; one in ten reaches back anywhere.
fn pick(rng: &mut Rng) -> usize {
    match rng.u32(0..20) {
        0..=10 => 0,
        11..=15 => 1,
        16..=17 => 2,
        _ => rng.usize(0..1_000_000),
    }
}

/// A fault script: about half the ops run clean; the others get a few
/// decisions with roughly 5% fail-before, 3% fail-after, 2% crash and 8%
/// pause per port call.
fn script(rng: &mut Rng) -> Vec<Decision> {
    if rng.u32(0..100) < 45 {
        return Vec::new();
    }
    let len = rng.usize(2..10);
    (0..len)
        .map(|_| match rng.u32(0..100) {
            0..=4 => Decision::FailBefore,
            5..=7 => Decision::FailAfter,
            8..=9 => Decision::Crash,
            10..=14 => Decision::Pause,
            15..=19 => Decision::PauseAtWrite,
            _ => Decision::Proceed,
        })
        .collect()
}

/// Fixed plans (see the `scenarios` test): a booking confirmed, then a race or
/// a lost job around a reschedule.
pub fn scenarios() -> Vec<(&'static str, Vec<PlanStep>)> {
    let step = |step: Step| PlanStep { step, script: Vec::new() };
    // A hold of `ra`'s slot-th candidate start for its kind-th type's
    // duration-th duration, paid and confirmed.
    let booked = |slot: usize, kind: usize, duration: usize| {
        vec![
            step(Step::Reserve { resource: 0, slot, kind, duration, customer: 0, key: KeyMode::None }),
            step(Step::Checkout { reservation: 0, url: UrlVariant::Default }),
            step(Step::Pay { session: 0, delayed: false }),
            step(Step::Deliver { pick: EventPick::Unacknowledged(0) }),
        ]
    };
    let with = |mut plan: Vec<PlanStep>, more: Vec<PlanStep>| {
        plan.extend(more);
        plan
    };
    vec![
        (
            // A round-robin team booking (rr, the world's 7th resource),
            // written to its member's calendar, then moved with the answer
            // lost and no retry: no calendar job, so reconcile must move the
            // member's event.
            "a team booking moved with its answer lost, judged by reconcile on its member's calendar",
            vec![
                step(Step::Reserve { resource: 6, slot: 0, kind: 0, duration: 0, customer: 0, key: KeyMode::None }),
                step(Step::Checkout { reservation: 0, url: UrlVariant::Default }),
                step(Step::Pay { session: 0, delayed: false }),
                step(Step::Deliver { pick: EventPick::Unacknowledged(0) }),
                step(Step::CalendarWork { lose_delete: false }),
                PlanStep {
                    step: Step::Reschedule {
                        reservation: 0,
                        slot: 2,
                        duration: None,
                        auth: Auth::Admin,
                        gives_up: true,
                    },
                    // Every read, then the move's transaction: done, answered 503.
                    script: vec![Decision::Proceed, Decision::Proceed, Decision::Proceed, Decision::FailAfter],
                },
            ],
        ),
        (
            // The cancel reads the booking, the move commits, the cancel goes
            // on with what it read: it must still free the booking's locks.
            "cancel parked at its write while the booking is moved",
            with(
                booked(0, 0, 0),
                vec![
                    PlanStep {
                        step: Step::Cancel { reservation: 0, auth: Auth::Admin },
                        script: vec![Decision::PauseAtWrite],
                    },
                    step(Step::Reschedule {
                        reservation: 0,
                        slot: 3,
                        duration: None,
                        auth: Auth::Admin,
                        gives_up: false,
                    }),
                    step(Step::Resume { parked: 0 }),
                ],
            ),
        ),
        (
            // The event is written, then the booking gets longer (same start)
            // but the move's answer is lost and its client gives up, so no
            // calendar job is queued: reconcile must notice the event's end.
            "a lengthened booking whose calendar job was never queued",
            with(
                booked(1, 1, 0),
                vec![
                    step(Step::CalendarWork { lose_delete: false }),
                    PlanStep {
                        step: Step::Reschedule {
                            reservation: 0,
                            slot: 1,
                            duration: Some(1),
                            auth: Auth::Admin,
                            gives_up: true,
                        },
                        // get_claim, get_resource, then the move's transaction: done, answered 503.
                        script: vec![Decision::Proceed, Decision::Proceed, Decision::FailAfter],
                    },
                ],
            ),
        ),
    ]
}
