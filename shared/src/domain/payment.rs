//! Payment facts and rules, free of any Stripe type.
//!
//! The Stripe adapter turns API objects and webhook events into these types;
//! the handlers decide with them.

use super::booking_type::BookingTerms;
use super::reservation::{Customer, DayToken, ReservationId, SlotKey};
use super::secret::SecretHash;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// Stripe refuses a Checkout Session that expires less than 30 minutes ahead.
pub const SESSION_MIN: Duration = Duration::minutes(30);
/// ... or more than 24 hours ahead.
pub const SESSION_MAX: Duration = Duration::hours(24);
/// Slack above Stripe's minimum. The expiry is fixed by the first checkout
/// call and every retry sends it unchanged (same idempotency key, same
/// parameters), so this is also how long a retry after a Stripe outage can
/// come and still be more than 30 minutes ahead of Stripe's clock.
pub const SESSION_MARGIN: Duration = Duration::minutes(10);
/// A hold outlives its session by this much, so a payment made in the
/// session's last second, and the webhook that reports it, still find it held.
pub const HOLD_GRACE: Duration = Duration::minutes(5);

/// When a hold's Checkout Session should expire, and how long the hold must
/// then last: the session lives as long as the hold but at least Stripe's
/// minimum; the hold outlives the session by [`HOLD_GRACE`].
pub fn session_window(hold_expires_at: DateTime<Utc>, now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let earliest = now + SESSION_MIN + SESSION_MARGIN;
    let latest = now + SESSION_MAX - SESSION_MARGIN;
    let session = hold_expires_at.max(earliest).min(latest);
    // Stripe takes whole seconds.
    let session = DateTime::from_timestamp(session.timestamp(), 0).expect("in range");
    (session, hold_expires_at.max(session + HOLD_GRACE))
}

/// What slotguard asks Stripe to charge for one hold.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckoutRequest {
    pub reservation_id: ReservationId,
    pub slot: SlotKey,
    pub slot_end: DateTime<Utc>,
    /// Shown on the checkout page.
    pub product_name: String,
    pub amount: i64,
    pub currency: String,
    pub customer: Customer,
    pub expires_at: DateTime<Utc>,
    pub success_url: String,
    pub cancel_url: String,
}

/// A Checkout Session as created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutSession {
    pub id: String,
    pub url: String,
    pub expires_at: DateTime<Utc>,
}

/// Metadata keys slotguard puts on each Checkout Session, so a webhook can
/// rebuild the booking even when the hold's item is gone.
pub mod metadata {
    pub const RESERVATION_ID: &str = "reservation_id";
    pub const SLOT: &str = "slot";
    pub const SLOT_END: &str = "slot_end";
    pub const CUSTOMER_NAME: &str = "customer_name";
    /// On a refund: the idempotency key (the step) it was made under, so it
    /// is recognised after the provider has forgotten the key.
    pub const REFUND_STEP: &str = "slotguard_step";
    /// On a refund: why slotguard made it ([`super::RefundCause::as_str`]).
    pub const REFUND_CAUSE: &str = "cause";
}

/// What a Checkout Session event says, reduced to what booking needs.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionEvent {
    pub event_id: String,
    pub kind: SessionEventKind,
    pub session: SessionFacts,
}

/// The Checkout Session events slotguard acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEventKind {
    /// `checkout.session.completed`; `paid` is false for delayed payment methods.
    Completed { paid: bool },
    /// `checkout.session.completed` with `payment_status: no_payment_required`:
    /// nothing was charged, so nothing is bought (slotguard never creates such
    /// a session: every price is at least 1 minor unit).
    CompletedWithoutPayment,
    /// `checkout.session.async_payment_succeeded`
    AsyncPaymentSucceeded,
    /// `checkout.session.async_payment_failed`
    AsyncPaymentFailed,
    /// `checkout.session.expired`
    Expired,
}

/// The facts of a Checkout Session that booking needs.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionFacts {
    pub session_id: String,
    /// From metadata (or `client_reference_id`); `None` for sessions slotguard did not create.
    pub reservation_id: Option<ReservationId>,
    pub payment_intent: Option<String>,
    pub customer: Option<Customer>,
    pub slot_end: Option<DateTime<Utc>>,
    pub amount: Option<i64>,
    pub currency: Option<String>,
}

