//! Lambda function for `POST /webhooks/stripe`.

use lambda_http::{Error, run, service_fn};
use slotguard::api::stripe_webhook::{WebhookDeps, stripe_webhook};
use slotguard::config;

// Lambda sends one invocation at a time: a runtime without worker threads
// starts faster and does the same work.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    slotguard::telemetry::init();
    let aws = config::aws().await;
    let store = config::store(&aws)?;
    let secrets = config::Secrets::load(&aws).await?;
    let payments = config::payments(&secrets)?;
    let verifier = config::webhook_verifier(&secrets)?;
    let calendar = config::calendar_queue(&aws)?;
    run(service_fn(|req| async {
        let deps = WebhookDeps { store: &store, payments: &payments, calendar: &calendar, verifier: &verifier };
        Ok::<_, std::convert::Infallible>(stripe_webhook(deps, req).await)
    }))
    .await
}
