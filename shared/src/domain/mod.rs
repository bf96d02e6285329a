//! Pure booking logic: no I/O, no SDKs. Everything here is unit-tested.

pub mod grid;
pub mod payment;
pub mod reservation;
pub mod resource;

pub use grid::{GridError, Slot};
pub use payment::{
    CalendarAction, CalendarJob, CheckoutRecord, CheckoutRequest, CheckoutSession, PaymentOutcome, RefundCause,
    SessionEvent, SessionEventKind, SessionFacts,
};
pub use reservation::{
    CheckoutLink, CheckoutTerms, Claim, ClaimStatus, Customer, Email, ReservationId, ReservationStatus, SlotKey,
    new_cancel_token, rfc3339,
};
pub use resource::{CalendarTarget, Price, Resource, ResourceError, ResourceId, ResourceSpec};
