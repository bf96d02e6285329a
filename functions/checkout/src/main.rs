//! Lambda function for `POST /v1/reservations/{id}/checkout`.

use lambda_http::{Error, run, service_fn};
use slotguard::api::checkout::checkout;
use slotguard::config;

// Lambda sends one invocation at a time: a runtime without worker threads
// starts faster and does the same work.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    slotguard::telemetry::init();
    let aws = config::aws().await;
    let store = config::store(&aws)?;
    let payments = config::payments(&config::Secrets::load(&aws).await?)?;
    let urls = config::checkout_urls_from_env()?;
    run(service_fn(|req| async { Ok::<_, std::convert::Infallible>(checkout(&store, &payments, &urls, req).await) }))
        .await
}
