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
//! | `SLOTGUARD_CALENDAR_SECRET_PREFIX` | the name prefix of the secrets resources may name as calendar `credentials` (default `slotguard/calendars/`; the template grants reading only those) |
//! | `SLOTGUARD_OUTBOUND` | where calendar requests may go: `strict` (default: `https`, public addresses only) or `local` (also `http` and loopback) |
//! | `SLOTGUARD_OUTBOUND_ALLOW` | optional: comma-separated private or loopback IP addresses calendar requests may also reach (a calendar server in your own network) |
//! | `google_client_id`, `google_client_secret` in the secret (`SLOTGUARD_GOOGLE_CLIENT_ID`/`_SECRET` locally) | the Google OAuth client |
//! | `google_refresh_token` in the secret (`SLOTGUARD_GOOGLE_REFRESH_TOKEN` locally) | optional: the refresh token of Google resources that name no `credentials` |
//! | `SLOTGUARD_GOOGLE_API_BASE`, `SLOTGUARD_GOOGLE_TOKEN_URL` | optional: other Google endpoints (tests) |
//! | `SLOTGUARD_CATCH_UP_LOOKBACK_HOURS` | catch-up: how far back the first run (no cursor yet) reads Stripe's events (default 72, at most 720: Stripe keeps 30 days) |
//! | `SLOTGUARD_CATCH_UP_ALARM_MINUTES` | catch-up: a paid session this old without an outcome raises the alarm (default 30) |
//! | `AWS_ENDPOINT_URL_DYNAMODB`, `AWS_ENDPOINT_URL_SQS`, `AWS_ENDPOINT_URL_SECRETS_MANAGER` | read by the AWS SDK: point it at local stand-ins |
//!
//! CalDAV credentials are per resource: each resource names the secret
//! holding its server's `{"username", "password"}` (README, "Resources and
//! calendars"). The global `caldav_username`/`caldav_password` of earlier
//! versions (`SLOTGUARD_CALDAV_USERNAME`/`_PASSWORD` locally) are no longer
//! read; a function that still finds them logs a warning at cold start.

pub use crate::adapters::aws::Aws;
use crate::adapters::caldav::{CalDavCalendar, CalDavConfig};
use crate::adapters::calendar_secrets::{self, DEFAULT_PREFIX};
use crate::adapters::calendars::{CalendarTargetRules, Calendars};
use crate::adapters::dynamo::DynamoStore;
use crate::adapters::google::{GoogleCalendar, GoogleConfig, GoogleCredentials};
use crate::adapters::outbound::OutboundPolicy;
use crate::adapters::sqs::{SqsCalendarQueue, SqsDeadLetters};
use crate::adapters::stripe::{StripePayments, WebhookVerifier};
use crate::api::auth::AdminAuth;
use crate::api::checkout::CheckoutUrls;
use crate::domain::CredentialsRef;
use crate::jobs::calendar_writer::RetryPolicy;
use crate::jobs::catch_up::CatchUpSettings;

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

/// Where calendar requests may go, from `SLOTGUARD_OUTBOUND` and
/// `SLOTGUARD_OUTBOUND_ALLOW` (default: strict).
pub fn outbound_policy() -> Result<OutboundPolicy, ConfigError> {
    let var = |name| std::env::var(name).unwrap_or_default();
    OutboundPolicy::parse(&var("SLOTGUARD_OUTBOUND"), &var("SLOTGUARD_OUTBOUND_ALLOW")).map_err(ConfigError)
}

/// The prefix of the secrets resources may name, from
/// `SLOTGUARD_CALENDAR_SECRET_PREFIX` (default `slotguard/calendars/`).
pub fn calendar_secret_prefix() -> Result<String, ConfigError> {
    let prefix = required("SLOTGUARD_CALENDAR_SECRET_PREFIX").unwrap_or_else(|_| DEFAULT_PREFIX.to_owned());
    calendar_secrets::check_prefix(&prefix).map_err(ConfigError)?;
    Ok(prefix)
}

