//! Calendar credentials per resource: the secrets resources name
//! ([`CredentialsRef`]), read from Secrets Manager on first use and kept for
//! a few minutes.
//!
//! A resource may only name a secret whose name starts with the
//! deployment's prefix ([`DEFAULT_PREFIX`], `SLOTGUARD_CALENDAR_SECRET_PREFIX`).
//! The check runs when the resource is saved ([`check_reference`]) and again
//! before every read here, and the template grants the calendar functions
//! `secretsmanager:GetSecretValue` on that prefix only: an admin's typo or a
//! stolen admin token cannot make the writer send the Stripe keys as Basic
//! credentials to a URL of its choosing.
//!
//! Failures are calendar errors, never a crash, and never carry a value: a
//! secret that cannot be read (missing, access denied, Secrets Manager down,
//! not the JSON expected) is transient (`credentials_unavailable`), so the
//! job is retried and, if it never heals, lands in the dead-letter queue with
//! the reason; a reference outside the prefix (a resource saved under an
//! older prefix) is permanent (`credentials_refused`).

use super::caldav::BasicCredentials;
use crate::domain::CredentialsRef;
use crate::ports::CalendarError;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// The secret name prefix resources may name unless configured otherwise.
pub const DEFAULT_PREFIX: &str = "slotguard/calendars/";

/// How long a secret read is reused: a rotated password is picked up within
/// this time (at once after the server refuses the old one).
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);

/// Checks a secret name prefix: not empty (an empty prefix would allow every
/// secret), of the characters secret names are made of.
pub fn check_prefix(prefix: &str) -> Result<(), String> {
    if prefix.is_empty() || !prefix.chars().all(|c| c.is_ascii_alphanumeric() || "/_+=.@-".contains(c)) {
        return Err(format!(
            "SLOTGUARD_CALENDAR_SECRET_PREFIX must be a non-empty secret name prefix (A-Z a-z 0-9 / _ + = . @ -), not {prefix:?}"
        ));
    }
    Ok(())
}

/// Whether a resource may name `reference` under `prefix`; the error is the
/// refusal an admin reads.
pub fn check_reference(prefix: &str, reference: &CredentialsRef) -> Result<(), String> {
    let name = reference.secret_name();
    if name.len() > prefix.len() && name.starts_with(prefix) {
        Ok(())
    } else {
        Err(format!(
            "calendar.credentials: {:?} is not a calendar secret; name a secret whose name starts with {prefix:?}",
            reference.secret_id()
        ))
    }
}

/// Where secrets are read from.
enum Source {
    /// None configured: a resource naming credentials cannot be served.
    Nothing,
    SecretsManager(aws_sdk_secretsmanager::Client),
    /// Secret values by name, held in memory (tests, tools).
    Fixed(HashMap<String, String>),
}

/// A secret read, and when.
struct Cached {
    value: Arc<Map<String, Value>>,
    read_at: Instant,
}

struct Inner {
    source: Source,
    prefix: String,
    ttl: Duration,
    /// One lock around reading and filling: concurrent first uses of a
    /// secret wait for one read instead of each making their own.
    cache: Mutex<HashMap<String, Cached>>,
}

/// The calendar credentials of every resource, read on demand and cached
/// per secret for [`DEFAULT_TTL`]. Clones share the cache. Never prints a
/// value.
#[derive(Clone)]
pub struct CalendarSecrets {
    inner: Arc<Inner>,
}

impl fmt::Debug for CalendarSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = match &self.inner.source {
            Source::Nothing => "none",
            Source::SecretsManager(_) => "secrets manager",
            Source::Fixed(_) => "fixed",
        };
        f.debug_struct("CalendarSecrets")
            .field("source", &source)
            .field("prefix", &self.inner.prefix)
            .field("ttl", &self.inner.ttl)
            .finish_non_exhaustive()
    }
}

impl Default for CalendarSecrets {
    /// No secrets: resources without credentials still work.
    fn default() -> Self {
        Self::new(Source::Nothing, DEFAULT_PREFIX.to_owned())
    }
}

impl CalendarSecrets {
    fn new(source: Source, prefix: String) -> Self {
        Self { inner: Arc::new(Inner { source, prefix, ttl: DEFAULT_TTL, cache: Mutex::new(HashMap::new()) }) }
    }

    /// Secrets read from Secrets Manager, names under `prefix` only.
    pub fn secrets_manager(client: aws_sdk_secretsmanager::Client, prefix: &str) -> Result<Self, String> {
        check_prefix(prefix)?;
        Ok(Self::new(Source::SecretsManager(client), prefix.to_owned()))
    }

