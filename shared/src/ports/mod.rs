//! Every trait a flow needs from the outside world, one small trait per
//! concern: storage ([`storage`], and the catch-up's [`cursor`]), the payment
//! provider ([`payments`]), the calendar job queues ([`queue`]) and the
//! hosts' calendars ([`calendar`]).
//! Flows are generic over these; [`crate::adapters`] implements them, and
//! tests wrap or fake them.

pub mod busy;
pub mod calendar;
pub mod cursor;
pub mod payments;
pub mod queue;
pub mod storage;

/// The underlying error of a port failure, kept whole so logs show its
/// chain (an SDK error, an HTTP error, or a message).
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

pub use busy::*;
pub use calendar::*;
pub use cursor::*;
pub use payments::*;
pub use queue::*;
pub use storage::*;