/// The one final outcome a Checkout Session gets, recorded once per session
/// id, whatever order Stripe delivers its events in.
///
/// Once recorded, no event of the same session can contradict it: a paid
/// session is never confirmed after it was recorded failed or expired (such a
/// payment is refunded instead), and a failed or expired one never brings a
/// claim back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentOutcome {
    /// The payment bought the booking.
    Confirmed,
    /// The payment could not buy the booking: it is refunded. The cause is
    /// recorded with the outcome, so every retry of the refund sends Stripe
    /// identical parameters under its idempotency key.
    Refunded(RefundCause),
    /// The delayed payment failed: nothing was charged, the hold is released.
    Failed,
    /// The session expired unpaid: the hold is released.
    Expired,
}

impl PaymentOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Confirmed => "CONFIRMED",
            Self::Refunded(_) => "REFUNDED",
            Self::Failed => "FAILED",
            Self::Expired => "EXPIRED",
        }
    }

    /// Reads the stored form; a refund's cause is stored beside it.
    pub fn parse(s: &str, cause: Option<&str>) -> Option<Self> {
        match s {
            "CONFIRMED" => Some(Self::Confirmed),
            "REFUNDED" => Some(Self::Refunded(cause.and_then(RefundCause::parse).unwrap_or(RefundCause::SlotTaken))),
            "FAILED" => Some(Self::Failed),
            "EXPIRED" => Some(Self::Expired),
            _ => None,
        }
    }
}

/// Why a payment is refunded, recorded on the refund at Stripe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefundCause {
    /// Paid after the slot went to someone else.
    SlotTaken,
    /// Paid after the slot had started.
    TooLate,
    /// A paid session that is not the reservation's own (another session
    /// naming it, or the wrong amount or currency).
    NotOwnSession,
    /// Paid for a session whose outcome was already recorded failed or
    /// expired, or whose reservation was already released.
    AfterOutcome,
    /// The confirmed booking was cancelled.
    Cancelled,
}

impl RefundCause {
    const ALL: [Self; 5] = [Self::SlotTaken, Self::TooLate, Self::NotOwnSession, Self::AfterOutcome, Self::Cancelled];

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RefundCause::SlotTaken => "slot_taken",
            RefundCause::TooLate => "slot_started",
            RefundCause::NotOwnSession => "not_own_session",
            RefundCause::AfterOutcome => "after_outcome",
            RefundCause::Cancelled => "cancelled",
        }
    }
}

/// The Checkout Session slotguard created for a reservation, recorded before
/// its URL is handed out. A paid session settles a reservation only if it is
/// this one, for this amount and currency; any other paid session naming the
/// reservation is refunded.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckoutRecord {
    pub reservation_id: ReservationId,
    pub session_id: String,
    pub amount: i64,
    pub currency: String,
    /// The booking's end and customer, so a late payment can rebuild the
    /// booking when the hold's item is gone.
    pub end: DateTime<Utc>,
    pub customer: Customer,
    /// What the booking is made under, and its day token: all a late
    /// payment needs to claim the same locks again.
    pub terms: BookingTerms,
    pub day_token: Option<DayToken>,
    /// The seat token's index (a seat) and the team members it was
    /// assigned to (a team booking): the rest of what its locks are.
    pub seat: Option<u32>,
    pub hosts: Vec<super::resource::ResourceId>,
    /// The hash of the reservation's secret, so a booking rebuilt from this
    /// record answers to the secret its customer holds.
    pub secret_hash: Option<SecretHash>,
}

impl CheckoutRecord {
    /// Whether `session` is this reservation's own session. For a paid
    /// session the amount and currency must be present and equal.
    pub fn is_own(&self, session: &SessionFacts, paid: bool) -> bool {
        let same = |expected: i64, currency: &str| {
            session.amount.is_none_or(|a| a == expected)
                && session.currency.as_deref().is_none_or(|c| c.eq_ignore_ascii_case(currency))
        };
        session.session_id == self.session_id
            && same(self.amount, &self.currency)
            && (!paid || (session.amount.is_some() && session.currency.is_some()))
    }
}

