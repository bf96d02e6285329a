//! Busy time: events on a host's calendar that slotguard did not write block
//! the slots they overlap (a resource opts in with `"busy_time":
//! {"enabled": true}`; README, "Busy time").
//!
//! - **Read**: [`BusySource::busy_intervals`] over `[now − 1 day, now +
//!   horizon)` of the resource's own `calendar` (CalDAV `calendar-query` with
//!   `expand`, Google `events.list` with `singleEvents`), skipping events
//!   slotguard wrote for this resource, transparent and cancelled ones.
//! - **Cache**: one item per resource ([`BusyStore`]), replaced whole by
//!   each read, conditioned on being newer ([`refresh`]): a read that started
//!   earlier never lands over one that started later.
//! - **Refresh**: the `busy-refresh` function, every minute, reads every
//!   resource whose snapshot is due ([`refresh_due`]); or one resource on
//!   demand (its event `{"resource_id": ...}`).
//! - **Use**: availability and reserve call [`busy_between`]. A snapshot that
//!   is missing, of another calendar, or older than the maximum age is never
//!   read as "free": [`BusyError::Unavailable`] (`503 busy_time_unavailable`).
//!   Time outside the window that was read counts as busy.

use crate::domain::Resource;
use crate::ports::{BusyInterval, BusySnapshot, BusySource, BusyStore, CalendarError, StoreError, source_digest};
use chrono::{DateTime, Duration, Utc};
use std::sync::OnceLock;

/// Busy-time settings, from the environment ([`BusySettings::from_env`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusySettings {
    /// How often a resource's calendar is read (`SLOTGUARD_BUSY_REFRESH_SECONDS`, default 60).
    pub refresh_interval: Duration,
    /// A snapshot older than this is not used: availability and reserve
    /// answer `503` instead (`SLOTGUARD_BUSY_MAX_AGE_SECONDS`, default 300).
    pub max_age: Duration,
    /// How far ahead the calendar is read (`SLOTGUARD_BUSY_HORIZON_DAYS`,
    /// default 60); later slots of a busy-time resource are not offered.
    pub horizon: Duration,
}

impl Default for BusySettings {
    fn default() -> Self {
        Self { refresh_interval: Duration::seconds(60), max_age: Duration::seconds(300), horizon: Duration::days(60) }
    }
}

impl BusySettings {
    /// The settings from `SLOTGUARD_BUSY_REFRESH_SECONDS`,
    /// `SLOTGUARD_BUSY_MAX_AGE_SECONDS` and `SLOTGUARD_BUSY_HORIZON_DAYS`
    /// (unset or unreadable: the default). The maximum age is at least
    /// twice the refresh interval.
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().and_then(|v| v.trim().parse::<i64>().ok()).filter(|v| *v > 0);
        let defaults = Self::default();
        let refresh_interval =
            var("SLOTGUARD_BUSY_REFRESH_SECONDS").map(Duration::seconds).unwrap_or(defaults.refresh_interval);
        let max_age = var("SLOTGUARD_BUSY_MAX_AGE_SECONDS").map(Duration::seconds).unwrap_or(defaults.max_age);
        let horizon =
            var("SLOTGUARD_BUSY_HORIZON_DAYS").map(|d| Duration::days(d.min(400))).unwrap_or(defaults.horizon);
        Self { refresh_interval, max_age: max_age.max(refresh_interval * 2), horizon }
    }

    /// [`BusySettings::from_env`], read once per process.
    pub fn global() -> &'static Self {
        static SETTINGS: OnceLock<BusySettings> = OnceLock::new();
        SETTINGS.get_or_init(Self::from_env)
    }
}

