//! [`BusyStore`] on the table: one item per resource, `BUSY#{resource}` /
//! `BUSY` (layout in [`super::items`]).

use super::items::{EXPIRES_AT, Item, ItemError, epoch, get_n, get_s, n, s};
use super::{DynamoStore, conditional, corrupt, store_error};
use crate::domain::ResourceId;
use crate::ports::{BusyInterval, BusySnapshot, BusyStore, StoreError};
use chrono::{DateTime, Utc};

fn busy_key(id: &ResourceId) -> Item {
    Item::from([("pk".into(), s(format!("BUSY#{id}"))), ("sk".into(), s("BUSY"))])
}

fn busy_item(snapshot: &BusySnapshot, expires_at: DateTime<Utc>) -> Item {
    let pairs: Vec<[i64; 2]> = snapshot.intervals.iter().map(|(a, b)| [a.timestamp(), b.timestamp()]).collect();
    let mut item = busy_key(&snapshot.resource_id);
    item.extend([
        ("kind".to_owned(), s("busy")),
        ("resource_id".to_owned(), s(snapshot.resource_id.as_str())),
        ("fetched_at".to_owned(), n(snapshot.fetched_at.timestamp_millis())),
        ("window_from".to_owned(), epoch(snapshot.from)),
        ("window_to".to_owned(), epoch(snapshot.to)),
        ("source".to_owned(), s(&snapshot.source)),
        ("intervals".to_owned(), s(serde_json::to_string(&pairs).expect("numbers serialise"))),
        (EXPIRES_AT.to_owned(), epoch(expires_at)),
    ]);
    item
}

fn snapshot_of(item: &Item) -> Result<BusySnapshot, ItemError> {
    let secs =
        |v: i64, what: &str| DateTime::from_timestamp(v, 0).ok_or_else(|| ItemError(format!("{what} is out of range")));
    let pairs: Vec<[i64; 2]> = serde_json::from_str(get_s(item, "intervals")?)
        .map_err(|_| ItemError("intervals is not a list of pairs".into()))?;
    let intervals = pairs
        .into_iter()
        .map(|[a, b]| Ok::<BusyInterval, ItemError>((secs(a, "an interval")?, secs(b, "an interval")?)))
        .collect::<Result<_, _>>()?;
    Ok(BusySnapshot {
        resource_id: ResourceId::parse(get_s(item, "resource_id")?).map_err(|e| ItemError(e.to_string()))?,
        fetched_at: DateTime::from_timestamp_millis(get_n(item, "fetched_at")?)
            .ok_or_else(|| ItemError("fetched_at is out of range".into()))?,
        from: secs(get_n(item, "window_from")?, "window_from")?,
        to: secs(get_n(item, "window_to")?, "window_to")?,
        source: get_s(item, "source")?.to_owned(),
        intervals,
    })
}

impl BusyStore for DynamoStore {
    async fn busy_snapshot(&self, id: &ResourceId) -> Result<Option<BusySnapshot>, StoreError> {
        const OP: &str = "read busy time";
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(busy_key(id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error(OP, e))?;
        out.item().map(|item| snapshot_of(item).map_err(|e| corrupt(OP, e))).transpose()
    }

    async fn save_busy_snapshot(&self, snapshot: &BusySnapshot, expires_at: DateTime<Utc>) -> Result<bool, StoreError> {
        const OP: &str = "store busy time";
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(busy_item(snapshot, expires_at)))
            .condition_expression("attribute_not_exists(pk) OR fetched_at < :mine")
            .expression_attribute_values(":mine", n(snapshot.fetched_at.timestamp_millis()))
            .send()
            .await;
        conditional(OP, result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_round_trip() {
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let snapshot = BusySnapshot {
            resource_id: ResourceId::parse("room-1").unwrap(),
            fetched_at: at("2026-06-10T08:00:00.123Z"),
            from: at("2026-06-09T08:00:00Z"),
            to: at("2026-08-09T08:00:00Z"),
            source: "0123456789abcdef".into(),
            intervals: vec![(at("2026-06-10T09:00:00Z"), at("2026-06-10T10:00:00Z"))],
        };
        let item = busy_item(&snapshot, at("2026-06-12T00:00:00Z"));
        assert_eq!(snapshot_of(&item).unwrap(), snapshot);
        assert_eq!(get_n(&item, EXPIRES_AT).unwrap(), at("2026-06-12T00:00:00Z").timestamp());
    }
}
