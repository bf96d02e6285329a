//! `ClientRequestToken`s for `TransactWriteItems`.
//!
//! A transaction whose answer is lost (a timeout, a dropped connection, a
//! 500 after the commit) is sent again by the SDK's retry. Without a token
//! the retry is judged afresh: its "booking absent" or "still held"
//! conditions fail against the first attempt's own writes, and a commit
//! reads as a refusal. With a token, DynamoDB answers a repeat within ten
//! minutes as the first commit, and a token reused with *other* items is
//! refused (`IdempotentParameterMismatch`).
//!
//! So the token is a digest of the transaction itself: the operation and
//! every item (table, key or item, expressions, names and values, in a
//! canonical order). The same step of the same booking, sent again with the
//! same items (an SDK retry, a conflict retry, a handler retried after a lost
//! answer), carries the same token and is answered as committed if it was;
//! any change of state the caller read (a version, a status, a time written)
//! changes the items and so the token, and the transaction is judged afresh.

use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// The token of the transaction `op` writing `items`: 36 hex digits (the
/// most DynamoDB accepts), the start of a SHA-256 over their canonical form.
pub fn request_token(op: &str, items: &[TransactWriteItem]) -> String {
    let mut digest = Canonical(Sha256::new());
    digest.text(op);
    for item in items {
        if let Some(put) = item.put() {
            let (names, values) = (put.expression_attribute_names(), put.expression_attribute_values());
            digest.item(b'P', put.table_name(), put.item(), "", put.condition_expression(), names, values);
        }
        if let Some(u) = item.update() {
            let (names, values) = (u.expression_attribute_names(), u.expression_attribute_values());
            digest.item(b'U', u.table_name(), u.key(), u.update_expression(), u.condition_expression(), names, values);
        }
        if let Some(d) = item.delete() {
            let (names, values) = (d.expression_attribute_names(), d.expression_attribute_values());
            digest.item(b'D', d.table_name(), d.key(), "", d.condition_expression(), names, values);
        }
        if let Some(c) = item.condition_check() {
            let (names, values) = (c.expression_attribute_names(), c.expression_attribute_values());
            digest.item(b'C', c.table_name(), c.key(), "", Some(c.condition_expression()), names, values);
        }
    }
    let hash = digest.0.finalize();
    hash.iter().take(18).map(|b| format!("{b:02x}")).collect()
}

/// A SHA-256 fed with length-prefixed, tagged parts, so no two different
/// transactions write the same byte stream.
struct Canonical(Sha256);

impl Canonical {
    /// One transaction item: its kind, table, key (or whole item), update
    /// expression (empty but for updates) and condition with its placeholders.
    #[allow(clippy::too_many_arguments)]
    fn item(
        &mut self,
        kind: u8,
        table: &str,
        key: &HashMap<String, AttributeValue>,
        update: &str,
        condition: Option<&str>,
        names: Option<&HashMap<String, String>>,
        values: Option<&HashMap<String, AttributeValue>>,
    ) {
        self.tag(kind);
        self.text(table);
        self.values(Some(key));
        if kind == b'U' {
            self.text(update);
        }
        self.expression(condition, names, values);
    }

    fn tag(&mut self, tag: u8) {
        self.0.update([tag]);
    }

    fn text(&mut self, text: &str) {
        self.0.update((text.len() as u64).to_be_bytes());
        self.0.update(text.as_bytes());
    }

    fn bytes(&mut self, bytes: &[u8]) {
        self.0.update((bytes.len() as u64).to_be_bytes());
        self.0.update(bytes);
    }

    fn expression(
        &mut self,
        condition: Option<&str>,
        names: Option<&HashMap<String, String>>,
        values: Option<&HashMap<String, AttributeValue>>,
    ) {
        self.tag(b'c');
        self.text(condition.unwrap_or_default());
        let mut names: Vec<_> = names.into_iter().flatten().collect();
        names.sort();
        self.tag(b'n');
        for (name, attribute) in names {
            self.text(name);
            self.text(attribute);
        }
        self.values(values);
    }

