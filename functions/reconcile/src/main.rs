//! Scheduled Lambda function: reconcile bookings with calendars for the next
//! `SLOTGUARD_RECONCILE_DAYS` days (default 30), starting a day back.

use chrono::{Duration, Utc};
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use slotguard::config;
use slotguard::jobs::reconcile::{ReconcileReport, reconcile};

// Lambda sends one invocation at a time: a runtime without worker threads
// starts faster and does the same work.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    slotguard::telemetry::init();
    let aws = config::aws().await;
    let store = config::store(&aws)?;
    let calendar = config::calendars(&aws, &config::Secrets::load(&aws).await?)?;
    let queue = config::calendar_queue(&aws)?;
    let days: i64 = std::env::var("SLOTGUARD_RECONCILE_DAYS").ok().and_then(|d| d.parse().ok()).unwrap_or(30);
    run(service_fn(|_: LambdaEvent<serde_json::Value>| async {
        let now = Utc::now();
        Ok::<ReconcileReport, Error>(
            reconcile(&store, &calendar, &queue, now - Duration::days(1), now + Duration::days(days)).await?,
        )
    }))
    .await
}
