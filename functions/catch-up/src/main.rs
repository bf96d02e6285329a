//! Scheduled Lambda function: settle the Checkout Session events Stripe made
//! since the catch-up's cursor, whether or not a webhook delivered them
//! (README, "Catch-up"), every 5 minutes. Settings:
//! `SLOTGUARD_CATCH_UP_LOOKBACK_HOURS`, `SLOTGUARD_CATCH_UP_ALARM_MINUTES`.

use chrono::Utc;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use slotguard::api::stripe_webhook::SettleDeps;
use slotguard::config;
use slotguard::jobs::catch_up::{CatchUpReport, catch_up};
use std::time::{Duration, SystemTime};

/// What a run leaves of the invocation's time for writing the cursor and its alarms.
const MARGIN: Duration = Duration::from_secs(15);

/// The template's `Timeout`: the time a run has when the runtime names no
/// deadline ahead (cargo lambda's emulator sends a fixed 600 000 ms: 1970).
const TIMEOUT: Duration = Duration::from_secs(120);

// Lambda sends one invocation at a time: a runtime without worker threads
// starts faster and does the same work.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    slotguard::telemetry::init();
    let aws = config::aws().await;
    let store = config::store(&aws)?;
    let payments = config::payments(&config::Secrets::load(&aws).await?)?;
    let queue = config::calendar_queue(&aws)?;
    let settings = config::catch_up_settings()?;
    let deps = SettleDeps { store: &store, payments: &payments, calendar: &queue };
    let (deps, settings) = (&deps, &settings);
    run(service_fn(move |event: LambdaEvent<serde_json::Value>| async move {
        let left = event.context.deadline().duration_since(SystemTime::now()).ok().filter(|left| *left > MARGIN);
        let deadline = tokio::time::Instant::now() + left.unwrap_or(TIMEOUT) - MARGIN;
        Ok::<CatchUpReport, Error>(catch_up(deps, settings, Utc::now(), deadline).await?)
    }))
    .await
}
