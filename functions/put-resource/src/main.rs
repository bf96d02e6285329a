//! Lambda function for `PUT /v1/resources/{id}` (admin, IAM-authorized on AWS).

use lambda_http::{Error, run, service_fn};
use slotguard::api::put_resource::put_resource;

#[tokio::main]
async fn main() -> Result<(), Error> {
    slotguard::telemetry::init();
    let store = slotguard::config::store_from_env().await?;
    let auth = slotguard::config::admin_auth_from_env();
    run(service_fn(|req| async { Ok::<_, std::convert::Infallible>(put_resource(&store, &auth, req).await) })).await
}
