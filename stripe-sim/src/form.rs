//! Stripe's form encoding: `application/x-www-form-urlencoded` pairs whose
//! keys use bracket notation for nesting, as Stripe's API and async-stripe's
//! `serde_qs` encoder write them:
//!
//! ```text
//! line_items[0][price_data][currency]=eur&metadata[reservation_id]=rsv_1&expand[]=x
//! ```
//!
//! becomes `{"line_items":[{"price_data":{"currency":"eur"}}],
//! "metadata":{"reservation_id":"rsv_1"},"expand":["x"]}`. Every leaf is a
//! string, as on the wire; handlers convert what they need.

use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Why a form could not be read; the message is shown to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormError(pub String);

impl std::fmt::Display for FormError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A node while the tree is being built: arrays are only known once every
/// key has been seen (all children numeric), so they start as maps.
enum Node {
    Leaf(String),
    Map(BTreeMap<String, Node>),
}

/// Parses a form body or query string into a JSON object.
///
/// Empty values are dropped: Stripe reads `metadata[k]=` as "unset `k`", and
/// on creation that is the same as not sending it. A repeated key keeps its
/// last value. Keys are percent-decoded before they are split, so brackets
/// sent as `%5B`/`%5D` (as `qs`-based clients send them) work too; Stripe
/// forbids brackets inside metadata keys, so nothing is lost.
pub fn parse(input: &[u8]) -> Result<Value, FormError> {
    let mut root: BTreeMap<String, Node> = BTreeMap::new();
    for (key, value) in form_urlencoded::parse(input) {
        let segments = split_key(&key)?;
        if value.is_empty() {
            continue;
        }
        insert(&mut root, &segments, value.into_owned(), &key)?;
    }
    finish_map(root)
}

/// `a[b][0][]` → `["a", "b", "0", ""]`.
fn split_key(key: &str) -> Result<Vec<String>, FormError> {
    let invalid = || FormError(format!("Invalid parameter name: {key}"));
    let (head, mut rest) = match key.find('[') {
        Some(i) => (&key[..i], &key[i..]),
        None => (key, ""),
    };
    if head.is_empty() || head.contains(']') {
        return Err(invalid());
    }
    let mut segments = vec![head.to_owned()];
    while !rest.is_empty() {
        let inner = rest.strip_prefix('[').ok_or_else(invalid)?;
        let close = inner.find(']').ok_or_else(invalid)?;
        let segment = &inner[..close];
        if segment.contains('[') {
            return Err(invalid());
        }
        segments.push(segment.to_owned());
        rest = &inner[close + 1..];
    }
    Ok(segments)
}

fn insert(
    map: &mut BTreeMap<String, Node>,
    segments: &[String],
    value: String,
    full_key: &str,
) -> Result<(), FormError> {
    let conflict = || FormError(format!("Invalid parameter: {full_key} conflicts with another parameter"));
    let (first, rest) = segments.split_first().expect("split_key never returns nothing");
    // `[]` appends: it takes the next free index of this array.
    let name = if first.is_empty() { map.len().to_string() } else { first.clone() };
    if rest.is_empty() {
        match map.get(&name) {
            Some(Node::Map(_)) => Err(conflict()),
            _ => {
                map.insert(name, Node::Leaf(value));
                Ok(())
            }
        }
    } else {
        match map.entry(name).or_insert_with(|| Node::Map(BTreeMap::new())) {
            Node::Map(child) => insert(child, rest, value, full_key),
            Node::Leaf(_) => Err(conflict()),
        }
    }
}

fn finish(node: Node) -> Result<Value, FormError> {
    match node {
        Node::Leaf(s) => Ok(Value::String(s)),
        Node::Map(map) => {
            let indexed: Option<Vec<usize>> = map.keys().map(|k| parse_index(k)).collect();
            match indexed {
                Some(mut indices) if !map.is_empty() => {
                    indices.sort_unstable();
                    if indices.iter().enumerate().any(|(i, &n)| i != n) {
                        return Err(FormError("Invalid array: indices must run 0, 1, 2, ... without gaps".into()));
                    }
                    let mut items: Vec<(usize, Node)> =
                        map.into_iter().map(|(k, v)| (parse_index(&k).expect("checked above"), v)).collect();
                    items.sort_by_key(|(i, _)| *i);
                    items.into_iter().map(|(_, v)| finish(v)).collect::<Result<Vec<_>, _>>().map(Value::Array)
                }
                _ => finish_map(map),
            }
        }
    }
}

