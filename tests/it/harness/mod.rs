//! The seeded, model-based harness with fault injection (DESIGN invariant 11).
//!
//! Each seed is one history: a plan of abstract steps (reserve a type and
//! duration at a candidate start, checkout, pay, foreign sessions, webhook
//! deliveries in any order and any number of times, cancels under the type's
//! cancellation policy, reschedules, calendar writer runs, reconcile, clock
//! jumps across the policies' cutoffs, resuming parked ops) generated from
//! the seed, run against a world of its own (see `world`: rooms with single
//! types, a room whose seated type shares its cells with a single one,
//! three members bookable alone and through a round-robin and a collective
//! team; reserves pick any of them, so seats and team bookings go through
//! checkout, payment, late payment, cancel, release, lapse, webhook
//! reorderings and faults like single bookings, and seats are asked to
//! move too: always refused) on the
//! real local stack (DynamoDB Local, SQS, Xandikos, an in-process Stripe
//! simulator), with every port call of every op passing through a fault
//! layer that can fail it before or after its effect, crash the op, or park
//! it so other steps interleave, and with the handlers' DynamoDB requests
//! passing a wire layer that answers some as DynamoDB itself does (conflicts,
//! lost answers, throttling, unprocessed keys). One op runs at a time, so a plan replays the
//! same way. After the plan, faults go off, parked ops finish, clients and
//! Stripe retry, the calendar queue drains, and the final state is checked
//! (see `check`).
//!
//! ```text
//! SLOTGUARD_HARNESS_SEEDS=200      how many seeds (default 200)
//! SLOTGUARD_HARNESS_FIRST=1        the first seed (default 1)
//! SLOTGUARD_HARNESS_SEED=s         only seed s, with its whole history printed
//! SLOTGUARD_HARNESS_SOAK=n         n more seeds from SLOTGUARD_HARNESS_SOAK_FIRST (scripts/test --soak n)
//! SLOTGUARD_HARNESS_STEPS=60       steps per plan
//! SLOTGUARD_HARNESS_PARALLEL=6     histories at once
//! SLOTGUARD_HARNESS_TIMING=1       where each history's time went (stderr)
//! SLOTGUARD_HARNESS_WIRE=0         no DynamoDB faults on the wire (fakes/dynamo_wire.rs)
//! SLOTGUARD_HARNESS_VERBOSE=1      the scenarios test prints passing histories too
//! ```
//!
//! A failing seed is reported with its violations and a shrunk history: the
//! plan re-run with steps removed and fault scripts cleared, greedily, while
//! it still breaks the same invariant.
//!
//! The `scenarios` test runs fixed plans (`plan::scenarios`) the same way:
//! races and lost jobs around a reschedule that random plans reach rarely.

mod check;
pub(crate) mod faults;
mod plan;
mod run;
pub(crate) mod sched;
mod world;

use check::Violation;
use plan::PlanStep;
use run::{LogLine, Runner, Stats};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use world::World;

/// Prints past libtest's output capture: the report stays readable even
/// though the handlers' metric lines (stderr) fill the captured output.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, $($arg)*);
    }};
}

/// What one run of one plan found.
#[derive(Debug, Clone)]
struct HistoryResult {
    seed: u64,
    violations: Vec<Violation>,
    log: Vec<LogLine>,
    stats: Stats,
}

impl HistoryResult {
    fn fails(&self, inv: &str) -> bool {
        self.violations.iter().any(|v| v.inv == inv)
    }
}

