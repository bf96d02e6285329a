//! [`CursorStore`] on the table: one item, `CURSOR#stripe-session-events` /
//! `CURSOR` (layout in [`super::items`]), replaced by a conditional
//! `PutItem` that compares the revision the run read.

use super::items::{Item, ItemError, epoch, get_n, get_s, n, s};
use super::{DynamoStore, conditional, corrupt, store_error};
use crate::ports::{CursorStore, EventCursor, SettledEvent, StoreError};
use chrono::DateTime;

/// The partition key of the catch-up's cursor.
pub const CURSOR_PK: &str = "CURSOR#stripe-session-events";

fn cursor_key() -> Item {
    Item::from([("pk".into(), s(CURSOR_PK)), ("sk".into(), s("CURSOR"))])
}

fn cursor_item(cursor: &EventCursor, revision: u64) -> Item {
    let recent: Vec<(&str, i64)> = cursor.recent.iter().map(|e| (e.event_id.as_str(), e.created.timestamp())).collect();
    let mut item = cursor_key();
    item.extend([
        ("kind".to_owned(), s("cursor")),
        ("settled_through".to_owned(), epoch(cursor.settled_through)),
        ("recent".to_owned(), s(serde_json::to_string(&recent).expect("ids and numbers serialise"))),
        ("moved_at".to_owned(), epoch(cursor.moved_at)),
        ("revision".to_owned(), n(i64::try_from(revision).unwrap_or(i64::MAX))),
    ]);
    item
}

fn cursor_of(item: &Item) -> Result<EventCursor, ItemError> {
    let secs =
        |v: i64, what: &str| DateTime::from_timestamp(v, 0).ok_or_else(|| ItemError(format!("{what} is out of range")));
    let recent: Vec<(String, i64)> = serde_json::from_str(get_s(item, "recent")?)
        .map_err(|_| ItemError("recent is not a list of [event id, created] pairs".into()))?;
    Ok(EventCursor {
        settled_through: secs(get_n(item, "settled_through")?, "settled_through")?,
        recent: recent
            .into_iter()
            .map(|(event_id, created)| Ok(SettledEvent { created: secs(created, "a recent event")?, event_id }))
            .collect::<Result<_, ItemError>>()?,
        moved_at: secs(get_n(item, "moved_at")?, "moved_at")?,
        revision: u64::try_from(get_n(item, "revision")?).map_err(|_| ItemError("revision is negative".into()))?,
    })
}

impl CursorStore for DynamoStore {
    async fn event_cursor(&self) -> Result<Option<EventCursor>, StoreError> {
        const OP: &str = "read the event cursor";
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(cursor_key()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error(OP, e))?;
        out.item().map(|item| cursor_of(item).map_err(|e| corrupt(OP, e))).transpose()
    }

    async fn advance_event_cursor(&self, read: Option<&EventCursor>, to: &EventCursor) -> Result<bool, StoreError> {
        const OP: &str = "move the event cursor";
        let revision = read.map_or(1, |r| r.revision + 1);
        let put = self.client.put_item().table_name(&self.table).set_item(Some(cursor_item(to, revision)));
        let put = match read {
            None => put.condition_expression("attribute_not_exists(pk)"),
            Some(read) => put
                // Placeholders for the names: DynamoDB reserves many words.
                .condition_expression("#revision = :read AND #through <= :to")
                .expression_attribute_names("#revision", "revision")
                .expression_attribute_names("#through", "settled_through")
                .expression_attribute_values(":read", n(i64::try_from(read.revision).unwrap_or(i64::MAX)))
                .expression_attribute_values(":to", epoch(to.settled_through)),
        };
        conditional(OP, put.send().await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_never_expire() {
        let at = |t: &str| DateTime::parse_from_rfc3339(t).unwrap().to_utc();
        let cursor = EventCursor {
            settled_through: at("2030-01-07T08:00:05Z"),
            recent: vec![
                SettledEvent { created: at("2030-01-07T07:58:00Z"), event_id: "evt_1Example0".into() },
                SettledEvent { created: at("2030-01-07T08:00:05Z"), event_id: "evt_1Example1".into() },
            ],
            moved_at: at("2030-01-07T08:05:00Z"),
            revision: 7,
        };
        let item = cursor_item(&cursor, 7);
        assert_eq!(cursor_of(&item).unwrap(), cursor);
        assert_eq!(get_s(&item, "pk").unwrap(), CURSOR_PK);
        assert!(!item.contains_key(super::super::items::EXPIRES_AT));
    }
}
