//! Configuration from the environment, and clients built once per process.
//!
//! | variable | meaning |
//! |---|---|
//! | `SLOTGUARD_TABLE` | the DynamoDB table (required) |
//! | `SLOTGUARD_ADMIN_AUTH` | `iam` when API Gateway's IAM authorizer guards admin routes |
//! | `SLOTGUARD_ADMIN_TOKEN` | otherwise, the bearer token admin routes require |
//! | `SLOTGUARD_SECRETS_ARN` | on AWS: a Secrets Manager secret holding JSON `{"stripe_secret_key", "stripe_webhook_secret"}`, read once at cold start |
//! | `SLOTGUARD_STRIPE_SECRET_KEY` | locally, instead: the Stripe secret key (test or live) |
//! | `SLOTGUARD_STRIPE_WEBHOOK_SECRET` | locally, instead: the webhook endpoint's signing secret (`whsec_...`) |
//! | `SLOTGUARD_STRIPE_API_BASE` | optional: another Stripe API base URL, e.g. the local simulator |
//! | `SLOTGUARD_CHECKOUT_SUCCESS_URL` / `SLOTGUARD_CHECKOUT_CANCEL_URL` | where Checkout sends the customer back to |
//! | `SLOTGUARD_CALENDAR_QUEUE_URL` | the SQS queue feeding the calendar writer |
//! | `SLOTGUARD_CALENDAR_DLQ_URL` | its dead-letter queue |
//! | `SLOTGUARD_MAX_RECEIVES` | the calendar queue's `maxReceiveCount` (default 5) |
//! | `caldav_username`, `caldav_password` in the secret (`SLOTGUARD_CALDAV_USERNAME`/`_PASSWORD` locally) | CalDAV Basic credentials |
//! | `google_client_id`, `google_client_secret`, `google_refresh_token` in the secret (`SLOTGUARD_GOOGLE_*` locally) | Google Calendar OAuth |
//! | `SLOTGUARD_GOOGLE_API_BASE`, `SLOTGUARD_GOOGLE_TOKEN_URL` | optional: other Google endpoints (tests) |
//! | `AWS_ENDPOINT_URL_DYNAMODB`, `AWS_ENDPOINT_URL_SQS` | read by the AWS SDK: point it at local stand-ins |

pub use crate::adapters::aws::Aws;
use crate::adapters::caldav::{CalDavCalendar, CalDavConfig};
use crate::adapters::calendars::Calendars;
use crate::adapters::dynamo::DynamoStore;
use crate::adapters::google::{GoogleCalendar, GoogleConfig, GoogleCredentials};
use crate::adapters::sqs::{SqsCalendarQueue, SqsDeadLetters};
use crate::adapters::stripe::{StripePayments, WebhookVerifier};
use crate::api::auth::AdminAuth;
use crate::api::checkout::CheckoutUrls;
use crate::jobs::calendar_writer::RetryPolicy;

/// A missing or malformed setting.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(String);

fn required(name: &str) -> Result<String, ConfigError> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty()).ok_or_else(|| ConfigError(format!("{name} is not set")))
}

/// The shared AWS configuration: region, credentials and endpoints from the
/// environment as the SDK reads them.
pub async fn aws() -> Aws {
    Aws::load().await
}

/// The table store named by `SLOTGUARD_TABLE`.
pub async fn store_from_env() -> Result<DynamoStore, ConfigError> {
    store(&aws().await)
}

/// The table store named by `SLOTGUARD_TABLE`, on a loaded AWS configuration.
pub fn store(aws: &Aws) -> Result<DynamoStore, ConfigError> {
    Ok(aws.store(required("SLOTGUARD_TABLE")?))
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

/// Secret values, fetched once per process: from the Secrets Manager secret
/// named by `SLOTGUARD_SECRETS_ARN` on AWS, or from plain environment
/// variables locally. Never printed.
pub struct Secrets {
    stored: Option<serde_json::Map<String, serde_json::Value>>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets(..)")
    }
}

impl Secrets {
    /// Reads the secret named by `SLOTGUARD_SECRETS_ARN`, if set.
    pub async fn load(aws: &Aws) -> Result<Self, ConfigError> {
        let Ok(arn) = required("SLOTGUARD_SECRETS_ARN") else { return Ok(Self { stored: None }) };
        let text = aws.secret_string(&arn).await.map_err(ConfigError)?;
        let stored = serde_json::from_str(&text).map_err(|_| ConfigError(format!("{arn} is not a JSON object")))?;
        Ok(Self { stored: Some(stored) })
    }

    /// `env` if set, else `field` of the stored secret.
    pub fn get(&self, env: &str, field: &str) -> Result<String, ConfigError> {
        if let Ok(value) = required(env) {
            return Ok(value);
        }
        self.stored
            .as_ref()
            .and_then(|s| s.get(field))
            .and_then(|v| v.as_str())
            .map(str::to_owned)
            .ok_or_else(|| ConfigError(format!("{env} is not set and the secret has no {field:?}")))
    }
}

