//! The AWS SDK configuration every AWS client is built from, with timeouts
//! that turn a dead dependency into a 503 well inside API Gateway's limit.

use super::dynamo::DynamoStore;
use super::sqs::{SqsCalendarQueue, SqsDeadLetters};
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use std::time::Duration;

/// Timeouts short enough that a dead dependency becomes a 503 well inside API
/// Gateway's 30 s limit, long enough for a slow but healthy one.
pub fn timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(2))
        .operation_attempt_timeout(Duration::from_secs(4))
        .operation_timeout(Duration::from_secs(10))
        .build()
}

/// A loaded AWS configuration: region, credentials and endpoints from the
/// environment as the SDK reads them (`AWS_ENDPOINT_URL_DYNAMODB`, ...), with
/// [`timeouts`]. Clients built from it share its connection pool settings.
#[derive(Debug, Clone)]
pub struct Aws(SdkConfig);

impl Aws {
    /// Loads the configuration from the environment.
    pub async fn load() -> Self {
        super::install_crypto_provider();
        Self(aws_config::defaults(BehaviorVersion::latest()).timeout_config(timeouts()).load().await)
    }

    /// The SDK configuration itself, for tools that build other clients.
    pub fn sdk(&self) -> &SdkConfig {
        &self.0
    }

    /// The store on DynamoDB table `table`.
    pub fn store(&self, table: String) -> DynamoStore {
        DynamoStore::new(aws_sdk_dynamodb::Client::new(&self.0), table)
    }

    /// The calendar job queue at `url`.
    pub fn calendar_queue(&self, url: String) -> SqsCalendarQueue {
        SqsCalendarQueue::new(aws_sdk_sqs::Client::new(&self.0), url)
    }

    /// The calendar jobs' dead-letter queue at `url`.
    pub fn dead_letters(&self, url: String) -> SqsDeadLetters {
        SqsDeadLetters::new(aws_sdk_sqs::Client::new(&self.0), url)
    }

    /// The string value of the Secrets Manager secret `arn`; the error says
    /// what failed, never the value.
    pub async fn secret_string(&self, arn: &str) -> Result<String, String> {
        let out = aws_sdk_secretsmanager::Client::new(&self.0)
            .get_secret_value()
            .secret_id(arn)
            .send()
            .await
            .map_err(|e| format!("reading {arn}: {}", aws_sdk_secretsmanager::error::DisplayErrorContext(&e)))?;
        out.secret_string().map(str::to_owned).ok_or_else(|| format!("{arn} has no string value"))
    }
}
