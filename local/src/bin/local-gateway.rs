//! The local gateway: `cargo run -p slotguard-local --bin local-gateway [-- --setup]`.
//!
//! Serves every HTTP route of `template.yaml` on `SLOTGUARD_HTTP_ADDR`
//! (default `127.0.0.1:3000`, the port `sam local start-api` uses). With
//! `--setup` it first creates the table if missing and seeds the `demo`
//! resource (writing to the CalDAV calendar at `SLOTGUARD_CALDAV_URL`, if
//! set). With `SLOTGUARD_CALENDAR_DLQ_URL` set it also runs the calendar
//! writer on the calendar queue, as Lambda's event source mapping would. Reads `SLOTGUARD_TABLE`, `AWS_ENDPOINT_URL_DYNAMODB` and the
//! admin settings like the Lambda functions do.

use slotguard::config;
use slotguard::jobs::calendar_writer::{WriterDeps, write_batch};
use slotguard_local::{dev, gateway, poller};
use std::time::Duration;
use tokio::time::Instant;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    slotguard::telemetry::init();
    let aws = config::aws().await;
    let store = config::store(&aws)?;
    let secrets = config::Secrets::load(&aws).await?;
    if std::env::args().any(|a| a == "--setup") {
        dev::setup(aws.sdk(), &store, true).await?;
        tracing::info!(table = store.table(), "table and queues ready, demo resource seeded");
    }
    let addr = std::env::var("SLOTGUARD_HTTP_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "local gateway listening");
    // The calendar writer, fed by a local stand-in for the SQS event source mapping.
    if let Ok(dlq_url) = std::env::var("SLOTGUARD_CALENDAR_DLQ_URL") {
        let calendar = config::calendars(&aws, &secrets)?;
        let dead_letters = aws.dead_letters(dlq_url);
        let (store, queue, policy) = (store.clone(), config::calendar_queue(&aws)?, config::retry_policy()?);
        tokio::spawn(async move {
            let deps = WriterDeps { store: &store, calendar: &calendar, dead_letters: &dead_letters, policy };
            let handler = |event| write_batch(&deps, event, Instant::now() + Duration::from_secs(25));
            poller::run(queue.client().clone(), queue.queue_url().to_owned(), handler, std::future::pending()).await;
        });
    }
    let gateway = gateway::Gateway {
        store,
        admin: config::admin_auth_from_env(),
        calendar_rules: config::calendar_target_rules()?,
        payments: std::sync::Arc::new(config::payments(&secrets)?),
        checkout_urls: config::checkout_urls_from_env()?,
        calendar: config::calendar_queue(&aws)?,
        verifier: config::webhook_verifier(&secrets)?,
    };
    gateway::serve(listener, gateway, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await;
    Ok(())
}
