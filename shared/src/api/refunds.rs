//! Refunds that happen once per step, for as long as slotguard lives.
//!
//! Every refund slotguard makes is one step of one booking (the
//! cancellation of a booking, `cancel-{reservation}`; the refund of a paid
//! session that cannot buy its booking, `refund-{session}`) and is sent under
//! that step as its idempotency key. Stripe honours a key for 24 hours only:
//! a cancel retried two days after its finishing write failed would refund
//! a partial amount again (50 % + 50 %, or 30 % three times and then
//! `amount_too_large` for ever). So the step is also written into the
//! refund's metadata, and before refunding, the payment's refunds are read
//! back from Stripe: what this step already refunded counts, and only what
//! is still owed is refunded.

use crate::domain::ReservationId;
use crate::ports::{PaymentError, Payments, RefundCause, RefundSeen};

/// Refunds `amount` minor units of `payment_intent` (all of it when `None`)
/// as step `step`, unless that step has refunded it already: answers the
/// refund's id (the earliest one of the step when it was done before).
pub async fn refund_once<P: Payments>(
    payments: &P,
    payment_intent: &str,
    step: &str,
    reservation_id: &ReservationId,
    cause: RefundCause,
    amount: Option<i64>,
) -> Result<String, PaymentError> {
    let seen = payments.refunds_of(payment_intent).await?;
    let mine: Vec<&RefundSeen> = seen.iter().filter(|r| made_by(r, step, reservation_id, cause)).collect();
    let done: i64 = mine.iter().map(|r| r.amount).sum();
    let first = || mine.last().map(|r| r.id.clone()).expect("a refund of the step exists");
    match amount {
        // A full refund is all-or-nothing: one standing refund of the step is it.
        None if !mine.is_empty() => Ok(first()),
        None => payments.refund_payment(payment_intent, step, reservation_id, cause, None).await,
        Some(owed) if done >= owed => Ok(first()),
        Some(owed) if done == 0 => {
            payments.refund_payment(payment_intent, step, reservation_id, cause, Some(owed)).await
        }
        // Part of the step's amount was refunded (never by slotguard's own
        // writes, which refund a step in one request): the rest, under a
        // key of its own.
        Some(owed) => {
            let rest = format!("{step}-rest-{done}");
            payments.refund_payment(payment_intent, &rest, reservation_id, cause, Some(owed - done)).await
        }
    }
}

/// Whether `refund` was made by `step`. Refunds made before the step was
/// written into the metadata are recognised by reservation and cause for a
/// cancellation (one per reservation); a session's refund of that time
/// cannot be told from another session's of the same reservation, and is
/// left to Stripe's own answer (`charge_already_refunded` for a full refund).
fn made_by(refund: &RefundSeen, step: &str, reservation_id: &ReservationId, cause: RefundCause) -> bool {
    if !refund.standing {
        return false;
    }
    match &refund.step {
        Some(made_under) => made_under == step || made_under.starts_with(&format!("{step}-rest-")),
        None => {
            cause == RefundCause::Cancelled
                && refund.reservation_id.as_deref() == Some(reservation_id.as_str())
                && refund.cause.as_deref() == Some(cause.as_str())
        }
    }
}
