//! Lambda function for `POST /v1/bookings/{id}/cancel`.

use lambda_http::{Error, run, service_fn};
use slotguard::api::cancel::{CancelDeps, cancel};
use slotguard::config;

#[tokio::main]
async fn main() -> Result<(), Error> {
    slotguard::telemetry::init();
    let aws = config::aws().await;
    let store = config::store(&aws)?;
    let payments = config::payments(&config::Secrets::load(&aws).await?)?;
    let calendar = config::calendar_queue(&aws)?;
    let admin = config::admin_auth_from_env();
    run(service_fn(|req| async {
        let deps = CancelDeps { store: &store, payments: &payments, calendar: &calendar, admin: &admin };
        Ok::<_, std::convert::Infallible>(cancel(deps, req).await)
    }))
    .await
}
