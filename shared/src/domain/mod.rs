//! Pure booking logic: no I/O, no SDKs. Everything here is unit-tested.

pub mod booking_type;
pub mod grid;
pub mod payment;
pub mod reservation;
pub mod resource;
pub mod rules;
pub mod secret;
pub mod zone;

pub use booking_type::{
    Actor, BookingTerms, BookingType, BookingTypeSpec, CELL_MINUTES, CancelDecision, CancellationPolicy,
    DEFAULT_TYPE_ID, DurationSpec, LateCancellation, MAX_BLOCKED_MINUTES, MAX_SEATS, ReschedulePolicy, cells,
    on_cell_grid,
};
pub use grid::{GridError, Slot};
pub use payment::{
    CalendarAction, CalendarJob, CheckoutRecord, CheckoutRequest, CheckoutSession, PaymentOutcome, RefundCause,
    SessionEvent, SessionEventKind, SessionFacts,
};
pub use reservation::{
    CheckoutLink, CheckoutTerms, Claim, ClaimStatus, Customer, DayToken, Email, Lock, LockKey, ReservationId,
    ReservationStatus, SlotKey, WrittenCalendar, rfc3339, seat_group,
};
pub use resource::{
    Assignment, BusyTimeSpec, CalendarTarget, CredentialsRef, DateOverrideSpec, Price, Resource, ResourceError,
    ResourceId, ResourceSpec, Team, TeamSpec,
};
pub use rules::StartError;
pub use secret::{ReservationSecret, SecretHash};
pub use zone::{UnknownZone, Zone, ZoneOffset};