/// What a resource's calendar must satisfy to be saved: [`outbound_policy`]
/// and [`calendar_secret_prefix`].
pub fn calendar_target_rules() -> Result<CalendarTargetRules, ConfigError> {
    CalendarTargetRules::new(outbound_policy()?, &calendar_secret_prefix()?).map_err(ConfigError)
}

/// The calendar adapters: [`outbound_policy`], the per-resource credentials
/// read from Secrets Manager under [`calendar_secret_prefix`], and Google if
/// its OAuth client is configured in [`Secrets`] (with the deployment's own
/// refresh token, if given, for resources that name none).
///
/// Refuses a prefix under which the app's own secret (`SLOTGUARD_SECRETS_ARN`)
/// lies: resources could then name the Stripe keys.
pub fn calendars(aws: &Aws, secrets: &Secrets) -> Result<Calendars, ConfigError> {
    let outbound = outbound_policy()?;
    let prefix = calendar_secret_prefix()?;
    if let Ok(own) = required("SLOTGUARD_SECRETS_ARN")
        && CredentialsRef::parse(&own).is_ok_and(|r| calendar_secrets::check_reference(&prefix, &r).is_ok())
    {
        return Err(ConfigError(format!(
            "SLOTGUARD_SECRETS_ARN lies under SLOTGUARD_CALENDAR_SECRET_PREFIX ({prefix:?}): resources could name it"
        )));
    }
    if secrets.get("SLOTGUARD_CALDAV_USERNAME", "caldav_username").is_ok()
        || secrets.get("SLOTGUARD_CALDAV_PASSWORD", "caldav_password").is_ok()
    {
        tracing::warn!(
            "caldav_username/caldav_password are no longer used: name a secret under {prefix:?} \
             in each CalDAV resource's calendar.credentials"
        );
    }
    let calendar_secrets = aws.calendar_secrets(&prefix).map_err(ConfigError)?;
    let caldav = CalDavConfig::default().with_outbound(outbound.clone()).with_secrets(calendar_secrets.clone());
    let caldav = CalDavCalendar::new(caldav).map_err(|e| ConfigError(e.to_string()))?;
    let google = match (
        secrets.get("SLOTGUARD_GOOGLE_CLIENT_ID", "google_client_id"),
        secrets.get("SLOTGUARD_GOOGLE_CLIENT_SECRET", "google_client_secret"),
    ) {
        (Ok(id), Ok(secret)) => {
            let credentials = match secrets.get("SLOTGUARD_GOOGLE_REFRESH_TOKEN", "google_refresh_token") {
                Ok(token) => GoogleCredentials::new(id, secret, token),
                Err(_) => GoogleCredentials::client_only(id, secret),
            };
            let mut config = GoogleConfig::new(credentials).with_outbound(outbound).with_secrets(calendar_secrets);
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

/// The catch-up's settings, from `SLOTGUARD_CATCH_UP_LOOKBACK_HOURS` (the
/// first run's window, default 72 hours, at most 720) and
/// `SLOTGUARD_CATCH_UP_ALARM_MINUTES` (default 30).
pub fn catch_up_settings() -> Result<CatchUpSettings, ConfigError> {
    let number = |name: &str| -> Result<Option<i64>, ConfigError> {
        required(name)
            .ok()
            .map(|v| v.trim().parse().map_err(|_| ConfigError(format!("{name} must be a number"))))
            .transpose()
    };
    let defaults = CatchUpSettings::default();
    let lookback =
        number("SLOTGUARD_CATCH_UP_LOOKBACK_HOURS")?.map_or(defaults.first_run_lookback, chrono::Duration::hours);
    let alarm = number("SLOTGUARD_CATCH_UP_ALARM_MINUTES")?.map_or(defaults.alarm_after, chrono::Duration::minutes);
    CatchUpSettings::new(lookback, alarm).map_err(ConfigError)
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
