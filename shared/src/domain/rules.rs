//! Whether a booking may start at an instant: the checks reserve,
//! reschedule and availability share, so the slots offered are exactly the
//! ones a reserve accepts.

use super::booking_type::BookingType;
use super::grid::{GridError, Slot};
use super::resource::Resource;
use chrono::{DateTime, Utc};

/// Why a start is not bookable (before any conflict with other bookings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StartError {
    #[error("start must be in the future")]
    InPast,
    #[error("start is sooner than the booking type's minimum notice ({0} minutes) allows")]
    TooSoon(u32),
    #[error("start is beyond the booking type's advance window ({0} days)")]
    TooFarAhead(u32),
    #[error("start is not on the booking type's {0}-minute start grid")]
    OffGrid(u32),
    #[error("start is outside the resource's opening hours")]
    OutsideHours,
}

impl Resource {
    /// The slot of `minutes` of type `kind` starting at `start`, if a new
    /// booking may start there at `now`: in the future, after the notice
    /// ([`BookingType::notice`]: at least the hold, and long enough that a
    /// hold paid for at once is still payable), within
    /// the advance window, on the type's start grid inside opening hours.
    /// `with_notice: false` skips notice and advance window (a host moving
    /// a booking).
    pub fn bookable_slot(
        &self,
        kind: &BookingType,
        minutes: u32,
        start: DateTime<Utc>,
        now: DateTime<Utc>,
        with_notice: bool,
    ) -> Result<Slot, StartError> {
        if start <= now {
            return Err(StartError::InPast);
        }
        let (earliest, latest) = kind.window(now, self.hold_minutes);
        if with_notice && start < earliest {
            return Err(StartError::TooSoon(kind.notice(self.hold_minutes)));
        }
        if with_notice && start > latest {
            return Err(StartError::TooFarAhead(kind.max_advance_days));
        }
        self.slot_at(kind, minutes, start).map_err(|e| match e {
            GridError::OffGrid => StartError::OffGrid(kind.start_interval_minutes),
            GridError::OutsideHours => StartError::OutsideHours,
        })
    }
}
