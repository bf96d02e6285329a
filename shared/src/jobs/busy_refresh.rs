//! Busy refresh: reads the calendars of resources with busy time enabled
//! and stores each as a snapshot ([`crate::busy`]). Run every minute by
//! the `busy-refresh` function's schedule (resources whose snapshot is due),
//! and on demand for one resource (its event `{"resource_id": "..."}`,
//! read now whatever its age).
//!
//! A failed read leaves the resource's snapshot as it was (it only ages;
//! past the maximum age availability and reserve answer `503`) and counts
//! `BusyRefreshFailures`; the other resources are refreshed regardless.

use crate::busy::{BusySettings, Refreshed, refresh, refresh_due};
use crate::domain::{Resource, ResourceId};
use crate::metrics;
use crate::ports::{BusySource, BusyStore, ResourceStore, StoreError, own_resources};
use chrono::Utc;
use futures::StreamExt;
use serde::Serialize;

/// How many calendars one run reads at a time.
pub const CONCURRENCY: usize = 8;

/// What a run did.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct BusyRefreshReport {
    /// Resources with busy time enabled (or the one asked for).
    pub resources: usize,
    /// Whose snapshot was read and stored.
    pub refreshed: Vec<ResourceId>,
    /// Read, but a newer read had landed first.
    pub superseded: Vec<ResourceId>,
    /// Whose snapshot was not due.
    pub fresh: usize,
    /// Resources whose read or write failed, with the reason.
    pub errors: Vec<String>,
}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum BusyRefreshError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("there is no resource {0:?} with busy time enabled")]
    NotFound(String),
}

/// Refreshes the busy time of every resource with busy time enabled whose
/// snapshot is due; with `only`, of that resource, due or not.
pub async fn refresh_busy_time<S, C>(
    store: &S,
    calendar: &C,
    only: Option<&ResourceId>,
    settings: &BusySettings,
) -> Result<BusyRefreshReport, BusyRefreshError>
where
    S: ResourceStore + BusyStore,
    C: BusySource,
{
    // Every resource: the teams among them tell whose events are a member's own.
    let all = store.list_resources().await?;
    let resources: Vec<Resource> = match only {
        Some(id) => vec![
            all.iter()
                .find(|r| &r.id == id)
                .filter(|r| r.busy_time_enabled())
                .cloned()
                .ok_or_else(|| BusyRefreshError::NotFound(id.to_string()))?,
        ],
        None => all.iter().filter(|r| r.busy_time_enabled()).cloned().collect(),
    };
    let all = &all;
    let mut report = BusyRefreshReport { resources: resources.len(), ..Default::default() };
    let outcomes: Vec<(ResourceId, Result<Option<Refreshed>, String>)> = futures::stream::iter(resources)
        .map(|resource| async move {
            let outcome = async {
                if only.is_none() {
                    let snapshot = store.busy_snapshot(&resource.id).await.map_err(|e| e.to_string())?;
                    if !refresh_due(&resource, snapshot.as_ref(), Utc::now(), settings) {
                        return Ok(None);
                    }
                }
                // The read starts now: that instant is what "newer" means.
                let own = own_resources(&resource, all);
                match refresh(store, calendar, &resource, &own, Utc::now(), settings).await {
                    Ok(done) => Ok(Some(done)),
                    Err(e) => Err(crate::api::problem::Chain(&e).to_string()),
                }
            }
            .await;
            (resource.id, outcome)
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    for (id, outcome) in outcomes {
        match outcome {
            Ok(None) => report.fresh += 1,
            Ok(Some(Refreshed::Stored)) => report.refreshed.push(id),
            Ok(Some(Refreshed::Superseded)) => report.superseded.push(id),
            Err(why) => {
                tracing::warn!(resource_id = %id, error = %crate::telemetry::scrubbed(&why), "busy time not refreshed");
                metrics::count("BusyRefreshFailures", &[]);
                report.errors.push(format!("{id}: {why}"));
            }
        }
    }
    report.refreshed.sort();
    report.superseded.sort();
    report.errors.sort();
    Ok(report)
}