fn finish_map(map: BTreeMap<String, Node>) -> Result<Value, FormError> {
    let mut out = Map::new();
    for (k, v) in map {
        out.insert(k, finish(v)?);
    }
    Ok(Value::Object(out))
}

/// A canonical array index: digits without a leading zero (so `01` stays a
/// map key, as it would for metadata).
fn parse_index(key: &str) -> Option<usize> {
    if key.is_empty() || (key.len() > 1 && key.starts_with('0')) {
        return None;
    }
    if !key.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    key.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(s: &str) -> Value {
        parse(s.as_bytes()).unwrap()
    }

    #[test]
    fn flat_pairs_are_decoded() {
        assert_eq!(
            p("customer_email=ada%40example.com&success_url=http%3A%2F%2Fx%2Fok%3Fa%3D1&name=A+B"),
            json!({"customer_email":"ada@example.com","success_url":"http://x/ok?a=1","name":"A B"})
        );
    }

    #[test]
    fn nested_line_items_become_arrays_of_objects() {
        let form = "line_items[0][price_data][currency]=eur\
            &line_items[0][price_data][unit_amount]=4500\
            &line_items[0][price_data][product_data][name]=Coaching\
            &line_items[0][quantity]=1\
            &line_items[1][quantity]=2";
        assert_eq!(
            p(form),
            json!({"line_items":[
                {"price_data":{"currency":"eur","unit_amount":"4500","product_data":{"name":"Coaching"}},"quantity":"1"},
                {"quantity":"2"}
            ]})
        );
    }

    #[test]
    fn percent_encoded_brackets_work_like_literal_ones() {
        assert_eq!(
            p("metadata%5Breservation_id%5D=rsv_1&line_items%5B0%5D%5Bquantity%5D=1"),
            json!({"metadata":{"reservation_id":"rsv_1"},"line_items":[{"quantity":"1"}]})
        );
    }

    #[test]
    fn arrays_are_ordered_numerically_not_lexically() {
        let form: String = (0..12).map(|i| format!("a[{i}]={i}&")).collect();
        let v = p(&form);
        let items: Vec<&str> = v["a"].as_array().unwrap().iter().map(|x| x.as_str().unwrap()).collect();
        assert_eq!(items, ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11"]);
    }

    #[test]
    fn empty_brackets_append() {
        assert_eq!(p("expand[]=a&expand[]=b"), json!({"expand":["a","b"]}));
    }

    #[test]
    fn list_filters_parse_as_arrays_and_ranges() {
        // `GET /v1/events`: `types[]` as curl and Stripe's docs write it,
        // `types[0]` as async-stripe's encoder does, `created` both ways.
        assert_eq!(
            p("types[]=checkout.session.completed&types[]=checkout.session.expired&created[gte]=100&created[lt]=200"),
            json!({"types":["checkout.session.completed","checkout.session.expired"],"created":{"gte":"100","lt":"200"}})
        );
        assert_eq!(p("types%5B0%5D=a&types%5B1%5D=b&created=5"), json!({"types":["a","b"],"created":"5"}));
        assert!(parse(b"created=5&created[gt]=1").is_err());
    }

    #[test]
    fn metadata_keys_that_look_like_numbers_with_leading_zero_stay_keys() {
        assert_eq!(p("metadata[01]=x"), json!({"metadata":{"01":"x"}}));
    }

    #[test]
    fn empty_values_are_dropped_and_last_value_wins() {
        assert_eq!(p("metadata[a]=&metadata[b]=1&c=1&c=2"), json!({"metadata":{"b":"1"},"c":"2"}));
        assert_eq!(p(""), json!({}));
    }

    #[test]
    fn malformed_keys_are_rejected() {
        for bad in ["[a]=1", "a[b=1", "a]b=1", "a[b]c=1", "a[b[c]]=1"] {
            assert!(parse(bad.as_bytes()).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn a_key_used_both_as_value_and_as_object_is_rejected() {
        assert!(parse(b"metadata=x&metadata[a]=1").is_err());
        assert!(parse(b"metadata[a]=1&metadata=x").is_err());
    }

    #[test]
    fn arrays_with_gaps_are_rejected() {
        assert!(parse(b"line_items[0][quantity]=1&line_items[2][quantity]=1").is_err());
    }
}