    /// Secrets held in memory, by name (tests and tools), names under `prefix` only.
    pub fn fixed(values: HashMap<String, String>, prefix: &str) -> Result<Self, String> {
        check_prefix(prefix)?;
        Ok(Self::new(Source::Fixed(values), prefix.to_owned()))
    }

    /// The same source and prefix, reused for `ttl` instead (with a cache of its own).
    pub fn with_ttl(&self, ttl: Duration) -> Self {
        let source = match &self.inner.source {
            Source::Nothing => Source::Nothing,
            Source::SecretsManager(c) => Source::SecretsManager(c.clone()),
            Source::Fixed(m) => Source::Fixed(m.clone()),
        };
        let mut fresh = Self::new(source, self.inner.prefix.clone());
        Arc::get_mut(&mut fresh.inner).expect("not shared yet").ttl = ttl;
        fresh
    }

    /// The prefix secret names must start with.
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// CalDAV Basic credentials: `username` and `password`.
    pub async fn basic(&self, reference: &CredentialsRef) -> Result<BasicCredentials, CalendarError> {
        let fields = self.fields(reference).await?;
        let username = string_field(&fields, reference, "username")?;
        let password = string_field(&fields, reference, "password")?;
        Ok(BasicCredentials::new(username, password))
    }

    /// A Google OAuth refresh token: `refresh_token`.
    pub async fn refresh_token(&self, reference: &CredentialsRef) -> Result<String, CalendarError> {
        let fields = self.fields(reference).await?;
        string_field(&fields, reference, "refresh_token")
    }

    /// Drops the cached value of the secret `reference` names, so the next
    /// use reads it again (after the server refused what it holds).
    pub async fn forget(&self, reference: &CredentialsRef) {
        self.inner.cache.lock().await.remove(reference.secret_id());
    }

    /// The JSON object holding the credentials' fields: the secret's, or
    /// its member named by the reference's key.
    async fn fields(&self, reference: &CredentialsRef) -> Result<Map<String, Value>, CalendarError> {
        check_reference(&self.inner.prefix, reference)
            .map_err(|message| CalendarError::Permanent { kind: "credentials_refused", message })?;
        let secret = self.secret(reference).await?;
        match reference.key() {
            None => Ok(secret.as_ref().clone()),
            Some(key) => match secret.get(key) {
                Some(Value::Object(inner)) => Ok(inner.clone()),
                _ => Err(unavailable(format!(
                    "the secret {} has no object under the key {key:?}",
                    reference.secret_id()
                ))),
            },
        }
    }

    /// The secret's JSON object, from the cache while it is fresh.
    async fn secret(&self, reference: &CredentialsRef) -> Result<Arc<Map<String, Value>>, CalendarError> {
        let id = reference.secret_id();
        let mut cache = self.inner.cache.lock().await;
        if let Some(hit) = cache.get(id).filter(|c| c.read_at.elapsed() < self.inner.ttl) {
            return Ok(hit.value.clone());
        }
        let text = match &self.inner.source {
            Source::Nothing => {
                return Err(CalendarError::Permanent {
                    kind: "credentials_not_configured",
                    message: format!("the resource names the secret {id}, but no secret store is configured"),
                });
            }
            Source::Fixed(values) => values
                .get(id)
                .cloned()
                .ok_or_else(|| unavailable(format!("reading the secret {id}: no such secret")))?,
            Source::SecretsManager(client) => {
                let out = client.get_secret_value().secret_id(id).send().await.map_err(|e| {
                    unavailable(format!(
                        "reading the secret {id}: {}",
                        aws_sdk_secretsmanager::error::DisplayErrorContext(&e)
                    ))
                })?;
                out.secret_string()
                    .map(str::to_owned)
                    .ok_or_else(|| unavailable(format!("the secret {id} has no string value")))?
            }
        };
        // The parse error is not shown: it quotes the text it choked on.
        let value = match serde_json::from_str::<Value>(&text) {
            Ok(Value::Object(map)) => Arc::new(map),
            _ => return Err(unavailable(format!("the secret {id} is not a JSON object"))),
        };
        tracing::debug!(secret = id, "calendar credentials read");
        cache.insert(id.to_owned(), Cached { value: value.clone(), read_at: Instant::now() });
        Ok(value)
    }
}

fn unavailable(message: String) -> CalendarError {
    CalendarError::Transient { kind: "credentials_unavailable", message }
}

