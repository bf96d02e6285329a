//! Configuration from the environment, and clients built once per process.
//!
//! | variable | meaning |
//! |---|---|
//! | `SLOTGUARD_TABLE` | the DynamoDB table (required) |
//! | `SLOTGUARD_ADMIN_AUTH` | `iam` when API Gateway's IAM authorizer guards admin routes |
//! | `SLOTGUARD_ADMIN_TOKEN` | otherwise, the bearer token admin routes require |
//! | `AWS_ENDPOINT_URL_DYNAMODB` | read by the AWS SDK: points it at DynamoDB Local |

use crate::api::put_resource::AdminAuth;
use crate::dynamo::DynamoStore;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use std::time::Duration;

/// A missing or malformed setting.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(String);

fn required(name: &str) -> Result<String, ConfigError> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| ConfigError(format!("{name} is not set")))
}

/// Timeouts short enough that a dead dependency becomes a 503 well inside API
/// Gateway's 30 s limit, long enough for a slow but healthy one.
pub fn timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(2))
        .operation_attempt_timeout(Duration::from_secs(4))
        .operation_timeout(Duration::from_secs(10))
        .build()
}

/// The shared AWS configuration: region, credentials and endpoints from the
/// environment as the SDK reads them, with [`timeouts`].
pub async fn aws() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(timeouts())
        .load()
        .await
}

/// The table store named by `SLOTGUARD_TABLE`.
pub async fn store_from_env() -> Result<DynamoStore, ConfigError> {
    let table = required("SLOTGUARD_TABLE")?;
    Ok(DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&aws().await),
        table,
    ))
}

/// How admin routes authenticate, from `SLOTGUARD_ADMIN_AUTH` / `SLOTGUARD_ADMIN_TOKEN`.
pub fn admin_auth_from_env() -> AdminAuth {
    if std::env::var("SLOTGUARD_ADMIN_AUTH").is_ok_and(|v| v.eq_ignore_ascii_case("iam")) {
        return AdminAuth::Iam;
    }
    match required("SLOTGUARD_ADMIN_TOKEN") {
        Ok(token) => AdminAuth::Token(token),
        Err(_) => AdminAuth::Disabled,
    }
}
