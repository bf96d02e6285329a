//! Lambda function for `GET /v1/resources/{id}/slots` (open slots) and
//! `GET /v1/resources/{id}` (the resource and its booking types).

use lambda_http::{Error, run, service_fn};
use slotguard::api::availability::availability;
use slotguard::api::resource_view::resource_view;

// Lambda sends one invocation at a time: a runtime without worker threads
// starts faster and does the same work.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    slotguard::telemetry::init();
    let store = slotguard::config::store_from_env().await?;
    run(service_fn(|req: lambda_http::Request| async {
        let response = if req.uri().path().ends_with("/slots") {
            availability(&store, req).await
        } else {
            resource_view(&store, req).await
        };
        Ok::<_, std::convert::Infallible>(response)
    }))
    .await
}
