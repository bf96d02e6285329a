//! Lambda function consuming the calendar queue (SQS, partial batch responses).

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use slotguard::config;
use slotguard::jobs::calendar_writer::{WriterDeps, write_batch};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

/// Stop starting retries this long before the invocation's deadline, so the
/// batch response still gets out.
const SAFETY_MARGIN: Duration = Duration::from_secs(2);

// Lambda sends one invocation at a time: a runtime without worker threads
// starts faster and does the same work.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    slotguard::telemetry::init();
    let aws = config::aws().await;
    let store = config::store(&aws)?;
    let calendar = config::calendars(&aws, &config::Secrets::load(&aws).await?)?;
    let dead_letters = config::dead_letters(&aws)?;
    let policy = config::retry_policy()?;
    let deps = WriterDeps { store: &store, calendar: &calendar, dead_letters: &dead_letters, policy };
    run(service_fn(|event: LambdaEvent<SqsEvent>| {
        let deps = &deps;
        async move {
            let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64;
            let remaining = Duration::from_millis(event.context.deadline.saturating_sub(now_ms));
            let deadline = Instant::now() + remaining.saturating_sub(SAFETY_MARGIN);
            Ok::<SqsBatchResponse, Error>(write_batch(deps, event.payload, deadline).await)
        }
    }))
    .await
}
