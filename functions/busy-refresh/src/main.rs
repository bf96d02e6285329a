//! Scheduled Lambda function: refresh the cached busy time of resources
//! with busy time enabled (README, "Busy time"). The schedule's event
//! refreshes every resource whose snapshot is due; an event
//! `{"resource_id": "..."}` refreshes that one now (on demand).

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use slotguard::busy::BusySettings;
use slotguard::config;
use slotguard::domain::ResourceId;
use slotguard::jobs::busy_refresh::{BusyRefreshReport, refresh_busy_time};

// Lambda sends one invocation at a time: a runtime without worker threads
// starts faster and does the same work.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    slotguard::telemetry::init();
    let aws = config::aws().await;
    let store = config::store(&aws)?;
    let calendar = config::calendars(&aws, &config::Secrets::load(&aws).await?)?;
    let settings = BusySettings::from_env();
    let (store, calendar, settings) = (&store, &calendar, &settings);
    run(service_fn(move |event: LambdaEvent<serde_json::Value>| async move {
        let only = match event.payload.get("resource_id").and_then(|v| v.as_str()) {
            Some(id) => Some(ResourceId::parse(id)?),
            None => None,
        };
        Ok::<BusyRefreshReport, Error>(refresh_busy_time(store, calendar, only.as_ref(), settings).await?)
    }))
    .await
}
