//! [`Calendars`]: the one [`Calendar`] handlers hold, handing each call to the
//! adapter the resource's [`CalendarTarget`] names; and
//! [`CalendarTargetRules`], what a target must satisfy to be saved.

use super::caldav::CalDavCalendar;
use super::calendar_secrets::{self, DEFAULT_PREFIX};
use super::google::GoogleCalendar;
use super::outbound::{OutboundMode, OutboundPolicy};
use crate::domain::{CalendarTarget, CredentialsRef, ReservationId, ResourceError};
use crate::ports::{
    BookingEvent, Calendar, CalendarError, CalendarTargetCheck, DeleteOutcome, FoundEvent, WriteOutcome,
};
use chrono::{DateTime, Utc};

/// Every calendar adapter, dispatched on the target.
///
/// Google is optional: a deployment without a Google OAuth client still
/// serves CalDAV, and a Google target then fails permanently
/// (`google_not_configured`).
#[derive(Debug, Clone)]
pub struct Calendars {
    pub caldav: CalDavCalendar,
    pub google: Option<GoogleCalendar>,
}

impl Calendars {
    pub fn new(caldav: CalDavCalendar, google: Option<GoogleCalendar>) -> Self {
        Self { caldav, google }
    }

    fn google(&self) -> Result<&GoogleCalendar, CalendarError> {
        self.google.as_ref().ok_or_else(|| CalendarError::Permanent {
            kind: "google_not_configured",
            message: "the resource names a Google calendar but no Google OAuth client is configured".into(),
        })
    }
}

/// The deployment's rules for calendar targets, checked when a resource is
/// saved (`PUT /v1/resources/{id}`, a `422` with the reason otherwise):
/// - a CalDAV URL must pass the [`OutboundPolicy`], its host name resolved
///   now ([`OutboundPolicy::check_resolved`]);
/// - `credentials` must name a secret under the calendar secret prefix
///   ([`calendar_secrets::check_reference`]).
///
/// Whether the secret exists is not checked here (put-resource cannot read
/// secrets): a missing one fails the calendar writes, transiently, until
/// the job lands in the dead-letter queue with the reason.
#[derive(Debug, Clone)]
pub struct CalendarTargetRules {
    outbound: OutboundPolicy,
    secret_prefix: String,
}

impl CalendarTargetRules {
    /// Rules with this policy and secret name prefix (checked: not empty).
    pub fn new(outbound: OutboundPolicy, secret_prefix: &str) -> Result<Self, String> {
        calendar_secrets::check_prefix(secret_prefix)?;
        Ok(Self { outbound, secret_prefix: secret_prefix.to_owned() })
    }

    /// The local stack's rules: [`OutboundPolicy::local`], the default prefix.
    pub fn local() -> Self {
        Self { outbound: OutboundPolicy::local(), secret_prefix: DEFAULT_PREFIX.to_owned() }
    }
}

impl CalendarTargetCheck for CalendarTargetRules {
    async fn check_target(&self, target: &CalendarTarget) -> Result<(), ResourceError> {
        if let CalendarTarget::Caldav { url, .. } = target {
            let parsed = reqwest::Url::parse(url.trim())
                .map_err(|e| ResourceError(format!("calendar.url does not parse: {e}")))?;
            let mode = self.outbound.mode();
            self.outbound.check_resolved(&parsed).await.map_err(|e| {
                ResourceError(format!("calendar.url is refused: {e} (outbound policy {mode}: {})", mode_rule(mode)))
            })?;
        }
        if let Some(text) = target.credentials() {
            let reference = CredentialsRef::parse(text)?;
            calendar_secrets::check_reference(&self.secret_prefix, &reference).map_err(ResourceError)?;
        }
        Ok(())
    }
}

/// What a mode allows, for refusals.
fn mode_rule(mode: OutboundMode) -> &'static str {
    match mode {
        OutboundMode::Strict => "https to public addresses only",
        OutboundMode::Local => "http(s) to public or loopback addresses only",
    }
}

/// A write or delete for a resource without a calendar: nothing can make it
/// succeed, so it must not be retried.
fn no_calendar() -> CalendarError {
    CalendarError::Permanent { kind: "no_calendar", message: "the resource has no calendar".into() }
}

impl Calendar for Calendars {
    async fn put_event(&self, target: &CalendarTarget, event: &BookingEvent) -> Result<WriteOutcome, CalendarError> {
        match target {
            CalendarTarget::None => Err(no_calendar()),
            CalendarTarget::Caldav { .. } => self.caldav.put_event(target, event).await,
            CalendarTarget::Google { .. } => self.google()?.put_event(target, event).await,
        }
    }

