//! The local gateway: `cargo run -p slotguard-local --bin local-gateway [-- --setup]`.
//!
//! Serves every HTTP route of `template.yaml` on `SLOTGUARD_HTTP_ADDR`
//! (default `127.0.0.1:3000`, the port `sam local start-api` uses). With
//! `--setup` it first creates the table if missing and seeds the `demo`
//! resource. Reads `SLOTGUARD_TABLE`, `AWS_ENDPOINT_URL_DYNAMODB` and the
//! admin settings like the Lambda functions do.

use slotguard::config;
use slotguard::domain::{Resource, ResourceId};
use slotguard::ports::ResourceStore;
use slotguard_local::{dev, gateway};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    slotguard::telemetry::init();
    let aws = config::aws().await;
    let store = config::store(&aws)?;
    let secrets = config::Secrets::load(&aws).await?;
    if std::env::args().any(|a| a == "--setup") {
        dev::ensure_table(store.client(), store.table()).await?;
        let demo = Resource::from_spec(ResourceId::parse("demo")?, dev::demo_resource())?;
        store.put_resource(&demo).await?;
        tracing::info!(table = store.table(), "table ready, demo resource seeded");
    }
    let addr = std::env::var("SLOTGUARD_HTTP_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "local gateway listening");
    let gateway = gateway::Gateway {
        store,
        admin: config::admin_auth_from_env(),
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