/// Why busy time could not be told.
#[derive(Debug, thiserror::Error)]
pub enum BusyError {
    #[error("reading busy time")]
    Store(#[from] StoreError),
    /// No usable snapshot: none yet, of another calendar, or too old.
    #[error("the host's calendar has not been read recently ({0}); retry shortly")]
    Unavailable(&'static str),
}

impl crate::api::problem::ApiError for BusyError {
    fn kind(&self) -> crate::api::problem::ProblemKind {
        match self {
            Self::Store(e) => e.kind(),
            Self::Unavailable(_) => crate::api::problem::ProblemKind::BusyTimeUnavailable,
        }
    }
}

/// The intervals, clipped to `[from, to)`, in which the host of `resource`
/// is busy according to its cached calendar; empty for a resource without
/// busy time. Time outside the window the snapshot covers counts as busy
/// (unknown is never free). This is what availability and reserve call.
pub async fn busy_between<S: BusyStore>(
    store: &S,
    resource: &Resource,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Vec<BusyInterval>, BusyError> {
    busy_between_with(store, resource, from, to, now, BusySettings::global()).await
}

/// [`busy_between`] with explicit settings.
pub async fn busy_between_with<S: BusyStore>(
    store: &S,
    resource: &Resource,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    now: DateTime<Utc>,
    settings: &BusySettings,
) -> Result<Vec<BusyInterval>, BusyError> {
    if !resource.busy_time_enabled() || from >= to {
        return Ok(Vec::new());
    }
    let snapshot = store.busy_snapshot(&resource.id).await?.ok_or(BusyError::Unavailable("not read yet"))?;
    if snapshot.source != source_digest(&resource.calendar) {
        return Err(BusyError::Unavailable("the calendar changed since the last read"));
    }
    if now - snapshot.fetched_at > settings.max_age {
        return Err(BusyError::Unavailable("the last read is too old"));
    }
    Ok(clip(&snapshot, from, to))
}

/// The snapshot's intervals within `[from, to)`, plus the parts of that
/// range the snapshot does not cover.
fn clip(snapshot: &BusySnapshot, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<BusyInterval> {
    let mut out = Vec::new();
    if from < snapshot.from {
        out.push((from, snapshot.from.min(to)));
    }
    out.extend(
        snapshot.intervals.iter().filter(|(s, e)| *s < to && from < *e).map(|(s, e)| ((*s).max(from), (*e).min(to))),
    );
    if snapshot.to < to {
        out.push((snapshot.to.max(from), to));
    }
    merge(out)
}

/// Whether `[start, end)` overlaps any of `busy`.
pub fn overlaps(busy: &[BusyInterval], start: DateTime<Utc>, end: DateTime<Utc>) -> bool {
    busy.iter().any(|(s, e)| *s < end && start < *e)
}

/// Sorts intervals and merges those that overlap or touch; drops empty ones.
pub fn merge(mut intervals: Vec<BusyInterval>) -> Vec<BusyInterval> {
    intervals.retain(|(s, e)| s < e);
    intervals.sort();
    let mut out: Vec<BusyInterval> = Vec::with_capacity(intervals.len());
    for (s, e) in intervals {
        match out.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

/// The most intervals one snapshot keeps (a DynamoDB item holds 400 KB):
/// a calendar with more merged busy intervals in the horizon fails to refresh.
pub const MAX_INTERVALS: usize = 5000;

/// Why a refresh did not store a snapshot.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error("reading the calendar")]
    Calendar(#[from] CalendarError),
    #[error("storing busy time")]
    Store(#[from] StoreError),
    #[error("the calendar has more than {MAX_INTERVALS} busy intervals in the horizon")]
    TooMany,
}

/// What a refresh did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refreshed {
    /// The snapshot read now is stored.
    Stored,
    /// A read that started later had already stored its snapshot; this one was dropped.
    Superseded,
}

/// Reads `resource`'s calendar now (the read starting at `now`) over
/// `[now − 1 day, now + horizon)` and stores the snapshot unless a newer
/// one is there; slotguard's events of the resources in `own` are not busy
/// ([`crate::ports::own_resources`]). A failed read leaves the stored
/// snapshot as it is.
pub async fn refresh<S: BusyStore, C: BusySource>(
    store: &S,
    calendar: &C,
    resource: &Resource,
    own: &[crate::domain::ResourceId],
    now: DateTime<Utc>,
    settings: &BusySettings,
) -> Result<Refreshed, RefreshError> {
    let (from, to) = (now - Duration::days(1), now + settings.horizon);
    let intervals = merge(calendar.busy_intervals(resource, own, from, to).await?);
    if intervals.len() > MAX_INTERVALS {
        return Err(RefreshError::TooMany);
    }
    let snapshot = BusySnapshot {
        resource_id: resource.id.clone(),
        fetched_at: now,
        from,
        to,
        source: source_digest(&resource.calendar),
        intervals: intervals.into_iter().map(|(s, e)| (s.max(from), e.min(to))).collect(),
    };
    // Kept a day past its use, then TTL removes a resource's forgotten cache.
    let expires_at = now + settings.max_age + Duration::days(1);
    Ok(if store.save_busy_snapshot(&snapshot, expires_at).await? { Refreshed::Stored } else { Refreshed::Superseded })
}

/// Whether `resource`'s snapshot should be read again at `now`: none, of
/// another calendar, or older than the refresh interval less a little slack
/// (so a snapshot read by one scheduler tick is due at the next, whatever
/// the tick's jitter).
pub fn refresh_due(
    resource: &Resource,
    snapshot: Option<&BusySnapshot>,
    now: DateTime<Utc>,
    settings: &BusySettings,
) -> bool {
    let Some(snapshot) = snapshot else { return true };
    let slack = (settings.refresh_interval / 4).min(Duration::seconds(10));
    snapshot.source != source_digest(&resource.calendar)
        || now - snapshot.fetched_at >= settings.refresh_interval - slack
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ResourceId;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn merging_sorts_joins_and_drops_empty_intervals() {
        let merged = merge(vec![
            (at("2026-06-10T10:00:00Z"), at("2026-06-10T11:00:00Z")),
            (at("2026-06-10T09:00:00Z"), at("2026-06-10T10:00:00Z")),
            (at("2026-06-10T12:00:00Z"), at("2026-06-10T12:00:00Z")),
            (at("2026-06-10T10:30:00Z"), at("2026-06-10T10:45:00Z")),
            (at("2026-06-10T13:00:00Z"), at("2026-06-10T14:00:00Z")),
        ]);
        assert_eq!(
            merged,
            vec![
                (at("2026-06-10T09:00:00Z"), at("2026-06-10T11:00:00Z")),
                (at("2026-06-10T13:00:00Z"), at("2026-06-10T14:00:00Z"))
            ]
        );
        assert!(overlaps(&merged, at("2026-06-10T10:55:00Z"), at("2026-06-10T11:30:00Z")));
        assert!(!overlaps(&merged, at("2026-06-10T11:00:00Z"), at("2026-06-10T13:00:00Z")), "half-open");
    }

    #[test]
    fn time_outside_the_snapshot_counts_as_busy() {
        let snapshot = BusySnapshot {
            resource_id: ResourceId::parse("r").unwrap(),
            fetched_at: at("2026-06-10T00:00:00Z"),
            from: at("2026-06-10T00:00:00Z"),
            to: at("2026-06-20T00:00:00Z"),
            source: String::new(),
            intervals: vec![(at("2026-06-12T09:00:00Z"), at("2026-06-12T10:00:00Z"))],
        };
        assert_eq!(
            clip(&snapshot, at("2026-06-12T09:30:00Z"), at("2026-06-12T12:00:00Z")),
            vec![(at("2026-06-12T09:30:00Z"), at("2026-06-12T10:00:00Z"))]
        );
        assert_eq!(clip(&snapshot, at("2026-06-13T09:00:00Z"), at("2026-06-13T10:00:00Z")), vec![]);
        assert_eq!(
            clip(&snapshot, at("2026-06-19T23:00:00Z"), at("2026-06-21T00:00:00Z")),
            vec![(at("2026-06-20T00:00:00Z"), at("2026-06-21T00:00:00Z"))]
        );
        assert_eq!(
            clip(&snapshot, at("2026-06-09T23:00:00Z"), at("2026-06-10T01:00:00Z")),
            vec![(at("2026-06-09T23:00:00Z"), at("2026-06-10T00:00:00Z"))]
        );
    }
}