/// The Stripe client: the secret key from [`Secrets`], the optional `SLOTGUARD_STRIPE_API_BASE`.
pub fn payments(secrets: &Secrets) -> Result<StripePayments, ConfigError> {
    let key = secrets.get("SLOTGUARD_STRIPE_SECRET_KEY", "stripe_secret_key")?;
    let base = std::env::var("SLOTGUARD_STRIPE_API_BASE").ok().filter(|v| !v.is_empty());
    StripePayments::new(&key, base.as_deref()).map_err(|e| ConfigError(e.to_string()))
}

/// The webhook verifier: the signing secret from [`Secrets`].
pub fn webhook_verifier(secrets: &Secrets) -> Result<WebhookVerifier, ConfigError> {
    Ok(WebhookVerifier::new(secrets.get("SLOTGUARD_STRIPE_WEBHOOK_SECRET", "stripe_webhook_secret")?))
}

/// Checkout return URLs, from `SLOTGUARD_CHECKOUT_SUCCESS_URL` / `SLOTGUARD_CHECKOUT_CANCEL_URL`.
pub fn checkout_urls_from_env() -> Result<CheckoutUrls, ConfigError> {
    Ok(CheckoutUrls {
        success_url: required("SLOTGUARD_CHECKOUT_SUCCESS_URL")?,
        cancel_url: required("SLOTGUARD_CHECKOUT_CANCEL_URL")?,
    })
}

/// The calendar queue, from `SLOTGUARD_CALENDAR_QUEUE_URL`.
pub fn calendar_queue(aws: &Aws) -> Result<SqsCalendarQueue, ConfigError> {
    Ok(aws.calendar_queue(required("SLOTGUARD_CALENDAR_QUEUE_URL")?))
}

/// The calendar adapters, with credentials from [`Secrets`]: CalDAV Basic
/// auth if `caldav_username`/`caldav_password` are present, Google if its
/// three OAuth values are.
pub fn calendars(secrets: &Secrets) -> Result<Calendars, ConfigError> {
    let mut caldav = CalDavConfig::default();
    if let (Ok(user), Ok(password)) = (
        secrets.get("SLOTGUARD_CALDAV_USERNAME", "caldav_username"),
        secrets.get("SLOTGUARD_CALDAV_PASSWORD", "caldav_password"),
    ) {
        caldav = caldav.with_basic_auth(user, password);
    }
    let caldav = CalDavCalendar::new(caldav).map_err(|e| ConfigError(e.to_string()))?;
    let google = match (
        secrets.get("SLOTGUARD_GOOGLE_CLIENT_ID", "google_client_id"),
        secrets.get("SLOTGUARD_GOOGLE_CLIENT_SECRET", "google_client_secret"),
        secrets.get("SLOTGUARD_GOOGLE_REFRESH_TOKEN", "google_refresh_token"),
    ) {
        (Ok(id), Ok(secret), Ok(token)) => {
            let mut config = GoogleConfig::new(GoogleCredentials::new(id, secret, token));
            if let Ok(base) = required("SLOTGUARD_GOOGLE_API_BASE") {
                config = config.with_api_base(base);
            }
            if let Ok(url) = required("SLOTGUARD_GOOGLE_TOKEN_URL") {
                config = config.with_token_url(url);
            }
            Some(GoogleCalendar::new(config).map_err(|e| ConfigError(e.to_string()))?)
        }
        _ => None,
    };
    Ok(Calendars::new(caldav, google))
}

/// The calendar jobs' dead-letter queue, from `SLOTGUARD_CALENDAR_DLQ_URL`.
pub fn dead_letters(aws: &Aws) -> Result<SqsDeadLetters, ConfigError> {
    Ok(aws.dead_letters(required("SLOTGUARD_CALENDAR_DLQ_URL")?))
}

/// The writer's retry policy; `SLOTGUARD_MAX_RECEIVES` must equal the queue's `maxReceiveCount`.
pub fn retry_policy() -> Result<RetryPolicy, ConfigError> {
    let mut policy = RetryPolicy::default();
    if let Ok(n) = required("SLOTGUARD_MAX_RECEIVES") {
        policy.max_receives = n.parse().map_err(|_| ConfigError("SLOTGUARD_MAX_RECEIVES must be a number".into()))?;
    }
    Ok(policy)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_secrets_are_read_by_field_and_never_printed() {
        let stored = serde_json::json!({"stripe_secret_key": "sk_live_very_secret"});
        let secrets = Secrets { stored: stored.as_object().cloned() };
        let unset = "SLOTGUARD_TEST_UNSET_VARIABLE_7f3a";
        assert_eq!(secrets.get(unset, "stripe_secret_key").unwrap(), "sk_live_very_secret");
        let missing = secrets.get(unset, "stripe_webhook_secret").unwrap_err().to_string();
        assert!(missing.contains("stripe_webhook_secret"), "{missing}");
        assert!(!format!("{secrets:?}").contains("sk_live"));
        assert!(Secrets { stored: None }.get(unset, "stripe_secret_key").is_err());
    }
}
