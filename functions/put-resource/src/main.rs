//! Lambda function for the admin routes on resources (IAM-authorised on AWS):
//! `PUT /v1/resources/{id}` (create or replace a resource and its booking
//! types) and `GET /v1/admin/resources/{id}/bookings` (its bookings).

use lambda_http::http::Method;
use lambda_http::{Error, run, service_fn};
use slotguard::api::admin_bookings::admin_bookings;
use slotguard::api::put_resource::put_resource;

// Lambda sends one invocation at a time: a runtime without worker threads
// starts faster and does the same work.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    slotguard::telemetry::init();
    let store = slotguard::config::store_from_env().await?;
    let auth = slotguard::config::admin_auth_from_env();
    let calendars = slotguard::config::calendar_target_rules()?;
    run(service_fn(|req: lambda_http::Request| async {
        let response = if req.method() == Method::GET {
            admin_bookings(&store, &auth, req).await
        } else {
            put_resource(&store, &auth, &calendars, req).await
        };
        Ok::<_, std::convert::Infallible>(response)
    }))
    .await
}
