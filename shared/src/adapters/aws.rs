//! The AWS SDK configuration every AWS client is built from, with timeouts
//! that turn a dead dependency into a 503 well inside API Gateway's limit.

use super::dynamo::DynamoStore;
use super::sqs::{SqsCalendarQueue, SqsDeadLetters};
use aws_config::environment::{EnvironmentVariableCredentialsProvider, EnvironmentVariableRegionProvider};
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_http_client::tls::rustls_provider::CryptoMode;
use aws_smithy_http_client::tls::{Provider, TlsContext};
use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{HttpClient, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
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

/// The SDK's own HTTP client (aws-smithy-http-client's hyper connector, with
/// its timeouts, pool and error classification) on ring, trusting
/// [`super::tls::aws_trust_store`] instead of the platform's certificate
/// files. Every client built from one [`Aws`] shares it, and with it one
/// connector and connection pool per timeout setting.
pub fn http_client() -> SharedHttpClient {
    super::install_crypto_provider();
    let context = TlsContext::builder().with_trust_store(super::tls::aws_trust_store()).build();
    let context = context.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "compiled-in AWS roots refused, using the platform's");
        TlsContext::default()
    });
    let client = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .tls_context(context)
        .build_https();
    SharedHttpClient::new(ConnectorOnFirstUse(client))
}

/// The hyper client, except that building an SDK client does not build a
/// connector (the trait's default `validate_base_client_config`). The
/// hyper client builds one (TLS configuration, roots, pool) when each SDK
/// client is constructed, only so that the platform's roots load then rather
/// than on the first request, and drops it; the first request then builds the
/// one it keeps. With compiled-in roots there is nothing to load early, so
/// each client's throwaway connector was pure start-up cost.
#[derive(Debug)]
struct ConnectorOnFirstUse(SharedHttpClient);

impl HttpClient for ConnectorOnFirstUse {
    fn http_connector(&self, settings: &HttpConnectorSettings, components: &RuntimeComponents) -> SharedHttpConnector {
        self.0.http_connector(settings, components)
    }

    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        self.0.connector_metadata()
    }
}

/// Whether `name` holds something other than whitespace, as the SDK's
/// environment providers read it.
fn env_set(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.trim().is_empty())
}

/// A loaded AWS configuration: region, credentials and endpoints from the
/// environment as the SDK reads them (`AWS_ENDPOINT_URL_DYNAMODB`, ...), with
/// [`timeouts`]. Clients built from it share its connection pool settings.
#[derive(Debug, Clone)]
pub struct Aws(SdkConfig);

impl Aws {
    /// Loads the configuration from the environment, on [`http_client`].
    ///
    /// Where the environment holds the region and the credentials (Lambda
    /// sets both), their providers are those variables alone: the default
    /// chains would read them first too, but building the chains builds an
    /// STS client (web identity) and IMDS clients that a function never calls,
    /// which took as long as building the DynamoDB client.
    pub async fn load() -> Self {
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(http_client());
        if env_set("AWS_REGION") || env_set("AWS_DEFAULT_REGION") {
            loader = loader.region(EnvironmentVariableRegionProvider::new());
        }
        if env_set("AWS_ACCESS_KEY_ID") && (env_set("AWS_SECRET_ACCESS_KEY") || env_set("SECRET_ACCESS_KEY")) {
            loader = loader.credentials_provider(EnvironmentVariableCredentialsProvider::new());
        }
        Self(loader.timeout_config(timeouts()).load().await)
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

    /// The calendar credentials resources name, read from Secrets Manager:
    /// secrets whose names start with `prefix` only.
    pub fn calendar_secrets(&self, prefix: &str) -> Result<super::calendar_secrets::CalendarSecrets, String> {
        super::calendar_secrets::CalendarSecrets::secrets_manager(aws_sdk_secretsmanager::Client::new(&self.0), prefix)
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

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::config::{Credentials, Region};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Answers every request on one connection with an empty `ListTables`
    /// result, and counts the requests.
    async fn fake_dynamodb() -> (String, tokio::task::JoinHandle<usize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut served = 0;
            let mut buf = vec![0; 16 * 1024];
            loop {
                let mut request = Vec::new();
                // Headers, then the body its Content-Length announces.
                let complete = loop {
                    let n = socket.read(&mut buf).await.unwrap();
                    if n == 0 {
                        return served;
                    }
                    request.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&request);
                    if let Some(end) = text.find("\r\n\r\n") {
                        let length = text[..end]
                            .lines()
                            .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(str::to_owned))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        if request.len() >= end + 4 + length {
                            break text.into_owned();
                        }
                    }
                };
                assert!(complete.starts_with("POST / HTTP/1.1"), "{complete}");
                let body = r#"{"TableNames":[]}"#;
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.0\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                socket.write_all(response.as_bytes()).await.unwrap();
                served += 1;
            }
        });
        (url, server)
    }

    #[tokio::test]
    async fn clients_on_the_shared_http_client_reach_a_plain_http_endpoint_over_one_connection() {
        let (url, server) = fake_dynamodb().await;
        let http = http_client();
        let config = |http: &SharedHttpClient| {
            aws_sdk_dynamodb::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new("us-east-1"))
                .credentials_provider(Credentials::new("local", "local", None, None, "test"))
                .endpoint_url(&url)
                .timeout_config(timeouts())
                .http_client(http.clone())
                .build()
        };
        // Two SDK clients, as a function builds (DynamoDB, SQS, ...): one pool.
        for client in
            [aws_sdk_dynamodb::Client::from_conf(config(&http)), aws_sdk_dynamodb::Client::from_conf(config(&http))]
        {
            let tables = client.list_tables().send().await.unwrap();
            assert!(tables.table_names().is_empty());
        }
        drop(http);
        assert_eq!(server.await.unwrap(), 2);
    }
}
