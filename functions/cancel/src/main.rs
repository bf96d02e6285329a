//! Lambda function for changes to a confirmed booking:
//! `POST /v1/bookings/{id}/cancel` and `POST /v1/bookings/{id}/reschedule`
//! (the customer, with the booking's token), and the same under
//! `/v1/admin/bookings/{id}/...` (the host, IAM-authorised on AWS).

use lambda_http::{Error, run, service_fn};
use slotguard::api::cancel::{CancelDeps, cancel};
use slotguard::api::reschedule::{RescheduleDeps, reschedule};
use slotguard::config;

// Lambda sends one invocation at a time: a runtime without worker threads
// starts faster and does the same work.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    slotguard::telemetry::init();
    let aws = config::aws().await;
    let store = config::store(&aws)?;
    let payments = config::payments(&config::Secrets::load(&aws).await?)?;
    let calendar = config::calendar_queue(&aws)?;
    let admin = config::admin_auth_from_env();
    run(service_fn(|req: lambda_http::Request| async {
        let response = if req.uri().path().ends_with("/reschedule") {
            reschedule(RescheduleDeps { store: &store, calendar: &calendar, admin: &admin }, req).await
        } else {
            let deps = CancelDeps { store: &store, payments: &payments, calendar: &calendar, admin: &admin };
            cancel(deps, req).await
        };
        Ok::<_, std::convert::Infallible>(response)
    }))
    .await
}