async fn run_plan(seed: u64, plan: Vec<PlanStep>) -> HistoryResult {
    let handle = tokio::spawn(async move {
        let t0 = world::start_of_time();
        let started = Instant::now();
        let world = Arc::new(World::new(seed, t0).await);
        let setup = started.elapsed();
        let mut runner = Runner::new(seed, world.clone(), plan, t0, world.sim_offset);
        runner.run().await;
        world.tear_down().await;
        if std::env::var_os("SLOTGUARD_HARNESS_TIMING").is_some() {
            say!("seed {seed}: setup {setup:?}, {}, total {:?}", runner.timing, started.elapsed());
        }
        HistoryResult { seed, violations: runner.violations, log: runner.log, stats: runner.stats }
    });
    match handle.await {
        Ok(result) => result,
        Err(e) => {
            let message = match e.try_into_panic() {
                Ok(panic) => panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default(),
                Err(e) => e.to_string(),
            };
            HistoryResult {
                seed,
                violations: vec![Violation {
                    inv: "harness",
                    step: None,
                    detail: format!("the history panicked: {message}"),
                }],
                log: Vec::new(),
                stats: Stats { histories: 1, ..Stats::default() },
            }
        }
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{name} must be a number")))
}

fn steps() -> usize {
    env_u64("SLOTGUARD_HARNESS_STEPS").map(|n| n as usize).unwrap_or(plan::DEFAULT_STEPS)
}

/// Re-runs `plan` with steps removed and fault scripts cleared while it still
/// breaks `inv`; at most `MAX_RUNS` runs or `MAX_TIME`.
async fn shrink(seed: u64, plan: Vec<PlanStep>, inv: &'static str) -> (Vec<PlanStep>, Option<HistoryResult>, usize) {
    const MAX_RUNS: usize = 60;
    const MAX_TIME: Duration = Duration::from_secs(60);
    let started = Instant::now();
    let mut runs = 0;
    let mut best = plan;
    let mut best_result = None;
    let budget_left = |runs: usize| runs < MAX_RUNS && started.elapsed() < MAX_TIME;

    macro_rules! attempt {
        ($candidate:expr) => {{
            let candidate: Vec<PlanStep> = $candidate;
            runs += 1;
            let result = run_plan(seed, candidate.clone()).await;
            if result.fails(inv) {
                best = candidate;
                best_result = Some(result);
                true
            } else {
                false
            }
        }};
    }

    // Without any injected fault?
    if best.iter().any(|s| !s.script.is_empty()) && budget_left(runs) {
        attempt!(best.iter().map(|s| PlanStep { step: s.step, script: Vec::new() }).collect());
    }
    // Without chunks of steps, halving the chunk size.
    let mut chunk = (best.len() / 2).max(1);
    loop {
        let mut i = 0;
        while i < best.len() && budget_left(runs) {
            let mut candidate = best.clone();
            candidate.drain(i..(i + chunk).min(best.len()));
            if candidate.is_empty() || !attempt!(candidate) {
                i += chunk;
            }
        }
        if chunk == 1 || !budget_left(runs) {
            break;
        }
        chunk /= 2;
    }
    // Without each remaining fault script.
    for i in 0..best.len() {
        if !budget_left(runs) {
            break;
        }
        if !best[i].script.is_empty() {
            let mut candidate = best.clone();
            candidate[i].script.clear();
            attempt!(candidate);
        }
    }
    (best, best_result, runs)
}

fn summary(stats: &Stats, elapsed: Duration, parallel: usize, failing: usize) -> String {
    format!(
        "harness: {} histories in {:.1} s ({parallel} at once), {} steps ({} no-ops), {} ops; \
         injected: {} fail-before, {} fail-after, {} crashes, {} pauses ({} resumed); \
         on the wire: {} conflicts, {} lost answers, {} throttled, {} partial reads; \
         5xx: {} with a fault, {} 503 after a pause; \
         {} holds, {} sessions, {} payments, {} events, {} deliveries, {} clock jumps, \
         {} moves ({} refused), {} late cancels, {} price changes ({} holds released at checkout); \
         {} seat holds ({} sold out, {} seat moves refused), {} team holds; \
         final: {} confirmed ({} seats, {} team bookings), {} cancelled, {} refunds, {} calendar events; {failing} failing seeds",
        stats.histories,
        elapsed.as_secs_f64(),
        stats.steps,
        stats.noops,
        stats.ops,
        stats.fail_before,
        stats.fail_after,
        stats.crashes,
        stats.pauses,
        stats.resumed,
        stats.wire_conflicts,
        stats.wire_lost_answers,
        stats.wire_throttles,
        stats.wire_unprocessed,
        stats.faulted_5xx,
        stats.paused_503,
        stats.holds,
        stats.sessions,
        stats.paid,
        stats.events,
        stats.deliveries,
        stats.clock_jumps,
        stats.moves,
        stats.move_refusals,
        stats.late_cancels,
        stats.settings_changes,
        stats.settings_refusals,
        stats.seat_holds,
        stats.sold_out,
        stats.seat_moves_refused,
        stats.team_holds,
        stats.confirmed,
        stats.confirmed_seats,
        stats.confirmed_team,
        stats.cancelled,
        stats.refunds,
        stats.calendar_events,
    )
}

fn print_history(title: &str, log: &[LogLine]) {
    say!("{title}");
    for line in log {
        say!("    {line}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn randomized_histories() {
    let single = env_u64("SLOTGUARD_HARNESS_SEED");
    let mut seeds: Vec<u64> = match single {
        Some(seed) => vec![seed],
        None => {
            let first = env_u64("SLOTGUARD_HARNESS_FIRST").unwrap_or(1);
            let n = env_u64("SLOTGUARD_HARNESS_SEEDS").unwrap_or(200);
            (first..first + n).collect()
        }
    };
    if single.is_none()
        && let Some(n) = env_u64("SLOTGUARD_HARNESS_SOAK")
    {
        let first = env_u64("SLOTGUARD_HARNESS_SOAK_FIRST").unwrap_or(1_000_000);
        say!("harness soak: {n} more seeds from {first}");
        seeds.extend(first..first + n);
    }
    let parallel = env_u64("SLOTGUARD_HARNESS_PARALLEL").map(|n| n.max(1) as usize).unwrap_or(6);
    let steps = steps();

    let started = Instant::now();
    let results: Vec<HistoryResult> = {
        use futures::StreamExt;
        let mut results: Vec<HistoryResult> = futures::stream::iter(seeds.clone())
            .map(|seed| run_plan(seed, plan::generate(seed, steps)))
            .buffer_unordered(parallel)
            .collect()
            .await;
        results.sort_by_key(|r| r.seed);
        results
    };
    let elapsed = started.elapsed();
    let mut total = Stats::default();
    for r in &results {
        total.add(&r.stats);
    }
    let failing: Vec<&HistoryResult> = results.iter().filter(|r| !r.violations.is_empty()).collect();

    if let Some(seed) = single {
        let r = &results[0];
        say!("seed {seed}: plan");
        for (i, step) in plan::generate(seed, steps).iter().enumerate() {
            say!("    {i:>3}  {step}");
        }
        print_history(&format!("seed {seed}: history"), &r.log);
        for v in &r.violations {
            say!("seed {seed}: {v}");
        }
    }
    // Past libtest's capture, so a passing run shows what it explored too.
    say!("{}", summary(&total, elapsed, parallel, failing.len()));
    if failing.is_empty() {
        return;
    }

    // Every failing seed, grouped by the invariant it breaks first.
    let mut by_invariant: BTreeMap<&'static str, Vec<u64>> = BTreeMap::new();
    for r in &failing {
        let mut invs: Vec<&'static str> = r.violations.iter().map(|v| v.inv).collect();
        invs.sort();
        invs.dedup();
        for inv in invs {
            by_invariant.entry(inv).or_default().push(r.seed);
        }
    }
    say!("\nharness: {} of {} seeds fail", failing.len(), results.len());
    for (inv, seeds) in &by_invariant {
        let listed: Vec<String> = seeds.iter().map(u64::to_string).collect();
        say!("  {inv}: {} seeds: {}", seeds.len(), listed.join(" "));
    }
    for r in &failing {
        say!("\nseed {} fails:", r.seed);
        for v in r.violations.iter().take(6) {
            say!("  {v}");
        }
        if r.violations.len() > 6 {
            say!("  ... and {} more", r.violations.len() - 6);
        }
    }

    // Shrink the first failing seed of each invariant (a few, concurrently).
    let mut targets: Vec<(u64, &'static str)> = Vec::new();
    for (inv, seeds) in &by_invariant {
        if let Some(seed) = seeds.iter().find(|s| !targets.iter().any(|(t, _)| t == *s)) {
            targets.push((*seed, *inv));
        }
    }
    targets.truncate(5);
    let shrunk = futures::future::join_all(targets.iter().map(|(seed, inv)| {
        let (seed, inv) = (*seed, *inv);
        async move { (seed, inv, shrink(seed, plan::generate(seed, steps), inv).await) }
    }))
    .await;
    for (seed, inv, (plan, result, runs)) in shrunk {
        say!("\nseed {seed}, {inv}: shrunk to {} of {} steps in {runs} re-runs", plan.len(), steps);
        match result {
            Some(result) => {
                for (i, step) in plan.iter().enumerate() {
                    say!("    plan {i:>3}  {step}");
                }
                print_history("  history:", &result.log);
                for v in result.violations.iter().filter(|v| v.inv == inv).take(3) {
                    say!("  {v}");
                }
            }
            None => say!("  (no smaller plan broke {inv}; the full history is printed by the command below)"),
        }
        say!("  re-run: SLOTGUARD_HARNESS_SEED={seed} scripts/test harness");
    }
    let listed: Vec<String> = failing.iter().map(|r| r.seed.to_string()).collect();
    panic!("{} of {} histories break an invariant: seeds {}", failing.len(), results.len(), listed.join(" "));
}

/// The fixed plans of [`plan::scenarios`]: races and gaps that random plans
/// reach rarely, each run like a seed (world of seed 1) and checked the same way.
#[tokio::test(flavor = "multi_thread")]
async fn scenarios() {
    let mut failed = Vec::new();
    for (name, plan) in plan::scenarios() {
        let r = run_plan(1, plan.clone()).await;
        if r.violations.is_empty() {
            say!("scenario {name}: ok");
            if std::env::var_os("SLOTGUARD_HARNESS_VERBOSE").is_some() {
                print_history("  history:", &r.log);
            }
            continue;
        }
        say!("\nscenario {name} fails:");
        for (i, step) in plan.iter().enumerate() {
            say!("    plan {i:>3}  {step}");
        }
        print_history("  history:", &r.log);
        for v in &r.violations {
            say!("  {v}");
        }
        failed.push(name);
    }
    assert!(failed.is_empty(), "scenarios break an invariant: {}", failed.join(", "));
}