    /// A map of attribute values, keys in order.
    fn values(&mut self, values: Option<&HashMap<String, AttributeValue>>) {
        let mut entries: Vec<_> = values.into_iter().flatten().collect();
        entries.sort_by(|a, b| a.0.cmp(b.0));
        self.tag(b'm');
        self.0.update((entries.len() as u64).to_be_bytes());
        for (key, value) in entries {
            self.text(key);
            self.value(value);
        }
    }

    fn value(&mut self, value: &AttributeValue) {
        match value {
            AttributeValue::S(s) => {
                self.tag(b's');
                self.text(s);
            }
            AttributeValue::N(n) => {
                self.tag(b'#');
                self.text(n);
            }
            AttributeValue::B(b) => {
                self.tag(b'b');
                self.bytes(b.as_ref());
            }
            AttributeValue::Bool(b) => self.tag(if *b { b'T' } else { b'F' }),
            AttributeValue::Null(_) => self.tag(b'0'),
            AttributeValue::L(list) => {
                self.tag(b'l');
                self.0.update((list.len() as u64).to_be_bytes());
                list.iter().for_each(|v| self.value(v));
            }
            AttributeValue::M(map) => self.values(Some(map)),
            AttributeValue::Ss(set) | AttributeValue::Ns(set) => {
                let mut set: Vec<_> = set.iter().collect();
                set.sort();
                self.tag(if matches!(value, AttributeValue::Ss(_)) { b'S' } else { b'N' });
                self.0.update((set.len() as u64).to_be_bytes());
                set.into_iter().for_each(|s| self.text(s));
            }
            AttributeValue::Bs(set) => {
                let mut set: Vec<&[u8]> = set.iter().map(|b| b.as_ref()).collect();
                set.sort();
                self.tag(b'B');
                self.0.update((set.len() as u64).to_be_bytes());
                set.into_iter().for_each(|b| self.bytes(b));
            }
            // A variant a newer SDK adds: its debug form still tells values apart.
            other => self.text(&format!("{other:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::types::{Put, Update};

    fn put(pk: &str, v: &str) -> TransactWriteItem {
        let put = Put::builder()
            .table_name("t")
            .item("pk", AttributeValue::S(pk.into()))
            .item("v", AttributeValue::S(v.into()))
            .item("n", AttributeValue::N("1".into()))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .unwrap();
        TransactWriteItem::builder().put(put).build()
    }

    #[test]
    fn the_same_transaction_gets_the_same_token_and_any_change_another() {
        let a = request_token("hold", &[put("a", "1"), put("b", "2")]);
        assert_eq!(a.len(), 36);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(a, request_token("hold", &[put("a", "1"), put("b", "2")]), "deterministic");
        assert_ne!(a, request_token("confirm", &[put("a", "1"), put("b", "2")]), "the operation counts");
        assert_ne!(a, request_token("hold", &[put("a", "1"), put("b", "3")]), "a value counts");
        assert_ne!(a, request_token("hold", &[put("b", "2"), put("a", "1")]), "the order counts");
        assert_ne!(a, request_token("hold", &[put("a", "1")]), "every item counts");
        let update = Update::builder()
            .table_name("t")
            .key("pk", AttributeValue::S("a".into()))
            .update_expression("SET v = :v")
            .expression_attribute_values(":v", AttributeValue::S("1".into()))
            .build()
            .unwrap();
        let update = TransactWriteItem::builder().update(update).build();
        assert_ne!(request_token("hold", std::slice::from_ref(&update)), request_token("hold", &[put("a", "1")]));
    }

    #[test]
    fn map_order_does_not_change_the_token() {
        // HashMaps built in other orders (and with other hashers) iterate differently.
        let mut one = HashMap::new();
        let mut other = HashMap::new();
        for i in 0..20 {
            one.insert(format!("k{i}"), AttributeValue::N(i.to_string()));
        }
        for i in (0..20).rev() {
            other.insert(format!("k{i}"), AttributeValue::N(i.to_string()));
        }
        let item = |m: HashMap<String, AttributeValue>| {
            TransactWriteItem::builder().put(Put::builder().table_name("t").set_item(Some(m)).build().unwrap()).build()
        };
        assert_eq!(request_token("x", &[item(one)]), request_token("x", &[item(other)]));
    }
}