fn string_field(fields: &Map<String, Value>, reference: &CredentialsRef, name: &str) -> Result<String, CalendarError> {
    match fields.get(name) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        _ => Err(unavailable(format!("the secret {reference} has no {name:?} string"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(s: &str) -> CredentialsRef {
        CredentialsRef::parse(s).unwrap()
    }

    fn secrets(values: &[(&str, &str)]) -> CalendarSecrets {
        let map = values.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        CalendarSecrets::fixed(map, DEFAULT_PREFIX).unwrap()
    }

    #[test]
    fn references_must_be_under_the_prefix() {
        for ok in ["slotguard/calendars/alice", "slotguard/calendars/team#alice"] {
            assert!(check_reference(DEFAULT_PREFIX, &reference(ok)).is_ok(), "{ok}");
        }
        let arn = "arn:aws:secretsmanager:eu-central-1:123456789012:secret:slotguard/calendars/alice-AbCdEf";
        assert!(check_reference(DEFAULT_PREFIX, &reference(arn)).is_ok());
        for refused in [
            "slotguard/calendars/",
            "slotguard/calendarsx",
            "StripeSecret-AbCdEf",
            "slotguard-secrets",
            "arn:aws:secretsmanager:eu-central-1:123456789012:secret:StripeSecret-AbCdEf",
            "x/slotguard/calendars/alice",
        ] {
            let err = check_reference(DEFAULT_PREFIX, &reference(refused)).unwrap_err();
            assert!(err.contains("is not a calendar secret"), "{err}");
        }
        assert!(check_prefix("").is_err());
        assert!(check_prefix("a b/").is_err());
        assert!(check_prefix("hosts/").is_ok());
    }

    #[tokio::test]
    async fn credentials_come_from_the_secret_or_its_key() {
        let s = secrets(&[
            ("slotguard/calendars/alice", r#"{"username":"alice@example.com","password":"app-pw"}"#),
            ("slotguard/calendars/team", r#"{"bob":{"username":"bob","password":"pw2"},"g":{"refresh_token":"1//r"}}"#),
        ]);
        let alice = s.basic(&reference("slotguard/calendars/alice")).await.unwrap();
        assert_eq!(alice.username(), "alice@example.com");
        let bob = s.basic(&reference("slotguard/calendars/team#bob")).await.unwrap();
        assert_eq!(bob.username(), "bob");
        assert_eq!(s.refresh_token(&reference("slotguard/calendars/team#g")).await.unwrap(), "1//r");
    }

    #[tokio::test]
    async fn unreadable_secrets_are_transient_and_never_show_a_value() {
        let s = secrets(&[
            ("slotguard/calendars/text", "username=alice password=hunter2"),
            ("slotguard/calendars/half", r#"{"username":"alice","pass":"hunter2"}"#),
        ]);
        for name in [
            "slotguard/calendars/missing",
            "slotguard/calendars/text",
            "slotguard/calendars/half",
            "slotguard/calendars/half#nokey",
        ] {
            let err = s.basic(&reference(name)).await.unwrap_err();
            assert!(err.is_transient(), "{name}: {err}");
            assert_eq!(err.kind(), "credentials_unavailable");
            assert!(!err.to_string().contains("hunter2"), "{err}");
        }
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[tokio::test]
    async fn references_outside_the_prefix_and_missing_stores_are_permanent() {
        let s = secrets(&[("slotguard-secrets", r#"{"username":"sk_live","password":"x"}"#)]);
        let err = s.basic(&reference("slotguard-secrets")).await.unwrap_err();
        assert_eq!((err.kind(), err.is_transient()), ("credentials_refused", false));
        let err = CalendarSecrets::default().basic(&reference("slotguard/calendars/a")).await.unwrap_err();
        assert_eq!((err.kind(), err.is_transient()), ("credentials_not_configured", false));
    }

    #[tokio::test]
    async fn reads_are_cached_until_forgotten_or_stale() {
        // A fixed source cannot change, so staleness shows as a re-read only
        // through the cache's own bookkeeping.
        let s = secrets(&[("slotguard/calendars/a", r#"{"username":"a","password":"p"}"#)]);
        let r = reference("slotguard/calendars/a");
        s.basic(&r).await.unwrap();
        let read_at = s.inner.cache.lock().await["slotguard/calendars/a"].read_at;
        s.basic(&r).await.unwrap();
        assert_eq!(s.inner.cache.lock().await["slotguard/calendars/a"].read_at, read_at, "served from the cache");
        s.forget(&r).await;
        assert!(s.inner.cache.lock().await.is_empty());
        let stale = s.with_ttl(Duration::ZERO);
        stale.basic(&r).await.unwrap();
        let first = stale.inner.cache.lock().await["slotguard/calendars/a"].read_at;
        stale.basic(&r).await.unwrap();
        assert!(stale.inner.cache.lock().await["slotguard/calendars/a"].read_at > first, "read again");
    }
}
