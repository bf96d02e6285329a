//! Lambda function for `GET /v1/reservations/{id}`.

use lambda_http::{Error, run, service_fn};
use slotguard::api::reservation_status::reservation_status;

// Lambda sends one invocation at a time: a runtime without worker threads
// starts faster and does the same work.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    slotguard::telemetry::init();
    let store = slotguard::config::store_from_env().await?;
    run(service_fn(|req| async { Ok::<_, std::convert::Infallible>(reservation_status(&store, req).await) })).await
}