    async fn delete_event(
        &self,
        target: &CalendarTarget,
        reservation_id: &ReservationId,
    ) -> Result<DeleteOutcome, CalendarError> {
        match target {
            CalendarTarget::None => Err(no_calendar()),
            CalendarTarget::Caldav { .. } => self.caldav.delete_event(target, reservation_id).await,
            CalendarTarget::Google { .. } => self.google()?.delete_event(target, reservation_id).await,
        }
    }

    async fn list_events(
        &self,
        target: &CalendarTarget,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<FoundEvent>, CalendarError> {
        match target {
            // No calendar holds no events: reconcile has nothing to compare.
            CalendarTarget::None => Ok(Vec::new()),
            CalendarTarget::Caldav { .. } => self.caldav.list_events(target, from, to).await,
            CalendarTarget::Google { .. } => self.google()?.list_events(target, from, to).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::caldav::CalDavConfig;
    use crate::domain::Customer;

    fn calendars() -> Calendars {
        Calendars::new(CalDavCalendar::new(CalDavConfig::default()).unwrap(), None)
    }

    fn rid() -> ReservationId {
        ReservationId::parse("rsv_demo_20261123T080000_2579e728486449b88d897c1ecf3b632c").unwrap()
    }

    #[tokio::test]
    async fn no_calendar_refuses_writes_and_lists_nothing() {
        let event = BookingEvent {
            reservation_id: rid(),
            summary: "s".into(),
            start: Utc::now(),
            end: Utc::now(),
            customer: Customer::parse("Ada", "ada@example.com").unwrap(),
            description: "d".into(),
            sequence: 0,
        };
        let c = calendars();
        assert_eq!(c.put_event(&CalendarTarget::None, &event).await.unwrap_err().kind(), "no_calendar");
        assert_eq!(c.delete_event(&CalendarTarget::None, &rid()).await.unwrap_err().kind(), "no_calendar");
        assert_eq!(c.list_events(&CalendarTarget::None, Utc::now(), Utc::now()).await.unwrap(), vec![]);
    }

    #[tokio::test]
    async fn google_targets_need_google_credentials() {
        let target = CalendarTarget::google("primary");
        let err = calendars().delete_event(&target, &rid()).await.unwrap_err();
        assert_eq!(err.kind(), "google_not_configured");
        assert!(!err.is_transient());
    }

    async fn refusal(rules: &CalendarTargetRules, target: CalendarTarget) -> String {
        rules.check_target(&target).await.unwrap_err().to_string()
    }

    #[tokio::test]
    async fn targets_are_saved_only_inside_the_policy_and_the_secret_prefix() {
        let strict = CalendarTargetRules::new(OutboundPolicy::strict(), DEFAULT_PREFIX).unwrap();
        let local = CalendarTargetRules::local();
        assert!(local.check_target(&CalendarTarget::caldav("http://127.0.0.1:5232/user/calendars/c/")).await.is_ok());
        assert!(strict.check_target(&CalendarTarget::None).await.is_ok());
        assert!(strict.check_target(&CalendarTarget::google("primary")).await.is_ok());
        for url in ["http://169.254.169.254/", "http://10.0.0.1/", "http://[::ffff:10.0.0.1]/", "http://0.0.0.0:5232/"]
        {
            for rules in [&strict, &local] {
                let err = refusal(rules, CalendarTarget::caldav(url)).await;
                assert!(err.starts_with("calendar.url is refused"), "{url}: {err}");
            }
        }
        let err = refusal(&strict, CalendarTarget::caldav("https://localhost/dav/")).await;
        assert!(err.contains("localhost resolves to") && err.contains("loopback"), "{err}");
        let with = |credentials: &str| CalendarTarget::Caldav {
            url: "http://127.0.0.1:5232/c/".into(),
            credentials: Some(credentials.into()),
        };
        assert!(local.check_target(&with("slotguard/calendars/alice#work")).await.is_ok());
        let err = refusal(&local, with("slotguard-secrets")).await;
        assert!(err.contains("is not a calendar secret") && err.contains("slotguard/calendars/"), "{err}");
        let google = CalendarTarget::Google { calendar_id: "primary".into(), credentials: Some("prod/stripe".into()) };
        assert!(refusal(&strict, google).await.contains("is not a calendar secret"));
        assert!(CalendarTargetRules::new(OutboundPolicy::strict(), "").is_err());
    }
}
