//! Lambda function for `GET /v1/resources/{id}/slots`.

use lambda_http::{Error, run, service_fn};
use slotguard::api::availability::availability;

#[tokio::main]
async fn main() -> Result<(), Error> {
    slotguard::telemetry::init();
    let store = slotguard::config::store_from_env().await?;
    run(service_fn(|req| async { Ok::<_, std::convert::Infallible>(availability(&store, req).await) })).await
}
