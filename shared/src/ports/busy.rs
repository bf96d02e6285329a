//! Busy time from the host's calendar: where it is read from
//! ([`BusySource`]) and where it is cached ([`BusyStore`]). The logic that
//! uses both is [`crate::busy`].

use super::{CalendarError, StoreError};
use crate::domain::{CalendarTarget, Resource, ResourceId};
use chrono::{DateTime, Utc};
use std::future::Future;

/// A half-open interval `[start, end)` during which the host is busy.
pub type BusyInterval = (DateTime<Utc>, DateTime<Utc>);

/// One read of a resource's calendar: the busy intervals it found within
/// `[from, to)` (clipped to that window, sorted, merged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusySnapshot {
    pub resource_id: ResourceId,
    /// When the read *started* (what "newer" means between two reads; an
    /// event added after this instant may be missing from the snapshot).
    pub fetched_at: DateTime<Utc>,
    /// The window that was read; outside it nothing is known.
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// A digest of the calendar target that was read: a snapshot of
    /// another calendar (the resource was changed since) is not used.
    pub source: String,
    pub intervals: Vec<BusyInterval>,
}

/// The resources whose bookings on `resource`'s calendar are its own, not
/// busy time: itself, and every team among `all` it is a member of (the
/// calendar writer puts a team booking on its hosting members' calendars).
pub fn own_resources(resource: &Resource, all: &[Resource]) -> Vec<ResourceId> {
    let teams = all.iter().filter(|t| t.team.as_ref().is_some_and(|team| team.members.contains(&resource.id)));
    std::iter::once(resource.id.clone()).chain(teams.map(|t| t.id.clone())).collect()
}

/// A digest of a calendar target, for [`BusySnapshot::source`].
pub fn source_digest(target: &CalendarTarget) -> String {
    use sha2::Digest;
    let json = serde_json::to_vec(target).expect("a calendar target always serialises");
    sha2::Sha256::digest(&json)[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// The cached busy time of resources, one snapshot per resource.
pub trait BusyStore: Send + Sync {
    /// The resource's snapshot, read consistently; `None` if there is none.
    fn busy_snapshot(&self, id: &ResourceId) -> impl Future<Output = Result<Option<BusySnapshot>, StoreError>> + Send;
    /// Stores `snapshot` unless the stored one was fetched at or after
    /// `snapshot.fetched_at` (a conditional write): `Ok(false)` when a newer
    /// read already landed and nothing was written. The item expires (TTL)
    /// at `expires_at`.
    fn save_busy_snapshot(
        &self,
        snapshot: &BusySnapshot,
        expires_at: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// Reads a resource's calendar for the host's busy time.
pub trait BusySource: Send + Sync {
    /// The intervals within `[from, to)` in which the calendar of `resource`
    /// holds an event that makes the host busy: opaque, not cancelled, and
    /// not one slotguard wrote for a booking of a resource in `own` (the
    /// resource and the teams it is a member of, see [`own_resources`]).
    /// All-day and floating times are read in the resource's time zone.
    fn busy_intervals(
        &self,
        resource: &Resource,
        own: &[ResourceId],
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<BusyInterval>, CalendarError>> + Send;
}