/// A message on the calendar queue: put a booking on its calendar, or take it off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CalendarJob {
    pub action: CalendarAction,
    pub reservation_id: ReservationId,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CalendarAction {
    Write,
    Delete,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_young_hold_gives_its_expiry_to_the_session() {
        let now = t("2026-06-10T10:00:00Z");
        let (session, hold) = session_window(t("2026-06-10T11:00:00Z"), now);
        assert_eq!(session, t("2026-06-10T11:00:00Z"));
        assert_eq!(hold, t("2026-06-10T11:05:00Z"));
    }

    #[test]
    fn a_retry_within_the_margin_still_meets_stripes_minimum() {
        let first = t("2026-06-10T10:00:00Z");
        let (session, _) = session_window(t("2026-06-10T10:05:00Z"), first);
        let retry = first + SESSION_MARGIN - Duration::seconds(1);
        assert!(session - retry > SESSION_MIN, "the unchanged expiry is still valid at the retry");
    }

    #[test]
    fn an_old_hold_is_extended_to_stripes_minimum() {
        let now = t("2026-06-10T10:00:00Z");
        // Five minutes of hold left: the session needs at least 30 (+ margin).
        let (session, hold) = session_window(t("2026-06-10T10:05:00Z"), now);
        assert_eq!(session, t("2026-06-10T10:40:00Z"));
        assert_eq!(hold, t("2026-06-10T10:45:00Z"));
        assert!(session - now >= SESSION_MIN);
    }

    #[test]
    fn a_day_long_hold_is_capped_at_stripes_maximum() {
        let now = t("2026-06-10T10:00:00Z");
        let (session, hold) = session_window(t("2026-06-11T10:00:00Z"), now);
        assert_eq!(session, t("2026-06-11T09:50:00Z"));
        assert_eq!(hold, t("2026-06-11T10:00:00Z"), "already longer than session + grace");
        assert!(session - now <= SESSION_MAX);
    }

    #[test]
    fn session_expiry_is_whole_seconds() {
        let now = t("2026-06-10T10:00:00.750Z");
        let (session, _) = session_window(t("2026-06-10T11:00:00.250Z"), now);
        assert_eq!(session.timestamp_subsec_nanos(), 0);
    }

    #[test]
    fn only_the_recorded_session_for_the_expected_amount_is_the_reservations_own() {
        let id = ReservationId::parse("rsv_demo_20260610T090000_0123456789abcdef0123456789abcdef").unwrap();
        let record = CheckoutRecord {
            reservation_id: id.clone(),
            session_id: "cs_own".into(),
            amount: 4500,
            currency: "eur".into(),
            end: t("2026-06-10T09:30:00Z"),
            customer: Customer::parse("Ada", "ada@example.com").unwrap(),
            terms: BookingTerms::plain(30),
            day_token: None,
            seat: None,
            hosts: Vec::new(),
            secret_hash: None,
        };
        let facts = SessionFacts {
            session_id: "cs_own".into(),
            reservation_id: Some(id),
            payment_intent: Some("pi_1".into()),
            customer: None,
            slot_end: None,
            amount: Some(4500),
            currency: Some("eur".into()),
        };
        assert!(record.is_own(&facts, true));
        assert!(record.is_own(&SessionFacts { currency: Some("EUR".into()), ..facts.clone() }, true));
        assert!(!record.is_own(&SessionFacts { session_id: "cs_other".into(), ..facts.clone() }, true));
        assert!(!record.is_own(&SessionFacts { amount: Some(100), ..facts.clone() }, true));
        assert!(!record.is_own(&SessionFacts { currency: Some("usd".into()), ..facts.clone() }, true));
        assert!(
            !record.is_own(&SessionFacts { amount: None, ..facts.clone() }, true),
            "a paid session states its amount"
        );
        assert!(record.is_own(&SessionFacts { amount: None, currency: None, ..facts }, false));
    }

    #[test]
    fn outcomes_and_refund_causes_round_trip_their_stored_form() {
        for cause in RefundCause::ALL {
            assert_eq!(RefundCause::parse(cause.as_str()), Some(cause));
            let outcome = PaymentOutcome::Refunded(cause);
            assert_eq!(PaymentOutcome::parse(outcome.as_str(), Some(cause.as_str())), Some(outcome));
        }
        for outcome in [PaymentOutcome::Confirmed, PaymentOutcome::Failed, PaymentOutcome::Expired] {
            assert_eq!(PaymentOutcome::parse(outcome.as_str(), None), Some(outcome));
        }
        assert_eq!(PaymentOutcome::parse("MAYBE", None), None);
    }

    #[test]
    fn calendar_jobs_have_a_stable_wire_form() {
        let id = ReservationId::parse("rsv_demo_20260610T090000_0123456789abcdef0123456789abcdef").unwrap();
        let job = CalendarJob { action: CalendarAction::Write, reservation_id: id };
        let json = serde_json::to_string(&job).unwrap();
        assert_eq!(
            json,
            r#"{"action":"write","reservation_id":"rsv_demo_20260610T090000_0123456789abcdef0123456789abcdef"}"#
        );
        assert_eq!(serde_json::from_str::<CalendarJob>(&json).unwrap(), job);
    }
}
